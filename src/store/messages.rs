//! Messages: sending (with client_id idempotency), history pages, and the catch-up reads that
//! let a socket recover what it missed.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::groups::{absent_or_forbidden, Role};
use super::{written, Written};
use crate::error::ApiError;
use crate::hub::{Event, EventKind, Outbound};
use crate::ids::{GroupId, MessageId, UserId};

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub group_id: GroupId,
    pub sender_id: Option<UserId>,
    pub sender_username: Option<String>,
    pub content: String,
    pub timestamp: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    pub client_id: Option<String>,
}

/// The `group_message` frame: the message with its type tag.
#[derive(Serialize)]
pub struct MessageFrame<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub message: &'a Message,
}

impl Message {
    pub fn frame(&self) -> MessageFrame<'_> {
        MessageFrame {
            kind: "group_message",
            message: self,
        }
    }

    pub fn event(&self) -> Event {
        Event::new(
            self.group_id,
            EventKind::Message { id: self.id },
            &self.frame(),
        )
    }
}

const SELECT: &str = "SELECT m.id, m.conversation_id, m.sender_id, u.username, m.content,
       m.created_at, m.edited_at, m.deleted, m.client_id
  FROM messages m LEFT JOIN users u ON u.id = m.sender_id";

fn message_row(r: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        group_id: r.get(1)?,
        sender_id: r.get(2)?,
        sender_username: r.get(3)?,
        content: r.get(4)?,
        timestamp: r.get(5)?,
        edited_at: r.get(6)?,
        deleted: r.get(7)?,
        client_id: r.get(8)?,
    })
}

pub fn by_id(conn: &Connection, id: MessageId) -> Result<Option<Message>, ApiError> {
    let sql = format!("{SELECT} WHERE m.id = ?1");
    Ok(conn.query_row(&sql, [id], message_row).optional()?)
}

/// A send's outcome: a new message, or the one an earlier send with the same client_id stored.
#[derive(Debug)]
pub enum Sent {
    New(Message),
    Repeat(Message),
}

impl Sent {
    pub fn message(&self) -> &Message {
        match self {
            Sent::New(m) | Sent::Repeat(m) => m,
        }
    }
}

