//! Conversations and their members. Every change that live sockets must learn of returns the
//! events to publish after the commit.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::json;

use super::messages::{self, Message};
use super::{written, Written};
use crate::error::ApiError;
use crate::hub::{Event, EventKind, Outbound};
use crate::ids::{GroupId, MessageId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl rusqlite::types::FromSql for Role {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        Role::parse(s).ok_or_else(|| rusqlite::types::FromSqlError::Other(s.into()))
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub id: GroupId,
    pub kind: String,
    pub name: Option<String>,
    pub owner_id: Option<UserId>,
    pub created_at: String,
    /// The caller's role; absent where the group is sent to everyone (events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// For a direct conversation, the other user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Peer {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupWithMembers {
    #[serde(flatten)]
    pub group: Group,
    pub members: Vec<Member>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupSummary {
    #[serde(flatten)]
    pub group: Group,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    pub last_read_id: MessageId,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub joined_at: String,
    /// Filled in from the hub by the caller.
    pub online: bool,
    pub last_seen: Option<String>,
}

const GROUP_COLUMNS: &str = "c.id, c.kind, c.name, c.owner_id, c.created_at";

fn group_row(r: &Row) -> rusqlite::Result<Group> {
    Ok(Group {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        owner_id: r.get(3)?,
        created_at: r.get(4)?,
        role: None,
        peer: None,
    })
}

fn member_row(r: &Row) -> rusqlite::Result<Member> {
    Ok(Member {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        role: r.get(3)?,
        joined_at: r.get(4)?,
        online: false,
        last_seen: r.get(5)?,
    })
}

/// The caller's role in `group`: 404 when the group does not exist, 403 when they are not in it.
pub fn role_of(conn: &Connection, group: GroupId, user: UserId) -> Result<Role, ApiError> {
    let role: Option<Role> = conn
        .query_row(
            "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
            params![group, user],
            |r| r.get(0),
        )
        .optional()?;
    match role {
        Some(role) => Ok(role),
        None => Err(absent_or_forbidden(conn, group)?),
    }
}

pub fn is_member(conn: &Connection, group: GroupId, user: UserId) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2")?
        .query_row(params![group, user], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The error for a caller who is not a member: 404 if the conversation is missing, else 403.
pub fn absent_or_forbidden(conn: &Connection, group: GroupId) -> Result<ApiError, ApiError> {
    let exists = conn
        .query_row("SELECT 1 FROM conversations WHERE id = ?1", [group], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    Ok(if exists {
        ApiError::forbidden("you are not a member of this conversation")
    } else {
        ApiError::not_found("no such conversation")
    })
}

fn load(conn: &Connection, group: GroupId) -> Result<Group, ApiError> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM conversations c WHERE c.id = ?1");
    conn.query_row(&sql, [group], group_row)
        .optional()?
        .ok_or_else(|| ApiError::not_found("no such conversation"))
}

fn newest_message_id(conn: &Connection, group: GroupId) -> Result<MessageId, ApiError> {
    Ok(conn.query_row(
        "SELECT coalesce(max(id), 0) FROM messages WHERE conversation_id = ?1",
        [group],
        |r| r.get(0),
    )?)
}

/// Adds `user` and returns the events that tell the group's sockets and the user's own.
fn insert_member(
    conn: &Connection,
    group: GroupId,
    user: UserId,
    role: Role,
) -> Result<(Member, Vec<Outbound>), ApiError> {
    let member = conn.query_row(
        "INSERT INTO members (conversation_id, user_id, role) VALUES (?1, ?2, ?3)
         RETURNING user_id, (SELECT username FROM users WHERE id = ?2),
                   (SELECT display_name FROM users WHERE id = ?2), role, joined_at,
                   (SELECT last_seen FROM users WHERE id = ?2)",
        params![group, user, role.as_str()],
        member_row,
    )?;
    let since = newest_message_id(conn, group)?;
    let event = Arc::new(Event::new(
        group,
        EventKind::MemberAdded {
            user_id: user,
            since,
        },
        &json!({"type": "member_added", "group_id": group, "user_id": user, "role": role}),
    ));
    let events = vec![
        Outbound::Group(group, Arc::clone(&event)),
        Outbound::User(user, event),
    ];
    Ok((member, events))
}

fn check_users_exist(conn: &Connection, ids: &[UserId]) -> Result<(), ApiError> {
    for &id in ids {
        if !super::users::exists(conn, id)? {
            return Err(ApiError::not_found(format!("no user with id {id}")));
        }
    }
    Ok(())
}

pub fn create(
    conn: &Connection,
    owner: UserId,
    name: &str,
    member_ids: &[UserId],
) -> Result<Written<Group>, ApiError> {
    if !super::users::exists(conn, owner)? {
        return Err(ApiError::unauthorized("this account no longer exists"));
    }
    check_users_exist(conn, member_ids)?;
    let mut group = conn.query_row(
        "INSERT INTO conversations (kind, name, owner_id) VALUES ('group', ?1, ?2)
         RETURNING id, kind, name, owner_id, created_at",
        params![name, owner],
        group_row,
    )?;
    let mut events = Vec::new();
    let (_, mut owner_events) = insert_member(conn, group.id, owner, Role::Owner)?;
    events.append(&mut owner_events);
    let mut seen = vec![owner];
    for &id in member_ids {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let (_, mut more) = insert_member(conn, group.id, id, Role::Member)?;
        events.append(&mut more);
    }
    group.role = Some(Role::Owner);
    Ok(written(group, events))
}

pub fn get(conn: &Connection, group: GroupId, user: UserId) -> Result<GroupWithMembers, ApiError> {
    let role = role_of(conn, group, user)?;
    let mut g = load(conn, group)?;
    g.role = Some(role);
    g.peer = peer_of(conn, &g, user)?;
    Ok(GroupWithMembers {
        group: g,
        members: list_members(conn, group)?,
    })
}

pub fn members(conn: &Connection, group: GroupId, user: UserId) -> Result<Vec<Member>, ApiError> {
    role_of(conn, group, user)?;
    list_members(conn, group)
}

fn list_members(conn: &Connection, group: GroupId) -> Result<Vec<Member>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.username, u.display_name, m.role, m.joined_at, u.last_seen
         FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.conversation_id = ?1 ORDER BY m.joined_at, u.id",
    )?;
    let rows = stmt.query_map([group], member_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The ids of every conversation `user` is in.
pub fn ids_of(conn: &Connection, user: UserId) -> Result<Vec<GroupId>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id FROM members WHERE user_id = ?1 ORDER BY conversation_id",
    )?;
    let rows = stmt.query_map([user], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The caller's conversations, most recent activity first, with their last message and how
/// many messages from others arrived after the caller's read marker.
pub fn list_for(conn: &Connection, user: UserId) -> Result<Vec<GroupSummary>, ApiError> {
    let sql = format!(
        "SELECT {GROUP_COLUMNS}, m.role,
                (SELECT max(id) FROM messages WHERE conversation_id = c.id) AS last_id,
                (SELECT count(*) FROM messages x
                  WHERE x.conversation_id = c.id AND x.id > m.last_read_id
                    AND x.deleted = 0 AND x.sender_id IS NOT m.user_id) AS unread,
                m.last_read_id
         FROM members m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.user_id = ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([user], |r| {
        let mut g = group_row(r)?;
        g.role = Some(r.get(5)?);
        let last_id: Option<MessageId> = r.get(6)?;
        let unread: i64 = r.get(7)?;
        let last_read_id: MessageId = r.get(8)?;
        Ok((g, last_id, unread, last_read_id))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut group, last_id, unread_count, last_read_id) = row?;
        group.peer = peer_of(conn, &group, user)?;
        let last_message = match last_id {
            Some(id) => messages::by_id(conn, id)?,
            None => None,
        };
        out.push(GroupSummary {
            group,
            last_message,
            unread_count,
            last_read_id,
        });
    }
    // Latest activity: the last message's time, or the creation time of a quiet group. Many
    // messages share a millisecond, so equal times fall back to the newer message id.
    let activity = |s: &GroupSummary| {
        let time = s
            .last_message
            .as_ref()
            .map_or(&s.group.created_at, |m| &m.timestamp);
        let last_id = s.last_message.as_ref().map_or(MessageId(0), |m| m.id);
        (time.clone(), last_id, s.group.id)
    };
    out.sort_by_key(|s| std::cmp::Reverse(activity(s)));
    Ok(out)
}

fn require_group_kind(g: &Group) -> Result<(), ApiError> {
    if g.kind == "direct" {
        return Err(ApiError::forbidden(
            "a direct conversation has exactly its two members and no name",
        ));
    }
    Ok(())
}

pub fn rename(
    conn: &Connection,
    group: GroupId,
    user: UserId,
    name: &str,
) -> Result<Written<Group>, ApiError> {
    let role = role_of(conn, group, user)?;
    require_group_kind(&load(conn, group)?)?;
    if !role.manages() {
        return Err(ApiError::forbidden(
            "only the owner or an admin can rename a group",
        ));
    }
    conn.execute(
        "UPDATE conversations SET name = ?2 WHERE id = ?1",
        params![group, name],
    )?;
    let updated = load(conn, group)?;
    let event = Event::new(
        group,
        EventKind::Other,
        &json!({"type": "group_updated", "group_id": group, "group": updated}),
    );
    let mut for_caller = updated;
    for_caller.role = Some(role);
    Ok(written(
        for_caller,
        vec![Outbound::Group(group, Arc::new(event))],
    ))
}

pub fn delete(conn: &Connection, group: GroupId, user: UserId) -> Result<Written<()>, ApiError> {
    let role = role_of(conn, group, user)?;
    require_group_kind(&load(conn, group)?)?;
    if role != Role::Owner {
        return Err(ApiError::forbidden("only the owner can delete a group"));
    }
    conn.execute("DELETE FROM conversations WHERE id = ?1", [group])?;
    let event = Event::new(
        group,
        EventKind::GroupDeleted,
        &json!({"type": "group_deleted", "group_id": group}),
    );
    Ok(written((), vec![Outbound::Group(group, Arc::new(event))]))
}

pub fn add_member(
    conn: &Connection,
    group: GroupId,
    actor: UserId,
    user: UserId,
    role: Role,
) -> Result<Written<Member>, ApiError> {
    let actor_role = role_of(conn, group, actor)?;
    require_group_kind(&load(conn, group)?)?;
    if !actor_role.manages() {
        return Err(ApiError::forbidden(
            "only the owner or an admin can add members",
        ));
    }
    check_users_exist(conn, &[user])?;
    if is_member(conn, group, user)? {
        return Err(ApiError::conflict("that user is already a member"));
    }
    let (member, events) = insert_member(conn, group, user, role)?;
    Ok(written(member, events))
}

pub fn remove_member(
    conn: &Connection,
    group: GroupId,
    actor: UserId,
    user: UserId,
) -> Result<Written<()>, ApiError> {
    let actor_role = role_of(conn, group, actor)?;
    require_group_kind(&load(conn, group)?)?;
    let target_role: Option<Role> = conn
        .query_row(
            "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
            params![group, user],
            |r| r.get(0),
        )
        .optional()?;
    let Some(target_role) = target_role else {
        return Err(ApiError::not_found("that user is not a member"));
    };
    if target_role == Role::Owner {
        return Err(ApiError::forbidden(
            "the owner cannot be removed; the owner can delete the group instead",
        ));
    }
    if actor != user && !actor_role.manages() {
        return Err(ApiError::forbidden(
            "only the owner or an admin can remove other members",
        ));
    }
    conn.execute(
        "DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2",
        params![group, user],
    )?;
    let event = Arc::new(Event::new(
        group,
        EventKind::MemberRemoved { user_id: user },
        &json!({"type": "member_removed", "group_id": group, "user_id": user}),
    ));
    Ok(written(
        (),
        vec![
            Outbound::Group(group, Arc::clone(&event)),
            Outbound::User(user, event),
        ],
    ))
}

/// The other member of a direct conversation (None for groups).
fn peer_of(conn: &Connection, group: &Group, me: UserId) -> Result<Option<Peer>, ApiError> {
    if group.kind != "direct" {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.username, u.display_name FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ?1 AND m.user_id != ?2",
        )?
        .query_row(params![group.id, me], |r| {
            Ok(Peer {
                id: r.get(0)?,
                username: r.get(1)?,
                display_name: r.get(2)?,
            })
        })
        .optional()?)
}

fn direct_key(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.min(b), b.max(a))
}

/// The direct conversation of two users, if they have one.
pub fn direct_between(
    conn: &Connection,
    me: UserId,
    other: UserId,
) -> Result<Option<GroupId>, ApiError> {
    if !super::users::exists(conn, other)? {
        return Err(ApiError::not_found("no such user"));
    }
    Ok(conn
        .prepare_cached("SELECT id FROM conversations WHERE direct_key = ?1")?
        .query_row([direct_key(me, other)], |r| r.get(0))
        .optional()?)
}

/// Gets or creates the one direct conversation of `me` and `other`; `true` when created.
/// Both users' sockets learn of a new one through `member_added`.
pub fn direct(
    conn: &Connection,
    me: UserId,
    other: UserId,
) -> Result<Written<(Group, bool)>, ApiError> {
    let (id, created, events) = match direct_between(conn, me, other)? {
        Some(id) => (id, false, Vec::new()),
        None => {
            let id: GroupId = conn.query_row(
                "INSERT INTO conversations (kind, direct_key) VALUES ('direct', ?1) RETURNING id",
                [direct_key(me, other)],
                |r| r.get(0),
            )?;
            let (_, mut events) = insert_member(conn, id, me, Role::Member)?;
            events.append(&mut insert_member(conn, id, other, Role::Member)?.1);
            (id, true, events)
        }
    };
    let mut group = load(conn, id)?;
    group.role = Some(Role::Member);
    group.peer = peer_of(conn, &group, me)?;
    Ok(written((group, created), events))
}

/// Moves `user`'s read marker in `group` forward to `message`; members learn of it by a `read`
/// event. A marker already at or past `message` stays, and nothing is sent.
pub fn mark_read(
    conn: &Connection,
    group: GroupId,
    user: UserId,
    message: MessageId,
) -> Result<Written<()>, ApiError> {
    role_of(conn, group, user)?;
    let in_group = conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1 AND conversation_id = ?2")?
        .query_row(params![message, group], |_| Ok(()))
        .optional()?
        .is_some();
    if !in_group {
        return Err(ApiError::not_found("no such message in this conversation"));
    }
    let moved = conn.execute(
        "UPDATE members SET last_read_id = ?3
         WHERE conversation_id = ?1 AND user_id = ?2 AND last_read_id < ?3",
        params![group, user, message],
    )?;
    let mut events = Vec::new();
    if moved > 0 {
        let event = Event::new(
            group,
            EventKind::Other,
            &json!({"type": "read", "group_id": group, "user_id": user, "message_id": message}),
        );
        events.push(Outbound::Group(group, Arc::new(event)));
    }
    Ok(written((), events))
}

/// Everyone who shares a conversation with `user` (not `user`): who hears of their presence.
pub fn contacts_of(conn: &Connection, user: UserId) -> Result<Vec<UserId>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT other.user_id FROM members mine
         JOIN members other ON other.conversation_id = mine.conversation_id
         WHERE mine.user_id = ?1 AND other.user_id != ?1",
    )?;
    let rows = stmt.query_map([user], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
