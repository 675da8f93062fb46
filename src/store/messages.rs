//! Messages: sending (with client_id idempotency), editing, deleting, history pages, and the
//! catch-up reads that let a socket recover what it missed.

use super::db::{args, Arg, Db, Row};

use super::members::{absent_or_forbidden, is_member, role_of};
use super::sqlite::{now, NOW};
use super::writer::Undo;
use super::{blocks, extras, groups, rules, written, Pending, Store, Written};
use crate::error::{Error, Result};
use crate::hub::{Event, Outbound};
use crate::model::{
    AttachmentId, ClientId, Content, GroupId, Kind, Message, MessageId, Posting, ReplyQuote, Role,
    UserId,
};
use crate::protocol::ServerFrame;

/// A message's row and the message it answers (`r`); `fill` adds the rest.
pub(super) const SELECT: &str =
    "SELECT m.id, m.conversation_id, m.sender_id, u.username, m.content,
       m.created_at, m.edited_at, m.deleted, m.client_id,
       m.reply_to, r.sender_id, ru.username, r.content, r.deleted
  FROM messages m LEFT JOIN users u ON u.id = m.sender_id
       LEFT JOIN messages r ON r.id = m.reply_to LEFT JOIN users ru ON ru.id = r.sender_id";

/// What a sender asks to store, checked by the service.
#[derive(Debug)]
pub(crate) struct Draft {
    /// May be empty when there are attachments.
    pub content: Content,
    pub client_id: Option<ClientId>,
    /// At most ten, no repeats.
    pub attachments: Vec<AttachmentId>,
    pub reply_to: Option<MessageId>,
}

/// A send's outcome: a new message, or the one an earlier send with the same client_id stored.
#[derive(Debug)]
pub(crate) enum Sent {
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

/// Which page of a conversation's history.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Page {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: u32,
}

/// What a socket reads when it opens.
pub(crate) struct SocketStart {
    pub username: String,
    pub group_ids: Vec<GroupId>,
    /// The user's role in each of `group_ids`, in the same order.
    pub roles: Vec<Role>,
    /// The newest message id of all conversations: live delivery starts above it.
    pub newest: MessageId,
}

impl Store {
    /// Stores a message from a member of `group`.
    pub fn send(&self, group: GroupId, sender: UserId, draft: Draft) -> Pending<Sent> {
        // Without attachments, everything a send checks is read before its insert, and only
        // its mentions are written after it (they fail only if the database does, and then
        // the writer refuses the batch): it needs no savepoint.
        let undo = match draft.attachments.is_empty() {
            true => Undo::Statement,
            false => Undo::Savepoint,
        };
        self.write_keeping_rules(move |c| send(c, group, sender, &draft), undo)
    }

    /// Sends to the direct conversation of `sender` and `other`, creating it first if needed.
    pub fn send_direct(&self, sender: UserId, other: UserId, draft: Draft) -> Pending<Sent> {
        let caps = self.caps;
        self.write(move |c| {
            let conversation = groups::direct(c, caps, sender, other)?;
            let mut sent = send(c, conversation.value.0.id, sender, &draft)?;
            let mut events = conversation.events;
            events.append(&mut sent.events);
            sent.events = events;
            Ok(sent)
        })
    }

    /// The sender changes a message's content; members receive `message_edited`.
    pub fn edit_message(&self, id: MessageId, user: UserId, content: Content) -> Pending<Message> {
        self.write(move |c| edit(c, id, user, &content))
    }

    /// The sender, or a group's owner or admin, deletes a message: it stays in history as a
    /// tombstone (empty content, `deleted: true`) and members receive `message_deleted`.
    /// Deleting it again changes nothing and sends nothing.
    pub fn delete_message(&self, id: MessageId, user: UserId) -> Pending<()> {
        self.write(move |c| delete(c, id, user))
    }

    pub async fn history(
        &self,
        group: GroupId,
        user: UserId,
        page: Page,
    ) -> Result<(Vec<Message>, bool)> {
        self.read(move |c| history(c, group, user, page)).await
    }

    /// The history of the caller's direct conversation with `other` (empty if they never wrote).
    pub async fn direct_history(
        &self,
        user: UserId,
        other: UserId,
        page: Page,
    ) -> Result<(Vec<Message>, bool)> {
        self.read(move |c| match groups::direct_between(c, user, other)? {
            Some(group) => history(c, group, user, page),
            None => Ok((Vec::new(), false)),
        })
        .await
    }

    /// `None` when the account is gone.
    pub async fn socket_start(&self, user: UserId) -> Result<Option<SocketStart>> {
        self.read(move |c| {
            let Some(profile) = super::users::profile(c, user)? else {
                return Ok(None);
            };
            let newest =
                c.query_row("SELECT coalesce(max(id), 0) FROM messages", args![], |r| {
                    r.get(0)
                })?;
            let (group_ids, roles) = super::members::roles_of(c, user)?.into_iter().unzip();
            Ok(Some(SocketStart {
                username: profile.username,
                group_ids,
                roles,
                newest,
            }))
        })
        .await
    }

