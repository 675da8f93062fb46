//! WebSocket clients: a well-behaved one, and raw connections that misbehave below the protocol.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::*;

pub type WsStream = WebSocketStream<TcpStream>;

pub struct Ws {
    pub stream: WsStream,
    /// The rest of a `presence_batch` frame, handed out one change at a time.
    unbatched: std::collections::VecDeque<Value>,
}

/// How a socket ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// A close frame without a code.
    NoCode,
    /// The connection ended without a close frame.
    Abrupt(String),
}

pub fn ws_url(addr: SocketAddr, token: Option<&str>, since: Option<i64>) -> String {
    let mut url = format!("ws://{addr}/ws");
    let mut sep = '?';
    if let Some(t) = token {
        url.push_str(&format!("{sep}token={t}"));
        sep = '&';
    }
    if let Some(s) = since {
        url.push_str(&format!("{sep}since={s}"));
    }
    url
}

fn client_config() -> WebSocketConfig {
    // Room for the oversize test's frames in both directions.
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Opens a TCP connection to the request's host and performs the client handshake. With
/// `recv_buffer`, the client's kernel receive buffer is capped at that many bytes (no
/// autotuning), so a client that stops reading pushes back on the server after a few frames.
async fn handshake(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    recv_buffer: Option<u32>,
) -> Result<
    (
        WsStream,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
> {
    let uri = request.uri();
    let host = uri.host().expect("ws url has a host");
    let port = uri.port_u16().expect("ws url has a port");
    let addr: SocketAddr = format!("{host}:{port}").parse().expect("ip:port");
    let socket = tokio::net::TcpSocket::new_v4().map_err(WsError::Io)?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).map_err(WsError::Io)?;
    }
    let tcp = socket.connect(addr).await.map_err(WsError::Io)?;
    tcp.set_nodelay(true).map_err(WsError::Io)?;
    tokio_tungstenite::client_async_with_config(request, tcp, Some(client_config())).await
}

