use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_is_refused_with_401_without_a_valid_token() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    let no_token = ws_url(server.addr, None, None)
        .into_client_request()
        .unwrap();
    let got = ws_refused(no_token).await;
    assert_error(&got, 401, "unauthorized");

    let bad = ws_url(server.addr, Some("not.a.token"), None)
        .into_client_request()
        .unwrap();
    assert_error(&ws_refused(bad).await, 401, "unauthorized");

    let mut bad_header = ws_url(server.addr, None, None)
        .into_client_request()
        .unwrap();
    bad_header.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Bearer not.a.token"),
    );
    assert_error(&ws_refused(bad_header).await, 401, "unauthorized");

    let refresh_as_token = ws_url(server.addr, Some(&ava.refresh), None)
        .into_client_request()
        .unwrap();
    assert_error(&ws_refused(refresh_as_token).await, 401, "unauthorized");

    let bad_since = format!("{}&since=abc", ws_url(server.addr, Some(&ava.token), None));
    assert_error(
        &ws_refused(bad_since.into_client_request().unwrap()).await,
        400,
        "invalid_query",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_comes_first_with_user_and_group_ids() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let chess = server.create_group(&ava, "Chess", &[]).await;

    let mut ws = server.ws_connect(&ava.token, None).await;
    let ready = ws.expect_type("ready").await;
    assert_eq!(ready["user_id"], ava.id);
    assert_eq!(
        as_set(&ready["group_ids"]),
        BTreeSet::from([GENERAL, chess])
    );

    // The token may come in the Authorization header instead.
    let mut by_header = Ws::connect_with_header(server.addr, &mike.token).await;
    let ready = by_header.expect_type("ready").await;
    assert_eq!(ready["user_id"], mike.id);
    assert_eq!(as_set(&ready["group_ids"]), BTreeSet::from([GENERAL]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_pong() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mut avas = server.ws_connect(&ava.token, None).await;
    avas.expect_type("ready").await;

    for _ in 0..3 {
        avas.send_json(&json!({"type": "ping"})).await;
        let pong = avas.expect_type("pong").await;
        assert_eq!(pong, json!({"type": "pong"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let zed = server.new_user("zed").await;
    let zeds_group = server.create_group(&zed, "Zed only", &[]).await;
    let missing = zeds_group + 10_000;
    let mut ws = server.ws_connect(&ava.token, None).await;
    ws.expect_type("ready").await;

    let cases: Vec<(&str, Message, &str, Value)> = vec![
        ("not JSON", Message::text("hello there"), "invalid_json", Value::Null),
        ("JSON but not an object", Message::text("[1,2,3]"), "invalid_json", Value::Null),
        ("no type", Message::text(r#"{"group_id":1}"#), "invalid_json", Value::Null),
        ("unknown type", Message::text(r#"{"type":"dance"}"#), "invalid_json", Value::Null),
        ("missing content", Message::text(r#"{"type":"send","group_id":1}"#), "invalid_json", Value::Null),
        ("missing group", Message::text(r#"{"type":"send","content":"hi"}"#), "invalid_json", Value::Null),
        (
            "group_id a string",
            Message::text(r#"{"type":"send","group_id":"one","content":"hi"}"#),
            "invalid_json",
            Value::Null,
        ),
        (
            "content a number",
            Message::text(r#"{"type":"send","group_id":1,"content":5}"#),
            "invalid_json",
            Value::Null,
        ),
        ("binary frame", Message::binary(b"{\"type\":\"ping\"}".to_vec()), "invalid_json", Value::Null),
        (
            "not a member",
            Message::text(
                json!({"type":"send","group_id":zeds_group,"content":"let me in","client_id":"k1"}).to_string(),
            ),
            "forbidden",
            json!("k1"),
        ),
        (
            "no such group",
            Message::text(json!({"type":"send","group_id":missing,"content":"hi","client_id":"k2"}).to_string()),
            "not_found",
            json!("k2"),
        ),
        (
            "blank content",
            Message::text(json!({"type":"send","group_id":GENERAL,"content":"  ","client_id":"k3"}).to_string()),
            "invalid_content",
            json!("k3"),
        ),
        (
            "content too long",
            Message::text(json!({"type":"send","group_id":GENERAL,"content":"x".repeat(4001),"client_id":"k4"}).to_string()),
            "invalid_content",
            json!("k4"),
        ),
    ];
    for (what, frame, code, client_id) in cases {
        ws.send(frame).await;
        let err = ws.next_json().await;
        assert_eq!(err["type"], "error", "{what}: {err}");
        assert_eq!(err["code"], code, "{what}: {err}");
        assert!(
            err["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: {err}"
        );
        if !client_id.is_null() {
            assert_eq!(
                err["client_id"], client_id,
                "{what}: error names the client_id: {err}"
            );
        }
        // Still open and served.
        ws.ping_pong().await;
    }
    // Nothing was stored anywhere.
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert!(history.is_empty(), "{history:?}");
    let (zh, _) = server.history(&zed, zeds_group, "").await;
    assert!(zh.is_empty(), "{zh:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_closes_the_socket_with_1009() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mut ws = server.ws_connect(&ava.token, None).await;
    ws.expect_type("ready").await;

    // Just under the 64 KiB limit: an ordinary error (content too long), the socket stays.
    let under =
        json!({"type": "send", "group_id": GENERAL, "content": "u".repeat(60_000)}).to_string();
    assert!(under.len() < 64 * 1024);
    ws.send(Message::text(under)).await;
    assert_eq!(ws.expect_type("error").await["code"], "invalid_content");
    ws.ping_pong().await;

    let over =
        json!({"type": "send", "group_id": GENERAL, "content": "o".repeat(70_000)}).to_string();
    // The server may close before reading all of it; a failed write is not the point here.
    let _ = ws.stream.send(Message::text(over)).await;
    let (closed, frames) = ws.until_closed().await;
    assert_eq!(
        closed,
        Closed::Code(1009),
        "frames before the close: {frames:?}"
    );

    // Other sockets are unaffected.
    let mut other = server.ws_connect(&ava.token, None).await;
    other.expect_type("ready").await;
    other.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_with_1001() {
    let mut server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut sockets = Vec::new();
    for who in [&ava, &mike, &mike] {
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        sockets.push(ws);
    }
    let running = server.take_server();
    let shutdown = tokio::spawn(async move { running.shutdown().await });
    for ws in &mut sockets {
        let (closed, _) = ws.until_closed().await;
        assert_eq!(closed, Closed::Code(1001));
    }
    tokio::time::timeout(TIMEOUT, shutdown)
        .await
        .expect("shutdown finishes")
        .unwrap();
}
