//! Registration, login, tokens, profiles and the contract's error answers.

use std::collections::HashSet;

use crate::helpers::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_returns_own_profile_and_validates_input() {
    let server = TestServer::start().await;

    let body = server
        .register("alice", "alice@example.test", PASSWORD)
        .await;
    assert_keys(&body, &OWN_PROFILE_KEYS);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.test");
    assert_timestamp(&body["created_at"]);

    // Username: 3–32 of [A-Za-z0-9_.-]; the bounds themselves are fine.
    let min = "abc";
    let max = "x".repeat(32);
    server.register(min, "min@example.test", PASSWORD).await;
    server.register(&max, "max@example.test", PASSWORD).await;
    server
        .register("a.b-c_D9", "chars@example.test", PASSWORD)
        .await;
    let bad_usernames = [
        "ab".to_string(),
        "y".repeat(33),
        "has space".into(),
        "jürgen".into(),
        "名前です".into(),
        "emoji😀".into(),
        "semi;colon".into(),
        "".into(),
    ];
    for (i, name) in bad_usernames.iter().enumerate() {
        let got = register_attempt(&server, name, &format!("u{i}@example.test"), PASSWORD).await;
        assert_error(&got, 400, "invalid_username");
    }

    for email in [
        "not-an-email",
        "",
        "@example.test",
        "nobody@",
        "two@@example.test",
    ] {
        let got = register_attempt(&server, "emailtest", email, PASSWORD).await;
        assert_error(&got, 400, "invalid_email");
    }

    // Password: 8–128 characters.
    server
        .register("pw8", "pw8@example.test", &"p".repeat(8))
        .await;
    server
        .register("pw128", "pw128@example.test", &"p".repeat(128))
        .await;
    server.session("pw128", &"p".repeat(128)).await;
    for (i, pw) in ["p".repeat(7), "p".repeat(129), String::new()]
        .iter()
        .enumerate()
    {
        let got =
            register_attempt(&server, &format!("pwbad{i}"), &format!("pw{i}@x.test"), pw).await;
        assert_error(&got, 400, "invalid_password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_username_or_email_is_a_conflict_case_insensitively() {
    let server = TestServer::start().await;
    server
        .register("alice", "alice@example.test", PASSWORD)
        .await;

    let got = register_attempt(&server, "ALICE", "other@example.test", PASSWORD).await;
    assert_error(&got, 409, "conflict");
    let got = register_attempt(&server, "alice2", "Alice@Example.TEST", PASSWORD).await;
    assert_error(&got, 409, "conflict");
    // The seeded users too.
    let got = register_attempt(&server, "ava", "new@example.test", PASSWORD).await;
    assert_error(&got, 409, "conflict");
    let got = register_attempt(&server, "newbie", "MIKE@temp.com", PASSWORD).await;
    assert_error(&got, 409, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_email_or_username_case_insensitively() {
    let server = TestServer::start().await;
    let registered = server
        .register("Carol", "carol@example.test", PASSWORD)
        .await;
    let id = registered["id"].as_i64().unwrap();

    for credentials in [
        json!({"username": "Carol", "password": PASSWORD}),
        json!({"username": "cAROL", "password": PASSWORD}),
        json!({"email": "carol@example.test", "password": PASSWORD}),
        json!({"email": "CAROL@Example.Test", "password": PASSWORD}),
    ] {
        let (status, body) = server
            .post_json("/v1/users/login", None, &credentials)
            .await;
        assert_eq!(status, 200, "{credentials}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_i64().unwrap_or(0) > 0, "{body}");
        assert!(
            body["token"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(
            body["refresh_token"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert_ne!(body["token"], body["refresh_token"]);
        assert_keys(&body["user"], &OWN_PROFILE_KEYS);
        assert_eq!(body["user"]["id"], id);
        assert_eq!(body["user"]["username"], "Carol");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_the_same_401_for_unknown_user_and_wrong_password() {
    let server = TestServer::start().await;
    let wrong_password = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "Ava", "password": "not it!!"}),
        )
        .await;
    let unknown_user = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "nobody", "password": "not it!!"}),
        )
        .await;
    let unknown_email = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"email": "nobody@example.test", "password": "not it!!"}),
        )
        .await;
    assert_error(&wrong_password, 401, "unauthorized");
    assert_eq!(
        unknown_user, wrong_password,
        "the answers must not tell the cases apart"
    );
    assert_eq!(unknown_email, wrong_password);

    // Neither username nor email.
    let (status, body) = server
        .post_json("/v1/users/login", None, &json!({"password": "whatever1"}))
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn refresh(api: &Api, token: &str) -> (u16, Value) {
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": token}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_the_old_token_stops_working() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    let (status, first) = refresh(&server, &ava.refresh).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["user"]["id"], ava.id);
    let r2 = first["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r2, ava.refresh);
    let (status, me) = server.get("/v1/me", first["token"].as_str()).await;
    assert_eq!(status, 200, "{me}");

    // The chain continues with the newest token.
    let (status, second) = refresh(&server, &r2).await;
    assert_eq!(status, 200, "{second}");

    // A token never issued.
    assert_error(
        &refresh(&server, "not-a-refresh-token").await,
        401,
        "unauthorized",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    // An unrelated session of the same user must survive.
    let other = server.ava().await;

    let (status, rotated) = refresh(&server, &ava.refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let r2 = rotated["refresh_token"].as_str().unwrap().to_string();

    assert_error(&refresh(&server, &ava.refresh).await, 401, "unauthorized");
    assert_error(&refresh(&server, &r2).await, 401, "unauthorized");

    let (status, body) = refresh(&server, &other.refresh).await;
    assert_eq!(status, 200, "another login's family is untouched: {body}");
}

/// Rotating a refresh token is one write: when storing its successor fails, the presented
/// token is not used up, and the client's retry succeeds instead of looking like a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_new_token_cannot_be_stored_leaves_the_old_one_usable() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    // Storing any new refresh token now fails, as on a full disk.
    server
        .db()
        .execute_batch(
            "CREATE TRIGGER refuse_new_tokens BEFORE INSERT ON refresh_tokens
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .expect("create the trigger");
    let (status, body) = refresh(&server, &ava.refresh).await;
    assert!(status >= 500, "the failed refresh answers {status} {body}");

    server
        .db()
        .execute_batch("DROP TRIGGER refuse_new_tokens")
        .expect("drop the trigger");
    let (status, body) = refresh(&server, &ava.refresh).await;
    assert_eq!(status, 200, "the retry with the same token: {body}");
    let token = body["token"].as_str().expect("a new access token");
    let (status, me) = server.get("/v1/me", Some(token)).await;
    assert_eq!((status, &me["username"]), (200, &json!("Ava")), "{me}");
    // It was used up by the successful refresh, and only by it.
    assert_error(&refresh(&server, &ava.refresh).await, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_one_refresh_token_or_all() {
    let server = TestServer::start().await;
    let a = server.ava().await;
    let b = server.ava().await;
    let c = server.ava().await;

    let got = server
        .post_json(
            "/v1/auth/logout",
            None,
            &json!({"refresh_token": a.refresh}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");

    let (status, body) = server
        .post_json(
            "/v1/auth/logout",
            a.auth(),
            &json!({"refresh_token": a.refresh}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_error(&refresh(&server, &a.refresh).await, 401, "unauthorized");
    let (status, b_rotated) = refresh(&server, &b.refresh).await;
    assert_eq!(
        status, 200,
        "logging out one session leaves the others: {b_rotated}"
    );
    let b_refresh = b_rotated["refresh_token"].as_str().unwrap().to_string();

    // Mike's sessions are not Ava's to end.
    let mike = server.mike().await;

    let (status, body) = server
        .post_json("/v1/auth/logout", c.auth(), &json!({"all": true}))
        .await;
    assert_eq!(status, 204, "{body}");
    assert_error(&refresh(&server, &b_refresh).await, 401, "unauthorized");
    assert_error(&refresh(&server, &c.refresh).await, 401, "unauthorized");
    let (status, body) = refresh(&server, &mike.refresh).await;
    assert_eq!(status, 200, "logout all is per user: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_test_auth_and_user_profiles() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let (status, me) = server.get("/v1/me", ava.auth()).await;
    assert_eq!(status, 200, "{me}");
    assert_keys(&me, &OWN_PROFILE_KEYS);
    assert_eq!(me["id"], ava.id);
    assert_eq!(me["username"], "Ava");
    assert_eq!(me["email"], "ava@temp.com");

    let (status, body) = server.get("/v1/test-auth", mike.auth()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"message": "Access granted", "user_id": mike.id})
    );

    let (status, users) = server.get("/v1/users", ava.auth()).await;
    assert_eq!(status, 200, "{users}");
    let users = users.as_array().expect("array");
    let names: HashSet<&str> = users
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, HashSet::from(["Ava", "Mike"]));
    for u in users {
        assert_keys(u, &PUBLIC_PROFILE_KEYS);
        assert!(u.get("email").is_none(), "public profile leaks email: {u}");
    }

    let (status, found) = server.get("/v1/users?q=Mik", ava.auth()).await;
    assert_eq!(status, 200, "{found}");
    let found: Vec<i64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(found, vec![mike.id]);

    let (status, profile) = server
        .get(&format!("/v1/users/{}", mike.id), ava.auth())
        .await;
    assert_eq!(status, 200, "{profile}");
    assert_keys(&profile, &PUBLIC_PROFILE_KEYS);
    assert_eq!(profile["username"], "Mike");
    assert!(
        profile.to_string().find("mike@temp.com").is_none(),
        "email leaked: {profile}"
    );

    let missing = mike.id.max(ava.id) + 1000;
    assert_error(
        &server
            .get(&format!("/v1/users/{missing}"), ava.auth())
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.get("/v1/users/abc", ava.auth()).await,
        404,
        "not_found",
    );

    // Protected routes need a token.
    for path in [
        "/v1/me",
        "/v1/test-auth",
        "/v1/users",
        &format!("/v1/users/{}", mike.id),
    ] {
        assert_error(&server.get(path, None).await, 401, "unauthorized");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_with_the_error_json() {
    let server =
        TestServer::start_with(|cfg| cfg.tokens.jwt_secret = Some(KNOWN_SECRET.to_string())).await;
    let ava = server.ava().await;
    let (status, _) = server.get("/v1/me", ava.auth()).await;
    assert_eq!(status, 200);

    // A control: the same claims re-signed with the server's secret and a future expiry work,
    // so the expired variant below is refused for its expiry and nothing else.
    let fresh = resign_with_exp(&ava.token, KNOWN_SECRET, now_secs() + 3600);
    let (status, body) = server.get("/v1/me", Some(&fresh)).await;
    assert_eq!(
        status, 200,
        "control token (re-signed with cfg.jwt_secret) refused: {body}"
    );
    let expired = resign_with_exp(&ava.token, KNOWN_SECRET, now_secs() - 3600);
    let forged = resign_with_exp(
        &ava.token,
        "some-other-secret-entirely-0000000",
        now_secs() + 3600,
    );

    // The payload edited (a later expiry), keeping Ava's original signature.
    let parts: Vec<&str> = ava.token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&b64_decode(parts[1])).unwrap();
    claims["exp"] = json!(now_secs() + 7200);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    let alg_none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);

    let bad_headers: Vec<(&str, String)> = vec![
        ("malformed", "Bearer not.a.jwt".into()),
        ("garbage", "Bearer abc".into()),
        ("empty bearer", "Bearer ".into()),
        ("wrong scheme", format!("Basic {}", ava.token)),
        ("no scheme", ava.token.clone()),
        ("forged", format!("Bearer {forged}")),
        ("expired", format!("Bearer {expired}")),
        ("tampered", format!("Bearer {tampered}")),
        ("alg none", format!("Bearer {alg_none}")),
        (
            "refresh token as access token",
            format!("Bearer {}", ava.refresh),
        ),
    ];
    for (what, header) in bad_headers {
        let resp = server
            .http
            .get(server.url("/v1/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap())
            .unwrap_or_else(|e| panic!("{what}: 401 body is not JSON: {e}"));
        let got = (status, body);
        assert!(got.0 == 401, "{what}: expected 401, got {got:?}");
        assert_error(&got, 401, "unauthorized");
    }
    assert_error(&server.get("/v1/me", None).await, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_400_invalid_json() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    let raw_bodies: Vec<(&str, &[u8])> = vec![
        ("not JSON", b"{not json"),
        ("empty body", b""),
        ("array", b"[]"),
        ("wrong types", br#"{"username": 123, "email": "x@example.test", "password": "12345678"}"#),
        ("missing field", br#"{"username": "dave", "password": "12345678"}"#),
        (
            "unknown field",
            br#"{"username": "dave", "email": "d@example.test", "password": "12345678", "admin": true}"#,
        ),
    ];
    for (what, body) in raw_bodies {
        let (status, text) = server
            .raw(
                Method::POST,
                "/v1/users/register",
                None,
                Some(body.to_vec()),
            )
            .await;
        let got = (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        );
        assert!(got.0 == 400, "{what}: {got:?}");
        assert_error(&got, 400, "invalid_json");
    }
    // None of those created dave.
    let got = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "dave", "password": "12345678"}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");

    // Protected routes parse the same way.
    let (status, text) = server
        .raw(
            Method::POST,
            "/v1/groups",
            ava.auth(),
            Some(br#"{"name": 5}"#.to_vec()),
        )
        .await;
    assert_error(
        &(status, serde_json::from_str(&text).unwrap()),
        400,
        "invalid_json",
    );
    let got = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &json!({"content": "hi", "colour": "red"}),
        )
        .await;
    assert_error(&got, 400, "invalid_json");

    // JSON without a Content-Type header is still JSON (curl -d).
    let resp = server
        .http
        .post(server.url("/v1/users/login"))
        .body(json!({"username": "Ava", "password": SEED_PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_413() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let limit = 64 * 1024;

    let big =
        json!({"username": "big", "email": "big@example.test", "password": "p".repeat(limit)});
    assert!(serde_json::to_vec(&big).unwrap().len() > limit);
    assert_error(
        &server.post_json("/v1/users/register", None, &big).await,
        413,
        "payload_too_large",
    );

    let big_message = json!({"content": "m".repeat(limit + 10)});
    let got = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &big_message,
        )
        .await;
    assert_error(&got, 413, "payload_too_large");
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert!(history.is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405_as_json() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    for path in ["/nope", "/v1/nope", "/v1/users/login/extra"] {
        assert_error(&server.get(path, None).await, 404, "not_found");
        assert_error(&server.get(path, ava.auth()).await, 404, "not_found");
    }

    let got = server.request(Method::PUT, "/healthz", None, None).await;
    assert_error(&got, 405, "method_not_allowed");
    let got = server
        .request(Method::DELETE, "/v1/auth/refresh", None, None)
        .await;
    assert_error(&got, 405, "method_not_allowed");
}
