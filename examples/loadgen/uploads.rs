//! `uploads`: does a large upload stall other people's sends? `--users` senders (20) chat in
//! one group on a socket each, at `--rate` messages a second in all (100, open loop), and each
//! send's latency to its `ack` is measured. Phase 1 (the ceiling) is that alone for
//! `--seconds`; phase 2, in the same run and on the same sockets, is the same while
//! `--uploaders` other users (1) each POST `--upload-mib` MiB files (10) to /v1/attachments
//! back to back. Reported per run: sends, p50/p99/max of each phase, p99(uploads)/p99(alone),
//! the upload throughput (bytes of finished uploads / seconds from the phase's start to the
//! last one's 201) and the uploads finished.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::body::Bytes;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::net::{self, frame_type, unix_nanos, Res, Ws};
use crate::uploader::{noise, upload_loop, Uploads};
use crate::{cpu_ticks, fmt, percentile, pid_listening_on, report, Metric, Opts};

/// After its last send, how long a socket waits for the answers still owed.
const DRAIN: Duration = Duration::from_secs(10);

/// What one phase's senders saw.
#[derive(Default)]
struct Sends {
    lat: Vec<f64>,
    errors: u64,
    unanswered: u64,
    first_error: Option<String>,
}

/// What every run shares.
struct Setup {
    addr: SocketAddr,
    senders: Vec<(u64, String)>,
    group: u64,
    rate: f64,
    phase: Duration,
    file: Bytes,
    /// The server's pid, for the CPU other processes took (0: unknown).
    pid: u32,
}

pub async fn run(o: &Opts, addr: SocketAddr) -> Res<bool> {
    let (n, uploaders) = (o.users.unwrap_or(20).max(1), o.uploaders);
    let size = o.upload_mib.max(1) as usize * 1024 * 1024;
    let prefix = format!("lg{:08x}", (unix_nanos() / 1000) as u32);
    println!("setup: {n} senders in one group, {uploaders} uploader(s) per run");
    let senders = net::register_users(addr, &prefix, n).await?;
    let ids: Vec<u64> = senders[1..].iter().map(|u| u.0).collect();
    let group = net::create_group(addr, &senders[0].1, "lg-uploads", &ids).await?;
    // Fresh uploaders each run, so each starts from the same quota use.
    let up_users = net::register_users(addr, &format!("{prefix}u"), uploaders * o.runs).await?;
    let s = Setup {
        addr,
        senders,
        group,
        rate: o.rate.unwrap_or(100.0).max(0.1),
        phase: Duration::from_secs_f64(o.seconds.unwrap_or(10.0)),
        file: Bytes::from(noise(size)),
        pid: o.pid.or_else(|| pid_listening_on(addr.port())).unwrap_or(0),
    };
    let names = [
        ("alone: sends", "count"),
        ("alone: p50", "ms"),
        ("alone: p99", "ms"),
        ("alone: max", "ms"),
        ("uploading: sends", "count"),
        ("uploading: p50", "ms"),
        ("uploading: p99", "ms"),
        ("uploading: max", "ms"),
        ("p99 uploading / alone", "x"),
        ("upload throughput", "MB/s"),
        ("uploads finished", "count"),
        ("upload time p50", "ms"),
        ("others' CPU alone", "%"),
        ("others' CPU uploading", "%"),
    ];
    let mut m = names.map(Metric::new);
    let (mut notes, mut failures) = (Vec::new(), Vec::new());
    for run in 0..o.runs {
        let tokens = up_users[run * uploaders..(run + 1) * uploaders].iter();
        let tokens = tokens.map(|u| u.1.clone()).collect();
        let (v, failed) = one_run(&s, run, tokens).await?;
        let line = format!(
            "run {}: alone {} | uploading {} | p99 ×{:.2} | {} uploads, {:.1} MB/s, {:.0} ms \
             each (p50) | others' CPU {:.0} % / {:.0} %",
            run + 1,
            phase_line(&v[0..4]),
            phase_line(&v[4..8]),
            v[8],
            v[10],
            v[9],
            v[11],
            v[12],
            v[13]
        );
        println!("{line}");
        notes.push(line);
        failures.extend(failed);
        Metric::record(&mut m, &v);
    }
    notes.push(format!(
        "latency = a socket's send frame to its ack (committed); {} msg/s in all, open loop; \
         MB = 10^6 bytes, uploads of {size} bytes as raw bodies; others' CPU = the share of \
         all CPUs used by processes other than the server and the load generator",
        fmt(s.rate)
    ));
    if s.pid == 0 {
        notes.push("the server's pid was not found: others' CPU includes the server".into());
    }
    let ok = failures.is_empty();
    notes.extend(failures);
    let params = json!({"senders": n, "rate": s.rate, "seconds": s.phase.as_secs_f64(),
        "uploaders": uploaders, "upload_mib": o.upload_mib.max(1), "runs": o.runs});
    report("uploads", params, &m, &notes);
    Ok(ok)
}

