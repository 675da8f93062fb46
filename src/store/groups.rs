//! Conversations: named groups, and the one direct conversation of each pair of users.

use super::db::{args, Db, Row};

use super::members::Joining;
use super::members::{self, role_of};
use super::{blocks, messages, users, written, Caps, Pending, Store, Written};
use crate::error::{Error, Result};
use crate::hub::{Event, Outbound};
use crate::model::{
    Group, GroupId, GroupName, GroupSummary, GroupWithMembers, Kind, MessageId, Peer, Posting,
    Role, UserId,
};
use crate::protocol::ServerFrame;

const GROUP_COLUMNS: &str = "c.id, c.kind, c.name, c.owner_id, c.created_at, c.posting";

impl Store {
    /// A new group owned by `owner`, with `member_ids` as members; every member's sockets learn
    /// of it. An unknown member id creates nothing.
    pub fn create_group(
        &self,
        owner: UserId,
        name: GroupName,
        member_ids: Vec<UserId>,
    ) -> Pending<Group> {
        let caps = self.caps;
        self.write(move |c| create(c, caps, owner, &name, &member_ids))
    }

    pub async fn group(&self, group: GroupId, user: UserId) -> Result<GroupWithMembers> {
        self.read(move |c| {
            let role = role_of(c, group, user)?;
            let mut g = load(c, group)?;
            g.role = Some(role);
            g.peer = peer_of(c, &g, user)?;
            Ok(GroupWithMembers {
                group: g,
                members: members::list(c, group)?,
            })
        })
        .await
    }

    /// A page of the caller's conversations, most recent activity first, each with its last
    /// message and how many messages from others arrived after the caller's read marker; and
    /// the cursor of the next page, if there is one.
    pub async fn conversations(
        &self,
        user: UserId,
        before: Option<Activity>,
        limit: usize,
    ) -> Result<(Vec<GroupSummary>, Option<Activity>)> {
        self.read(move |c| {
            let all = list_for(c, user)?;
            let mut page: Vec<GroupSummary> = all
                .into_iter()
                .filter(|s| before.as_ref().is_none_or(|b| Activity::of(s) < *b))
                .take(limit + 1)
                .collect();
            let next = (page.len() > limit).then(|| {
                page.truncate(limit);
                page.last().map(Activity::of)
            });
            Ok((page, next.flatten()))
        })
        .await
    }

    /// An owner or admin renames a group and/or sets who may post; its sockets learn of it.
    pub fn update_group(
        &self,
        group: GroupId,
        user: UserId,
        name: Option<GroupName>,
        posting: Option<Posting>,
    ) -> Pending<Group> {
        self.write(move |c| update(c, group, user, name.as_ref(), posting))
    }

    /// The owner deletes a group and its messages; its sockets learn of it.
    pub fn delete_group(&self, group: GroupId, user: UserId) -> Pending<()> {
        self.write(move |c| {
            let role = role_of(c, group, user)?;
            require_group_kind(c, group)?;
            if role != Role::Owner {
                return Err(Error::forbidden("only the owner can delete a group"));
            }
            c.execute("DELETE FROM conversations WHERE id = ?1", args![group])?;
            let event = Event::new(ServerFrame::GroupDeleted { group_id: group });
            Ok(written((), vec![Outbound::Group(group, event)]))
        })
    }

    /// Gets or creates the one direct conversation of `me` and `other`; `true` when created.
    pub fn direct(&self, me: UserId, other: UserId) -> Pending<(Group, bool)> {
        let caps = self.caps;
        self.write(move |c| direct(c, caps, me, other))
    }
}

/// Where a conversation stands in the list: its last message's time (or its creation time),
/// then that message's id, then its own id. Written `TIME_MESSAGE_GROUP` in `before=`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Activity {
    time: String,
    last_id: MessageId,
    group: GroupId,
}

impl Activity {
    fn of(s: &GroupSummary) -> Activity {
        let time = s
            .last_message
            .as_ref()
            .map_or(&s.group.created_at, |m| &m.timestamp);
        let last_id = s.last_message.as_ref().map_or(MessageId(0), |m| m.id);
        Activity {
            time: time.clone(),
            last_id,
            group: s.group.id,
        }
    }

    pub fn parse(s: &str) -> Option<Activity> {
        let mut parts = s.rsplitn(3, '_');
        let group = parts.next()?.parse().ok().map(GroupId)?;
        let last_id = parts.next()?.parse().ok().map(MessageId)?;
        let time = parts.next()?.to_string();
        Some(Activity {
            time,
            last_id,
            group,
        })
    }
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}_{}", self.time, self.last_id, self.group)
    }
}

