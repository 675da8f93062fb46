//! Sessions: log in, refresh (with rotation), log out, and the token check route.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{authenticated, json, json_body, no_content, respond, with_state, Routes};
use crate::app::AppState;
use crate::auth::{self, AuthUser};
use crate::error::{ApiError, ErrorBody};
use crate::ids::UserId;
use crate::limits::LoginKey;
use crate::net::PeerAddr;
use crate::store::{tokens, users, written};

pub fn routes(state: &Arc<AppState>, r: &mut Routes) {
    r.add::<__path_login>(
        warp::path!("v1" / "users" / "login")
            .and(warp::post())
            .and(with_state(state))
            .and(warp::ext::optional::<PeerAddr>())
            .and(json_body(state))
            .then(login)
            .map(respond),
    );
    r.add::<__path_refresh>(
        warp::path!("v1" / "auth" / "refresh")
            .and(warp::post())
            .and(with_state(state))
            .and(json_body(state))
            .then(refresh)
            .map(respond),
    );
    r.add::<__path_logout>(
        warp::path!("v1" / "auth" / "logout")
            .and(warp::post())
            .and(with_state(state))
            .and(authenticated(state))
            .and(json_body(state))
            .then(logout)
            .map(respond),
    );
    r.add::<__path_test_auth>(
        warp::path!("v1" / "test-auth")
            .and(warp::get())
            .and(authenticated(state))
            .map(test_auth),
    );
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
fn test_auth(user: AuthUser) -> Response {
    respond(json(
        &AccessGranted {
            message: "Access granted",
            user_id: user.id,
        },
        StatusCode::OK,
    ))
}

/// Give `username` or `email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: Option<String>,
    email: Option<String>,
    password: String,
}

#[derive(Serialize, ToSchema)]
struct Session {
    token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    user: users::Profile,
}

const BAD_LOGIN: &str = "invalid username/email or password";

/// Signs in by username or email; the same 401 answers an unknown user and a wrong password.
#[utoipa::path(post, path = "/v1/users/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, body = Session),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 429, description = "Too many failed logins for this account or address; see Retry-After",
        body = ErrorBody),
))]
async fn login(
    state: Arc<AppState>,
    peer: Option<PeerAddr>,
    body: LoginBody,
) -> Result<Response, ApiError> {
    let name = body
        .username
        .or(body.email)
        .ok_or_else(|| ApiError::invalid("invalid_json", "give a username or an email"))?;
    let addr = peer.map(|p| p.0.ip());
    let lookup = name.clone();
    let found = state
        .store
        .read(move |c| users::credentials(c, lookup.trim()))
        .await?;
    // Count failures per account whichever name (username or email) was used; names that
    // match no account are counted as typed, so guessing at them is limited too.
    let key = match &found {
        Some((user, _)) => LoginKey::Account(*user),
        None => LoginKey::Name(&name),
    };
    if let Err(wait) = state.login_guard.attempt(key, addr) {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(ApiError::rate_limited(
            format!("too many failed logins; try again in {seconds} s"),
            Some(seconds.max(1)),
        ));
    }
    let ok = state
        .passwords
        .verify(&body.password, found.as_ref().map(|(_, h)| h.as_str()))
        .await?;
    match found {
        Some((user, _)) if ok => {
            state.login_guard.succeeded(key, addr);
            session(&state, user, None).await
        }
        // The attempt was already counted as a failure.
        _ => Err(ApiError::unauthorized(BAD_LOGIN)),
    }
}

/// Issues an access token and a refresh token (in `family`, or a new one) for `user`.
async fn session(
    state: &AppState,
    user: UserId,
    family: Option<String>,
) -> Result<Response, ApiError> {
    let refresh_token = auth::new_refresh_token();
    let hash = auth::hash_refresh_token(&refresh_token);
    let expires_at = (auth::unix_now() + state.config.refresh_ttl.as_secs()) as i64;
    let family = family.unwrap_or_else(auth::new_token_family);
    let profile = state
        .store
        .write(move |c| {
            let profile = users::profile(c, user)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
            tokens::insert(c, user, &hash, &family, expires_at)?;
            Ok(written(profile, Vec::new()))
        })
        .await?;
    json(
        &Session {
            token: state.keys.issue(user)?,
            refresh_token,
            token_type: "Bearer",
            expires_in: state.keys.access_ttl.as_secs(),
            user: profile,
        },
        StatusCode::OK,
    )
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
))]
async fn refresh(state: Arc<AppState>, body: RefreshBody) -> Result<Response, ApiError> {
    let hash = auth::hash_refresh_token(&body.refresh_token);
    let now = auth::unix_now() as i64;
    let presented = state
        .store
        .write(move |c| Ok(written(tokens::present(c, &hash, now)?, Vec::new())))
        .await?;
    match presented {
        tokens::Presented::Rotated { user, family } => session(&state, user, Some(family)).await,
        tokens::Presented::Reused => Err(ApiError::unauthorized(
            "this refresh token was already used; its session is revoked, sign in again",
        )),
        tokens::Presented::Invalid => {
            Err(ApiError::unauthorized("invalid or expired refresh token"))
        }
    }
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
async fn logout(
    state: Arc<AppState>,
    user: AuthUser,
    body: LogoutBody,
) -> Result<Response, ApiError> {
    let hash = match (&body.refresh_token, body.all) {
        (_, true) => None,
        (Some(token), false) => Some(auth::hash_refresh_token(token)),
        (None, false) => {
            return Err(ApiError::invalid(
                "invalid_json",
                "give the refresh_token to revoke, or \"all\": true",
            ))
        }
    };
    state
        .store
        .write(move |c| {
            match hash {
                // Revoking a token that is not live is not an error: the goal is already met.
                Some(hash) => tokens::revoke(c, user.id, &hash).map(drop)?,
                None => tokens::revoke_all(c, user.id)?,
            }
            Ok(written((), Vec::new()))
        })
        .await?;
    no_content()
}
