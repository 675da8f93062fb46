//! Full-text search over the caller's own conversations.

use crate::helpers::*;
use serde_json::{json, Value};

fn id(m: &Value) -> i64 {
    m["id"].as_i64().expect("message id")
}

/// Ava and Mike share "Trip" and General; Zed and Yan share a group of their own.
struct World {
    ava: Session,
    mike: Session,
    zed: Session,
    trip: i64,
    strangers: i64,
    hello_paris: Value,
    cafe: Value,
    helene: Value,
    hello_general: Value,
    strangers_msg: Value,
}

async fn world(server: &TestServer) -> World {
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let yan = server.new_user("yan").await;
    let trip = server.create_group(&ava, "Trip", &[mike.id]).await;
    let strangers = server.create_group(&zed, "Strangers", &[yan.id]).await;
    let hello_paris = server.send(&ava, trip, "Hello World from Paris").await;
    let cafe = server
        .send(&mike, trip, "Café au lait, s'il vous plaît")
        .await;
    let helene = server.send(&ava, trip, "Hélène arrives tomorrow").await;
    let hello_general = server.send(&mike, GENERAL, "hello general").await;
    let strangers_msg = server
        .send(&zed, strangers, "hello Paris secret cafe Hélène tomorrow")
        .await;
    World {
        ava,
        mike,
        zed,
        trip,
        strangers,
        hello_paris,
        cafe,
        helene,
        hello_general,
        strangers_msg,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_words_and_prefixes_case_and_accent_insensitively_newest_first() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let ava = &w.ava;

    let hello = vec![id(&w.hello_general), id(&w.hello_paris)];
    assert_eq!(server.search_ids(ava, "hello").await, hello, "newest first");
    assert_eq!(server.search_ids(ava, "HELLO").await, hello);
    assert_eq!(server.search_ids(ava, "hElLo").await, hello);
    // The last word matches as a prefix, accents aside.
    assert_eq!(
        server.search_ids(ava, "hel").await,
        vec![id(&w.hello_general), id(&w.helene), id(&w.hello_paris)]
    );
    assert_eq!(server.search_ids(ava, "helene").await, vec![id(&w.helene)]);
    assert_eq!(server.search_ids(ava, "HÉLÈNE").await, vec![id(&w.helene)]);
    assert_eq!(server.search_ids(ava, "cafe").await, vec![id(&w.cafe)]);
    assert_eq!(server.search_ids(ava, "CAFÉ").await, vec![id(&w.cafe)]);
    assert_eq!(server.search_ids(ava, "plait").await, vec![id(&w.cafe)]);
    // Every word must appear, in any order.
    assert_eq!(
        server.search_ids(ava, "hello paris").await,
        vec![id(&w.hello_paris)]
    );
    assert_eq!(
        server.search_ids(ava, "Paris  hello").await,
        vec![id(&w.hello_paris)]
    );
    assert_eq!(
        server.search_ids(ava, "hello tomorrow").await,
        Vec::<i64>::new()
    );
    // Only the last word is a prefix.
    assert_eq!(server.search_ids(ava, "hel paris").await, Vec::<i64>::new());
    assert_eq!(
        server.search_ids(ava, "nothing-like-it").await,
        Vec::<i64>::new()
    );

    // Results are the messages as history has them.
    let (status, body) = server.search(ava, "q=arrives").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"messages": [w.helene.clone()]}));

    // Mike sees the same in the shared conversations.
    assert_eq!(server.search_ids(&w.mike, "hello").await, hello);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_another_conversations_messages() {
    let server = TestServer::start().await;
    let w = world(&server).await;

    // The strangers' message has every word, yet Ava never sees it.
    for q in ["secret", "paris", "hello paris", "cafe", "tomorrow", "hel"] {
        let found = server.search_ids(&w.ava, q).await;
        assert!(
            !found.contains(&id(&w.strangers_msg)),
            "{q:?} found a stranger's message: {found:?}"
        );
    }
    assert_eq!(server.search_ids(&w.ava, "secret").await, Vec::<i64>::new());
    // Zed sees only his.
    assert_eq!(
        server.search_ids(&w.zed, "hello").await,
        vec![id(&w.strangers_msg)]
    );

    // Direct conversations are searched, for their two members only.
    let dm = server
        .send_direct(&w.ava, w.mike.id, "the secret handshake")
        .await;
    assert_eq!(server.search_ids(&w.mike, "handshake").await, vec![id(&dm)]);
    assert_eq!(server.search_ids(&w.ava, "handshake").await, vec![id(&dm)]);
    assert_eq!(
        server.search_ids(&w.zed, "handshake").await,
        Vec::<i64>::new()
    );

    // A conversation the caller left is no longer searched.
    let leaving = server.create_group(&w.mike, "Leaving", &[w.ava.id]).await;
    let zebra = server.send(&w.mike, leaving, "zebra crossing").await;
    assert_eq!(server.search_ids(&w.ava, "zebra").await, vec![id(&zebra)]);
    let (status, body) = server
        .delete(
            &format!("/v1/groups/{leaving}/members/{}", w.ava.id),
            w.ava.auth(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(server.search_ids(&w.ava, "zebra").await, Vec::<i64>::new());
    assert_error(
        &server
            .search(&w.ava, &format!("q=zebra&group_id={leaving}"))
            .await,
        403,
        "forbidden",
    );
    assert_eq!(server.search_ids(&w.mike, "zebra").await, vec![id(&zebra)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_id_restricts_to_one_conversation() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let ava = &w.ava;

    let in_trip = server
        .search(ava, &format!("q=hello&group_id={}", w.trip))
        .await;
    assert_eq!(in_trip.0, 200, "{}", in_trip.1);
    assert_eq!(
        ids(in_trip.1["messages"].as_array().unwrap()),
        vec![id(&w.hello_paris)]
    );
    let in_general = server
        .search(ava, &format!("q=hello&group_id={GENERAL}"))
        .await;
    assert_eq!(in_general.0, 200, "{}", in_general.1);
    assert_eq!(
        ids(in_general.1["messages"].as_array().unwrap()),
        vec![id(&w.hello_general)]
    );

    assert_error(
        &server
            .search(ava, &format!("q=hello&group_id={}", w.strangers))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &server
            .search(ava, &format!("q=hello&group_id={}", w.strangers + 10_000))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.search(ava, "q=hello&group_id=abc").await,
        400,
        "invalid_query",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_and_deleted_content_is_what_search_sees() {
    let server = TestServer::start().await;
    let w = world(&server).await;
    let ava = &w.ava;

    let (status, edited) = server.edit(ava, id(&w.hello_paris), "Goodbye Lyon").await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(server.search_ids(ava, "paris").await, Vec::<i64>::new());
    assert_eq!(
        server.search_ids(ava, "hello").await,
        vec![id(&w.hello_general)]
    );
    let (status, found) = server.search(ava, "q=lyon").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["messages"],
        json!([edited]),
        "the edited message as stored"
    );

    let (status, _) = server.delete_message(&w.mike, id(&w.cafe)).await;
    assert_eq!(status, 204);
    assert_eq!(server.search_ids(ava, "cafe").await, Vec::<i64>::new());
    assert_eq!(server.search_ids(&w.mike, "lait").await, Vec::<i64>::new());

    // Deleting an edited message removes its new words too.
    let (status, _) = server.delete_message(ava, id(&w.hello_paris)).await;
    assert_eq!(status, 204);
    assert_eq!(server.search_ids(ava, "lyon").await, Vec::<i64>::new());
    assert_eq!(server.search_ids(ava, "goodbye").await, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_syntax_in_q_is_plain_text() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let salt = server.send(&ava, GENERAL, "salt and pepper").await;
    let forget = server
        .send(&mike, GENERAL, "do not forget the pepper")
        .await;
    let known = server
        .send(&ava, GENERAL, "a well-known fact: \"quoted\" (really)")
        .await;

    // Operators are words.
    assert_eq!(
        server.search_ids(&ava, "salt AND pepper").await,
        vec![id(&salt)]
    );
    assert_eq!(
        server.search_ids(&ava, "salt OR vinegar").await,
        Vec::<i64>::new(),
        "OR is not an operator"
    );
    assert_eq!(
        server.search_ids(&ava, "NOT pepper").await,
        vec![id(&forget)],
        "NOT is a word"
    );
    assert_eq!(server.search_ids(&ava, "AND").await, vec![id(&salt)]);
    // Punctuation does not change the words.
    assert_eq!(
        server.search_ids(&ava, "well-known").await,
        vec![id(&known)]
    );
    assert_eq!(
        server.search_ids(&ava, "\"quoted\"").await,
        vec![id(&known)]
    );
    assert_eq!(server.search_ids(&ava, "(really)").await, vec![id(&known)]);
    assert_eq!(server.search_ids(&ava, "fact:").await, vec![id(&known)]);
    assert_eq!(
        server.search_ids(&ava, "pep*").await,
        vec![id(&forget), id(&salt)]
    );

    for q in [
        "\"",
        "\"unbalanced",
        "*",
        "**",
        "(",
        ")",
        ")(",
        "-",
        "-pepper",
        ":",
        "content:pepper",
        "messages_fts:pepper",
        "NEAR(salt pepper)",
        "NEAR",
        "salt OR",
        "OR",
        "NOT",
        "^salt",
        "+salt",
        "{content}: salt",
        "'",
        "';--",
        "%",
        "\\",
        "salt\"pepper",
        "💥",
    ] {
        let (status, body) = server.search(&ava, &format!("q={}", enc(q))).await;
        assert_eq!(status, 200, "q={q:?} answered {status} {body}");
        let messages = body["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("q={q:?}: {body}"));
        for m in messages {
            assert_message_shape(m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_query_and_bad_limits_are_400() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(id(&server
            .send(&ava, GENERAL, &format!("apple number {i}"))
            .await));
    }

    for query in ["", "q=", "q=%20%20", "q=%09", "limit=5"] {
        assert_error(&server.search(&ava, query).await, 400, "invalid_query");
    }
    for limit in ["0", "201", "-1"] {
        assert_error(
            &server.search(&ava, &format!("q=apple&limit={limit}")).await,
            400,
            "invalid_limit",
        );
    }
    for limit in ["abc", "1.5"] {
        let got = server.search(&ava, &format!("q=apple&limit={limit}")).await;
        let code = got.1["code"].as_str().unwrap_or_default().to_string();
        assert!(
            code == "invalid_limit" || code == "invalid_query",
            "limit={limit}: {got:?}"
        );
        assert_error(&got, 400, &code);
    }
    assert_error(
        &server.get("/v1/messages/search?q=apple", None).await,
        401,
        "unauthorized",
    );

    let (status, body) = server.search(&ava, "q=apple&limit=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(body["messages"].as_array().unwrap()),
        vec![sent[2], sent[1]],
        "the newest two"
    );
    let (status, body) = server.search(&ava, "q=apple&limit=200").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(body["messages"].as_array().unwrap()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_is_50() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    for i in 0..55 {
        server.send(&ava, GENERAL, &format!("banana {i}")).await;
    }
    let found = server.search_ids(&ava, "banana").await;
    assert_eq!(found.len(), 50, "{found:?}");
    let mut sorted = found.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(found, sorted, "newest first");
}
