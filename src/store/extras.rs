//! What a message carries besides its text, as tables beside `messages`: its attachments
//! (`message_attachments`), the message it answers (`messages.reply_to`), reactions and
//! mentions. Messages are read with `fill`, which loads all of it for a whole page in one query
//! per table; a send, an edit and a delete keep the tables in step.

use std::collections::HashMap;

use super::db::{args, Db};

use super::attachments::{attachment_row, ATTACHMENT_COLUMNS};
use super::messages::{for_member, quote_row};
use super::{blocks, groups, written, Pending, Store, Written};
use crate::error::{Error, Result};
use crate::hub::{Event, Outbound};
use crate::model::{
    mentioned_names, Attachment, AttachmentId, Emoji, GroupId, Message, MessageId, Reaction,
    ReplyQuote, UserId, MAX_REACTIONS,
};
use crate::protocol::ServerFrame;

/// The ids of `messages` as the JSON array `json_each` reads.
fn id_list(messages: &[Message]) -> String {
    let ids: Vec<i64> = messages.iter().map(|m| m.id.0).collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
}

/// Loads the attachments, reactions and mentions of every message in `messages`.
pub(super) fn fill(conn: &Db, messages: &mut [Message]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids = id_list(messages);
    let at: HashMap<MessageId, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    let attachments = conn.query_map(
        &format!(
            "SELECT ma.message_id, {ATTACHMENT_COLUMNS}
             FROM message_attachments ma JOIN attachments a ON a.id = ma.attachment_id
             WHERE ma.message_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))
             ORDER BY ma.message_id, ma.position"
        ),
        args![ids],
        |r| Ok((r.get::<MessageId>(0)?, attachment_row(r, 1)?)),
    )?;
    for (id, attachment) in attachments {
        if let Some(&i) = at.get(&id) {
            messages[i].attachments.push(attachment);
        }
    }
    let reactions = conn.query_map(
        "SELECT message_id, emoji, user_id FROM reactions
         WHERE message_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))
         ORDER BY message_id, id",
        args![ids],
        |r| {
            Ok((
                r.get::<MessageId>(0)?,
                r.get::<String>(1)?,
                r.get::<UserId>(2)?,
            ))
        },
    )?;
    for (id, emoji, user) in reactions {
        if let Some(&i) = at.get(&id) {
            add_reaction(&mut messages[i].reactions, emoji, user);
        }
    }
    let mentions = conn.query_map(
        "SELECT message_id, user_id FROM mentions
         WHERE message_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))
         ORDER BY message_id, user_id",
        args![ids],
        |r| Ok((r.get::<MessageId>(0)?, r.get::<UserId>(1)?)),
    )?;
    for (id, user) in mentions {
        if let Some(&i) = at.get(&id) {
            messages[i].mentions.push(user);
        }
    }
    Ok(())
}

fn add_reaction(reactions: &mut Vec<Reaction>, emoji: String, user: UserId) {
    match reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(r) => {
            r.count += 1;
            r.user_ids.push(user);
        }
        None => reactions.push(Reaction {
            emoji,
            count: 1,
            user_ids: vec![user],
        }),
    }
}

/// Ties the sender's own finished uploads to a new message, in the order given; any other id
/// is `invalid_attachment`.
pub(super) fn attach(
    conn: &Db,
    message: MessageId,
    sender: UserId,
    ids: &[AttachmentId],
) -> Result<Vec<Attachment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = Vec::with_capacity(ids.len());
    let sql = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
         WHERE a.id = ?1 AND a.uploader_id = ?2 AND a.complete = 1"
    );
    for (position, &id) in ids.iter().enumerate() {
        let attachment = conn
            .query_opt(&sql, args![id, sender], |r| attachment_row(r, 0))?
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_attachment",
                    format!("attachment {id} is not one of your uploads"),
                )
            })?;
        conn.execute(
            "INSERT INTO message_attachments (message_id, position, attachment_id)
             VALUES (?1, ?2, ?3)",
            args![message, position as i64, id],
        )?;
        found.push(attachment);
    }
    Ok(found)
}

