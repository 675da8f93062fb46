//! Registration, login, tokens, profiles and the contract's error answers.

mod accounts;
mod requests;
mod sessions;

use crate::helpers::*;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashSet;

const OWN_PROFILE_KEYS: [&str; 7] = [
    "id",
    "username",
    "email",
    "display_name",
    "avatar_url",
    "public_key",
    "created_at",
];

const PUBLIC_PROFILE_KEYS: [&str; 8] = [
    "id",
    "username",
    "display_name",
    "avatar_url",
    "public_key",
    "online",
    "last_seen",
    "created_at",
];

#[track_caller]
fn assert_keys(v: &Value, expected: &[&str]) {
    let got: HashSet<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    let want: HashSet<&str> = expected.iter().copied().collect();
    assert_eq!(got, want, "fields of {v}");
}

async fn register_attempt(api: &Api, username: &str, email: &str, password: &str) -> (u16, Value) {
    api.post_json(
        "/v1/users/register",
        None,
        &json!({"username": username, "email": email, "password": password}),
    )
    .await
}

async fn refresh(api: &Api, token: &str) -> (u16, Value) {
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": token}))
        .await
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_decode(part: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url part")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of `token` with `exp` (and `iat`, `nbf` if present) moved, re-signed with `secret`.
fn resign_with_exp(token: &str, secret: &str, exp: i64) -> String {
    let header = jsonwebtoken::decode_header(token).expect("server token has a JWT header");
    let payload = token.split('.').nth(1).expect("payload part");
    let mut claims: Value = serde_json::from_slice(&b64_decode(payload)).expect("JSON claims");
    claims["exp"] = json!(exp);
    if claims.get("iat").is_some() {
        // Never in the future: the server refuses tokens issued later than now.
        claims["iat"] = json!((exp - 900).min(now_secs()));
    }
    if claims.get("nbf").is_some() {
        claims["nbf"] = json!(exp - 900);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(header.alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

const KNOWN_SECRET: &str = "integration-test-secret-0123456789abcdef";
