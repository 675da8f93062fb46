//! What a handler is given: the request's parts, read only as the handler asks (the body with
//! its size limit, the query string, the path's ids), each mistake already a domain error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use hyper::body::Bytes;
use hyper::upgrade::OnUpgrade;
use serde::de::DeserializeOwned;
use warp::http::{header, HeaderMap, Method};

use super::router::{PathValue, Router};
use super::ConnHold;
use crate::auth::{bearer, AuthUser};
use crate::error::{Error, Result};
use crate::service::Service;
use crate::state::AppState;

pub(crate) type Body = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// What the connection knows of a request before it is routed.
pub(crate) struct Parts {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub peer: Option<SocketAddr>,
    pub upgrade: Option<OnUpgrade>,
    pub hold: Option<ConnHold>,
}

pub(crate) struct Request {
    pub state: Arc<AppState>,
    pub method: Method,
    pub headers: HeaderMap,
    path: String,
    query: Option<String>,
    peer: Option<SocketAddr>,
    upgrade: Option<OnUpgrade>,
    hold: Option<ConnHold>,
    body: Option<Body>,
    ids: Vec<(Arc<str>, PathValue)>,
    user: Option<AuthUser>,
    router: Option<Arc<Router>>,
}

/// Above the limit, the rest of a body up to this size is read and thrown away before the 413
/// goes out: a server that answers and closes while the client is still sending makes the
/// client's kernel see a reset, and the client never reads the 413.
const DRAIN_LIMIT: u64 = 1024 * 1024;

impl Request {
    pub fn new(state: Arc<AppState>, parts: Parts, body: Body) -> Request {
        Request {
            state,
            method: parts.method,
            headers: parts.headers,
            path: parts.path,
            query: parts.query,
            peer: parts.peer,
            upgrade: parts.upgrade,
            hold: parts.hold,
            body: Some(body),
            ids: Vec::new(),
            user: None,
            router: None,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn service(&self) -> &Service {
        &self.state.service
    }

    /// Set by the router once it has found the route.
    pub(super) fn route(&mut self, ids: Vec<(Arc<str>, PathValue)>, router: Arc<Router>) {
        self.ids = ids;
        self.router = Some(router);
    }

    /// The router that routed this request (for the document it serves).
    pub fn router(&self) -> Result<&Router> {
        self.router
            .as_deref()
            .ok_or_else(|| Error::internal("a request outside the router"))
    }

    /// Checks the bearer token of a route documented as needing one.
    pub(super) async fn authenticate(&mut self) -> Result<()> {
        let header = self
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = bearer(header).ok_or_else(|| {
            Error::unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        })?;
        self.user = Some(self.state.service.authenticate(token).await?);
        Ok(())
    }

    /// The caller; only routes documented with a bearer token have one.
    pub fn user(&self) -> Result<AuthUser> {
        self.user
            .ok_or_else(|| Error::internal("the route is not documented as authenticated"))
    }

    /// The id the path's `{name}` segment holds.
    pub fn id<T: From<i64>>(&self, name: &str) -> Result<T> {
        match self.ids.iter().find(|(n, _)| &**n == name) {
            Some((_, PathValue::Id(v))) => Ok(T::from(*v)),
            _ => Err(Error::internal(format!(
                "no id {{{name}}} in the route's path"
            ))),
        }
    }

    /// The text the path's `{name}` segment holds (a parameter documented as a string).
    pub fn text(&self, name: &str) -> Result<String> {
        match self.ids.iter().find(|(n, _)| &**n == name) {
            Some((_, PathValue::Text(v))) => Ok(v.clone()),
            _ => Err(Error::internal(format!(
                "no text {{{name}}} in the route's path"
            ))),
        }
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The connection's upgrade handle, once (for the WebSocket).
    pub fn take_upgrade(&mut self) -> Option<OnUpgrade> {
        self.upgrade.take()
    }

    /// The connection's place in the connection budget, for a socket that outlives the request.
    pub fn take_hold(&mut self) -> Option<ConnHold> {
        self.hold.take()
    }

    /// The query string as name → value (empty when there is none).
    pub fn query(&self) -> Result<Query> {
        match &self.query {
            None => Ok(Query::default()),
            Some(raw) => serde_urlencoded::from_str::<HashMap<String, String>>(raw)
                .map(Query)
                .map_err(|_| {
                    Error::invalid("invalid_query", "the query string could not be parsed")
                }),
        }
    }

    /// The body as it arrives, for a handler that streams it (an upload).
    pub fn take_body(&mut self) -> Result<Body> {
        self.body
            .take()
            .ok_or_else(|| Error::internal("the body was read twice"))
    }

    /// The body as JSON of type `T`. The Content-Type is not checked, so `curl -d '{…}'` works
    /// without `-H 'Content-Type: application/json'`.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.bytes(self.state.config.body_limit).await?;
        parse_json(&bytes)
    }

    /// The body, at most `limit` bytes, arriving within the body timeout.
    async fn bytes(&mut self, limit: usize) -> Result<Vec<u8>> {
        let allowed = self.state.config.net.body_timeout;
        tokio::time::timeout(allowed, self.read_body(limit))
            .await
            .unwrap_or_else(|_| {
                Err(Error::TimedOut(format!(
                    "the request body did not arrive within {allowed:?}"
                )))
            })
    }

    /// A larger declared length than `limit` is refused before anything is read, and a
    /// chunked body as soon as it passes the limit.
    async fn read_body(&mut self, limit: usize) -> Result<Vec<u8>> {
        let too_large = || Error::TooLarge(format!("request body is larger than {limit} bytes"));
        let mut body = self
            .body
            .take()
            .ok_or_else(|| Error::internal("the body was read twice"))?;
        let declared: Option<u64> = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if let Some(n) = declared.filter(|&n| n > limit as u64) {
            if n <= DRAIN_LIMIT {
                while let Some(Ok(_)) = body.next().await {}
            }
            return Err(too_large());
        }
        let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut seen: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| {
                Error::invalid("invalid_json", "the request body could not be read")
            })?;
            seen += chunk.len() as u64;
            if seen > limit as u64 {
                // Over the limit: stop keeping it; read on (up to the drain limit) only to discard.
                buf = Vec::new();
                if seen > DRAIN_LIMIT {
                    return Err(too_large());
                }
                continue;
            }
            buf.extend_from_slice(&chunk);
        }
        if seen > limit as u64 {
            return Err(too_large());
        }
        Ok(buf)
    }
}

/// Reads on (up to the drain limit) and throws away the rest of a body that is refused, so the
/// client is still reading when the answer comes (see `DRAIN_LIMIT`).
pub(super) async fn drain<S, E>(body: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut seen = 0usize;
    while let Some(Ok(piece)) = body.next().await {
        seen += piece.len();
        if seen as u64 > DRAIN_LIMIT {
            return;
        }
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // Every body is an object of named fields; serde would also take an array as the fields
    // in declaration order, which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::invalid(
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid("invalid_json", format!("invalid JSON body: {e}")))
}

#[derive(Debug, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A numeric parameter; a value that is not a number is an `invalid_<code>` error.
    pub fn number<T: FromStr>(&self, name: &str, code: &'static str) -> Result<Option<T>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                Error::invalid(
                    code,
                    format!("query parameter {name} must be a whole number"),
                )
            }),
        }
    }
}
