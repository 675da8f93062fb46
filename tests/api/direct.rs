//! Direct conversations: one per pair of users, created on first use, with exactly its two
//! members and none of a group's member or name operations.

use crate::helpers::*;
use serde_json::{json, Value};

#[track_caller]
fn assert_direct_shape(c: &Value, me: &Session, peer: &Session) {
    for key in [
        "id",
        "kind",
        "name",
        "owner_id",
        "created_at",
        "role",
        "peer",
    ] {
        assert!(
            c.get(key).is_some(),
            "direct conversation lacks `{key}`: {c}"
        );
    }
    assert!(c["id"].is_i64(), "{c}");
    assert_eq!(c["kind"], "direct", "{c}");
    assert_eq!(c["name"], Value::Null, "{c}");
    assert_eq!(c["owner_id"], Value::Null, "{c}");
    assert_eq!(c["role"], "member", "{c}");
    assert_timestamp(&c["created_at"]);
    assert_eq!(c["peer"]["id"], peer.id, "peer of {}: {c}", me.username);
    assert_eq!(c["peer"]["username"], peer.username.as_str(), "{c}");
    assert!(c["peer"].get("display_name").is_some(), "{c}");
    assert!(c["peer"].get("email").is_none(), "peer leaks email: {c}");
}

/// The next `group_message`. News that the peer joined `conv` may still be on its way (the
/// contract orders messages, not membership news against them), so `member_added` frames of
/// `conv` may come first; anything else fails.
async fn next_message(ws: &mut Ws, conv: i64) -> Value {
    loop {
        let f = ws.next_json().await;
        if f["type"] == "group_message" {
            return f;
        }
        assert!(
            f["type"] == "member_added" && f["group_id"] == conv,
            "expected a group_message, got {f}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_create_is_201_then_200_with_the_same_id_from_both_sides() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let (status, first) = server.direct(&ava, mike.id).await;
    assert_eq!(status, 201, "first use creates: {first}");
    assert_direct_shape(&first, &ava, &mike);
    let id = first["id"].as_i64().unwrap();
    assert_ne!(id, GENERAL);

    let (status, again) = server.direct(&ava, mike.id).await;
    assert_eq!(status, 200, "second use finds it: {again}");
    assert_eq!(again, first, "the same conversation, unchanged");

    let (status, theirs) = server.direct(&mike, ava.id).await;
    assert_eq!(status, 200, "Mike finds the one Ava made: {theirs}");
    assert_direct_shape(&theirs, &mike, &ava);
    assert_eq!(theirs["id"], id);
    assert_eq!(theirs["created_at"], first["created_at"]);

    // Exactly the two of them.
    let (status, members) = server
        .get(&format!("/v1/groups/{id}/members"), ava.auth())
        .await;
    assert_eq!(status, 200, "{members}");
    let mut member_ids: Vec<i64> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    member_ids.sort();
    let mut expected = vec![ava.id, mike.id];
    expected.sort();
    assert_eq!(member_ids, expected);

    // A different pair gets a different conversation.
    let zed = server.new_user("zed").await;
    let (status, other) = server.direct(&zed, ava.id).await;
    assert_eq!(status, 201, "{other}");
    assert_direct_shape(&other, &zed, &ava);
    assert_ne!(other["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_is_400_unknown_user_is_404_no_token_401() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let missing = ava.id.max(mike.id) + 1000;

    assert_error(&server.direct(&ava, ava.id).await, 400, "invalid_user_id");
    assert_error(&server.direct(&ava, missing).await, 404, "not_found");
    assert_error(
        &server.post_empty("/v1/direct/abc", ava.auth()).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .post_empty(&format!("/v1/direct/{}", mike.id), None)
            .await,
        401,
        "unauthorized",
    );

    let body = json!({"content": "hello me"});
    assert_error(
        &server
            .post_json(
                &format!("/v1/messages/direct/{}", ava.id),
                ava.auth(),
                &body,
            )
            .await,
        400,
        "invalid_user_id",
    );
    assert_error(
        &server
            .post_json(&format!("/v1/messages/direct/{missing}"), ava.auth(), &body)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/v1/messages/direct/{missing}"), ava.auth())
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/v1/messages/direct/{}", ava.id), ava.auth())
            .await,
        400,
        "invalid_user_id",
    );

    // None of that created anything.
    let list = server.conversations(&ava).await;
    assert!(
        list.iter().all(|c| c["kind"] != "direct"),
        "failed calls created a direct conversation: {list:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_conversations_are_listed_with_kind_and_peer() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;

    let id = server.direct_id(&ava, mike.id).await;

    let avas = server.conversation(&ava, id).await;
    assert_direct_shape(&avas, &ava, &mike);
    assert_eq!(avas["last_message"], Value::Null, "{avas}");
    assert_eq!(avas["unread_count"], 0, "{avas}");

    let mikes = server.conversation(&mike, id).await;
    assert_direct_shape(&mikes, &mike, &ava);

    // Groups keep kind "group".
    let general = server.conversation(&ava, GENERAL).await;
    assert_eq!(general["kind"], "group", "{general}");

    // Zed sees none of it.
    let zeds = server.conversations(&zed).await;
    assert!(zeds.iter().all(|c| c["id"] != id), "{zeds:?}");

    // GET /v1/groups/{id} shows it with both members, to its members only.
    let (status, detail) = server.get(&format!("/v1/groups/{id}"), mike.auth()).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["kind"], "direct", "{detail}");
    assert_eq!(
        detail["members"].as_array().map(|m| m.len()),
        Some(2),
        "{detail}"
    );
    assert_error(
        &server.get(&format!("/v1/groups/{id}"), zed.auth()).await,
        403,
        "forbidden",
    );

    // The peer is shown as they are now.
    let (status, _) = server
        .patch(
            "/v1/me",
            mike.auth(),
            &json!({"display_name": "Mike the Mighty"}),
        )
        .await;
    assert_eq!(status, 200);
    let avas = server.conversation(&ava, id).await;
    assert_eq!(avas["peer"]["display_name"], "Mike the Mighty", "{avas}");

    // A message makes it the most recent activity, with that message as last_message.
    let sent = server.send_direct(&mike, ava.id, "hi Ava").await;
    let list = server.conversations(&ava).await;
    assert_eq!(list[0]["id"], id, "most recent first: {list:?}");
    assert_eq!(list[0]["last_message"]["id"], sent["id"]);
    assert_eq!(list[0]["unread_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_history_by_user_id() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    // Before anything was said: an empty page, and no conversation created by reading.
    let (status, page) = server
        .get(&format!("/v1/messages/direct/{}", mike.id), ava.auth())
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page, json!({"messages": [], "has_more": false}));
    assert!(
        server
            .conversations(&ava)
            .await
            .iter()
            .all(|c| c["kind"] != "direct"),
        "reading history created a conversation"
    );

    // The first message creates the conversation.
    let (status, first) = server
        .post_json(
            &format!("/v1/messages/direct/{}", mike.id),
            ava.auth(),
            &json!({"content": "  psst, Mike  ", "client_id": "d1"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_message_shape(&first);
    assert_eq!(first["content"], "psst, Mike");
    assert_eq!(first["sender_id"], ava.id);
    assert_eq!(first["sender_username"], "Ava");
    assert_eq!(first["client_id"], "d1");
    let conv = first["group_id"].as_i64().unwrap();
    assert_eq!(
        server.direct_id(&mike, ava.id).await,
        conv,
        "the message went to the pair's conversation"
    );

    // A repeated client_id answers 200 with the first message.
    let (status, dup) = server
        .post_json(
            &format!("/v1/messages/direct/{}", mike.id),
            ava.auth(),
            &json!({"content": "psst, Mike", "client_id": "d1"}),
        )
        .await;
    assert_eq!(status, 200, "{dup}");
    assert_eq!(dup, first);

    let reply = server.send_direct(&mike, ava.id, "yes?").await;
    assert_eq!(reply["group_id"], conv);
    let third = server.send_direct(&ava, mike.id, "nothing").await;

    // Both sides read the same history, ascending; the group route agrees.
    let (avas, more) = server.direct_history(&ava, mike.id, "").await;
    assert!(!more);
    assert_eq!(
        ids(&avas),
        vec![
            first["id"].as_i64().unwrap(),
            reply["id"].as_i64().unwrap(),
            third["id"].as_i64().unwrap()
        ]
    );
    let (mikes, _) = server.direct_history(&mike, ava.id, "").await;
    assert_eq!(mikes, avas);
    let (by_group, _) = server.history(&mike, conv, "").await;
    assert_eq!(by_group, avas);

    // Cursors and limits work as for groups.
    let (page, more) = server.direct_history(&ava, mike.id, "limit=2").await;
    assert_eq!(ids(&page), ids(&avas[1..]));
    assert!(more);
    let before = avas[1]["id"].as_i64().unwrap();
    let (page, more) = server
        .direct_history(&mike, ava.id, &format!("before={before}"))
        .await;
    assert_eq!(ids(&page), ids(&avas[..1]));
    assert!(!more);
    assert_error(
        &server
            .get(
                &format!("/v1/messages/direct/{}?limit=0", mike.id),
                ava.auth(),
            )
            .await,
        400,
        "invalid_limit",
    );

    // Content rules are the same.
    assert_error(
        &server
            .post_json(
                &format!("/v1/messages/direct/{}", mike.id),
                ava.auth(),
                &json!({"content": "   "}),
            )
            .await,
        400,
        "invalid_content",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_both_users_sockets_even_ones_opened_before_the_conversation() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let mut avas = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;
    let mut zeds = server.ws_ready(&zed).await;

    // The first message creates the conversation: each socket learns it was added, then gets
    // the message.
    let sent = server.send_direct(&ava, mike.id, "first words").await;
    let conv = sent["group_id"].as_i64().unwrap();
    for (who, ws) in [(&ava, &mut avas), (&mike, &mut mikes)] {
        let frames = ws.frames_until("group_message").await;
        let (message, before) = frames.split_last().unwrap();
        assert!(
            before.iter().any(|f| f["type"] == "member_added"
                && f["group_id"] == conv
                && f["user_id"] == who.id),
            "{}'s socket got no member_added for itself before the message: {frames:?}",
            who.username
        );
        assert!(
            before
                .iter()
                .all(|f| f["type"] == "member_added" && f["group_id"] == conv),
            "unexpected frames before the message: {frames:?}"
        );
        assert_eq!(message["id"], sent["id"], "{message}");
        assert_eq!(message["group_id"], conv);
        assert_eq!(message["content"], "first words");
    }

    // Later messages, either direction, over HTTP or the socket, reach both.
    let back = server.send_direct(&mike, ava.id, "hello back").await;
    for ws in [&mut avas, &mut mikes] {
        let m = next_message(ws, conv).await;
        assert_eq!(m["id"], back["id"], "{m}");
    }
    avas.send_json(
        &json!({"type": "send", "group_id": conv, "content": "over ws", "client_id": "w1"}),
    )
    .await;
    let frames = avas.frames_until("group_message").await;
    let own = frames.last().unwrap();
    let ack = match frames.iter().find(|f| f["type"] == "ack") {
        Some(a) => a.clone(),
        None => avas.expect_type("ack").await,
    };
    assert_eq!(ack["id"], own["id"]);
    let m = next_message(&mut mikes, conv).await;
    assert_eq!(
        (m["id"].clone(), m["content"].clone()),
        (own["id"].clone(), json!("over ws"))
    );

    // Zed got none of it: the next thing Zed's socket sees is a message of Zed's own group.
    let zeds_group = server.create_group(&zed, "Zed alone", &[]).await;
    let own_msg = server.send(&zed, zeds_group, "just me").await;
    let frames = zeds.frames_until("group_message").await;
    assert!(
        frames.iter().all(|f| f["group_id"] != conv),
        "Zed saw the direct conversation: {frames:?}"
    );
    assert_eq!(frames.last().unwrap()["id"], own_msg["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_with_post_direct_tells_open_sockets() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut mikes = server.ws_ready(&mike).await;

    let conv = server.direct_id(&ava, mike.id).await;
    let sent = server.send(&ava, conv, "via the group route").await;
    let frames = mikes.frames_until("group_message").await;
    assert!(
        frames.iter().any(|f| f["type"] == "member_added"
            && f["group_id"] == conv
            && f["user_id"] == mike.id),
        "no member_added for Mike: {frames:?}"
    );
    assert_eq!(frames.last().unwrap()["id"], sent["id"]);

    // A socket opened afterwards lists it in ready.
    let mut later = server.ws_connect(&mike.token, None).await;
    let ready = later.expect_type("ready").await;
    assert!(
        ready["group_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| *g == conv),
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_user_can_neither_read_nor_post() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let sent = server.send_direct(&ava, mike.id, "between us").await;
    let conv = sent["group_id"].as_i64().unwrap();

    assert_error(
        &server
            .get(&format!("/v1/messages/group/{conv}"), zed.auth())
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &server
            .post_json(
                &format!("/v1/messages/group/{conv}"),
                zed.auth(),
                &json!({"content": "let me in"}),
            )
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &server
            .get(&format!("/v1/groups/{conv}/members"), zed.auth())
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &server
            .mark_read(&zed, conv, sent["id"].as_i64().unwrap())
            .await,
        403,
        "forbidden",
    );

    // Zed's own direct history with either of them is empty.
    let (page, _) = server.direct_history(&zed, ava.id, "").await;
    assert!(page.is_empty(), "{page:?}");

    // Over the socket too.
    let mut zeds = server.ws_ready(&zed).await;
    zeds.send_json(
        &json!({"type": "send", "group_id": conv, "content": "sneaky", "client_id": "z"}),
    )
    .await;
    let err = zeds.expect_type("error").await;
    assert_eq!(err["code"], "forbidden", "{err}");
    assert_eq!(err["client_id"], "z", "{err}");

    let (history, _) = server.history(&ava, conv, "").await;
    assert_eq!(history.len(), 1, "nothing was added: {history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_only_operations_on_a_direct_conversation_are_403() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let conv = server.direct_id(&ava, mike.id).await;

    for who in [&ava, &mike] {
        assert_error(
            &server
                .patch(
                    &format!("/v1/groups/{conv}"),
                    who.auth(),
                    &json!({"name": "Renamed"}),
                )
                .await,
            403,
            "forbidden",
        );
        assert_error(
            &server
                .post_json(
                    &format!("/v1/groups/{conv}/members"),
                    who.auth(),
                    &json!({"user_id": zed.id}),
                )
                .await,
            403,
            "forbidden",
        );
        assert_error(
            &server
                .delete(&format!("/v1/groups/{conv}/members/{}", who.id), who.auth())
                .await,
            403,
            "forbidden",
        );
        assert_error(
            &server
                .delete(&format!("/v1/groups/{conv}"), who.auth())
                .await,
            403,
            "forbidden",
        );
    }
    assert_error(
        &server
            .delete(
                &format!("/v1/groups/{conv}/members/{}", mike.id),
                ava.auth(),
            )
            .await,
        403,
        "forbidden",
    );

    // Nothing changed.
    let (status, detail) = server.get(&format!("/v1/groups/{conv}"), ava.auth()).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["kind"], "direct");
    assert_eq!(detail["name"], Value::Null);
    let mut members: Vec<i64> = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    members.sort();
    let mut expected = vec![ava.id, mike.id];
    expected.sort();
    assert_eq!(members, expected, "{detail}");
    let zeds = server.conversations(&zed).await;
    assert!(zeds.iter().all(|c| c["id"] != conv), "{zeds:?}");
    server.send_direct(&mike, ava.id, "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_uses_from_both_sides_make_one_conversation() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;

    // POST /v1/direct from both sides at once: one 201, the rest 200, one id.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let api = server.api.clone();
        let (me, peer) = if i % 2 == 0 {
            (ava.clone(), mike.id)
        } else {
            (mike.clone(), ava.id)
        };
        tasks.push(tokio::spawn(async move { api.direct(&me, peer).await }));
    }
    let mut created = 0;
    let mut conv_ids = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 200 || status == 201, "{status} {body}");
        if status == 201 {
            created += 1;
        }
        conv_ids.push(body["id"].as_i64().unwrap());
    }
    assert_eq!(created, 1, "exactly one call creates");
    conv_ids.sort();
    conv_ids.dedup();
    assert_eq!(conv_ids.len(), 1, "one conversation: {conv_ids:?}");

    // First messages from both sides at once: all in one conversation.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let api = server.api.clone();
        let (me, peer) = if i % 2 == 0 {
            (ava.clone(), zed.id)
        } else {
            (zed.clone(), ava.id)
        };
        tasks.push(tokio::spawn(async move {
            api.send_direct(&me, peer, &format!("race {i}")).await
        }));
    }
    let mut groups = Vec::new();
    let mut sent = Vec::new();
    for t in tasks {
        let m = t.await.unwrap();
        groups.push(m["group_id"].as_i64().unwrap());
        sent.push(m["id"].as_i64().unwrap());
    }
    groups.sort();
    groups.dedup();
    assert_eq!(
        groups.len(),
        1,
        "messages split across conversations: {groups:?}"
    );
    let (history, _) = server.direct_history(&zed, ava.id, "").await;
    sent.sort();
    assert_eq!(ids(&history), sent);
    let directs: Vec<Value> = server
        .conversations(&ava)
        .await
        .into_iter()
        .filter(|c| c["kind"] == "direct")
        .collect();
    assert_eq!(
        directs.len(),
        2,
        "Ava has one with Mike and one with Zed: {directs:?}"
    );
}
