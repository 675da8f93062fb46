use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::*;

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
