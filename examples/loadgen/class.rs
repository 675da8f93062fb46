//! `class`: 30 students chat in one group, each on a socket sending a message a second, while
//! one of them (from one address, 127.0.0.250) attacks: connections that trickle their headers
//! (slowloris), a flood of idle connections, long searches four at a time, and groups made to
//! put the whole class in. Measured: the class's send→delivery latency, `/healthz` latency from
//! another address, and the server's RSS before, during (the highest) and after the attack.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::net::{self, frame_type, tcp_connect_from, unix_nanos, Http, Res};
use crate::{percentile, pid_listening_on, report, rss_kb, Metric, Opts};

const STUDENTS: usize = 30;
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 250);

/// What the attacker's tools saw.
#[derive(Default)]
struct Attack {
    slowloris_cut: AtomicU64,
    flood_opened: AtomicU64,
    flood_held_max: AtomicU64,
    searches: Mutex<[u64; 4]>, // 200, 429, 503, other
    groups_made: AtomicU64,
    spam_refused: AtomicU64,
}

pub async fn run(o: &Opts, addr: SocketAddr) -> Res<bool> {
    let pid = o
        .pid
        .or_else(|| pid_listening_on(addr.port()))
        .ok_or("cannot find the server's pid (pass --pid)")?;
    let seconds = o.seconds.unwrap_or(20.0);
    let prefix = format!("lg{:08x}", (unix_nanos() / 1000) as u32);
    println!("setup: {STUDENTS} students in one group, a socket each");
    let students = net::register_users(addr, &prefix, STUDENTS).await?;
    let ids: Vec<u64> = students[1..].iter().map(|s| s.0).collect();
    let group = net::create_group(addr, &students[0].1, "lg-class", &ids).await?;
    let names = [
        ("class p50", "ms"),
        ("class p99", "ms"),
        ("healthz p50", "ms"),
        ("healthz p99", "ms"),
        ("RSS before", "MB"),
        ("RSS during (max)", "MB"),
        ("RSS after", "MB"),
        ("RSS after − before", "MB"),
    ];
    let mut m = names.map(Metric::new);
    let mut notes = Vec::new();
    for run in 0..o.runs {
        let (attacker_id, attacker) = net::register_users(addr, &format!("{prefix}x{run}"), 1)
            .await?
            .remove(0);
        let add = json!({"user_id": attacker_id});
        Http::new(addr)
            .json(
                "POST",
                &format!("/v1/groups/{group}/members"),
                Some(&students[0].1),
                Some(add),
                201,
            )
            .await?;
        // The class chats for a few seconds first: "before" is the server with the class on it.
        let warm = Duration::from_secs(3);
        let start = Instant::now() + warm;
        let deadline = start + Duration::from_secs_f64(seconds);
        let attack = Arc::new(Attack::default());
        let class = tokio::spawn(class(addr, students.clone(), group, start, deadline));
        tokio::time::sleep(warm).await;
        let before = rss_kb(pid).unwrap_or(0) as f64 / 1024.0;
        let health = tokio::spawn(healthz(addr, deadline));
        let peak = tokio::spawn(peak_rss(pid, deadline));
        let victims: Vec<u64> = students.iter().map(|s| s.0).collect();
        let attacking = tokio::spawn(attack_all(
            addr,
            attacker,
            victims,
            deadline,
            Arc::clone(&attack),
        ));
        let mut lat = class.await.map_err(|e| e.to_string())??;
        let mut hz = health.await.map_err(|e| e.to_string())??;
        let during = peak.await.map_err(|e| e.to_string())? as f64 / 1024.0;
        attacking.await.map_err(|e| e.to_string())?;
        // Whatever the attack left (connections, channels) has had time to go.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = rss_kb(pid).unwrap_or(0) as f64 / 1024.0;
        let s = attack.searches.lock().unwrap();
        let line = format!(
            "run {run}: {} deliveries; attack: {} slowloris cut, {} flood opened (held at most {}), \
             searches 200/429/503/other {:?}, {} groups made, {} refused",
            lat.len(),
            attack.slowloris_cut.load(Ordering::Relaxed),
            attack.flood_opened.load(Ordering::Relaxed),
            attack.flood_held_max.load(Ordering::Relaxed),
            *s,
            attack.groups_made.load(Ordering::Relaxed),
            attack.spam_refused.load(Ordering::Relaxed),
        );
        println!("{line}");
        notes.push(line);
        Metric::record(
            &mut m,
            &[
                percentile(&mut lat, 0.5),
                percentile(&mut lat, 0.99),
                percentile(&mut hz, 0.5),
                percentile(&mut hz, 0.99),
                before,
                during,
                after,
                after - before,
            ],
        );
    }
    let params = json!({"students": STUDENTS, "seconds": seconds, "runs": o.runs});
    report("class", params, &m, &notes);
    Ok(true)
}

