//! Who is in which conversation, with which role, and how far they have read. Every change that
//! live sockets must learn of returns the events to publish after the commit.

use super::db::{args, Db, Row};

use super::{blocks, groups, users, written, Caps, Pending, Store, Written};
use crate::error::{Error, Result};
use crate::hub::{Control, Event, Outbound};
use crate::model::{GroupId, Member, MessageId, Role, UserId};
use crate::protocol::ServerFrame;

impl Store {
    pub async fn members(&self, group: GroupId, user: UserId) -> Result<Vec<Member>> {
        self.read(move |c| {
            role_of(c, group, user)?;
            list(c, group)
        })
        .await
    }

    /// Why `user` may not act in `group`: 404 if there is no such conversation, else 403.
    pub async fn not_member_error(&self, group: GroupId) -> Error {
        self.read(move |c| absent_or_forbidden(c, group))
            .await
            .unwrap_or_else(|e| e)
    }

    /// An owner or admin adds `user` as `role`; the group's sockets and the user's own learn of it.
    pub fn add_member(
        &self,
        group: GroupId,
        actor: UserId,
        user: UserId,
        role: Role,
    ) -> Pending<Member> {
        let caps = self.caps;
        self.write(move |c| add(c, caps, group, actor, user, role))
    }

    /// An owner or admin removes anyone but the owner; anyone may remove themself.
    pub fn remove_member(&self, group: GroupId, actor: UserId, user: UserId) -> Pending<()> {
        self.write(move |c| remove(c, group, actor, user))
    }

    /// An owner or admin changes a member's role and/or mutes them (`Some(None)` unmutes);
    /// the group's sockets learn of it. The owner, and oneself, cannot be changed.
    pub fn update_member(
        &self,
        group: GroupId,
        actor: UserId,
        user: UserId,
        role: Option<Role>,
        muted_until: Option<Option<String>>,
    ) -> Pending<Member> {
        self.write(move |c| update(c, group, actor, user, role, muted_until))
    }

    /// Moves `user`'s read marker in `group` forward to `message`; members learn of it by a
    /// `read` event. A marker already at or past `message` stays, and nothing is sent.
    pub fn mark_read(&self, group: GroupId, user: UserId, message: MessageId) -> Pending<()> {
        self.write(move |c| mark_read(c, group, user, message))
    }
}

fn member_row(r: &Row) -> Result<Member> {
    Ok(Member {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        role: r.get(3)?,
        joined_at: r.get(4)?,
        online: false,
        last_seen: r.get(5)?,
        muted_until: r.get(6)?,
    })
}

/// The caller's role in `group`: not found when the group does not exist, forbidden when
/// they are not in it.
pub(super) fn role_of(conn: &Db, group: GroupId, user: UserId) -> Result<Role> {
    let role: Option<Role> = conn.query_opt(
        "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
        args![group, user],
        |r| r.get(0),
    )?;
    match role {
        Some(role) => Ok(role),
        None => Err(absent_or_forbidden(conn, group)?),
    }
}

pub(super) fn is_member(conn: &Db, group: GroupId, user: UserId) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2",
            args![group, user],
            |_| Ok(()),
        )?
        .is_some())
}

/// The error for a caller who is not a member: not found if the conversation is missing, else
/// forbidden.
pub(super) fn absent_or_forbidden(conn: &Db, group: GroupId) -> Result<Error> {
    let exists = conn
        .query_opt(
            "SELECT 1 FROM conversations WHERE id = ?1",
            args![group],
            |_| Ok(()),
        )?
        .is_some();
    Ok(if exists {
        Error::forbidden("you are not a member of this conversation")
    } else {
        Error::not_found("no such conversation")
    })
}

pub(super) fn list(conn: &Db, group: GroupId) -> Result<Vec<Member>> {
    conn.query_map(
        "SELECT u.id, u.username, u.display_name, m.role, m.joined_at, u.last_seen, m.muted_until
         FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.conversation_id = ?1 ORDER BY m.joined_at, u.id",
        args![group],
        member_row,
    )
}

