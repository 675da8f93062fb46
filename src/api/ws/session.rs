//! One socket's task. It owns the socket and selects over its inbound frames, its
//! conversations' hub channels, its user's channel, the answers to its own sends, a heartbeat
//! and shutdown.
//!
//! Delivery rule: per conversation the session keeps a cursor, the highest message id it has
//! sent. A message is sent only if its id is above the cursor, so the replay from the database
//! and the live channel can overlap without duplicates; when a channel reports that this socket
//! lagged (the broadcast buffer overflowed), the gap is read back from the database from the
//! cursor. Every message therefore arrives once, in id order, however slowly the socket reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::api::messages::{submit_send, SendBody};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::hub::{Connection, Event, EventKind, Outbound, UserReceivers};
use crate::ids::{GroupId, MessageId, UserId};
use crate::store::messages::{self, Message, Sent};
use crate::store::written;
use crate::store::{groups, users};

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Sends of one socket waiting for their commit; more are refused until some are answered.
const MAX_IN_FLIGHT: usize = 64;
/// Messages read from the database per query when replaying or catching up.
const PAGE: u32 = 500;
/// Events sent before one flush when many are ready at once.
const BURST: usize = 256;
/// At most one `typing` event per socket and conversation in this window; more are dropped.
const TYPING_EVERY: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Send {
        group_id: GroupId,
        content: String,
        client_id: Option<String>,
    },
    Typing {
        group_id: GroupId,
    },
    Read {
        group_id: GroupId,
        message_id: MessageId,
    },
    Ping,
}

/// Why the loop ended, and so which close frame the client gets.
enum End {
    ClientClosed,
    Shutdown,
    TooBig,
    Lagged,
    Idle,
    /// The client stopped reading: a write waited longer than the idle limit.
    Stuck,
    AccountClosed,
    /// A frame broke the WebSocket protocol (1002) or was text that is not UTF-8 (1007).
    Protocol(CloseCode),
    Broken,
}

pub struct Session {
    state: Arc<AppState>,
    user: UserId,
    username: String,
    ws: Socket,
    subs: StreamMap<GroupId, BroadcastStream<Arc<Event>>>,
    cursors: HashMap<GroupId, MessageId>,
    /// This socket's writes waiting for their commit, each yielding its answer (`None`:
    /// nothing to say). Polled by this task: no task or channel per socket until it writes.
    pending: FuturesUnordered<BoxFuture<'static, Option<Utf8Bytes>>>,
    last_heard: Instant,
    last_typing: HashMap<GroupId, Instant>,
    /// Frames fed since the last flush; added to the shared metric once per flush, not once
    /// per frame, so a thousand sockets do not all contend on one counter.
    fed: u64,
}

type Step = Result<(), End>;

impl Session {
    /// `registration` was taken from the hub before the upgrade and before memberships are
    /// read, so a membership change committed after the read still reaches this socket through
    /// the user channel.
    pub async fn run(
        state: Arc<AppState>,
        user: UserId,
        since: Option<MessageId>,
        ws: Socket,
        registration: (UserReceivers, Connection),
    ) {
        let (receivers, registration) = registration;
        let mut session = Session {
            state: Arc::clone(&state),
            user,
            username: String::new(),
            ws,
            subs: StreamMap::new(),
            cursors: HashMap::new(),
            pending: FuturesUnordered::new(),
            last_heard: Instant::now(),
            last_typing: HashMap::new(),
            fed: 0,
        };
        state.metrics.open_sockets.inc();
        if registration.first {
            announce_online(&state, user).await;
        }
        let end = match session.start(since).await {
            Ok(()) => session.serve(receivers).await,
            Err(end) => end,
        };
        session.close(end).await;
        state.metrics.open_sockets.dec();
        if registration.release() {
            announce_offline(&state, user).await;
        }
    }

