//! The five scenarios. Each sets up what it needs through the public API, runs `--runs` times,
//! and reports. Returns Ok(false) when a correctness check failed (the process exits 2).

use std::collections::HashSet;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::net::{
    self, field_u64, frame_type, unix_nanos, Gate, Http, Plan, Res, Ws, GROUP_ID, ID, SENT_AT,
};
use crate::{
    fmt, nofile_of, percentile, pid_listening_on, report, rss_kb, Metric, Opts, Outcome, Scenario,
};

pub async fn run(o: &Opts, addr: Option<SocketAddr>, nofile: u64) -> Res<bool> {
    let addr = || addr.expect("scenarios other than startup have an address");
    match o.scenario {
        Scenario::HttpSend | Scenario::Fanout if o.ceiling => {
            crate::ceilings::against(o, addr(), nofile).await
        }
        Scenario::HttpSend => Ok(http_send(o, addr()).await?.ok),
        Scenario::Fanout => Ok(fanout(o, addr(), nofile).await?.ok),
        Scenario::Ceilings => crate::ceilings::run(o, nofile).await,
        Scenario::BareServer => {
            crate::bare::serve(addr()).await;
            Ok(true)
        }
        Scenario::Idle => idle(o, addr(), nofile).await,
        Scenario::History => history(o, addr()).await,
        Scenario::Startup => startup(o).await,
        Scenario::Class => crate::class::run(o, addr()).await,
        Scenario::Uploads => crate::uploads::run(o, addr()).await,
    }
}

/// A run lasts --seconds (5), or until --messages are sent with a 120 s cap.
fn run_bounds(o: &Opts) -> (Duration, i64) {
    let secs = o
        .seconds
        .unwrap_or(if o.messages.is_some() { 120.0 } else { 5.0 });
    (
        Duration::from_secs_f64(secs),
        o.messages.map_or(i64::MAX, |m| m as i64),
    )
}

/// A name prefix unique to this invocation, so repeated runs against one database never collide.
fn prefix() -> String {
    format!("lg{:08x}", (unix_nanos() / 1000) as u32)
}

