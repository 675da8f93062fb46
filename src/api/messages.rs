//! Messages over HTTP: send and page through history.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::groups::other_user;
use super::{authenticated, json, json_body, no_content, query, respond, with_state, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::ids::{GroupId, MessageId};
use crate::store::groups;
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
    let send_direct = warp::path!("v1" / "messages" / "direct" / i64)
        .and(warp::post())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(state))
        .then(send_direct)
        .map(respond);
    let direct_history = warp::path!("v1" / "messages" / "direct" / i64)
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and(query())
        .then(direct_history)
        .map(respond);
    let edit = warp::path!("v1" / "messages" / i64)
        .and(warp::patch())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(state))
        .then(edit)
        .map(respond);
    let delete = warp::path!("v1" / "messages" / i64)
        .and(warp::delete())
        .and(with_state(state))
        .and(authenticated(state))
        .then(delete)
        .map(respond);
    let search = warp::path!("v1" / "messages" / "search")
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and(query())
        .then(search)
        .map(respond);
    send.or(history)
        .unify()
        .or(send_direct)
        .unify()
        .or(direct_history)
        .unify()
        .or(edit)
        .unify()
        .or(delete)
        .unify()
        .or(search)
        .unify()
        .boxed()
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

fn sent(sent: Sent) -> Result<Response, ApiError> {
    match sent {
        Sent::New(m) => json(&m, StatusCode::CREATED),
        Sent::Repeat(m) => json(&m, StatusCode::OK),
    }
}

async fn send(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: SendBody,
) -> Result<Response, ApiError> {
    sent(submit_send(&state, user, GroupId(id), body)?.await?)
}

async fn send_direct(
    other: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: SendBody,
) -> Result<Response, ApiError> {
    let other = other_user(user, other)?;
    let content = validate::content(&body.content)?.to_string();
    let client_id = validate::client_id(body.client_id.as_deref())?.map(str::to_string);
    let result = state
        .store
        .write(move |c| messages::send_direct(c, user.id, other, &content, client_id.as_deref()))
        .await?;
    sent(result)
}

#[derive(Serialize)]
struct HistoryPage {
    messages: Vec<Message>,
    has_more: bool,
}

fn page(q: &Query) -> Result<Page, ApiError> {
    Ok(Page {
        before: q.number("before", "invalid_query")?.map(MessageId),
        after: q.number("after", "invalid_query")?.map(MessageId),
        limit: validate::limit(q.number("limit", "invalid_limit")?)?,
    })
}

async fn history(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    q: Query,
) -> Result<Response, ApiError> {
    let page = page(&q)?;
    let (messages, has_more) = state
        .store
        .read(move |c| messages::history(c, GroupId(id), user.id, page))
        .await?;
    json(&HistoryPage { messages, has_more }, StatusCode::OK)
}

/// A direct conversation's history; an empty page while the two have never written.
async fn direct_history(
    other: i64,
    state: Arc<AppState>,
    user: AuthUser,
    q: Query,
) -> Result<Response, ApiError> {
    let other = other_user(user, other)?;
    let page = page(&q)?;
    let (messages, has_more) = state
        .store
        .read(move |c| match groups::direct_between(c, user.id, other)? {
            Some(group) => messages::history(c, group, user.id, page),
            None => Ok((Vec::new(), false)),
        })
        .await?;
    json(&HistoryPage { messages, has_more }, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    content: String,
}

async fn edit(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: EditBody,
) -> Result<Response, ApiError> {
    let content = validate::content(&body.content)?.to_string();
    let message = state
        .store
        .write(move |c| messages::edit(c, MessageId(id), user.id, &content))
        .await?;
    json(&message, StatusCode::OK)
}

async fn delete(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    state
        .store
        .write(move |c| messages::delete(c, MessageId(id), user.id))
        .await?;
    no_content()
}

#[derive(Serialize)]
struct SearchResults {
    messages: Vec<Message>,
}

async fn search(state: Arc<AppState>, user: AuthUser, q: Query) -> Result<Response, ApiError> {
    let text = q.text("q").unwrap_or("").trim().to_string();
    if text.is_empty() {
        return Err(ApiError::invalid(
            "invalid_query",
            "give the words to search for in q",
        ));
    }
    let group = q.number("group_id", "invalid_query")?.map(GroupId);
    let limit = validate::limit(q.number("limit", "invalid_limit")?)?;
    let messages = state
        .store
        .read(move |c| messages::search(c, user.id, &text, group, limit))
        .await?;
    json(&SearchResults { messages }, StatusCode::OK)
}
