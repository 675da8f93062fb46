//! The HTTP client: one helper per step of the README walkthrough.

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{json, Value};

use super::*;

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

    /// The same server, reached from another loopback source address (`127.0.0.2`, …): for
    /// the rules that count per address.
    pub fn via(&self, source: &str) -> Api {
        let ip: std::net::IpAddr = source.parse().expect("a source address");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .local_address(ip)
            .build()
            .expect("build reqwest client");
        Api {
            base: self.base.clone(),
            addr: self.addr,
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
fn parse_body(method: &Method, path: &str, status: u16, text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|e| {
        panic!("{method} {path} answered {status} with a body that is not JSON ({e}): {text:?}")
    })
}
