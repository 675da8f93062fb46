//! What a socket is sent: its subscriptions, the replay on connect, live events, and catch-up.
//!
//! Delivery rule: per conversation the session keeps a cursor, the highest message id it has
//! sent. A message is sent only if its id is above the cursor, so the replay from the database
//! and the live channel can overlap without duplicates; when a channel reports that this socket
//! lagged (the broadcast buffer overflowed), the gap is read back from the database from the
//! cursor. Every message therefore arrives once, in id order, however slowly the socket reads.

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::session::{End, Session, Step};
use crate::hub::{Control, Event, Route};
use crate::model::{GroupId, Message, MessageId};
use crate::protocol::ServerFrame;

/// Messages read from the database per query when replaying or catching up.
const PAGE: u32 = 500;
/// Events sent before one flush when many are ready at once.
const BURST: usize = 256;

impl Session {
    /// Subscribes to the user's conversations, replays what `since` asks for, sends `ready`.
    pub(super) async fn start(&mut self, since: Option<MessageId>) -> Step {
        // The token was checked before this socket registered for its user channel; a sign-out
        // in between reached no socket, so look again now that one would.
        self.still_signed_in().await?;
        let found = self.state.service.store.socket_start(self.user).await;
        // The account was deleted after the token was issued.
        let start = found.map_err(|_| End::Broken)?.ok_or(End::Broken)?;
        self.username = start.username;
        for &g in &start.group_ids {
            // Whatever was published before is read back below (`replay`).
            let _ = self.subscribe(g, since.unwrap_or(start.newest));
        }
        if let Some(since) = since {
            self.replay(since).await?;
        }
        let ready = ServerFrame::Ready {
            user_id: self.user,
            group_ids: start.group_ids,
        };
        self.send_frame(&ready).await?;
        if since.is_none() {
            // A message committed between the read above and the subscriptions is in no
            // channel this socket heard: read it back (almost always there is none).
            self.replay(start.newest).await?;
        }
        self.flush().await
    }

