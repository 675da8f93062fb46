//! PostgreSQL for the tests: with `CHATSERVER_TEST_DB=postgres` every test server stores in
//! PostgreSQL instead of a SQLite file. One PostgreSQL server per test binary, started on first
//! use as a child process on loopback (initdb refuses root, so as the `postgres` user when the
//! tests run as root; `initdb -N` and `fsync=off` keep it fast); a database per test.
//!
//! The server stops when the test binary exits: its shell watches a pipe from this process,
//! which the system closes however the process ends.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// True when the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("CHATSERVER_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// The `--db` for a test's database: the SQLite file at `path`, or (on PostgreSQL) a database
/// of its own, the same one each time the same path is given.
pub fn db_arg(path: &Path) -> String {
    let given = path.to_str().expect("a UTF-8 path");
    if !on_postgres() || given.starts_with("postgres://") {
        return given.to_string();
    }
    static NAMED: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut named = NAMED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    named
        .entry(path.to_path_buf())
        .or_insert_with(|| Postgres::get().new_database())
        .clone()
}

/// Says so and answers true when a test checks what only a SQLite file has (its files, its
/// lock file, its pragmas): such a test returns early on PostgreSQL.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: {what}");
    }
    on_postgres()
}

pub struct Postgres {
    port: u16,
    bin: PathBuf,
    _dir: tempfile::TempDir,
    _child: Mutex<Child>,
    /// Closed when this process ends, which stops the server.
    _lifeline: Mutex<ChildStdin>,
    next: AtomicUsize,
}

impl Postgres {
    /// Whether Debian's PostgreSQL server is installed.
    pub fn installed() -> bool {
        std::panic::catch_unwind(bin_dir).is_ok()
    }

    pub fn get() -> &'static Postgres {
        static SERVER: OnceLock<Postgres> = OnceLock::new();
        SERVER.get_or_init(Postgres::start)
    }

    /// A new, empty database; its URL.
    pub fn new_database(&self) -> String {
        let name = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Through the server's Unix socket: a server inside a network namespace of a test
    /// reaches it too (the namespace has a loopback of its own, but the same files).
    pub fn url(&self, database: &str) -> String {
        let dir = self
            ._dir
            .path()
            .to_str()
            .expect("a UTF-8 path")
            .replace('/', "%2F");
        format!("postgres://postgres@{dir}:{}/{database}", self.port)
    }

    /// Runs `sql` on `database` with psql; its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let as_root = is_root();
        if as_root {
            chown_to_postgres(dir.path());
        }
        let initdb = shell(
            as_root,
            &format!(
                "{}/initdb -N -A trust -U postgres -E UTF8 --locale=C -D {} >/dev/null",
                bin.display(),
                data.display()
            ),
        )
        .status()
        .expect("run initdb");
        assert!(initdb.success(), "initdb failed");
        let port = free_port();
        let script = format!(
            "{bin}/postgres -D {data} -p {port} -k {sock} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=400 -c shared_buffers=64MB >{log} 2>&1 & pg=$!; \
             cat >/dev/null; kill -INT $pg; wait $pg; rm -rf {dir}",
            bin = bin.display(),
            data = data.display(),
            sock = dir.path().display(),
            log = dir.path().join("postgres.log").display(),
            dir = dir.path().display(),
        );
        let mut child = shell(as_root, &script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start postgres");
        let lifeline = child.stdin.take().expect("a pipe to the server's shell");
        let server = Postgres {
            port,
            bin,
            _dir: dir,
            _child: Mutex::new(child),
            _lifeline: Mutex::new(lifeline),
            next: AtomicUsize::new(0),
        };
        server.wait_ready();
        server
    }

    /// Bounded: PostgreSQL answers within seconds or the tests fail.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self._lifeline.lock().map(|mut l| l.flush());
    }
}

fn shell(as_postgres: bool, script: &str) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", "sh", "-c", script]);
        cmd
    } else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_to_postgres(dir: &Path) {
    let ok = Command::new("chown")
        .args(["postgres:postgres", dir.to_str().expect("a UTF-8 path")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chown {} to postgres", dir.display());
}

/// Debian's PostgreSQL binaries (the newest version installed).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server binary")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}
