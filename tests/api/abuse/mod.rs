//! Abuse: failed-login lock-outs (per account per address, and pacing for an address that
//! fails at many accounts), closed registration, the sockets-per-user cap, forged and stale
//! tokens, and deleted accounts.
//!
//! Limits are set small through `Config` so the tests are quick; every wait is bounded.

mod lockout;
mod registration;
mod sockets;
mod tokens;

use crate::helpers::*;
use chatserver::limits::Limit;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;

// ---------------------------------------------------------------------------------------------
// Login lock-out
// ---------------------------------------------------------------------------------------------

/// A login attempt: status, `Retry-After` (if any) and the JSON body.
async fn login_attempt(api: &Api, body: Value) -> (u16, Option<String>, Value) {
    let resp = api
        .http
        .post(api.url("/v1/users/login"))
        .json(&body)
        .send()
        .await
        .expect("login request");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("Retry-After is text").to_string());
    let text = resp.text().await.expect("login body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, retry, body)
}

async fn login_by(
    api: &Api,
    field: &str,
    name: &str,
    password: &str,
) -> (u16, Option<String>, Value) {
    login_attempt(api, json!({field: name, "password": password})).await
}

/// A 429 with the contract's body and a `Retry-After` of whole seconds in 1..=`window`.
#[track_caller]
fn assert_locked(got: (u16, Option<String>, Value), window: Duration, what: &str) -> u64 {
    let (status, retry, body) = got;
    assert_error(&(status, body), 429, "rate_limited");
    let retry = retry.unwrap_or_else(|| panic!("{what}: 429 without Retry-After"));
    let seconds: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?} is not whole seconds"));
    assert!(
        (1..=window.as_secs()).contains(&seconds),
        "{what}: Retry-After {seconds} outside 1..={}",
        window.as_secs()
    );
    seconds
}

const ACCOUNT_WINDOW: Duration = Duration::from_secs(60);

fn small_account_limit(cfg: &mut chatserver::config::Config) {
    cfg.login_limit = Limit {
        failures: 3,
        window: ACCOUNT_WINDOW,
    };
}

// ---------------------------------------------------------------------------------------------
// Sockets per user
// ---------------------------------------------------------------------------------------------

const SOCKET_CAP: usize = 3;

fn socket_cap(cfg: &mut chatserver::config::Config) {
    cfg.max_sockets_per_user = SOCKET_CAP;
}

/// An upgrade that may be accepted (the socket) or refused (status and body).
async fn try_upgrade(api: &Api, token: &str) -> Result<Ws, (u16, Value)> {
    try_upgrade_after(api, token, None).await
}

/// As `try_upgrade`, sending the handshake only once every holder of `barrier` is connected.
async fn try_upgrade_after(
    api: &Api,
    token: &str,
    barrier: Option<&tokio::sync::Barrier>,
) -> Result<Ws, (u16, Value)> {
    let request = ws_url(api.addr, Some(token), None)
        .into_client_request()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(api.addr)
        .await
        .expect("connect");
    if let Some(b) = barrier {
        b.wait().await;
    }
    let result = tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, tcp))
        .await
        .expect("handshake timed out");
    match result {
        Ok((stream, _)) => Ok(Ws::new(stream)),
        Err(WsError::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "abuse-test-secret-0123456789abcdef";

fn known_secret(cfg: &mut chatserver::config::Config) {
    cfg.tokens.jwt_secret = Some(SECRET.to_string());
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A JWT with any header, signed HMAC-SHA256 with `key` whatever the header says.
fn hs256_raw(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = hmac_sha256(key, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A token signed by the library with `alg` and the server's secret.
fn signed(alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn claims(sub: impl Into<Value>, iat: i64, exp: i64) -> Value {
    json!({"sub": sub.into(), "iat": iat, "exp": exp})
}

/// Whether `/v1/me` and the WebSocket (token in the query, and in the header) accept `token`.
/// Refusals must be 401 with the contract's body; returns the HTTP status.
async fn try_token(api: &Api, token: &str, what: &str) -> u16 {
    let resp = api
        .http
        .get(api.url("/v1/me"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("GET /v1/me");
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    if status != 200 {
        assert_error(&(status, body), 401, "unauthorized");
    }

    let query = format!("ws://{}/ws?token={}", api.addr, enc(token));
    let by_query = upgrade_status(query.into_client_request().unwrap()).await;
    let mut by_header = ws_url(api.addr, None, None).into_client_request().unwrap();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        by_header.headers_mut().insert("authorization", v);
        let s = upgrade_status(by_header).await;
        assert_eq!(s, by_query, "{what}: header and query disagree");
    }
    let ws_expected = if status == 200 { 101 } else { 401 };
    assert_eq!(
        by_query, ws_expected,
        "{what}: /v1/me answered {status} but the WebSocket {by_query}"
    );
    status
}

async fn upgrade_status(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> u16 {
    let (status, body) = ws_attempt(request).await;
    if status != 101 {
        assert_error(&(status, body), 401, "unauthorized");
    }
    status
}