/// Attempts an upgrade: `(101, Null)` when accepted (the socket is then closed), else the
/// refusal's status and JSON body (`Null` when it has none).
pub async fn ws_attempt(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, Value) {
    let result = tokio::time::timeout(TIMEOUT, handshake(request, None))
        .await
        .expect("websocket handshake timed out");
    match result {
        Ok((mut ws, resp)) => {
            let _ = ws.close(None).await;
            (resp.status().as_u16(), Value::Null)
        }
        Err(WsError::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

/// Attempts an upgrade that must be refused; returns the HTTP status and the body, if JSON.
pub async fn ws_refused(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, Value) {
    let result = tokio::time::timeout(TIMEOUT, handshake(request, None))
        .await
        .expect("handshake timed out");
    match result {
        Ok(_) => panic!("the upgrade was accepted, expected it to be refused"),
        Err(WsError::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .filter(|b| !b.is_empty())
                .map(|b| {
                    serde_json::from_slice(b).unwrap_or_else(|e| {
                        panic!(
                            "refusal body is not JSON ({e}): {:?}",
                            String::from_utf8_lossy(b)
                        )
                    })
                })
                .unwrap_or(Value::Null);
            (status, body)
        }
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

impl Ws {
    pub fn new(stream: WsStream) -> Ws {
        Ws {
            stream,
            unbatched: Default::default(),
        }
    }

    /// A socket from the loopback source address `source` (127.0.0.2, …).
    pub async fn connect_from(source: &str, addr: SocketAddr, token: &str) -> Ws {
        let tcp = tcp_from(source, addr).await;
        let request = ws_url(addr, Some(token), None)
            .into_client_request()
            .expect("ws request");
        let (stream, _) = tokio::time::timeout(
            TIMEOUT,
            tokio_tungstenite::client_async_with_config(request, tcp, Some(client_config())),
        )
        .await
        .expect("handshake timed out")
        .expect("handshake");
        Ws {
            stream,
            unbatched: Default::default(),
        }
    }

    pub async fn connect(addr: SocketAddr, token: &str, since: Option<i64>) -> Ws {
        let url = ws_url(addr, Some(token), since);
        Self::connect_request(url.into_client_request().unwrap()).await
    }

    /// A socket whose kernel receive buffer is only `recv_buffer` bytes: for slow-reader tests.
    pub async fn connect_small_buffer(addr: SocketAddr, token: &str, recv_buffer: u32) -> Ws {
        let request = ws_url(addr, Some(token), None)
            .into_client_request()
            .unwrap();
        let (stream, resp) = tokio::time::timeout(TIMEOUT, handshake(request, Some(recv_buffer)))
            .await
            .expect("websocket handshake timed out")
            .expect("websocket handshake failed");
        assert_eq!(resp.status().as_u16(), 101);
        Ws {
            stream,
            unbatched: Default::default(),
        }
    }

    /// Token in the `Authorization` header instead of the query.
    pub async fn connect_with_header(addr: SocketAddr, token: &str) -> Ws {
        let mut req = ws_url(addr, None, None).into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        Self::connect_request(req).await
    }

    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Ws {
        let uri = request.uri().to_string();
        let (stream, resp) = tokio::time::timeout(TIMEOUT, handshake(request, None))
            .await
            .unwrap_or_else(|_| panic!("websocket handshake to {uri} timed out"))
            .unwrap_or_else(|e| panic!("websocket handshake to {uri} failed: {e}"));
        assert_eq!(resp.status().as_u16(), 101);
        Ws {
            stream,
            unbatched: Default::default(),
        }
    }

    /// The next data frame (text or binary), skipping control frames. Panics on timeout or close.
    pub async fn next_message(&mut self) -> Message {
        loop {
            let item = tokio::time::timeout(TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a websocket frame");
            match item {
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    panic!("socket closed while a frame was expected: {frame:?}")
                }
                Some(Ok(m)) => return m,
                Some(Err(e)) => panic!("socket error while a frame was expected: {e}"),
                None => panic!("socket ended while a frame was expected"),
            }
        }
    }

    /// The next JSON frame, including `presence` frames; the changes of a `presence_batch`
    /// come one by one, as the `presence` frames they are (tests/api/presence.rs looks at the
    /// batches themselves, with `next_frame`).
    pub async fn next_json_raw(&mut self) -> Value {
        if let Some(change) = self.unbatched.pop_front() {
            return change;
        }
        let v = self.next_frame().await;
        if v["type"] != "presence_batch" {
            return v;
        }
        self.unbatched
            .extend(v["changes"].as_array().cloned().unwrap_or_default());
        self.unbatched
            .pop_front()
            .unwrap_or_else(|| panic!("an empty presence_batch: {v}"))
    }

    /// The next JSON frame exactly as sent (a `presence_batch` as one frame).
    pub async fn next_frame(&mut self) -> Value {
        match self.next_message().await {
            Message::Text(t) => serde_json::from_str(t.as_str())
                .unwrap_or_else(|e| panic!("server sent a text frame that is not JSON ({e}): {t}")),
            other => panic!("server sent a non-text frame: {other:?}"),
        }
    }

    /// The next JSON frame. `presence` frames are skipped: the contract lets them arrive at any
    /// moment (other users connecting), and no test here is about them.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let v = self.next_json_raw().await;
            if v["type"] != "presence" {
                return v;
            }
        }
    }

    /// The next frame must have `type` = `ty`.
    pub async fn expect_type(&mut self, ty: &str) -> Value {
        let v = self.next_json().await;
        assert_eq!(v["type"], ty, "expected a `{ty}` frame, got {v}");
        v
    }

    /// Skips frames of other types until one of type `ty` arrives (within the timeout).
    pub async fn next_of_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send(Message::text(v.to_string())).await;
    }

    pub async fn send(&mut self, m: Message) {
        tokio::time::timeout(TIMEOUT, self.stream.send(m))
            .await
            .expect("websocket send timed out")
            .expect("websocket send failed");
    }

    /// `ping` → `pong`: proves the socket is open and being served.
    pub async fn ping_pong(&mut self) {
        self.send_json(&json!({"type": "ping"})).await;
        self.expect_type("pong").await;
    }

    /// Waits (with the timeout) for the socket to end; data frames before the close are returned
    /// too, so callers can check nothing was lost.
    pub async fn until_closed(&mut self) -> (Closed, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            let item = tokio::time::timeout(TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for the socket to close");
            match item {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (Closed::Code(u16::from(frame.code)), frames)
                }
                Some(Ok(Message::Close(None))) => return (Closed::NoCode, frames),
                Some(Ok(Message::Text(t))) => frames.push(
                    serde_json::from_str(t.as_str()).unwrap_or_else(|_| json!({"raw": t.as_str()})),
                ),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return (Closed::Abrupt(e.to_string()), frames),
                None => return (Closed::Abrupt("stream ended".into()), frames),
            }
        }
    }

    /// Frames (presence skipped) up to and including the first of type `ty`.
    pub async fn frames_until(&mut self, ty: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let v = self.next_json().await;
            let done = v["type"] == ty;
            frames.push(v);
            if done {
                return frames;
            }
        }
    }

    /// Closes from the client side and waits for the server's close frame: the server has
    /// stopped serving this socket (what it does on the socket's end may follow a moment later,
    /// so callers wait for its effects, e.g. a `presence` frame, rather than assume them).
    pub async fn close(mut self) {
        self.send(Message::Close(None)).await;
        let (how, _) = self.until_closed().await;
        assert!(
            !matches!(how, Closed::Abrupt(_)),
            "expected a close frame in answer, got {how:?}"
        );
    }

    /// Use sparingly: proves nothing arrives within `window`. Prefer proving order instead.
    pub async fn assert_no_frame_within(&mut self, window: Duration) {
        loop {
            match tokio::time::timeout(window, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("\"presence\"") => continue,
                Ok(other) => panic!("expected no frame within {window:?}, got {other:?}"),
            }
        }
    }
}

// Raw WebSocket connections (for clients that misbehave below the protocol library)

/// A WebSocket handshake over raw TCP; reads exactly the 101 response head, nothing more.
pub async fn raw_ws(addr: SocketAddr, token: &str, recv_buffer: Option<u32>) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut tcp = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut byte))
            .await
            .expect("101 response timed out")
            .expect("read 101 response");
        assert_eq!(n, 1, "connection closed during the handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    tcp
}

/// Server frames (unmasked) in `bytes`: (opcode, payload) of each complete one.
pub fn parse_server_frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= bytes.len() {
        let opcode = bytes[i] & 0x0f;
        let mut len = (bytes[i + 1] & 0x7f) as usize;
        let mut at = i + 2;
        if len == 126 {
            if at + 2 > bytes.len() {
                break;
            }
            len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
            at += 2;
        } else if len == 127 {
            if at + 8 > bytes.len() {
                break;
            }
            len = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            at += 8;
        }
        if at + len > bytes.len() {
            break;
        }
        out.push((opcode, bytes[at..at + len].to_vec()));
        i = at + len;
    }
    out
}
