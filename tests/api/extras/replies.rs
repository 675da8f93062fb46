//! Replies quote the message they answer, which must be in the same conversation.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_quotes_its_original_and_shows_when_it_is_deleted() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let long = format!("Question: {}", "why ".repeat(40));
    let original = server.send(&mike, 1, &long).await;
    let mut mike_ws = server.ws_ready(&mike).await;
    let body = json!({"content": "Because.", "reply_to": original["id"]});
    let (status, reply) = server.send_body(&ava, 1, &body).await;
    assert_eq!(status, 201, "{reply}");
    let quote = &reply["reply_to"];
    assert_eq!(quote["id"], original["id"]);
    assert_eq!(quote["sender_id"], mike.id);
    assert_eq!(quote["sender_username"], mike.username.as_str());
    assert_eq!(quote["deleted"], false);
    let excerpt = quote["excerpt"].as_str().unwrap();
    assert!(
        excerpt.starts_with("Question: why") && excerpt.ends_with('…'),
        "{excerpt}"
    );
    assert_eq!(excerpt.chars().count(), 101);
    let live = mike_ws.expect_type("group_message").await;
    assert_eq!(live["reply_to"], *quote);

    server
        .delete_message(&mike, original["id"].as_i64().unwrap())
        .await;
    let (history, _) = server.history(&ava, 1, "").await;
    let stored = history.iter().find(|m| m["id"] == reply["id"]).unwrap();
    assert_eq!(stored["reply_to"]["deleted"], true);
    assert_eq!(stored["reply_to"]["excerpt"], "");
    assert_eq!(
        stored["reply_to"]["id"], original["id"],
        "still says what it answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_into_another_conversation_is_refused() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let elsewhere = server.create_group(&ava, "Elsewhere", &[mike.id]).await;
    let there = server.send(&ava, elsewhere, "in the other group").await;
    let before = server.history(&ava, 1, "").await.0.len();
    for target in [there["id"].clone(), json!(987_654_321)] {
        let body = json!({"content": "answer", "reply_to": target});
        assert_error(
            &server.send_body(&ava, 1, &body).await,
            400,
            "invalid_reply",
        );
    }
    let mut ws = server.ws_ready(&ava).await;
    ws.send_json(&json!({"type": "send", "group_id": 1, "content": "x", "reply_to": there["id"], "client_id": "r1"}))
        .await;
    let err = ws.next_of_type("error").await;
    assert_eq!(err["code"], "invalid_reply");
    assert_eq!(
        server.history(&ava, 1, "").await.0.len(),
        before,
        "nothing was stored"
    );
    // Over the socket a valid reply is acknowledged and quotes its original.
    let here = server.send(&mike, 1, "here").await;
    ws.send_json(&json!({"type": "send", "group_id": 1, "content": "ok", "reply_to": here["id"], "client_id": "r2"}))
        .await;
    let message: Value = loop {
        let m = ws.next_of_type("group_message").await;
        if m["content"] == "ok" {
            break m;
        }
    };
    assert_eq!(message["reply_to"]["id"], here["id"]);
}
