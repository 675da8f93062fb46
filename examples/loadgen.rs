//! Load generator for chatserver. It drives a RUNNING server through its public API only
//! (HTTP + WebSocket) and reports, per scenario, the median of several runs with min–max as a
//! table plus one JSON line (for BENCHMARKS.md). `--help` lists every option.
//!
//! ```sh
//! cargo build --release && cargo build --release --example loadgen
//! ulimit -n 20000   # in the server's shell: `idle` holds 10,000 sockets
//! RUST_LOG=warn target/release/chatserver --addr 127.0.0.1:18100 --db /tmp/lg/chat.db \
//!     --bcrypt-cost 4 --register-rate 100000 &
//! L="target/release/examples/loadgen --url http://127.0.0.1:18100"
//! $L idle --sockets 10000          # first, on the fresh server (see below)
//! $L http-send --connections 64
//! $L fanout --sockets 1000         # closed loop: throughput at saturation
//! $L fanout --sockets 1000 --rate 700   # open loop: latency at a given load
//! $L fanout --groups 10 --members 100 --senders 10
//! $L fanout --sockets 1000 --also http://127.0.0.1:18101 --also http://127.0.0.1:18102
//!                                  # instances joined by --broker: sockets spread over them
//! $L history --messages 1000000    # fills a group once (~20-40 s), reuses it afterwards
//! target/release/examples/loadgen startup --bin target/release/chatserver
//! $L class --seconds 20 --runs 3   # 30 chatting while one attacks (on a fresh server)
//! $L uploads --seconds 20 --runs 5 # sends alone, then during 10 MiB uploads (--uploaders 2)
//! ```
//!
//! - `http-send`, `fanout` and `idle` register fresh users (names `lg<hex>_<n>`), so the server
//!   should run with `--bcrypt-cost 4`: setup then takes seconds, not minutes. `uploads`
//!   also needs `--attachment-quota 100G` on the server (nothing refers to its uploads, and
//!   those are kept a day, so 200M is used up after 20 files). `history` logs
//!   in as the seeded Ava (password `password`). `startup` spawns its own servers.
//! - Its connections come from 127.0.0.2–127.0.0.101 in turn (many clients, as the server's
//!   per-address bound expects); the attacker in `class` uses 127.0.0.250 alone.
//! - `--register-rate 100000` lets one load generator sign up its users; by default the server
//!   allows 10 sign-ups an hour per address.
//! - `RUST_LOG=warn` keeps the server from logging every request (≈ 6 % of http-send here).
//! - `idle` gives RSS per socket against the server's RSS before its first run; run it on a
//!   freshly started server, since memory freed by earlier sockets is reused without growing.
//! - `fanout` exits 2 if any socket missed a message, got one twice or out of order. A socket
//!   closed with 1013 reconnects with `since=` as the contract asks of clients, and is counted.
//! - Only 127.0.0.1 / localhost / ::1 are accepted; every loop is bounded in count and time,
//!   and a watchdog ends the process after `--timeout` seconds.

// A measuring tool, not the server: it may stop on a failed setup, and its scenarios read as
// one long script each. `unsafe` is for setrlimit(RLIMIT_NOFILE), SIGTERM and sysconf.
#![allow(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

// A crate root looks for its modules beside itself; these live in examples/loadgen/.
#[path = "loadgen/bare.rs"]
mod bare;
#[path = "loadgen/ceilings.rs"]
mod ceilings;
#[path = "loadgen/class.rs"]
mod class;
#[path = "loadgen/cpu.rs"]
mod cpu;
#[path = "loadgen/net.rs"]
mod net;
#[path = "loadgen/scenarios.rs"]
mod scenarios;
#[path = "loadgen/uploader.rs"]
mod uploader;
#[path = "loadgen/uploads.rs"]
mod uploads;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Scenario {
    HttpSend,
    Fanout,
    Idle,
    History,
    Startup,
    /// A class of 30 chatting while one of them attacks the server.
    Class,
    /// Send latency with no upload, then while others upload 10 MiB files back to back.
    Uploads,
    /// This machine's ceilings: http-send and fanout against the bare stack (warp, a JWT
    /// check, tokio's broadcast; no chatserver), and batched SQLite inserts. Needs no server.
    Ceilings,
    /// The bare stack itself, on --url (started by the other scenarios as a child process).
    #[value(hide = true)]
    BareServer,
}

/// What a scenario measured, for a ratio to its ceiling.
pub struct Outcome {
    /// Every correctness check passed.
    pub ok: bool,
    pub metrics: Vec<Metric>,
}

impl Outcome {
    pub fn new(ok: bool, metrics: impl Into<Vec<Metric>>) -> Outcome {
        Outcome {
            ok,
            metrics: metrics.into(),
        }
    }

