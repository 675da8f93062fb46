//! Slow and dead consumers: a socket that stops reading delays nobody else and cannot grow the
//! server's memory without bound; it recovers everything with `since`; heartbeats close sockets
//! that answer nothing.

use std::time::{Duration, Instant};

use crate::helpers::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// ~1 KB of content.
fn kilobyte(tag: &str) -> String {
    format!("{tag} {}", "x".repeat(1000))
}

/// ~4 KB of content (the most a message may have is 4000 characters).
fn four_kilobytes(tag: &str) -> String {
    format!("{tag} {}", "z".repeat(3980))
}

/// The newest message id of `group` as `who` sees it (0 if none).
async fn newest_id(api: &Api, who: &Session, group: i64) -> i64 {
    let (page, _) = api.history(who, group, "limit=1").await;
    page.first().map_or(0, |m| m["id"].as_i64().unwrap())
}

/// Reads `ws` until it has `n` `group_message`s of `group`; returns their ids and when the last
/// one arrived. Other frames (acks, presence) are skipped.
async fn read_messages(mut ws: Ws, group: i64, n: usize) -> (Vec<i64>, Instant, Ws) {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let v = ws.next_json().await;
        if v["type"] == "group_message" && v["group_id"] == group {
            ids.push(v["id"].as_i64().unwrap());
        }
    }
    (ids, Instant::now(), ws)
}

