//! Groups and their members.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{authenticated, json, json_body, no_content, respond, with_state, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::ids::{GroupId, MessageId, UserId};
use crate::store::groups::{self, Member, Role};
use crate::validate;

pub fn routes(state: &Arc<AppState>, r: &mut Routes) {
    let s = || with_state(state).and(authenticated(state));
    r.add::<__path_create>(
        warp::path!("v1" / "groups")
            .and(warp::post())
            .and(s())
            .and(json_body(state))
            .then(create)
            .map(respond),
    );
    r.add::<__path_list>(
        warp::path!("v1" / "groups")
            .and(warp::get())
            .and(s())
            .then(list)
            .map(respond),
    );
    r.add::<__path_get>(
        warp::path!("v1" / "groups" / i64)
            .and(warp::get())
            .and(s())
            .then(get)
            .map(respond),
    );
    r.add::<__path_rename>(
        warp::path!("v1" / "groups" / i64)
            .and(warp::patch())
            .and(s())
            .and(json_body(state))
            .then(rename)
            .map(respond),
    );
    r.add::<__path_delete>(
        warp::path!("v1" / "groups" / i64)
            .and(warp::delete())
            .and(s())
            .then(delete)
            .map(respond),
    );
    r.add::<__path_add_member>(
        warp::path!("v1" / "groups" / i64 / "members")
            .and(warp::post())
            .and(s())
            .and(json_body(state))
            .then(add_member)
            .map(respond),
    );
    r.add::<__path_members>(
        warp::path!("v1" / "groups" / i64 / "members")
            .and(warp::get())
            .and(s())
            .then(members)
            .map(respond),
    );
    r.add::<__path_remove_member>(
        warp::path!("v1" / "groups" / i64 / "members" / i64)
            .and(warp::delete())
            .and(s())
            .then(remove_member)
            .map(respond),
    );
    r.add::<__path_read>(
        warp::path!("v1" / "groups" / i64 / "read")
            .and(warp::post())
            .and(s())
            .and(json_body(state))
            .then(read)
            .map(respond),
    );
    r.add::<__path_direct>(
        warp::path!("v1" / "direct" / i64)
            .and(warp::post())
            .and(s())
            .then(direct)
            .map(respond),
    );
}

fn mark_online(state: &AppState, members: &mut [Member]) {
    for m in members {
        m.online = state.hub.is_online(m.id);
    }
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
        (status = 201, body = groups::Group),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "A member_id names no user", body = ErrorBody),
    ))]
async fn create(
    state: Arc<AppState>,
    user: AuthUser,
    body: CreateBody,
) -> Result<Response, ApiError> {
    let name = validate::group_name(&body.name)?.to_string();
    let group = state
        .store
        .write(move |c| groups::create(c, user.id, &name, &body.member_ids))
        .await?;
    json(&group, StatusCode::CREATED)
}

/// The caller's conversations (groups and direct chats), latest activity first.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", security(("bearer" = [])), responses(
    (status = 200, body = Vec<groups::GroupSummary>),
    (status = 401, body = ErrorBody),
))]
async fn list(state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let groups = state
        .store
        .read(move |c| groups::list_for(c, user.id))
        .await?;
    json(&groups, StatusCode::OK)
}

/// A conversation with its members.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), responses(
        (status = 200, body = groups::GroupWithMembers),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let mut group = state
        .store
        .read(move |c| groups::get(c, GroupId(id), user.id))
        .await?;
    mark_online(&state, &mut group.members);
    json(&group, StatusCode::OK)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: String,
}

/// Renames a group (owner or admin).
#[utoipa::path(patch, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), request_body = RenameBody, responses(
        (status = 200, body = groups::Group),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn rename(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: RenameBody,
) -> Result<Response, ApiError> {
    let name = validate::group_name(&body.name)?.to_string();
    let group = state
        .store
        .write(move |c| groups::rename(c, GroupId(id), user.id, &name))
        .await?;
    json(&group, StatusCode::OK)
}

/// Deletes a group and its messages (owner only).
#[utoipa::path(delete, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn delete(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    state
        .store
        .write(move |c| groups::delete(c, GroupId(id), user.id))
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
        (status = 201, body = groups::Member),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
    ))]
async fn add_member(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: AddMemberBody,
) -> Result<Response, ApiError> {
    let role = match body.role.as_deref() {
        None | Some("member") => Role::Member,
        Some("admin") => Role::Admin,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_role",
                "role must be \"member\" or \"admin\"",
            ))
        }
    };
    let mut member = state
        .store
        .write(move |c| groups::add_member(c, GroupId(id), user.id, body.user_id, role))
        .await?;
    member.online = state.hub.is_online(member.id);
    json(&member, StatusCode::CREATED)
}

#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "groups", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Conversation id")), responses(
        (status = 200, body = Vec<groups::Member>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, or not allowed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn members(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let mut members = state
        .store
        .read(move |c| groups::members(c, GroupId(id), user.id))
        .await?;
    mark_online(&state, &mut members);
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
async fn remove_member(
    id: i64,
    member: i64,
    state: Arc<AppState>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    state
        .store
        .write(move |c| groups::remove_member(c, GroupId(id), user.id, UserId(member)))
        .await?;
    no_content()
}

/// The other user of a direct conversation: anyone but the caller.
pub fn other_user(user: AuthUser, other: i64) -> Result<UserId, ApiError> {
    if other == user.id.0 {
        return Err(ApiError::invalid(
            "invalid_user_id",
            "a direct conversation is with someone else",
        ));
    }
    Ok(UserId(other))
}

/// The one direct conversation of the caller and `user_id`, created on first use.
#[utoipa::path(post, path = "/v1/direct/{user_id}", tag = "groups", security(("bearer" = [])),
    params(("user_id" = i64, Path)),
    responses(
        (status = 200, description = "It existed", body = groups::Group),
        (status = 201, description = "Created", body = groups::Group),
        (status = 400, description = "Yourself", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn direct(other: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let other = other_user(user, other)?;
    let (group, created) = state
        .store
        .write(move |c| groups::direct(c, user.id, other))
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
pub struct ReadBody {
    pub message_id: MessageId,
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
async fn read(
    id: i64,
    state: Arc<AppState>,
    user: AuthUser,
    body: ReadBody,
) -> Result<Response, ApiError> {
    state
        .store
        .write(move |c| groups::mark_read(c, GroupId(id), user.id, body.message_id))
        .await?;
    no_content()
}
