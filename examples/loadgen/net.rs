//! The client side: a minimal HTTP/1.1 keep-alive client, WebSocket connections, cheap frame
//! field extraction, account/group setup, and a windowed sender over a socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use memchr::memmem::Finder;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;
pub type Res<T> = Result<T, String>;

/// Every network wait is bounded by this, so a stuck server cannot hang the load generator.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The load generator is many clients: its connections come from 127.0.0.2–127.0.0.101 in
/// turn, since the server holds each address to a share of its connections
/// (`--max-connections-per-ip`).
static NEXT_SOURCE: AtomicU64 = AtomicU64::new(0);

/// A TCP connection to the server from the next client address (an IPv6 server: from ::1).
pub async fn tcp_connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    if addr.is_ipv6() {
        return TcpStream::connect(addr).await;
    }
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % 100;
    tcp_connect_from(addr, std::net::Ipv4Addr::new(127, 0, 0, 2 + n as u8)).await
}

/// A TCP connection from one given loopback address (the attacker in `class`).
pub async fn tcp_connect_from(
    addr: SocketAddr,
    source: std::net::Ipv4Addr,
) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    socket.connect(addr).await
}

/// A hand-written HTTP/1.1 keep-alive client. Why not reqwest: on 2 shared cores every
/// microsecond the client spends is taken from the server, and this does the minimum
/// (one write, one or two reads per request, no header map, no pool).
pub struct Http {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connect from this address rather than the next one in turn.
    source: Option<std::net::Ipv4Addr>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            conn: None,
            buf: Vec::with_capacity(16 * 1024),
            source: None,
        }
    }

    /// A client that always connects from `source`.
    pub fn from(addr: SocketAddr, source: std::net::Ipv4Addr) -> Http {
        Http {
            source: Some(source),
            ..Http::new(addr)
        }
    }

    /// Opens the connection now, so a timed loop does not pay for it.
    pub async fn connect(&mut self) -> Res<()> {
        let tcp = match self.source {
            Some(source) => tcp_connect_from(self.addr, source).await,
            None => tcp_connect(self.addr).await,
        }
        .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        self.conn = Some(tcp);
        self.buf.clear();
        Ok(())
    }

    /// One request; returns the status and the body. A kept-alive connection the server has
    /// closed meanwhile is reopened and the request sent once more (a POST lost with a dying
    /// connection could in principle be stored twice; only setup and http-send use this).
    pub async fn req(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Res<(u16, String)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body);
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            if !reused {
                self.connect().await?;
            }
            match tokio::time::timeout(IO_TIMEOUT, self.exchange(head.as_bytes())).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) if reused && attempt == 0 && e.starts_with("io") => self.conn = None,
                Ok(Err(e)) => return Err(format!("{method} {path}: {e}")),
                Err(_) => return Err(format!("{method} {path}: no answer in {IO_TIMEOUT:?}")),
            }
        }
        Err(format!("{method} {path}: connection keeps closing"))
    }

    async fn exchange(&mut self, request: &[u8]) -> Res<(u16, String)> {
        let conn = self.conn.as_mut().expect("connected");
        conn.write_all(request)
            .await
            .map_err(|e| format!("io: {e}"))?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            read_more(conn, &mut self.buf).await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| "non-UTF-8 head")?
            .to_ascii_lowercase();
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        if head.contains("transfer-encoding: chunked") {
            return Err("chunked responses are not supported by this client".into());
        }
        let len: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap_or(0))
            .unwrap_or(0);
        let close = head.contains("connection: close");
        while self.buf.len() < head_end + len {
            read_more(conn, &mut self.buf).await?;
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).into_owned();
        if close {
            self.conn = None;
        }
        Ok((status, body))
    }

    /// A request that must answer `want`; returns the body as JSON (Null when empty).
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> Res<Value> {
        let body = body.map(|b| b.to_string());
        let (status, text) = self.req(method, path, token, body.as_deref()).await?;
        if status != want {
            return Err(format!(
                "{method} {path}: expected {want}, got {status}: {text}"
            ));
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?
        })
    }
}

