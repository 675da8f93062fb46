//! Conversations: groups, their members, direct chats and read markers.

use super::Service;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::model::{
    Group, GroupId, GroupName, GroupSummary, GroupWithMembers, Member, MessageId, Posting, Role,
    UserId,
};
use crate::store::Activity;

impl Service {
    /// A new group; the caller is its owner and a member.
    pub async fn create_group(
        &self,
        user: AuthUser,
        name: &str,
        members: Vec<UserId>,
    ) -> Result<Group> {
        let name = GroupName::parse(name)?;
        self.store.create_group(user.id, name, members).await
    }

    /// A page of the caller's conversations (groups and direct chats), latest activity
    /// first, and the `before` cursor of the next page if there is one.
    pub async fn conversations(
        &self,
        user: AuthUser,
        before: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<GroupSummary>, Option<String>)> {
        let before = match before {
            None => None,
            Some(text) => Some(Activity::parse(text).ok_or_else(|| {
                Error::invalid(
                    "invalid_query",
                    "before must be a cursor from X-Next-Before",
                )
            })?),
        };
        let limit = match limit {
            None => 200,
            Some(n @ 1..=1000) => n as usize,
            Some(_) => return Err(Error::invalid("invalid_limit", "limit must be 1–1000")),
        };
        let (page, next) = self.store.conversations(user.id, before, limit).await?;
        Ok((page, next.map(|a| a.to_string())))
    }

    /// A conversation with its members, each marked online or not.
    pub async fn group(&self, user: AuthUser, group: GroupId) -> Result<GroupWithMembers> {
        let mut group = self.store.group(group, user.id).await?;
        self.mark_online(&mut group.members);
        Ok(group)
    }

    /// Renames a group and/or sets who may post in it (`everyone` or `admins`).
    pub async fn update_group(
        &self,
        user: AuthUser,
        group: GroupId,
        name: Option<&str>,
        posting: Option<&str>,
    ) -> Result<Group> {
        if name.is_none() && posting.is_none() {
            return Err(Error::invalid(
                "invalid_json",
                "give a name, posting, or both",
            ));
        }
        let name = name.map(GroupName::parse).transpose()?;
        let posting = match posting {
            None => None,
            Some(p) => Some(Posting::parse(p).ok_or_else(|| {
                Error::invalid(
                    "invalid_posting",
                    "posting must be \"everyone\" or \"admins\"",
                )
            })?),
        };
        self.store.update_group(group, user.id, name, posting).await
    }

    /// Changes a member's role (`member` or `admin`) and/or mutes them until a time (RFC
    /// 3339; `Some(None)` unmutes).
    pub async fn update_member(
        &self,
        user: AuthUser,
        group: GroupId,
        member: UserId,
        role: Option<&str>,
        muted_until: Option<Option<&str>>,
    ) -> Result<Member> {
        if role.is_none() && muted_until.is_none() {
            return Err(Error::invalid(
                "invalid_json",
                "give a role, muted_until, or both",
            ));
        }
        let role = role.map(parse_role).transpose()?;
        let muted_until = match muted_until {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(Some(utc_time(text)?)),
        };
        let mut member = self
            .store
            .update_member(group, user.id, member, role, muted_until)
            .await?;
        member.online = self.hub.is_online(member.id);
        Ok(member)
    }

    pub async fn delete_group(&self, user: AuthUser, group: GroupId) -> Result<()> {
        self.store.delete_group(group, user.id).await
    }

    /// Adds a member as `member` (the default) or `admin`; `owner` cannot be given.
    pub async fn add_member(
        &self,
        user: AuthUser,
        group: GroupId,
        member: UserId,
        role: Option<&str>,
    ) -> Result<Member> {
        let role = parse_role(role.unwrap_or("member"))?;
        let mut member = self.store.add_member(group, user.id, member, role).await?;
        member.online = self.hub.is_online(member.id);
        Ok(member)
    }

    pub async fn members(&self, user: AuthUser, group: GroupId) -> Result<Vec<Member>> {
        let mut members = self.store.members(group, user.id).await?;
        self.mark_online(&mut members);
        Ok(members)
    }

    pub async fn remove_member(
        &self,
        user: AuthUser,
        group: GroupId,
        member: UserId,
    ) -> Result<()> {
        self.store.remove_member(group, user.id, member).await
    }

    /// The one direct conversation of the caller and `other`, created on first use; `true`
    /// when it was created now.
    pub async fn direct(&self, user: AuthUser, other: UserId) -> Result<(Group, bool)> {
        let other = other_user(user, other)?;
        self.store.direct(user.id, other).await
    }

    /// Moves the caller's read marker forward (never back).
    pub fn mark_read(
        &self,
        user: AuthUser,
        group: GroupId,
        message: MessageId,
    ) -> crate::store::Pending<()> {
        self.store.mark_read(group, user.id, message)
    }

    fn mark_online(&self, members: &mut [Member]) {
        for m in members {
            m.online = self.hub.is_online(m.id);
        }
    }
}

/// A role that may be given: `member` or `admin` (never `owner`).
fn parse_role(role: &str) -> Result<Role> {
    match role {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        _ => Err(Error::invalid(
            "invalid_role",
            "role must be \"member\" or \"admin\"",
        )),
    }
}

/// An RFC 3339 time as the API writes times: UTC with milliseconds.
pub(crate) fn utc_time(text: &str) -> Result<String> {
    use time::format_description::well_known::Rfc3339;
    let bad = || {
        Error::invalid(
            "invalid_time",
            "times are RFC 3339, like 2026-11-21T09:30:00Z",
        )
    };
    let at = time::OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| bad())?;
    let at = at.to_offset(time::UtcOffset::UTC);
    at.format(crate::model::API_TIME).map_err(|_| bad())
}

/// The other user of a direct conversation: anyone but the caller.
pub(super) fn other_user(user: AuthUser, other: UserId) -> Result<UserId> {
    if other == user.id {
        return Err(Error::invalid(
            "invalid_user_id",
            "a direct conversation is with someone else",
        ));
    }
    Ok(other)
}
