//! Operations: health, the OpenAPI document and its rendering, and Prometheus metrics.

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::{header, StatusCode};
use warp::reply::{Reply, Response};

use super::{ErrorBody, Request, Routes};
use crate::error::{Error, Result};

pub(super) fn routes(r: &mut Routes, with_metrics: bool) {
    r.add(__path_health, health)
        .add(__path_openapi_json, openapi_json)
        .add(__path_docs, docs);
    if with_metrics {
        metrics_route(r);
    }
}

pub(super) fn metrics_route(r: &mut Routes) {
    r.add(__path_metrics, metrics);
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// "ok"
    status: &'static str,
    version: &'static str,
    /// Where the data is: "sqlite" or "postgres".
    backend: &'static str,
    /// How instances share events: "none" (this process only) or "nats".
    broker: &'static str,
}

/// Whether the server and its database answer.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses(
    (status = 200, body = Health),
    (status = 503, description = "The database or the broker is unusable", body = ErrorBody),
))]
async fn health(req: Request) -> Result<Response> {
    if !req.service().store.healthy().await {
        return Err(Error::unavailable("the database is unusable"));
    }
    if !req.service().bus.usable() {
        return Err(Error::unavailable("the broker is unreachable"));
    }
    super::json(
        &Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            backend: req.service().store.backend().name(),
            broker: req.service().bus.name(),
        },
        StatusCode::OK,
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses(
    (status = 200, description = "The OpenAPI 3 document", content_type = "application/json"),
))]
async fn openapi_json(req: Request) -> Result<Response> {
    let body = req.router()?.openapi_json().to_string();
    Ok(with_type(Response::new(body.into()), "application/json"))
}

/// The OpenAPI document, rendered for reading in a browser.
#[utoipa::path(get, path = "/docs", tag = "ops", responses(
    (status = 200, description = "An HTML page", content_type = "text/html"),
))]
async fn docs(_req: Request) -> Result<Response> {
    Ok(warp::reply::html(include_str!("../../web/docs.html")).into_response())
}

/// Prometheus metrics in the text exposition format (here unless `--metrics-addr` moves them).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
    (status = 403, description = "On a network address, from another machine", body = ErrorBody),
))]
async fn metrics(req: Request) -> Result<Response> {
    // On a class network the counters are the operator's: served on the main address, they
    // answer only this machine (a listener of their own, --metrics-addr, is the operator's
    // choice).
    let config = &req.state.config;
    let on_main = config.metrics_addr.is_none();
    let local = req.peer().is_some_and(|p| p.ip().is_loopback());
    if on_main && !config.addr.ip().is_loopback() && !local {
        return Err(Error::forbidden(
            "/metrics answers only the server's own machine; give it --metrics-addr to serve it elsewhere",
        ));
    }
    let res = Response::new(req.state.metrics.render().into());
    Ok(with_type(
        res,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    ))
}

fn with_type(mut res: Response, content_type: &'static str) -> Response {
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}