/// Stores a message from a member; `content` is already validated and trimmed.
pub fn send(
    conn: &Connection,
    group: GroupId,
    sender: UserId,
    content: &str,
    client_id: Option<&str>,
) -> Result<Written<Sent>, ApiError> {
    let username: Option<String> = conn
        .prepare_cached(
            "SELECT u.username FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ?1 AND m.user_id = ?2",
        )?
        .query_row(params![group, sender], |r| r.get(0))
        .optional()?;
    let Some(username) = username else {
        return Err(absent_or_forbidden(conn, group)?);
    };
    if let Some(client_id) = client_id {
        let sql = format!(
            "{SELECT} WHERE m.conversation_id = ?1 AND m.sender_id = ?2 AND m.client_id = ?3"
        );
        let earlier = conn
            .prepare_cached(&sql)?
            .query_row(params![group, sender, client_id], message_row)
            .optional()?;
        if let Some(earlier) = earlier {
            return Ok(written(Sent::Repeat(earlier), Vec::new()));
        }
    }
    let (id, timestamp): (MessageId, String) = conn
        .prepare_cached(
            "INSERT INTO messages (conversation_id, sender_id, content, client_id)
             VALUES (?1, ?2, ?3, ?4) RETURNING id, created_at",
        )?
        .query_row(params![group, sender, content, client_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let message = Message {
        id,
        group_id: group,
        sender_id: Some(sender),
        sender_username: Some(username),
        content: content.to_string(),
        timestamp,
        edited_at: None,
        deleted: false,
        client_id: client_id.map(str::to_string),
    };
    let event = Outbound::Group(group, Arc::new(message.event()));
    Ok(written(Sent::New(message), vec![event]))
}

/// Sends to the direct conversation of `sender` and `other`, creating it first if needed.
pub fn send_direct(
    conn: &Connection,
    sender: UserId,
    other: UserId,
    content: &str,
    client_id: Option<&str>,
) -> Result<Written<Sent>, ApiError> {
    let conversation = super::groups::direct(conn, sender, other)?;
    let mut sent = send(conn, conversation.value.0.id, sender, content, client_id)?;
    let mut events = conversation.events;
    events.append(&mut sent.events);
    sent.events = events;
    Ok(sent)
}

/// Which page of a conversation's history.
#[derive(Clone, Copy, Debug, Default)]
pub struct Page {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: u32,
}

/// A page of history in ascending id order, and whether more lie beyond it in the direction
/// the page was read (older for none/`before`, newer for `after`).
pub fn history(
    conn: &Connection,
    group: GroupId,
    user: UserId,
    page: Page,
) -> Result<(Vec<Message>, bool), ApiError> {
    super::groups::role_of(conn, group, user)?;
    let fetch = i64::from(page.limit) + 1;
    let before = page.before.map_or(i64::MAX, |m| m.0);
    let mut messages: Vec<Message> = if let Some(after) = page.after {
        let sql = format!(
            "{SELECT} WHERE m.conversation_id = ?1 AND m.id > ?2 AND m.id < ?3
             ORDER BY m.id ASC LIMIT ?4"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![group, after, before, fetch], message_row)?;
        rows.collect::<Result<_, _>>()?
    } else {
        let sql = format!(
            "{SELECT} WHERE m.conversation_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![group, before, fetch], message_row)?;
        let mut newest_first: Vec<Message> = rows.collect::<Result<_, _>>()?;
        newest_first.reverse();
        newest_first
    };
    let has_more = messages.len() > page.limit as usize;
    if has_more {
        if page.after.is_some() {
            messages.pop();
        } else {
            messages.remove(0);
        }
    }
    Ok((messages, has_more))
}

/// Messages with id > `after` in every conversation `user` is in, ascending (socket replay).
pub fn replay_for_user(
    conn: &Connection,
    user: UserId,
    after: MessageId,
    limit: u32,
) -> Result<Vec<Message>, ApiError> {
    let sql = format!(
        "{SELECT} JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = ?1
         WHERE m.id > ?2 ORDER BY m.id ASC LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user, after, limit], message_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Messages of one conversation with id > `after`, ascending; `None` when `user` is no longer
/// a member (a lagging socket's catch-up).
pub fn catch_up(
    conn: &Connection,
    user: UserId,
    group: GroupId,
    after: MessageId,
    limit: u32,
) -> Result<Option<Vec<Message>>, ApiError> {
    if !super::groups::is_member(conn, group, user)? {
        return Ok(None);
    }
    let sql = format!("{SELECT} WHERE m.conversation_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![group, after, limit], message_row)?;
    Ok(Some(rows.collect::<Result<_, _>>()?))
}

/// The newest message id of all conversations (0 when there are none).
pub fn newest_id(conn: &Connection) -> Result<MessageId, ApiError> {
    Ok(
        conn.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
            r.get(0)
        })?,
    )
}

/// The message and the caller's role in its conversation: 404 when there is no such message,
/// 403 when the caller is not in its conversation.
fn for_member(
    conn: &Connection,
    id: MessageId,
    user: UserId,
) -> Result<(Message, Role, String), ApiError> {
    let message = by_id(conn, id)?.ok_or_else(|| ApiError::not_found("no such message"))?;
    let role = super::groups::role_of(conn, message.group_id, user)?;
    let kind: String = conn.query_row(
        "SELECT kind FROM conversations WHERE id = ?1",
        [message.group_id],
        |r| r.get(0),
    )?;
    Ok((message, role, kind))
}

/// The sender changes a message's content; members receive `message_edited`.
pub fn edit(
    conn: &Connection,
    id: MessageId,
    user: UserId,
    content: &str,
) -> Result<Written<Message>, ApiError> {
    let (message, _, _) = for_member(conn, id, user)?;
    if message.sender_id != Some(user) {
        return Err(ApiError::forbidden("only the sender can edit a message"));
    }
    if message.deleted {
        return Err(ApiError::conflict("the message was deleted"));
    }
    conn.execute(
        &format!(
            "UPDATE messages SET content = ?2, edited_at = {} WHERE id = ?1",
            super::now_sql()
        ),
        params![id, content],
    )?;
    let edited = by_id(conn, id)?.ok_or_else(|| ApiError::not_found("no such message"))?;
    let event = Event::new(
        edited.group_id,
        EventKind::Other,
        &serde_json::json!({
            "type": "message_edited",
            "id": edited.id,
            "group_id": edited.group_id,
            "content": edited.content,
            "edited_at": edited.edited_at,
        }),
    );
    let group = edited.group_id;
    Ok(written(
        edited,
        vec![Outbound::Group(group, Arc::new(event))],
    ))
}

/// The sender, or a group's owner or admin, deletes a message: it stays in history as a
/// tombstone (empty content, `deleted: true`) and members receive `message_deleted`.
/// Deleting it again changes nothing and sends nothing.
pub fn delete(conn: &Connection, id: MessageId, user: UserId) -> Result<Written<()>, ApiError> {
    let (message, role, kind) = for_member(conn, id, user)?;
    let moderates = kind == "group" && matches!(role, Role::Owner | Role::Admin);
    if message.sender_id != Some(user) && !moderates {
        return Err(ApiError::forbidden(
            "only the sender or the group's owner or an admin can delete a message",
        ));
    }
    if message.deleted {
        return Ok(written((), Vec::new()));
    }
    conn.execute(
        "UPDATE messages SET content = '', deleted = 1 WHERE id = ?1",
        [id],
    )?;
    let event = Event::new(
        message.group_id,
        EventKind::Other,
        &serde_json::json!({"type": "message_deleted", "id": id, "group_id": message.group_id}),
    );
    Ok(written(
        (),
        vec![Outbound::Group(message.group_id, Arc::new(event))],
    ))
}

/// Turns what a person typed into an FTS5 query: every word must appear, the last one also as
/// a prefix. Each word is quoted, so FTS5 operators and punctuation in the input are just text.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    let last = words.len().checked_sub(1)?;
    Some(
        words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == last {
                    format!("{w}*")
                } else {
                    w.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Messages of the caller's conversations (or of one) matching `query`, newest first.
pub fn search(
    conn: &Connection,
    user: UserId,
    query: &str,
    group: Option<GroupId>,
    limit: u32,
) -> Result<Vec<Message>, ApiError> {
    if let Some(group) = group {
        super::groups::role_of(conn, group, user)?;
    }
    let Some(fts) = fts_query(query) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "{SELECT}
         JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = ?1
         WHERE m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?2)
           AND m.deleted = 0 AND (?3 IS NULL OR m.conversation_id = ?3)
         ORDER BY m.id DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user, fts, group, limit], message_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn typed_text_becomes_a_safe_fts_query() {
        assert_eq!(
            fts_query("hello wor").as_deref(),
            Some("\"hello\" \"wor\"*")
        );
        assert_eq!(
            fts_query("a\"b OR (c*) NOT:d").as_deref(),
            Some("\"a\" \"b\" \"OR\" \"c\" \"NOT\" \"d\"*")
        );
        assert_eq!(fts_query(" -*- ").as_deref(), None);
        assert_eq!(fts_query("café").as_deref(), Some("\"café\"*"));
    }
}
