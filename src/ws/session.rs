//! One socket's task. It owns the socket and selects over its inbound frames (`inbound`), its
//! conversations' hub channels and its user's channels (`delivery`), the answers to its own
//! writes, a heartbeat and shutdown. Here: the loop, the bounded writes, and the close codes.
//!
//! Memory: a socket's task is as large as the largest state its future can be in, and most
//! sockets sit idle in `serve`. So the steps that are large and rare (`start` with its replay,
//! a client's frame, catching up after a lag, a resync) are boxed where they are awaited: they
//! cost an allocation when they run, and the idle socket does not carry their space (the whole
//! task went from 4184 to 2368 bytes; BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::presence::Held;
use crate::auth::AuthUser;
use crate::hub::{Event, Registration, UserReceivers};
use crate::model::{GroupId, MessageId, UserId};
use crate::protocol::ServerFrame;
use crate::state::AppState;

pub(super) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why the loop ended, and so which close frame the client gets.
pub(super) enum End {
    ClientClosed,
    Shutdown,
    TooBig,
    Idle,
    /// The client stopped reading: a write waited longer than the idle limit.
    Stuck,
    /// This instance lost events it cannot read back: reconnecting with `since` recovers.
    Reconnect,
    AccountClosed,
    /// The session the socket was opened in ended (logout, a new password).
    SignedOut,
    /// A frame broke the WebSocket protocol (1002) or was text that is not UTF-8 (1007).
    Protocol(CloseCode),
    Broken,
}

pub(super) type Step = Result<(), End>;

pub(super) struct Session {
    pub state: Arc<AppState>,
    pub user: UserId,
    /// Who opened the socket, with their session and epoch: when those end, so does it.
    pub auth: AuthUser,
    pub username: String,
    ws: Socket,
    pub subs: StreamMap<GroupId, BroadcastStream<Arc<Event>>>,
    /// Per conversation, the highest message id this socket has sent (see `delivery`).
    pub cursors: HashMap<GroupId, MessageId>,
    /// This socket's writes waiting for their commit, each yielding its answer (`None`:
    /// nothing to say). Polled by this task: no task or channel per socket until it writes.
    pub pending: FuturesUnordered<BoxFuture<'static, Option<Utf8Bytes>>>,
    pub last_heard: Instant,
    pub last_typing: HashMap<GroupId, Instant>,
    /// Frames fed since the last flush; added to the shared metric once per flush, not once
    /// per frame, so a thousand sockets do not all contend on one counter.
    fed: u64,
    shutdown: CancellationToken,
}

impl Session {
    /// `registration` was taken from the hub before the upgrade and before memberships are
    /// read, so a membership change committed after the read still reaches this socket through
    /// the user channel.
    pub async fn run(
        state: Arc<AppState>,
        auth: AuthUser,
        since: Option<MessageId>,
        ws: Socket,
        registration: (UserReceivers, Registration),
    ) {
        let (receivers, registration) = registration;
        let user = auth.id;
        let mut session = Session {
            auth,
            // A token of its own: waiting on it locks this socket's node, not the one every
            // socket shares (the heartbeat, each feed and flush wait on it).
            shutdown: state.shutdown.child_token(),
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
            state.service.came_online(user).await;
        }
        let end = match Box::pin(session.start(since)).await {
            Ok(()) => session.serve(receivers).await,
            Err(end) => end,
        };
        session.close(end).await;
        session.unsubscribe_all();
        state.metrics.open_sockets.dec();
        if registration.release() {
            state.service.went_offline(user).await;
        }
    }

