//! Accounts and profiles: register, me, and the public user directory.

use std::sync::Arc;

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{authenticated, json, json_body, query, respond, with_state, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::store::{users, written};
use crate::validate;

pub fn routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    let register = warp::path!("v1" / "users" / "register")
        .and(warp::post())
        .and(with_state(state))
        .and(json_body(state))
        .then(register)
        .map(respond);
    let me = warp::path!("v1" / "me")
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .then(me)
        .map(respond);
    let list = warp::path!("v1" / "users")
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and(query())
        .then(list)
        .map(respond);
    let one = warp::path!("v1" / "users" / i64)
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .then(one)
        .map(respond);
    register
        .or(me)
        .unify()
        .or(list)
        .unify()
        .or(one)
        .unify()
        .boxed()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
}

async fn register(state: Arc<AppState>, body: RegisterBody) -> Result<Response, ApiError> {
    let username = body.username.trim().to_string();
    let email = body.email.trim().to_string();
    validate::username(&username)?;
    validate::email(&email)?;
    validate::password(&body.password)?;
    let hash = state.passwords.hash(&body.password).await?;
    let profile = state
        .store
        .write(move |c| {
            Ok(written(
                users::insert(c, &username, &email, &hash)?,
                Vec::new(),
            ))
        })
        .await?;
    json(&profile, StatusCode::CREATED)
}

async fn me(state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let profile = state
        .store
        .read(move |c| users::profile(c, user.id))
        .await?;
    let profile = profile.ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    json(&profile, StatusCode::OK)
}

async fn list(state: Arc<AppState>, _user: AuthUser, q: Query) -> Result<Response, ApiError> {
    let text = q.text("q").unwrap_or("").trim().to_string();
    let limit = validate::limit(q.number("limit", "invalid_limit")?)?;
    let offset: u32 = q.number("offset", "invalid_query")?.unwrap_or(0);
    let mut found = state
        .store
        .read(move |c| users::search(c, &text, limit, offset))
        .await?;
    for u in &mut found {
        u.online = state.hub.is_online(u.id);
    }
    json(&found, StatusCode::OK)
}

async fn one(id: i64, state: Arc<AppState>, _user: AuthUser) -> Result<Response, ApiError> {
    let id = UserId(id);
    let mut user = state
        .store
        .read(move |c| users::public(c, id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    user.online = state.hub.is_online(user.id);
    json(&user, StatusCode::OK)
}