/// Connects one socket per token, 100 handshakes at a time (more only overflows the backlog),
/// to the instances in turn.
async fn connect_all(addrs: &[SocketAddr], tokens: Vec<String>) -> Vec<Res<Ws>> {
    let addrs = addrs.to_vec();
    stream::iter(tokens.into_iter().enumerate())
        .map(|(i, t)| {
            let addr = addrs[i % addrs.len()];
            async move { net::ws_connect(addr, &t).await }
        })
        .buffered(100)
        .collect()
        .await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------

/// The name of http-send's cost metric (`ceilings` turns it into a ratio of its own).
pub const CPU_PER_SEND: &str = "server CPU per send";

pub async fn http_send(o: &Opts, addr: SocketAddr) -> Res<Outcome> {
    let (n_users, n_groups) = (
        o.users.unwrap_or(16).clamp(1, o.connections.max(1)),
        o.groups.unwrap_or(4).max(1),
    );
    println!("setup: {n_users} users (register + login), {n_groups} groups with all of them");
    let users = net::register_users(addr, &prefix(), n_users).await?;
    let others: Vec<u64> = users[1..].iter().map(|u| u.0).collect();
    let mut groups = Vec::new();
    for g in 0..n_groups {
        groups.push(net::create_group(addr, &users[0].1, &format!("lg-http-{g}"), &others).await?);
    }
    let (duration, max_messages) = run_bounds(o);
    // What the sends cost the process serving --url (not the other instances of --also).
    let cpu = crate::cpu::Cpu::of(addr);
    let mut m = vec![
        Metric::new(("sends/s", "1/s")),
        Metric::new(("latency p50", "ms")),
        Metric::new(("latency p99", "ms")),
    ];
    if cpu.is_some() {
        m.push(Metric::new((CPU_PER_SEND, "us")));
    }
    let (mut errors, mut first_error) = (0u64, None);
    for run in 0..o.runs {
        // Connections open before the clock starts; each task owns one (so exactly N of them).
        let mut conns = Vec::new();
        let addrs = crate::instances(o, addr);
        for c in 0..o.connections {
            let mut h = Http::new(addrs[c % addrs.len()]);
            h.connect().await?;
            conns.push(h);
        }
        let budget = Arc::new(AtomicI64::new(max_messages));
        let cpu_before = cpu.and_then(|c| c.seconds());
        let start = Instant::now();
        let deadline = start + duration;
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut h)| {
                let (token, budget) = (users[i % users.len()].1.clone(), budget.clone());
                let path = format!("/v1/messages/group/{}", groups[i % groups.len()]);
                tokio::spawn(async move {
                    let (mut ok, mut lat, mut errs, mut first) = (0u64, Vec::new(), 0u64, None);
                    let mut seq = 0u64;
                    while Instant::now() < deadline && budget.fetch_sub(1, Ordering::AcqRel) > 0 {
                        seq += 1;
                        let body = format!(r#"{{"content":"lg http {i} {seq}"}}"#);
                        let t = Instant::now();
                        match h.req("POST", &path, Some(&token), Some(&body)).await {
                            Ok((201, _)) => {
                                ok += 1;
                                lat.push(ms(t.elapsed()));
                            }
                            Ok((status, b)) => {
                                errs += 1;
                                first.get_or_insert(format!("{status} {b}"));
                            }
                            Err(e) => {
                                errs += 1;
                                first.get_or_insert(e);
                                break; // a dead connection would spin until the deadline
                            }
                        }
                    }
                    (ok, lat, errs, first)
                })
            })
            .collect();
        let (mut ok, mut lat) = (0u64, Vec::new());
        for t in tasks {
            let (o, l, e, f) = t.await.map_err(|e| e.to_string())?;
            ok += o;
            lat.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
        let rate = ok as f64 / start.elapsed().as_secs_f64();
        let cpu_used = cpu.and_then(|c| Some(c.seconds()? - cpu_before?));
        let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
        // A run whose CPU could not be read, or that stored nothing, has no CPU figure.
        let per_send = cpu_used.filter(|_| ok > 0).map(|s| s * 1e6 / ok as f64);
        println!(
            "run {}: {} sends/s ({ok} persisted), p50 {p50:.2} ms, p99 {p99:.2} ms{}",
            run + 1,
            fmt(rate),
            per_send.map_or(String::new(), |us| format!(
                ", {us:.1} us of server CPU per send"
            ))
        );
        Metric::record(&mut m, &[rate, p50, p99]);
        if let (Some(us), Some(metric)) = (per_send, m.iter_mut().find(|m| m.name == CPU_PER_SEND))
        {
            metric.values.push(us);
        }
    }
    let mut notes = vec![
        "sends/s counts 201 answers only (each is committed before it is answered)".to_string(),
    ];
    if errors > 0 {
        notes.push(format!(
            "ERRORS: {errors} requests failed; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    let params = json!({"connections": o.connections, "users": n_users, "groups": n_groups, "seconds": duration.as_secs_f64(), "messages": o.messages, "runs": o.runs});
    report(&o.name("http-send"), params, &m, &notes);
    Ok(Outcome::new(errors == 0, m))
}

// ---------------------------------------------------------------------------------------------

/// What one receiving socket saw during a run.
#[derive(Default)]
struct Log {
    ids: Vec<u64>,
    lat_us: Vec<u32>,
    foreign: u64,
    /// Highest message id received, across runs: the `since` of a reconnection.
    last_id: u64,
    /// Why it is closed for good.
    closed: Option<String>,
}

/// What all receiving clients share.
struct Shared {
    /// The instances; a socket reconnects to the one it was on.
    addrs: Vec<SocketAddr>,
    gate: Arc<Gate>,
    /// Frames of any type, to see when the presence storm of coming online has passed.
    frames: AtomicU64,
    /// Closes with 1013 (too far behind) followed by a reconnection.
    reconnects: AtomicU64,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// A receiving client: reads its socket until `stop`, logging every group_message. Closed
/// with 1013, it does what the contract asks of a client: it reconnects with
/// `since=<last id seen>` (at most 5 times), so the check still covers every message.
/// A `slow` one pauses 1 ms after every frame (a phone on a bad network): the server must
/// neither lose its messages nor let it slow the others; its latency is left out.
async fn receive(
    sh: Arc<Shared>,
    index: usize,
    token: String,
    group: u64,
    mut ws: Ws,
    log: Arc<Mutex<Log>>,
    slow: bool,
) {
    let mut stop = sh.stop.clone();
    let stopped = stop.changed();
    tokio::pin!(stopped);
    let mut reconnects = 0;
    // Deliveries read but not yet told to the gate: they are told once per wake-up, when
    // nothing more is ready, so 1000 sockets do not each take the gate's shared counter and
    // its waiters' lock for every frame.
    let mut untold = 0;
    let end = loop {
        let next = poll_fn(|cx| {
            let next = ws.poll_next_unpin(cx);
            if next.is_pending() && untold > 0 {
                sh.gate.delivered(untold);
                untold = 0;
            }
            next
        });
        let frame = tokio::select! {
            f = next => f,
            _ = &mut stopped => return,
        };
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(Some(c)))) if u16::from(c.code) == 1013 && reconnects < 5 => {
                reconnects += 1;
                sh.reconnects.fetch_add(1, Ordering::Relaxed);
                let since = log.lock().unwrap().last_id;
                match net::ws_open(sh.addrs[index % sh.addrs.len()], &token, Some(since)).await {
                    Ok(new) => ws = new,
                    Err(e) => break format!("closed 1013, then reconnecting failed: {e}"),
                }
                continue;
            }
            Some(Ok(Message::Close(c))) => break format!("closed by the server: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => break format!("socket error: {e}"),
            None => break "socket ended".into(),
        };
        sh.frames.fetch_add(1, Ordering::Relaxed);
        if frame_type(&text) != "group_message" {
            continue; // presence, ready and the like
        }
        let now = unix_nanos();
        let sent = field_u64(&text, &SENT_AT);
        let id = field_u64(&text, &ID).unwrap_or(0);
        {
            let mut l = log.lock().unwrap();
            l.ids.push(id);
            l.last_id = l.last_id.max(id);
            if field_u64(&text, &GROUP_ID) != Some(group) {
                l.foreign += 1;
            }
            if let Some(s) = sent.filter(|_| !slow) {
                l.lat_us
                    .push((now.saturating_sub(s) / 1000).min(u32::MAX as u64) as u32);
            }
        } // the lock is not held across the await below
        if slow {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            untold += 1;
        }
    };
    if untold > 0 {
        sh.gate.delivered(untold);
    }
    log.lock().unwrap().closed = Some(end);
    if !slow {
        sh.gate.receivers.fetch_sub(1, Ordering::AcqRel); // no longer owed anything
    }
}

/// Compares what a socket got with what was acknowledged in its group; returns problems.
fn check(got: &[u64], expected: &[u64]) -> Vec<String> {
    if got == expected {
        return vec![];
    }
    let mut problems = Vec::new();
    let dups = got.len() - got.iter().collect::<HashSet<_>>().len();
    let disorder = got.windows(2).filter(|w| w[1] < w[0]).count();
    let got_set: HashSet<_> = got.iter().collect();
    let exp_set: HashSet<_> = expected.iter().collect();
    let missing: Vec<_> = expected.iter().filter(|i| !got_set.contains(i)).collect();
    let extra = got.iter().filter(|i| !exp_set.contains(i)).count();
    if dups > 0 {
        problems.push(format!("{dups} duplicates"));
    }
    if disorder > 0 {
        problems.push(format!("{disorder} out of order"));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} missing (first {:?})",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if extra > 0 {
        problems.push(format!("{extra} unexpected ids"));
    }
    problems
}

pub async fn fanout(o: &Opts, addr: SocketAddr, nofile: u64) -> Res<Outcome> {
    let n_groups = o.groups.unwrap_or(1).max(1);
    let members = o
        .members
        .unwrap_or(o.sockets.unwrap_or(1000) / n_groups)
        .max(2);
    let total = n_groups * members;
    if (total + o.senders + 100) as u64 > nofile {
        return Err(format!(
            "{total} sockets need more file descriptors than the limit {nofile}"
        ));
    }
    println!("setup: {total} users (register + login), {n_groups} group(s) of {members}");
    let t = Instant::now();
    let users = net::register_users(addr, &prefix(), total).await?;
    let mut groups = Vec::new();
    for g in 0..n_groups {
        let ids: Vec<u64> = users[g * members + 1..(g + 1) * members]
            .iter()
            .map(|u| u.0)
            .collect();
        groups.push(
            net::create_group(addr, &users[g * members].1, &format!("lg-fanout-{g}"), &ids).await?,
        );
    }
    // The flow gate and the delivery rate follow the normal sockets only: slow ones may lag.
    let gate = Arc::new(Gate::new(members.saturating_sub(o.slow) as u64, o.window));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let addrs = crate::instances(o, addr);
    let sh = Arc::new(Shared {
        addrs: addrs.clone(),
        gate: gate.clone(),
        frames: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        stop,
    });
    let mut logs = Vec::new();
    let tokens = users.iter().map(|u| u.1.clone()).collect();
    let joined = Instant::now();
    let sockets = connect_all(&addrs, tokens).await;
    // A join storm: every member opens a socket at once (100 handshakes at a time).
    println!(
        "join storm: {total} sockets ready in {:.2} s",
        joined.elapsed().as_secs_f64()
    );
    for (i, ws) in sockets.into_iter().enumerate() {
        let log = Arc::new(Mutex::new(Log::default()));
        let (token, group) = (users[i].1.clone(), groups[i / members]);
        let slow = i % members < o.slow; // the first --slow members of each group
        tokio::spawn(receive(sh.clone(), i, token, group, ws?, log.clone(), slow));
        logs.push(log);
    }
    // Coming online sends presence to every member: let that storm pass before measuring.
    let settle_until = Instant::now() + Duration::from_secs(30);
    let mut last = u64::MAX;
    while Instant::now() < settle_until && sh.frames.load(Ordering::Relaxed) != last {
        last = sh.frames.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!(
        "setup done in {:.1} s, {:.1} s after the join storm began ({} presence/other frames, {} sockets closed 1013 and reconnected)",
        t.elapsed().as_secs_f64(),
        joined.elapsed().as_secs_f64(),
        sh.frames.load(Ordering::Relaxed),
        sh.reconnects.load(Ordering::Relaxed)
    );
    let setup_reconnects = sh.reconnects.swap(0, Ordering::AcqRel);

    let (duration, max_messages) = run_bounds(o);
    let names = [
        ("deliveries/s", "1/s"),
        ("messages/s", "1/s"),
        ("latency p50", "ms"),
        ("latency p99", "ms"),
        ("latency max", "ms"),
        ("1013 reconnects", "count"),
    ];
    let mut m = names.map(Metric::new);
    let mut violations = Vec::new();
    for run in 0..o.runs {
        for l in &logs {
            let mut l = l.lock().unwrap();
            // A socket closed for good stays reported; `since` carries over.
            *l = Log {
                closed: l.closed.take(),
                last_id: l.last_id,
                ..Log::default()
            };
        }
        gate.sent.store(0, Ordering::Release);
        gate.delivered.store(0, Ordering::Release);
        let mut sockets = Vec::new();
        for k in 0..o.senders {
            let g = k % n_groups;
            let to = addrs[k % addrs.len()];
            sockets.push((
                g,
                net::ws_connect(to, &users[g * members + (k / n_groups) % members].1).await?,
            ));
        }
        let budget = Arc::new(AtomicI64::new(max_messages));
        let start = Instant::now();
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(k, (g, ws))| {
                let plan = Plan {
                    group_id: groups[g],
                    deadline: start + duration,
                    budget: budget.clone(),
                    in_flight: 32,
                    gate: if o.rate.is_none() {
                        Some(gate.clone())
                    } else {
                        None
                    },
                    rate: o.rate.map(|r| r / o.senders as f64),
                    tag: format!("r{run}s{k}"),
                };
                tokio::spawn(async move { (g, net::ws_send(ws, plan).await) })
            })
            .collect();
        let mut acked = vec![Vec::new(); n_groups];
        for t in tasks {
            let (g, sent) = t.await.map_err(|e| e.to_string())?;
            if sent.errors > 0 || sent.unanswered > 0 {
                violations.push(format!(
                    "run {}: a sender had {} error frames and {} unanswered sends; first: {}",
                    run + 1,
                    sent.errors,
                    sent.unanswered,
                    sent.first_error.unwrap_or_default()
                ));
            }
            acked[g].extend(sent.acked);
        }
        let send_time = start.elapsed();
        // Drain: wait until every open socket has as many messages as were acknowledged in its
        // group, or until deliveries stop progressing for 10 s. The rate is taken when the
        // normal sockets are done: slow ones (--slow) catching up later must not lower it.
        let want: Vec<usize> = acked.iter().map(Vec::len).collect();
        let (mut seen, mut progress, mut rate_at) = (0, Instant::now(), None);
        while progress.elapsed() < Duration::from_secs(10) {
            let complete = |i: usize| {
                let l = logs[i].lock().unwrap();
                l.closed.is_some() || l.ids.len() >= want[i / members]
            };
            if rate_at.is_none() && (0..total).filter(|i| i % members >= o.slow).all(complete) {
                rate_at = Some((start.elapsed(), gate.delivered.load(Ordering::Acquire)));
            }
            if (0..total).all(complete) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = sh.frames.load(Ordering::Relaxed);
            if now != seen {
                (seen, progress) = (now, Instant::now());
            }
        }
        let (elapsed, delivered) =
            rate_at.unwrap_or_else(|| (start.elapsed(), gate.delivered.load(Ordering::Acquire)));
        tokio::time::sleep(Duration::from_millis(200)).await; // a late duplicate would show up here
        let mut lat: Vec<f64> = Vec::new();
        let mut bad_sockets = 0;
        for a in acked.iter_mut() {
            a.sort_unstable();
        }
        for (i, l) in logs.iter().enumerate() {
            let l = l.lock().unwrap();
            lat.extend(l.lat_us.iter().map(|&u| u as f64 / 1000.0));
            let mut problems = check(&l.ids, &acked[i / members]);
            if l.foreign > 0 {
                problems.push(format!("{} messages of another group", l.foreign));
            }
            if let Some(c) = &l.closed {
                problems.push(c.clone());
            }
            if !problems.is_empty() {
                bad_sockets += 1;
                if bad_sockets <= 5 {
                    violations.push(format!(
                        "run {}: socket {i}: {}",
                        run + 1,
                        problems.join(", ")
                    ));
                }
            }
        }
        if bad_sockets > 5 {
            violations.push(format!(
                "run {}: ... {bad_sockets} sockets in all had problems",
                run + 1
            ));
        }
        let msgs = acked.iter().map(Vec::len).sum::<usize>() as f64;
        let reconnects = sh.reconnects.swap(0, Ordering::AcqRel) as f64;
        let v = [
            delivered as f64 / elapsed.as_secs_f64(),
            msgs / send_time.as_secs_f64(),
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            percentile(&mut lat, 1.0),
            reconnects,
        ];
        println!("run {}: {} deliveries/s, {} messages/s, p50 {:.2} ms, p99 {:.2} ms, {reconnects} closed 1013, {bad_sockets} sockets with problems", run + 1, fmt(v[0]), fmt(v[1]), v[2], v[3]);
        Metric::record(&mut m, &v);
    }
    let _ = stop_tx.send(true);
    let mut notes = vec![format!(
        "deliveries count the receiving sockets (not slow ones, not the {} senders' own copies); flow: {}",
        o.senders,
        o.rate.map_or(format!("at most {} messages undelivered", o.window), |r| format!("{r} messages/s"))
    )];
    if o.slow > 0 {
        notes.push(format!("{} sockets per group read slowly (1 ms pause per frame); latency leaves them out, the check does not", o.slow));
    }
    let reconnects = setup_reconnects as f64 + m[5].values.iter().sum::<f64>();
    if reconnects > 0.0 {
        notes.push(format!("WARNING: the server closed sockets with 1013 (too far behind) {reconnects} times ({setup_reconnects} during setup, when coming online floods presence); each reconnected with since= and is still checked"));
    }
    if violations.is_empty() {
        notes.push(format!("CHECK OK: every socket got every acknowledged message exactly once, in id order, in all {} runs", o.runs));
    } else {
        notes.push("!!!!!!!! DELIVERY CHECK FAILED !!!!!!!!".into());
        notes.extend(violations.iter().cloned());
    }
    let params = json!({"sockets": total, "groups": n_groups, "members": members, "slow": o.slow, "senders": o.senders, "window": o.window, "rate": o.rate, "seconds": duration.as_secs_f64(), "messages": o.messages, "runs": o.runs});
    report(&o.name("fanout"), params, &m, &notes);
    Ok(Outcome::new(violations.is_empty(), m))
}

// ---------------------------------------------------------------------------------------------

async fn idle(o: &Opts, addr: SocketAddr, nofile: u64) -> Res<bool> {
    let c = o.sockets.unwrap_or(10_000);
    if (c + 200) as u64 > nofile {
        return Err(format!(
            "{c} sockets need more file descriptors than this process's limit {nofile}"
        ));
    }
    let pid = o
        .pid
        .or_else(|| pid_listening_on(addr.port()))
        .ok_or("cannot find the server's pid (pass --pid)")?;
    let mut notes = vec![format!("server pid {pid}")];
    if o.pid
        .is_some_and(|p| pid_listening_on(addr.port()).is_some_and(|l| l != p))
    {
        notes.push(format!(
            "WARNING: pid {pid} is not the process listening on port {}",
            addr.port()
        ));
        println!("{}", notes.last().unwrap());
    }
    if let Some(limit) = nofile_of(pid).filter(|&l| l < (c + 100) as u64) {
        notes.push(format!(
            "WARNING: the server's open-file limit is {limit}; start it after `ulimit -n 20000`"
        ));
        println!("{}", notes.last().unwrap());
    }
    // Ten sockets per user (the server allows 32 per user by default) and ten users per group,
    // so each socket follows one conversation, as a real one would, while coming online sends
    // presence to only nine others (a 1,000-user group would queue millions of unread frames
    // in the server and inflate the very RSS being measured).
    let n_users = o.users.unwrap_or(c.div_ceil(10)).clamp(1, c);
    println!("setup: {n_users} users (register + login) in groups of 10");
    let users = net::register_users(addr, &prefix(), n_users).await?;
    for chunk in users.chunks(10) {
        let others: Vec<u64> = chunk[1..].iter().map(|u| u.0).collect();
        net::create_group(addr, &chunk[0].1, "lg-idle", &others).await?;
    }
    let names = [
        ("RSS per socket", "KB"),
        ("RSS with sockets", "MB"),
        ("healthz p50", "ms"),
        ("healthz p99", "ms"),
        ("sockets opened/s", "1/s"),
        ("RSS 5 s after close − before", "MB"),
    ];
    let mut m = names.map(Metric::new);
    let mut failed = 0;
    // One baseline before any socket: after the first run the allocator keeps the freed memory
    // and reuses it, so a per-run "before" would make later runs look free.
    let before = rss_kb(pid).ok_or("cannot read the server's RSS")?;
    for run in 0..o.runs {
        tokio::time::sleep(Duration::from_secs(1)).await; // let the previous run's sockets go
        let t = Instant::now();
        let tokens = (0..c).map(|i| users[i % n_users].1.clone()).collect();
        let results = connect_all(&crate::instances(o, addr), tokens).await;
        let open_rate = c as f64 / t.elapsed().as_secs_f64();
        let errors: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        let sockets: Vec<Ws> = results.into_iter().filter_map(Result::ok).collect();
        if !errors.is_empty() {
            failed += errors.len();
            let hint = if errors[0].contains("429") {
                " (over the server's sockets per user? use --users)"
            } else {
                ""
            };
            notes.push(format!(
                "run {}: {} sockets failed to open; first: {}{hint}",
                run + 1,
                errors.len(),
                errors[0]
            ));
        }
        tokio::time::sleep(Duration::from_secs(1) + Duration::from_secs_f64(o.hold.max(0.0))).await;
        let after = rss_kb(pid).ok_or("cannot read the server's RSS")?;
        // HTTP must stay prompt with every socket open.
        let mut http = Http::new(addr);
        http.connect().await?;
        let mut lat = Vec::new();
        for _ in 0..o.requests.min(1000) {
            let t = Instant::now();
            let (status, _) = http.req("GET", "/healthz", None, None).await?;
            if status != 200 {
                return Err(format!("/healthz answered {status} with the sockets open"));
            }
            lat.push(ms(t.elapsed()));
        }
        let per = (after as f64 - before as f64) / sockets.len().max(1) as f64;
        let open = sockets.len();
        drop(sockets);
        // Memory given back: the server's RSS 5 s after every socket closed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let closed = rss_kb(pid).ok_or("cannot read the server's RSS")?;
        let v = [
            per,
            after as f64 / 1024.0,
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            open_rate,
            (closed as f64 - before as f64) / 1024.0,
        ];
        println!("run {}: {open} sockets, RSS {before} → {after} KB: {per:.1} KB/socket, {closed} KB 5 s after they closed; healthz p50 {:.3} ms p99 {:.3} ms", run + 1, v[2], v[3]);
        Metric::record(&mut m, &v);
    }

    notes.push(format!("RSS per socket = (server RSS with the sockets open − {before} KB before the first run) / sockets; meaningful on a freshly started server (memory freed by earlier sockets is reused)"));
    let params = json!({"sockets": c, "users": n_users, "runs": o.runs});
    report("idle", params, &m, &notes);
    Ok(failed == 0)
}

// ---------------------------------------------------------------------------------------------

async fn history(o: &Opts, addr: SocketAddr) -> Res<bool> {
    let n = o.messages.unwrap_or(1_000_000);
    let token = net::login(addr, "Ava", "password").await?;
    let mut http = Http::new(addr);
    let name = format!("lg-history-{n}");
    // A group of this size filled earlier and marked complete is reused: filling takes a while.
    let mut group = None;
    for g in http
        .json("GET", "/v1/groups", Some(&token), None, 200)
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if g["name"] == name.as_str() && g["last_message"]["content"] == "lg-fill-done" {
            group = g["id"].as_u64();
        }
    }
    let gid = match group {
        Some(gid) => {
            println!("reusing group {gid} ({name}, filled earlier)");
            gid
        }
        None => {
            let gid = net::create_group(addr, &token, &name, &[]).await?;
            println!("filling group {gid} with {n} messages over 4 sockets (public API)...");
            let (_, rate) = net::fill_group(addr, &token, gid, n, 4).await?;
            println!("filled at {} messages/s", fmt(rate));
            let done = json!({"content": "lg-fill-done"});
            http.json(
                "POST",
                &format!("/v1/messages/group/{gid}"),
                Some(&token),
                Some(done),
                201,
            )
            .await?;
            gid
        }
    };
    let page = |q: String| format!("/v1/messages/group/{gid}?{q}");
    let first = http
        .json(
            "GET",
            &page("after=0&limit=1".into()),
            Some(&token),
            None,
            200,
        )
        .await?["messages"][0]["id"]
        .as_u64()
        .ok_or("empty group")?;
    let last = http
        .json("GET", &page("limit=1".into()), Some(&token), None, 200)
        .await?["messages"][0]["id"]
        .as_u64()
        .ok_or("empty group")?;
    let mut m = [("page p50", "ms"), ("page p99", "ms"), ("pages/s", "1/s")].map(Metric::new);
    let mut rng = unix_nanos() | 1;
    let mut short = 0;
    for run in 0..o.runs {
        let mut lat = Vec::new();
        let t = Instant::now();
        for _ in 0..o.requests {
            // xorshift: enough randomness for cursors, no RNG state to thread through awaits
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let before = first + 50 + rng % (last - first - 49).max(1);
            let t = Instant::now();
            let (status, body) = http
                .req(
                    "GET",
                    &page(format!("limit=50&before={before}")),
                    Some(&token),
                    None,
                )
                .await?;
            lat.push(ms(t.elapsed()));
            if status != 200 {
                return Err(format!("history page: {status} {body}"));
            }
            if body.matches("\"sender_id\"").count() != 50 {
                short += 1;
            }
        }
        let rate = o.requests as f64 / t.elapsed().as_secs_f64();
        let v = [percentile(&mut lat, 0.5), percentile(&mut lat, 0.99), rate];
        println!(
            "run {}: p50 {:.3} ms, p99 {:.3} ms, {} pages/s (one connection, sequential)",
            run + 1,
            v[0],
            v[1],
            fmt(rate)
        );
        Metric::record(&mut m, &v);
    }
    let mut notes = vec![format!(
        "group {gid}: ids {first}..{last}; GET ?limit=50&before=<random id>, one request at a time"
    )];
    if short > 0 {
        notes.push(format!("ERROR: {short} pages had fewer than 50 messages"));
    }
    report(
        "history",
        json!({"messages": n, "requests": o.requests, "runs": o.runs}),
        &m,
        &notes,
    );
    Ok(short == 0)
}

// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

/// A free port on 127.0.0.1, for a server this process starts.
pub fn free_addr() -> Res<SocketAddr> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    Ok(([127, 0, 0, 1], port).into())
}

