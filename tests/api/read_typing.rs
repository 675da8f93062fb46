//! Read markers, unread counts, the conversation list's order, and typing indicators.

use std::time::Duration;

use crate::helpers::*;
use serde_json::{json, Value};

fn id(m: &Value) -> i64 {
    m["id"].as_i64().expect("message id")
}

#[track_caller]
fn assert_read_frame(frame: &Value, group: i64, user: i64, message: i64) {
    assert_eq!(
        frame,
        &json!({"type": "read", "group_id": group, "user_id": user, "message_id": message}),
        "read frame"
    );
}

#[track_caller]
fn assert_nothing_read(entry: &Value) {
    assert!(
        entry["last_read_id"] == 0 || entry["last_read_id"].is_null(),
        "nothing has been read yet: {entry}"
    );
}

/// Ava owns a group with Mike in it; Zed is outside.
async fn setup(server: &TestServer) -> (Session, Session, Session, i64) {
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let group = server.create_group(&ava, "Readers", &[mike.id]).await;
    (ava, mike, zed, group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_marker_only_moves_forward_and_members_sockets_are_told() {
    let server = TestServer::start().await;
    let (ava, mike, _zed, group) = setup(&server).await;
    let mut avas = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;
    let mut mikes_other = server.ws_ready(&mike).await;

    let m1 = server.send(&ava, group, "one").await;
    let m2 = server.send(&ava, group, "two").await;
    let m3 = server.send(&ava, group, "three").await;
    for ws in [&mut avas, &mut mikes, &mut mikes_other] {
        for m in [&m1, &m2, &m3] {
            assert_eq!(ws.expect_type("group_message").await["id"], m["id"]);
        }
    }

    let entry = server.conversation(&mike, group).await;
    assert_eq!(entry["unread_count"], 3, "{entry}");
    assert_nothing_read(&entry);
    assert_eq!(entry["last_message"]["id"], m3["id"], "{entry}");
    assert_eq!(
        server.conversation(&ava, group).await["unread_count"],
        0,
        "one's own messages are never unread"
    );

    let (status, body) = server.mark_read(&mike, group, id(&m2)).await;
    assert_eq!((status, body), (204, Value::Null));
    for ws in [&mut avas, &mut mikes, &mut mikes_other] {
        assert_read_frame(&ws.expect_type("read").await, group, mike.id, id(&m2));
    }
    let entry = server.conversation(&mike, group).await;
    assert_eq!(entry["unread_count"], 1, "{entry}");
    assert_eq!(entry["last_read_id"], m2["id"], "{entry}");

    // Older or equal ids: 204, no change, no event.
    for older in [&m1, &m2] {
        let (status, _) = server.mark_read(&mike, group, id(older)).await;
        assert_eq!(status, 204);
    }
    let entry = server.conversation(&mike, group).await;
    assert_eq!(entry["last_read_id"], m2["id"], "moved backwards: {entry}");
    assert_eq!(entry["unread_count"], 1, "{entry}");

    // The next read event any socket sees is the forward move to m3.
    let (status, _) = server.mark_read(&mike, group, id(&m3)).await;
    assert_eq!(status, 204);
    for ws in [&mut avas, &mut mikes, &mut mikes_other] {
        let frame = ws.next_json().await;
        assert_read_frame(&frame, group, mike.id, id(&m3));
    }
    let entry = server.conversation(&mike, group).await;
    assert_eq!(
        (entry["unread_count"].clone(), entry["last_read_id"].clone()),
        (json!(0), m3["id"].clone()),
        "{entry}"
    );
    // Ava's marker is her own.
    assert_nothing_read(&server.conversation(&ava, group).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_others_undeleted_messages_above_the_marker() {
    let server = TestServer::start().await;
    let (ava, mike, _zed, group) = setup(&server).await;

    server.send(&ava, group, "a1").await;
    let a2 = server.send(&ava, group, "a2").await;
    assert_eq!(server.conversation(&mike, group).await["unread_count"], 2);

    // Mike's own messages never count for Mike, but count for Ava.
    let own = server.send(&mike, group, "mine").await;
    let entry = server.conversation(&mike, group).await;
    assert_eq!(entry["unread_count"], 2, "{entry}");
    assert_eq!(entry["last_message"]["id"], own["id"], "{entry}");
    assert_eq!(server.conversation(&ava, group).await["unread_count"], 1);

    // A deleted message is not unread.
    let (status, _) = server.delete_message(&ava, id(&a2)).await;
    assert_eq!(status, 204);
    assert_eq!(server.conversation(&mike, group).await["unread_count"], 1);

    // Reading up to the newest message clears it, even when that message is Mike's own.
    let (status, _) = server.mark_read(&mike, group, id(&own)).await;
    assert_eq!(status, 204);
    assert_eq!(server.conversation(&mike, group).await["unread_count"], 0);
    assert_eq!(server.conversation(&ava, group).await["unread_count"], 1);

    // New messages count again; other conversations are separate.
    server.send(&ava, group, "a3").await;
    server.send(&ava, GENERAL, "general news").await;
    assert_eq!(server.conversation(&mike, group).await["unread_count"], 1);
    assert_eq!(server.conversation(&mike, GENERAL).await["unread_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_failures_are_403_404_400_and_change_nothing() {
    let server = TestServer::start().await;
    let (ava, mike, zed, group) = setup(&server).await;
    let m = server.send(&ava, group, "in Readers").await;
    let elsewhere = server.send(&ava, GENERAL, "in General").await;
    let zeds_group = server.create_group(&zed, "Zed's", &[]).await;
    let zeds_msg = server.send(&zed, zeds_group, "Zed's").await;

    // Not a member.
    assert_error(
        &server.mark_read(&zed, group, id(&m)).await,
        403,
        "forbidden",
    );
    // Missing group.
    assert_error(
        &server.mark_read(&mike, group + 10_000, id(&m)).await,
        404,
        "not_found",
    );
    // A message that is not of this conversation, or does not exist.
    assert_error(
        &server.mark_read(&mike, group, id(&elsewhere)).await,
        404,
        "not_found",
    );
    assert_error(
        &server.mark_read(&mike, group, id(&zeds_msg)).await,
        404,
        "not_found",
    );
    assert_error(
        &server.mark_read(&mike, group, id(&zeds_msg) + 1000).await,
        404,
        "not_found",
    );
    // Bad bodies.
    for body in [
        json!({}),
        json!({"message_id": "1"}),
        json!({"message_id": id(&m), "extra": true}),
    ] {
        assert_error(
            &server
                .post_json(&format!("/v1/groups/{group}/read"), mike.auth(), &body)
                .await,
            400,
            "invalid_json",
        );
    }
    assert_error(
        &server
            .post_json(
                &format!("/v1/groups/{group}/read"),
                None,
                &json!({"message_id": id(&m)}),
            )
            .await,
        401,
        "unauthorized",
    );

    let entry = server.conversation(&mike, group).await;
    assert_nothing_read(&entry);
    assert_eq!(entry["unread_count"], 1, "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_frame_over_the_socket_works_like_the_http_route() {
    let server = TestServer::start().await;
    let (ava, mike, zed, group) = setup(&server).await;
    let mut avas = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;
    let m1 = server.send(&ava, group, "one").await;
    let m2 = server.send(&ava, group, "two").await;
    let elsewhere = server.send(&ava, GENERAL, "general").await;
    for ws in [&mut avas, &mut mikes] {
        // Two conversations: their relative order is not promised, so collect.
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(id(&ws.expect_type("group_message").await));
        }
        got.sort();
        assert_eq!(got, vec![id(&m1), id(&m2), id(&elsewhere)]);
    }

    mikes
        .send_json(&json!({"type": "read", "group_id": group, "message_id": id(&m2)}))
        .await;
    assert_read_frame(&mikes.expect_type("read").await, group, mike.id, id(&m2));
    assert_read_frame(&avas.expect_type("read").await, group, mike.id, id(&m2));
    let entry = server.conversation(&mike, group).await;
    assert_eq!(entry["last_read_id"], m2["id"], "{entry}");
    assert_eq!(entry["unread_count"], 0, "{entry}");

    // Failures are error frames; the socket stays open.
    let failures = [
        (
            json!({"type": "read", "group_id": group + 10_000, "message_id": id(&m1)}),
            "not_found",
        ),
        (
            json!({"type": "read", "group_id": group, "message_id": id(&elsewhere)}),
            "not_found",
        ),
        (
            json!({"type": "read", "group_id": group, "message_id": id(&m2) + 1000}),
            "not_found",
        ),
        (json!({"type": "read", "group_id": group}), "invalid_json"),
        (
            json!({"type": "read", "message_id": id(&m1)}),
            "invalid_json",
        ),
        (
            json!({"type": "read", "group_id": group, "message_id": "two"}),
            "invalid_json",
        ),
    ];
    for (frame, code) in &failures {
        mikes.send_json(frame).await;
        let err = mikes.expect_type("error").await;
        assert_eq!(err["code"], *code, "{frame} -> {err}");
        assert!(
            err["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{err}"
        );
    }
    mikes.ping_pong().await;

    // Zed is not a member.
    let mut zeds = server.ws_ready(&zed).await;
    zeds.send_json(&json!({"type": "read", "group_id": group, "message_id": id(&m1)}))
        .await;
    let err = zeds.expect_type("error").await;
    assert_eq!(err["code"], "forbidden", "{err}");

    // Backwards over the socket: no event. The next read frame anyone sees is Ava's.
    mikes
        .send_json(&json!({"type": "read", "group_id": group, "message_id": id(&m1)}))
        .await;
    mikes.ping_pong().await;
    let (status, _) = server.mark_read(&ava, group, id(&m2)).await;
    assert_eq!(status, 204);
    for ws in [&mut avas, &mut mikes] {
        assert_read_frame(&ws.next_json().await, group, ava.id, id(&m2));
    }
    assert_eq!(
        server.conversation(&mike, group).await["last_read_id"],
        m2["id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_listed_by_latest_activity_with_last_message() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let a = server.create_group(&ava, "A", &[mike.id]).await;
    let b = server.create_group(&ava, "B", &[mike.id]).await;
    let c = server.create_group(&ava, "C", &[mike.id]).await;

    let list = server.conversations(&mike).await;
    assert_sorted_by_activity(&list);
    for entry in &list {
        assert_eq!(entry["last_message"], Value::Null, "{entry}");
        assert_eq!(entry["unread_count"], 0, "{entry}");
    }

    server.send(&ava, a, "in A").await;
    server.send(&ava, c, "in C").await;
    let last = server.send(&mike, b, "in B").await;
    let list = server.conversations(&mike).await;
    assert_sorted_by_activity(&list);
    let order: Vec<i64> = list.iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(&order[..3], &[b, c, a], "{list:?}");
    assert_eq!(list[0]["last_message"], last, "last_message is the message");
    assert_eq!(list[1]["last_message"]["content"], "in C");
    assert_eq!(list[3]["id"], GENERAL);
    assert_eq!(list[3]["last_message"], Value::Null);

    // New activity in A moves it to the top, for Ava too.
    let newest = server.send(&mike, a, "A again").await;
    for who in [&ava, &mike] {
        let list = server.conversations(who).await;
        assert_sorted_by_activity(&list);
        assert_eq!(list[0]["id"], a, "{list:?}");
        assert_eq!(list[0]["last_message"]["id"], newest["id"]);
    }
    assert_eq!(server.conversation(&ava, a).await["unread_count"], 1);
    assert_eq!(server.conversation(&mike, a).await["unread_count"], 1);
}

/// Each entry's activity (last message time, else creation time) is not older than the next's.
#[track_caller]
fn assert_sorted_by_activity(list: &[Value]) {
    let activity = |g: &Value| -> String {
        let t = if g["last_message"].is_null() {
            &g["created_at"]
        } else {
            &g["last_message"]["timestamp"]
        };
        assert_timestamp(t);
        t.as_str().unwrap().to_string()
    };
    for w in list.windows(2) {
        assert!(
            activity(&w[0]) >= activity(&w[1]),
            "not newest activity first: {} before {}",
            w[0],
            w[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_members_but_none_of_the_senders_sockets() {
    let server = TestServer::start().await;
    let (ava, mike, _zed, group) = setup(&server).await;
    let mut avas = server.ws_ready(&ava).await;
    let mut avas_other = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;
    let mut mikes_other = server.ws_ready(&mike).await;

    avas.send_json(&json!({"type": "typing", "group_id": group}))
        .await;
    avas.send_json(
        &json!({"type": "send", "group_id": group, "content": "typed", "client_id": "t1"}),
    )
    .await;

    for ws in [&mut mikes, &mut mikes_other] {
        let typing = ws.next_json().await;
        assert_eq!(
            typing,
            json!({"type": "typing", "group_id": group, "user_id": ava.id, "username": "Ava"})
        );
        let m = ws.next_json().await;
        assert_eq!(
            (m["type"].clone(), m["content"].clone()),
            (json!("group_message"), json!("typed")),
            "{m}"
        );
    }
    // Ava's other socket: the message is the next frame, no typing before it.
    let frame = avas_other.next_json().await;
    assert_eq!(
        (frame["type"].clone(), frame["content"].clone()),
        (json!("group_message"), json!("typed")),
        "the sender's other socket got {frame}"
    );
    // The typing socket itself: the ack and the message only.
    let mut frames = avas.frames_until("group_message").await;
    if !frames.iter().any(|f| f["type"] == "ack") {
        frames.push(avas.expect_type("ack").await);
    }
    assert!(
        frames
            .iter()
            .all(|f| f["type"] == "ack" || f["type"] == "group_message"),
        "the sender's socket got {frames:?}"
    );

    // Typing is never stored.
    let (history, _) = server.history(&mike, group, "").await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["content"], "typed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_rate_limited_per_socket_and_conversation() {
    let server = TestServer::start().await;
    let (ava, mike, _zed, group) = setup(&server).await;
    let other_group = server.create_group(&ava, "Other", &[mike.id]).await;
    let mut avas = server.ws_ready(&ava).await;
    let mut avas_other = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;

    for _ in 0..50 {
        avas.send_json(&json!({"type": "typing", "group_id": group}))
            .await;
    }
    avas.send_json(
        &json!({"type": "send", "group_id": group, "content": "after 50", "client_id": "r1"}),
    )
    .await;
    let frames = mikes.frames_until("group_message").await;
    let typing = frames.iter().filter(|f| f["type"] == "typing").count();
    assert_eq!(typing, 1, "50 typing frames within 2 s: {frames:?}");
    assert_eq!(frames.last().unwrap()["content"], "after 50");
    // Dropped frames are dropped silently: no error frames to the sender.
    let mut own = avas.frames_until("group_message").await;
    if !own.iter().any(|f| f["type"] == "ack") {
        own.push(avas.expect_type("ack").await);
    }
    assert!(
        own.iter()
            .all(|f| f["type"] == "ack" || f["type"] == "group_message"),
        "{own:?}"
    );

    // Another conversation has its own window.
    avas.send_json(&json!({"type": "typing", "group_id": other_group}))
        .await;
    avas.send_json(&json!({"type": "send", "group_id": other_group, "content": "elsewhere"}))
        .await;
    let frames = mikes.frames_until("group_message").await;
    assert_eq!(
        frames
            .iter()
            .map(|f| (f["type"].clone(), f["group_id"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!("typing"), json!(other_group)),
            (json!("group_message"), json!(other_group))
        ],
        "{frames:?}"
    );

    // Another socket has its own window.
    avas_other
        .send_json(&json!({"type": "typing", "group_id": group}))
        .await;
    avas_other
        .send_json(&json!({"type": "send", "group_id": group, "content": "other tab"}))
        .await;
    let frames = mikes.frames_until("group_message").await;
    assert_eq!(
        frames.iter().map(|f| f["type"].clone()).collect::<Vec<_>>(),
        vec![json!("typing"), json!("group_message")],
        "{frames:?}"
    );

    // Never stored.
    let (history, _) = server.history(&ava, group, "").await;
    assert_eq!(history.len(), 2, "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typing_window_reopens_after_two_seconds() {
    let server = TestServer::start().await;
    let (ava, mike, _zed, group) = setup(&server).await;
    let mut avas = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;

    avas.send_json(&json!({"type": "typing", "group_id": group}))
        .await;
    assert_eq!(mikes.expect_type("typing").await["user_id"], ava.id);
    // The time window itself is what is tested here, not a stand-in for synchronisation.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    avas.send_json(&json!({"type": "typing", "group_id": group}))
        .await;
    avas.send_json(&json!({"type": "send", "group_id": group, "content": "later"}))
        .await;
    let frames = mikes.frames_until("group_message").await;
    assert_eq!(
        frames.iter().map(|f| f["type"].clone()).collect::<Vec<_>>(),
        vec![json!("typing"), json!("group_message")],
        "{frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_outside_ones_conversations_is_an_error_frame() {
    let server = TestServer::start().await;
    let (ava, mike, zed, group) = setup(&server).await;
    let mut zeds = server.ws_ready(&zed).await;
    let mut mikes = server.ws_ready(&mike).await;

    zeds.send_json(&json!({"type": "typing", "group_id": group}))
        .await;
    assert_eq!(zeds.expect_type("error").await["code"], "forbidden");
    zeds.send_json(&json!({"type": "typing", "group_id": group + 10_000}))
        .await;
    assert_eq!(zeds.expect_type("error").await["code"], "not_found");
    for bad in [
        json!({"type": "typing"}),
        json!({"type": "typing", "group_id": "one"}),
    ] {
        zeds.send_json(&bad).await;
        let err = zeds.expect_type("error").await;
        assert_eq!(err["code"], "invalid_json", "{bad} -> {err}");
    }
    zeds.ping_pong().await;

    // The members heard nothing of Zed: Mike's next frame is Ava's message.
    let m = server.send(&ava, group, "no typing from Zed").await;
    let frame = mikes.next_json().await;
    assert_eq!(
        (frame["type"].clone(), frame["id"].clone()),
        (json!("group_message"), m["id"].clone()),
        "{frame}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_read_markers_in_a_direct_conversation() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let first = server.send_direct(&ava, mike.id, "are you there?").await;
    let conv = first["group_id"].as_i64().unwrap();
    let mut avas = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;

    assert_eq!(server.conversation(&mike, conv).await["unread_count"], 1);
    mikes
        .send_json(&json!({"type": "typing", "group_id": conv}))
        .await;
    mikes
        .send_json(&json!({"type": "read", "group_id": conv, "message_id": id(&first)}))
        .await;
    assert_eq!(
        avas.next_json().await,
        json!({"type": "typing", "group_id": conv, "user_id": mike.id, "username": "Mike"})
    );
    assert_read_frame(&avas.next_json().await, conv, mike.id, id(&first));
    // Mike's own socket: the read frame, never his own typing.
    assert_read_frame(&mikes.next_json().await, conv, mike.id, id(&first));
    assert_eq!(server.conversation(&mike, conv).await["unread_count"], 0);
    assert_eq!(
        server.conversation(&mike, conv).await["last_read_id"],
        first["id"]
    );
}
