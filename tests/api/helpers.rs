//! Shared set-up for the integration tests: an in-process server on port 0 with its own temporary
//! database, the real binary for restart / signal / CLI tests, and small HTTP and WebSocket clients.
//!
//! Every wait has a timeout; a timeout is a failure, never a way to synchronise.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chatserver::config::Config;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// How long any single expected event may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The seeded users' password (see seed/ and API.md "Out of the box").
pub const SEED_PASSWORD: &str = "password";
/// Password used for users the tests register.
pub const PASSWORD: &str = "correct horse battery";
pub const GENERAL: i64 = 1;

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

/// A JSON client bound to one server address.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: i64,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

impl Session {
    pub fn auth(&self) -> Option<&str> {
        Some(&self.token)
    }
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .expect("build reqwest client");
        Api {
            base: format!("http://{addr}"),
            addr,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional raw body and returns (status, body text).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, String) {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading body failed: {e}"));
        (status, text)
    }

    /// Sends a request; the response body must be JSON (or empty, returned as `Value::Null`).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let (status, text) = self.raw(method.clone(), path, token, bytes).await;
        (status, parse_body(&method, path, status, &text))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(Method::GET, path, token, None).await
    }
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(Method::POST, path, token, None).await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.request(Method::PATCH, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.request(Method::PUT, path, token, Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(Method::DELETE, path, token, None).await
    }

    // --- the README walkthrough, one helper per step ---

    /// `POST /v1/users/register`, which must answer 201; returns the own-profile body.
    pub async fn register(&self, username: &str, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post_json(
                "/v1/users/register",
                None,
                &json!({"username": username, "email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "register {username}: {body}");
        body
    }

    /// `POST /v1/users/login` by username, which must answer 200; returns (token, refresh, user_id).
    pub async fn login(&self, username: &str, password: &str) -> (String, String, i64) {
        let (status, body) = self
            .post_json(
                "/v1/users/login",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        let token = body["token"].as_str().expect("login: token").to_string();
        let refresh = body["refresh_token"]
            .as_str()
            .expect("login: refresh_token")
            .to_string();
        let id = body["user"]["id"].as_i64().expect("login: user.id");
        (token, refresh, id)
    }

    pub async fn session(&self, username: &str, password: &str) -> Session {
        let (token, refresh, id) = self.login(username, password).await;
        Session {
            id,
            username: username.to_string(),
            token,
            refresh,
        }
    }

    pub async fn ava(&self) -> Session {
        self.session("Ava", SEED_PASSWORD).await
    }
    pub async fn mike(&self) -> Session {
        self.session("Mike", SEED_PASSWORD).await
    }

    /// Registers `username` (email `<username>@example.test`, password [`PASSWORD`]) and logs in.
    pub async fn new_user(&self, username: &str) -> Session {
        self.register(
            username,
            &format!("{}@example.test", username.to_lowercase()),
            PASSWORD,
        )
        .await;
        self.session(username, PASSWORD).await
    }

    /// `POST /v1/groups`, which must answer 201; returns the group id.
    pub async fn create_group(&self, owner: &Session, name: &str, member_ids: &[i64]) -> i64 {
        let (status, body) = self
            .post_json(
                "/v1/groups",
                owner.auth(),
                &json!({"name": name, "member_ids": member_ids}),
            )
            .await;
        assert_eq!(status, 201, "create group {name}: {body}");
        body["id"].as_i64().expect("group id")
    }

    /// `POST /v1/groups/{id}/members`, which must answer 201.
    pub async fn add_member(&self, by: &Session, group: i64, user: i64, role: Option<&str>) {
        let mut body = json!({"user_id": user});
        if let Some(r) = role {
            body["role"] = json!(r);
        }
        let (status, resp) = self
            .post_json(&format!("/v1/groups/{group}/members"), by.auth(), &body)
            .await;
        assert_eq!(status, 201, "add member {user} to {group}: {resp}");
    }

    /// `POST /v1/messages/group/{id}`, which must answer 201; returns the message.
    pub async fn send(&self, by: &Session, group: i64, content: &str) -> Value {
        let (status, body) = self
            .post_json(
                &format!("/v1/messages/group/{group}"),
                by.auth(),
                &json!({"content": content}),
            )
            .await;
        assert_eq!(status, 201, "send to {group}: {body}");
        body
    }

    /// `GET /v1/messages/group/{id}?{query}`, which must answer 200; returns (messages, has_more).
    pub async fn history(&self, by: &Session, group: i64, query: &str) -> (Vec<Value>, bool) {
        let (status, body) = self
            .get(&format!("/v1/messages/group/{group}?{query}"), by.auth())
            .await;
        assert_eq!(status, 200, "history of {group} ?{query}: {body}");
        let messages = body["messages"]
            .as_array()
            .expect("history: messages array")
            .clone();
        let has_more = body["has_more"].as_bool().expect("history: has_more bool");
        (messages, has_more)
    }

    /// Every message of a group, walking `before=` pages, ascending.
    pub async fn full_history(&self, by: &Session, group: i64) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        let mut query = "limit=200".to_string();
        loop {
            let (page, has_more) = self.history(by, group, &query).await;
            let first = page.first().map(|m| m["id"].as_i64().unwrap());
            let mut page = page;
            page.extend(all);
            all = page;
            match (has_more, first) {
                (true, Some(first)) => query = format!("limit=200&before={first}"),
                _ => return all,
            }
        }
    }

    pub async fn ws_connect(&self, token: &str, since: Option<i64>) -> Ws {
        Ws::connect(self.addr, token, since).await
    }

    /// A socket of `who` whose `ready` frame has been read: registered with the server.
    pub async fn ws_ready(&self, who: &Session) -> Ws {
        let mut ws = self.ws_connect(&who.token, None).await;
        let ready = ws.expect_type("ready").await;
        assert_eq!(
            ready["user_id"], who.id,
            "ready of {}: {ready}",
            who.username
        );
        ws
    }

    // --- direct conversations, edits, read markers, search (issue 3) ---

    /// `POST /v1/direct/{peer}`.
    pub async fn direct(&self, by: &Session, peer: i64) -> (u16, Value) {
        self.post_empty(&format!("/v1/direct/{peer}"), by.auth())
            .await
    }

    /// `POST /v1/direct/{peer}`, which must answer 200 or 201; returns the conversation id.
    pub async fn direct_id(&self, by: &Session, peer: i64) -> i64 {
        let (status, body) = self.direct(by, peer).await;
        assert!(
            status == 200 || status == 201,
            "direct {} -> {peer}: {status} {body}",
            by.username
        );
        body["id"].as_i64().expect("direct conversation id")
    }

    /// `POST /v1/messages/direct/{peer}`, which must answer 201; returns the message.
    pub async fn send_direct(&self, by: &Session, peer: i64, content: &str) -> Value {
        let (status, body) = self
            .post_json(
                &format!("/v1/messages/direct/{peer}"),
                by.auth(),
                &json!({"content": content}),
            )
            .await;
        assert_eq!(status, 201, "send direct {} -> {peer}: {body}", by.username);
        body
    }

    /// `GET /v1/messages/direct/{peer}?{query}`, which must answer 200; returns (messages, has_more).
    pub async fn direct_history(&self, by: &Session, peer: i64, query: &str) -> (Vec<Value>, bool) {
        let (status, body) = self
            .get(&format!("/v1/messages/direct/{peer}?{query}"), by.auth())
            .await;
        assert_eq!(status, 200, "direct history with {peer} ?{query}: {body}");
        let messages = body["messages"]
            .as_array()
            .expect("direct history: messages array")
            .clone();
        let has_more = body["has_more"]
            .as_bool()
            .expect("direct history: has_more bool");
        (messages, has_more)
    }

    /// `PATCH /v1/messages/{id}` with `{content}`.
    pub async fn edit(&self, by: &Session, message: i64, content: &str) -> (u16, Value) {
        self.patch(
            &format!("/v1/messages/{message}"),
            by.auth(),
            &json!({"content": content}),
        )
        .await
    }

    /// `DELETE /v1/messages/{id}`.
    pub async fn delete_message(&self, by: &Session, message: i64) -> (u16, Value) {
        self.delete(&format!("/v1/messages/{message}"), by.auth())
            .await
    }

    /// `POST /v1/groups/{id}/read` with `{message_id}`.
    pub async fn mark_read(&self, by: &Session, group: i64, message: i64) -> (u16, Value) {
        self.post_json(
            &format!("/v1/groups/{group}/read"),
            by.auth(),
            &json!({"message_id": message}),
        )
        .await
    }

    /// `GET /v1/groups`, which must answer 200 with an array.
    pub async fn conversations(&self, by: &Session) -> Vec<Value> {
        let (status, body) = self.get("/v1/groups", by.auth()).await;
        assert_eq!(status, 200, "list conversations of {}: {body}", by.username);
        body.as_array().expect("GET /v1/groups: array").clone()
    }

    /// The entry for `group` in `GET /v1/groups` (which must be there).
    pub async fn conversation(&self, by: &Session, group: i64) -> Value {
        self.conversations(by)
            .await
            .into_iter()
            .find(|g| g["id"] == group)
            .unwrap_or_else(|| panic!("{} does not list conversation {group}", by.username))
    }

    /// `GET /v1/messages/search?{query}` (the caller percent-encodes; see [`enc`]).
    pub async fn search(&self, by: &Session, query: &str) -> (u16, Value) {
        self.get(&format!("/v1/messages/search?{query}"), by.auth())
            .await
    }

    /// Searches for `q` (encoded here), which must answer 200; returns the ids found, in order.
    pub async fn search_ids(&self, by: &Session, q: &str) -> Vec<i64> {
        let (status, body) = self.search(by, &format!("q={}", enc(q))).await;
        assert_eq!(status, 200, "search {q:?}: {body}");
        let messages = body["messages"].as_array().expect("search: messages array");
        for m in messages {
            assert_message_shape(m);
        }
        ids(messages)
    }
}

/// Percent-encodes `s` for a query string (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fails if `v` has an `email` key anywhere or contains any of `emails` as text.
#[track_caller]
pub fn assert_no_email(v: &Value, emails: &[&str], what: &str) {
    fn walk(v: &Value, what: &str) {
        match v {
            Value::Object(map) => {
                assert!(!map.contains_key("email"), "{what} leaks an email: {v}");
                map.values().for_each(|x| walk(x, what));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, what)),
            _ => {}
        }
    }
    walk(v, what);
    let text = v.to_string().to_lowercase();
    for e in emails {
        assert!(
            !text.contains(&e.to_lowercase()),
            "{what} contains the email {e}: {v}"
        );
    }
}

fn parse_body(method: &Method, path: &str, status: u16, text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|e| {
        panic!("{method} {path} answered {status} with a body that is not JSON ({e}): {text:?}")
    })
}

/// The contract's error shape: exactly `{"error": "<sentence>", "code": "<code>"}` with `status`.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (got_status, body) = got;
    assert_eq!(
        (*got_status, body["code"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got {got_status} {body}"
    );
    let obj = body.as_object().expect("error body is an object");
    let keys: HashSet<&str> = obj.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        HashSet::from(["error", "code"]),
        "error body has exactly error+code: {body}"
    );
    let sentence = body["error"].as_str().expect("error is a string");
    assert!(
        !sentence.trim().is_empty(),
        "error sentence is empty: {body}"
    );
    for leak in [
        "panicked",
        "SQLITE",
        "sqlite",
        "SELECT ",
        "INSERT ",
        "backtrace",
    ] {
        assert!(
            !sentence.contains(leak),
            "error leaks internals ({leak}): {body}"
        );
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-21T09:30:00.123Z`.
#[track_caller]
pub fn assert_timestamp(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let b = s.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "timestamp {s:?} is not RFC 3339 UTC with milliseconds"
    );
}

/// The fields of a message object, as the contract lists them.
pub const MESSAGE_FIELDS: [&str; 9] = [
    "id",
    "group_id",
    "sender_id",
    "sender_username",
    "content",
    "timestamp",
    "edited_at",
    "deleted",
    "client_id",
];

/// A message object as the contract describes it (HTTP body or the fields of `group_message`).
#[track_caller]
pub fn assert_message_shape(m: &Value) {
    for key in MESSAGE_FIELDS {
        assert!(m.get(key).is_some(), "message lacks `{key}`: {m}");
    }
    assert!(m["id"].is_i64(), "id is an integer: {m}");
    assert!(m["group_id"].is_i64(), "group_id is an integer: {m}");
    assert!(m["sender_id"].is_i64(), "sender_id is an integer: {m}");
    assert!(
        m["sender_username"].is_string(),
        "sender_username is a string: {m}"
    );
    assert!(m["content"].is_string(), "content is a string: {m}");
    assert!(m["deleted"].is_boolean(), "deleted is a bool: {m}");
    assert!(
        m["client_id"].is_string() || m["client_id"].is_null(),
        "client_id: {m}"
    );
    assert_timestamp(&m["timestamp"]);
}

pub fn ids(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["id"].as_i64().expect("message id"))
        .collect()
}

#[track_caller]
pub fn assert_strictly_ascending(ids: &[i64], what: &str) {
    for w in ids.windows(2) {
        assert!(
            w[0] < w[1],
            "{what}: ids not strictly ascending: {} then {}",
            w[0],
            w[1]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------------------------

/// The library server on 127.0.0.1:0 with a database in its own temporary directory.
pub struct TestServer {
    pub api: Api,
    /// Holds the temporary directory (and the database in it) until the server is dropped.
    _dir: tempfile::TempDir,
    pub db_path: PathBuf,
    tweak: fn(&mut Config),
    server: Option<chatserver::app::Server>,
}

impl Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

async fn boot(db_path: &Path, tweak: fn(&mut Config)) -> chatserver::app::Server {
    let mut cfg = Config::for_tests(db_path.to_path_buf());
    tweak(&mut cfg);
    tokio::time::timeout(TIMEOUT, chatserver::app::start(cfg))
        .await
        .expect("server start timed out")
        .expect("server failed to start")
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with `Config::for_tests` adjusted by `tweak` (kept for restarts).
    pub async fn start_with(tweak: fn(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("chat.db");
        let server = boot(&db_path, tweak).await;
        let api = Api::new(server.addr());
        TestServer {
            api,
            _dir: dir,
            db_path,
            tweak,
            server: Some(server),
        }
    }

    /// Graceful shutdown, then a new server on the same database file.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let server = boot(&self.db_path, self.tweak).await;
        self.api = Api::new(server.addr());
        self.server = Some(server);
    }

    pub async fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            tokio::time::timeout(TIMEOUT, server.shutdown())
                .await
                .expect("graceful shutdown timed out");
        }
    }

    /// Takes the server out, e.g. to shut it down from another task.
    /// The running server (its state, route table and addresses).
    pub fn server(&self) -> &chatserver::app::Server {
        self.server.as_ref().expect("server running")
    }

    pub fn take_server(&mut self) -> chatserver::app::Server {
        self.server.take().expect("server running")
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db_path).expect("open db file")
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------------------

pub type WsStream = WebSocketStream<TcpStream>;

pub struct Ws {
    pub stream: WsStream,
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
        Ws { stream }
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
        Ws { stream }
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

    /// The next JSON frame, including `presence` frames.
    pub async fn next_json_raw(&mut self) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Raw WebSocket connections (for clients that misbehave below the protocol library)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

pub const BIN: &str = env!("CARGO_BIN_EXE_chatserver");

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        // Cheap hashing for subcommands that hash (user add, seed) when they honour the variable.
        .env("CHATSERVER_BCRYPT_COST", "4");
    cmd
}

/// The result of a one-shot CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "expected success, got {self:#?}");
        self
    }

    /// Non-zero exit, exactly one line on stderr, no panic.
    #[track_caller]
    pub fn assert_one_line_failure(&self) -> &Self {
        assert!(!self.status.success(), "expected failure, got {self:#?}");
        assert!(
            self.status.code().is_some(),
            "killed by a signal: {self:#?}"
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr, got {:?}",
            self.stderr
        );
        assert!(!lines[0].trim().is_empty(), "the stderr line is empty");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "panic text on stderr: {:?}",
            self.stderr
        );
        self
    }
}

/// Runs `chatserver ARGS` with optional stdin, waiting at most 60 s.
pub fn run_cli_blocking(args: &[&str], stdin: Option<&str>) -> CliOutput {
    let mut child = command(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chatserver");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // The process may exit without reading; a broken pipe is then not our failure.
        let _ = pipe.write_all(input.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => {
            let out = out.expect("wait for chatserver");
            CliOutput {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("chatserver {args:?} did not exit within 60 s");
        }
    }
}

pub async fn cli(args: &[&str], stdin: Option<&str>) -> CliOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.map(|s| s.to_string());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        run_cli_blocking(&args, stdin.as_deref())
    })
    .await
    .expect("cli task")
}

/// `chatserver serve --addr 127.0.0.1:0 --db FILE --bcrypt-cost 4`, running until dropped.
pub struct ServerProcess {
    pub api: Api,
    pub pid: u32,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
}

impl Deref for ServerProcess {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ServerProcess {
    pub async fn spawn(db: &Path) -> Self {
        Self::spawn_with(db, &[]).await
    }

    pub async fn spawn_with(db: &Path, extra: &[&str]) -> Self {
        let db = db.to_str().expect("utf-8 path").to_string();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
            Self::spawn_blocking(&db, &extra)
        })
        .await
        .expect("spawn task")
    }

    fn spawn_blocking(db: &str, extra: &[&str]) -> Self {
        let mut args = vec![
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--db",
            db,
            "--bcrypt-cost",
            "4",
        ];
        args.extend_from_slice(extra);
        let mut child = command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatserver serve");
        let pid = child.id();

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let err_buf = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });

        let (tx, rx) = mpsc::channel::<String>();
        let out_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Keeps draining stdout after the address line so the server never blocks on it.
            for line in BufReader::new(out_pipe).lines() {
                match line {
                    Ok(l) => {
                        let _ = tx.send(l);
                    }
                    Err(_) => break,
                }
            }
        });

        let mut proc = ServerProcess {
            api: Api::new("127.0.0.1:1".parse().unwrap()),
            pid,
            child: Some(child),
            stderr,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr_text: String = rest
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '/')
                            .collect();
                        let addr: SocketAddr = addr_text.parse().unwrap_or_else(|e| {
                            panic!("cannot parse the address in {line:?}: {e}")
                        });
                        proc.api = Api::new(addr);
                        return proc;
                    }
                }
                Err(_) => {
                    let log = proc.stderr_text();
                    drop(proc);
                    panic!("no `listening on http://` line on stdout within 30 s; stderr:\n{log}");
                }
            }
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `kill -TERM pid`.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// SIGKILL (Child::kill on unix) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap killed server");
        }
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("process still owned");
        let pid = self.pid;
        let waiter = tokio::task::spawn_blocking(move || child.wait());
        match tokio::time::timeout(timeout, waiter).await {
            Ok(status) => status.expect("wait task").expect("wait"),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                panic!(
                    "server did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

pub fn integrity_check(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).expect("open db");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("integrity_check")
}

/// Waits until `n` values arrive on `rx`, failing after the timeout.
pub async fn recv_n<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let item = tokio::time::timeout(TIMEOUT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} items", out.len()))
            .expect("channel closed early");
        out.push(item);
    }
    out
}