/// Reads into `buf`'s spare room: a zeroed 16 KiB chunk per read was 3 % of the client's
/// CPU under `http-send` (perf), where the client shares the cores with what it measures.
async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Res<()> {
    buf.reserve(16 * 1024);
    let n = conn.read_buf(buf).await.map_err(|e| format!("io: {e}"))?;
    if n == 0 {
        return Err("io: connection closed".into());
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Opens a socket as the token's user (the handshake only: with `since`, the replay and then
/// `ready` follow, for the caller to read).
pub async fn ws_open(addr: SocketAddr, token: &str, since: Option<u64>) -> Res<Ws> {
    let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
    let request = format!("ws://{addr}/ws?token={token}{since}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    // A small read buffer: 10,000 client sockets at tungstenite's default 128 KiB each
    // would be 1.3 GB in the load generator itself.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let open = async {
        let tcp = tcp_connect(addr)
            .await
            .map_err(|e| format!("ws connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .map_err(|e| format!("ws handshake: {e}"))?;
        Ok(ws)
    };
    tokio::time::timeout(IO_TIMEOUT, open)
        .await
        .map_err(|_| "ws: no handshake in time".to_string())?
}

/// Opens a socket and reads until `ready` (without `since`, nothing comes before it).
pub async fn ws_connect(addr: SocketAddr, token: &str) -> Res<Ws> {
    let mut ws = ws_open(addr, token, None).await?;
    let ready = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if frame_type(&t) == "ready" => return Ok(()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("ws before ready: {e}")),
                None => return Err("ws closed before ready".into()),
            }
        }
    };
    tokio::time::timeout(IO_TIMEOUT, ready)
        .await
        .map_err(|_| "ws: no ready in time".to_string())??;
    Ok(ws)
}

/// A key searched for in every frame, its searcher built once: `str::find` with a `&str`
/// builds a two-way searcher on each call, which with `format!` for the pattern was a tenth
/// of the load generator's CPU in `fanout` (perf, 720 messages/s to 1000 sockets).
pub struct Key(LazyLock<Finder<'static>>);

impl Key {
    /// The text right after the key, if the frame has it.
    fn after<'a>(&self, s: &'a str) -> Option<&'a str> {
        let needle = self.0.needle().len();
        // Every key ends with an ASCII byte, so the index after it is a char boundary.
        self.0.find(s.as_bytes()).map(|i| &s[i + needle..])
    }
}

pub static TYPE: Key = Key(LazyLock::new(|| Finder::new("\"type\":\"")));
/// Matching on `"id":` with its quotes means it does not match `"sender_id":`, and quotes
/// inside string values are escaped, so they cannot match.
pub static ID: Key = Key(LazyLock::new(|| Finder::new("\"id\":")));
pub static GROUP_ID: Key = Key(LazyLock::new(|| Finder::new("\"group_id\":")));
/// The load generator's messages say `t=<unix nanos at send>`.
pub static SENT_AT: Key = Key(LazyLock::new(|| Finder::new("\"content\":\"t=")));

/// The `type` of a server frame, found without parsing the JSON: the hot path reads hundreds
/// of thousands of frames a second on a CPU it shares with the server.
pub fn frame_type(s: &str) -> &str {
    TYPE.after(s)
        .and_then(|r| memchr::memchr(b'"', r.as_bytes()).map(|j| &r[..j]))
        .unwrap_or("")
}

