//! The HTTP and WebSocket routes. A request enters through a route's filters (path, method,
//! `authenticated()`, body), its handler returns `Result<Response, ApiError>`, and `respond`
//! (for handler errors) or `error::recover` (for filter rejections) writes the contract's error.

mod auth;
mod groups;
mod messages;
pub mod openapi;
mod ops;
mod users;
mod web;
pub mod ws;

use std::collections::HashMap;
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use crate::app::AppState;
use crate::error::{self, ApiError};

/// A route as its OpenAPI annotation names it: `GET /v1/groups/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: Arc<str>,
}

/// The route a response came from, for the request log and the metrics.
#[derive(Clone, Debug)]
pub struct RouteName(pub Arc<str>);

/// Builds the server's filter and, with it, the table of every route it serves, so nothing
/// can be served without being listed (the OpenAPI test compares the table with the document).
#[derive(Default)]
pub struct Routes {
    filter: Option<BoxedFilter<(Response,)>>,
    table: Vec<RouteInfo>,
}

impl Routes {
    /// Adds `filter`, the route documented by the `#[utoipa::path]` of the handler `P`.
    /// An `ApiError` rejection inside the route (a missing token, a bad body) is answered here,
    /// so its response carries the route's name too.
    pub fn add<P: utoipa::Path>(
        &mut self,
        filter: impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
    ) {
        let path: Arc<str> = P::path().into();
        for method in P::methods() {
            use utoipa::openapi::path::HttpMethod as M;
            let method = match method {
                M::Get => Method::GET,
                M::Post => Method::POST,
                M::Put => Method::PUT,
                M::Delete => Method::DELETE,
                M::Options => Method::OPTIONS,
                M::Head => Method::HEAD,
                M::Patch => Method::PATCH,
                M::Trace => Method::TRACE,
            };
            self.table.push(RouteInfo {
                method,
                path: Arc::clone(&path),
            });
        }
        let name = RouteName(path);
        let route = filter
            .or_else(|rejection: Rejection| async move {
                match rejection.find::<ApiError>() {
                    Some(err) => Ok((err.to_response(),)),
                    None => Err(rejection),
                }
            })
            .map(move |mut response: Response| {
                response.extensions_mut().insert(name.clone());
                response
            })
            .boxed();
        self.filter = Some(match self.filter.take() {
            None => route,
            Some(before) => before.or(route).unify().boxed(),
        });
    }
}

/// Every route of the server with errors in the contract's shape, and the table of them.
pub fn routes(state: &Arc<AppState>) -> (BoxedFilter<(Response,)>, Vec<RouteInfo>) {
    let mut r = Routes::default();
    ops::routes(state, &mut r);
    auth::routes(state, &mut r);
    users::routes(state, &mut r);
    groups::routes(state, &mut r);
    messages::routes(state, &mut r);
    ws::routes(state, &mut r);
    web::routes(&mut r);
    let filter = r
        .filter
        .take()
        .expect("there are routes")
        .recover(error::recover)
        .unify()
        .boxed();
    (filter, r.table)
}

/// Only `/metrics`, for `--metrics-addr`.
pub fn metrics_only(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    let state = Arc::clone(state);
    warp::path!("metrics")
        .and(warp::get())
        .map(move || ops::metrics(&state))
        .recover(error::recover)
        .unify()
        .boxed()
}

/// Turns a handler's result into the response, errors through `ApiError`.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| e.to_response())
}

pub fn json<T: Serialize>(value: &T, status: StatusCode) -> Result<Response, ApiError> {
    Ok(warp::reply::with_status(warp::reply::json(value), status).into_response())
}

pub fn no_content() -> Result<Response, ApiError> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    let state = Arc::clone(state);
    warp::any().map(move || Arc::clone(&state))
}

/// The caller of a request with a valid bearer token whose account still exists; 401 otherwise.
pub fn authenticated(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (crate::auth::AuthUser,), Error = Rejection> + Clone {
    let state = Arc::clone(state);
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let state = Arc::clone(&state);
        async move {
            let token = crate::auth::bearer(header.as_deref()).ok_or_else(|| {
                ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)")
            })?;
            state
                .authenticate(token)
                .await
                .map_err(warp::reject::custom)
        }
    })
}

/// The request body, at most `limit` bytes: a larger declared length is refused before
/// anything is read, and a chunked body is refused as soon as it passes the limit.
fn body_bytes(limit: usize) -> impl Filter<Extract = (Vec<u8>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared, body| read_limited(body, declared, limit))
}

/// Above the limit, the rest of a body up to this size is read and thrown away before the 413
/// goes out: a server that answers and closes while the client is still sending makes the
/// client's kernel see a reset, and the client never reads the 413.
const DRAIN_LIMIT: u64 = 1024 * 1024;

async fn read_limited<S, B>(
    body: S,
    declared: Option<u64>,
    limit: usize,
) -> Result<Vec<u8>, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        warp::reject::custom(ApiError::PayloadTooLarge(format!(
            "request body is larger than {limit} bytes"
        )))
    };
    let mut body = std::pin::pin!(body);
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        if n <= DRAIN_LIMIT {
            while let Some(Ok(_)) = body.next().await {}
        }
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut seen: u64 = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| {
            warp::reject::custom(ApiError::invalid(
                "invalid_json",
                "the request body could not be read",
            ))
        })?;
        seen += chunk.remaining() as u64;
        if seen > limit as u64 {
            // Over the limit: stop keeping it; read on (up to the drain limit) only to discard.
            buf = Vec::new();
            if seen > DRAIN_LIMIT {
                return Err(too_large());
            }
            chunk.advance(chunk.remaining());
            continue;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    if seen > limit as u64 {
        return Err(too_large());
    }
    Ok(buf)
}

/// A JSON request body of type `T`. The Content-Type is not checked, so `curl -d '{…}'`
/// works without `-H 'Content-Type: application/json'`.
pub fn json_body<T: DeserializeOwned + Send + 'static>(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    body_bytes(state.config.body_limit).and_then(|bytes: Vec<u8>| async move {
        parse_json::<T>(&bytes).map_err(warp::reject::custom)
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object of named fields; serde would also take an array as the fields
    // in declaration order, which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid("invalid_json", format!("invalid JSON body: {e}")))
}

/// The query string as name → value (empty when there is none).
pub fn query() -> impl Filter<Extract = (Query,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            serde_urlencoded::from_str::<HashMap<String, String>>(&raw)
                .map(Query)
                .map_err(|_| {
                    warp::reject::custom(ApiError::invalid(
                        "invalid_query",
                        "the query string could not be parsed",
                    ))
                })
        })
}

#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A numeric parameter; a value that is not a number is an `invalid_<code>` error.
    pub fn number<T: FromStr>(
        &self,
        name: &str,
        code: &'static str,
    ) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::invalid(
                    code,
                    format!("query parameter {name} must be a whole number"),
                )
            }),
        }
    }
}
