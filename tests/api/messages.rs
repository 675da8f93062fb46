//! Sending messages over HTTP and reading history pages.

use std::collections::HashSet;

use crate::helpers::*;
use serde_json::{json, Value};

async fn post_message(api: &Api, by: &Session, group: i64, body: Value) -> (u16, Value) {
    api.post_json(&format!("/v1/messages/group/{group}"), by.auth(), &body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_returns_201_with_every_message_field() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    let (status, m) =
        post_message(&server, &ava, GENERAL, json!({"content": "hello, General"})).await;
    assert_eq!(status, 201, "{m}");
    assert_message_shape(&m);
    assert_eq!(m["group_id"], GENERAL);
    assert_eq!(m["sender_id"], ava.id);
    assert_eq!(m["sender_username"], "Ava");
    assert_eq!(m["content"], "hello, General");
    assert_eq!(m["edited_at"], Value::Null);
    assert_eq!(m["deleted"], false);
    assert_eq!(m["client_id"], Value::Null);

    let (status, m2) = post_message(
        &server,
        &ava,
        GENERAL,
        json!({"content": "  padded\n", "client_id": "c-1"}),
    )
    .await;
    assert_eq!(status, 201, "{m2}");
    assert_eq!(m2["content"], "padded", "content is stored trimmed");
    assert_eq!(m2["client_id"], "c-1");
    assert!(m2["id"].as_i64() > m["id"].as_i64());

    let (history, has_more) = server.history(&ava, GENERAL, "").await;
    assert!(!has_more);
    assert_eq!(
        history,
        vec![m, m2],
        "history returns the messages exactly as sent back"
    );
}

/// Seven messages in a group, interleaved with messages in another group so ids have gaps.
async fn seven_messages(server: &TestServer, ava: &Session) -> (i64, Vec<i64>) {
    let group = server.create_group(ava, "Pages", &[]).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            server.send(ava, group, &format!("page message {i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
        server.send(ava, GENERAL, &format!("noise {i}")).await;
    }
    (group, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_cursors_before_after_limit() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let (g, m) = seven_messages(&server, &ava).await;
    let page = |query: String| {
        let server = &server;
        let ava = &ava;
        async move {
            let (messages, has_more) = server.history(ava, g, &query).await;
            messages
                .iter()
                .for_each(|msg| assert_eq!(msg["group_id"], g));
            (ids(&messages), has_more)
        }
    };

    // No cursor: the newest `limit`, has_more = older exist.
    assert_eq!(page(String::new()).await, (m.clone(), false));
    assert_eq!(page("limit=3".into()).await, (m[4..7].to_vec(), true));
    assert_eq!(page("limit=6".into()).await, (m[1..7].to_vec(), true));
    assert_eq!(page("limit=7".into()).await, (m.clone(), false));
    assert_eq!(page("limit=200".into()).await, (m.clone(), false));

    // before=X: the newest `limit` with id < X.
    assert_eq!(
        page(format!("before={}&limit=3", m[4])).await,
        (m[1..4].to_vec(), true)
    );
    assert_eq!(
        page(format!("before={}&limit=3", m[3])).await,
        (m[0..3].to_vec(), false)
    );
    assert_eq!(
        page(format!("before={}&limit=3", m[1])).await,
        (m[0..1].to_vec(), false)
    );
    assert_eq!(
        page(format!("before={}&limit=3", m[0])).await,
        (vec![], false)
    );
    // A cursor that is not an id of this group (a gap) works the same.
    assert_eq!(
        page(format!("before={}&limit=2", m[5] - 1)).await,
        (m[3..5].to_vec(), true)
    );

    // after=X: the oldest `limit` with id > X.
    assert_eq!(
        page(format!("after={}&limit=3", m[2])).await,
        (m[3..6].to_vec(), true)
    );
    assert_eq!(
        page(format!("after={}&limit=3", m[3])).await,
        (m[4..7].to_vec(), false)
    );
    assert_eq!(
        page(format!("after={}&limit=3", m[5])).await,
        (m[6..7].to_vec(), false)
    );
    assert_eq!(page(format!("after={}", m[6])).await, (vec![], false));
    assert_eq!(
        page("after=0&limit=2".into()).await,
        (m[0..2].to_vec(), true)
    );

    // Both: the oldest `limit` strictly between.
    assert_eq!(
        page(format!("after={}&before={}&limit=2", m[1], m[6]))
            .await
            .0,
        m[2..4].to_vec()
    );
    assert_eq!(
        page(format!("after={}&before={}", m[1], m[4])).await.0,
        m[2..4].to_vec()
    );

    // Walking back page by page visits every message once.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let (ids, has_more) = page(query).await;
        let mut ids = ids;
        ids.extend(seen);
        seen = ids;
        if !has_more {
            break;
        }
        query = format!("limit=2&before={}", seen[0]);
    }
    assert_eq!(seen, m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_history_queries_are_400() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    server.send(&ava, GENERAL, "one").await;
    let get = |q: &'static str| {
        let server = &server;
        let ava = &ava;
        async move {
            server
                .get(&format!("/v1/messages/group/{GENERAL}?{q}"), ava.auth())
                .await
        }
    };
    for q in ["limit=0", "limit=201", "limit=-1"] {
        assert_error(&get(q).await, 400, "invalid_limit");
    }
    for q in ["limit=abc", "limit=1.5"] {
        let got = get(q).await;
        assert_eq!(got.0, 400, "{q}: {got:?}");
        let code = got.1["code"].as_str().unwrap_or_default().to_string();
        assert!(
            code == "invalid_limit" || code == "invalid_query",
            "{q}: {got:?}"
        );
        assert_error(&got, 400, &code);
    }
    for q in ["before=abc", "after=x1", "before=1e3"] {
        assert_error(&get(q).await, 400, "invalid_query");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_client_id_returns_the_first_message() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let other = server.create_group(&ava, "Other", &[mike.id]).await;

    let (status, first) = post_message(
        &server,
        &ava,
        GENERAL,
        json!({"content": "once", "client_id": "abc-1"}),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post_message(
        &server,
        &ava,
        GENERAL,
        json!({"content": "once", "client_id": "abc-1"}),
    )
    .await;
    assert_eq!(status, 200, "a retry is answered 200: {again}");
    assert_eq!(again, first, "the retry returns the first message");
    let (status, changed) = post_message(
        &server,
        &ava,
        GENERAL,
        json!({"content": "different", "client_id": "abc-1"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["id"], first["id"]);
    assert_eq!(changed["content"], "once");

    // Per sender and per conversation.
    let (status, mikes) = post_message(
        &server,
        &mike,
        GENERAL,
        json!({"content": "mine", "client_id": "abc-1"}),
    )
    .await;
    assert_eq!(status, 201, "{mikes}");
    let (status, elsewhere) = post_message(
        &server,
        &ava,
        other,
        json!({"content": "there", "client_id": "abc-1"}),
    )
    .await;
    assert_eq!(status, 201, "{elsewhere}");

    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert_eq!(
        ids(&history),
        vec![first["id"].as_i64().unwrap(), mikes["id"].as_i64().unwrap()]
    );

    // client_id: 1–64 characters.
    let (status, _) = post_message(
        &server,
        &ava,
        GENERAL,
        json!({"content": "x", "client_id": "k".repeat(64)}),
    )
    .await;
    assert_eq!(status, 201);
    for bad in [json!(""), json!("k".repeat(65))] {
        let got = post_message(
            &server,
            &ava,
            GENERAL,
            json!({"content": "x", "client_id": bad}),
        )
        .await;
        assert_error(&got, 400, "invalid_client_id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_and_sql_looking_text_are_stored_verbatim() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let texts = [
        "emoji 👋🏽 and a family 👨‍👩‍👧 and flags 🇳🇱",
        "مرحبا بالعالم — right to left",
        "שלום עולם",
        "combining: e\u{301} a\u{308}\u{304} Z\u{335}\u{34f}",
        "zero\u{200b}width and \u{feff}bom inside",
        "'); DROP TABLE messages;--",
        "\" OR 1=1; -- \\ % _ LIKE '%'",
        "Robert'); DELETE FROM users; SELECT ('",
        "line one\nline two\ttabbed",
        "日本語のテキスト 中文 한국어",
    ];
    let mut sent = Vec::new();
    for text in texts {
        let m = server.send(&ava, GENERAL, text).await;
        assert_eq!(m["content"], text, "response content differs");
        sent.push(m["id"].as_i64().unwrap());
    }
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert_eq!(ids(&history), sent);
    for (m, text) in history.iter().zip(texts) {
        assert_eq!(m["content"], text, "stored content differs");
    }
    // Still a working database with its users.
    server.mike().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_is_checked_after_trimming() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    for bad in [
        String::new(),
        " \n\t ".into(),
        "a".repeat(4001),
        "é".repeat(4001),
        "🙂".repeat(4001),
    ] {
        let got = post_message(&server, &ava, GENERAL, json!({"content": bad})).await;
        assert_error(&got, 400, "invalid_content");
    }
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert!(
        history.is_empty(),
        "rejected messages were stored: {history:?}"
    );

    // 4000 characters (Unicode scalar values, not bytes) are fine, also with whitespace around.
    for good in [
        "a".repeat(4000),
        "🙂".repeat(4000),
        format!("  {}  \n", "b".repeat(4000)),
    ] {
        let m = server.send(&ava, GENERAL, &good).await;
        assert_eq!(m["content"].as_str().unwrap(), good.trim());
    }
    let got = post_message(&server, &ava, GENERAL, json!({})).await;
    assert_error(&got, 400, "invalid_json");
    let got = post_message(&server, &ava, GENERAL, json!({"content": 42})).await;
    assert_error(&got, 400, "invalid_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_403_missing_groups_404_no_token_401() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let zed = server.new_user("zed").await;
    server.send(&ava, GENERAL, "members only").await;
    let missing = GENERAL + 10_000;

    assert_error(
        &post_message(&server, &zed, GENERAL, json!({"content": "hi"})).await,
        403,
        "forbidden",
    );
    assert_error(
        &server
            .get(&format!("/v1/messages/group/{GENERAL}"), zed.auth())
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &post_message(&server, &ava, missing, json!({"content": "hi"})).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/v1/messages/group/{missing}"), ava.auth())
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .post_json(
                &format!("/v1/messages/group/{GENERAL}"),
                None,
                &json!({"content": "x"}),
            )
            .await,
        401,
        "unauthorized",
    );
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert_eq!(history.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http_senders_all_land_once_in_order() {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let mut handles = Vec::new();
    for t in 0..TASKS {
        let api = server.api.clone();
        let who = if t % 2 == 0 {
            ava.clone()
        } else {
            mike.clone()
        };
        handles.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..EACH {
                let content = format!("task {t} message {i}");
                let m = api.send(&who, GENERAL, &content).await;
                sent.push((m["id"].as_i64().unwrap(), content));
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for h in handles {
        sent.extend(
            tokio::time::timeout(TIMEOUT * 3, h)
                .await
                .expect("senders timed out")
                .unwrap(),
        );
    }
    let sent_ids: HashSet<i64> = sent.iter().map(|(id, _)| *id).collect();
    assert_eq!(sent_ids.len(), TASKS * EACH, "ids are unique");

    let (history, has_more) = server.history(&ava, GENERAL, "limit=200").await;
    assert!(!has_more);
    let history_ids = ids(&history);
    assert_strictly_ascending(&history_ids, "history");
    assert_eq!(
        history_ids.iter().copied().collect::<HashSet<_>>(),
        sent_ids
    );
    let by_id: std::collections::HashMap<i64, &str> = history
        .iter()
        .map(|m| (m["id"].as_i64().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    for (id, content) in &sent {
        assert_eq!(by_id[id], content.as_str());
    }
}