/// One run: the phase alone, then the phase with uploads. Returns the run's values in the
/// order of the metrics, and what went wrong.
async fn one_run(s: &Setup, run: usize, tokens: Vec<String>) -> Res<(Vec<f64>, Vec<String>)> {
    let mut sockets = Vec::new();
    for (_, token) in &s.senders {
        sockets.push(net::ws_connect(s.addr, token).await?);
    }
    // Coming online sends presence to the others: let it pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = cpu_ticks(&[s.pid]);
    let (sockets, mut alone) = sends(s, sockets, &format!("r{run}a")).await?;
    let (cpu_between, start) = (cpu_ticks(&[s.pid]), Instant::now());
    let uploading: Vec<_> = (tokens.into_iter().enumerate())
        .map(|(u, t)| tokio::spawn(upload_loop(s.addr, t, u, s.file.clone(), start + s.phase)))
        .collect();
    let (sockets, mut busy) = sends(s, sockets, &format!("r{run}u")).await?;
    let mut up = Uploads::default();
    for t in uploading {
        up.add(t.await.map_err(|e| e.to_string())?);
    }
    let cpu_end = cpu_ticks(&[s.pid]);
    drop(sockets);
    let secs = up.last.map_or(0.0, |l| (l - start).as_secs_f64());
    let mbps = up.bytes as f64 / 1e6 / secs.max(1e-9); // 0 when none finished
    let mut failures = Vec::new();
    for (what, s) in [("alone", &alone), ("uploading", &busy)] {
        if s.errors > 0 || s.unanswered > 0 {
            failures.push(format!(
                "run {}, {what}: {} error frames, {} sends unanswered after {DRAIN:?}; first: {}",
                run + 1,
                s.errors,
                s.unanswered,
                s.first_error.clone().unwrap_or_default()
            ));
        }
    }
    if up.errors > 0 {
        let e = up.first_error.clone().unwrap_or_default();
        let hint = e
            .contains("quota")
            .then_some(" (start the server with --attachment-quota 100G)");
        let hint = hint.unwrap_or("");
        let n = up.errors;
        failures.push(format!(
            "run {}: {n} uploads failed; first: {e}{hint}",
            run + 1
        ));
    }
    let (a99, b99) = (
        percentile(&mut alone.lat, 0.99),
        percentile(&mut busy.lat, 0.99),
    );
    let v = vec![
        alone.lat.len() as f64,
        percentile(&mut alone.lat, 0.5),
        a99,
        percentile(&mut alone.lat, 1.0),
        busy.lat.len() as f64,
        percentile(&mut busy.lat, 0.5),
        b99,
        percentile(&mut busy.lat, 1.0),
        if a99 > 0.0 { b99 / a99 } else { 0.0 },
        mbps,
        up.done as f64,
        percentile(&mut up.times, 0.5),
        others(cpu, cpu_between),
        others(cpu_between, cpu_end),
    ];
    Ok((v, failures))
}

fn phase_line(v: &[f64]) -> String {
    let (n, p50, p99, max) = (v[0], v[1], v[2], v[3]);
    format!("{n} sends p50 {p50:.2} p99 {p99:.2} max {max:.1} ms")
}