/// The ids of every conversation `user` is in.
/// The conversations `user` is in, with their role in each, by id.
pub(super) fn roles_of(conn: &Db, user: UserId) -> Result<Vec<(GroupId, Role)>> {
    conn.query_map(
        "SELECT conversation_id, role FROM members WHERE user_id = ?1 ORDER BY conversation_id",
        args![user],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn newest_message_id(conn: &Db, group: GroupId) -> Result<MessageId> {
    conn.query_row(
        "SELECT coalesce(max(id), 0) FROM messages WHERE conversation_id = ?1",
        args![group],
        |r| r.get(0),
    )
}

/// Who asks for a membership: the user themselves (making their own group, opening a direct
/// chat), or someone else adding them.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Joining {
    Own,
    ByOther,
}

/// Adds `user` (unless they are in as many conversations as `caps` allows) and returns the
/// events that tell the group's sockets and the user's own. Others can fill a user's
/// memberships only up to the cap; the user's own groups and direct chats may go a further
/// `groups_owned` beyond it, so that being added to a flood of groups by strangers never
/// stops anyone making a group or writing to someone themselves.
pub(super) fn insert(
    conn: &Db,
    caps: Caps,
    group: GroupId,
    user: UserId,
    role: Role,
    joining: Joining,
) -> Result<(Member, Vec<Outbound>)> {
    let memberships: i64 = conn.query_row(
        "SELECT count(*) FROM members WHERE user_id = ?1",
        args![user],
        |r| r.get(0),
    )?;
    let cap = match joining {
        Joining::Own => caps.memberships.saturating_add(caps.groups_owned),
        Joining::ByOther => caps.memberships,
    };
    if memberships as u64 >= cap as u64 {
        return Err(Error::Conflict {
            code: "limit_reached",
            message: format!(
                "user {user} is already in {memberships} conversations, the most one user may be in"
            ),
        });
    }
    let member = conn.query_row(
        "INSERT INTO members (conversation_id, user_id, role) VALUES (?1, ?2, ?3)
         RETURNING user_id, (SELECT username FROM users WHERE id = ?2),
                   (SELECT display_name FROM users WHERE id = ?2), role, joined_at,
                   (SELECT last_seen FROM users WHERE id = ?2), muted_until",
        args![group, user, role.as_str()],
        member_row,
    )?;
    let event = Event::new(ServerFrame::MemberAdded {
        group_id: group,
        user_id: user,
        role,
        since: newest_message_id(conn, group)?,
    });
    let events = vec![
        Outbound::Group(group, event.clone()),
        Outbound::User(user, Control::Event(event)),
    ];
    Ok((member, events))
}

pub(super) fn check_users_exist(conn: &Db, ids: &[UserId]) -> Result<()> {
    for &id in ids {
        if !users::exists(conn, id)? {
            return Err(Error::not_found(format!("no user with id {id}")));
        }
    }
    Ok(())
}

fn add(
    conn: &Db,
    caps: Caps,
    group: GroupId,
    actor: UserId,
    user: UserId,
    role: Role,
) -> Result<Written<Member>> {
    let actor_role = role_of(conn, group, actor)?;
    groups::require_group_kind(conn, group)?;
    if !actor_role.manages() {
        return Err(Error::forbidden(
            "only the owner or an admin can add members",
        ));
    }
    check_users_exist(conn, &[user])?;
    if is_member(conn, group, user)? {
        return Err(Error::conflict("that user is already a member"));
    }
    blocks::refuse_if_blocked(conn, user, actor)?;
    let (member, events) = insert(conn, caps, group, user, role, Joining::ByOther)?;
    Ok(written(member, events))
}

fn remove(conn: &Db, group: GroupId, actor: UserId, user: UserId) -> Result<Written<()>> {
    let actor_role = role_of(conn, group, actor)?;
    groups::require_group_kind(conn, group)?;
    let target_role: Option<Role> = conn.query_opt(
        "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
        args![group, user],
        |r| r.get(0),
    )?;
    let Some(target_role) = target_role else {
        return Err(Error::not_found("that user is not a member"));
    };
    if target_role == Role::Owner {
        return Err(Error::forbidden(
            "the owner cannot be removed; the owner can delete the group instead",
        ));
    }
    if actor != user && !actor_role.manages() {
        return Err(Error::forbidden(
            "only the owner or an admin can remove other members",
        ));
    }
    conn.execute(
        "DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2",
        args![group, user],
    )?;
    let event = Event::new(ServerFrame::MemberRemoved {
        group_id: group,
        user_id: user,
    });
    let events = vec![
        Outbound::Group(group, event.clone()),
        Outbound::User(user, Control::Event(event)),
    ];
    Ok(written((), events))
}

fn update(
    conn: &Db,
    group: GroupId,
    actor: UserId,
    user: UserId,
    role: Option<Role>,
    muted_until: Option<Option<String>>,
) -> Result<Written<Member>> {
    let actor_role = role_of(conn, group, actor)?;
    groups::require_group_kind(conn, group)?;
    if !actor_role.manages() {
        return Err(Error::forbidden(
            "only the owner or an admin can change members",
        ));
    }
    let target: Option<Role> = conn.query_opt(
        "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
        args![group, user],
        |r| r.get(0),
    )?;
    match target {
        None => return Err(Error::not_found("that user is not a member")),
        Some(Role::Owner) => return Err(Error::forbidden("the owner's role cannot be changed")),
        Some(_) if user == actor => {
            return Err(Error::forbidden(
                "you cannot change your own role or mute yourself",
            ))
        }
        // Admins manage the members; only the owner manages the admins.
        Some(Role::Admin) if actor_role != Role::Owner => {
            return Err(Error::forbidden(
                "only the owner can change or mute an admin",
            ))
        }
        Some(_) => {}
    }
    conn.execute(
        "UPDATE members SET role = coalesce(?3, role),
                            muted_until = CASE WHEN ?4 THEN ?5 ELSE muted_until END
         WHERE conversation_id = ?1 AND user_id = ?2",
        args![
            group,
            user,
            role.map(Role::as_str),
            muted_until.is_some(),
            muted_until.flatten()
        ],
    )?;
    let member = list(conn, group)?
        .into_iter()
        .find(|m| m.id == user)
        .ok_or_else(|| Error::not_found("that user is not a member"))?;
    let event = Event::new(ServerFrame::MemberUpdated {
        group_id: group,
        user_id: user,
        role: member.role,
        muted_until: member.muted_until.clone(),
    });
    Ok(written(member, vec![Outbound::Group(group, event)]))
}

fn mark_read(conn: &Db, group: GroupId, user: UserId, message: MessageId) -> Result<Written<()>> {
    role_of(conn, group, user)?;
    let in_group = conn
        .query_opt(
            "SELECT 1 FROM messages WHERE id = ?1 AND conversation_id = ?2",
            args![message, group],
            |_| Ok(()),
        )?
        .is_some();
    if !in_group {
        return Err(Error::not_found("no such message in this conversation"));
    }
    let moved = conn.execute(
        "UPDATE members SET last_read_id = ?3
         WHERE conversation_id = ?1 AND user_id = ?2 AND last_read_id < ?3",
        args![group, user, message],
    )?;
    let mut events = Vec::new();
    if moved > 0 {
        let event = Event::new(ServerFrame::Read {
            group_id: group,
            user_id: user,
            message_id: message,
        });
        events.push(Outbound::Group(group, event));
    }
    Ok(written((), events))
}

/// Everyone who shares a conversation with `user` (not `user`): who hears of their presence.
pub(super) fn contacts_of(conn: &Db, user: UserId) -> Result<Vec<UserId>> {
    conn.query_map(
        "SELECT DISTINCT other.user_id FROM members mine
         JOIN members other ON other.conversation_id = mine.conversation_id
         WHERE mine.user_id = ?1 AND other.user_id != ?1",
        args![user],
        |r| r.get(0),
    )
}