    /// Subscribes to the user's conversations, replays what `since` asks for, sends `ready`.
    async fn start(&mut self, since: Option<MessageId>) -> Step {
        let user = self.user;
        let (group_ids, newest, profile) = self
            .state
            .store
            .read(move |c| {
                let profile = users::profile(c, user)?;
                Ok((groups::ids_of(c, user)?, messages::newest_id(c)?, profile))
            })
            .await
            .map_err(|_| End::Broken)?;
        // The account was deleted after the token was issued.
        self.username = profile.ok_or(End::Broken)?.username;
        for &g in &group_ids {
            self.subscribe(g, since.unwrap_or(newest));
        }
        if let Some(since) = since {
            self.replay(since).await?;
        }
        let ready = json!({"type": "ready", "user_id": user, "group_ids": group_ids});
        self.send_json(&ready).await?;
        if since.is_none() {
            // A message committed between the read above and the subscriptions is in no
            // channel this socket heard: read it back (almost always there is none).
            self.replay(newest).await?;
        }
        self.flush().await
    }

    async fn replay(&mut self, since: MessageId) -> Step {
        let mut after = since;
        loop {
            let user = self.user;
            let page = self
                .state
                .store
                .read(move |c| messages::replay_for_user(c, user, after, PAGE))
                .await
                .map_err(|_| End::Broken)?;
            for m in &page {
                after = m.id;
                self.send_if_new(m).await?;
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Sends `m` unless this socket already sent it (or anything later of its conversation).
    async fn send_if_new(&mut self, m: &Message) -> Step {
        match self.cursors.get_mut(&m.group_id) {
            Some(cursor) if m.id > *cursor => {
                *cursor = m.id;
                self.send_message(m).await
            }
            _ => Ok(()),
        }
    }

    async fn serve(&mut self, mut receivers: UserReceivers) -> End {
        let shutdown = self.state.shutdown.clone();
        let mut heartbeat = tokio::time::interval(self.state.config.ws_ping_interval);
        heartbeat.reset();
        loop {
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Err(End::Shutdown),
                Some(answer) = self.pending.next(), if !self.pending.is_empty() => {
                    match answer {
                        Some(text) => self.feed(text).await,
                        None => Ok(()),
                    }
                }
                frame = self.ws.next() => self.inbound(frame).await,
                Some((group, item)) = self.subs.next(), if !self.subs.is_empty() => {
                    self.group_event(group, item).await
                }
                item = receivers.control.recv() => self.user_event(item).await,
                item = receivers.presence.recv() => match item {
                    Ok(event) => self.feed(event.text.clone()).await,
                    // Presence is best effort: a socket that fell behind skips some.
                    Err(broadcast::error::RecvError::Lagged(_)) => Ok(()),
                    Err(broadcast::error::RecvError::Closed) => Err(End::Broken),
                },
                _ = heartbeat.tick() => self.heartbeat().await,
            };
            let step = match step {
                Ok(()) => self.drain_ready().await,
                err => err,
            };
            if let Err(end) = step.and(self.flush().await) {
                return end;
            }
        }
    }

    /// Sends whatever else the channels already hold, so a burst costs one flush.
    async fn drain_ready(&mut self) -> Step {
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

    fn subscribe(&mut self, group: GroupId, cursor: MessageId) {
        let rx = self.state.hub.subscribe_group(group);
        self.subs.insert(group, BroadcastStream::new(rx));
        self.cursors.insert(group, cursor);
    }

    fn unsubscribe(&mut self, group: GroupId) {
        self.subs.remove(&group);
        self.cursors.remove(&group);
    }

    async fn group_event(
        &mut self,
        group: GroupId,
        item: Result<Arc<Event>, BroadcastStreamRecvError>,
    ) -> Step {
        match item {
            Ok(event) => self.deliver(group, &event).await,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::debug!(user = %self.user, %group, missed, "socket lagged; catching up");
                self.state.metrics.lagged.inc();
                self.catch_up(group).await
            }
        }
    }

    async fn deliver(&mut self, group: GroupId, event: &Event) -> Step {
        let me = self.user;
        match event.kind {
            EventKind::Message { id } => {
                let cursor = self.cursors.entry(group).or_insert(MessageId(0));
                if id <= *cursor {
                    return Ok(());
                }
                *cursor = id;
            }
            // This socket's own additions arrive on the user channel (see `user_event`).
            EventKind::MemberAdded { user_id, .. } if user_id == me => return Ok(()),
            EventKind::MemberRemoved { user_id } if user_id == me => self.unsubscribe(group),
            EventKind::GroupDeleted => self.unsubscribe(group),
            EventKind::Typing { user_id } if user_id == me => return Ok(()),
            _ => {}
        }
        self.feed(event.text.clone()).await
    }

    async fn user_event(&mut self, item: Result<Arc<Event>, broadcast::error::RecvError>) -> Step {
        let event = match item {
            Ok(event) => event,
            // Membership changes may have been lost: the client must reconnect with `since`.
            Err(_) => return Err(End::Lagged),
        };
        let group = event.group_id;
        match event.kind {
            EventKind::AccountClosed => Err(End::AccountClosed),
            EventKind::MemberAdded { user_id, since } if user_id == self.user => {
                self.feed(event.text.clone()).await?;
                if !self.subs.contains_key(&group) {
                    self.subscribe(group, since);
                    self.catch_up(group).await?;
                }
                Ok(())
            }
            EventKind::MemberRemoved { user_id } if user_id == self.user => {
                let Some(mut stream) = self.subs.remove(&group) else {
                    return Ok(()); // the group channel already told this socket
                };
                // The group channel got the removal first: send what it holds before it.
                while let Some(Some(Ok(earlier))) = stream.next().now_or_never() {
                    if earlier.kind == event.kind {
                        break;
                    }
                    self.deliver(group, &earlier).await?;
                }
                self.cursors.remove(&group);
                self.feed(event.text.clone()).await
            }
            _ => self.feed(event.text.clone()).await,
        }
    }

    /// Reads a conversation's messages above the cursor back from the database.
    async fn catch_up(&mut self, group: GroupId) -> Step {
        loop {
            let (user, after) = (self.user, self.cursors.get(&group).copied());
            let Some(after) = after else { return Ok(()) };
            let page = self
                .state
                .store
                .read(move |c| messages::catch_up(c, user, group, after, PAGE))
                .await
                .map_err(|_| End::Broken)?;
            let Some(page) = page else {
                // Removed while this socket was behind: say so, and stop listening.
                self.unsubscribe(group);
                let removed = json!({"type": "member_removed", "group_id": group, "user_id": user});
                return self.send_json(&removed).await;
            };
            for m in &page {
                self.send_if_new(m).await?;
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    async fn inbound(&mut self, frame: Option<Result<Frame, WsError>>) -> Step {
        let frame = match frame {
            None => return Err(End::ClientClosed),
            Some(Err(WsError::Capacity(_))) => return Err(End::TooBig),
            Some(Err(WsError::Utf8(_))) => return Err(End::Protocol(CloseCode::Invalid)),
            Some(Err(WsError::Protocol(_))) => return Err(End::Protocol(CloseCode::Protocol)),
            Some(Err(_)) => return Err(End::Broken),
            Some(Ok(frame)) => frame,
        };
        self.last_heard = Instant::now();
        match frame {
            Frame::Text(text) => self.client_frame(&text).await,
            Frame::Binary(_) => {
                let err = ApiError::invalid("invalid_json", "send JSON text frames, not binary");
                self.send_error(&err, None).await
            }
            Frame::Close(_) => Err(End::ClientClosed),
            Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_) => Ok(()),
        }
    }

    async fn client_frame(&mut self, text: &str) -> Step {
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let err = ApiError::invalid("invalid_json", format!("frame is not JSON: {e}"));
                return self.send_error(&err, None).await;
            }
        };
        if !value.is_object() {
            let err = ApiError::invalid("invalid_json", "a frame is a JSON object with a \"type\"");
            return self.send_error(&err, None).await;
        }
        let client_id = value
            .get("client_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let frame = match ClientFrame::deserialize(value) {
            Ok(frame) => frame,
            Err(e) => {
                let err = ApiError::invalid("invalid_json", format!("bad frame: {e}"));
                return self.send_error(&err, client_id.as_deref()).await;
            }
        };
        match frame {
            ClientFrame::Ping => self.send_json(&json!({"type": "pong"})).await,
            ClientFrame::Send {
                group_id,
                content,
                client_id,
            } => self.send(group_id, content, client_id).await,
            ClientFrame::Typing { group_id } => self.typing(group_id).await,
            ClientFrame::Read {
                group_id,
                message_id,
            } => self.read(group_id, message_id).await,
        }
    }

    /// Tells the other members; never stored, and at most once per `TYPING_EVERY`.
    async fn typing(&mut self, group: GroupId) -> Step {
        if !self.subs.contains_key(&group) {
            let err = not_member(&self.state, group).await;
            return self.send_error(&err, None).await;
        }
        let now = Instant::now();
        if let Some(last) = self.last_typing.get(&group) {
            if now.duration_since(*last) < TYPING_EVERY {
                return Ok(());
            }
        }
        self.last_typing.insert(group, now);
        let frame = json!({
            "type": "typing", "group_id": group, "user_id": self.user, "username": self.username,
        });
        let kind = EventKind::Typing { user_id: self.user };
        let event = Event::new(group, kind, &frame);
        self.state
            .hub
            .publish(Outbound::Group(group, Arc::new(event)));
        Ok(())
    }

    async fn read(&mut self, group: GroupId, message: MessageId) -> Step {
        if let Some(full) = self.refuse_if_full(None).await {
            return full;
        }
        let user = self.user;
        let pending = self
            .state
            .store
            .submit(move |c| groups::mark_read(c, group, user, message));
        self.answer_later(pending, None, |_: ()| None).await
    }

    /// Queues the send now (keeping this socket's order) and answers when it is committed.
    async fn send(&mut self, group: GroupId, content: String, client_id: Option<String>) -> Step {
        if let Some(full) = self.refuse_if_full(client_id.as_deref()).await {
            return full;
        }
        let user = AuthUser { id: self.user };
        let body = SendBody {
            content,
            client_id: client_id.clone(),
        };
        let pending = submit_send(&self.state, user, group, body);
        self.answer_later(pending, client_id, |sent| Some(ack(&sent)))
            .await
    }

    /// Refuses a write while too many of this socket's writes wait for their commit. Checked
    /// before anything is queued, so a refused write is never stored.
    async fn refuse_if_full(&mut self, client_id: Option<&str>) -> Option<Step> {
        if self.pending.len() < MAX_IN_FLIGHT {
            return None;
        }
        let err = ApiError::rate_limited("too many writes waiting; wait for their answers", None);
        Some(self.send_error(&err, client_id).await)
    }

    /// Keeps a queued write until its commit, then answers: with `ok(result)` on success, with
    /// an error frame (naming `client_id`) on failure.
    async fn answer_later<T, F>(
        &mut self,
        pending: Result<F, ApiError>,
        client_id: Option<String>,
        ok: impl FnOnce(T) -> Option<Utf8Bytes> + Send + 'static,
    ) -> Step
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let pending = match pending {
            Ok(pending) => pending,
            Err(err) => return self.send_error(&err, client_id.as_deref()).await,
        };
        self.pending.push(Box::pin(async move {
            match pending.await {
                Ok(value) => ok(value),
                Err(err) => Some(error_frame(&err, client_id.as_deref())),
            }
        }));
        Ok(())
    }

    async fn heartbeat(&mut self) -> Step {
        // A socket that sends nothing, not even a pong, for 2.5 ping intervals is dead.
        if self.last_heard.elapsed() > self.idle_limit() {
            return Err(End::Idle);
        }
        let (limit, shutdown) = (self.idle_limit(), self.state.shutdown.clone());
        bounded(
            self.ws.feed(Frame::Ping(Default::default())),
            limit,
            &shutdown,
        )
        .await
    }

    async fn send_message(&mut self, m: &Message) -> Step {
        self.send_json(&m.frame()).await
    }

    async fn send_json(&mut self, value: &impl serde::Serialize) -> Step {
        let text = serde_json::to_string(value).map_err(|_| End::Broken)?;
        self.feed(Utf8Bytes::from(text)).await
    }

    async fn send_error(&mut self, err: &ApiError, client_id: Option<&str>) -> Step {
        self.feed(error_frame(err, client_id)).await
    }

    fn idle_limit(&self) -> Duration {
        self.state.config.ws_ping_interval.mul_f32(2.5)
    }

    async fn feed(&mut self, text: Utf8Bytes) -> Step {
        self.fed += 1;
        let (limit, shutdown) = (self.idle_limit(), self.state.shutdown.clone());
        bounded(self.ws.feed(Frame::Text(text)), limit, &shutdown).await
    }

    async fn flush(&mut self) -> Step {
        if self.fed > 0 {
            self.state.metrics.deliveries.inc_by(self.fed);
            self.fed = 0;
        }
        let (limit, shutdown) = (self.idle_limit(), self.state.shutdown.clone());
        bounded(self.ws.flush(), limit, &shutdown).await
    }

    async fn close(mut self, end: End) {
        let (code, reason) = match end {
            End::ClientClosed => (CloseCode::Normal, ""),
            End::Shutdown => (CloseCode::Away, "server shutting down"),
            End::TooBig => (CloseCode::Size, "message too big"),
            End::Lagged => {
                self.state.metrics.slow_closed.inc();
                (CloseCode::Again, "too far behind; reconnect with since")
            }
            End::Stuck => {
                self.state.metrics.slow_closed.inc();
                (CloseCode::Again, "not reading; reconnect with since")
            }
            End::Protocol(code) => (code, "protocol error"),
            End::Idle => (CloseCode::Away, "no answer to pings"),
            End::AccountClosed => (CloseCode::Policy, "account deleted"),
            End::Broken => return,
        };
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let closing = self.ws.close(Some(frame));
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

fn ack(sent: &Sent) -> Utf8Bytes {
    let m = sent.message();
    let frame = json!({
        "type": "ack",
        "client_id": m.client_id,
        "id": m.id,
        "group_id": m.group_id,
        "timestamp": m.timestamp,
    });
    Utf8Bytes::from(frame.to_string())
}

fn error_frame(err: &ApiError, client_id: Option<&str>) -> Utf8Bytes {
    let mut frame = json!({"type": "error", "code": err.code(), "error": err.public_message()});
    if let Some(id) = client_id {
        frame["client_id"] = json!(id);
    }
    Utf8Bytes::from(frame.to_string())
}

/// Tells everyone who shares a conversation with `user` that they came online.
async fn announce_online(state: &AppState, user: UserId) {
    let found = state
        .store
        .read(move |c| {
            let last_seen = users::public(c, user)?.and_then(|u| u.last_seen);
            Ok((groups::contacts_of(c, user)?, last_seen))
        })
        .await;
    if let Ok((contacts, last_seen)) = found {
        announce(state, user, true, last_seen, contacts);
    }
}

/// Records when `user` was last seen and tells their contacts, unless they came back meanwhile.
async fn announce_offline(state: &AppState, user: UserId) {
    let recorded = state
        .store
        .write(move |c| {
            let last_seen = users::touch_last_seen(c, user)?;
            Ok(written(
                (groups::contacts_of(c, user)?, last_seen),
                Vec::new(),
            ))
        })
        .await;
    if let Ok((contacts, last_seen)) = recorded {
        if !state.hub.is_online(user) {
            announce(state, user, false, last_seen, contacts);
        }
    }
}

fn announce(
    state: &AppState,
    user: UserId,
    online: bool,
    last_seen: Option<String>,
    to: Vec<UserId>,
) {
    let frame =
        json!({"type": "presence", "user_id": user, "online": online, "last_seen": last_seen});
    // Presence belongs to no conversation; GroupId(0) is never a real one.
    let event = Arc::new(Event::new(GroupId(0), EventKind::Other, &frame));
    for contact in to {
        state
            .hub
            .publish(Outbound::Presence(contact, Arc::clone(&event)));
    }
}

/// The error for a conversation a socket does not follow: 403, or 404 if it does not exist.
async fn not_member(state: &AppState, group: GroupId) -> ApiError {
    let found = state
        .store
        .read(move |c| groups::absent_or_forbidden(c, group))
        .await;
    found.unwrap_or_else(|e| e)
}

/// A write to the socket, bounded: a client that stops reading is closed (1013) rather than
/// holding its task, its socket slot and its buffers forever, and shutdown never waits on it.
async fn bounded(
    write: impl std::future::Future<Output = Result<(), WsError>>,
    limit: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Step {
    tokio::select! {
        done = tokio::time::timeout(limit, write) => match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Broken),
            Err(_) => Err(End::Stuck),
        },
        _ = shutdown.cancelled() => Err(End::Shutdown),
    }
}
