use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

use super::*;

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
