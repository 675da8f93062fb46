use crate::helpers::*;
use serde_json::json;

use super::*;

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
