//! What one user may take: groups owned, conversations belonged to, sign-ups per address,
//! searches at a time and how long each may run; and whom they can reach once blocked.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_owns_a_bounded_number_of_groups() {
    let server = TestServer::start_with(|cfg| cfg.max_groups_per_user = 2).await;
    let ava = server.ava().await;
    // Ava owns General already.
    server.create_group(&ava, "One more", &[]).await;
    let got = server
        .post_json("/v1/groups", ava.auth(), &json!({"name": "Too many"}))
        .await;
    assert_error(&got, 409, "limit_reached");
    assert_eq!(
        server.conversations(&ava).await.len(),
        2,
        "nothing was created"
    );
}

/// Nobody can put a victim into thousands of groups: past the cap, adding them is refused, and
/// being filled up by others never stops the victim making their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_belongs_to_a_bounded_number_of_conversations() {
    let server = TestServer::start_with(|cfg| cfg.max_memberships = 3).await;
    let victim = server.new_user("victim").await;
    for n in 0..3 {
        let spammer = server.new_user(&format!("spammer{n}")).await;
        server
            .create_group(&spammer, &format!("spam {n}"), &[victim.id])
            .await;
    }
    let spammer = server.session("spammer0", PASSWORD).await;
    let group = server.create_group(&spammer, "spam 3", &[]).await;
    let got = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            spammer.auth(),
            &json!({"user_id": victim.id}),
        )
        .await;
    assert_error(&got, 409, "limit_reached");
    let got = server
        .post_json(
            "/v1/groups",
            spammer.auth(),
            &json!({"name": "spam 4", "member_ids": [victim.id]}),
        )
        .await;
    assert_error(&got, 409, "limit_reached");
    assert_eq!(server.conversations(&victim).await.len(), 3);
    // Filled up by others, the victim can still make a group and write to someone: their own
    // conversations may go past the cap by as many groups as one may own.
    server.create_group(&victim, "Mine", &[]).await;
    let friend = server.new_user("friend").await;
    let (status, body) = server.direct(&victim, friend.id).await;
    assert_eq!(status, 201, "{body}");
    // Three from others, two of their own.
    assert_eq!(server.conversations(&victim).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_list_pages_with_a_cursor() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    for n in 0..4 {
        let g = server.create_group(&ava, &format!("Room {n}"), &[]).await;
        server.send(&ava, g, &format!("hello {n}")).await;
    }
    let all: Vec<i64> = server
        .conversations(&ava)
        .await
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(all.len(), 5);
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let resp = server
            .http
            .get(server.url(&format!("/v1/groups?{query}")))
            .bearer_auth(&ava.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let more = resp.headers()["x-has-more"].to_str().unwrap().to_string();
        let next = resp
            .headers()
            .get("x-next-before")
            .map(|v| v.to_str().unwrap().to_string());
        let page: serde_json::Value = resp.json().await.unwrap();
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|g| g["id"].as_i64().unwrap()),
        );
        match next {
            Some(cursor) => {
                assert_eq!(more, "true");
                query = format!("limit=2&before={}", enc(&cursor));
            }
            None => {
                assert_eq!(more, "false");
                break;
            }
        }
    }
    assert_eq!(
        seen, all,
        "the pages together are the whole list, in order, once"
    );
    assert_error(
        &server.get("/v1/groups?limit=1001", ava.auth()).await,
        400,
        "invalid_limit",
    );
    assert_error(
        &server.get("/v1/groups?before=nonsense", ava.auth()).await,
        400,
        "invalid_query",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_limited_per_address() {
    let server = TestServer::start_with(|cfg| cfg.register_rate = 2).await;
    let from = server.via("127.0.0.2");
    from.register("first", "first@example.test", PASSWORD).await;
    // A refused sign-up (the name is taken) does not use one up.
    let got = from
        .post_json(
            "/v1/users/register",
            None,
            &json!({"username": "first", "email": "x@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 409, "conflict");
    from.register("second", "second@example.test", PASSWORD)
        .await;
    let resp = from
        .http
        .post(from.url("/v1/users/register"))
        .json(&json!({"username": "third", "email": "third@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    server
        .via("127.0.0.3")
        .register("third", "third@example.test", PASSWORD)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_users_cannot_reach_whoever_blocked_them() {
    let server = TestServer::start().await;
    let teacher = server.ava().await;
    let pest = server.new_user("pest").await;
    let existing = server.direct_id(&pest, teacher.id).await;
    let old = server.send_direct(&pest, teacher.id, "hello").await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = server
        .put(
            &format!("/v1/me/blocks/{}", pest.id),
            teacher.auth(),
            &json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, list) = server.get("/v1/me/blocks", teacher.auth()).await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1), "{list}");
    assert_eq!(list[0]["username"], "pest");
    assert_no_email(&list, &["pest@example.test"], "the block list");

    let group = server.create_group(&pest, "Pest's group", &[]).await;
    let got = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            pest.auth(),
            &json!({"user_id": teacher.id}),
        )
        .await;
    assert_error(&got, 403, "blocked");
    let got = server
        .post_json(
            "/v1/groups",
            pest.auth(),
            &json!({"name": "Another", "member_ids": [teacher.id]}),
        )
        .await;
    assert_error(&got, 403, "blocked");
    assert_error(&server.direct(&pest, teacher.id).await, 403, "blocked");
    let got = server
        .post_json(
            &format!("/v1/messages/direct/{}", teacher.id),
            pest.auth(),
            &json!({"content": "hi"}),
        )
        .await;
    assert_error(&got, 403, "blocked");
    let got = server
        .post_json(
            &format!("/v1/messages/group/{existing}"),
            pest.auth(),
            &json!({"content": "hi"}),
        )
        .await;
    assert_error(&got, 403, "blocked");
    // Nor rewrite what they wrote before the block.
    assert_error(
        &server.edit(&pest, old, "something nasty").await,
        403,
        "blocked",
    );
    let mut ws = server.ws_ready(&pest).await;
    ws.send_json(
        &json!({"type": "send", "group_id": existing, "content": "hi", "client_id": "b1"}),
    )
    .await;
    let frame = ws.expect_type("error").await;
    assert_eq!(
        (frame["code"].as_str(), frame["client_id"].as_str()),
        (Some("blocked"), Some("b1"))
    );

    // The one who blocked can still write, and lifting the block lets the other back.
    server.send_direct(&teacher, pest.id, "please stop").await;
    let (status, _) = server
        .delete(&format!("/v1/me/blocks/{}", pest.id), teacher.auth())
        .await;
    assert_eq!(status, 204);
    server.send_direct(&pest, teacher.id, "sorry").await;
    assert_error(
        &server
            .put(
                &format!("/v1/me/blocks/{}", teacher.id),
                teacher.auth(),
                &json!({}),
            )
            .await,
        400,
        "invalid_user_id",
    );
    assert_error(
        &server
            .put("/v1/me/blocks/987654", teacher.auth(), &json!({}))
            .await,
        404,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_have_a_length_limit_and_a_time_budget() {
    let server = TestServer::start_with(|cfg| cfg.search_timeout = Duration::from_millis(1)).await;
    let ava = server.ava().await;
    // Many messages, written straight into the file: a search over them outlasts 1 ms.
    server.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO messages (conversation_id, sender_id, content)
         SELECT 1, 1, 'alpha beta gamma delta epsilon ' || i FROM n",
    );
    // On SQLite they wait for the search index, as new messages do (above its mark), and the
    // server's next write batch (any write) indexes them. PostgreSQL's index is kept by the
    // insert itself.
    server.send(&ava, 1, "alpha").await;
    let got = server.search(&ava, "q=alpha%20e").await;
    assert_error(&got, 503, "unavailable");
    // A user in no conversation costs nothing: the same search answers at once, empty.
    let loner = server.new_user("loner").await;
    let (status, body) = server.search(&loner, "q=alpha%20e").await;
    assert_eq!(
        (status, body["messages"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );
    let long = "w".repeat(257);
    assert_error(
        &server.search(&ava, &format!("q={long}")).await,
        400,
        "invalid_query",
    );
    // The server is fine afterwards.
    server.send(&ava, GENERAL, "still here").await;
}
