//! Reactions: one emoji grapheme each, idempotent, at most 20 distinct, live to every member.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_count_who_reacted_and_reach_every_member_live() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let m = server.send(&mike, 1, "who is coming?").await;
    let id = m["id"].as_i64().unwrap();
    let mut mike_ws = server.ws_ready(&mike).await;
    let mut ava_ws = server.ws_ready(&ava).await;
    assert_eq!(server.react(&ava, id, "👍", true).await.0, 204);
    let frame = mike_ws.expect_type("message_reactions").await;
    assert_eq!(
        frame,
        json!({"type": "message_reactions", "id": id, "group_id": 1,
        "reactions": [{"emoji": "👍", "count": 1, "user_ids": [ava.id]}]})
    );
    assert_eq!(
        ava_ws.expect_type("message_reactions").await,
        frame,
        "the reactor's own sockets too"
    );
    // Again: nothing changes, nothing is sent (the next frame is the next real change).
    assert_eq!(server.react(&ava, id, "👍", true).await.0, 204);
    assert_eq!(server.react(&mike, id, "👍🏽", true).await.0, 204);
    assert_eq!(server.react(&mike, id, "👍", true).await.0, 204);
    let frame = mike_ws.expect_type("message_reactions").await;
    assert_eq!(
        frame["reactions"],
        json!([{"emoji": "👍", "count": 1, "user_ids": [ava.id]},
        {"emoji": "👍🏽", "count": 1, "user_ids": [mike.id]}])
    );
    let frame = mike_ws.expect_type("message_reactions").await;
    assert_eq!(
        frame["reactions"][0],
        json!({"emoji": "👍", "count": 2, "user_ids": [ava.id, mike.id]})
    );
    // The text-style heart is the same reaction as the emoji-style one.
    assert_eq!(server.react(&ava, id, "❤", true).await.0, 204);
    assert_eq!(
        mike_ws.expect_type("message_reactions").await["reactions"][2]["emoji"],
        "❤️"
    );
    assert_eq!(server.react(&ava, id, "❤️", false).await.0, 204);
    mike_ws.expect_type("message_reactions").await;
    assert_eq!(server.react(&ava, id, "👍", false).await.0, 204);
    assert_eq!(
        server.react(&ava, id, "👍", false).await.0,
        204,
        "idempotent"
    );
    // In the order of the reactions still there: Mike's 👍 came after his 👍🏽.
    let frame = mike_ws.expect_type("message_reactions").await;
    assert_eq!(
        frame["reactions"],
        json!([{"emoji": "👍🏽", "count": 1, "user_ids": [mike.id]},
        {"emoji": "👍", "count": 1, "user_ids": [mike.id]}])
    );
    let (history, _) = server.history(&ava, 1, "").await;
    let stored = history.iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(stored["reactions"], frame["reactions"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_emoji_the_21st_and_deleted_messages_are_refused() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let id = server.send(&mike, 1, "react to me").await["id"]
        .as_i64()
        .unwrap();
    for bad in ["a", "👍👍", ":+1:", "1", "<script>"] {
        assert_error(
            &server.react(&ava, id, bad, true).await,
            400,
            "invalid_emoji",
        );
    }
    let twenty = [
        "😀", "😃", "😄", "😁", "😆", "😅", "🤣", "😂", "🙂", "🙃", "😉", "😊", "😇", "🥰", "😍",
        "🤩", "😘", "😗", "😚", "😙",
    ];
    for e in twenty {
        assert_eq!(server.react(&ava, id, e, true).await.0, 204, "{e}");
    }
    assert_error(
        &server.react(&mike, id, "🎉", true).await,
        409,
        "limit_reached",
    );
    assert_eq!(
        server.react(&mike, id, "😀", true).await.0,
        204,
        "one already there may be added to"
    );
    let (history, _) = server.history(&ava, 1, "").await;
    let stored = history.iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(stored["reactions"].as_array().unwrap().len(), 20);
    assert_eq!(stored["reactions"][0]["count"], 2);

    server.delete_message(&mike, id).await;
    assert_error(&server.react(&ava, id, "😀", true).await, 409, "conflict");
    let (history, _) = server.history(&ava, 1, "").await;
    assert_eq!(
        history.iter().find(|x| x["id"] == id).unwrap()["reactions"],
        json!([])
    );
    let (status, _) = server.react(&ava, 987_654_321, "😀", true).await;
    assert_eq!(status, 404);
}