/// Sends `n` ~4 KB messages to `group` over HTTP from `tasks` concurrent senders; returns the
/// ids and when the last answer came.
async fn send_burst(
    api: &Api,
    who: &Session,
    group: i64,
    n: usize,
    tasks: usize,
) -> (Vec<i64>, Instant) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (api, who) = (api.clone(), who.clone());
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (t..n).step_by(tasks) {
                let m = api
                    .send(&who, group, &four_kilobytes(&format!("m{i}")))
                    .await;
                ids.push(m["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for h in handles {
        ids.extend(h.await.expect("sender"));
    }
    ids.sort_unstable();
    (ids, Instant::now())
}

/// Replays with `since` and returns the ids of `group` up to `ready`.
async fn replay_ids(api: &Api, who: &Session, since: i64, group: i64) -> Vec<i64> {
    let mut ws = api.ws_connect(&who.token, Some(since)).await;
    let mut ids = Vec::new();
    loop {
        let v = ws.next_json().await;
        match v["type"].as_str() {
            Some("group_message") if v["group_id"] == group => ids.push(v["id"].as_i64().unwrap()),
            Some("ready") => return ids,
            _ => {}
        }
    }
}

/// A counter from `/metrics` (0 when absent).
async fn metric(api: &Api, name: &str) -> f64 {
    let (status, text) = api.raw(reqwest::Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(name))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_delay_the_others_and_recovers_with_since() {
    const N: usize = 3000;
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mut readers = vec![server.mike().await];
    for name in ["reader1", "reader2"] {
        readers.push(server.new_user(name).await);
    }
    let slow = server.new_user("slowpoke").await;
    let mut members: Vec<i64> = readers.iter().map(|r| r.id).collect();
    members.push(slow.id);
    let group = server.create_group(&ava, "Firehose", &members).await;

    // The stalled socket: a tiny kernel receive buffer, and after `ready` nobody reads it.
    let mut stalled = Ws::connect_small_buffer(server.addr, &slow.token, 4096).await;
    stalled.expect_type("ready").await;
    let before = newest_id(&server, &ava, group).await;

    let mut tasks = Vec::new();
    for r in &readers {
        let ws = server.ws_ready(r).await;
        tasks.push(tokio::spawn(read_messages(ws, group, N)));
    }
    let started = Instant::now();
    let (sent, last_sent) = send_burst(&server, &ava, group, N, 4).await;
    let send_time = last_sent - started;

    for (r, task) in readers.iter().zip(tasks) {
        let (ids, last_seen, _ws) = tokio::time::timeout(TIMEOUT * 3, task)
            .await
            .unwrap_or_else(|_| panic!("{} did not get all {N} messages in time", r.username))
            .expect("reader task");
        assert_eq!(
            ids, sent,
            "{} got other messages than were sent",
            r.username
        );
        let lag = last_seen.saturating_duration_since(last_sent);
        eprintln!(
            "{}: all {N} messages by {:?} after the burst began (the senders were done at \
             {send_time:?})",
            r.username,
            last_seen - started
        );
        assert!(
            lag < Duration::from_secs(3),
            "{} received the last message {lag:?} after it was sent: delayed by the stalled socket?",
            r.username
        );
    }
    eprintln!("sent {N} x ~4 KB over HTTP in {send_time:?} with one socket stalled");

    // The stalled socket reads again: whatever it gets is in order without duplicates, and it
    // either gets everything or is told (1013) to reconnect.
    let mut got = Vec::new();
    let how = loop {
        let item =
            tokio::time::timeout(TIMEOUT, futures_util::StreamExt::next(&mut stalled.stream))
                .await
                .expect("the stalled socket neither delivered nor closed");
        use tokio_tungstenite::tungstenite::Message;
        match item {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "group_message" && v["group_id"] == group {
                    got.push(v["id"].as_i64().unwrap());
                    if got.len() == N {
                        break "everything".to_string();
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                assert_eq!(
                    code,
                    Some(1013),
                    "the stalled socket was closed with {code:?}"
                );
                break "closed 1013".to_string();
            }
            Some(Ok(_)) => {}
            other => panic!("the stalled socket ended without a close frame: {other:?}"),
        }
    };
    assert_strictly_ascending(&got, "the stalled socket, reading again");
    assert_eq!(
        got[..],
        sent[..got.len()],
        "the stalled socket skipped messages"
    );
    let lagged = metric(&server, "websocket_lagged").await;
    eprintln!(
        "stalled socket, reading again: {} of {N} then {how}; websocket_lagged = {lagged}",
        got.len()
    );
    // Proof that the socket really held the server's writes up: it fell behind its
    // conversation's buffer (and caught up from the database when it read again).
    assert!(
        lagged >= 1.0 || how != "everything",
        "the stalled socket never fell behind: the test sent too little to stall it"
    );

    // Reconnecting with `since` (the last id it had seen) gives every message it missed.
    let replayed = replay_ids(&server, &slow, before, group).await;
    assert_eq!(replayed, sent, "since={before} replay");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Sends `n` messages over one socket, keeping up to `window` unanswered; returns the acked ids.
async fn pump(ws: &mut Ws, group: i64, n: usize, window: usize, tag: &str) -> Vec<i64> {
    let mut acked = Vec::with_capacity(n);
    let mut sent = 0;
    while acked.len() < n {
        while sent < n && sent - acked.len() < window {
            let frame = json!({
                "type": "send", "group_id": group, "content": kilobyte(&format!("{tag}{sent}")),
                "client_id": format!("{tag}{sent}"),
            });
            ws.send_json(&frame).await;
            sent += 1;
        }
        let v = ws.next_json().await;
        match v["type"].as_str() {
            Some("ack") => acked.push(v["id"].as_i64().unwrap()),
            Some("error") => panic!("send refused: {v}"),
            _ => {}
        }
    }
    acked
}

/// The real binary with one stalled socket while 20,000 ~1 KB messages go by: the resident
/// memory grows by far less than the data sent, and the stalled user recovers it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_with_a_stalled_socket() {
    const WARMUP: usize = 1000;
    const N: usize = 20_000;
    /// Generous: the messages alone are ~24 MB of frames; buffering them for the stalled
    /// socket would pass this.
    const BOUND_KIB: u64 = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("rss.db")).await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let slow = server.new_user("stalled").await;
    server.add_member(&ava, GENERAL, slow.id, None).await;

    let mut stalled = Ws::connect_small_buffer(server.addr, &slow.token, 4096).await;
    stalled.expect_type("ready").await;
    let seen_by_stalled = newest_id(&server, &ava, GENERAL).await;

    let mut sender = server.ws_ready(&ava).await;
    let listener = server.ws_ready(&mike).await;
    let listen = tokio::spawn(read_messages(listener, GENERAL, WARMUP + N));

    let warm = pump(&mut sender, GENERAL, WARMUP, 48, "w").await;
    let before = rss_kib(server.pid);
    let started = Instant::now();
    let acked = pump(&mut sender, GENERAL, N, 48, "m").await;
    let elapsed = started.elapsed();
    let (seen, _, _listener) = tokio::time::timeout(TIMEOUT * 6, listen)
        .await
        .expect("the listening socket did not get every message")
        .expect("listener task");
    let after = rss_kib(server.pid);
    drop(sender);

    let mut all: Vec<i64> = warm.iter().chain(&acked).copied().collect();
    all.sort_unstable();
    assert_eq!(seen, all, "the listening socket beside the stalled one");
    let growth = after.saturating_sub(before);
    eprintln!(
        "RSS with one stalled socket: {before} KiB before, {after} KiB after {N} messages of ~1 KB \
         ({:.1} MB of content, sent in {elapsed:?}): growth {growth} KiB",
        (N * 1000) as f64 / 1e6
    );
    assert!(
        growth < BOUND_KIB,
        "RSS grew by {growth} KiB (bound {BOUND_KIB} KiB) with a stalled socket"
    );

    // The stalled socket is still there (never read); its user reconnects with `since`.
    let replayed = replay_ids(&server, &slow, seen_by_stalled, GENERAL).await;
    assert_eq!(
        replayed.len(),
        all.len(),
        "replay after since={seen_by_stalled}"
    );
    assert_eq!(replayed, all, "replay after since={seen_by_stalled}");
    drop(stalled);
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "{log}");
}

const PING: Duration = Duration::from_millis(200);

fn fast_pings(cfg: &mut chatserver::config::Config) {
    cfg.ws_ping_interval = PING;
}

/// Waits on `watcher` (any socket sharing a conversation) for `user` going offline.
async fn until_offline(watcher: &mut Ws, user: i64, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = tokio::time::timeout(left, watcher.next_json_raw())
            .await
            .unwrap_or_else(|_| panic!("user {user} still online after {limit:?}"));
        if v["type"] == "presence" && v["user_id"] == user && v["online"] == false {
            return Instant::now();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_socket_is_closed_after_two_and_a_half_ping_intervals() {
    let server = TestServer::start_with(fast_pings).await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut watcher = server.ws_ready(&mike).await;

    let opened = Instant::now();
    let mut dead = raw_ws(server.addr, &ava.token, None).await;
    // Never read, never answer: the server pings, hears nothing, and closes.
    let closed = until_offline(&mut watcher, ava.id, Duration::from_secs(10)).await;
    let after = closed - opened;
    eprintln!("a dead socket (ping interval {PING:?}) was closed after {after:?}");
    assert!(
        after >= PING * 2,
        "closed after {after:?}: sooner than 2.5 ping intervals allow"
    );
    assert!(
        after < Duration::from_secs(5),
        "closed only after {after:?}"
    );

    // What the dead client would have read: pings, then a close frame, then the end.
    let mut bytes = Vec::new();
    let read_all = tokio::time::timeout(TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match dead.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    });
    read_all
        .await
        .expect("the server did not end the dead connection");
    let frames = parse_server_frames(&bytes);
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    assert!(opcodes.contains(&0x9), "no ping was sent: {opcodes:?}");
    let close = frames
        .iter()
        .find(|(op, _)| *op == 0x8)
        .unwrap_or_else(|| panic!("no close frame before the end: {opcodes:?}"));
    let code = u16::from_be_bytes([close.1[0], close.1[1]]);
    assert_eq!(code, 1001, "close code of a dead socket");

    // A live socket that sends nothing but answers pings (the client library does) stays open.
    watcher.ping_pong().await;
    let mut quiet = server.ws_ready(&ava).await;
    tokio::time::timeout(PING * 5, quiet.assert_no_frame_within(PING * 5))
        .await
        .ok();
    quiet.ping_pong().await;
}

/// A client that stops reading (a frozen app: the connection is up, its window is zero). It
/// pings while the traffic starts, so it is not idle before the server's writes to it block;
/// then it falls silent too. The server must still close it (heartbeat, or 1013 for falling
/// behind), not hold the connection, its task and its socket slot for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_client_under_traffic_is_closed() {
    const N: usize = 1500;
    let server = TestServer::start_with(fast_pings).await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let silent = server.new_user("silent").await;
    server.add_member(&ava, GENERAL, silent.id, None).await;
    let mut watcher = server.ws_ready(&mike).await;
    let (_never_read, mut write_half) = raw_ws(server.addr, &silent.token, Some(4096))
        .await
        .into_split();
    // The watcher reads all along (a watcher that paused would be a slow consumer itself).
    let silent_id = silent.id;
    let watch = tokio::spawn(async move {
        loop {
            let v = watcher.next_json_raw().await;
            if v["type"] == "presence" && v["user_id"] == silent_id && v["online"] == false {
                return Instant::now();
            }
        }
    });
    // Masked, empty pings every 100 ms until the traffic has ended.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pinger = tokio::spawn(async move {
        let ping = [0x89u8, 0x80, 1, 2, 3, 4];
        loop {
            tokio::select! {
                _ = &mut stop_rx => return write_half,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if write_half.write_all(&ping).await.is_err() {
                return write_half;
            }
        }
    });

    // ~4 KB each, ~6 MB in all: more than the kernel buffers, so the server's writes block.
    let big = "y".repeat(3990);
    let mut handles = Vec::new();
    for t in 0..4 {
        let (api, ava, big) = (server.api.clone(), ava.clone(), big.clone());
        handles.push(tokio::spawn(async move {
            for i in (t..N).step_by(4) {
                api.send(&ava, GENERAL, &format!("{i} {big}")).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let sent_at = Instant::now();
    // The pinger has stopped by itself if the server already closed the socket (its write
    // failed): closed during the traffic is closed too.
    let _ = stop_tx.send(());
    // Kept open (dropping it would send FIN): the client is frozen, not gone.
    let _write_half = pinger.await.unwrap();
    let limit = Duration::from_secs(5);
    let closed_at = match tokio::time::timeout(limit, watch).await {
        Ok(done) => done.expect("watcher"),
        Err(_) => panic!(
            "a client that stopped reading (then pinging) was still connected {limit:?} after \
             the traffic ({N} messages) ended (ping interval {PING:?})"
        ),
    };
    eprintln!(
        "a frozen client was closed {:?} after the traffic ended",
        closed_at.saturating_duration_since(sent_at)
    );
}
