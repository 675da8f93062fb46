//! Presence: who is told when a user comes online and goes offline, and what profiles show.
//!
//! These tests read frames with `next_json_raw`, which does not skip `presence` frames.

use crate::helpers::*;
use serde_json::{json, Value};

#[track_caller]
fn assert_online(frame: &Value, user: i64) {
    assert_eq!(frame["type"], "presence", "expected presence, got {frame}");
    assert_eq!(frame["user_id"], user, "{frame}");
    assert_eq!(frame["online"], true, "{frame}");
    assert!(
        frame["last_seen"].is_null() || frame["last_seen"].is_string(),
        "{frame}"
    );
    if frame["last_seen"].is_string() {
        assert_timestamp(&frame["last_seen"]);
    }
    assert_eq!(
        frame.as_object().unwrap().len(),
        4,
        "presence has type, user_id, online, last_seen: {frame}"
    );
}

/// Returns the frame's last_seen.
#[track_caller]
fn assert_offline(frame: &Value, user: i64) -> String {
    assert_eq!(frame["type"], "presence", "expected presence, got {frame}");
    assert_eq!(frame["user_id"], user, "{frame}");
    assert_eq!(frame["online"], false, "{frame}");
    assert_timestamp(&frame["last_seen"]);
    frame["last_seen"].as_str().unwrap().to_string()
}

#[track_caller]
fn assert_message_frame(frame: &Value, message: &Value) {
    assert_eq!(
        (frame["type"].clone(), frame["id"].clone()),
        (json!("group_message"), message["id"].clone()),
        "expected the message {}, got {frame}",
        message["id"]
    );
}

