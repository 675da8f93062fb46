//! The server in-process, on 127.0.0.1:0 with its own temporary database.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatserver::config::{Config, Database};

use super::*;

/// The library server on 127.0.0.1:0 with a database in its own temporary directory.
pub struct TestServer {
    pub api: Api,
    /// Holds the temporary directory (and the database in it) until the server is dropped.
    _dir: tempfile::TempDir,
    pub db_path: PathBuf,
    tweak: Tweak,
    server: Option<chatserver::app::Server>,
}

/// How a test adjusts `Config::for_tests` (kept for restarts).
type Tweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

impl Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

async fn boot(db_path: &Path, tweak: &Tweak) -> chatserver::app::Server {
    let mut cfg = Config::for_tests(db_path.to_path_buf());
    cfg.db = Database::parse(&db_arg(db_path));
    tweak(&mut cfg);
    tokio::time::timeout(TIMEOUT, chatserver::app::start(cfg))
        .await
        .expect("server start timed out")
        .expect("server failed to start")
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with `Config::for_tests` adjusted by `tweak` (kept for restarts).
    pub async fn start_with(tweak: fn(&mut Config)) -> Self {
        Self::start_configured(tweak).await
    }

    /// As `start_with`, for a tweak that needs values of its own (an address, a limit).
    pub async fn start_configured(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        let tweak: Tweak = Arc::new(tweak);
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("chat.db");
        let server = boot(&db_path, &tweak).await;
        let api = Api::new(server.addr());
        TestServer {
            api,
            _dir: dir,
            db_path,
            tweak,
            server: Some(server),
        }
    }

    /// Graceful shutdown, then a new server on the same database file.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let server = boot(&self.db_path, &self.tweak).await;
        self.api = Api::new(server.addr());
        self.server = Some(server);
    }

    pub async fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            tokio::time::timeout(TIMEOUT, server.shutdown())
                .await
                .expect("graceful shutdown timed out");
        }
    }

    /// Takes the server out, e.g. to shut it down from another task.
    /// The running server (its state, route table and addresses).
    pub fn server(&self) -> &chatserver::app::Server {
        self.server.as_ref().expect("server running")
    }

    pub fn take_server(&mut self) -> chatserver::app::Server {
        self.server.take().expect("server running")
    }

    /// The SQLite file itself (for what only SQLite has; see `sqlite_only`).
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db_path).expect("open db file")
    }

    /// Runs `sql` (one or more statements, in SQL both backends read) on the server's
    /// database, behind the server's back; the last statement's rows, each column as text
    /// (NULL as an empty string).
    pub fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        sql_at(&self.db_path, sql)
    }

    /// The first column of the first row of `sql`, as a number.
    pub fn sql_number(&self, sql: &str) -> i64 {
        let rows = self.sql(sql);
        let cell = rows.first().and_then(|r| r.first()).expect("a row");
        cell.parse()
            .unwrap_or_else(|_| panic!("{sql}: {cell:?} is not a number"))
    }
}

/// `TestServer::sql` on the database of `path` (see `db_arg`).
pub fn sql_at(path: &Path, sql: &str) -> Vec<Vec<String>> {
    if on_postgres() {
        let url = db_arg(path);
        let database = url.rsplit('/').next().expect("a database name");
        return Postgres::get()
            .psql(database, sql)
            .lines()
            .map(|line| line.split('|').map(str::to_string).collect())
            .collect();
    }
    let conn = rusqlite::Connection::open(path).expect("open db file");
    let statements: Vec<&str> = sql.split(';').filter(|s| !s.trim().is_empty()).collect();
    let (last, before) = statements.split_last().expect("a statement");
    for s in before {
        conn.execute_batch(s).expect("run the statement");
    }
    let mut stmt = conn.prepare(last).expect("prepare the statement");
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).expect("run the statement");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("a row") {
        out.push(
            (0..columns)
                .map(|i| match row.get_ref(i).expect("a column") {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                })
                .collect(),
        );
    }
    out
}
