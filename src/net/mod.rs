//! The accept loop: hyper serves HTTP/1.1 with upgrades, warp routes. Ours rather than
//! `warp::serve` so that a WebSocket upgrade can be done with tokio-tungstenite's own settings
//! (see `ws`), so every connection is held to a budget (`budget`) and a clock (`clock`), and so
//! every request is checked at the door (`guard`) and logged once with its status and duration.

mod budget;
mod clock;
mod guard;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::http::StatusCode;
use warp::reply::Response;

pub(crate) use budget::{raise_open_files_limit, Budget};
pub(crate) use guard::Hosts;

use crate::cors::{Cors, Verdict};
use crate::error::Error;
use crate::http::{self, ConnHold, PeerAddr, RouteName, Router, UpgradeSlot};
use crate::state::AppState;
use clock::{Clock, Watched};

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
        // On a dual-stack listener ([::]) an IPv4 client shows as ::ffff:a.b.c.d: use the
        // IPv4 address, so that 127.0.0.1 is loopback and one client is one address.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        // Past a bound the newest connection is closed at once: the ones already held, and
        // other addresses within their share, go on being served.
        let Some(permit) = state.budget.admit(peer.ip()) else {
            state.metrics.connections_refused.inc();
            tracing::debug!(%peer, "connection refused: too many connections");
            continue;
        };
        let hold: ConnHold = Arc::new(permit);
        connections.spawn(connection(
            stream,
            peer,
            hold,
            service.clone(),
            Arc::clone(&state),
        ));
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

/// Serves one connection until it ends, its clock runs out, or shutdown.
async fn connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    hold: ConnHold,
    service: S,
    state: Arc<AppState>,
) where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let _ = stream.set_nodelay(true);
    let clock = Clock::new();
    let (svc_clock, svc_state) = (Arc::clone(&clock), Arc::clone(&state));
    let handler = service_fn(move |req| {
        let (clock, hold) = (Arc::clone(&svc_clock), Arc::clone(&hold));
        handle(
            service.clone(),
            Arc::clone(&svc_state),
            req,
            peer,
            clock,
            hold,
        )
    });
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&clock)));
    let conn = http1::Builder::new()
        .serve_connection(io, handler)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    let result = loop {
        let deadline = clock.deadline(&state.config.net);
        tokio::select! {
            result = conn.as_mut() => break result,
            // Finish the request in flight, then close; upgraded sockets are detached from
            // the connection and closed by their own tasks.
            _ = state.shutdown.cancelled(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = tokio::time::sleep_until(deadline) => {
                if clock.deadline(&state.config.net) <= tokio::time::Instant::now() {
                    tracing::debug!(%peer, "connection closed: its client took too long");
                    state.metrics.connections_timed_out.inc();
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handle<S>(
    mut service: S,
    state: Arc<AppState>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    clock: Arc<Clock>,
    hold: ConnHold,
) -> Result<Response, Infallible>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    clock.busy();
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: a query string can hold a token.
    let path = req.uri().path().to_string();
    let mut response = if !state.hosts.allows(req.headers()) {
        http::error_with_status(
            StatusCode::MISDIRECTED_REQUEST,
            "invalid_host",
            "this server does not answer to that host name (its --public-host)",
        )
    } else {
        match state.cors.check(req.headers()) {
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
                let client = client_address(&state.config.net.trusted_proxies, peer, &req);
                req.extensions_mut().insert(PeerAddr(client));
                req.extensions_mut().insert(hold);
                let mut response = service.call(req).await?;
                if let Verdict::Allowed(origin) = verdict {
                    Cors::decorate(&mut response, &origin);
                }
                response
            }
        }
    };
    guard::secure(&mut response);
    log(&state, &method, &path, &response, started);
    clock.idle();
    Ok(response)
}

fn log(
    state: &AppState,
    method: &hyper::Method,
    path: &str,
    response: &Response,
    started: Instant,
) {
    let route = response.extensions().get::<RouteName>().map(|r| &r.0);
    let took = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(route, method, status, took.as_secs_f64());
    let route: &str = route.map_or(crate::metrics::UNMATCHED, |r| r);
    tracing::info!(%method, %path, route, status, ms = %Millis(took), "request");
}

/// A duration in milliseconds to two places (`1.27`), written without float formatting
/// (which was a fifth of the request line's cost). It reads as `{:.2}` does, but that an
/// exact half (2.675 ms) is rounded up, where `{:.2}` rounds the nearest binary float.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hundredths = (self.0.as_micros() + 5) / 10;
        let mut digits = itoa::Buffer::new();
        f.write_str(digits.format(hundredths / 100))?;
        let rest = hundredths % 100;
        f.write_str(if rest < 10 { ".0" } else { "." })?;
        f.write_str(digits.format(rest))
    }
}

/// Who a request is from: its peer, unless the peer is a trusted proxy, which says who in the
/// last X-Forwarded-For entry (the one it appended; earlier ones are the client's to invent).
/// From a trusted proxy without a readable one: an unknown address, never a local one.
fn client_address<B>(trusted: &[IpAddr], peer: SocketAddr, req: &Request<B>) -> SocketAddr {
    if !trusted.contains(&peer.ip()) {
        return peer;
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
    let ip = forwarded.map_or(IpAddr::from([0, 0, 0, 0]), |ip| ip.to_canonical());
    SocketAddr::new(ip, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_are_written_as_float_formatting_writes_them_but_for_exact_halves() {
        for micros in [0, 4, 6, 49, 51, 999, 1_004, 1_234, 9_996, 12_345_678] {
            let took = Duration::from_micros(micros);
            let float = format!("{:.2}", took.as_secs_f64() * 1000.0);
            assert_eq!(Millis(took).to_string(), float, "{micros} µs");
        }
        assert_eq!(Millis(Duration::from_micros(2_675)).to_string(), "2.68");
    }
}