/// The digits right after a key (a numeric field, or the content's `t=`).
pub fn field_u64(s: &str, key: &Key) -> Option<u64> {
    let rest = key.after(s)?;
    let end = rest
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Registers `n` fresh users named `<prefix>_<i>` and logs each in; returns (id, token) pairs.
/// Needs a server started with a low `--bcrypt-cost` (4) to take seconds rather than minutes.
pub async fn register_users(addr: SocketAddr, prefix: &str, n: usize) -> Res<Vec<(u64, String)>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16.min(n) {
        let (next, prefix) = (next.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut http = Http::new(addr);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, String>(out);
                }
                let name = format!("{prefix}_{i}");
                let pw = "loadgen-password";
                let user = json!({"username": name, "email": format!("{name}@loadgen.test"), "password": pw});
                let u = http.json("POST", "/v1/users/register", None, Some(user), 201).await?;
                let login = json!({"username": name, "password": pw});
                let t = http.json("POST", "/v1/users/login", None, Some(login), 200).await?;
                out.push((i, u["id"].as_u64().ok_or("no id")?, t["token"].as_str().ok_or("no token")?.to_string()));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    all.sort_by_key(|u| u.0);
    Ok(all.into_iter().map(|(_, id, tok)| (id, tok)).collect())
}

pub async fn login(addr: SocketAddr, username: &str, password: &str) -> Res<String> {
    let body = json!({"username": username, "password": password});
    let v = Http::new(addr)
        .json("POST", "/v1/users/login", None, Some(body), 200)
        .await?;
    Ok(v["token"].as_str().ok_or("login: no token")?.to_string())
}

pub async fn create_group(addr: SocketAddr, token: &str, name: &str, members: &[u64]) -> Res<u64> {
    let body = json!({"name": name, "member_ids": members});
    let v = Http::new(addr)
        .json("POST", "/v1/groups", Some(token), Some(body), 201)
        .await?;
    v["id"].as_u64().ok_or_else(|| "create group: no id".into())
}

/// A shared limit on messages sent but not yet delivered to every receiver (fan-out). Without
/// it senders outrun the sockets, the backlog grows for the whole run and "latency" measures
/// only the run's length; with it the run shows throughput at a bounded queue.
pub struct Gate {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    /// Receivers still open: each message is owed to each of them.
    pub receivers: AtomicU64,
    pub limit: u64,
    pub notify: Notify,
}

impl Gate {
    pub fn new(receivers: u64, window: u64) -> Gate {
        Gate {
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            receivers: AtomicU64::new(receivers),
            limit: window * receivers,
            notify: Notify::new(),
        }
    }
    fn open(&self) -> bool {
        let owed = self.sent.load(Ordering::Acquire) * self.receivers.load(Ordering::Acquire);
        owed < self.limit + self.delivered.load(Ordering::Acquire)
    }
    /// Called by receivers; cheap when nobody waits (notify_waiters only wakes registered waiters).
    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}

/// What one sender's socket should send.
pub struct Plan {
    pub group_id: u64,
    pub deadline: Instant,
    /// Messages left for all senders together; each send takes one.
    pub budget: Arc<AtomicI64>,
    /// Unacknowledged sends on this socket (the server refuses more than 64).
    pub in_flight: usize,
    pub gate: Option<Arc<Gate>>,
    /// Messages per second for this sender (open loop), or as fast as acks and the gate allow.
    pub rate: Option<f64>,
    pub tag: String,
}

#[derive(Default)]
pub struct Sent {
    pub acked: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub unanswered: u64,
}

/// Sends `{"type":"send"}` frames with `t=<unix nanos>` as content until the deadline or the
/// budget runs out, then waits (bounded) for every answer. Returns the acknowledged ids.
pub async fn ws_send(ws: Ws, plan: Plan) -> Sent {
    let (mut tx, mut rx) = ws.split();
    let permits = Arc::new(Semaphore::new(plan.in_flight));
    let result = Arc::new(std::sync::Mutex::new(Sent::default()));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let (permits, result, gate) = (permits.clone(), result.clone(), plan.gate.clone());
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    f = rx.next() => f,
                    _ = &mut stop_rx => return,
                };
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return,
                };
                match frame_type(&text) {
                    "ack" => {
                        let id = field_u64(&text, &ID).unwrap_or(0);
                        result.lock().unwrap().acked.push(id);
                        permits.add_permits(1);
                    }
                    "error" => {
                        let mut r = result.lock().unwrap();
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| text.to_string());
                        if let Some(g) = &gate {
                            g.sent.fetch_sub(1, Ordering::AcqRel); // it will never be delivered
                        }
                        permits.add_permits(1);
                    }
                    _ => {} // our own group_message copies, presence, ...
                }
            }
        })
    };
    let start = Instant::now();
    let mut seq = 0u64;
    'send: while Instant::now() < plan.deadline && plan.budget.fetch_sub(1, Ordering::AcqRel) > 0 {
        // Open loop: message n leaves at start + n/rate, and a late sender catches up, so the
        // timer's millisecond granularity does not lower the rate.
        if let Some(rate) = plan.rate {
            let due = start + Duration::from_secs_f64(seq as f64 / rate.max(0.001));
            tokio::time::sleep_until(due.min(plan.deadline).into()).await;
        }
        let Ok(Ok(p)) = tokio::time::timeout_at(plan.deadline.into(), permits.acquire()).await
        else {
            break;
        };
        p.forget();
        if let Some(g) = &plan.gate {
            while !g.open() {
                let wait = g.notify.notified();
                if g.open() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(2), wait).await;
                if Instant::now() >= plan.deadline {
                    permits.add_permits(1);
                    break 'send;
                }
            }
            g.sent.fetch_add(1, Ordering::AcqRel);
        }
        seq += 1;
        let frame = format!(
            r#"{{"type":"send","group_id":{},"content":"t={}","client_id":"{}-{seq}"}}"#,
            plan.group_id,
            unix_nanos(),
            plan.tag
        );
        if tx.send(Message::text(frame)).await.is_err() {
            break;
        }
    }
    // Every send is answered (ack or error) before we stop reading; bounded.
    let answered =
        tokio::time::timeout(IO_TIMEOUT, permits.acquire_many(plan.in_flight as u32)).await;
    let _ = stop_tx.send(());
    let _ = reader.await;
    let _ = tx.close().await;
    let mut r = std::mem::take(&mut *result.lock().unwrap());
    if answered.is_err() {
        r.unanswered = (plan.in_flight - permits.available_permits()) as u64;
    }
    r
}

/// Fills a group with `n` messages over `sockets` sockets of one user (WebSocket sends are the
/// cheapest way in through the public API). Returns the ids and the rate achieved.
pub async fn fill_group(
    addr: SocketAddr,
    token: &str,
    group_id: u64,
    n: u64,
    sockets: usize,
) -> Res<(Vec<u64>, f64)> {
    let budget = Arc::new(AtomicI64::new(n as i64));
    let deadline = Instant::now() + Duration::from_secs(3600);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..sockets {
        let ws = ws_connect(addr, token).await?;
        let plan = Plan {
            group_id,
            deadline,
            budget: budget.clone(),
            in_flight: 48,
            gate: None,
            rate: None,
            tag: format!("fill{k}"),
        };
        tasks.push(tokio::spawn(ws_send(ws, plan)));
    }
    let mut ids = Vec::with_capacity(n as usize);
    for t in tasks {
        let s = t.await.map_err(|e| e.to_string())?;
        if s.errors > 0 || s.unanswered > 0 {
            return Err(format!(
                "fill: {} errors, {} unanswered, first: {:?}",
                s.errors, s.unanswered, s.first_error
            ));
        }
        ids.extend(s.acked);
    }
    ids.sort_unstable();
    Ok((ids, n as f64 / start.elapsed().as_secs_f64()))
}