    /// Messages with id > `after` in every conversation `user` is in, ascending (socket replay).
    pub async fn replay(&self, user: UserId, after: MessageId, limit: u32) -> Result<Vec<Message>> {
        self.read(move |c| {
            let sql = format!(
                "{SELECT} JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = ?1
                 WHERE m.id > ?2 ORDER BY m.id ASC LIMIT ?3"
            );
            load(c, &sql, args![user, after, limit])
        })
        .await
    }

    /// Messages of one conversation with id > `after`, ascending; `None` when `user` is no
    /// longer a member (a lagging socket's catch-up).
    pub async fn catch_up(
        &self,
        user: UserId,
        group: GroupId,
        after: MessageId,
        limit: u32,
    ) -> Result<Option<Vec<Message>>> {
        self.read(move |c| {
            if !is_member(c, group, user)? {
                return Ok(None);
            }
            let sql = format!(
                "{SELECT} WHERE m.conversation_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3"
            );
            Ok(Some(load(c, &sql, args![group, after, limit])?))
        })
        .await
    }
}

/// The messages `sql` (a `SELECT …` query) finds, with everything they carry.
pub(super) fn load(conn: &Db, sql: &str, args: &[&dyn Arg]) -> Result<Vec<Message>> {
    let mut messages = conn.query_map(sql, args, message_row)?;
    extras::fill(conn, &mut messages)?;
    Ok(messages)
}

fn message_row(r: &Row) -> Result<Message> {
    let reply_to = match r.get::<Option<MessageId>>(9)? {
        None => None,
        Some(_) => Some(quote_row(r, 9)?),
    };
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
        attachments: Vec::new(),
        reply_to,
        reactions: Vec::new(),
        mentions: Vec::new(),
    })
}

/// The quote of the answered message from its columns at `start`: id, sender id, sender's
/// username, content, deleted (all null when it is gone).
pub(super) fn quote_row(r: &Row, start: usize) -> Result<ReplyQuote> {
    Ok(ReplyQuote::new(
        r.get(start)?,
        r.get(start + 1)?,
        r.get(start + 2)?,
        r.get::<Option<String>>(start + 3)?.as_deref(),
        r.get(start + 4)?,
    ))
}

pub(super) fn by_id(conn: &Db, id: MessageId) -> Result<Option<Message>> {
    let sql = format!("{SELECT} WHERE m.id = ?1");
    Ok(load(conn, &sql, args![id])?.pop())
}

fn send(conn: &Db, group: GroupId, sender: UserId, draft: &Draft) -> Result<Written<Sent>> {
    let now = now();
    let Some(Poster { username, peer }) = may_post(conn, group, sender, &now)? else {
        return Err(absent_or_forbidden(conn, group)?);
    };
    if let Some(peer) = peer {
        blocks::refuse_if_blocked(conn, peer, sender)?;
    }
    let client_id = draft.client_id.as_ref().map(ClientId::as_str);
    if let Some(client_id) = client_id {
        let sql = format!(
            "{SELECT} WHERE m.conversation_id = ?1 AND m.sender_id = ?2 AND m.client_id = ?3"
        );
        if let Some(earlier) = load(conn, &sql, args![group, sender, client_id])?.pop() {
            return Ok(written(Sent::Repeat(earlier), Vec::new()));
        }
    }
    let reply_to = match draft.reply_to {
        Some(answered) => Some(extras::reply_quote(conn, group, answered)?),
        None => None,
    };
    let content = draft.content.as_str();
    let insert = "INSERT INTO messages
                      (conversation_id, sender_id, content, client_id, reply_to, created_at)
                  VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    let values = args![group, sender, content, client_id, draft.reply_to, now];
    // On SQLite the new row's id is the connection's last one: no RETURNING, which SQLite
    // runs through a temporary table of its own. Being new, it waits for the search index
    // (above the mark, migration V8) with nothing more to write.
    let id = match conn.lite() {
        Some(lite) => {
            conn.execute(insert, values)?;
            MessageId(lite.last_insert_rowid())
        }
        None => conn.query_row(&format!("{insert} RETURNING id"), values, |r| r.get(0))?,
    };
    let attachments = extras::attach(conn, id, sender, &draft.attachments)?;
    let mentions = extras::set_mentions(conn, id, group, sender, content, false)?;
    let message = Message {
        id,
        group_id: group,
        sender_id: Some(sender),
        sender_username: Some(username),
        content: content.to_string(),
        timestamp: now,
        edited_at: None,
        deleted: false,
        client_id: client_id.map(str::to_string),
        attachments,
        reply_to,
        reactions: Vec::new(),
        mentions,
    };
    let event = Event::new(ServerFrame::GroupMessage(message.clone()));
    Ok(written(
        Sent::New(message),
        vec![Outbound::Group(group, event)],
    ))
}

