use crate::helpers::*;
use serde_json::{json, Value};

use super::*;

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
