//! What a socket receives: frames parsed by `protocol`, each handed to a service. Writes are
//! queued at once (so one socket's sends keep their order) and answered when committed; at most
//! `MAX_IN_FLIGHT` wait at a time. Typing is limited per conversation.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame, Utf8Bytes};

use super::session::{End, Session, Step};
use crate::error::{Error, Result};
use crate::model::{GroupId, MessageId};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::service::NewMessage;
use crate::store::Pending;

/// Writes of one socket waiting for their commit; more are refused until some are answered.
const MAX_IN_FLIGHT: usize = 64;
/// At most one `typing` event per socket and conversation in this window; more are dropped.
const TYPING_EVERY: Duration = Duration::from_secs(2);

impl Session {
    pub(super) async fn inbound(
        &mut self,
        frame: Option<std::result::Result<Frame, WsError>>,
    ) -> Step {
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
            Frame::Text(text) => Box::pin(self.client_frame(&text)).await,
            Frame::Binary(_) => {
                let err = Error::invalid("invalid_json", "send JSON text frames, not binary");
                Box::pin(self.send_error(&err, None)).await
            }
            Frame::Close(_) => Err(End::ClientClosed),
            Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_) => Ok(()),
        }
    }

    async fn client_frame(&mut self, text: &str) -> Step {
        let frame = match ClientFrame::parse(text) {
            Ok(frame) => frame,
            Err(bad) => return self.send_error(&bad.error, bad.client_id.as_deref()).await,
        };
        match frame {
            ClientFrame::Ping => self.send_frame(&ServerFrame::Pong).await,
            ClientFrame::Send {
                group_id,
                content,
                client_id,
                attachment_ids,
                reply_to,
            } => {
                let message = NewMessage {
                    content: content.as_deref(),
                    client_id: client_id.as_deref(),
                    attachment_ids: &attachment_ids,
                    reply_to,
                };
                self.send(group_id, &message).await
            }
            ClientFrame::Typing { group_id } => self.typing(group_id).await,
            ClientFrame::Read {
                group_id,
                message_id,
            } => self.read(group_id, message_id).await,
        }
    }

    /// Tells the other members; at most once per `TYPING_EVERY`, more are dropped silently.
    async fn typing(&mut self, group: GroupId) -> Step {
        if !self.subs.contains_key(&group) {
            let err = self.state.service.store.not_member_error(group).await;
            return self.send_error(&err, None).await;
        }
        let now = Instant::now();
        if let Some(last) = self.last_typing.get(&group) {
            if now.duration_since(*last) < TYPING_EVERY {
                return Ok(());
            }
        }
        self.last_typing.insert(group, now);
        self.state.service.typing(self.user, &self.username, group);
        Ok(())
    }

    async fn read(&mut self, group: GroupId, message: MessageId) -> Step {
        if let Some(full) = self.refuse_if_full(None).await {
            return full;
        }
        let pending = self.state.service.mark_read(self.auth, group, message);
        self.answer_later(pending, None, |_: ()| None).await
    }

    /// Queues the send now (keeping this socket's order) and answers with `ack` once it is
    /// committed.
    async fn send(&mut self, group: GroupId, message: &NewMessage<'_>) -> Step {
        if let Some(full) = self.refuse_if_full(message.client_id).await {
            return full;
        }
        let pending = self.state.service.send(self.auth, group, message);
        let client_id = message.client_id.map(str::to_string);
        self.answer_later(pending, client_id, |sent| {
            Some(ServerFrame::ack(sent.message()).to_text())
        })
        .await
    }

    /// Refuses a write while too many of this socket's writes wait for their commit. Checked
    /// before anything is queued, so a refused write is never stored.
    async fn refuse_if_full(&mut self, client_id: Option<&str>) -> Option<Step> {
        if self.pending.len() < MAX_IN_FLIGHT {
            return None;
        }
        let err = Error::limit("too many writes waiting; wait for their answers", None);
        Some(self.send_error(&err, client_id).await)
    }

    /// Keeps a queued write until its commit, then answers: with `ok(result)` on success, with
    /// an error frame (naming `client_id`) on failure. A write refused before it was queued
    /// (bad content) is answered now.
    async fn answer_later<T: Send + 'static>(
        &mut self,
        pending: Pending<T>,
        client_id: Option<String>,
        ok: impl FnOnce(T) -> Option<Utf8Bytes> + Send + 'static,
    ) -> Step {
        let pending = match pending.queued() {
            Ok(pending) => pending,
            Err(err) => return self.send_error(&err, client_id.as_deref()).await,
        };
        self.pending.push(Box::pin(async move {
            let result: Result<T> = pending.await;
            match result {
                Ok(value) => ok(value),
                Err(err) => Some(ServerFrame::error(&err, client_id.as_deref()).to_text()),
            }
        }));
        Ok(())
    }

    async fn send_error(&mut self, err: &Error, client_id: Option<&str>) -> Step {
        self.send_frame(&ServerFrame::error(err, client_id)).await
    }
}