async fn profile(api: &Api, by: &Session, user: i64) -> Value {
    let (status, body) = api.get(&format!("/v1/users/{user}"), by.auth()).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn member(api: &Api, by: &Session, group: i64, user: i64) -> (Value, Value) {
    let (status, members) = api
        .get(&format!("/v1/groups/{group}/members"), by.auth())
        .await;
    assert_eq!(status, 200, "{members}");
    let listed = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == user)
        .unwrap_or_else(|| panic!("{user} not in the members list: {members}"))
        .clone();
    let (status, detail) = api.get(&format!("/v1/groups/{group}"), by.auth()).await;
    assert_eq!(status, 200, "{detail}");
    let in_detail = detail["members"]
        .as_array()
        .expect("group detail has members")
        .iter()
        .find(|m| m["id"] == user)
        .unwrap_or_else(|| panic!("{user} not in the group's members: {detail}"))
        .clone();
    (listed, in_detail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_socket_announces_online_last_socket_announces_offline() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    // A second shared conversation: still one event per receiving socket.
    server.create_group(&ava, "Second", &[mike.id]).await;
    let mut mikes = server.ws_ready(&mike).await;
    let mut mikes_other = server.ws_ready(&mike).await;

    let before = profile(&server, &mike, ava.id).await;
    assert_eq!(before["online"], false, "{before}");
    assert_eq!(
        before["last_seen"],
        Value::Null,
        "never connected: {before}"
    );

    // Ava's first socket.
    let mut avas = server.ws_ready(&ava).await;
    for ws in [&mut mikes, &mut mikes_other] {
        let frame = ws.next_json_raw().await;
        assert_online(&frame, ava.id);
        assert_eq!(frame["last_seen"], Value::Null, "{frame}");
    }
    let now = profile(&server, &mike, ava.id).await;
    assert_eq!(now["online"], true, "{now}");
    let (listed, in_detail) = member(&server, &mike, GENERAL, ava.id).await;
    assert_eq!(listed["online"], true, "{listed}");
    assert_eq!(in_detail["online"], true, "{in_detail}");
    assert!(in_detail.get("last_seen").is_some(), "{in_detail}");
    assert!(listed.get("last_seen").is_some(), "{listed}");

    // Ava's second socket: no second online. Mike's next frame is Ava's message.
    let mut avas_other = server.ws_ready(&ava).await;
    let first = server.send(&ava, GENERAL, "two tabs open").await;
    for ws in [&mut mikes, &mut mikes_other, &mut avas, &mut avas_other] {
        assert_message_frame(&ws.next_json_raw().await, &first);
    }

    // Closing one of two sockets: no offline. Mike's next frame is Ava's next message.
    avas_other.close().await;
    let second = server.send(&ava, GENERAL, "one tab left").await;
    for ws in [&mut mikes, &mut mikes_other, &mut avas] {
        assert_message_frame(&ws.next_json_raw().await, &second);
    }
    assert_eq!(profile(&server, &mike, ava.id).await["online"], true);

    // Closing the last one: offline with last_seen, once per receiving socket. Any stray
    // second "online" or early "offline" from before would arrive here first.
    avas.close().await;
    let mut seen = Vec::new();
    for ws in [&mut mikes, &mut mikes_other] {
        seen.push(assert_offline(&ws.next_json_raw().await, ava.id));
    }
    assert_eq!(seen[0], seen[1]);
    assert!(
        seen[0].as_str() >= second["timestamp"].as_str().unwrap(),
        "last_seen {} is before Ava's last message",
        seen[0]
    );
    let after = profile(&server, &mike, ava.id).await;
    assert_eq!(after["online"], false, "{after}");
    assert_eq!(after["last_seen"], seen[0].as_str(), "{after}");
    let (listed, in_detail) = member(&server, &mike, GENERAL, ava.id).await;
    assert_eq!(listed["online"], false, "{listed}");
    assert_eq!(in_detail["online"], false, "{in_detail}");
    assert_eq!(listed["last_seen"], seen[0].as_str(), "{listed}");

    // Back again: online, once; then a message proves nothing else is queued.
    let mut back = server.ws_ready(&ava).await;
    for ws in [&mut mikes, &mut mikes_other] {
        let frame = ws.next_json_raw().await;
        assert_online(&frame, ava.id);
        assert!(frame["last_seen"].is_string(), "seen before: {frame}");
    }
    let third = server.send(&mike, GENERAL, "welcome back").await;
    for ws in [&mut mikes, &mut mikes_other, &mut back] {
        assert_message_frame(&ws.next_json_raw().await, &third);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sharing_no_conversation_are_not_told() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    // Zed shares a group with Mike only; Ava and Mike share General.
    server.create_group(&mike, "Pair", &[zed.id]).await;

    let mut zeds = server.ws_ready(&zed).await;
    let mut avas = server.ws_ready(&ava).await;
    // Mike comes online: Zed and Ava are told. Had Zed been told of Ava, that came first.
    let mut mikes = server.ws_ready(&mike).await;
    assert_online(&zeds.next_json_raw().await, mike.id);
    assert_online(&avas.next_json_raw().await, mike.id);

    // Ava goes offline: Mike is told. Then Mike goes offline: Zed's next frame is about Mike.
    avas.close().await;
    assert_offline(&mikes.next_json_raw().await, ava.id);
    mikes.close().await;
    assert_offline(&zeds.next_json_raw().await, mike.id);

    // A direct conversation is a shared conversation.
    server.send_direct(&ava, zed.id, "hi Zed").await;
    let frames = zeds.frames_until("group_message").await;
    assert_eq!(frames.last().unwrap()["content"], "hi Zed");
    let mut avas = server.ws_ready(&ava).await;
    // (Membership news about the new conversation may still be on its way.)
    let mut frame = zeds.next_json_raw().await;
    while frame["type"] == "member_added" {
        frame = zeds.next_json_raw().await;
    }
    assert_online(&frame, ava.id);
    // Ava is never told about herself; her first frame after ready is Zed's message.
    let reply = server.send_direct(&zed, ava.id, "hi Ava").await;
    assert_message_frame(&avas.next_json_raw().await, &reply);
    assert_message_frame(&zeds.next_json_raw().await, &reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_and_listings_show_online_and_last_seen() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let group = server.create_group(&zed, "Mixed", &[ava.id, mike.id]).await;
    let _avas = server.ws_ready(&ava).await;

    let (status, users) = server.get("/v1/users", zed.auth()).await;
    assert_eq!(status, 200, "{users}");
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 3, "{users:?}");
    for u in users {
        assert!(u["online"].is_boolean(), "{u}");
        assert!(u.get("last_seen").is_some(), "{u}");
        let expect_online = u["id"] == ava.id;
        assert_eq!(u["online"], expect_online, "{u}");
    }
    let (status, found) = server.get("/v1/users?q=av", zed.auth()).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found[0]["id"], ava.id, "{found}");
    assert_eq!(found[0]["online"], true, "{found}");

    let (status, members) = server
        .get(&format!("/v1/groups/{group}/members"), zed.auth())
        .await;
    assert_eq!(status, 200, "{members}");
    for m in members.as_array().unwrap() {
        assert_eq!(m["online"], m["id"] == ava.id, "{m}");
        assert!(m.get("last_seen").is_some(), "{m}");
    }
    let (status, detail) = server.get(&format!("/v1/groups/{group}"), zed.auth()).await;
    assert_eq!(status, 200, "{detail}");
    for m in detail["members"].as_array().unwrap() {
        assert_eq!(m["online"], m["id"] == ava.id, "{m}");
        assert!(m.get("last_seen").is_some(), "{m}");
    }
}

/// Who shares a conversation is decided when the event happens, not when sockets opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_a_shared_conversation_changes_who_is_told() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    server.create_group(&mike, "Pair", &[zed.id]).await;

    let mut zeds = server.ws_ready(&zed).await;
    let avas = server.ws_ready(&ava).await;

    // Ava adds Zed to a new group while both are online; when Ava leaves, Zed is told.
    let group = server.create_group(&ava, "Later", &[zed.id]).await;
    let added = zeds.next_json_raw().await;
    assert_eq!(
        (added["type"].clone(), added["group_id"].clone()),
        (json!("member_added"), json!(group)),
        "{added}"
    );
    avas.close().await;
    let mut frame = zeds.next_json_raw().await;
    while frame["type"] == "member_added" && frame["group_id"] == group {
        frame = zeds.next_json_raw().await;
    }
    assert_offline(&frame, ava.id);

    // Zed leaves; Ava coming back is no longer his business. Mike coming online is.
    let (status, body) = server
        .delete(
            &format!("/v1/groups/{group}/members/{}", zed.id),
            zed.auth(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let removed = zeds.next_json_raw().await;
    assert_eq!(removed["type"], "member_removed", "{removed}");
    let _avas = server.ws_ready(&ava).await;
    let _mikes = server.ws_ready(&mike).await;
    assert_online(&zeds.next_json_raw().await, mike.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_two_sockets_at_once_announces_offline_once() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut mikes = server.ws_ready(&mike).await;

    for round in 0..3 {
        let a = server.ws_ready(&ava).await;
        let b = server.ws_ready(&ava).await;
        let frame = mikes.next_json_raw().await;
        assert_online(&frame, ava.id);
        let (ra, rb) = tokio::join!(tokio::spawn(a.close()), tokio::spawn(b.close()));
        ra.unwrap();
        rb.unwrap();
        assert_offline(&mikes.next_json_raw().await, ava.id);
        // Exactly one: the next frame is a message, not a second offline.
        let m = server.send(&ava, GENERAL, &format!("round {round}")).await;
        assert_message_frame(&mikes.next_json_raw().await, &m);
        assert_eq!(profile(&server, &mike, ava.id).await["online"], false);
    }
}

/// `n` new users, `pupil0` to `pupil{n-1}`.
async fn pupils(server: &TestServer, n: usize) -> Vec<Session> {
    let mut class = Vec::new();
    for i in 0..n {
        class.push(server.new_user(&format!("pupil{i}")).await);
    }
    class
}

/// A class arriving at once: the watcher hears every arrival, but in a few frames (the first
/// at once, the rest together in `presence_batch` frames), not one frame per arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_arriving_at_once_is_announced_in_a_few_frames() {
    let server = TestServer::start().await;
    let teacher = server.ava().await;
    let class = pupils(&server, 20).await;
    let ids: Vec<i64> = class.iter().map(|s| s.id).collect();
    server.create_group(&teacher, "class", &ids).await;
    let mut watcher = server.ws_ready(&teacher).await;
    let sockets =
        futures_util::future::join_all(class.iter().map(|pupil| server.ws_ready(pupil))).await;
    let (mut online, mut frames, mut batches) = (std::collections::HashSet::new(), 0, 0);
    while online.len() < ids.len() {
        let frame = watcher.next_frame().await;
        let changes = match frame["type"].as_str() {
            Some("presence") => vec![frame],
            Some("presence_batch") => {
                batches += 1;
                frame["changes"].as_array().unwrap().clone()
            }
            _ => continue,
        };
        frames += 1;
        // (A socket that fell behind is told everyone's presence again: repeats, and contacts
        // from elsewhere, may come.)
        for change in changes {
            let user = change["user_id"].as_i64().unwrap();
            if ids.contains(&user) {
                assert_online(&change, user);
                online.insert(user);
            }
        }
    }
    assert!(
        batches >= 1 && frames < ids.len() / 2,
        "{frames} frames ({batches} batches) for {} arrivals",
        ids.len()
    );
    drop(sockets);
}

/// A socket that stopped reading while more presence came than its user's channel holds is
/// not closed, and once it reads it is told everyone's presence again: its client ends up
/// knowing every classmate is online, though events were dropped on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_missed_presence_is_told_all_of_it_again() {
    let server = TestServer::start().await;
    let (teacher, mike) = (server.ava().await, server.mike().await);
    let chat = server.create_group(&teacher, "chat", &[mike.id]).await;
    let mut watcher = Ws::connect_small_buffer(server.addr, &teacher.token, 4096).await;
    watcher.expect_type("ready").await;
    // Nobody reads the watcher while 8 MB of messages fill its socket (the kernel's buffers
    // on loopback take a few MB)...
    let big = "x".repeat(4000);
    let senders = (0..4).map(|_| async {
        for _ in 0..500 {
            server.send(&mike, chat, &big).await;
        }
    });
    futures_util::future::join_all(senders).await;
    // ...and 40 classmates, more than its presence channel holds, come online.
    let class = pupils(&server, 40).await;
    let ids: Vec<i64> = class.iter().map(|s| s.id).collect();
    server.create_group(&teacher, "class", &ids).await;
    let mut sockets = Vec::new();
    for pupil in &class {
        sockets.push(server.ws_ready(pupil).await);
    }
    let mut online = std::collections::HashSet::new();
    while online.len() < ids.len() {
        let frame = watcher.next_json_raw().await;
        let user = frame["user_id"].as_i64().unwrap_or_default();
        if frame["type"] == "presence" && frame["online"] == true && ids.contains(&user) {
            online.insert(user);
        }
    }
    drop(sockets);
}
