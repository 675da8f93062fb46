//! Messages over HTTP: send and page through history.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::groups::other_user;
use super::{
    authenticated, json, json_body, no_content, query, respond, with_state, Query, Routes,
};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::ids::{GroupId, MessageId};
use crate::store::groups;
use crate::store::messages::{self, Message, Page, Sent};
use crate::validate;

pub fn routes(state: &Arc<AppState>, r: &mut Routes) {
    let s = || with_state(state).and(authenticated(state));
    r.add::<__path_send>(
        warp::path!("v1" / "messages" / "group" / i64)
            .and(warp::post())
            .and(s())
            .and(json_body(state))
            .then(send)
            .map(respond),
    );
    r.add::<__path_history>(
        warp::path!("v1" / "messages" / "group" / i64)
            .and(warp::get())
            .and(s())
            .and(query())
            .then(history)
            .map(respond),
    );
    r.add::<__path_send_direct>(
        warp::path!("v1" / "messages" / "direct" / i64)
            .and(warp::post())
            .and(s())
            .and(json_body(state))
            .then(send_direct)
            .map(respond),
    );
    r.add::<__path_direct_history>(
        warp::path!("v1" / "messages" / "direct" / i64)
            .and(warp::get())
            .and(s())
            .and(query())
            .then(direct_history)
            .map(respond),
    );
    r.add::<__path_edit>(
        warp::path!("v1" / "messages" / i64)
            .and(warp::patch())
            .and(s())
            .and(json_body(state))
            .then(edit)
            .map(respond),
    );
    r.add::<__path_delete>(
        warp::path!("v1" / "messages" / i64)
            .and(warp::delete())
            .and(s())
            .then(delete)
            .map(respond),
    );
    r.add::<__path_search>(
        warp::path!("v1" / "messages" / "search")
            .and(warp::get())
            .and(s())
            .and(query())
            .then(search)
            .map(respond),
    );
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub content: String,
    pub client_id: Option<String>,
}

impl SendBody {
    /// The content, trimmed, and the client_id, both checked: the same rules for every way in.
    fn validated(self) -> Result<(String, Option<String>), ApiError> {
        let content = validate::content(&self.content)?.to_string();
        let client_id = validate::client_id(self.client_id.as_deref())?.map(str::to_string);
        Ok((content, client_id))
    }
}

/// Validates and queues a send now (so one client's sends keep their order), returning the
/// future of its commit. Shared by HTTP and the WebSocket `send` frame.
pub fn submit_send(
    state: &AppState,
    user: AuthUser,
    group: GroupId,
    body: SendBody,
) -> Result<impl std::future::Future<Output = Result<Sent, ApiError>> + Send + 'static, ApiError> {
    let (content, client_id) = body.validated()?;
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

/// Sends a message; a repeated `client_id` returns the first message with 200.
#[utoipa::path(post, path = "/v1/messages/group/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")),
    request_body = SendBody, responses(
        (status = 201, body = Message),
        (status = 200, description = "A repeat of an earlier client_id", body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn send(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: SendBody,
) -> Result<Response, ApiError> {
    sent(submit_send(&state, user, GroupId(id), body)?.await?)
}

/// Sends to the direct conversation with `user_id`, creating it if needed.
#[utoipa::path(post, path = "/v1/messages/direct/{user_id}", tag = "messages",
    security(("bearer" = [])), params(("user_id" = i64, Path)),
    request_body = SendBody, responses(
        (status = 201, body = Message),
        (status = 200, description = "A repeat of an earlier client_id", body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn send_direct(
    other: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: SendBody,
) -> Result<Response, ApiError> {
    let other = other_user(user, other)?;
    let (content, client_id) = body.validated()?;
    let result = state
        .store
        .write(move |c| messages::send_direct(c, user.id, other, &content, client_id.as_deref()))
        .await?;
    sent(result)
}

#[derive(Serialize, ToSchema)]
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

/// A page of history in ascending id order.
#[utoipa::path(get, path = "/v1/messages/group/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id"),
        ("before" = Option<i64>, Query, description = "Only ids below this"),
        ("after" = Option<i64>, Query, description = "Only ids above this (then the oldest first)"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
    ),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
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
/// A page of the direct conversation with `user_id` (empty if they never wrote).
#[utoipa::path(get, path = "/v1/messages/direct/{user_id}", tag = "messages",
    security(("bearer" = [])),
    params(("user_id" = i64, Path),
        ("before" = Option<i64>, Query, description = "Only ids below this"),
        ("after" = Option<i64>, Query, description = "Only ids above this (then the oldest first)"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
    ),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EditBody {
    content: String,
}

/// Changes a message's content (the sender only).
#[utoipa::path(patch, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Message id")),
    request_body = EditBody, responses(
        (status = 200, body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The message was deleted", body = ErrorBody),
    ))]
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

/// Deletes a message, leaving a tombstone (the sender, or the group's owner or admin).
#[utoipa::path(delete, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Message id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn delete(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    state
        .store
        .write(move |c| messages::delete(c, MessageId(id), user.id))
        .await?;
    no_content()
}

#[derive(Serialize, ToSchema)]
struct SearchResults {
    messages: Vec<Message>,
}

/// Messages of the caller's conversations containing every word of `q`, newest first.
#[utoipa::path(get, path = "/v1/messages/search", tag = "messages", security(("bearer" = [])),
    params(
        ("q" = String, Query, description = "Words; the last also matches as a prefix"),
        ("group_id" = Option<i64>, Query, description = "Only this conversation"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
    ),
    responses(
        (status = 200, body = SearchResults),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
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
