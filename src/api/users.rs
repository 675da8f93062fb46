//! Accounts and profiles: register, me, and the public user directory.

use std::sync::Arc;

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{authenticated, json, json_body, query, respond, with_state, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::store::{tokens, users, written};
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
    let update_me = warp::path!("v1" / "me")
        .and(warp::patch())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(state))
        .then(update_me)
        .map(respond);
    let password = warp::path!("v1" / "me" / "password")
        .and(warp::put())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(state))
        .then(change_password)
        .map(respond);
    register
        .or(me)
        .unify()
        .or(update_me)
        .unify()
        .or(password)
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

/// `PATCH /v1/me`: a field that is absent stays; `null` (or an empty string) clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    #[serde(default, deserialize_with = "present")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    public_key: Option<Option<String>>,
}

/// Tells a field given as `null` (Some(None)) from one left out (None, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Trims a profile field; empty means clear.
fn cleaned(value: Option<Option<String>>) -> Option<Option<String>> {
    value.map(|v| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

async fn update_me(
    state: Arc<AppState>,
    user: AuthUser,
    body: ProfileBody,
) -> Result<Response, ApiError> {
    let changes = users::ProfileChanges {
        display_name: cleaned(body.display_name),
        avatar_url: cleaned(body.avatar_url),
        public_key: cleaned(body.public_key),
    };
    if let Some(Some(name)) = &changes.display_name {
        validate::display_name(name)?;
    }
    if let Some(Some(url)) = &changes.avatar_url {
        validate::avatar_url(url)?;
    }
    if let Some(Some(key)) = &changes.public_key {
        validate::public_key(key)?;
    }
    let profile = state
        .store
        .write(move |c| {
            Ok(written(
                users::update_profile(c, user.id, &changes)?,
                Vec::new(),
            ))
        })
        .await?;
    json(&profile, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the password and signs the user out of every session (refresh tokens revoked).
async fn change_password(
    state: Arc<AppState>,
    user: AuthUser,
    body: PasswordBody,
) -> Result<Response, ApiError> {
    validate::password(&body.new_password)?;
    let current = state
        .store
        .read(move |c| users::password_hash(c, user.id))
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    if !state
        .passwords
        .verify(&body.current_password, Some(&current))
        .await?
    {
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    let hash = state.passwords.hash(&body.new_password).await?;
    state
        .store
        .write(move |c| {
            users::set_password(c, user.id, &hash)?;
            tokens::revoke_all(c, user.id)?;
            Ok(written((), Vec::new()))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
