//! Messages over HTTP: send, page through history, edit, delete and search.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

use super::request::Query;
use super::{json, no_content, ErrorBody, Request, Routes};
use crate::error::Result;
use crate::model::{AttachmentId, GroupId, Message, MessageId};
use crate::service::{NewMessage, PageQuery};
use crate::store::Sent;

pub(super) fn routes(r: &mut Routes) {
    r.add(__path_send, send)
        .add(__path_history, history)
        .add(__path_send_direct, send_direct)
        .add(__path_direct_history, direct_history)
        .add(__path_edit, edit)
        .add(__path_delete, delete)
        .add(__path_search, search)
        .add(__path_react, react)
        .add(__path_unreact, unreact);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// 1–4000 characters; may be empty or left out when there are attachments.
    content: Option<String>,
    client_id: Option<String>,
    /// Ids of the sender's own uploads (`POST /v1/attachments`), at most ten.
    #[serde(default)]
    attachment_ids: Vec<AttachmentId>,
    /// A message of the same conversation that this one answers.
    reply_to: Option<MessageId>,
}

impl SendBody {
    fn message(&self) -> NewMessage<'_> {
        NewMessage {
            content: self.content.as_deref(),
            client_id: self.client_id.as_deref(),
            attachment_ids: &self.attachment_ids,
            reply_to: self.reply_to,
        }
    }
}

fn sent(sent: Sent) -> Result<Response> {
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
async fn send(mut req: Request) -> Result<Response> {
    let (user, group) = (req.user()?, req.id("id")?);
    let body: SendBody = req.json().await?;
    let pending = req.service().send(user, group, &body.message());
    sent(pending.await?)
}

/// Sends to the direct conversation with `user_id`, creating it if needed.
#[utoipa::path(post, path = "/v1/messages/direct/{user_id}", tag = "messages",
    security(("bearer" = [])), params(("user_id" = i64, Path)),
    request_body = SendBody, responses(
        (status = 201, body = Message),
        (status = 200, description = "A repeat of an earlier client_id", body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The user has blocked the caller", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "One of the two is in too many conversations", body = ErrorBody),
    ))]
async fn send_direct(mut req: Request) -> Result<Response> {
    let (user, other) = (req.user()?, req.id("user_id")?);
    let body: SendBody = req.json().await?;
    let result = req
        .service()
        .send_direct(user, other, &body.message())
        .await?;
    sent(result)
}

#[derive(Serialize, ToSchema)]
struct HistoryPage {
    messages: Vec<Message>,
    has_more: bool,
}

/// The query of both history routes, as the document shows it; `page` reads it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read field by field by `page`, for the contract's error codes
struct PageParams {
    /// Only ids below this
    before: Option<i64>,
    /// Only ids above this (then the oldest first)
    after: Option<i64>,
    /// 1–200, default 50
    limit: Option<u32>,
}

fn page(q: &Query) -> Result<PageQuery> {
    Ok(PageQuery {
        before: q.number("before", "invalid_query")?.map(MessageId),
        after: q.number("after", "invalid_query")?.map(MessageId),
        limit: q.number("limit", "invalid_limit")?,
    })
}

/// A page of history in ascending id order.
#[utoipa::path(get, path = "/v1/messages/group/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id"), PageParams),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn history(req: Request) -> Result<Response> {
    let page = page(&req.query()?)?;
    let (messages, has_more) = req
        .service()
        .history(req.user()?, req.id("id")?, page)
        .await?;
    json(&HistoryPage { messages, has_more }, StatusCode::OK)
}

/// A page of the direct conversation with `user_id` (empty if they never wrote).
#[utoipa::path(get, path = "/v1/messages/direct/{user_id}", tag = "messages",
    security(("bearer" = [])),
    params(("user_id" = i64, Path), PageParams),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn direct_history(req: Request) -> Result<Response> {
    let page = page(&req.query()?)?;
    let (messages, has_more) = req
        .service()
        .direct_history(req.user()?, req.id("user_id")?, page)
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
async fn edit(mut req: Request) -> Result<Response> {
    let (user, message) = (req.user()?, req.id("id")?);
    let body: EditBody = req.json().await?;
    let edited = req.service().edit(user, message, &body.content).await?;
    json(&edited, StatusCode::OK)
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
async fn delete(req: Request) -> Result<Response> {
    req.service()
        .delete_message(req.user()?, req.id("id")?)
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
        (status = 429, description = "Two searches of this user are running", body = ErrorBody),
        (status = 503, description = "The search ran over its time budget", body = ErrorBody),
    ))]
async fn search(req: Request) -> Result<Response> {
    let q = req.query()?;
    let group = q.number("group_id", "invalid_query")?.map(GroupId);
    let limit = q.number("limit", "invalid_limit")?;
    let text = q.text("q").unwrap_or("");
    let messages = req
        .service()
        .search(req.user()?, text, group, limit)
        .await?;
    json(&SearchResults { messages }, StatusCode::OK)
}

/// Adds the caller's reaction (idempotent); every member's sockets get `message_reactions`.
#[utoipa::path(put, path = "/v1/messages/{id}/reactions/{emoji}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Message id"),
           ("emoji" = String, Path, description = "One emoji, percent-encoded")),
    responses(
        (status = 204, description = "The caller reacts with it"),
        (status = 400, description = "Not one emoji (invalid_emoji)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Deleted, or 20 emoji already (limit_reached)", body = ErrorBody),
    ))]
async fn react(req: Request) -> Result<Response> {
    reaction(req, true).await
}

/// Takes the caller's reaction back (idempotent).
#[utoipa::path(delete, path = "/v1/messages/{id}/reactions/{emoji}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Message id"),
           ("emoji" = String, Path, description = "One emoji, percent-encoded")),
    responses(
        (status = 204, description = "The caller no longer reacts with it"),
        (status = 400, description = "Not one emoji (invalid_emoji)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The message was deleted", body = ErrorBody),
    ))]
async fn unreact(req: Request) -> Result<Response> {
    reaction(req, false).await
}

/// Both reaction routes: the caller's `{emoji}` on message `{id}`, added (`on`) or taken back.
async fn reaction(req: Request, on: bool) -> Result<Response> {
    let (user, message) = (req.user()?, req.id("id")?);
    let emoji = req.text("emoji")?;
    req.service().react(user, message, &emoji, on).await?;
    no_content()
}
