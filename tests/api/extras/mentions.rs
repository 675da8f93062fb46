//! Mentions: `@username` of a member, any case, recomputed on edit, counted while unread.

use serde_json::json;

use crate::helpers::*;

async fn mention_count(server: &TestServer, who: &Session, group: i64) -> i64 {
    server.conversation(who, group).await["mention_count"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentioning_a_member_puts_a_badge_on_their_list_until_they_read() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let outsider = server.new_user("outsider").await;
    assert_eq!(mention_count(&server, &mike, 1).await, 0);
    let mut mike_ws = server.ws_ready(&mike).await;
    let m = server
        .send(
            &ava,
            1,
            "@MIKE look, and @outsider and @nobody, mail me@mike.org",
        )
        .await;
    assert_eq!(
        m["mentions"],
        json!([mike.id]),
        "only members; any case; not inside a word"
    );
    let live = mike_ws.expect_type("group_message").await;
    assert_eq!(live["mentions"], json!([mike.id]));
    server.send(&ava, 1, "no mention here").await;
    server.send(&ava, 1, "@mike. again").await;
    assert_eq!(mention_count(&server, &mike, 1).await, 2);
    assert_eq!(mention_count(&server, &ava, 1).await, 0);
    let own = server.send(&mike, 1, "I am @mike").await;
    assert_eq!(own["mentions"], json!([]), "nobody mentions themself");
    assert_eq!(
        mention_count(&server, &mike, 1).await,
        2,
        "your own message is not a badge"
    );
    let _ = outsider;
    server.mark_read(&mike, 1, m["id"].as_i64().unwrap()).await;
    assert_eq!(
        mention_count(&server, &mike, 1).await,
        1,
        "read ones no longer count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_recomputes_mentions() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let m = server.send(&ava, 1, "hello @mike").await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(mention_count(&server, &mike, 1).await, 1);
    let mut mike_ws = server.ws_ready(&mike).await;
    let (status, edited) = server.edit(&ava, id, "hello everyone").await;
    assert_eq!(status, 200);
    assert_eq!(edited["mentions"], json!([]));
    let frame = mike_ws.expect_type("message_edited").await;
    assert_eq!(frame["mentions"], json!([]));
    assert_eq!(mention_count(&server, &mike, 1).await, 0);
    let (_, edited) = server.edit(&ava, id, "hello @Mike and @ava").await;
    assert_eq!(edited["mentions"], json!([mike.id]));
    assert_eq!(
        mike_ws.expect_type("message_edited").await["mentions"],
        json!([mike.id])
    );
    assert_eq!(mention_count(&server, &mike, 1).await, 1);
    server.delete_message(&ava, id).await;
    assert_eq!(
        mention_count(&server, &mike, 1).await,
        0,
        "a deleted message mentions no one"
    );
}
