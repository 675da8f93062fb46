//! Accounts and profiles: register, me, and the public user directory.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{authenticated, json, json_body, query, respond, with_state, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Registration;
use crate::error::{ApiError, ErrorBody};
use crate::ids::UserId;
use crate::store::{tokens, users, written};
use crate::validate;

pub fn routes(state: &Arc<AppState>, r: &mut Routes) {
    r.add::<__path_register>(
        warp::path!("v1" / "users" / "register")
            .and(warp::post())
            .and(with_state(state))
            .and(json_body(state))
            .then(register)
            .map(respond),
    );
    r.add::<__path_me>(
        warp::path!("v1" / "me")
            .and(warp::get())
            .and(with_state(state))
            .and(authenticated(state))
            .then(me)
            .map(respond),
    );
    r.add::<__path_update_me>(
        warp::path!("v1" / "me")
            .and(warp::patch())
            .and(with_state(state))
            .and(authenticated(state))
            .and(json_body(state))
            .then(update_me)
            .map(respond),
    );
    r.add::<__path_change_password>(
        warp::path!("v1" / "me" / "password")
            .and(warp::put())
            .and(with_state(state))
            .and(authenticated(state))
            .and(json_body(state))
            .then(change_password)
            .map(respond),
    );
    r.add::<__path_list>(
        warp::path!("v1" / "users")
            .and(warp::get())
            .and(with_state(state))
            .and(authenticated(state))
            .and(query())
            .then(list)
            .map(respond),
    );
    r.add::<__path_one>(
        warp::path!("v1" / "users" / i64)
            .and(warp::get())
            .and(with_state(state))
            .and(authenticated(state))
            .then(one)
            .map(respond),
    );
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
}

/// Creates an account: username 3–32 of `[A-Za-z0-9_.-]`, password 8–128 characters.
#[utoipa::path(post, path = "/v1/users/register", tag = "users", request_body = RegisterBody, responses(
    (status = 201, body = users::Profile),
    (status = 400, body = ErrorBody),
    (status = 403, description = "Registration is closed (--registration closed)", body = ErrorBody),
    (status = 409, description = "Username or email taken", body = ErrorBody),
))]
async fn register(state: Arc<AppState>, body: RegisterBody) -> Result<Response, ApiError> {
    if state.config.registration == Registration::Closed {
        return Err(ApiError::forbidden(
            "registration is closed on this server; ask its operator for an account",
        ));
    }
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
    state.accounts.add(profile.id);
    json(&profile, StatusCode::CREATED)
}

/// The caller's own profile, with email.
#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = [])), responses(
    (status = 200, body = users::Profile),
    (status = 401, body = ErrorBody),
))]
async fn me(state: Arc<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let profile = state
        .store
        .read(move |c| users::profile(c, user.id))
        .await?;
    let profile = profile.ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    json(&profile, StatusCode::OK)
}

/// Users whose username or display name contains `q`.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "Text in the username or display name"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
        ("offset" = Option<u32>, Query),
    ),
    responses(
        (status = 200, body = Vec<users::PublicUser>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
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

/// A user's public profile.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = users::PublicUser),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
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
#[derive(Deserialize, ToSchema)]
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

/// Changes the caller's display name, avatar URL or public key.
#[utoipa::path(patch, path = "/v1/me", tag = "users", security(("bearer" = [])),
    request_body = ProfileBody, responses(
        (status = 200, body = users::Profile),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the password and signs the user out of every session (refresh tokens revoked).
#[utoipa::path(put, path = "/v1/me/password", tag = "users", security(("bearer" = [])),
    request_body = PasswordBody, responses(
        (status = 204, description = "Changed; every refresh token is revoked"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The current password is wrong", body = ErrorBody),
    ))]
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
