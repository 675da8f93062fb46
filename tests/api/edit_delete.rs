//! Editing and deleting messages: who may, what history keeps, and what sockets are told.

use crate::helpers::*;
use serde_json::{json, Value};

/// Ava owns a group where Bea is admin and Mike and Dora are plain members; Zed is outside.
struct Cast {
    ava: Session,
    bea: Session,
    mike: Session,
    dora: Session,
    zed: Session,
    group: i64,
}

async fn cast(server: &TestServer) -> Cast {
    let ava = server.ava().await;
    let mike = server.mike().await;
    let bea = server.new_user("bea").await;
    let dora = server.new_user("dora").await;
    let zed = server.new_user("zed").await;
    let group = server
        .create_group(&ava, "Editors", &[mike.id, dora.id])
        .await;
    server.add_member(&ava, group, bea.id, Some("admin")).await;
    Cast {
        ava,
        bea,
        mike,
        dora,
        zed,
        group,
    }
}

fn id(m: &Value) -> i64 {
    m["id"].as_i64().expect("message id")
}

async fn stored(server: &TestServer, by: &Session, group: i64, message: i64) -> Value {
    let history = server.full_history(by, group).await;
    history
        .into_iter()
        .find(|m| m["id"] == message)
        .unwrap_or_else(|| panic!("message {message} is not in the history of {group}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_edits_and_members_sockets_are_told() {
    let server = TestServer::start().await;
    let Cast {
        ava, mike, group, ..
    } = cast(&server).await;
    let mut avas = server.ws_ready(&ava).await;
    let mut mikes = server.ws_ready(&mike).await;
    let original = server.send(&mike, group, "teh quick fox").await;
    for ws in [&mut avas, &mut mikes] {
        assert_eq!(ws.expect_type("group_message").await["id"], original["id"]);
    }
    assert_eq!(original["edited_at"], Value::Null);

    let (status, edited) = server.edit(&mike, id(&original), "  the quick fox  ").await;
    assert_eq!(status, 200, "{edited}");
    assert_message_shape(&edited);
    assert_eq!(edited["id"], original["id"]);
    assert_eq!(edited["group_id"], group);
    assert_eq!(edited["sender_id"], mike.id);
    assert_eq!(edited["content"], "the quick fox", "stored trimmed");
    assert_eq!(edited["timestamp"], original["timestamp"], "send time kept");
    assert_eq!(edited["deleted"], false);
    assert_timestamp(&edited["edited_at"]);
    assert!(
        edited["edited_at"].as_str() >= original["timestamp"].as_str(),
        "{edited}"
    );

    for ws in [&mut avas, &mut mikes] {
        let frame = ws.expect_type("message_edited").await;
        assert_eq!(frame["id"], original["id"], "{frame}");
        assert_eq!(frame["group_id"], group, "{frame}");
        assert_eq!(frame["content"], "the quick fox", "{frame}");
        assert_eq!(frame["edited_at"], edited["edited_at"], "{frame}");
    }

    // History shows the new content.
    assert_eq!(stored(&server, &ava, group, id(&original)).await, edited);

    // Editing again moves edited_at (never backwards) and tells the sockets again.
    let (status, again) = server
        .edit(&mike, id(&original), "the quick brown fox")
        .await;
    assert_eq!(status, 200, "{again}");
    assert!(again["edited_at"].as_str() >= edited["edited_at"].as_str());
    let frame = avas.expect_type("message_edited").await;
    assert_eq!(frame["content"], "the quick brown fox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sender_may_edit() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        bea,
        mike,
        dora,
        zed,
        group,
    } = cast(&server).await;
    let m = server.send(&mike, group, "mine to change").await;

    // Not even the owner or an admin.
    for who in [&ava, &bea, &dora] {
        assert_error(
            &server.edit(who, id(&m), "rewritten").await,
            403,
            "forbidden",
        );
    }
    // Outside the conversation.
    assert_error(
        &server.edit(&zed, id(&m), "rewritten").await,
        403,
        "forbidden",
    );
    // No such message.
    assert_error(
        &server.edit(&mike, id(&m) + 1000, "rewritten").await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .patch("/v1/messages/abc", mike.auth(), &json!({"content": "x"}))
            .await,
        404,
        "not_found",
    );
    // Bad content.
    for bad in ["", "    ", &"x".repeat(4001)] {
        assert_error(
            &server.edit(&mike, id(&m), bad).await,
            400,
            "invalid_content",
        );
    }
    for body in [
        json!({}),
        json!({"content": 5}),
        json!({"content": "ok", "extra": 1}),
    ] {
        assert_error(
            &server
                .patch(&format!("/v1/messages/{}", id(&m)), mike.auth(), &body)
                .await,
            400,
            "invalid_json",
        );
    }
    assert_error(
        &server
            .patch(
                &format!("/v1/messages/{}", id(&m)),
                None,
                &json!({"content": "x"}),
            )
            .await,
        401,
        "unauthorized",
    );

    // Nothing changed.
    let kept = stored(&server, &ava, group, id(&m)).await;
    assert_eq!(kept, m, "a refused edit changed the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_deletes_and_history_keeps_a_tombstone() {
    let server = TestServer::start().await;
    let Cast {
        ava, mike, group, ..
    } = cast(&server).await;
    let mut avas = server.ws_ready(&ava).await;
    let before = server.send(&ava, group, "before").await;
    let doomed = server.send(&mike, group, "regrettable").await;
    let after = server.send(&ava, group, "after").await;
    for m in [&before, &doomed, &after] {
        assert_eq!(avas.expect_type("group_message").await["id"], m["id"]);
    }

    let (status, body) = server.delete_message(&mike, id(&doomed)).await;
    assert_eq!((status, body), (204, Value::Null));
    let frame = avas.expect_type("message_deleted").await;
    assert_eq!(frame["id"], doomed["id"], "{frame}");
    assert_eq!(frame["group_id"], group, "{frame}");

    let history = server.full_history(&mike, group).await;
    assert_eq!(ids(&history), vec![id(&before), id(&doomed), id(&after)]);
    let tomb = &history[1];
    assert_message_shape(tomb);
    assert_eq!(tomb["deleted"], true, "{tomb}");
    assert_eq!(tomb["content"], "", "{tomb}");
    assert_eq!(tomb["sender_id"], mike.id, "{tomb}");
    assert_eq!(tomb["timestamp"], doomed["timestamp"], "{tomb}");
    assert_eq!(history[0], before);
    assert_eq!(history[2], after);

    // Deleting again is 204 and tells nobody anything: Ava's next frame is the next message.
    let (status, _) = server.delete_message(&mike, id(&doomed)).await;
    assert_eq!(status, 204);
    let (status, _) = server.delete_message(&ava, id(&doomed)).await;
    assert_eq!(status, 204, "the owner repeating the delete");
    let next = server.send(&ava, group, "next").await;
    let frame = avas.next_json().await;
    assert_eq!(
        (frame["type"].clone(), frame["id"].clone()),
        (json!("group_message"), next["id"].clone()),
        "a repeated delete was announced again: {frame}"
    );

    // A deleted message cannot be edited.
    assert_error(
        &server.edit(&mike, id(&doomed), "undo").await,
        409,
        "conflict",
    );
    let tomb_again = stored(&server, &ava, group, id(&doomed)).await;
    assert_eq!(tomb_again["content"], "");
    assert_eq!(tomb_again["deleted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_and_admin_may_delete_others_messages_plain_members_may_not() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        bea,
        mike,
        dora,
        zed,
        group,
    } = cast(&server).await;
    let mut doras = server.ws_ready(&dora).await;
    let by_owner = server.send(&mike, group, "removed by the owner").await;
    let by_admin = server.send(&mike, group, "removed by the admin").await;
    let survivor = server
        .send(&mike, group, "a plain member cannot remove me")
        .await;
    let owners = server.send(&ava, group, "the owner's own").await;
    for m in [&by_owner, &by_admin, &survivor, &owners] {
        assert_eq!(doras.expect_type("group_message").await["id"], m["id"]);
    }

    // A plain member, an outsider: 403, nothing announced.
    assert_error(
        &server.delete_message(&dora, id(&survivor)).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.delete_message(&mike, id(&owners)).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.delete_message(&zed, id(&survivor)).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.delete_message(&mike, id(&owners) + 1000).await,
        404,
        "not_found",
    );
    assert_error(
        &server.delete("/v1/messages/abc", mike.auth()).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .delete(&format!("/v1/messages/{}", id(&survivor)), None)
            .await,
        401,
        "unauthorized",
    );

    // The owner and the admin may.
    let (status, _) = server.delete_message(&ava, id(&by_owner)).await;
    assert_eq!(status, 204);
    let (status, _) = server.delete_message(&bea, id(&by_admin)).await;
    assert_eq!(status, 204);

    // Dora's socket saw exactly those two deletions, in order, and nothing for the refused ones.
    for m in [&by_owner, &by_admin] {
        let frame = doras.expect_type("message_deleted").await;
        assert_eq!(
            (frame["id"].clone(), frame["group_id"].clone()),
            (m["id"].clone(), json!(group))
        );
    }
    let marker = server.send(&ava, group, "marker").await;
    assert_eq!(doras.expect_type("group_message").await["id"], marker["id"]);

    let history = server.full_history(&dora, group).await;
    let deleted: Vec<i64> = history
        .iter()
        .filter(|m| m["deleted"] == true)
        .map(id)
        .collect();
    assert_eq!(deleted, vec![id(&by_owner), id(&by_admin)]);
    let kept = history.iter().find(|m| m["id"] == survivor["id"]).unwrap();
    assert_eq!(kept, &survivor);

    // Being admin of one group gives no rights in another.
    let other = server.create_group(&dora, "Dora's", &[bea.id]).await;
    let doras_msg = server.send(&dora, other, "Dora's house").await;
    let (status, _) = server.delete_message(&bea, id(&doras_msg)).await;
    assert_eq!(status, 403, "Bea is only a member of Dora's group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_direct_chat_only_the_sender_deletes() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let m = server.send_direct(&ava, mike.id, "for Mike's eyes").await;
    let conv = m["group_id"].as_i64().unwrap();
    let mut mikes = server.ws_ready(&mike).await;

    assert_error(
        &server.delete_message(&mike, id(&m)).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.edit(&mike, id(&m), "changed").await,
        403,
        "forbidden",
    );
    assert_error(&server.delete_message(&zed, id(&m)).await, 403, "forbidden");

    let (status, edited) = server.edit(&ava, id(&m), "for Mike only").await;
    assert_eq!(status, 200, "{edited}");
    let frame = mikes.expect_type("message_edited").await;
    assert_eq!(
        (frame["id"].clone(), frame["group_id"].clone()),
        (m["id"].clone(), json!(conv))
    );
    assert_eq!(frame["content"], "for Mike only");

    let (status, _) = server.delete_message(&ava, id(&m)).await;
    assert_eq!(status, 204);
    let frame = mikes.expect_type("message_deleted").await;
    assert_eq!(
        (frame["id"].clone(), frame["group_id"].clone()),
        (m["id"].clone(), json!(conv))
    );
    let (history, _) = server.direct_history(&mike, ava.id, "").await;
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0]["deleted"].clone(), history[0]["content"].clone()),
        (json!(true), json!(""))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_sockets_hear_nothing_of_edits_and_deletes() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        mike,
        zed,
        group,
        ..
    } = cast(&server).await;
    let zeds_group = server.create_group(&zed, "Zed's", &[]).await;
    let mut zeds = server.ws_ready(&zed).await;
    let mut mikes = server.ws_ready(&mike).await;

    let m = server.send(&ava, group, "edit me").await;
    let (status, _) = server.edit(&ava, id(&m), "edited").await;
    assert_eq!(status, 200);
    let (status, _) = server.delete_message(&ava, id(&m)).await;
    assert_eq!(status, 204);
    // Mike (a member) got all three, in order.
    assert_eq!(mikes.expect_type("group_message").await["id"], m["id"]);
    assert_eq!(mikes.expect_type("message_edited").await["id"], m["id"]);
    assert_eq!(mikes.expect_type("message_deleted").await["id"], m["id"]);

    // Zed's next frame is his own message.
    let own = server.send(&zed, zeds_group, "mine").await;
    let frame = zeds.next_json().await;
    assert_eq!(
        (frame["type"].clone(), frame["id"].clone()),
        (json!("group_message"), own["id"].clone()),
        "Zed heard of another group's message: {frame}"
    );
}

/// History, the conversation list and a `since` replay all show a message as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_shows_the_current_state() {
    let server = TestServer::start().await;
    let Cast {
        ava, mike, group, ..
    } = cast(&server).await;
    let kept = server.send(&ava, group, "first draft").await;
    let gone = server.send(&mike, group, "oops").await;
    let (status, edited) = server.edit(&ava, id(&kept), "final draft").await;
    assert_eq!(status, 200, "{edited}");
    let (status, _) = server.delete_message(&mike, id(&gone)).await;
    assert_eq!(status, 204);

    // A socket resuming from before both messages gets them as they are now.
    let mut ws = server.ws_connect(&mike.token, Some(id(&kept) - 1)).await;
    let first = ws.expect_type("group_message").await;
    assert_eq!(first["id"], kept["id"]);
    assert_eq!(first["content"], "final draft", "{first}");
    assert_eq!(first["edited_at"], edited["edited_at"], "{first}");
    let second = ws.expect_type("group_message").await;
    assert_eq!(second["id"], gone["id"]);
    assert_eq!(
        (second["deleted"].clone(), second["content"].clone()),
        (json!(true), json!("")),
        "the replay keeps the tombstone: {second}"
    );
    ws.expect_type("ready").await;

    // The list's last_message: the edit shows.
    let kept_again = server.send(&ava, group, "another").await;
    let (status, _) = server.edit(&ava, id(&kept_again), "another, edited").await;
    assert_eq!(status, 200);
    let entry = server.conversation(&mike, group).await;
    assert_eq!(entry["last_message"]["id"], kept_again["id"], "{entry}");
    assert_eq!(
        entry["last_message"]["content"], "another, edited",
        "{entry}"
    );
    assert_timestamp(&entry["last_message"]["edited_at"]);
}