/// The percentage of all CPU time between two samples used by other processes.
fn others(a: (u64, u64, u64), b: (u64, u64, u64)) -> f64 {
    let (busy, all, ours) = (b.0 - a.0, (b.1 - a.1).max(1), b.2 - a.2);
    busy.saturating_sub(ours) as f64 * 100.0 / all as f64
}

/// One phase: every socket sends for the phase at its share of the rate, staggered, then waits
/// (at most `DRAIN`) for its answers. Gives the sockets back for the next phase.
async fn sends(s: &Setup, sockets: Vec<Ws>, tag: &str) -> Res<(Vec<Ws>, Sends)> {
    let (group, rate, phase) = (s.group, s.rate, s.phase);
    let n = sockets.len();
    let start = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(k, ws)| {
            let first = start + Duration::from_secs_f64(k as f64 / rate);
            let every = Duration::from_secs_f64(n as f64 / rate);
            let tag = format!("{tag}s{k}");
            tokio::spawn(sender(ws, group, first, every, start + phase, tag))
        })
        .collect();
    let (mut out, mut all) = (Vec::with_capacity(n), Sends::default());
    for t in tasks {
        let (ws, s) = t.await.map_err(|e| e.to_string())?;
        out.push(ws?);
        all.lat.extend(s.lat);
        all.errors += s.errors;
        all.unanswered += s.unanswered;
        if all.first_error.is_none() {
            all.first_error = s.first_error;
        }
    }
    Ok((out, all))
}

/// Sends at `first`, `first + every`, ... until `deadline` (a late one leaves at once, so
/// the rate holds), each stamped with its time in its client_id; reads the acks meanwhile.
async fn sender(
    mut ws: Ws,
    group: u64,
    first: Instant,
    every: Duration,
    deadline: Instant,
    tag: String,
) -> (Res<Ws>, Sends) {
    let sent = AtomicU64::new(0);
    let answered = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let mut got = Sends::default();
    let mut broken = None;
    {
        let (mut tx, mut rx) = (&mut ws).split();
        let send = async {
            let mut seq = 0u64;
            loop {
                let due = first + every * seq as u32;
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                seq += 1;
                let frame = format!(
                    r#"{{"type":"send","group_id":{group},"content":"lg up {seq}","client_id":"{tag}-{seq}-{}"}}"#,
                    unix_nanos()
                );
                if tx.send(Message::text(frame)).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::AcqRel);
            }
            finished.store(true, Ordering::Release);
        };
        let receive = async {
            let until = deadline + DRAIN;
            loop {
                let done = finished.load(Ordering::Acquire)
                    && answered.load(Ordering::Acquire) >= sent.load(Ordering::Acquire);
                if done || Instant::now() >= until {
                    break;
                }
                let next = tokio::time::timeout(Duration::from_millis(50), rx.next()).await;
                let text = match next {
                    Err(_) => continue,
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue,
                    Ok(Some(Err(e))) => {
                        broken = Some(format!("socket error: {e}"));
                        break;
                    }
                    Ok(None) => {
                        broken = Some("socket closed by the server".to_string());
                        break;
                    }
                };
                match frame_type(&text) {
                    "ack" => {
                        if let Some(stamp) = stamp(&text) {
                            got.lat
                                .push(unix_nanos().saturating_sub(stamp) as f64 / 1e6);
                        }
                        answered.fetch_add(1, Ordering::AcqRel);
                    }
                    "error" => {
                        got.errors += 1;
                        got.first_error.get_or_insert_with(|| text.to_string());
                        answered.fetch_add(1, Ordering::AcqRel);
                    }
                    _ => {} // the group's messages, presence
                }
            }
        };
        tokio::join!(send, receive);
    }
    got.unanswered = sent
        .load(Ordering::Acquire)
        .saturating_sub(answered.load(Ordering::Acquire));
    (broken.map_or(Ok(ws), Err), got)
}

/// The send time in an ack's `"client_id":"<tag>-<seq>-<nanos>"`.
fn stamp(text: &str) -> Option<u64> {
    let rest = &text[text.find("\"client_id\":\"")? + 13..];
    let id = &rest[..rest.find('"')?];
    id.rsplit('-').next()?.parse().ok()
}
