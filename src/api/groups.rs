//! Groups and their members.

use std::sync::Arc;

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{authenticated, json, json_body, no_content, respond, with_state};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::ids::{GroupId, MessageId, UserId};
use crate::store::groups::{self, Member, Role};
use crate::validate;

pub fn routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    let s = || with_state(state).and(authenticated(state));
    let create = warp::path!("v1" / "groups")
        .and(warp::post())
        .and(s())
        .and(json_body(state))
        .then(create)
        .map(respond);
    let list = warp::path!("v1" / "groups")
        .and(warp::get())
        .and(s())
        .then(list)
        .map(respond);
    let get = warp::path!("v1" / "groups" / i64)
        .and(warp::get())
        .and(s())
        .then(get)
        .map(respond);
    let rename = warp::path!("v1" / "groups" / i64)
        .and(warp::patch())
        .and(s())
        .and(json_body(state))
        .then(rename)
        .map(respond);
    let delete = warp::path!("v1" / "groups" / i64)
        .and(warp::delete())
        .and(s())
        .then(delete)
        .map(respond);
    let add_member = warp::path!("v1" / "groups" / i64 / "members")
        .and(warp::post())
        .and(s())
        .and(json_body(state))
        .then(add_member)
        .map(respond);
    let members = warp::path!("v1" / "groups" / i64 / "members")
        .and(warp::get())
        .and(s())
        .then(members)
        .map(respond);
    let remove_member = warp::path!("v1" / "groups" / i64 / "members" / i64)
        .and(warp::delete())
        .and(s())
        .then(remove_member)
        .map(respond);
    let direct = warp::path!("v1" / "direct" / i64)
        .and(warp::post())
        .and(s())
        .then(direct)
        .map(respond);
    let read = warp::path!("v1" / "groups" / i64 / "read")
        .and(warp::post())
        .and(s())
        .and(json_body(state))
        .then(read)
        .map(respond);
    create
        .or(direct)
        .unify()
        .or(read)
        .unify()
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(rename)
        .unify()
        .or(delete)
        .unify()
        .or(add_member)
        .unify()
        .or(members)
        .unify()
        .or(remove_member)
        .unify()
        .boxed()
}

fn mark_online(state: &AppState, members: &mut [Member]) {
    for m in members {
        m.online = state.hub.is_online(m.id);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    member_ids: Vec<UserId>,
}

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

async fn list(state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let groups = state
        .store
        .read(move |c| groups::list_for(c, user.id))
        .await?;
    json(&groups, StatusCode::OK)
}

async fn get(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let mut group = state
        .store
        .read(move |c| groups::get(c, GroupId(id), user.id))
        .await?;
    mark_online(&state, &mut group.members);
    json(&group, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: String,
}

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

async fn delete(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    state
        .store
        .write(move |c| groups::delete(c, GroupId(id), user.id))
        .await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    user_id: UserId,
    role: Option<String>,
}

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

async fn members(id: i64, state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let mut members = state
        .store
        .read(move |c| groups::members(c, GroupId(id), user.id))
        .await?;
    mark_online(&state, &mut members);
    json(&members, StatusCode::OK)
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    pub message_id: MessageId,
}

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
