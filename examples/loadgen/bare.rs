//! The bare stack: what this machine can do with warp, a JWT check and tokio's broadcast
//! channel, and nothing of chatserver. `loadgen bare-server` runs it as its own process (as
//! chatserver is), answering just enough of the public API for `http-send` and `fanout` to run
//! unchanged against it: sign-up and login (no password hashing), groups (kept in memory),
//! `POST /v1/messages/group/{id}` (token checked, body parsed, a message with a new id
//! serialised and answered: no database) and the socket (`ready`, then every `send` gets an id,
//! is serialised once and broadcast to the group's sockets, and is acknowledged). Its figures
//! are the ceilings the real server's are divided by.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use warp::http::StatusCode;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection, Reply};

/// The real server's conversation buffer.
const BUFFER: usize = 256;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Default)]
struct Directory {
    users: HashMap<String, u64>,
    /// Each user's groups.
    member_of: HashMap<u64, Vec<u64>>,
    /// Each group's channel; its lock makes "next id, then send" one step, so ids reach the
    /// sockets in order (what the real server's single writer does).
    groups: HashMap<u64, Arc<Mutex<broadcast::Sender<Arc<str>>>>>,
}

struct Bare {
    keys: Keys,
    next_user: AtomicU64,
    next_group: AtomicU64,
    next_message: AtomicU64,
    dir: Mutex<Directory>,
}

/// A message as the real server sends it (the same fields, so frames are the same size).
#[derive(Serialize)]
struct Msg<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    id: u64,
    group_id: u64,
    sender_id: u64,
    sender_username: &'a str,
    content: &'a str,
    timestamp: &'a str,
    edited_at: Option<&'a str>,
    deleted: bool,
    client_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct Send {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    group_id: u64,
    #[serde(default)]
    content: String,
    client_id: Option<String>,
}

#[derive(Deserialize)]
struct Posted {
    content: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Bare {
    fn token(&self, user: u64) -> String {
        let iat = now();
        let claims = Claims {
            sub: user.to_string(),
            iat,
            exp: iat + 3600,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys.encoding)
            .expect("signing")
    }

    fn verify(&self, token: &str) -> Option<u64> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.keys.decoding, &self.keys.validation)
                .ok()?;
        data.claims.sub.parse().ok()
    }

    fn message(
        &self,
        group: u64,
        sender: u64,
        content: &str,
        client_id: Option<&str>,
    ) -> (u64, String) {
        let id = self.next_message.fetch_add(1, Ordering::Relaxed) + 1;
        let text = serde_json::to_string(&Msg {
            kind: Some("group_message"),
            id,
            group_id: group,
            sender_id: sender,
            sender_username: "bare",
            content,
            timestamp: "2026-12-02T00:00:00.000Z",
            edited_at: None,
            deleted: false,
            client_id,
        })
        .expect("serialising");
        (id, text)
    }
}

fn status(code: StatusCode, body: Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}

fn bearer() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .map(|h: Option<String>| h.and_then(|v| v.strip_prefix("Bearer ").map(str::to_string)))
}

