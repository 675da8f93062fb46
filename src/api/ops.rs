//! Operations: health, the OpenAPI document and its rendering, and Prometheus metrics.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{respond, with_state, Routes};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

pub fn routes(state: &Arc<AppState>, r: &mut Routes) {
    r.add::<__path_health>(
        warp::path!("healthz")
            .and(warp::get())
            .and(with_state(state))
            .then(health)
            .map(respond),
    );
    r.add::<__path_openapi_json>(
        warp::path!("openapi.json")
            .and(warp::get())
            .map(openapi_json),
    );
    r.add::<__path_docs>(warp::path!("docs").and(warp::get()).map(docs));
    if state.config.metrics_addr.is_none() {
        r.add::<__path_metrics>(
            warp::path!("metrics")
                .and(warp::get())
                .and(with_state(state))
                .map(|state: Arc<AppState>| metrics(&state)),
        );
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// "ok"
    status: &'static str,
    version: &'static str,
}

/// Whether the server and its database answer.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses(
    (status = 200, body = Health),
    (status = 503, description = "The database is unusable", body = ErrorBody),
))]
async fn health(state: Arc<AppState>) -> Result<Response, ApiError> {
    if !state.store.healthy().await {
        return Err(ApiError::Unavailable("the database is unusable".into()));
    }
    super::json(
        &Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
        },
        StatusCode::OK,
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses(
    (status = 200, description = "The OpenAPI 3 document", content_type = "application/json"),
))]
fn openapi_json() -> Response {
    let body = super::openapi::document_json();
    let mut res = Response::new(body.into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The OpenAPI document, rendered for reading in a browser.
#[utoipa::path(get, path = "/docs", tag = "ops", responses(
    (status = 200, description = "An HTML page", content_type = "text/html"),
))]
fn docs() -> Response {
    warp::reply::html(include_str!("../../web/docs.html")).into_response()
}

/// Prometheus metrics in the text exposition format (here unless `--metrics-addr` moves them).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
))]
pub fn metrics(state: &AppState) -> Response {
    let mut res = Response::new(state.metrics.render().into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    res
}