fn group_row(r: &Row) -> Result<Group> {
    Ok(Group {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        owner_id: r.get(3)?,
        created_at: r.get(4)?,
        posting: r.get(5)?,
        role: None,
        peer: None,
    })
}

fn load(conn: &Db, group: GroupId) -> Result<Group> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM conversations c WHERE c.id = ?1");
    conn.query_opt(&sql, args![group], group_row)?
        .ok_or_else(|| Error::not_found("no such conversation"))
}

/// Refuses what only a named group has (a name, an owner, member changes) for a direct chat.
pub(super) fn require_group_kind(conn: &Db, group: GroupId) -> Result<Group> {
    let g = load(conn, group)?;
    if g.kind == Kind::Direct {
        return Err(Error::forbidden(
            "a direct conversation has exactly its two members and no name",
        ));
    }
    Ok(g)
}

pub(super) fn create(
    conn: &Db,
    caps: Caps,
    owner: UserId,
    name: &GroupName,
    member_ids: &[UserId],
) -> Result<Written<Group>> {
    if !users::exists(conn, owner)? {
        return Err(Error::account_gone());
    }
    let owned: i64 = conn.query_row(
        "SELECT count(*) FROM conversations WHERE owner_id = ?1 AND kind = 'group'",
        args![owner],
        |r| r.get(0),
    )?;
    if owned as u64 >= caps.groups_owned as u64 {
        return Err(Error::Conflict {
            code: "limit_reached",
            message: format!("you own {owned} groups, the most one user may own"),
        });
    }
    members::check_users_exist(conn, member_ids)?;
    for &member in member_ids {
        blocks::refuse_if_blocked(conn, member, owner)?;
    }
    let mut group = conn.query_row(
        "INSERT INTO conversations (kind, name, owner_id) VALUES ('group', ?1, ?2)
         RETURNING id, kind, name, owner_id, created_at, posting",
        args![name.as_str(), owner],
        group_row,
    )?;
    let (_, mut events) = members::insert(conn, caps, group.id, owner, Role::Owner, Joining::Own)?;
    let mut seen = vec![owner];
    for &id in member_ids {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        events.append(
            &mut members::insert(conn, caps, group.id, id, Role::Member, Joining::ByOther)?.1,
        );
    }
    group.role = Some(Role::Owner);
    Ok(written(group, events))
}

fn list_for(conn: &Db, user: UserId) -> Result<Vec<GroupSummary>> {
    let sql = format!(
        "SELECT {GROUP_COLUMNS}, m.role,
                (SELECT max(id) FROM messages WHERE conversation_id = c.id) AS last_id,
                (SELECT count(*) FROM messages x
                  WHERE x.conversation_id = c.id AND x.id > m.last_read_id
                    AND x.deleted = 0 AND x.sender_id IS DISTINCT FROM m.user_id) AS unread,
                m.last_read_id,
                (SELECT count(*) FROM mentions mn
                  WHERE mn.user_id = m.user_id AND mn.conversation_id = c.id
                    AND mn.message_id > m.last_read_id) AS mentioned
         FROM members m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.user_id = ?1"
    );
    let rows = conn.query_map(&sql, args![user], |r| {
        let mut g = group_row(r)?;
        g.role = Some(r.get(6)?);
        let last_id: Option<MessageId> = r.get(7)?;
        Ok((g, last_id, r.get(8)?, r.get(9)?, r.get(10)?))
    })?;
    let mut out = Vec::new();
    for (mut group, last_id, unread_count, last_read_id, mention_count) in rows {
        group.peer = peer_of(conn, &group, user)?;
        let last_message = match last_id {
            Some(id) => messages::by_id(conn, id)?,
            None => None,
        };
        out.push(GroupSummary {
            group,
            last_message,
            unread_count,
            mention_count,
            last_read_id,
        });
    }
    // Latest activity first. Many messages share a millisecond, so equal times fall back to
    // the newer message id.
    out.sort_by_key(|s| std::cmp::Reverse(Activity::of(s)));
    Ok(out)
}