/// Polls `addr`'s /healthz every millisecond until it answers 200 (`Ok(true)`), `limit`
/// passes (`Ok(false)`), or `child`, the server, exits (`Err` with its status).
pub async fn until_healthy(
    child: &mut Child,
    addr: SocketAddr,
    limit: Duration,
) -> Result<bool, std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Ok((200, _)) = Http::new(addr).req("GET", "/healthz", None, None).await {
            return Ok(true);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(false)
}

/// Spawns the server binary on `db` and a free port; returns it with the time to /healthz 200.
async fn start_server(o: &Opts, db: &Path) -> Res<(Server, Duration)> {
    let addr = free_addr()?;
    let log = db.with_extension("log");
    let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let child = Command::new(&o.bin)
        .args(["--addr", &addr.to_string(), "--db"])
        .arg(db)
        .args(o.server_args.split_whitespace())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", o.bin.display()))?;
    let mut server = Server { child, addr, log };
    match until_healthy(&mut server.child, addr, Duration::from_secs(30)).await {
        Ok(true) => Ok((server, t.elapsed())),
        Ok(false) => {
            stop_server(server).await;
            Err("the server was not healthy within 30 s".into())
        }
        Err(status) => {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            Err(format!(
                "the server exited ({status}) before it was healthy:\n{log}"
            ))
        }
    }
}

