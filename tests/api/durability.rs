//! The real process under signals: SIGTERM is a clean exit, SIGKILL loses nothing acknowledged.

use std::collections::HashMap;

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_1001_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut server = ServerProcess::spawn(&db).await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let group = server.create_group(&ava, "Stop", &[mike.id]).await;
    server.send(&ava, group, "pepper before the stop").await;
    let mut sockets = Vec::new();
    for who in [&ava, &mike] {
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        sockets.push(ws);
    }

    server.sigterm();
    for ws in &mut sockets {
        let (closed, _) = ws.until_closed().await;
        assert_eq!(
            closed,
            Closed::Code(1001),
            "stderr:\n{}",
            server.stderr_text()
        );
    }
    let status = server.wait_exit(TIMEOUT).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}; stderr:\n{}",
        server.stderr_text()
    );
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "{log}");

    // The database is whole, what waited for the search index (SQLite's) is in it, and a new
    // process serves it.
    assert_eq!(integrity_check(&db), "ok");
    if !on_postgres() {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            count("SELECT (SELECT max(id) FROM messages) - upto FROM messages_fts_indexed"),
            0
        );
        assert_eq!(
            count("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pepper'"),
            1
        );
    }
    let again = ServerProcess::spawn(&db).await;
    again.ava().await;
}

/// (client_id, id) of every acknowledged message.
type Acks = UnboundedSender<(String, i64)>;

/// Sends over HTTP until the server stops answering; reports each 200/201.
async fn http_writer(api: Api, who: Session, name: String, acks: Acks) -> usize {
    let mut sent = 0;
    for i in 0..5_000 {
        let client_id = format!("{name}-{i}");
        let resp = api
            .http
            .post(api.url(&format!("/v1/messages/group/{GENERAL}")))
            .bearer_auth(&who.token)
            .json(&json!({"content": format!("{name} message {i}"), "client_id": client_id}))
            .send()
            .await;
        let Ok(resp) = resp else { break };
        let status = resp.status().as_u16();
        let Ok(body) = resp.json::<Value>().await else {
            break;
        };
        if status != 201 && status != 200 {
            break;
        }
        let id = body["id"].as_i64().expect("id");
        sent += 1;
        let _ = acks.send((client_id, id));
    }
    sent
}

/// Sends over a socket, one frame at a time, until the socket dies; reports each ack.
async fn ws_writer(mut ws: Ws, name: String, acks: Acks) -> usize {
    let mut sent = 0;
    'send: for i in 0..5_000 {
        let client_id = format!("{name}-{i}");
        let frame = json!({"type": "send", "group_id": GENERAL,
                           "content": format!("{name} message {i}"), "client_id": client_id});
        if ws
            .stream
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            break;
        }
        loop {
            let item = match tokio::time::timeout(TIMEOUT, ws.stream.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => break 'send,
            };
            let Message::Text(t) = item else {
                if matches!(item, Message::Close(_)) {
                    break 'send;
                }
                continue;
            };
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            if f["type"] == "ack" && f["client_id"] == client_id.as_str() {
                sent += 1;
                let _ = acks.send((client_id, f["id"].as_i64().expect("ack id")));
                break;
            }
            if f["type"] == "error" {
                panic!("{name}: error frame before the kill: {f}");
            }
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_keeps_every_acknowledged_message() {
    const KILL_AFTER: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut server = ServerProcess::spawn(&db).await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let (tx, mut rx) = unbounded_channel();
    let mut writers = Vec::new();
    for (i, who) in [&ava, &mike].into_iter().enumerate() {
        writers.push(tokio::spawn(http_writer(
            server.api.clone(),
            who.clone(),
            format!("http{i}"),
            tx.clone(),
        )));
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        writers.push(tokio::spawn(ws_writer(ws, format!("ws{i}"), tx.clone())));
    }
    drop(tx);

    // Mid-stream: once KILL_AFTER messages are acknowledged, SIGKILL.
    let mut acked: Vec<(String, i64)> = recv_n(&mut rx, KILL_AFTER).await;
    server.kill9();
    let mut per_writer = Vec::new();
    for w in writers {
        per_writer.push(
            tokio::time::timeout(TIMEOUT * 2, w)
                .await
                .expect("writer stops")
                .expect("writer"),
        );
    }
    while let Some(ack) = rx.recv().await {
        acked.push(ack);
    }
    assert!(
        per_writer.iter().all(|n| *n > 0),
        "every writer got acks before the kill: {per_writer:?}"
    );
    assert_eq!(per_writer.iter().sum::<usize>(), acked.len());

    assert_eq!(integrity_check(&db), "ok");
    let server = ServerProcess::spawn(&db).await;
    let ava = server.ava().await;
    let stored: HashMap<String, (i64, String)> = server
        .full_history(&ava, GENERAL)
        .await
        .iter()
        .map(|m| {
            (
                m["client_id"]
                    .as_str()
                    .expect("every message here has a client_id")
                    .to_string(),
                (
                    m["id"].as_i64().unwrap(),
                    m["content"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let mut missing = Vec::new();
    for (client_id, id) in &acked {
        match stored.get(client_id) {
            Some((stored_id, _)) if stored_id == id => {}
            other => missing.push(format!("{client_id} (acked id {id}, stored {other:?})")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages lost: {missing:?}",
        missing.len(),
        acked.len()
    );

    // The idempotency record survived too: a retry of an acknowledged send returns the same id.
    let (client_id, id) = acked
        .iter()
        .find(|(c, _)| c.starts_with("http0"))
        .expect("an http0 ack");
    let (status, body) = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &json!({"content": "retry", "client_id": client_id}),
        )
        .await;
    assert_eq!((status, body["id"].as_i64()), (200, Some(*id)), "{body}");
    assert_eq!(integrity_check(&db), "ok");
}