fn update(
    conn: &Db,
    group: GroupId,
    user: UserId,
    name: Option<&GroupName>,
    posting: Option<Posting>,
) -> Result<Written<Group>> {
    let role = role_of(conn, group, user)?;
    require_group_kind(conn, group)?;
    if !role.manages() {
        return Err(Error::forbidden(
            "only the owner or an admin can change a group",
        ));
    }
    conn.execute(
        "UPDATE conversations SET name = coalesce(?2, name), posting = coalesce(?3, posting)
         WHERE id = ?1",
        args![
            group,
            name.map(GroupName::as_str),
            posting.map(Posting::as_str)
        ],
    )?;
    let updated = load(conn, group)?;
    let event = Event::new(ServerFrame::GroupUpdated {
        group_id: group,
        group: updated.clone(),
    });
    let mut for_caller = updated;
    for_caller.role = Some(role);
    Ok(written(for_caller, vec![Outbound::Group(group, event)]))
}

/// The other member of a direct conversation (None for groups).
fn peer_of(conn: &Db, group: &Group, me: UserId) -> Result<Option<Peer>> {
    if group.kind != Kind::Direct {
        return Ok(None);
    }
    conn.query_opt(
        "SELECT u.id, u.username, u.display_name FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ?1 AND m.user_id != ?2",
        args![group.id, me],
        |r| {
            Ok(Peer {
                id: r.get(0)?,
                username: r.get(1)?,
                display_name: r.get(2)?,
            })
        },
    )
}

/// The other member of `group` if it is a direct conversation.
pub(super) fn direct_peer(conn: &Db, group: GroupId, me: UserId) -> Result<Option<UserId>> {
    conn.query_opt(
        "SELECT m.user_id FROM conversations c JOIN members m ON m.conversation_id = c.id
             WHERE c.id = ?1 AND c.kind = 'direct' AND m.user_id != ?2",
        args![group, me],
        |r| r.get(0),
    )
}

fn direct_key(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.min(b), b.max(a))
}

/// The direct conversation of two users, if they have one.
pub(super) fn direct_between(conn: &Db, me: UserId, other: UserId) -> Result<Option<GroupId>> {
    if !users::exists(conn, other)? {
        return Err(Error::not_found("no such user"));
    }
    conn.query_opt(
        "SELECT id FROM conversations WHERE direct_key = ?1",
        args![direct_key(me, other)],
        |r| r.get(0),
    )
}

/// Both users' sockets learn of a new direct conversation through `member_added`.
/// Someone `other` has blocked cannot open it.
pub(super) fn direct(
    conn: &Db,
    caps: Caps,
    me: UserId,
    other: UserId,
) -> Result<Written<(Group, bool)>> {
    let found = direct_between(conn, me, other)?;
    blocks::refuse_if_blocked(conn, other, me)?;
    let (id, created, events) = match found {
        Some(id) => (id, false, Vec::new()),
        None => {
            let id: GroupId = conn.query_row(
                "INSERT INTO conversations (kind, direct_key) VALUES ('direct', ?1) RETURNING id",
                args![direct_key(me, other)],
                |r| r.get(0),
            )?;
            let (_, mut events) = members::insert(conn, caps, id, me, Role::Member, Joining::Own)?;
            events.append(
                &mut members::insert(conn, caps, id, other, Role::Member, Joining::ByOther)?.1,
            );
            (id, true, events)
        }
    };
    let mut group = load(conn, id)?;
    group.role = Some(Role::Member);
    group.peer = peer_of(conn, &group, me)?;
    Ok(written((group, created), events))
}

/// Each group `owner` owns passes to its oldest admin, else its oldest member; a group left
/// with nobody is deleted (the owner's account is being deleted).
pub(super) fn hand_over(conn: &Db, owner: UserId) -> Result<()> {
    let owned: Vec<i64> = conn.query_map(
        "SELECT id FROM conversations WHERE owner_id = ?1 AND kind = 'group'",
        args![owner],
        |r| r.get(0),
    )?;
    for group in owned {
        let successor: Option<UserId> = conn.query_opt(
            "SELECT user_id FROM members WHERE conversation_id = ?1 AND user_id != ?2
                 ORDER BY role = 'admin' DESC, joined_at, user_id LIMIT 1",
            args![group, owner],
            |r| r.get(0),
        )?;
        match successor {
            Some(next) => {
                conn.execute(
                    "UPDATE members SET role = 'owner' WHERE conversation_id = ?1 AND user_id = ?2",
                    args![group, next],
                )?;
                conn.execute(
                    "UPDATE conversations SET owner_id = ?2 WHERE id = ?1",
                    args![group, next],
                )?;
            }
            None => {
                conn.execute("DELETE FROM conversations WHERE id = ?1", args![group])?;
            }
        }
    }
    Ok(())
}