/// SIGTERM (graceful shutdown, so the database is checkpointed), SIGKILL after 10 s.
async fn stop_server(mut s: Server) -> Duration {
    let t = Instant::now();
    // SAFETY: signalling a child we spawned and have not yet reaped.
    unsafe { libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM) };
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = s.child.try_wait() {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!("server did not stop in 10 s after SIGTERM; killing it");
    let _ = s.child.kill();
    let _ = s.child.wait();
    t.elapsed()
}

async fn startup(o: &Opts) -> Res<bool> {
    if !o.bin.exists() {
        return Err(format!(
            "{} does not exist (cargo build --release, or pass --bin)",
            o.bin.display()
        ));
    }
    let n = o.messages.unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let names = [
        ("empty: to healthy", "ms"),
        ("empty: shutdown", "ms"),
        ("full: to healthy", "ms"),
        ("full: shutdown", "ms"),
    ];
    let mut m = names.map(Metric::new);
    for run in 0..o.runs {
        let db = tmp.path().join(format!("empty{run}.db"));
        let (server, up) = start_server(o, &db).await?;
        let down = stop_server(server).await;
        println!(
            "empty database, run {}: healthy after {:.1} ms, stopped in {:.1} ms",
            run + 1,
            ms(up),
            ms(down)
        );
        m[0].values.push(ms(up));
        m[1].values.push(ms(down));
    }
    let full = o
        .keep_db
        .clone()
        .unwrap_or_else(|| tmp.path().join("full.db"));
    if full.exists() {
        println!("reusing {} (assumed to hold {n} messages)", full.display());
    } else {
        // Filled through the public API by a server of its own, like a real one would be.
        let (server, _) = start_server(o, &full).await?;
        println!(
            "filling {} with {n} messages through the API...",
            full.display()
        );
        let filled = async {
            let token = net::login(server.addr, "Ava", "password").await?;
            net::fill_group(server.addr, &token, 1, n, 4).await
        }
        .await;
        stop_server(server).await;
        println!("filled at {} messages/s", fmt(filled?.1));
    }
    let size_mb = std::fs::metadata(&full)
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    for run in 0..o.runs {
        let (server, up) = start_server(o, &full).await?;
        let down = stop_server(server).await;
        println!(
            "{n} messages ({size_mb:.0} MB), run {}: healthy after {:.1} ms, stopped in {:.1} ms",
            run + 1,
            ms(up),
            ms(down)
        );
        m[2].values.push(ms(up));
        m[3].values.push(ms(down));
    }
    let notes = vec![
        "time from spawning the binary to the first /healthz 200 (polled every 1 ms); shutdown = SIGTERM to exit".to_string(),
        format!("full database: {n} messages in General, {size_mb:.0} MB"),
    ];
    let params = json!({"messages": n, "runs": o.runs, "server_args": o.server_args, "bin": o.bin});
    report("startup", params, &m, &notes);
    Ok(true)
}
