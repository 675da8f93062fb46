//! `GET /ws`: the token is checked before the upgrade (401 otherwise), then the connection is
//! upgraded with tokio-tungstenite directly (so the read buffer and frame limits are ours to set)
//! and handed to a `Session` (see `session.rs`).

mod session;

use std::sync::{Arc, Mutex};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::{query, respond, with_state, Query, Routes};
use crate::app::AppState;
use crate::auth::bearer;
use crate::error::{ApiError, ErrorBody};
use crate::ids::MessageId;

/// The connection's upgrade handle, put in the request's extensions by `net` (hyper's own
/// handle is not `Clone`, which warp's extension filters need).
#[derive(Clone, Default)]
pub struct UpgradeSlot(pub Arc<Mutex<Option<OnUpgrade>>>);

impl UpgradeSlot {
    fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().ok()?.take()
    }
}

/// Bytes each socket keeps for reading frames: small, because idle sockets are most sockets.
/// A typical send frame fits; a bigger one grows the buffer while it is read.
const READ_BUFFER: usize = 2048;

pub fn routes(state: &Arc<AppState>, r: &mut Routes) {
    r.add::<__path_upgrade>(
        warp::path!("ws")
            .and(warp::get())
            .and(with_state(state))
            .and(query())
            .and(warp::header::headers_cloned())
            .and(warp::ext::optional::<UpgradeSlot>())
            .then(upgrade)
            .map(respond),
    );
}

/// The WebSocket. After the upgrade, frames are JSON text: see the README and API.md for the
/// frame types in both directions.
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
async fn upgrade(
    state: Arc<AppState>,
    q: Query,
    headers: HeaderMap,
    slot: Option<UpgradeSlot>,
) -> Result<Response, ApiError> {
    let header_token = bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let token = q.text("token").or(header_token).ok_or_else(|| {
        ApiError::unauthorized("missing token (?token=<token> or Authorization: Bearer <token>)")
    })?;
    let user = state.authenticate(token).await?;
    let since = q.number("since", "invalid_query")?.map(MessageId);

    let header_is = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let on_upgrade = slot.and_then(|s| s.take());
    let (Some(key), Some(on_upgrade), true, true) = (
        key,
        on_upgrade,
        header_is(header::UPGRADE, "websocket"),
        header_is(header::SEC_WEBSOCKET_VERSION, "13"),
    ) else {
        return Err(ApiError::invalid(
            "invalid_upgrade",
            "this endpoint takes a WebSocket upgrade (websocat, or a browser's WebSocket)",
        ));
    };
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    // Reserve the socket's place now: it counts against the limit from here on.
    let limit = state.config.max_sockets_per_user;
    let registration = state.hub.try_connect(user.id, limit).ok_or_else(|| {
        ApiError::rate_limited(
            format!("at most {limit} sockets per user; close one first"),
            None,
        )
    })?;

    let accept = derive_accept_key(key.as_bytes());
    let limit = state.config.ws_max_message;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let task_state = Arc::clone(&state);
    state.sockets.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                session::Session::run(task_state, user.id, since, ws, registration).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });

    let mut res = Response::default();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        header::HeaderValue::from_str(&accept).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(res)
}
