//! The HTTP edge. A request enters through `filter`, the router finds its route (declared once,
//! see `router`), checks the bearer token when the route's documentation asks for one, and runs
//! its handler; a handler parses, calls a service and answers. Every error becomes the
//! contract's answer in `error`.

mod accounts;
mod attachments;
mod error;
mod groups;
mod messages;
mod openapi;
mod ops;
mod request;
mod router;
mod users;
mod web;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use hyper::upgrade::OnUpgrade;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Buf, Filter, Reply};

pub(crate) use error::{response as error_response, with_status as error_with_status, ErrorBody};
pub(crate) use request::Request;
pub use router::RouteInfo;
pub(crate) use router::{RouteName, Router, Routes};

use crate::error::{Error, Result};
use crate::state::AppState;

/// Every route of the server.
pub(crate) fn router(state: &AppState) -> Arc<Router> {
    let mut routes = Routes::default();
    ops::routes(&mut routes, state.config.metrics_addr.is_none());
    accounts::routes(&mut routes);
    users::routes(&mut routes);
    groups::routes(&mut routes);
    messages::routes(&mut routes);
    attachments::routes(&mut routes);
    crate::ws::routes(&mut routes);
    web::routes(&mut routes);
    Arc::new(Router::new(routes, openapi::base()))
}

/// Only `/metrics`, for `--metrics-addr`.
pub(crate) fn metrics_router() -> Arc<Router> {
    let mut routes = Routes::default();
    ops::metrics_route(&mut routes);
    Arc::new(Router::new(routes, openapi::base()))
}

/// The peer's address, put in the request's extensions by `net`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Keeps the connection's place in the server's connection budget while it is held: by the
/// connection, and after an upgrade by the socket's task.
pub(crate) type ConnHold = Arc<dyn std::any::Any + Send + Sync>;

/// The connection's upgrade handle, put in the request's extensions by `net` (hyper's own
/// handle is not `Clone`, which warp's extension filters need).
#[derive(Clone, Default)]
pub(crate) struct UpgradeSlot(pub Arc<Mutex<Option<OnUpgrade>>>);

impl UpgradeSlot {
    fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().ok()?.take()
    }
}

/// The warp filter that hands every request to `router`.
pub(crate) fn filter(router: Arc<Router>, state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::ext::optional::<UpgradeSlot>())
        .and(warp::ext::optional::<ConnHold>())
        .and(warp::body::stream())
        .then(
            move |method,
                  path: warp::path::FullPath,
                  query,
                  headers,
                  peer: Option<PeerAddr>,
                  slot: Option<UpgradeSlot>,
                  hold: Option<ConnHold>,
                  body| {
                let body =
                    futures_util::stream::StreamExt::map(body, |chunk: Result<_, warp::Error>| {
                        chunk.map(|mut b| {
                            let n = Buf::remaining(&b);
                            Buf::copy_to_bytes(&mut b, n)
                        })
                    })
                    .boxed();
                let parts = request::Parts {
                    method,
                    path: path.as_str().to_string(),
                    query,
                    headers,
                    peer: peer.map(|p| p.0),
                    upgrade: slot.and_then(|s| s.take()),
                    hold,
                };
                let req = Request::new(Arc::clone(&state), parts, body);
                Arc::clone(&router).dispatch(req)
            },
        )
        .boxed()
}

/// `value` as a JSON body. Written into a buffer that a message (the most frequent answer)
/// fits in at once: `warp::reply::json`'s starts at 128 bytes and grows by copying.
pub(crate) fn json<T: Serialize>(value: &T, status: StatusCode) -> Result<Response> {
    let mut body = Vec::with_capacity(512);
    let written = serde_json::to_writer(&mut body, value);
    json_response(written.map(|()| body), status)
}

/// The part of `json` that is the same for every type: not copied into each of its
/// instances (there is one per answer's type; the binary's size is a target).
fn json_response(body: serde_json::Result<Vec<u8>>, status: StatusCode) -> Result<Response> {
    let body = body.map_err(|e| Error::internal(format!("writing a JSON answer: {e}")))?;
    let mut response = warp::http::Response::new(body).into_response();
    *response.status_mut() = status;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

pub(crate) fn no_content() -> Result<Response> {
    Ok(StatusCode::NO_CONTENT.into_response())
}
