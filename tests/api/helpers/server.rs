//! The server in-process, on 127.0.0.1:0 with its own temporary database.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatserver::config::Config;

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

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db_path).expect("open db file")
    }
}