/// The quote of the message a new one in `group` answers; a message of another conversation
/// (or none) is `invalid_reply`.
pub(super) fn reply_quote(conn: &Db, group: GroupId, answered: MessageId) -> Result<ReplyQuote> {
    let found: Option<(GroupId, ReplyQuote)> = conn.query_opt(
        "SELECT r.conversation_id, r.id, r.sender_id, ru.username, r.content, r.deleted
             FROM messages r LEFT JOIN users ru ON ru.id = r.sender_id WHERE r.id = ?1",
        args![answered],
        |r| Ok((r.get(0)?, quote_row(r, 1)?)),
    )?;
    match found {
        Some((conversation, quote)) if conversation == group => Ok(quote),
        _ => Err(Error::invalid(
            "invalid_reply",
            format!("message {answered} is not in this conversation"),
        )),
    }
}

/// Records whom `content` mentions: members of `group` but the sender, named by
/// `@username`, any case. An edit (`replacing`) first forgets whom it mentioned before.
pub(super) fn set_mentions(
    conn: &Db,
    message: MessageId,
    group: GroupId,
    sender: UserId,
    content: &str,
    replacing: bool,
) -> Result<Vec<UserId>> {
    if replacing {
        conn.execute("DELETE FROM mentions WHERE message_id = ?1", args![message])?;
    }
    let names = mentioned_names(content);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
    let users: Vec<UserId> = conn.query_map(
        "SELECT u.id FROM members mb JOIN users u ON u.id = mb.user_id
         WHERE mb.conversation_id = ?1 AND mb.user_id IS DISTINCT FROM ?3
           AND casefold(u.username) IN (SELECT value FROM json_each(?2))
         ORDER BY u.id",
        args![group, names, sender],
        |r| r.get(0),
    )?;
    for user in &users {
        conn.execute(
            "INSERT INTO mentions (message_id, user_id, conversation_id) VALUES (?1, ?2, ?3)",
            args![message, user, group],
        )?;
    }
    Ok(users)
}

/// A deleted message keeps nothing: its attachments, reactions and mentions go (an attachment
/// nothing else refers to is removed later), and it no longer quotes another.
pub(super) fn clear(conn: &Db, message: MessageId) -> Result<()> {
    for sql in [
        "DELETE FROM message_attachments WHERE message_id = ?1",
        "DELETE FROM reactions WHERE message_id = ?1",
        "DELETE FROM mentions WHERE message_id = ?1",
        "UPDATE messages SET reply_to = NULL WHERE id = ?1",
    ] {
        conn.execute(sql, args![message])?;
    }
    Ok(())
}

fn reactions_of(conn: &Db, message: MessageId) -> Result<Vec<Reaction>> {
    let mut reactions = Vec::new();
    for (emoji, user) in conn.query_map(
        "SELECT emoji, user_id FROM reactions WHERE message_id = ?1 ORDER BY id",
        args![message],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )? {
        add_reaction(&mut reactions, emoji, user);
    }
    Ok(reactions)
}

impl Store {
    /// Adds (`on`) or takes back the caller's `emoji` on a message; members receive
    /// `message_reactions` when anything changed. Both are idempotent.
    pub fn react(&self, message: MessageId, user: UserId, emoji: Emoji, on: bool) -> Pending<()> {
        self.write(move |c| react(c, message, user, emoji.as_str(), on))
    }
}

fn react(conn: &Db, id: MessageId, user: UserId, emoji: &str, on: bool) -> Result<Written<()>> {
    let (message, _, _) = for_member(conn, id, user)?;
    let group = message.group_id;
    if message.deleted {
        return Err(Error::conflict("the message was deleted"));
    }
    if let Some(peer) = groups::direct_peer(conn, group, user)? {
        blocks::refuse_if_blocked(conn, peer, user)?;
    }
    let changed = if on {
        let (present, distinct): (bool, i64) = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM reactions WHERE message_id = ?1 AND emoji = ?2),
                        (SELECT count(DISTINCT emoji) FROM reactions WHERE message_id = ?1)",
            args![id, emoji],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if !present && distinct >= MAX_REACTIONS as i64 {
            return Err(Error::Conflict {
                code: "limit_reached",
                message: format!("a message carries at most {MAX_REACTIONS} different emoji"),
            });
        }
        conn.execute(
            "INSERT INTO reactions (message_id, emoji, user_id) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            args![id, emoji, user],
        )?
    } else {
        conn.execute(
            "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
            args![id, emoji, user],
        )?
    };
    if changed == 0 {
        return Ok(written((), Vec::new()));
    }
    let event = Event::new(ServerFrame::MessageReactions {
        id,
        group_id: group,
        reactions: reactions_of(conn, id)?,
    });
    Ok(written((), vec![Outbound::Group(group, event)]))
}
