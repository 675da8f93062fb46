//! Messages: sending (over HTTP and the socket alike), editing, deleting, reading history,
//! searching, and typing.

use tokio::sync::{Semaphore, SemaphorePermit};

use super::conversations::other_user;
use super::Service;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::hub::{Event, Outbound};
use crate::limits::{Slot, Slots};
use crate::model::{
    page_limit, search_text, AttachmentId, ClientId, Content, Emoji, GroupId, Message, MessageId,
    UserId, MAX_ATTACHMENTS,
};
use crate::protocol::ServerFrame;
use crate::store::{Draft, Page, Pending, Sent};

/// Which page of history, as asked: `limit` is checked here.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PageQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: Option<u32>,
}

impl PageQuery {
    fn checked(self) -> Result<Page> {
        Ok(Page {
            before: self.before,
            after: self.after,
            limit: page_limit(self.limit)?,
        })
    }
}

/// Searches running: at most `PER_USER` per user (more are refused), and at most half the
/// read pool's connections in all (more wait), so searches never keep other reads waiting.
pub(super) struct Searches {
    running: Slots,
    all: Semaphore,
}

const PER_USER: usize = 2;

impl Default for Searches {
    fn default() -> Searches {
        Searches {
            running: Slots::new(PER_USER),
            all: Semaphore::new(crate::store::READ_POOL / 2),
        }
    }
}

/// A running search's place; given back when dropped (the user's place also while the search
/// still waits for a permit, when its client went away).
pub(super) struct Turn<'a> {
    _slot: Slot<'a>,
    _permit: SemaphorePermit<'a>,
}

impl Searches {
    async fn start(&self, user: UserId) -> Result<Turn<'_>> {
        let slot = self.running.take_or_refuse(user, "searches")?;
        match self.all.acquire().await {
            Ok(permit) => Ok(Turn {
                _slot: slot,
                _permit: permit,
            }),
            Err(_) => Err(Error::unavailable("the server is stopping")),
        }
    }
}

/// A send as a client asks for it, over HTTP or the socket.
#[derive(Debug, Default)]
pub(crate) struct NewMessage<'a> {
    /// Required unless there are attachments.
    pub content: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub attachment_ids: &'a [AttachmentId],
    pub reply_to: Option<MessageId>,
}

impl NewMessage<'_> {
    /// The same rules for every way in: the content trimmed (and only then allowed to be
    /// empty when there are attachments), the client_id, at most ten attachments, no repeats.
    fn checked(&self) -> Result<Draft> {
        let ids = self.attachment_ids;
        if ids.len() > MAX_ATTACHMENTS {
            return Err(Error::invalid(
                "invalid_attachment",
                format!("a message carries at most {MAX_ATTACHMENTS} attachments"),
            ));
        }
        if ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id)) {
            return Err(Error::invalid(
                "invalid_attachment",
                "an attachment is given twice",
            ));
        }
        let content = match (self.content, ids.is_empty()) {
            (Some(text), true) => Content::parse(text)?,
            (text, false) => Content::parse_beside_attachments(text.unwrap_or(""))?,
            // As before attachments: a send without content is a malformed body.
            (None, true) => {
                return Err(Error::invalid(
                    "invalid_json",
                    "missing field `content` (it may only be left out beside attachment_ids)",
                ))
            }
        };
        Ok(Draft {
            content,
            client_id: ClientId::parse(self.client_id)?,
            attachments: ids.to_vec(),
            reply_to: self.reply_to,
        })
    }
}

impl Service {
    /// Checks and queues a send now (so one client's sends keep their order); the result
    /// comes with the commit. A repeated `client_id` gives back the first message.
    pub fn send(&self, user: AuthUser, group: GroupId, message: &NewMessage) -> Pending<Sent> {
        match message.checked() {
            Ok(draft) => self.store.send(group, user.id, draft),
            Err(e) => Pending::refused(e),
        }
    }

