//! Abuse: failed-login lock-outs (per account, and a higher ceiling per address), closed
//! registration, the sockets-per-user cap, forged and stale tokens, and deleted accounts.
//!
//! Limits are set small through `Config` so the tests are quick; every wait is bounded.

use std::time::{Duration, Instant};

use crate::helpers::*;
use chatserver::config::Registration;
use chatserver::limits::Limit;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
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
    cfg.account_login_limit = Limit {
        failures: 3,
        window: ACCOUNT_WINDOW,
    };
    cfg.address_login_limit = Limit {
        failures: 1000,
        window: ACCOUNT_WINDOW,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_gets_429_and_other_accounts_from_the_address_still_log_in() {
    let server = TestServer::start_with(small_account_limit).await;
    let zed = server.new_user("zed").await;

    for i in 0..3 {
        let (status, retry, body) = login_by(&server, "username", "Ava", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
        assert!(retry.is_none(), "failure {i}: a 401 carries no Retry-After");
    }
    // Locked now: a wrong password, the right one, and another spelling of the name.
    let wrong = login_by(&server, "username", "Ava", "wrong password").await;
    assert_locked(wrong, ACCOUNT_WINDOW, "wrong password while locked");
    let right = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
    assert_locked(right, ACCOUNT_WINDOW, "right password while locked");
    let shouted = login_by(&server, "username", " AVA ", SEED_PASSWORD).await;
    assert_locked(shouted, ACCOUNT_WINDOW, "name in capitals while locked");

    // The same address, other accounts: unaffected, and their failures are their own.
    let (status, _, body) = login_by(&server, "username", "Mike", SEED_PASSWORD).await;
    assert_eq!(
        status, 200,
        "Mike is not locked out by Ava's lock-out: {body}"
    );
    let (status, _, body) = login_by(&server, "email", "zed@example.test", PASSWORD).await;
    assert_eq!(
        status, 200,
        "zed is not locked out by Ava's lock-out: {body}"
    );
    let (status, _, body) = login_by(&server, "username", "Mike", "wrong password").await;
    assert_error(&(status, body), 401, "unauthorized");

    // Ava's tokens issued before the lock-out still work: the lock is about logging in.
    let (status, _) = server.get("/v1/me", zed.auth()).await;
    assert_eq!(status, 200);
}

/// The lock-out belongs to the account, whichever name (username or email, any case) the
/// attempts use; otherwise each spelling gets its own guesses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_out_is_per_account_whichever_name_is_used() {
    let server = TestServer::start_with(small_account_limit).await;
    for _ in 0..3 {
        let (status, _, body) = login_by(&server, "username", "Ava", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
    }
    let by_email = login_by(&server, "email", "ava@temp.com", SEED_PASSWORD).await;
    assert_locked(
        by_email,
        ACCOUNT_WINDOW,
        "Ava locked by username, then logging in by email",
    );

    for _ in 0..3 {
        let (status, _, body) = login_by(&server, "email", "MIKE@temp.com", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
    }
    let by_name = login_by(&server, "username", "mike", SEED_PASSWORD).await;
    assert_locked(
        by_name,
        ACCOUNT_WINDOW,
        "Mike locked by email, then logging in by username",
    );
}

/// The lock-out ends when its window has passed (the server's own clock: a bounded poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_out_ends_after_its_window() {
    fn one_second(cfg: &mut chatserver::config::Config) {
        cfg.account_login_limit = Limit {
            failures: 2,
            window: Duration::from_secs(1),
        };
    }
    let server = TestServer::start_with(one_second).await;
    for _ in 0..2 {
        let (status, _, _) = login_by(&server, "username", "Ava", "wrong password").await;
        assert_eq!(status, 401);
    }
    let locked_at = Instant::now();
    let got = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
    assert_locked(
        got,
        Duration::from_secs(1),
        "locked for a one-second window",
    );
    let deadline = locked_at + Duration::from_secs(10);
    loop {
        let (status, _, body) = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            Instant::now() < deadline,
            "still locked 10 s after a 1 s window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_ceiling_stops_one_address_guessing_at_many_accounts() {
    const WINDOW: Duration = Duration::from_secs(60);
    fn small_address_limit(cfg: &mut chatserver::config::Config) {
        cfg.account_login_limit = Limit {
            failures: 3,
            window: WINDOW,
        };
        cfg.address_login_limit = Limit {
            failures: 6,
            window: WINDOW,
        };
    }
    let server = TestServer::start_with(small_address_limit).await;
    // Two failures per account: no account reaches its own limit of 3.
    for name in ["ghost1", "ghost2", "Ava"] {
        for _ in 0..2 {
            let (status, _, body) = login_by(&server, "username", name, "wrong password").await;
            assert_error(&(status, body), 401, "unauthorized");
        }
    }
    // Six failures from 127.0.0.1: the address is at its ceiling, for every account.
    let mike = login_by(&server, "username", "Mike", SEED_PASSWORD).await;
    assert_locked(
        mike,
        WINDOW,
        "an unlocked account from an address at its ceiling",
    );
    let new = login_by(&server, "username", "ghost3", "wrong password").await;
    assert_locked(new, WINDOW, "a fresh name from an address at its ceiling");
}

// ---------------------------------------------------------------------------------------------
// Closed registration
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_refuses_signups_and_the_cli_still_adds_users() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("closed.db");
    let db = db_path.to_str().unwrap().to_string();
    let server = ServerProcess::spawn_with(&db_path, &["--registration", "closed"]).await;

    let got = server
        .post_json(
            "/v1/users/register",
            None,
            &json!({"username": "walkin", "email": "walkin@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 403, "forbidden");
    // Even a well-formed request from a logged-in user is refused.
    let ava = server.ava().await;
    let got = server
        .post_json(
            "/v1/users/register",
            ava.auth(),
            &json!({"username": "walkin2", "email": "walkin2@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 403, "forbidden");

    // The teacher adds an account with the CLI while the server runs; it logs in over HTTP.
    cli(
        &[
            "user",
            "add",
            "pupil",
            "pupil@example.test",
            "--password",
            PASSWORD,
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    let pupil = server.session("pupil", PASSWORD).await;
    let (status, me) = server.get("/v1/me", pupil.auth()).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (200, Some("pupil")),
        "{me}"
    );
    assert!(
        !server.stderr_text().contains("panicked"),
        "{}",
        server.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_through_config() {
    let server = TestServer::start_with(|cfg| cfg.registration = Registration::Closed).await;
    let got = server
        .post_json(
            "/v1/users/register",
            None,
            &json!({"username": "walkin", "email": "walkin@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 403, "forbidden");
    // Seeded accounts are unaffected.
    server.ava().await;
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
        Ok((stream, _)) => Ok(Ws { stream }),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_socket_over_the_cap_is_429_and_closing_one_frees_a_slot() {
    let server = TestServer::start_with(socket_cap).await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let mut open = Vec::new();
    for _ in 0..SOCKET_CAP {
        open.push(server.ws_ready(&ava).await);
    }
    let refused = try_upgrade(&server, &ava.token).await;
    let Err(got) = refused else {
        panic!(
            "socket {} of Ava was accepted over a cap of {SOCKET_CAP}",
            SOCKET_CAP + 1
        )
    };
    assert_error(&got, 429, "rate_limited");
    // The cap is per user: Mike still connects.
    let mut mike_ws = server.ws_ready(&mike).await;
    mike_ws.ping_pong().await;
    // Ava's open sockets are unaffected by the refusal.
    for ws in &mut open {
        ws.ping_pong().await;
    }

    // Close one; the server notices when its session ends, so poll (bounded) for the slot.
    open.pop().unwrap().close().await;
    let deadline = Instant::now() + TIMEOUT;
    let mut attempts = 0;
    let mut reopened = loop {
        attempts += 1;
        match try_upgrade(&server, &ava.token).await {
            Ok(ws) => break ws,
            Err(got) => {
                assert_error(&got, 429, "rate_limited");
                assert!(
                    Instant::now() < deadline,
                    "the slot of a closed socket was not freed within {TIMEOUT:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    eprintln!("a closed socket's slot was free again after {attempts} upgrade attempt(s)");
    reopened.expect_type("ready").await;
    // Full again.
    let Err(got) = try_upgrade(&server, &ava.token).await else {
        panic!("a fourth socket was accepted after the slot was taken again");
    };
    assert_error(&got, 429, "rate_limited");
}

/// Many upgrades at once must not slip past the cap between the check and the registration.
/// The race is tried in several rounds, each with a user of its own (a fresh cap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upgrades_never_exceed_the_cap() {
    const ROUNDS: usize = 5;
    const ATTEMPTS: usize = 32;
    // The real binary: its scheduling is its own, not shared with this test's clients.
    let dir = tempfile::tempdir().unwrap();
    let cap = SOCKET_CAP.to_string();
    let server = ServerProcess::spawn_with(
        &dir.path().join("cap.db"),
        &["--max-sockets-per-user", &cap],
    )
    .await;
    let mut over = Vec::new();
    for round in 0..ROUNDS {
        let who = server.new_user(&format!("racer{round}")).await;
        // Every connection is open before any handshake is sent, so the upgrades really race.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(ATTEMPTS));
        let attempts: Vec<_> = (0..ATTEMPTS)
            .map(|_| {
                let api = server.api.clone();
                let token = who.token.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move { try_upgrade_after(&api, &token, Some(&barrier)).await })
            })
            .collect();
        let mut accepted = Vec::new();
        for a in attempts {
            match a.await.unwrap() {
                Ok(ws) => accepted.push(ws),
                Err(got) => assert_error(&got, 429, "rate_limited"),
            }
        }
        // Every accepted socket really is served (its ready arrives).
        for ws in &mut accepted {
            ws.expect_type("ready").await;
        }
        assert!(
            !accepted.is_empty(),
            "round {round}: no upgrade was accepted"
        );
        if accepted.len() > SOCKET_CAP {
            over.push(format!("round {round}: {} accepted", accepted.len()));
        }
    }
    assert!(
        over.is_empty(),
        "{ATTEMPTS} concurrent upgrades per round with a cap of {SOCKET_CAP}: {}",
        over.join("; ")
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_malformed_tokens_are_refused() {
    use jsonwebtoken::Algorithm as A;
    let server = TestServer::start_with(known_secret).await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let t = now();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let good = claims(ava.id.to_string(), t, t + 3600);
    let key = SECRET.as_bytes();

    // Controls: what the server must accept, so each refusal below is for its one defect.
    let accepted: Vec<(&str, String)> = vec![
        ("HS256 with the secret", signed(A::HS256, &good)),
        ("hand-made HS256", hs256_raw(&hs256, &good, key)),
        (
            "expired 2 s ago (within the 5 s leeway)",
            signed(A::HS256, &claims(ava.id.to_string(), t - 600, t - 2)),
        ),
        (
            "issued 2 s in the future (within the leeway)",
            signed(A::HS256, &claims(ava.id.to_string(), t + 2, t + 3600)),
        ),
    ];
    for (what, token) in &accepted {
        assert_eq!(
            try_token(&server, token, what).await,
            200,
            "control {what} refused"
        );
    }

    // The signature of Ava's real token over a payload naming Mike.
    let parts: Vec<&str> = ava.token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims(mike.id.to_string(), t, t + 3600)
            .to_string()
            .as_bytes()),
        parts[2]
    );
    let payload = b64(good.to_string().as_bytes());
    let unsigned = |alg: &str| {
        format!(
            "{}.{payload}.",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes())
        )
    };
    let refused: Vec<(&str, String)> = vec![
        ("alg none, no signature", unsigned("none")),
        ("alg None", unsigned("None")),
        ("alg NONE", unsigned("NONE")),
        (
            "alg none with a signature",
            format!("{}{}", unsigned("none"), b64(b"sig")),
        ),
        ("HS512 with the right secret", signed(A::HS512, &good)),
        ("HS384 with the right secret", signed(A::HS384, &good)),
        (
            "RS256 header, HMAC with the secret (key confusion)",
            hs256_raw(&json!({"alg": "RS256", "typ": "JWT"}), &good, key),
        ),
        (
            "RS256 header, junk signature",
            format!(
                "{}.{payload}.{}",
                b64(br#"{"alg":"RS256","typ":"JWT"}"#),
                b64(&[7u8; 256])
            ),
        ),
        (
            "ES256 header, HMAC with the secret",
            hs256_raw(&json!({"alg": "ES256"}), &good, key),
        ),
        (
            "issued an hour in the future",
            signed(A::HS256, &claims(ava.id.to_string(), t + 3600, t + 7200)),
        ),
        (
            "issued a minute in the future",
            signed(A::HS256, &claims(ava.id.to_string(), t + 60, t + 3600)),
        ),
        (
            "expired a minute ago (beyond the leeway)",
            signed(A::HS256, &claims(ava.id.to_string(), t - 3600, t - 60)),
        ),
        (
            "no exp",
            signed(A::HS256, &json!({"sub": ava.id.to_string(), "iat": t})),
        ),
        (
            "no iat",
            signed(
                A::HS256,
                &json!({"sub": ava.id.to_string(), "exp": t + 3600}),
            ),
        ),
        (
            "no sub",
            signed(A::HS256, &json!({"iat": t, "exp": t + 3600})),
        ),
        (
            "sub not a number",
            signed(A::HS256, &claims("ava", t, t + 3600)),
        ),
        (
            "sub of no user",
            signed(A::HS256, &claims("987654321", t, t + 3600)),
        ),
        (
            "exp as a string",
            signed(
                A::HS256,
                &json!({"sub": ava.id.to_string(), "iat": t, "exp": "never"}),
            ),
        ),
        (
            "the wrong secret",
            hs256_raw(&hs256, &good, b"not-the-server-secret-0123456789"),
        ),
        ("tampered payload", tampered),
        ("signature stripped", format!("{}.{}.", parts[0], parts[1])),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{}.x", ava.token)),
        ("garbage", "abc".into()),
        ("dots only", "...".into()),
        ("not base64", "%%%.***.!!!".into()),
        (
            "header not JSON",
            format!("{}.{payload}.{}", b64(b"nope"), parts[2]),
        ),
        ("a refresh token", ava.refresh.clone()),
        ("very long", "a".repeat(16 * 1024)),
    ];
    for (what, token) in &refused {
        assert_eq!(
            try_token(&server, token, what).await,
            401,
            "token accepted: {what}"
        );
    }
    eprintln!(
        "token attacks: {} refused, {} controls accepted",
        refused.len(),
        accepted.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Deleted accounts
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_tokens_sockets_and_refresh_tokens_stop_working() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("deleted.db");
    let db = db_path.to_str().unwrap().to_string();
    let server = ServerProcess::spawn(&db_path).await;
    let doomed = server.new_user("doomed").await;
    let ava = server.ava().await;
    server.add_member(&ava, GENERAL, doomed.id, None).await;
    let mut ws = server.ws_ready(&doomed).await;
    let mut other_ws = server.ws_ready(&ava).await;
    assert_eq!(server.get("/v1/me", doomed.auth()).await.0, 200);

    let started = Instant::now();
    cli(&["user", "delete", "doomed", "--db", &db], None)
        .await
        .assert_success();
    let cli_done = started.elapsed();

    // The server polls for deletions about once a second: a bounded poll for the 401.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = server.get("/v1/me", doomed.auth()).await;
        if got.0 != 200 {
            assert_error(&got, 401, "unauthorized");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted user's token still works 10 s after `user delete`"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let refused_after = started.elapsed();
    eprintln!(
        "deleted user: `user delete` took {cli_done:?}; token refused {refused_after:?} after it began"
    );
    assert!(
        refused_after < cli_done + Duration::from_secs(3),
        "the token kept working for {refused_after:?} (expected ~1 s after the CLI finished)"
    );

    let (how, _) = ws.until_closed().await;
    assert_eq!(how, Closed::Code(1008), "the deleted user's socket");
    // Everyone else is untouched.
    other_ws.ping_pong().await;
    assert_eq!(server.get("/v1/me", ava.auth()).await.0, 200);

    let got = server
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": doomed.refresh}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");
    let request = ws_url(server.addr, Some(&doomed.token), None)
        .into_client_request()
        .unwrap();
    assert_error(&ws_refused(request).await, 401, "unauthorized");
    let got = login_by(&server, "username", "doomed", PASSWORD).await;
    assert_error(&(got.0, got.2), 401, "unauthorized");
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_cannot_slip_past_the_lock_out() {
    let server = TestServer::start().await;
    let guesses = (0..20).map(|i| {
        let api = server.api.clone();
        async move {
            let body = json!({"username": "Ava", "password": format!("wrong-guess-{i}")});
            api.post_json("/v1/users/login", None, &body).await.0
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + locked, statuses.len(), "{statuses:?}");
    // Each attempt is counted before its password is checked, so no more than the account's
    // limit of guesses is ever checked in one window, however many arrive at once.
    assert!(wrong <= 5, "{wrong} guesses were checked: {statuses:?}");
    assert!(locked >= 15, "{statuses:?}");
}
