//! Sessions: log in, refresh (with rotation), log out, and the token check route.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{json, no_content, ErrorBody, Request, Routes};
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::service::{Session, Welcome};

pub(super) fn routes(r: &mut Routes) {
    r.add(__path_login, login)
        .add(__path_refresh, refresh)
        .add(__path_logout, logout)
        .add(__path_test_auth, test_auth)
        .add(__path_welcome, welcome);
}

/// What the login page shows: whether registration is open, and (to a browser on the server's
/// own machine only) the seeded accounts while they exist.
#[utoipa::path(get, path = "/v1/welcome", tag = "auth", responses(
    (status = 200, body = Welcome),
))]
async fn welcome(req: Request) -> Result<Response> {
    let addr = req.peer().map(|p| p.ip());
    json(&req.service().welcome(addr).await?, StatusCode::OK)
}

#[derive(Serialize, ToSchema)]
struct AccessGranted {
    message: &'static str,
    user_id: UserId,
}

/// Answers only a valid access token.
#[utoipa::path(get, path = "/v1/test-auth", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = AccessGranted),
    (status = 401, body = ErrorBody),
))]
async fn test_auth(req: Request) -> Result<Response> {
    let access = AccessGranted {
        message: "Access granted",
        user_id: req.user()?.id,
    };
    json(&access, StatusCode::OK)
}

/// Give `username` or `email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: Option<String>,
    email: Option<String>,
    password: String,
}

/// Signs in by username or email; the same 401 answers an unknown user and a wrong password.
#[utoipa::path(post, path = "/v1/users/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, body = Session),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 429, description = "Too many failed logins for this account or address; see Retry-After",
        body = ErrorBody),
))]
async fn login(mut req: Request) -> Result<Response> {
    let body: LoginBody = req.json().await?;
    let name = body
        .username
        .or(body.email)
        .ok_or_else(|| Error::invalid("invalid_json", "give a username or an email"))?;
    let addr = req.peer().map(|p| p.ip());
    let session = req.service().login(&name, &body.password, addr).await?;
    json(&session, StatusCode::OK)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Trades a refresh token for a new session; the old refresh token stops working.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody, responses(
    (status = 200, body = Session),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 429, description = "More than 600 refreshes from this address in a minute", body = ErrorBody),
))]
async fn refresh(mut req: Request) -> Result<Response> {
    let body: RefreshBody = req.json().await?;
    let addr = req.peer().map(|p| p.ip());
    let session = req.service().refresh(&body.refresh_token, addr).await?;
    json(&session, StatusCode::OK)
}

/// Give `refresh_token`, or `all: true` to end every session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    refresh_token: Option<String>,
    #[serde(default)]
    all: bool,
}

/// Revokes one refresh token, or all of the caller's.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    request_body = LogoutBody, responses(
    (status = 204, description = "Signed out"),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
async fn logout(mut req: Request) -> Result<Response> {
    let user = req.user()?;
    let body: LogoutBody = req.json().await?;
    req.service()
        .logout(user, body.refresh_token.as_deref(), body.all)
        .await?;
    no_content()
}
