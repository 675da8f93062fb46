//! Sessions end when they should: a new password or "log out everywhere" ends every earlier
//! session, a logout ends its own, and so does a replayed refresh token. An ended session's
//! access tokens get 401 and its sockets close with 1008.

use std::time::Instant;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a much better password";

async fn assert_signed_out(server: &TestServer, token: &str, what: &str) {
    let got = server.get("/v1/me", Some(token)).await;
    assert_error(&got, 401, "unauthorized");
    let request = ws_url(server.addr, Some(token), None)
        .into_client_request()
        .unwrap();
    let (status, _) = ws_attempt(request).await;
    assert_eq!(status, 401, "{what}: a socket with the old token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_earlier_session() {
    let server = TestServer::start().await;
    let first = server.ava().await;
    let second = server.ava().await;
    let mut open = server.ws_ready(&first).await;

    let body = json!({"current_password": SEED_PASSWORD, "new_password": NEW_PASSWORD});
    let (status, body) = server.put("/v1/me/password", second.auth(), &body).await;
    assert_eq!(status, 204, "{body}");

    assert_eq!(
        open.until_closed().await.0,
        Closed::Code(1008),
        "the socket opened before"
    );
    assert_signed_out(&server, &first.token, "the other session").await;
    assert_signed_out(&server, &second.token, "the session that made the change").await;
    let got = server
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": first.refresh}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");

    let fresh = server.session("Ava", NEW_PASSWORD).await;
    let mut ws = server.ws_ready(&fresh).await;
    ws.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_everywhere_ends_every_session() {
    let server = TestServer::start().await;
    let first = server.mike().await;
    let second = server.mike().await;
    let mut open = server.ws_ready(&first).await;
    let (status, body) = server
        .post_json("/v1/auth/logout", second.auth(), &json!({"all": true}))
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(open.until_closed().await.0, Closed::Code(1008));
    assert_signed_out(&server, &first.token, "logout all").await;
    assert_signed_out(&server, &second.token, "logout all, its own token").await;
    // Other users are untouched.
    let ava = server.ava().await;
    let (status, _) = server.get("/v1/me", ava.auth()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_one_session_ends_only_that_one() {
    let server = TestServer::start().await;
    let laptop = server.ava().await;
    let phone = server.ava().await;
    let mut on_laptop = server.ws_ready(&laptop).await;
    let mut on_phone = server.ws_ready(&phone).await;
    let (status, body) = server
        .post_json(
            "/v1/auth/logout",
            laptop.auth(),
            &json!({"refresh_token": laptop.refresh}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(on_laptop.until_closed().await.0, Closed::Code(1008));
    assert_signed_out(&server, &laptop.token, "the logged-out session").await;
    let (status, _) = server.get("/v1/me", phone.auth()).await;
    assert_eq!(status, 200, "the other session goes on");
    on_phone.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refresh_token_ends_its_session() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let (status, rotated) = server
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": ava.refresh}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let newer = rotated["token"].as_str().unwrap().to_string();
    let mut ws = server.ws_connect(&newer, None).await;
    ws.expect_type("ready").await;
    // Someone else presents the rotated token: the whole session ends.
    let got = server
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": ava.refresh}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");
    assert_eq!(ws.until_closed().await.0, Closed::Code(1008));
    assert_signed_out(&server, &newer, "the rotated session").await;
    assert_signed_out(&server, &ava.token, "the session's first token").await;
}

/// The command line (another process) sets a password: the running server ends the user's
/// sessions within a second or so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_set_by_the_operator_ends_the_sessions() {
    let server = TestServer::start().await;
    let mike = server.mike().await;
    let mut open = server.ws_ready(&mike).await;
    let db = server.db_path.to_str().unwrap().to_string();
    cli(
        &[
            "user",
            "passwd",
            "Mike",
            "--password",
            NEW_PASSWORD,
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    let started = Instant::now();
    assert_eq!(open.until_closed().await.0, Closed::Code(1008));
    assert!(started.elapsed() < TIMEOUT);
    assert_signed_out(&server, &mike.token, "after the operator's passwd").await;
    server.session("Mike", NEW_PASSWORD).await;
}