    /// Sends to the direct conversation with `other`, creating it if needed.
    pub async fn send_direct(
        &self,
        user: AuthUser,
        other: UserId,
        message: &NewMessage<'_>,
    ) -> Result<Sent> {
        let other = other_user(user, other)?;
        let draft = message.checked()?;
        self.store.send_direct(user.id, other, draft).await
    }

    /// Adds (`on`) or takes back the caller's reaction `emoji` on a message.
    pub async fn react(
        &self,
        user: AuthUser,
        message: MessageId,
        emoji: &str,
        on: bool,
    ) -> Result<()> {
        let emoji = Emoji::parse(emoji)?;
        self.store.react(message, user.id, emoji, on).await
    }

    /// The sender changes a message's content.
    pub async fn edit(&self, user: AuthUser, message: MessageId, content: &str) -> Result<Message> {
        let content = Content::parse(content)?;
        self.store.edit_message(message, user.id, content).await
    }

    /// The sender, or a group's owner or admin, deletes a message, leaving a tombstone.
    pub async fn delete_message(&self, user: AuthUser, message: MessageId) -> Result<()> {
        self.store.delete_message(message, user.id).await
    }

    pub async fn history(
        &self,
        user: AuthUser,
        group: GroupId,
        page: PageQuery,
    ) -> Result<(Vec<Message>, bool)> {
        self.store.history(group, user.id, page.checked()?).await
    }

    /// The history with `other`; an empty page while the two have never written.
    pub async fn direct_history(
        &self,
        user: AuthUser,
        other: UserId,
        page: PageQuery,
    ) -> Result<(Vec<Message>, bool)> {
        let other = other_user(user, other)?;
        self.store
            .direct_history(user.id, other, page.checked()?)
            .await
    }

    /// Messages of the caller's conversations containing every word of `query`, newest first.
    pub async fn search(
        &self,
        user: AuthUser,
        query: &str,
        group: Option<GroupId>,
        limit: Option<u32>,
    ) -> Result<Vec<Message>> {
        let query = search_text(query)?.to_string();
        let limit = page_limit(limit)?;
        let _turn = self.searches.start(user.id).await?;
        let budget = self.config.search_timeout;
        self.store
            .search_messages(user.id, query, group, limit, budget)
            .await
    }

    /// Tells the other members of `group` that `user` is typing; never stored. The caller
    /// (the socket) has checked that the user is a member and limits how often.
    pub fn typing(&self, user: UserId, username: &str, group: GroupId) {
        let event = Event::new(ServerFrame::Typing {
            group_id: group,
            user_id: user,
            username: username.to_string(),
        });
        self.bus.publish(Outbound::Group(group, event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_runs_at_most_two_searches_and_a_finished_one_frees_its_turn() {
        let searches = Searches::default();
        let (ava, mike) = (UserId(1), UserId(2));
        let first = searches.start(ava).await.unwrap();
        let _second = searches.start(ava).await.unwrap();
        let third = searches.start(ava).await.err().expect("a third is refused");
        assert_eq!(third.code(), "rate_limited");
        assert!(
            searches.start(mike).await.is_ok(),
            "others have their own turns"
        );
        drop(first);
        assert!(searches.start(ava).await.is_ok());
    }

    #[tokio::test]
    async fn a_search_abandoned_while_waiting_gives_its_turn_back() {
        let searches = Searches::default();
        let ava = UserId(1);
        // Every shared permit taken by others: Ava's search waits, and its client goes away.
        let shared = crate::store::READ_POOL / 2;
        let others: Vec<_> = (10..10 + shared as i64)
            .map(|u| searches.start(UserId(u)))
            .collect();
        let mut held = Vec::new();
        for t in others {
            held.push(t.await.unwrap());
        }
        for _ in 0..PER_USER {
            let waiting = searches.start(ava);
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(10), waiting)
                    .await
                    .is_err(),
                "waits while every permit is taken"
            );
        }
        drop(held);
        assert!(
            searches.start(ava).await.is_ok(),
            "the abandoned turns came back"
        );
    }
}
