//! The WebSocket. `GET /ws` checks the token before the upgrade (401 otherwise), then upgrades
//! the connection with tokio-tungstenite directly (so the read buffer and frame limits are ours
//! to set) and hands it to a `Session`: `session` runs the loop and closes, `delivery` sends
//! what the hub and the database hold, `inbound` answers the client's frames, `presence`
//! sends presence in bursts. The frames themselves are `protocol`'s.

mod delivery;
mod inbound;
mod presence;
mod session;

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use crate::auth::bearer;
use crate::error::{Error, Result};
use crate::http::{ErrorBody, Request, Routes};
use crate::model::MessageId;

/// Bytes each socket keeps for reading frames: small, because idle sockets are most sockets.
/// tungstenite gives every socket a read buffer of this capacity for its whole life; a frame
/// larger than it grows the buffer while it is read. 512 holds a typical send frame; at 2048
/// the buffer was a third of an idle socket's memory.
const READ_BUFFER: usize = 512;

pub(crate) fn routes(r: &mut Routes) {
    r.add(__path_upgrade, upgrade);
}

/// The WebSocket. After the upgrade, every frame is a JSON text frame with a `type`:
/// `send`, `typing`, `read` and `ping` in; `ready`, `group_message`, `ack`, `error` and the
/// other events out (docs/API.md lists them all).
#[utoipa::path(get, path = "/ws", tag = "socket",
    params(
        ("token" = Option<String>, Query, description = "Access token (or Authorization: Bearer)"),
        ("since" = Option<i64>, Query,
            description = "Replay every message with a higher id first, then send ready"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 401, description = "Missing or bad token", body = ErrorBody),
        (status = 403, description = "A page from another origin", body = ErrorBody),
        (status = 429, description = "Too many sockets for this user", body = ErrorBody),
    ))]
async fn upgrade(mut req: Request) -> Result<Response> {
    let q = req.query()?;
    let header_token = bearer(
        req.headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let token = q.text("token").or(header_token).ok_or_else(|| {
        Error::unauthenticated("missing token (?token=<token> or Authorization: Bearer <token>)")
    })?;
    let user = req.service().authenticate(token).await?;
    let since = q.number("since", "invalid_query")?.map(MessageId);
    let (key, on_upgrade) = handshake(&mut req)?;
    let hold = req.take_hold();
    let state = &req.state;
    if state.shutdown.is_cancelled() {
        return Err(Error::unavailable("the server is shutting down"));
    }
    // Reserve the socket's place now: it counts against the limit from here on.
    let limit = state.config.max_sockets_per_user;
    let registration = state
        .service
        .hub
        .try_connect(user.id, limit)
        .ok_or_else(|| {
            Error::limit(
                format!("at most {limit} sockets per user; close one first"),
                None,
            )
        })?;
    let max = state.config.ws_max_message;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let task_state = Arc::clone(state);
    state.sockets.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                session::Session::run(task_state, user, since, ws, registration).await;
                drop(hold);
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    switching_protocols(&key)
}

/// The client's key and the connection's upgrade, if this is a WebSocket handshake.
fn handshake(req: &mut Request) -> Result<(HeaderValue, OnUpgrade)> {
    let header_is = |name: header::HeaderName, want: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
    };
    let handshake =
        header_is(header::UPGRADE, "websocket") && header_is(header::SEC_WEBSOCKET_VERSION, "13");
    let key = req.headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    match (key, req.take_upgrade(), handshake) {
        (Some(key), Some(on_upgrade), true) => Ok((key, on_upgrade)),
        _ => Err(Error::invalid(
            "invalid_upgrade",
            "this endpoint takes a WebSocket upgrade (websocat, or a browser's WebSocket)",
        )),
    }
}

fn switching_protocols(key: &HeaderValue) -> Result<Response> {
    let accept = derive_accept_key(key.as_bytes());
    let mut res = Response::default();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|e| Error::internal(e.to_string()))?,
    );
    Ok(res)
}
