use crate::helpers::*;
use serde_json::{json, Value};

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
