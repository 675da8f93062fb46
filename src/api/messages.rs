//! Messages over HTTP: send and page through history.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{authenticated, json, json_body, query, respond, with_state, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::ids::{GroupId, MessageId};
use crate::store::messages::{self, Message, Page, Sent};
use crate::validate;

pub fn routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    let send = warp::path!("v1" / "messages" / "group" / i64)
        .and(warp::post())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(state))
        .then(send)
        .map(respond);
    let history = warp::path!("v1" / "messages" / "group" / i64)
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and(query())
        .then(history)
        .map(respond);
    send.or(history).unify().boxed()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub content: String,
    pub client_id: Option<String>,
}

/// Validates and queues a send now (so one client's sends keep their order), returning the
/// future of its commit. Shared by HTTP and the WebSocket `send` frame.
pub fn submit_send(
    state: &AppState,
    user: AuthUser,
    group: GroupId,
    body: SendBody,
) -> Result<impl std::future::Future<Output = Result<Sent, ApiError>> + Send + 'static, ApiError> {
    let content = validate::content(&body.content)?.to_string();
    let client_id = validate::client_id(body.client_id.as_deref())?.map(str::to_string);
    state
        .store
        .submit(move |c| messages::send(c, group, user.id, &content, client_id.as_deref()))
}

async fn send(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: SendBody,
) -> Result<Response, ApiError> {
    match submit_send(&state, user, GroupId(id), body)?.await? {
        Sent::New(m) => json(&m, StatusCode::CREATED),
        Sent::Repeat(m) => json(&m, StatusCode::OK),
    }
}

#[derive(Serialize)]
struct HistoryPage {
    messages: Vec<Message>,
    has_more: bool,
}

async fn history(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    q: Query,
) -> Result<Response, ApiError> {
    let page = Page {
        before: q.number("before", "invalid_query")?.map(MessageId),
        after: q.number("after", "invalid_query")?.map(MessageId),
        limit: validate::limit(q.number("limit", "invalid_limit")?)?,
    };
    let (messages, has_more) = state
        .store
        .read(move |c| messages::history(c, GroupId(id), user.id, page))
        .await?;
    json(&HistoryPage { messages, has_more }, StatusCode::OK)
}