/// Who is posting: their name for the message, and in a direct conversation the other one.
struct Poster {
    username: String,
    peer: Option<UserId>,
}

/// The sender if they may post in `group` at `now` (`None` when not a member): members of an
/// announcement group may not, nor may a muted member until their mute ends. Edits follow the
/// same rule, so neither can be got round by rewriting an old message. It runs in the writer
/// for every send, from the rules the writer keeps (`rules`).
fn may_post(conn: &Db, group: GroupId, sender: UserId, now: &str) -> Result<Option<Poster>> {
    let Some(rule) = rules::of(conn, group, sender)? else {
        return Ok(None);
    };
    if rule.posting == Posting::Admins && rule.role == Role::Member {
        return Err(Error::Forbidden {
            code: "read_only",
            message: "only the owner and admins post in this group".into(),
        });
    }
    // Both are the API's time format, so their order as text is their order in time.
    if let Some(until) = rule.muted_until.filter(|until| until.as_str() > now) {
        return Err(Error::Forbidden {
            code: "muted",
            message: format!("you are muted in this group until {until}"),
        });
    }
    Ok(Some(Poster {
        username: rule.username,
        peer: rule.peer,
    }))
}

/// A page of history in ascending id order, and whether more lie beyond it in the direction
/// the page was read (older for none/`before`, newer for `after`).
fn history(conn: &Db, group: GroupId, user: UserId, page: Page) -> Result<(Vec<Message>, bool)> {
    role_of(conn, group, user)?;
    let fetch = i64::from(page.limit) + 1;
    let before = page.before.map_or(i64::MAX, |m| m.0);
    let mut messages: Vec<Message> = if let Some(after) = page.after {
        let sql = format!(
            "{SELECT} WHERE m.conversation_id = ?1 AND m.id > ?2 AND m.id < ?3
             ORDER BY m.id ASC LIMIT ?4"
        );
        load(conn, &sql, args![group, after, before, fetch])?
    } else {
        let sql = format!(
            "{SELECT} WHERE m.conversation_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
        );
        let mut newest_first = load(conn, &sql, args![group, before, fetch])?;
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

/// The message and the caller's role in its conversation: not found when there is no such
/// message, forbidden when the caller is not in its conversation.
pub(super) fn for_member(conn: &Db, id: MessageId, user: UserId) -> Result<(Message, Role, Kind)> {
    let message = by_id(conn, id)?.ok_or_else(|| Error::not_found("no such message"))?;
    let role = role_of(conn, message.group_id, user)?;
    let kind: Kind = conn.query_row(
        "SELECT kind FROM conversations WHERE id = ?1",
        args![message.group_id],
        |r| r.get(0),
    )?;
    Ok((message, role, kind))
}

fn edit(conn: &Db, id: MessageId, user: UserId, content: &Content) -> Result<Written<Message>> {
    let (message, _, _) = for_member(conn, id, user)?;
    if message.sender_id != Some(user) {
        return Err(Error::forbidden("only the sender can edit a message"));
    }
    if message.deleted {
        return Err(Error::conflict("the message was deleted"));
    }
    let poster = may_post(conn, message.group_id, user, &now())?;
    // Blocked is blocked for rewriting old messages too.
    if let Some(peer) = poster.and_then(|p| p.peer) {
        blocks::refuse_if_blocked(conn, peer, user)?;
    }
    conn.execute(
        &format!("UPDATE messages SET content = ?2, edited_at = {NOW} WHERE id = ?1"),
        args![id, content.as_str()],
    )?;
    extras::set_mentions(conn, id, message.group_id, user, content.as_str(), true)?;
    let edited = by_id(conn, id)?.ok_or_else(|| Error::not_found("no such message"))?;
    let event = Event::new(ServerFrame::MessageEdited {
        id: edited.id,
        group_id: edited.group_id,
        content: edited.content.clone(),
        edited_at: edited.edited_at.clone(),
        mentions: edited.mentions.clone(),
    });
    let group = edited.group_id;
    Ok(written(edited, vec![Outbound::Group(group, event)]))
}

fn delete(conn: &Db, id: MessageId, user: UserId) -> Result<Written<()>> {
    let (message, role, kind) = for_member(conn, id, user)?;
    let moderates = kind == Kind::Group && role.manages();
    if message.sender_id != Some(user) && !moderates {
        return Err(Error::forbidden(
            "only the sender or the group's owner or an admin can delete a message",
        ));
    }
    if message.deleted {
        return Ok(written((), Vec::new()));
    }
    conn.execute(
        "UPDATE messages SET content = '', deleted = 1 WHERE id = ?1",
        args![id],
    )?;
    extras::clear(conn, id)?;
    let event = Event::new(ServerFrame::MessageDeleted {
        id,
        group_id: message.group_id,
    });
    Ok(written((), vec![Outbound::Group(message.group_id, event)]))
}
