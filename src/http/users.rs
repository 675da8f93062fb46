//! Accounts and profiles: register, me, and the public user directory.

use serde::Deserialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{json, no_content, ErrorBody, Request, Routes};
use crate::error::Result;
use crate::model::{Profile, PublicUser, UserId};
use crate::service::ProfileEdit;

pub(super) fn routes(r: &mut Routes) {
    r.add(__path_register, register)
        .add(__path_me, me)
        .add(__path_update_me, update_me)
        .add(__path_change_password, change_password)
        .add(__path_list, list)
        .add(__path_one, one)
        .add(__path_block, block)
        .add(__path_unblock, unblock)
        .add(__path_blocks, blocks);
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
    (status = 201, body = Profile),
    (status = 400, body = ErrorBody),
    (status = 403, description = "Registration is closed (--registration closed)", body = ErrorBody),
    (status = 409, description = "Username or email taken", body = ErrorBody),
    (status = 429, description = "Too many sign-ups from this address; see Retry-After", body = ErrorBody),
))]
async fn register(mut req: Request) -> Result<Response> {
    let body: RegisterBody = req.json().await?;
    let addr = req.peer().map(|p| p.ip());
    let profile = req
        .service()
        .register(&body.username, &body.email, &body.password, addr)
        .await?;
    json(&profile, StatusCode::CREATED)
}

/// The caller's own profile, with email.
#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = [])), responses(
    (status = 200, body = Profile),
    (status = 401, body = ErrorBody),
))]
async fn me(req: Request) -> Result<Response> {
    json(&req.service().me(req.user()?).await?, StatusCode::OK)
}

/// Users whose username or display name contains `q`.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "Text in the username or display name"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
        ("offset" = Option<u32>, Query),
    ),
    responses(
        (status = 200, body = Vec<PublicUser>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
async fn list(req: Request) -> Result<Response> {
    let q = req.query()?;
    let limit = q.number("limit", "invalid_limit")?;
    let offset = q.number("offset", "invalid_query")?;
    let text = q.text("q").unwrap_or("");
    let found = req.service().find_users(text, limit, offset).await?;
    json(&found, StatusCode::OK)
}

/// A user's public profile.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = PublicUser),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn one(req: Request) -> Result<Response> {
    let user = req.service().user(req.id::<UserId>("id")?).await?;
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

/// Changes the caller's display name, avatar URL or public key.
#[utoipa::path(patch, path = "/v1/me", tag = "users", security(("bearer" = [])),
    request_body = ProfileBody, responses(
        (status = 200, body = Profile),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
async fn update_me(mut req: Request) -> Result<Response> {
    let user = req.user()?;
    let body: ProfileBody = req.json().await?;
    let edit = ProfileEdit {
        display_name: body.display_name,
        avatar_url: body.avatar_url,
        public_key: body.public_key,
    };
    json(
        &req.service().update_profile(user, edit).await?,
        StatusCode::OK,
    )
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
        (status = 429, description = "Too many wrong passwords from this address; see Retry-After", body = ErrorBody),
    ))]
async fn change_password(mut req: Request) -> Result<Response> {
    let user = req.user()?;
    let body: PasswordBody = req.json().await?;
    let addr = req.peer().map(|p| p.ip());
    req.service()
        .change_password(user, &body.current_password, &body.new_password, addr)
        .await?;
    no_content()
}

/// Blocks a user: they can no longer add you to a group, nor open or write a direct chat with
/// you (403 `blocked`).
#[utoipa::path(put, path = "/v1/me/blocks/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = i64, Path)),
    responses(
        (status = 204, description = "Blocked (or already)"),
        (status = 400, description = "Yourself", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn block(req: Request) -> Result<Response> {
    req.service().block(req.user()?, req.id("user_id")?).await?;
    no_content()
}

/// Lifts a block.
#[utoipa::path(delete, path = "/v1/me/blocks/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = i64, Path)),
    responses(
        (status = 204, description = "Not blocked (any more)"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Not a user id", body = ErrorBody),
    ))]
async fn unblock(req: Request) -> Result<Response> {
    req.service()
        .unblock(req.user()?, req.id("user_id")?)
        .await?;
    no_content()
}

/// Whom the caller has blocked.
#[utoipa::path(get, path = "/v1/me/blocks", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PublicUser>),
        (status = 401, body = ErrorBody),
    ))]
async fn blocks(req: Request) -> Result<Response> {
    json(&req.service().blocks(req.user()?).await?, StatusCode::OK)
}
