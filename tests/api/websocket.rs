//! The WebSocket: who receives what, in which order, and what happens to bad frames.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// A `group_message` frame must carry exactly the message the HTTP API returns.
#[track_caller]
fn assert_frame_is_message(frame: &Value, message: &Value) {
    assert_eq!(frame["type"], "group_message", "{frame}");
    assert_message_shape(frame);
    let mut fields = frame.clone();
    fields.as_object_mut().unwrap().remove("type");
    assert_eq!(
        &fields, message,
        "group_message differs from the stored message"
    );
}

fn as_set(v: &Value) -> BTreeSet<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

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
async fn an_http_message_reaches_the_members_sockets() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut mikes = server.ws_connect(&mike.token, None).await;
    mikes.expect_type("ready").await;

    let sent = server.send(&ava, GENERAL, "Hi Mike 👋").await;
    let frame = mikes.expect_type("group_message").await;
    assert_frame_is_message(&frame, &sent);
    assert_eq!(frame["sender_username"], "Ava");
    assert_eq!(frame["content"], "Hi Mike 👋");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_send_is_acked_and_reaches_every_member_socket() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut sender = server.ws_connect(&ava.token, None).await;
    let mut avas_other = server.ws_connect(&ava.token, None).await;
    let mut mikes = server.ws_connect(&mike.token, None).await;
    for ws in [&mut sender, &mut avas_other, &mut mikes] {
        ws.expect_type("ready").await;
    }

    sender
        .send_json(&json!({"type": "send", "group_id": GENERAL, "content": " over the socket ", "client_id": "c1"}))
        .await;
    // The ack and the sender's own copy, in either order.
    let a = sender.next_json().await;
    let b = sender.next_json().await;
    let (ack, own) = if a["type"] == "ack" { (a, b) } else { (b, a) };
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["client_id"], "c1");
    assert_eq!(ack["group_id"], GENERAL);
    assert_timestamp(&ack["timestamp"]);
    let id = ack["id"].as_i64().expect("ack id");

    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert_eq!(ids(&history), vec![id]);
    let stored = &history[0];
    assert_eq!(stored["content"], "over the socket");
    assert_eq!(stored["client_id"], "c1");
    assert_eq!(stored["timestamp"], ack["timestamp"]);
    assert_frame_is_message(&own, stored);
    assert_frame_is_message(&avas_other.expect_type("group_message").await, stored);
    assert_frame_is_message(&mikes.expect_type("group_message").await, stored);

    // A repeated client_id is acked with the first id and not delivered again: the next
    // group_message anyone sees is the following message.
    sender
        .send_json(&json!({"type": "send", "group_id": GENERAL, "content": "over the socket", "client_id": "c1"}))
        .await;
    let again = sender.expect_type("ack").await;
    assert_eq!(
        (again["client_id"].clone(), again["id"].as_i64()),
        (json!("c1"), Some(id))
    );
    sender
        .send_json(&json!({"type": "send", "group_id": GENERAL, "content": "no client id"}))
        .await;
    let mut ack2 = None;
    let mut own2 = None;
    while ack2.is_none() || own2.is_none() {
        let f = sender.next_json().await;
        match f["type"].as_str() {
            Some("ack") => ack2 = Some(f),
            Some("group_message") => own2 = Some(f),
            _ => panic!("unexpected frame {f}"),
        }
    }
    let ack2 = ack2.unwrap();
    assert_eq!(ack2["client_id"], Value::Null);
    assert_eq!(own2.unwrap()["id"], ack2["id"]);
    for ws in [&mut avas_other, &mut mikes] {
        let next = ws.expect_type("group_message").await;
        assert_eq!(next["id"], ack2["id"], "the duplicate was delivered again");
        assert_eq!(next["content"], "no client id");
    }
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert_eq!(history.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_of_a_user_receives() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = server.ws_connect(&mike.token, None).await;
        ws.expect_type("ready").await;
        sockets.push(ws);
    }
    let first = server.send(&ava, GENERAL, "to all of Mike's tabs").await;
    let second = server
        .send(&mike, GENERAL, "and Mike's own message too")
        .await;
    for ws in &mut sockets {
        assert_frame_is_message(&ws.expect_type("group_message").await, &first);
        assert_frame_is_message(&ws.expect_type("group_message").await, &second);
    }
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
async fn since_replays_missed_messages_in_order_then_ready() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let shared = server.create_group(&ava, "Shared", &[mike.id]).await;
    let private = server.create_group(&ava, "Ava only", &[]).await;

    let mut visible = Vec::new(); // what Mike may see, in send order
    for i in 0..4 {
        visible.push(server.send(&ava, GENERAL, &format!("general {i}")).await);
        server.send(&ava, private, &format!("private {i}")).await;
        visible.push(server.send(&mike, shared, &format!("shared {i}")).await);
    }
    let visible_ids = ids(&visible);
    assert_strictly_ascending(&visible_ids, "sent");

    for since in [
        0,
        visible_ids[2],
        visible_ids[visible_ids.len() - 2],
        *visible_ids.last().unwrap(),
    ] {
        let mut ws = server.ws_connect(&mike.token, Some(since)).await;
        let expected: Vec<&Value> = visible
            .iter()
            .filter(|m| m["id"].as_i64().unwrap() > since)
            .collect();
        for m in &expected {
            let frame = ws.next_json().await;
            assert_frame_is_message(&frame, m);
        }
        let ready = ws.expect_type("ready").await;
        assert_eq!(ready["user_id"], mike.id);
        // Live delivery follows the replay.
        let live = server
            .send(&ava, shared, &format!("live after since={since}"))
            .await;
        assert_frame_is_message(&ws.expect_type("group_message").await, &live);
        visible.push(live);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_reach_open_sockets() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let group = server.create_group(&ava, "Later", &[]).await;

    let mut mikes = server.ws_connect(&mike.token, None).await;
    let ready = mikes.expect_type("ready").await;
    assert!(!as_set(&ready["group_ids"]).contains(&group));
    let mut avas = server.ws_connect(&ava.token, None).await;
    avas.expect_type("ready").await;

    // Added: the event, then that group's messages, without reconnecting.
    server.add_member(&ava, group, mike.id, None).await;
    let welcome = server.send(&ava, group, "welcome, Mike").await;
    for ws in [&mut mikes, &mut avas] {
        let added = ws.expect_type("member_added").await;
        assert_eq!(added["group_id"], group, "{added}");
        assert_eq!(added["user_id"], mike.id, "{added}");
        assert_eq!(added["role"], "member", "{added}");
        assert_frame_is_message(&ws.expect_type("group_message").await, &welcome);
    }

    // Renamed.
    let (status, _) = server
        .patch(
            &format!("/v1/groups/{group}"),
            ava.auth(),
            &json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(status, 200);
    let updated = mikes.expect_type("group_updated").await;
    assert_eq!(updated["group_id"], group);
    assert_eq!(updated["group"]["name"], "Renamed", "{updated}");
    assert_eq!(avas.expect_type("group_updated").await["group_id"], group);

    // Removed: the event, then nothing more from that group. Proven by order: a message to the
    // removed group, then one to General; the first message Mike sees must be General's.
    let (status, _) = server
        .delete(
            &format!("/v1/groups/{group}/members/{}", mike.id),
            ava.auth(),
        )
        .await;
    assert_eq!(status, 204);
    let removed = mikes.expect_type("member_removed").await;
    assert_eq!(
        (removed["group_id"].as_i64(), removed["user_id"].as_i64()),
        (Some(group), Some(mike.id))
    );
    let removed = avas.expect_type("member_removed").await;
    assert_eq!(removed["user_id"], mike.id);

    let hidden = server.send(&ava, group, "Mike is gone").await;
    let general = server.send(&ava, GENERAL, "in General").await;
    assert_frame_is_message(&mikes.expect_type("group_message").await, &general);
    // Ava still gets both (two conversations: no order promised between them).
    let both = [
        avas.expect_type("group_message").await,
        avas.expect_type("group_message").await,
    ];
    let got: BTreeSet<i64> = both.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    assert_eq!(
        got,
        BTreeSet::from([
            hidden["id"].as_i64().unwrap(),
            general["id"].as_i64().unwrap()
        ])
    );

    // A new socket agrees.
    let mut fresh = server.ws_connect(&mike.token, None).await;
    assert_eq!(
        as_set(&fresh.expect_type("ready").await["group_ids"]),
        BTreeSet::from([GENERAL])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_and_deletion_stop_delivery() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let left = server.create_group(&ava, "To leave", &[mike.id]).await;
    let doomed = server.create_group(&ava, "To delete", &[mike.id]).await;
    let mut mikes = server.ws_connect(&mike.token, None).await;
    mikes.expect_type("ready").await;

    let (status, _) = server
        .delete(
            &format!("/v1/groups/{left}/members/{}", mike.id),
            mike.auth(),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .delete(&format!("/v1/groups/{doomed}"), ava.auth())
        .await;
    assert_eq!(status, 204);
    // Two conversations: no order is promised between their events.
    let mut events: Vec<(String, i64, Option<i64>)> = Vec::new();
    for _ in 0..2 {
        let f = mikes.next_json().await;
        events.push((
            f["type"].as_str().unwrap_or_default().to_string(),
            f["group_id"].as_i64().unwrap_or(0),
            f["user_id"].as_i64(),
        ));
    }
    events.sort();
    assert_eq!(
        events,
        vec![
            ("group_deleted".to_string(), doomed, None),
            ("member_removed".to_string(), left, Some(mike.id))
        ]
    );

    server.send(&ava, left, "after Mike left").await;
    let general = server.send(&ava, GENERAL, "still here").await;
    assert_frame_is_message(&mikes.expect_type("group_message").await, &general);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_never_receive() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let ava_mike = server.create_group(&ava, "Ava and Mike", &[mike.id]).await;
    let with_zed = server.create_group(&ava, "With Zed", &[zed.id]).await;

    let mut zeds = server.ws_connect(&zed.token, None).await;
    assert_eq!(
        as_set(&zeds.expect_type("ready").await["group_ids"]),
        BTreeSet::from([with_zed])
    );
    let mut mikes = server.ws_connect(&mike.token, None).await;
    mikes.expect_type("ready").await;

    server.send(&ava, GENERAL, "general").await;
    server.send(&mike, ava_mike, "between us").await;
    let mut avas = server.ws_connect(&ava.token, None).await;
    avas.expect_type("ready").await;
    avas.send_json(
        &json!({"type": "send", "group_id": ava_mike, "content": "over ws", "client_id": "w"}),
    )
    .await;
    avas.next_of_type("ack").await;
    server.send(&mike, GENERAL, "Mike in General").await;
    let for_zed = server.send(&ava, with_zed, "hello Zed").await;

    assert_frame_is_message(&zeds.expect_type("group_message").await, &for_zed);
    // Mike saw his groups' four messages (in some order across conversations), never With Zed's.
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(mikes.next_json().await);
    }
    let types: Vec<&str> = got.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["group_message"; 4]);
    assert!(got.iter().all(|f| f["group_id"] != with_zed), "{got:?}");
    let last = server.send(&ava, GENERAL, "last").await;
    assert_frame_is_message(&mikes.expect_type("group_message").await, &last);
}

/// Collects `count` group_message ids from a socket (after its `ready`). If the server closes it
/// with 1013 (too far behind), reconnects with `since` = the last id seen and carries on.
async fn collect_ids(addr: SocketAddr, token: &str, mut ws: Ws, count: usize) -> (Vec<i64>, usize) {
    let mut seen: Vec<i64> = Vec::new();
    let mut reconnects = 0;
    let mut replaying = false;
    'outer: while seen.len() < count {
        loop {
            let item = tokio::time::timeout(TIMEOUT, ws.stream.next())
                .await
                .unwrap_or_else(|_| panic!("timed out after {} of {count} messages", seen.len()));
            let frame: Value = match item {
                Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1013 => {
                    reconnects += 1;
                    assert!(reconnects <= 50, "closed 1013 more than 50 times");
                    let since = seen.last().copied().unwrap_or(0);
                    ws = Ws::connect(addr, token, Some(since)).await;
                    replaying = true;
                    continue 'outer;
                }
                Some(Ok(Message::Close(f))) => {
                    panic!("closed with {f:?} after {} messages", seen.len())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error after {} messages: {e}", seen.len()),
                None => panic!(
                    "socket ended without a close frame after {} messages",
                    seen.len()
                ),
            };
            match frame["type"].as_str() {
                Some("group_message") => {
                    seen.push(frame["id"].as_i64().unwrap());
                    if seen.len() >= count && !replaying {
                        break 'outer;
                    }
                }
                Some("ready") => {
                    replaying = false;
                    if seen.len() >= count {
                        break 'outer;
                    }
                }
                Some("presence") | Some("ack") => {}
                _ => panic!("unexpected frame {frame}"),
            }
        }
    }
    (seen, reconnects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ws_and_http_senders_each_message_once_in_order() {
    const SENDERS_EACH: usize = 4; // WS senders and HTTP senders
    const PER_SENDER: usize = 50;
    const TOTAL: usize = 2 * SENDERS_EACH * PER_SENDER;
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let group = server.create_group(&ava, "Busy", &[mike.id, zed.id]).await;

    // Pure listeners: two of Zed's sockets and one of Mike's.
    let mut listeners = Vec::new();
    for who in [&zed, &zed, &mike] {
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        let addr = server.addr;
        let token = who.token.clone();
        listeners.push(tokio::spawn(async move {
            collect_ids(addr, &token, ws, TOTAL).await
        }));
    }

    // WS senders: send PER_SENDER frames, and read acks plus every group_message.
    // Every socket is open (ready) before anyone sends, so each must see all TOTAL messages.
    let mut sender_sockets = Vec::new();
    for s in 0..SENDERS_EACH {
        let who = if s % 2 == 0 { &ava } else { &mike };
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        sender_sockets.push(ws);
    }
    let mut ws_senders = Vec::new();
    for (s, ws) in sender_sockets.into_iter().enumerate() {
        ws_senders.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.stream.split();
            let writer = tokio::spawn(async move {
                for i in 0..PER_SENDER {
                    let frame = json!({
                        "type": "send",
                        "group_id": group,
                        "content": format!("ws {s} #{i}"),
                        "client_id": format!("ws-{s}-{i}"),
                    });
                    sink.send(Message::text(frame.to_string()))
                        .await
                        .expect("ws send");
                }
                sink
            });
            let mut acked = HashMap::new();
            let mut delivered = Vec::new();
            // Per source ("ws-0", "http-3", …): how many of its messages arrived here.
            let mut from: BTreeMap<String, usize> = BTreeMap::new();
            while acked.len() < PER_SENDER || delivered.len() < TOTAL {
                let Ok(item) = tokio::time::timeout(TIMEOUT, stream.next()).await else {
                    panic!(
                        "ws sender {s}: timed out with {} acks and {} of {TOTAL} messages; \
                         messages received per source: {from:?}",
                        acked.len(),
                        delivered.len()
                    );
                };
                let item = item.expect("socket ended").expect("socket error");
                let Message::Text(t) = item else { continue };
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                match f["type"].as_str() {
                    Some("ack") => {
                        let cid = f["client_id"].as_str().unwrap().to_string();
                        assert!(
                            acked.insert(cid, f["id"].as_i64().unwrap()).is_none(),
                            "two acks: {f}"
                        );
                    }
                    Some("group_message") => {
                        delivered.push(f["id"].as_i64().unwrap());
                        let cid = f["client_id"].as_str().unwrap_or_default();
                        let source = cid.rsplit_once('-').map_or(cid, |(src, _)| src);
                        *from.entry(source.to_string()).or_default() += 1;
                    }
                    Some("presence") => {}
                    _ => panic!("ws sender {s}: unexpected {f}"),
                }
            }
            let _sink = writer.await.unwrap();
            (acked.into_values().collect::<Vec<i64>>(), delivered)
        }));
    }

    let mut http_senders = Vec::new();
    for s in 0..SENDERS_EACH {
        let api = server.api.clone();
        let who = if s % 2 == 0 {
            ava.clone()
        } else {
            mike.clone()
        };
        http_senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_SENDER {
                let (status, m) = api
                    .post_json(
                        &format!("/v1/messages/group/{group}"),
                        who.auth(),
                        &json!({"content": format!("http {s} #{i}"), "client_id": format!("http-{s}-{i}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{m}");
                ids.push(m["id"].as_i64().unwrap());
            }
            ids
        }));
    }

    let mut committed: Vec<i64> = Vec::new();
    for h in http_senders {
        committed.extend(h.await.expect("http sender"));
    }
    let mut sender_views = Vec::new();
    for h in ws_senders {
        let (acked, delivered) = h.await.expect("ws sender");
        committed.extend(acked);
        sender_views.push(delivered);
    }
    let mut expected = committed.clone();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(expected.len(), TOTAL, "every send got its own id");

    for (i, delivered) in sender_views.iter().enumerate() {
        assert_strictly_ascending(delivered, &format!("ws sender {i}"));
        assert_eq!(delivered, &expected, "ws sender {i} saw a different set");
    }
    for (i, h) in listeners.into_iter().enumerate() {
        let (seen, _) = h.await.expect("listener");
        assert_strictly_ascending(&seen, &format!("listener {i}"));
        assert_eq!(seen, expected, "listener {i} saw a different set");
    }
    let history = server.full_history(&ava, group).await;
    assert_eq!(ids(&history), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_everything_in_order_or_is_closed_1013() {
    const TOTAL: usize = 500;
    const SENDERS: usize = 4;
    let server = TestServer::start_with(|cfg| cfg.hub_capacity = 16).await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    // A small receive buffer, so the server cannot park the backlog in the kernel.
    let mut slow = Ws::connect_small_buffer(server.addr, &mike.token, 8 * 1024).await;
    slow.expect_type("ready").await;
    let mut fast = server.ws_connect(&ava.token, None).await;
    fast.expect_type("ready").await;
    let addr = server.addr;
    let ava_token = ava.token.clone();
    let fast_reader = tokio::spawn(async move { collect_ids(addr, &ava_token, fast, TOTAL).await });

    // ~16 KB per message (3,900 four-byte characters), ~8 MB in all: more than the kernel's
    // socket buffers hold, so the server must hold the backlog, or drop the socket with 1013.
    let filler = "🙂".repeat(3900);
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let api = server.api.clone();
        let ava = ava.clone();
        let filler = filler.clone();
        senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..TOTAL / SENDERS {
                ids.push(
                    api.send(&ava, GENERAL, &format!("{s}/{i} {filler}")).await["id"]
                        .as_i64()
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut sent = Vec::new();
    for h in senders {
        sent.extend(
            tokio::time::timeout(TIMEOUT * 6, h)
                .await
                .expect("senders timed out")
                .unwrap(),
        );
    }
    sent.sort_unstable();

    // Only now does Mike read.
    let (seen, reconnects) = collect_ids(addr, &mike.token, slow, TOTAL).await;
    assert_strictly_ascending(&seen, &format!("slow reader ({reconnects} reconnects)"));
    assert_eq!(
        seen, sent,
        "slow reader lost or duplicated messages ({reconnects} reconnects)"
    );

    let (fast_seen, _) = fast_reader.await.expect("fast reader");
    assert_eq!(fast_seen, sent, "fast reader");
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