    /// The median of the first metric (the scenario's throughput).
    pub fn median(&self) -> f64 {
        self.median_of(0)
    }

    pub fn median_of(&self, i: usize) -> f64 {
        let mut v = self
            .metrics
            .get(i)
            .map(|m| m.values.clone())
            .unwrap_or_default();
        percentile(&mut v, 0.5)
    }

    /// The median of the metric called `name`, if this outcome has it.
    pub fn median_named(&self, name: &str) -> Option<f64> {
        let i = self.metrics.iter().position(|m| m.name == name)?;
        Some(self.median_of(i))
    }
}

/// Options shared by every scenario; each uses the ones that concern it.
#[derive(Parser, Debug, Clone)]
#[command(about = "Load generator for chatserver: drives a running server through its public API")]
pub struct Opts {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The server (127.0.0.1, localhost or ::1 only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Another instance of the same cluster (repeatable; http-send, fanout): connections and
    /// sockets are spread over --url and these in turn, setup goes to --url.
    #[arg(long = "also", value_name = "URL")]
    pub also: Vec<String>,
    /// idle: keep each run's sockets open this many seconds before measuring (so that two
    /// load generators, each under its own open-files limit, hold theirs at the same time).
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// http-send, fanout: skip the bare-stack ceiling they otherwise measure first, in the
    /// same invocation, to report their figure as a ratio of it.
    #[arg(long = "no-ceiling", action = clap::ArgAction::SetFalse)]
    pub ceiling: bool,
    /// fanout: send at this share of the ceiling's messages/s (open loop, e.g. 0.7) instead of
    /// --rate or the window's closed loop; the ceiling itself is measured at saturation.
    #[arg(long, value_name = "SHARE")]
    pub of_ceiling: Option<f64>,
    /// Set while a scenario runs against the bare stack (names its report).
    #[arg(skip)]
    pub bare: bool,
    /// Measured runs; the report gives their median and min–max.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Length of one run (http-send, fanout; default 5, or 120 as a cap with --messages), or
    /// of each of a run's two phases (uploads, default 10).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Messages per run (http-send, fanout), or in the history group / startup database (1M).
    #[arg(long)]
    pub messages: Option<u64>,
    /// HTTP connections (http-send).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Sockets: fanout receivers (default 1000) or idle sockets (default 10000).
    #[arg(long)]
    pub sockets: Option<usize>,
    /// Groups (fanout: G groups of --members; http-send: groups written to, default 4).
    #[arg(long)]
    pub groups: Option<usize>,
    /// Members (one socket each) per group in fanout; default sockets / groups.
    #[arg(long)]
    pub members: Option<usize>,
    /// Sockets that send in fanout, spread over the groups.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// fanout: this many receivers per group read slowly (1 ms pause after each frame).
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
    /// fanout: messages sent but not yet delivered to every socket, over all senders.
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// fanout: total messages per second (open loop) instead of the window's closed loop;
    /// uploads: the senders' messages per second in all (default 100).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Users (http-send default 16, idle default 100); their sockets/connections share them.
    /// uploads: the senders, one socket each (default 20).
    #[arg(long)]
    pub users: Option<usize>,
    /// The server's pid for idle (default: the process listening on the URL's port).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Requests per run (history pages; healthz probes in idle).
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// The server binary for startup.
    #[arg(long, default_value = "target/release/chatserver")]
    pub bin: PathBuf,
    /// startup: keep (or reuse, if it exists) the filled database here instead of a temp file.
    #[arg(long)]
    pub keep_db: Option<PathBuf>,
    /// startup: extra arguments for the spawned servers, e.g. "--sync full".
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub server_args: String,
    /// uploads: users uploading at once in the second phase, each its own file after file.
    #[arg(long, default_value_t = 1)]
    pub uploaders: usize,
    /// uploads: the size of each upload, in MiB (the server's --max-attachment is 10M).
    #[arg(long, default_value_t = 10)]
    pub upload_mib: u64,
    /// Hard limit on the whole invocation, in seconds: a watchdog exits after it.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

fn main() {
    let opts = Opts::parse();
    if opts.runs == 0 {
        fail("--runs must be at least 1");
    }
    let nofile = raise_nofile();
    // Every loop has its own bounds; this one catches whatever was missed.
    let limit = opts.timeout;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(limit));
        eprintln!("loadgen: watchdog: still running after {limit} s, exiting");
        std::process::exit(3);
    });
    let addr = if matches!(opts.scenario, Scenario::Startup | Scenario::Ceilings) {
        None
    } else {
        Some(local_addr(&opts.url))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(scenarios::run(&opts, addr, nofile));
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(2), // a correctness violation was reported above
        Err(e) => fail(&e),
    }
}

pub fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(1)
}

