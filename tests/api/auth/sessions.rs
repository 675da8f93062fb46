use crate::helpers::*;
use serde_json::{json, Value};

use super::*;

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
    if on_postgres() {
        server.sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse_new_tokens BEFORE INSERT ON refresh_tokens
               FOR EACH ROW EXECUTE FUNCTION refuse();",
        );
    } else {
        server
            .db()
            .execute_batch(
                "CREATE TRIGGER refuse_new_tokens BEFORE INSERT ON refresh_tokens
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .expect("create the trigger");
    }
    let (status, body) = refresh(&server, &ava.refresh).await;
    assert!(status >= 500, "the failed refresh answers {status} {body}");

    server.sql(if on_postgres() {
        "DROP TRIGGER refuse_new_tokens ON refresh_tokens"
    } else {
        "DROP TRIGGER refuse_new_tokens"
    });
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
