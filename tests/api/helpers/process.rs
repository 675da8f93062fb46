//! The real binary: the command line, and a server process for signals and restarts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_chatserver");

fn command(args: &[&str]) -> Command {
    command_under(None, args)
}

/// How the server process is started: as it is, under an open-files limit (prlimit), or
/// inside a network namespace (`ip netns exec`).
#[derive(Clone, Copy)]
pub enum Under<'a> {
    Plain,
    OpenFiles(u32),
    Namespace(&'a str),
}

/// The binary with `args`, run with an open-files limit of `nofile` when given (prlimit).
fn command_under(nofile: Option<u32>, args: &[&str]) -> Command {
    command_wrapped(nofile.map_or(Under::Plain, Under::OpenFiles), args)
}

fn command_wrapped(under: Under, args: &[&str]) -> Command {
    let mut cmd = match under {
        Under::Plain => Command::new(BIN),
        Under::OpenFiles(n) => {
            let mut cmd = Command::new("prlimit");
            cmd.arg(format!("--nofile={n}:{n}")).arg("--").arg(BIN);
            cmd
        }
        Under::Namespace(name) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", name, BIN]);
            cmd
        }
    };
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
    let args = on_database(args);
    let stdin = stdin.map(|s| s.to_string());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        run_cli_blocking(&args, stdin.as_deref())
    })
    .await
    .expect("cli task")
}

/// `args` with each `--db FILE` naming the test's database (see `db_arg`).
fn on_database(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    for a in args {
        let after_db = out.last().is_some_and(|prev| prev == "--db");
        out.push(if after_db && !a.starts_with("postgres") {
            db_arg(Path::new(a))
        } else {
            a.to_string()
        });
    }
    out
}

/// `chatserver serve --addr 127.0.0.1:0 --db FILE --bcrypt-cost 4`, running until dropped.
pub struct ServerProcess {
    pub api: Api,
    pub pid: u32,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    /// Told each time stderr has grown.
    stderr_grew: Arc<tokio::sync::Notify>,
    /// Every line of stdout read so far (the banner), and word of each new one.
    stdout: Arc<Mutex<Vec<String>>>,
    new_line: Arc<Mutex<mpsc::Receiver<String>>>,
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
        Self::spawn_limited(db, extra, None).await
    }

    /// As `spawn_with`, under an open-files limit of `nofile` (soft and hard) when given.
    pub async fn spawn_limited(db: &Path, extra: &[&str], nofile: Option<u32>) -> Self {
        let under = nofile.map_or(Under::Plain, Under::OpenFiles);
        Self::spawn_under(db, "127.0.0.1:0", extra, under).await
    }

    /// `chatserver serve --addr ADDR` on `db` with `extra`, started as `under` says.
    pub async fn spawn_under(db: &Path, addr: &str, extra: &[&str], under: Under<'_>) -> Self {
        let db = db_arg(db);
        let mut args: Vec<String> = ["serve", "--addr", addr, "--db", &db, "--bcrypt-cost", "4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let namespace = match under {
            Under::Namespace(n) => Some(n.to_string()),
            _ => None,
        };
        let limit = match under {
            Under::OpenFiles(n) => Some(n),
            _ => None,
        };
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let under = match (&namespace, limit) {
                (Some(n), _) => Under::Namespace(n),
                (None, Some(n)) => Under::OpenFiles(n),
                (None, None) => Under::Plain,
            };
            Self::spawn_blocking(&args, under)
        })
        .await
        .expect("spawn task")
    }

    fn spawn_blocking(args: &[&str], under: Under) -> Self {
        let mut child = command_wrapped(under, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatserver serve");
        let pid = child.id();

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let err_buf = stderr.clone();
        let stderr_grew = Arc::new(tokio::sync::Notify::new());
        let grew = stderr_grew.clone();
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
                grew.notify_waiters();
            }
        });

        let (tx, rx) = mpsc::channel::<String>();
        let out_pipe = child.stdout.take().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out_buf = stdout.clone();
        std::thread::spawn(move || {
            // Keeps draining stdout after the address line so the server never blocks on it.
            for line in BufReader::new(out_pipe).lines() {
                match line {
                    Ok(l) => {
                        out_buf.lock().unwrap().push(l.clone());
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
            stderr_grew,
            stdout,
            new_line: Arc::new(Mutex::new(rx)),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let next = proc.new_line.lock().unwrap().recv_timeout(left);
            match next {
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

    /// The banner: stdout up to its last line, "Try it …" or "Make accounts …" (it is written
    /// at once after the address line, so this waits for no more than that write).
    pub async fn banner(&self) -> String {
        let (lines, new_line) = (Arc::clone(&self.stdout), Arc::clone(&self.new_line));
        tokio::task::spawn_blocking(move || {
            let done = |l: &String| l.starts_with("  curl ") || l.starts_with("Make accounts");
            let deadline = std::time::Instant::now() + TIMEOUT;
            while !lines.lock().unwrap().iter().any(done) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if new_line.lock().unwrap().recv_timeout(left).is_err() {
                    panic!("no whole banner on stdout: {:?}", lines.lock().unwrap());
                }
            }
            let text = lines.lock().unwrap().join("\n");
            text
        })
        .await
        .expect("banner task")
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// stderr once it holds every one of `needles` (the server writes its log in bursts, a
    /// moment after the lines are logged), or as it is after 10 s.
    pub async fn stderr_with(&self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let grew = self.stderr_grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
            let text = self.stderr_text();
            if needles.iter().all(|n| text.contains(n)) {
                return text;
            }
            if tokio::time::timeout_at(deadline, grew).await.is_err() {
                return self.stderr_text();
            }
        }
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

// Small utilities

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