/// Serves the bare stack on `addr` until killed.
pub async fn serve(addr: SocketAddr) {
    let secret = b"the bare stack's secret, for this process only";
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    let bare = Arc::new(Bare {
        keys: Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        },
        next_user: AtomicU64::new(0),
        next_group: AtomicU64::new(0),
        next_message: AtomicU64::new(0),
        dir: Mutex::new(Directory::default()),
    });
    let with = {
        let bare = bare.clone();
        warp::any().map(move || bare.clone())
    };
    let healthz = warp::path!("healthz").map(|| warp::reply::json(&json!({"status": "ok"})));
    let register = warp::path!("v1" / "users" / "register")
        .and(warp::post())
        .and(warp::body::json())
        .and(with.clone())
        .map(|v: Value, b: Arc<Bare>| {
            let id = b.next_user.fetch_add(1, Ordering::Relaxed) + 1;
            let name = v["username"].as_str().unwrap_or("").to_string();
            b.dir.lock().unwrap().users.insert(name, id);
            status(StatusCode::CREATED, json!({"id": id}))
        });
    let login = warp::path!("v1" / "users" / "login")
        .and(warp::post())
        .and(warp::body::json())
        .and(with.clone())
        .map(|v: Value, b: Arc<Bare>| {
            let found = b
                .dir
                .lock()
                .unwrap()
                .users
                .get(v["username"].as_str().unwrap_or(""))
                .copied();
            match found {
                Some(id) => status(StatusCode::OK, json!({"token": b.token(id)})),
                None => status(StatusCode::UNAUTHORIZED, json!({"error": "unknown user"})),
            }
        });
    let groups = warp::path!("v1" / "groups")
        .and(warp::post())
        .and(bearer())
        .and(warp::body::json())
        .and(with.clone())
        .map(|token: Option<String>, v: Value, b: Arc<Bare>| {
            let Some(owner) = token.and_then(|t| b.verify(&t)) else {
                return status(StatusCode::UNAUTHORIZED, json!({"error": "bad token"}));
            };
            let id = b.next_group.fetch_add(1, Ordering::Relaxed) + 1;
            let mut members: Vec<u64> = v["member_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            members.push(owner);
            let mut dir = b.dir.lock().unwrap();
            dir.groups
                .insert(id, Arc::new(Mutex::new(broadcast::channel(BUFFER).0)));
            for m in members {
                dir.member_of.entry(m).or_default().push(id);
            }
            status(StatusCode::CREATED, json!({"id": id}))
        });
    let post = warp::path!("v1" / "messages" / "group" / u64)
        .and(warp::post())
        .and(bearer())
        .and(warp::body::json())
        .and(with.clone())
        .map(
            |group: u64, token: Option<String>, p: Posted, b: Arc<Bare>| {
                let Some(user) = token.and_then(|t| b.verify(&t)) else {
                    return status(StatusCode::UNAUTHORIZED, json!({"error": "bad token"}));
                };
                let (_, text) = b.message(group, user, &p.content, None);
                warp::reply::with_status(
                    warp::reply::with_header(text, "content-type", "application/json"),
                    StatusCode::CREATED,
                )
                .into_response()
            },
        );
    let ws = warp::path!("ws")
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::ws())
        .and(with)
        .map(|q: HashMap<String, String>, ws: Ws, b: Arc<Bare>| {
            let Some(user) = q.get("token").and_then(|t| b.verify(t)) else {
                return status(StatusCode::UNAUTHORIZED, json!({"error": "bad token"}));
            };
            ws.on_upgrade(move |socket| session(b, user, socket))
                .into_response()
        });
    let routes = healthz.or(register).or(login).or(groups).or(post).or(ws);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| crate::fail(&format!("bare server: binding {addr}: {e}")));
    warp::serve(routes).incoming(listener).run().await;
}

/// One socket: `ready`, then the group's broadcasts (everything already queued written with
/// one flush) and the client's sends.
async fn session(b: Arc<Bare>, user: u64, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let (groups, senders): (Vec<u64>, Vec<_>) = {
        let dir = b.dir.lock().unwrap();
        let groups = dir.member_of.get(&user).cloned().unwrap_or_default();
        let senders = groups
            .iter()
            .filter_map(|g| dir.groups.get(g).cloned())
            .collect();
        (groups, senders)
    };
    let mut feeds = futures_util::stream::select_all(
        senders
            .iter()
            .map(|s| tokio_stream::wrappers::BroadcastStream::new(s.lock().unwrap().subscribe())),
    );
    if tx.send(Message::text(r#"{"type":"ready"}"#)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.next() => {
                let Some(Ok(frame)) = frame else { return };
                let Ok(text) = frame.to_str() else { continue };
                let Ok(send) = serde_json::from_str::<Send>(text) else { continue };
                if send.kind != "send" {
                    continue;
                }
                let Some(i) = groups.iter().position(|g| *g == send.group_id) else { continue };
                let client_id = send.client_id.as_deref();
                let id = {
                    let channel = senders[i].lock().unwrap();
                    let (id, text) = b.message(send.group_id, user, &send.content, client_id);
                    let _ = channel.send(Arc::from(text));
                    id
                };
                let ack = json!({"type": "ack", "client_id": client_id, "id": id, "group_id": send.group_id});
                if tx.send(Message::text(ack.to_string())).await.is_err() {
                    return;
                }
            }
            Some(first) = feeds.next() => {
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    if let Ok(text) = item {
                        if tx.feed(Message::text(&*text)).await.is_err() {
                            return;
                        }
                    }
                    next = feeds.next().now_or_never().flatten();
                }
                if tx.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}
