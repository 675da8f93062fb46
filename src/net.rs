//! The accept loop: hyper serves HTTP/1.1 with upgrades, warp routes. Ours rather than
//! `warp::serve` so that a WebSocket upgrade can be done with tokio-tungstenite's own settings
//! (see `ws`), and so every request is logged once with its status and duration.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::reply::Response;

use crate::cors::{Cors, Verdict};
use crate::error::Error;
use crate::http::{self, PeerAddr, RouteName, Router, UpgradeSlot};
use crate::state::AppState;

/// How long in-flight requests get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

pub(crate) async fn serve(listener: TcpListener, router: Arc<Router>, state: Arc<AppState>) {
    let shutdown = state.shutdown.clone();
    let service = warp::service(http::filter(router, Arc::clone(&state)));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (service, state) = (service.clone(), Arc::clone(&state));
        let handler = service_fn(move |req| handle(service.clone(), Arc::clone(&state), req, peer));
        let conn = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), handler)
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight, then close; upgraded sockets are detached
                    // from the connection and closed by their own tasks.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish within {DRAIN:?}");
    }
}

async fn handle<S>(
    mut service: S,
    state: Arc<AppState>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response, Infallible>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: a query string can hold a token.
    let path = req.uri().path().to_string();
    let response = match state.cors.check(req.headers()) {
        Verdict::Refused => http::error_response(&Error::forbidden(
            "requests from this origin are not allowed (the server's --cors-origin)",
        )),
        Verdict::Allowed(origin) if Cors::is_preflight(&method, req.headers()) => {
            Cors::preflight(&origin)
        }
        verdict => {
            if req.headers().contains_key(hyper::header::UPGRADE) {
                let on_upgrade = hyper::upgrade::on(&mut req);
                req.extensions_mut()
                    .insert(UpgradeSlot(Arc::new(Mutex::new(Some(on_upgrade)))));
            }
            req.extensions_mut().insert(PeerAddr(peer));
            let mut response = service.call(req).await?;
            if let Verdict::Allowed(origin) = verdict {
                Cors::decorate(&mut response, &origin);
            }
            response
        }
    };
    let route = response
        .extensions()
        .get::<RouteName>()
        .map_or("unmatched", |r| &r.0);
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(route, method.as_str(), status, seconds);
    tracing::info!(
        %method,
        %path,
        route,
        status,
        ms = format_args!("{:.2}", seconds * 1000.0),
        "request"
    );
    Ok(response)
}
