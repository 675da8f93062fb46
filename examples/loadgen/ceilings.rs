//! Ceilings: figures on these machines drift by tens of percent within an hour, so each is
//! reported as a ratio to what the bare stack does on the same machine in the same invocation,
//! with the same client. `http-send` and `fanout` first run themselves against the bare stack
//! (`bare.rs`, a child process), then against the server, and print both and the ratio;
//! `ceilings` runs the bare stack alone, and batched SQLite inserts on one thread (the most a
//! single writer could store).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::net::Res;
use crate::scenarios::{fanout, free_addr, http_send, until_healthy, CPU_PER_SEND};
use crate::{fmt, report, Metric, Opts, Outcome, Scenario};

/// The bare stack, running as a child process until dropped.
struct BareServer {
    child: Child,
    addr: SocketAddr,
}

impl BareServer {
    async fn start() -> Res<BareServer> {
        let addr = free_addr()?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(["bare-server", "--url", &format!("http://{addr}")])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the bare stack: {e}"))?;
        let mut bare = BareServer { child, addr };
        match until_healthy(&mut bare.child, addr, Duration::from_secs(10)).await {
            Ok(true) => Ok(bare),
            Ok(false) => Err("the bare stack did not answer within 10 s".into()),
            Err(status) => Err(format!("the bare stack exited: {status}")),
        }
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The options for a run against the bare stack: one instance, and at saturation.
fn bare_opts(o: &Opts) -> Opts {
    let mut b = o.clone();
    b.bare = true;
    b.also.clear();
    if o.of_ceiling.is_some() {
        b.rate = None;
    }
    b
}

async fn scenario(o: &Opts, addr: SocketAddr, nofile: u64) -> Res<Outcome> {
    match o.scenario {
        Scenario::HttpSend => http_send(o, addr).await,
        _ => fanout(o, addr, nofile).await,
    }
}

/// `http-send` or `fanout`: the ceiling first, then the server, then the ratios.
pub async fn against(o: &Opts, addr: SocketAddr, nofile: u64) -> Res<bool> {
    let ceiling = {
        let bare = BareServer::start().await?;
        let outcome = scenario(&bare_opts(o), bare.addr, nofile).await?;
        drop(bare);
        outcome
    };
    let mut real_opts = o.clone();
    if let Some(share) = o.of_ceiling {
        // Metric 1 of fanout is messages/s.
        real_opts.rate = Some(share * ceiling.median_of(1));
        println!(
            "\nsending at {share} × the ceiling's {} messages/s = {} messages/s",
            fmt(ceiling.median_of(1)),
            fmt(share * ceiling.median_of(1))
        );
    }
    let real = scenario(&real_opts, addr, nofile).await?;
    print_ratios(o, &real, &ceiling);
    Ok(real.ok && ceiling.ok)
}

fn print_ratios(o: &Opts, real: &Outcome, ceiling: &Outcome) {
    let name = match o.scenario {
        Scenario::HttpSend => "http-send",
        _ => "fanout",
    };
    println!("\n== {name}: the server against the bare stack (medians, this invocation)");
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "metric", "server", "ceiling", "ratio"
    );
    let mut j = serde_json::Map::new();
    for (i, m) in real.metrics.iter().enumerate() {
        // Paired by name: the server's CPU may be readable when the ceiling's is not.
        let Some(c) = ceiling.median_named(m.name) else {
            continue;
        };
        let r = real.median_of(i);
        let ratio = if c > 0.0 { r / c } else { 0.0 };
        println!(
            "{:<28} {:>14} {:>14} {:>8.3}",
            format!("{} ({})", m.name, m.unit),
            fmt(r),
            fmt(c),
            ratio
        );
        j.insert(
            m.name.to_string(),
            json!({"server": r, "ceiling": c, "ratio": (ratio * 1000.0).round() / 1000.0}),
        );
    }
    let cost = |out: &Outcome| out.median_named(CPU_PER_SEND).filter(|v| *v > 0.0);
    if let (Some(r), Some(c)) = (cost(real), cost(ceiling)) {
        // A cost's ratio above reads the other way up; this one reads as sends/s does.
        let share = c / r;
        println!(
            "{:<28} {:>14} {:>14} {:>8.3}",
            "sends by CPU (us per send)",
            fmt(r),
            fmt(c),
            share
        );
        println!("  sends by CPU: the ceiling's CPU per send over the server's, a share of the ceiling as sends/s is");
        j.insert(
            "sends by CPU".to_string(),
            json!({"server": r, "ceiling": c, "ratio": (share * 1000.0).round() / 1000.0}),
        );
    }
    if let Some(share) = o.of_ceiling {
        println!("  the server sent at {share} × the ceiling's messages/s; the ceiling ran at saturation");
    }
    println!(
        "{}",
        json!({"scenario": format!("{name} ratio"), "of_ceiling": o.of_ceiling, "metrics": j})
    );
}

/// `ceilings`: the bare stack's http-send and fanout, and batched SQLite inserts.
pub async fn run(o: &Opts, nofile: u64) -> Res<bool> {
    let bare = BareServer::start().await?;
    let b = bare_opts(o);
    let sends = http_send(&b, bare.addr).await?;
    let fan = fanout(&b, bare.addr, nofile).await?;
    drop(bare);
    let runs = o.runs;
    let seconds = o.seconds.unwrap_or(3.0);
    let sqlite = tokio::task::spawn_blocking(move || -> Res<Vec<Metric>> {
        let mut m = [("rows/s, sync normal", "1/s"), ("rows/s, sync full", "1/s")].map(Metric::new);
        for run in 0..runs {
            let normal = sqlite_batches("NORMAL", seconds)?;
            let full = sqlite_batches("FULL", seconds)?;
            println!(
                "run {}: {} rows/s (normal), {} rows/s (full)",
                run + 1,
                fmt(normal),
                fmt(full)
            );
            Metric::record(&mut m, &[normal, full]);
        }
        Ok(m.into())
    })
    .await
    .map_err(|e| e.to_string())??;
    let notes = vec![
        "one thread, 1000 inserts of a message row per transaction, prepared once, WAL".to_string(),
    ];
    report(
        "sqlite batched inserts (ceiling)",
        json!({"seconds": seconds, "runs": runs}),
        &sqlite,
        &notes,
    );
    Ok(sends.ok && fan.ok)
}

/// Rows a second one thread stores in a fresh WAL database, 1000 per transaction, for
/// `seconds`: a message's row, as the server's `messages` table has it (less its triggers).
fn sqlite_batches(sync: &str, seconds: f64) -> Res<f64> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conn =
        rusqlite::Connection::open(dir.path().join("ceiling.db")).map_err(|e| e.to_string())?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};
         CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL,
             sender_id INTEGER NOT NULL, content TEXT NOT NULL, client_id TEXT,
             created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
         CREATE INDEX messages_by_conversation ON messages (conversation_id, id);"
    ))
    .map_err(|e| e.to_string())?;
    let (start, mut rows) = (Instant::now(), 0u64);
    let deadline = start + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO messages (conversation_id, sender_id, content, client_id)
                     VALUES (?1, ?2, ?3, ?4) RETURNING id, created_at",
                )
                .map_err(|e| e.to_string())?;
            for i in 0..1000i64 {
                let content = format!("t={}", crate::net::unix_nanos());
                let client_id = format!("c{rows}-{i}");
                insert
                    .query_row(rusqlite::params![i % 4, i % 16, content, client_id], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        rows += 1000;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}
