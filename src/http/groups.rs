//! Groups, their members, read markers and direct conversations.

use serde::Deserialize;
use utoipa::ToSchema;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::{json, no_content, ErrorBody, Request, Routes};
use crate::error::Result;
use crate::model::{Group, GroupId, GroupSummary, GroupWithMembers, Member, MessageId, UserId};

pub(super) fn routes(r: &mut Routes) {
    r.add(__path_create, create)
        .add(__path_list, list)
        .add(__path_get, get)
        .add(__path_rename, rename)
        .add(__path_delete, delete)
        .add(__path_add_member, add_member)
        .add(__path_members, members)
        .add(__path_remove_member, remove_member)
        .add(__path_update_member, update_member)
        .add(__path_read, read)
        .add(__path_direct, direct);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    member_ids: Vec<UserId>,
}

/// Creates a group; the caller is its owner and a member.
#[utoipa::path(post, path = "/v1/groups", tag = "groups", security(("bearer" = [])),
    request_body = CreateBody, responses(
        (status = 201, body = Group),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A member has blocked the caller", body = ErrorBody),
        (status = 404, description = "A member_id names no user", body = ErrorBody),
        (status = 409, description = "Too many groups owned, or a member in too many conversations", body = ErrorBody),
    ))]
async fn create(mut req: Request) -> Result<Response> {
    let user = req.user()?;
    let body: CreateBody = req.json().await?;
    let group = req
        .service()
        .create_group(user, &body.name, body.member_ids)
        .await?;
    json(&group, StatusCode::CREATED)
}

/// The caller's conversations (groups and direct chats), latest activity first, a page at a
/// time: `X-Has-More` says whether more follow, and `X-Next-Before` is the `before` of the next
/// page.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "1–1000, default 200"),
        ("before" = Option<String>, Query, description = "Only conversations after this cursor (X-Next-Before)"),
    ),
    responses(
        (status = 200, body = Vec<GroupSummary>, headers(
            ("X-Has-More" = String, description = "true when more conversations follow"),
            ("X-Next-Before" = String, description = "The cursor of the next page, when there is one"),
        )),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
async fn list(req: Request) -> Result<Response> {
    let q = req.query()?;
    let limit = q.number("limit", "invalid_limit")?;
    let (page, next) = req
        .service()
        .conversations(req.user()?, q.text("before"), limit)
        .await?;
    let mut res = json(&page, StatusCode::OK)?;
    let h = res.headers_mut();
    let more = if next.is_some() { "true" } else { "false" };
    h.insert("x-has-more", HeaderValue::from_static(more));
    if let Some(cursor) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("x-next-before", cursor);
    }
    Ok(res)
}

/// A conversation with its members.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), responses(
        (status = 200, body = GroupWithMembers),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get(req: Request) -> Result<Response> {
    let group = req.service().group(req.user()?, req.id("id")?).await?;
    json(&group, StatusCode::OK)
}

/// Give `name`, `posting` (`everyone` or `admins`: an announcement group), or both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GroupPatch {
    name: Option<String>,
    posting: Option<String>,
}

/// Renames a group, or sets who may post in it (owner or admin).
#[utoipa::path(patch, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), request_body = GroupPatch, responses(
        (status = 200, body = Group),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn rename(mut req: Request) -> Result<Response> {
    let (user, group): (_, GroupId) = (req.user()?, req.id("id")?);
    let body: GroupPatch = req.json().await?;
    let group = req
        .service()
        .update_group(user, group, body.name.as_deref(), body.posting.as_deref())
        .await?;
    json(&group, StatusCode::OK)
}

/// Give `role` (`member` or `admin`), `muted_until` (RFC 3339, or `null` to unmute), or both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    role: Option<String>,
    #[serde(default, deserialize_with = "present")]
    muted_until: Option<Option<String>>,
}

/// Tells a field given as `null` (Some(None)) from one left out (None, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes a member's role, or mutes them until a time (owner or admin; not the owner, not
/// oneself). A muted member's sends get 403 `muted`.
#[utoipa::path(patch, path = "/v1/groups/{id}/members/{user_id}", tag = "groups",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id"), ("user_id" = i64, Path)),
    request_body = MemberPatch, responses(
        (status = 200, body = Member),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn update_member(mut req: Request) -> Result<Response> {
    let (user, group, member) = (req.user()?, req.id("id")?, req.id("user_id")?);
    let body: MemberPatch = req.json().await?;
    let muted_until = body.muted_until.as_ref().map(Option::as_deref);
    let member = req
        .service()
        .update_member(user, group, member, body.role.as_deref(), muted_until)
        .await?;
    json(&member, StatusCode::OK)
}

/// Deletes a group and its messages (owner only).
#[utoipa::path(delete, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn delete(req: Request) -> Result<Response> {
    req.service()
        .delete_group(req.user()?, req.id("id")?)
        .await?;
    no_content()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    user_id: UserId,
    role: Option<String>,
}

/// Adds a member, as `member` (default) or `admin` (owner or admin only).
#[utoipa::path(post, path = "/v1/groups/{id}/members", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), request_body = AddMemberBody, responses(
        (status = 201, body = Member),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
    ))]
async fn add_member(mut req: Request) -> Result<Response> {
    let (user, group): (_, GroupId) = (req.user()?, req.id("id")?);
    let body: AddMemberBody = req.json().await?;
    let member = req
        .service()
        .add_member(user, group, body.user_id, body.role.as_deref())
        .await?;
    json(&member, StatusCode::CREATED)
}

/// The members of a conversation, with their roles, mutes and whether they are online.
#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), responses(
        (status = 200, body = Vec<Member>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn members(req: Request) -> Result<Response> {
    let members = req.service().members(req.user()?, req.id("id")?).await?;
    json(&members, StatusCode::OK)
}

/// Removes a member: owner or admin remove anyone but the owner; anyone may leave.
#[utoipa::path(delete, path = "/v1/groups/{id}/members/{user_id}", tag = "groups",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id"), ("user_id" = i64, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn remove_member(req: Request) -> Result<Response> {
    let (group, member) = (req.id("id")?, req.id("user_id")?);
    req.service()
        .remove_member(req.user()?, group, member)
        .await?;
    no_content()
}

/// The one direct conversation of the caller and `user_id`, created on first use.
#[utoipa::path(post, path = "/v1/direct/{user_id}", tag = "groups", security(("bearer" = [])),
    params(("user_id" = i64, Path)),
    responses(
        (status = 200, description = "It existed", body = Group),
        (status = 201, description = "Created", body = Group),
        (status = 400, description = "Yourself", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The user has blocked the caller", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "One of the two is in too many conversations", body = ErrorBody),
    ))]
async fn direct(req: Request) -> Result<Response> {
    let (group, created) = req
        .service()
        .direct(req.user()?, req.id("user_id")?)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json(&group, status)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    message_id: MessageId,
}

/// Moves the caller's read marker forward to `message_id`.
#[utoipa::path(post, path = "/v1/groups/{id}/read", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), request_body = ReadBody, responses(
        (status = 204, description = "Marked (or already past it)"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn read(mut req: Request) -> Result<Response> {
    let (user, group) = (req.user()?, req.id("id")?);
    let body: ReadBody = req.json().await?;
    req.service()
        .mark_read(user, group, body.message_id)
        .await?;
    no_content()
}
