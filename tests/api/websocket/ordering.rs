use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use tokio_tungstenite::tungstenite::Message;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ws_and_http_senders_each_message_once_in_order() {
    const SENDERS_EACH: usize = 4; // WS senders and HTTP senders
    const PER_SENDER: usize = 50;
    const TOTAL: usize = 2 * SENDERS_EACH * PER_SENDER;
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let group = server.create_group(&ava, "Busy", &[mike.id, zed.id]).await;

    // Pure listeners: two of Zed's sockets and one of Mike's.
    let mut listeners = Vec::new();
    for who in [&zed, &zed, &mike] {
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        let addr = server.addr;
        let token = who.token.clone();
        listeners.push(tokio::spawn(async move {
            collect_ids(addr, &token, ws, TOTAL).await
        }));
    }

    // WS senders: send PER_SENDER frames, and read acks plus every group_message.
    // Every socket is open (ready) before anyone sends, so each must see all TOTAL messages.
    let mut sender_sockets = Vec::new();
    for s in 0..SENDERS_EACH {
        let who = if s % 2 == 0 { &ava } else { &mike };
        let mut ws = server.ws_connect(&who.token, None).await;
        ws.expect_type("ready").await;
        sender_sockets.push(ws);
    }
    let mut ws_senders = Vec::new();
    for (s, ws) in sender_sockets.into_iter().enumerate() {
        ws_senders.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.stream.split();
            let writer = tokio::spawn(async move {
                for i in 0..PER_SENDER {
                    let frame = json!({
                        "type": "send",
                        "group_id": group,
                        "content": format!("ws {s} #{i}"),
                        "client_id": format!("ws-{s}-{i}"),
                    });
                    sink.send(Message::text(frame.to_string()))
                        .await
                        .expect("ws send");
                }
                sink
            });
            let mut acked = HashMap::new();
            let mut delivered = Vec::new();
            // Per source ("ws-0", "http-3", …): how many of its messages arrived here.
            let mut from: BTreeMap<String, usize> = BTreeMap::new();
            while acked.len() < PER_SENDER || delivered.len() < TOTAL {
                let Ok(item) = tokio::time::timeout(TIMEOUT, stream.next()).await else {
                    panic!(
                        "ws sender {s}: timed out with {} acks and {} of {TOTAL} messages; \
                         messages received per source: {from:?}",
                        acked.len(),
                        delivered.len()
                    );
                };
                let item = item.expect("socket ended").expect("socket error");
                let Message::Text(t) = item else { continue };
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                match f["type"].as_str() {
                    Some("ack") => {
                        let cid = f["client_id"].as_str().unwrap().to_string();
                        assert!(
                            acked.insert(cid, f["id"].as_i64().unwrap()).is_none(),
                            "two acks: {f}"
                        );
                    }
                    Some("group_message") => {
                        delivered.push(f["id"].as_i64().unwrap());
                        let cid = f["client_id"].as_str().unwrap_or_default();
                        let source = cid.rsplit_once('-').map_or(cid, |(src, _)| src);
                        *from.entry(source.to_string()).or_default() += 1;
                    }
                    Some("presence" | "presence_batch") => {}
                    _ => panic!("ws sender {s}: unexpected {f}"),
                }
            }
            let _sink = writer.await.unwrap();
            (acked.into_values().collect::<Vec<i64>>(), delivered)
        }));
    }

    let mut http_senders = Vec::new();
    for s in 0..SENDERS_EACH {
        let api = server.api.clone();
        let who = if s % 2 == 0 {
            ava.clone()
        } else {
            mike.clone()
        };
        http_senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_SENDER {
                let (status, m) = api
                    .post_json(
                        &format!("/v1/messages/group/{group}"),
                        who.auth(),
                        &json!({"content": format!("http {s} #{i}"), "client_id": format!("http-{s}-{i}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{m}");
                ids.push(m["id"].as_i64().unwrap());
            }
            ids
        }));
    }

    let mut committed: Vec<i64> = Vec::new();
    for h in http_senders {
        committed.extend(h.await.expect("http sender"));
    }
    let mut sender_views = Vec::new();
    for h in ws_senders {
        let (acked, delivered) = h.await.expect("ws sender");
        committed.extend(acked);
        sender_views.push(delivered);
    }
    let mut expected = committed.clone();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(expected.len(), TOTAL, "every send got its own id");

    for (i, delivered) in sender_views.iter().enumerate() {
        assert_strictly_ascending(delivered, &format!("ws sender {i}"));
        assert_eq!(delivered, &expected, "ws sender {i} saw a different set");
    }
    for (i, h) in listeners.into_iter().enumerate() {
        let (seen, _) = h.await.expect("listener");
        assert_strictly_ascending(&seen, &format!("listener {i}"));
        assert_eq!(seen, expected, "listener {i} saw a different set");
    }
    let history = server.full_history(&ava, group).await;
    assert_eq!(ids(&history), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_everything_in_order_or_is_closed_1013() {
    const TOTAL: usize = 500;
    const SENDERS: usize = 4;
    let server = TestServer::start_with(|cfg| cfg.hub_capacity = 16).await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    // A small receive buffer, so the server cannot park the backlog in the kernel.
    let mut slow = Ws::connect_small_buffer(server.addr, &mike.token, 8 * 1024).await;
    slow.expect_type("ready").await;
    let mut fast = server.ws_connect(&ava.token, None).await;
    fast.expect_type("ready").await;
    let addr = server.addr;
    let ava_token = ava.token.clone();
    let fast_reader = tokio::spawn(async move { collect_ids(addr, &ava_token, fast, TOTAL).await });

    // ~16 KB per message (3,900 four-byte characters), ~8 MB in all: more than the kernel's
    // socket buffers hold, so the server must hold the backlog, or drop the socket with 1013.
    let filler = "🙂".repeat(3900);
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let api = server.api.clone();
        let ava = ava.clone();
        let filler = filler.clone();
        senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..TOTAL / SENDERS {
                ids.push(
                    api.send(&ava, GENERAL, &format!("{s}/{i} {filler}")).await["id"]
                        .as_i64()
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut sent = Vec::new();
    for h in senders {
        sent.extend(
            tokio::time::timeout(TIMEOUT * 6, h)
                .await
                .expect("senders timed out")
                .unwrap(),
        );
    }
    sent.sort_unstable();

    // Only now does Mike read.
    let (seen, reconnects) = collect_ids(addr, &mike.token, slow, TOTAL).await;
    assert_strictly_ascending(&seen, &format!("slow reader ({reconnects} reconnects)"));
    assert_eq!(
        seen, sent,
        "slow reader lost or duplicated messages ({reconnects} reconnects)"
    );

    let (fast_seen, _) = fast_reader.await.expect("fast reader");
    assert_eq!(fast_seen, sent, "fast reader");
}
