//! Prometheus metrics (OpenMetrics text): requests by route and status with latency, sockets,
//! messages stored, deliveries, slow sockets, and the database's pool wait and write batches.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use warp::http::Method;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/groups/{id}`), or `unmatched`.
    pub route: Arc<str>,
    /// One of the standard methods, or `other` (see `method_label`).
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Arc<str>,
    pub method: &'static str,
}

/// A method's label. Any token is a method to HTTP, and each label value is a series kept
/// for the process's life, so a client inventing methods (`BREW1`, `BREW2`, …) would grow
/// the server's memory without end: every method but the standard ones is `other`.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// The route label (and the request line's route) of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    /// The route label of a request that matched no route.
    unmatched: Arc<str>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub open_sockets: Gauge,
    pub messages_stored: Counter,
    pub deliveries: Counter,
    pub lagged: Counter,
    pub slow_closed: Counter,
    pub connections_refused: Counter,
    pub connections_timed_out: Counter,
    pub pool_wait_seconds: Histogram,
    pub write_batch_size: Histogram,
    pub commit_seconds: Histogram,
    /// Thumbnail requests waiting for the decoder (its queue), and thumbnails decoded.
    pub thumbnails_waiting: Gauge,
    /// Joined by a broker: messages not sent to it (its queue full), batches read from the
    /// log because the broker did not bring them in time, and batches gone from the log.
    pub broker_dropped: Counter,
    pub broker_gaps: Counter,
    pub broker_lost: Counter,
    /// Logins and sign-ups other instances counted, counted here too.
    pub broker_limits_heard: Counter,
    pub thumbnails_made: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    fn register_attachments(&self, registry: &mut Registry) {
        registry.register(
            "thumbnails_waiting",
            "Thumbnail decodes queued or running (one image is decoded at a time)",
            self.thumbnails_waiting.clone(),
        );
        registry.register(
            "thumbnails_made",
            "Images decoded for a thumbnail (each at most once)",
            self.thumbnails_made.clone(),
        );
    }

    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("chatserver"),
            unmatched: Arc::from(UNMATCHED),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            open_sockets: Gauge::default(),
            messages_stored: Counter::default(),
            deliveries: Counter::default(),
            lagged: Counter::default(),
            slow_closed: Counter::default(),
            connections_refused: Counter::default(),
            connections_timed_out: Counter::default(),
            pool_wait_seconds: latency_histogram(),
            write_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_seconds: latency_histogram(),
            thumbnails_waiting: Gauge::default(),
            thumbnails_made: Counter::default(),
            broker_dropped: Counter::default(),
            broker_gaps: Counter::default(),
            broker_lost: Counter::default(),
            broker_limits_heard: Counter::default(),
        };
        let mut registry = Registry::with_prefix("chatserver");
        m.register_all(&mut registry);
        m.register_attachments(&mut registry);
        m.register_broker(&mut registry);
        m.registry = registry;
        m
    }

    fn register_broker(&self, registry: &mut Registry) {
        registry.register(
            "broker_dropped",
            "Messages not sent to the broker because its queue was full",
            self.broker_dropped.clone(),
        );
        registry.register(
            "broker_gaps",
            "Times a batch from another instance was read from the cluster log, not the broker",
            self.broker_gaps.clone(),
        );
        registry.register(
            "broker_lost",
            "Times batches were gone from the cluster log and this instance's sockets reconnected",
            self.broker_lost.clone(),
        );
        registry.register(
            "broker_limits_heard",
            "Logins and sign-ups on other instances counted by this one's limits",
            self.broker_limits_heard.clone(),
        );
    }

    fn register_all(&self, registry: &mut Registry) {
        registry.register(
            "connections_refused",
            "Connections closed at once because a connection bound was reached",
            self.connections_refused.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Connections closed because their client took too long (headers, body or idle)",
            self.connections_timed_out.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            self.request_seconds.clone(),
        );
        registry.register(
            "websocket_open",
            "Open WebSocket connections",
            self.open_sockets.clone(),
        );
        registry.register(
            "messages_stored",
            "Messages committed",
            self.messages_stored.clone(),
        );
        registry.register(
            "websocket_deliveries",
            "Frames sent to WebSocket clients",
            self.deliveries.clone(),
        );
        registry.register(
            "websocket_lagged",
            "Times a socket fell behind its conversation's buffer and caught up from the database",
            self.lagged.clone(),
        );
        registry.register(
            "websocket_slow_closed",
            "Sockets closed with 1013 for falling too far behind",
            self.slow_closed.clone(),
        );
        registry.register(
            "db_pool_wait_seconds",
            "Time waiting for a pooled read connection",
            self.pool_wait_seconds.clone(),
        );
        registry.register(
            "db_write_batch_size",
            "Writes committed together in one transaction",
            self.write_batch_size.clone(),
        );
        registry.register(
            "db_commit_duration_seconds",
            "Time to run and commit one batch of writes",
            self.commit_seconds.clone(),
        );
    }

    /// Counts a request and its time, under its route's template (`None`: it matched none).
    /// No label is allocated: the route's name is shared, the method's is static.
    pub fn observe_request(
        &self,
        route: Option<&Arc<str>>,
        method: &Method,
        status: u16,
        seconds: f64,
    ) {
        let route = route.map_or_else(|| Arc::clone(&self.unmatched), Arc::clone);
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route: Arc::clone(&route),
                method,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { route, method })
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "rendering the metrics");
        }
        out
    }
}