    async fn serve(&mut self, mut receivers: UserReceivers) -> End {
        let shutdown = self.shutdown.clone();
        // Made once: a new wait per turn of the loop would register and deregister each time.
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        let mut heartbeat = tokio::time::interval(self.state.config.ws_ping_interval);
        heartbeat.reset();
        let (window, mut held) = (tokio::time::sleep(Duration::ZERO), Held::default());
        tokio::pin!(window);
        loop {
            let step = tokio::select! {
                biased;
                _ = &mut stopping => Err(End::Shutdown),
                // Before the client's frames: a client that never stops sending must still
                // hear that it was signed out.
                item = receivers.control.recv() => self.user_event(item).await,
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
                item = receivers.presence.recv() => match item {
                    Ok(event) => self.presence(&mut held, window.as_mut(), &event).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.presence_missed(&mut held, window.as_mut());
                        Ok(())
                    }
                    Err(broadcast::error::RecvError::Closed) => Err(End::Broken),
                },
                () = &mut window, if held.open => {
                    self.presence_window_ends(&mut held, window.as_mut()).await
                }
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

    async fn heartbeat(&mut self) -> Step {
        // A socket that sends nothing, not even a pong, for 2.5 ping intervals is dead.
        if self.last_heard.elapsed() > self.idle_limit() {
            return Err(End::Idle);
        }
        let limit = self.idle_limit();
        bounded(
            self.ws.feed(Frame::Ping(Default::default())),
            limit,
            &self.shutdown,
        )
        .await
    }

    fn idle_limit(&self) -> Duration {
        self.state.config.ws_ping_interval.mul_f32(2.5)
    }

    /// Sends a frame made for this socket alone.
    pub async fn send_frame(&mut self, frame: &ServerFrame) -> Step {
        self.feed(frame.to_text()).await
    }

    pub async fn feed(&mut self, text: Utf8Bytes) -> Step {
        self.fed += 1;
        let limit = self.idle_limit();
        bounded(self.ws.feed(Frame::Text(text)), limit, &self.shutdown).await
    }

    pub async fn flush(&mut self) -> Step {
        if self.fed > 0 {
            self.state.metrics.deliveries.inc_by(self.fed);
            self.fed = 0;
        }
        let limit = self.idle_limit();
        bounded(self.ws.flush(), limit, &self.shutdown).await
    }

    async fn close(&mut self, end: End) {
        let (code, reason) = match end {
            End::ClientClosed => (CloseCode::Normal, ""),
            End::Shutdown => (CloseCode::Away, "server shutting down"),
            End::TooBig => (CloseCode::Size, "message too big"),
            End::Stuck => {
                self.state.metrics.slow_closed.inc();
                (CloseCode::Again, "not reading; reconnect with since")
            }
            End::Reconnect => (CloseCode::Again, "events missed; reconnect with since"),
            End::Protocol(code) => (code, "protocol error"),
            End::Idle => (CloseCode::Away, "no answer to pings"),
            End::AccountClosed => (CloseCode::Policy, "account deleted"),
            End::SignedOut => (CloseCode::Policy, "signed out"),
            End::Broken => return,
        };
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let ws = &mut self.ws;
        let closing = async move {
            if ws.close(Some(frame)).await.is_err() {
                return;
            }
            // Read on until the client answers the close: a connection closed with frames
            // still unread is reset, and a reset can take the close frame with it, so a client
            // that kept sending would never learn why it was closed.
            while let Some(Ok(_)) = ws.next().await {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

/// A write to the socket, bounded: a client that stops reading is closed (1013) rather than
/// holding its task, its socket slot and its buffers forever, and shutdown never waits on it.
async fn bounded(
    write: impl std::future::Future<Output = Result<(), WsError>>,
    limit: Duration,
    shutdown: &CancellationToken,
) -> Step {
    let mut write = std::pin::pin!(write);
    // Nearly every write is done at once (the frame fits the socket's buffer, the bytes the
    // kernel's): it needs no deadline (a clock read and a timer), nor a look at shutdown (the
    // serve loop looks first at every turn). In fan-out those were a tenth of a socket task's
    // CPU. A write that must wait is polled again at once below, with this task's waker.
    if let Some(done) = write.as_mut().now_or_never() {
        return done.map_err(|_| End::Broken);
    }
    tokio::select! {
        done = tokio::time::timeout(limit, write) => match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Broken),
            Err(_) => Err(End::Stuck),
        },
        _ = shutdown.cancelled() => Err(End::Shutdown),
    }
}