/// Each student sends a message a second over their socket (stamped with the time) and every
/// socket reads the class's messages; returns the latency in ms of each delivery of a message
/// sent after `from` (once the attack has begun).
async fn class(
    addr: SocketAddr,
    students: Vec<(u64, String)>,
    group: u64,
    from: Instant,
    deadline: Instant,
) -> Res<Vec<f64>> {
    let from_nanos =
        unix_nanos() + from.saturating_duration_since(Instant::now()).as_nanos() as u64;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, (_, token)) in students.into_iter().enumerate() {
        let ws = net::ws_connect(addr, &token).await?;
        let latencies = Arc::clone(&latencies);
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let send = async {
                tokio::time::sleep(Duration::from_millis(33 * i as u64)).await;
                let mut every = tokio::time::interval(Duration::from_secs(1));
                let mut n = 0u64;
                while Instant::now() < deadline {
                    every.tick().await;
                    n += 1;
                    // Unique per run too: a client_id used before would only be acknowledged.
                    let now = unix_nanos();
                    let frame = json!({"type": "send", "group_id": group,
                        "content": format!("lg {now}"), "client_id": format!("c{i}-{n}-{now}")});
                    if sink
                        .send(Message::Text(frame.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            };
            let receive = async {
                let until = tokio::time::Instant::from_std(deadline + Duration::from_secs(2));
                while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, stream.next()).await
                {
                    let Message::Text(text) = frame else { continue };
                    if frame_type(&text) != "group_message" {
                        continue;
                    }
                    if let Some(sent) = stamp(&text).filter(|&t| t >= from_nanos) {
                        let ms = unix_nanos().saturating_sub(sent) as f64 / 1e6;
                        latencies.lock().unwrap().push(ms);
                    }
                }
            };
            tokio::join!(send, receive);
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let out = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(out)
}

/// The send time in a class message's content (`"content":"lg <nanos>"`).
fn stamp(text: &str) -> Option<u64> {
    let rest = &text[text.find("\"content\":\"lg ")? + 14..];
    rest[..rest.find('"')?].parse().ok()
}

/// `/healthz` every 20 ms from an address of its own; latencies in ms.
async fn healthz(addr: SocketAddr, deadline: Instant) -> Res<Vec<f64>> {
    let mut http = Http::from(addr, Ipv4Addr::new(127, 0, 0, 240));
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let (status, _) = http.req("GET", "/healthz", None, None).await?;
        if status != 200 {
            return Err(format!("/healthz answered {status} during the attack"));
        }
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(out)
}

async fn peak_rss(pid: u32, deadline: Instant) -> u64 {
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(rss_kb(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    peak
}

async fn attack_all(
    addr: SocketAddr,
    token: String,
    victims: Vec<u64>,
    deadline: Instant,
    seen: Arc<Attack>,
) {
    let mut tools = Vec::new();
    for _ in 0..100 {
        tools.push(tokio::spawn(slowloris(addr, deadline, Arc::clone(&seen))));
    }
    tools.push(tokio::spawn(flood(addr, deadline, Arc::clone(&seen))));
    for _ in 0..4 {
        tools.push(tokio::spawn(search(
            addr,
            token.clone(),
            deadline,
            Arc::clone(&seen),
        )));
    }
    tools.push(tokio::spawn(spam(addr, token, victims, deadline, seen)));
    for t in tools {
        let _ = t.await;
    }
}

/// Headers a line at a time, never finished; when the server cuts the connection, again.
async fn slowloris(addr: SocketAddr, deadline: Instant, seen: Arc<Attack>) {
    while Instant::now() < deadline {
        let Ok(mut tcp) = tcp_connect_from(addr, ATTACKER).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
        while Instant::now() < deadline {
            if tcp.write_all(&line).await.is_err() {
                break;
            }
            line = b"X-Slow: still coming\r\n".to_vec();
            let mut buf = [0u8; 256];
            let waited = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
            if let Ok(Ok(0) | Err(_)) = waited {
                break;
            }
        }
        seen.slowloris_cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// As many idle connections as the server lets one address hold, kept up.
async fn flood(addr: SocketAddr, deadline: Instant, seen: Arc<Attack>) {
    let mut held = Vec::new();
    while Instant::now() < deadline {
        // Keep what the server has not closed yet.
        held.retain(|tcp: &tokio::net::TcpStream| {
            let mut buf = [0u8; 1];
            match tcp.try_read(&mut buf) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        });
        for _ in 0..50 {
            if held.len() >= 2000 {
                break;
            }
            if let Ok(tcp) = tcp_connect_from(addr, ATTACKER).await {
                seen.flood_opened.fetch_add(1, Ordering::Relaxed);
                held.push(tcp);
            }
        }
        seen.flood_held_max
            .fetch_max(held.len() as u64, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The longest searches allowed, back to back.
async fn search(addr: SocketAddr, token: String, deadline: Instant, seen: Arc<Attack>) {
    let words: Vec<String> = (0..40).map(|i| format!("w{i}x")).collect();
    let mut q = words.join("+");
    q.truncate(256);
    let path = format!("/v1/messages/search?q={q}&limit=200");
    let mut http = Http::from(addr, ATTACKER);
    while Instant::now() < deadline {
        let slot = match http.req("GET", &path, Some(&token), None).await {
            Ok((200, _)) => 0,
            Ok((429, _)) => 1,
            Ok((503, _)) => 2,
            _ => 3,
        };
        seen.searches.lock().unwrap()[slot] += 1;
        if slot == 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Groups with the whole class in them, until the server says no more.
async fn spam(
    addr: SocketAddr,
    token: String,
    victims: Vec<u64>,
    deadline: Instant,
    seen: Arc<Attack>,
) {
    let mut http = Http::from(addr, ATTACKER);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let body = json!({"name": format!("spam {n}"), "member_ids": victims}).to_string();
        match http
            .req("POST", "/v1/groups", Some(&token), Some(&body))
            .await
        {
            Ok((201, _)) => {
                seen.groups_made.fetch_add(1, Ordering::Relaxed);
            }
            Ok((409, _)) => {
                seen.spam_refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
