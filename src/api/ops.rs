//! Operations: health.

use std::sync::Arc;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{respond, with_state};
use crate::app::AppState;
use crate::error::ApiError;

pub fn routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    warp::path!("healthz")
        .and(warp::get())
        .and(with_state(state))
        .then(health)
        .map(respond)
        .boxed()
}

async fn health(state: Arc<AppState>) -> Result<Response, ApiError> {
    if !state.store.healthy().await {
        return Err(ApiError::Unavailable("the database is unusable".into()));
    }
    super::json(
        &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
        StatusCode::OK,
    )
}