impl Opts {
    /// A report's title: the scenario, or the bare stack's run of it.
    pub fn name(&self, scenario: &str) -> String {
        match self.bare {
            true => format!("{scenario} (ceiling: the bare stack)"),
            false => scenario.to_string(),
        }
    }
}

/// `first` (the --url) and every --also, in that order.
pub fn instances(o: &Opts, first: SocketAddr) -> Vec<SocketAddr> {
    std::iter::once(first)
        .chain(o.also.iter().map(|u| local_addr(u)))
        .collect()
}

/// Parses `http://host:port` and refuses anything but the loopback interface.
fn local_addr(url: &str) -> SocketAddr {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| fail("--url must start with http://"));
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .unwrap_or_else(|_| fail("bad port in --url")),
        ),
        None => (hostport, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        fail("refusing a host other than 127.0.0.1, localhost or ::1");
    }
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next());
    addr.filter(|a| a.ip().is_loopback())
        .unwrap_or_else(|| fail("--url does not resolve to loopback"))
}

/// Raises RLIMIT_NOFILE to the hard limit (10,000 idle sockets need 10,000 descriptors);
/// returns the soft limit now in force.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// The pid of the process listening on 127.0.0.1:`port` (or [::1]), found like `ss -ltnp`:
/// the socket's inode from /proc/net/tcp*, then the process holding that inode.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if f.len() > 9 && f[3] == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// A value from /proc/<pid>/status or /proc/<pid>/limits-style text, in kB for VmRSS.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn nofile_of(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU time so far, in clock ticks: (busy, all) over every CPU from /proc/stat, and what
/// `pids` (with this process) used. Two samples give the share taken by other processes,
/// which says whether a run was disturbed (this machine is shared).
pub fn cpu_ticks(pids: &[u32]) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let all: u64 = f.iter().take(8).sum(); // user … steal; guest time is inside user
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    let mut ours = 0;
    for pid in pids
        .iter()
        .map(|p| p.to_string())
        .chain(["self".to_string()])
    {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command's closing parenthesis: field 3 (state) onwards; utime is 14, stime 15.
        let rest = s.rsplit_once(')').map_or("", |r| r.1);
        let v: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            v.get(i - 3)
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ours += field(14) + field(15);
    }
    (all.saturating_sub(idle), all, ours)
}

/// The value at quantile `q` of `v` (sorted here), or 0 for no samples.
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    let pos = (v.len() - 1) as f64 * q; // interpolated, so the median of 2 runs is their mean
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// One metric measured once per run.
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub values: Vec<f64>,
}

impl Metric {
    pub fn new((name, unit): (&'static str, &'static str)) -> Metric {
        Metric {
            name,
            unit,
            values: Vec::new(),
        }
    }

    /// Appends one run's values, in the order the metrics were declared.
    pub fn record(metrics: &mut [Metric], values: &[f64]) {
        for (m, v) in metrics.iter_mut().zip(values) {
            m.values.push(*v);
        }
    }
}

/// Prints a table (median, min–max per metric), notes, and one JSON line.
pub fn report(scenario: &str, params: Value, metrics: &[Metric], notes: &[String]) {
    println!("\n== {scenario}  {}", params.to_string().replace('"', ""));
    println!("{:<28} {:>14} {:>26}", "metric", "median", "min – max");
    let mut jm = Map::new();
    for m in metrics {
        let mut v = m.values.clone();
        let med = percentile(&mut v, 0.5);
        let (min, max) = (
            v.first().copied().unwrap_or(0.0),
            v.last().copied().unwrap_or(0.0),
        );
        let label = if m.unit == "1/s" {
            m.name.to_string()
        } else {
            format!("{} ({})", m.name, m.unit)
        };
        println!(
            "{label:<28} {:>14} {:>26}",
            fmt(med),
            format!("{} – {}", fmt(min), fmt(max))
        );
        let key = json_key(m);
        jm.insert(key, json!({"median": round3(med), "min": round3(min), "max": round3(max), "runs": m.values.iter().map(|x| round3(*x)).collect::<Vec<_>>()}));
    }
    for n in notes {
        println!("  {n}");
    }
    println!(
        "{}",
        json!({"scenario": scenario, "params": params, "metrics": jm})
    );
}

/// "deliveries/s" → "deliveries_per_s", "latency p99" (ms) → "latency_p99_ms".
fn json_key(m: &Metric) -> String {
    let mut key = m.name.to_lowercase().replace('/', " per ");
    if m.unit != "1/s" {
        key = format!("{key} {}", m.unit.to_lowercase());
    }
    let words: Vec<&str> = key
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.join("_")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Large numbers with thousands separators, small ones with 3 significant-ish decimals.
pub fn fmt(x: f64) -> String {
    if x.abs() >= 1000.0 {
        let s = format!("{:.0}", x);
        let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}
