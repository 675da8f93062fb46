//! Shared set-up for the integration tests: an in-process server on port 0 with its own temporary
//! database, the real binary for restart / signal / CLI tests, and small HTTP and WebSocket clients.
//!
//! Every wait has a timeout; a timeout is a failure, never a way to synchronise.

mod api;
mod asserts;
mod files;
mod nats;
mod netns;
mod postgres;
mod process;
mod server;
mod ws;

use std::time::Duration;

pub use api::*;
pub use asserts::*;
pub use files::*;
pub use nats::*;
pub use netns::*;
pub use postgres::*;
pub use process::*;
pub use server::*;
pub use ws::*;

/// How long any single expected event may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The seeded users' password (see seed/ and docs/API.md "Out of the box").
pub const SEED_PASSWORD: &str = "password";
/// Password used for users the tests register.
pub const PASSWORD: &str = "correct horse battery";
pub const GENERAL: i64 = 1;

/// A TCP connection to `addr` from the loopback source address `source` (127.0.0.2, …).
pub async fn tcp_from(source: &str, addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    let from = std::net::SocketAddr::new(source.parse().expect("a source address"), 0);
    socket.bind(from).expect("bind the source address");
    tokio::time::timeout(TIMEOUT, socket.connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Whether the server closed `tcp` (EOF or reset) within `within`, reading and discarding
/// whatever it sent first.
pub async fn closed_within(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// One HTTP/1.1 exchange on `tcp`, written as given: (status, head, body). The answer must
/// carry a Content-Length (ours do).
pub async fn raw_http(tcp: &mut tokio::net::TcpStream, request: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(request.as_bytes())
        .await
        .expect("write the request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).to_string();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (status, head, body);
            }
        }
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut buf))
            .await
            .expect("the answer timed out")
            .expect("read the answer");
        assert!(
            n > 0,
            "the connection closed before a full answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}
