//! All SQL lives under this module. Reads run on the blocking pool with a pooled connection;
//! every write goes through the single writer (see `writer`), which batches concurrent writes
//! into one transaction and publishes their events to the hub after the commit.

pub mod groups;
pub mod messages;
pub mod seed;
pub mod settings;
pub mod tokens;
pub mod users;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::config::SyncMode;
use crate::error::ApiError;
use crate::hub::{Hub, Outbound};
use crate::metrics::Metrics;

pub use writer::Written;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Opens a connection with the pragmas every connection of ours uses.
pub fn open_connection(path: &Path, sync: SyncMode) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
    configure(&conn, sync).map_err(|e| format!("cannot use database {}: {e}", path.display()))?;
    Ok(conn)
}

fn configure(conn: &Connection, sync: SyncMode) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // SQLite's own lower() and LIKE fold ASCII only; names are not only ASCII.
    conn.create_scalar_function(
        "casefold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(ctx
                .get::<Option<String>>(0)?
                .map(|s| s.to_lowercase())
                .unwrap_or_default())
        },
    )?;
    // journal_mode answers with a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys=ON; PRAGMA synchronous={};",
        sync.pragma()
    ))
}

/// Applies pending migrations; returns the names of those applied.
pub fn migrate(conn: &mut Connection) -> Result<Vec<String>, String> {
    let report = embedded::migrations::runner()
        .run(conn)
        .map_err(|e| format!("migration failed: {e}"))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    writer: Arc<writer::Writer>,
    metrics: Arc<Metrics>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer.
    pub fn open(
        path: &Path,
        sync: SyncMode,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Result<Store, String> {
        let mut conn = open_connection(path, sync)?;
        migrate(&mut conn)?;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| configure(c, sync));
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(2))
            .build(manager)
            .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
        let writer = writer::Writer::start(conn, hub, Arc::clone(&metrics))?;
        Ok(Store {
            pool,
            writer: Arc::new(writer),
            metrics,
        })
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let (pool, metrics) = (self.pool.clone(), Arc::clone(&self.metrics));
        tokio::task::spawn_blocking(move || {
            let waiting = Instant::now();
            let conn = pool.get()?;
            metrics
                .pool_wait_seconds
                .observe(waiting.elapsed().as_secs_f64());
            f(&conn)
        })
        .await
        .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?
    }

    /// Runs `f` inside the writer's next transaction; answers after the commit, by which time
    /// the events it returned have been published.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Written<T>, ApiError> + Send + 'static,
    {
        self.submit(f)?.await
    }

    /// Queues `f` for the writer now (so writes from one client keep their order) and returns
    /// a future for its result.
    pub fn submit<T, F>(
        &self,
        f: F,
    ) -> Result<impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Written<T>, ApiError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.writer.submit(f, tx)?;
        Ok(async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::Unavailable("the server is stopping".into())))
        })
    }

    /// True when the database answers a query.
    pub async fn healthy(&self) -> bool {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .is_ok()
    }
}

/// A write's result and the events to publish once it is committed.
pub fn written<T>(value: T, events: Vec<Outbound>) -> Written<T> {
    Written { value, events }
}

/// Current time as the API writes it: RFC 3339 UTC with milliseconds.
pub fn now_sql() -> &'static str {
    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
}
