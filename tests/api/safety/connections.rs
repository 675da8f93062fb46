//! What a client may hold of the server: connections are timed and counted, and one that takes
//! too long, or one too many, is closed while everyone else is served.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::helpers::*;

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

fn quick_clock(cfg: &mut chatserver::config::Config) {
    cfg.net.header_timeout = Duration::from_millis(500);
    cfg.net.body_timeout = Duration::from_millis(500);
    cfg.net.idle_timeout = Duration::from_millis(1500);
}

/// Slowloris: headers trickling in a byte at a time are cut off at the header timeout, and
/// the server goes on answering everyone else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_trickle_in_are_cut_off() {
    let server = TestServer::start_with(quick_clock).await;
    let mut slow = tcp_from("127.0.0.2", server.addr).await;
    let opened = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut closed = false;
    for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*byte]).await.is_err()
            || closed_within(&mut slow, Duration::from_millis(100)).await
        {
            closed = true;
            break;
        }
    }
    let took = opened.elapsed();
    assert!(closed, "still open after {took:?}");
    assert!(
        took >= Duration::from_millis(400),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");
    let (status, _) = server.get("/healthz", None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let server = TestServer::start_with(quick_clock).await;
    let mut silent = tcp_from("127.0.0.2", server.addr).await;
    let opened = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "still open"
    );
    assert!(
        opened.elapsed() >= Duration::from_millis(400),
        "{:?}",
        opened.elapsed()
    );
}

/// Between requests a kept-alive connection waits for the idle timeout, not the header
/// timeout; then it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_lives_until_the_idle_timeout() {
    let server = TestServer::start_with(quick_clock).await;
    let mut tcp = tcp_from("127.0.0.2", server.addr).await;
    let (status, _, _) = raw_http(&mut tcp, HEALTHZ).await;
    assert_eq!(status, 200);
    // Idle for longer than the header timeout: still usable.
    assert!(
        !closed_within(&mut tcp, Duration::from_millis(800)).await,
        "cut at the header timeout"
    );
    let (status, _, _) = raw_http(&mut tcp, HEALTHZ).await;
    assert_eq!(
        status, 200,
        "the second request on the kept-alive connection"
    );
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut tcp, Duration::from_secs(5)).await,
        "never closed while idle"
    );
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(1300),
        "closed after only {idle:?} idle"
    );
}

/// A body announced but not sent: 408 once the body timeout passes, and the connection goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408() {
    let server = TestServer::start_with(quick_clock).await;
    let mut tcp = tcp_from("127.0.0.2", server.addr).await;
    let started = Instant::now();
    let request =
        "POST /v1/users/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{";
    let (status, head, body) = raw_http(&mut tcp, request).await;
    assert_eq!(status, 408, "{head}\n{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(closed_within(&mut tcp, Duration::from_secs(3)).await);
}

fn small_budget(cfg: &mut chatserver::config::Config) {
    cfg.net.max_connections = Some(8);
    // Asks for more than half: held to 4.
    cfg.net.max_connections_per_ip = 100;
}

/// `n` kept-alive connections from `source`, each known to be held (it has been answered).
async fn hold(server: &TestServer, source: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut tcp = tcp_from(source, server.addr).await;
        let (status, _, _) = raw_http(&mut tcp, HEALTHZ).await;
        assert_eq!(status, 200);
        held.push(tcp);
    }
    held
}

/// A connection the server closes at once, without an answer.
async fn assert_refused(server: &TestServer, source: &str) {
    let mut tcp = tcp_from(source, server.addr).await;
    let _ = tcp.write_all(HEALTHZ.as_bytes()).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(TIMEOUT, tokio::io::AsyncReadExt::read(&mut tcp, &mut buf))
        .await
        .expect("the refusal timed out");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "a connection past the bound from {source} was answered: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_share_is_refused_and_others_are_served() {
    let server = TestServer::start_with(small_budget).await;
    let mut held = hold(&server, "127.0.0.2", 4).await;
    assert_refused(&server, "127.0.0.2").await;
    let other = server.via("127.0.0.3");
    let (status, _) = other.get("/healthz", None).await;
    assert_eq!(status, 200, "another address is served");
    // A place given back is a place taken again (once the server has seen it close).
    drop(held.pop());
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut tcp = tcp_from("127.0.0.2", server.addr).await;
        let _ = tcp.write_all(HEALTHZ.as_bytes()).await;
        if !closed_within(&mut tcp, Duration::from_millis(200)).await {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_holds_across_addresses() {
    let server = TestServer::start_with(small_budget).await;
    let _a = hold(&server, "127.0.0.2", 4).await;
    let _b = hold(&server, "127.0.0.3", 4).await;
    assert_refused(&server, "127.0.0.4").await;
}

/// An upgraded socket keeps its connection's place for as long as it is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_count_against_the_bound() {
    let server = TestServer::start_with(small_budget).await;
    let ava = server.ava().await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = Ws::connect_from("127.0.0.2", server.addr, &ava.token).await;
        ws.expect_type("ready").await;
        sockets.push(ws);
    }
    assert_refused(&server, "127.0.0.2").await;
    sockets[0].ping_pong().await;
}

/// With a small open-files limit, a flood of idle connections from one address used to make
/// every new client fail; now the flood is held to its share of what the limit allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_under_a_small_open_files_limit_leaves_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn_limited(&dir.path().join("chat.db"), &[], Some(256)).await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(tcp_from("127.0.0.2", server.addr).await);
    }
    let other = server.via("127.0.0.3");
    let (status, body) = other.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    let ava = other.ava().await;
    let (status, _) = other.get("/v1/me", ava.auth()).await;
    assert_eq!(status, 200);
    drop(flood);
}