    async fn replay(&mut self, since: MessageId) -> Step {
        let mut after = since;
        loop {
            let store = &self.state.service.store;
            let page = store
                .replay(self.user, after, PAGE)
                .await
                .map_err(|_| End::Broken)?;
            let full = page.len() == PAGE as usize;
            for m in page {
                after = m.id;
                self.send_if_new(m).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends `m` unless this socket already sent it (or anything later of its conversation).
    async fn send_if_new(&mut self, m: Message) -> Step {
        match self.cursors.get_mut(&m.group_id) {
            Some(cursor) if m.id > *cursor => {
                *cursor = m.id;
                self.send_frame(&ServerFrame::GroupMessage(m)).await
            }
            _ => Ok(()),
        }
    }

    /// Sends whatever else the channels already hold, so a burst costs one flush.
    pub(super) async fn drain_ready(&mut self) -> Step {
        for _ in 0..BURST {
            if self.subs.is_empty() {
                break;
            }
            match self.subs.next().now_or_never() {
                Some(Some((group, item))) => self.group_event(group, item).await?,
                _ => break,
            }
        }
        Ok(())
    }

    /// Follows `group` from `cursor` on; true when a message above the cursor was published
    /// before the subscription (so the database must be read for it).
    fn subscribe(&mut self, group: GroupId, cursor: MessageId) -> bool {
        let (rx, newest) = self.state.service.hub.subscribe_group(group);
        self.subs.insert(group, BroadcastStream::new(rx));
        self.cursors.insert(group, cursor);
        newest.is_some_and(|n| n > cursor)
    }

    fn unsubscribe(&mut self, group: GroupId) {
        self.subs.remove(&group);
        self.cursors.remove(&group);
        self.state.service.hub.release_group(group);
    }

    /// Leaves every conversation's channel (the socket is closing).
    pub(super) fn unsubscribe_all(&mut self) {
        let groups: Vec<GroupId> = self.subs.keys().copied().collect();
        for group in groups {
            self.unsubscribe(group);
        }
    }

    pub(super) async fn group_event(
        &mut self,
        group: GroupId,
        item: Result<Arc<Event>, BroadcastStreamRecvError>,
    ) -> Step {
        match item {
            Ok(event) => self.deliver(group, &event).await,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::debug!(user = %self.user, %group, missed, "socket lagged; catching up");
                self.state.metrics.lagged.inc();
                Box::pin(self.catch_up(group)).await
            }
        }
    }

    async fn deliver(&mut self, group: GroupId, event: &Event) -> Step {
        let me = self.user;
        match event.route {
            Route::Message(id) => {
                let cursor = self.cursors.entry(group).or_insert(MessageId(0));
                if id <= *cursor {
                    return Ok(());
                }
                *cursor = id;
            }
            // This socket's own additions arrive on the user channel (see `user_event`).
            Route::MemberAdded { user, .. } if user == me => return Ok(()),
            Route::MemberRemoved { user, .. } if user == me => self.unsubscribe(group),
            Route::GroupDeleted => self.unsubscribe(group),
            Route::Typing(user) if user == me => return Ok(()),
            _ => {}
        }
        self.feed(event.text().clone()).await
    }

    pub(super) async fn user_event(
        &mut self,
        item: Result<Control, broadcast::error::RecvError>,
    ) -> Step {
        let event = match item {
            Ok(Control::Event(event)) => event,
            Ok(Control::AccountClosed) => return Err(End::AccountClosed),
            Ok(Control::SessionsEnded { epoch }) if self.auth.epoch < epoch => {
                return Err(End::SignedOut)
            }
            Ok(Control::SessionEnded(session)) if self.auth.session == Some(session) => {
                return Err(End::SignedOut)
            }
            Ok(Control::SessionsEnded { .. } | Control::SessionEnded(_)) => return Ok(()),
            Ok(Control::Reconnect) => return Err(End::Reconnect),
            // A burst of changes for this user overflowed the channel: find out what was lost.
            Err(broadcast::error::RecvError::Lagged(_)) => return Box::pin(self.resync()).await,
            Err(broadcast::error::RecvError::Closed) => return Err(End::Broken),
        };
        match event.route {
            Route::MemberAdded { group, user, since } if user == self.user => {
                let group_id = group;
                if self.subs.contains_key(&group_id) {
                    return Ok(()); // already told by a resync
                }
                self.feed(event.text().clone()).await?;
                // Added to a conversation: what it says since the addition is read back only if
                // a message was published before this socket subscribed (a group made with its
                // members has none, so a storm of new groups costs no reads).
                if self.subscribe(group_id, since) {
                    Box::pin(self.catch_up(group_id)).await?;
                }
                Ok(())
            }
            Route::MemberRemoved { group, user } if user == self.user => {
                Box::pin(self.removed(group, &event)).await
            }
            _ => self.feed(event.text().clone()).await,
        }
    }

    async fn still_signed_in(&mut self) -> Step {
        let (state, auth) = (Arc::clone(&self.state), self.auth);
        match state.service.still_signed_in(&auth).await {
            Ok(()) => Ok(()),
            Err(crate::error::Error::Unauthenticated(_)) => Err(End::SignedOut),
            Err(_) => Err(End::Broken),
        }
    }

    /// The user channel overflowed, so some of its orders were lost: a sign-out, or joining
    /// and leaving conversations (a stranger can add someone to many groups at once). The
    /// session is checked again, and the subscriptions are brought in line with the database,
    /// the client told of each conversation joined or left as the lost frames would have.
    async fn resync(&mut self) -> Step {
        self.state.metrics.lagged.inc();
        self.still_signed_in().await?;
        let store = &self.state.service.store;
        let now = store
            .socket_start(self.user)
            .await
            .map_err(|_| End::Broken)?;
        let now = now.ok_or(End::AccountClosed)?;
        let left: Vec<GroupId> = (self.subs.keys())
            .filter(|g| !now.group_ids.contains(g))
            .copied()
            .collect();
        for group_id in left {
            self.unsubscribe(group_id);
            let removed = ServerFrame::MemberRemoved {
                group_id,
                user_id: self.user,
            };
            self.send_frame(&removed).await?;
        }
        for (&group_id, &role) in now.group_ids.iter().zip(&now.roles) {
            if self.subs.contains_key(&group_id) {
                continue;
            }
            let added = ServerFrame::MemberAdded {
                group_id,
                user_id: self.user,
                role,
                since: now.newest,
            };
            self.send_frame(&added).await?;
            if self.subscribe(group_id, now.newest) {
                self.catch_up(group_id).await?;
            }
        }
        Ok(())
    }

    /// This user was removed from `group`: the group channel got the removal first, so send
    /// what it holds before it, then the removal, and stop listening.
    async fn removed(&mut self, group: GroupId, removal: &Arc<Event>) -> Step {
        let Some(mut stream) = self.subs.remove(&group) else {
            return Ok(()); // the group channel already told this socket
        };
        while let Some(Some(Ok(earlier))) = stream.next().now_or_never() {
            if Arc::ptr_eq(&earlier, removal) {
                break;
            }
            self.deliver(group, &earlier).await?;
        }
        drop(stream);
        self.unsubscribe(group);
        self.feed(removal.text().clone()).await
    }

    /// Reads a conversation's messages above the cursor back from the database.
    async fn catch_up(&mut self, group: GroupId) -> Step {
        loop {
            let Some(after) = self.cursors.get(&group).copied() else {
                return Ok(());
            };
            let store = &self.state.service.store;
            let page = store
                .catch_up(self.user, group, after, PAGE)
                .await
                .map_err(|_| End::Broken)?;
            let Some(page) = page else {
                // Removed while this socket was behind: say so, and stop listening.
                self.unsubscribe(group);
                let removed = ServerFrame::MemberRemoved {
                    group_id: group,
                    user_id: self.user,
                };
                return self.send_frame(&removed).await;
            };
            let full = page.len() == PAGE as usize;
            for m in page {
                self.send_if_new(m).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }
}
