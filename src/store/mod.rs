//! All SQL lives under this module, behind the typed operations of `Store` (one file per table
//! family adds its own). Reads run on the blocking pool with a pooled connection; every write goes
//! through the single writer (see `writer`), which batches concurrent writes into one
//! transaction and publishes their events to the hub after the commit. Callers never see a
//! connection. Every operation is written once against `db::Db`, which runs it on SQLite (the
//! default, `sqlite.rs`) or PostgreSQL (`postgres.rs`).

mod admin;
mod attachments;
mod blocks;
mod checkpoint;
mod classroom;
mod cluster;
mod copy;
pub(crate) mod db;
mod extras;
mod files;
mod groups;
mod members;
mod messages;
mod postgres;
mod rules;
mod search;
mod seed;
mod settings;
mod sqlite;
mod tokens;
mod users;
mod writer;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;
use tokio::sync::{oneshot, Semaphore};

use crate::broker::Bus;
use crate::config::{Database, SyncMode};
use crate::error::{Error, Result};
use crate::hub::Outbound;
use crate::metrics::Metrics;

pub(crate) use admin::Admin;
pub(crate) use attachments::{ChunkReader, Finished, Thumbnail, CHUNK};
pub(crate) use classroom::NewAccount;
pub(crate) use copy::copy;
pub(crate) use db::{Backend, Db};
pub(crate) use files::{create_private as create_private_file, DbLock};
pub(crate) use groups::Activity;
pub(crate) use messages::{Draft, Page, Sent};
pub(crate) use seed::{Hasher, SeedFile, DEFAULT as DEFAULT_SEED};
pub(crate) use tokens::{NewRefresh, Refreshed, Started};
pub(crate) use users::ProfileChanges;

/// A write's result and the events to publish once it is committed.
pub(crate) struct Written<T> {
    pub value: T,
    pub events: Vec<Outbound>,
}

pub(crate) fn written<T>(value: T, events: Vec<Outbound>) -> Written<T> {
    Written { value, events }
}

/// A write already queued for the writer (so one client's writes keep their order), resolving
/// to its result once it is committed, by which time its events are published.
#[must_use = "a write is queued, but its result is only known by awaiting it"]
pub(crate) struct Pending<T>(PendingState<T>);

enum PendingState<T> {
    Queued(oneshot::Receiver<Result<T>>),
    Refused(Option<Error>),
}

impl<T> Pending<T> {
    pub fn refused(err: Error) -> Self {
        Pending(PendingState::Refused(Some(err)))
    }

    /// The error of a write that was refused before it was queued (so it can be answered at
    /// once), or the write, still pending.
    pub fn queued(self) -> Result<Pending<T>> {
        match self.0 {
            PendingState::Refused(Some(err)) => Err(err),
            other => Ok(Pending(other)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match &mut self.0 {
            PendingState::Queued(rx) => Pin::new(rx).poll(cx).map(|answer| {
                answer.unwrap_or_else(|_| Err(Error::unavailable("the server is stopping")))
            }),
            PendingState::Refused(err) => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| Error::internal("a refused write was polled twice")))),
        }
    }
}

type ReadPool = r2d2::Pool<SqliteConnectionManager>;

/// Connections in the read pool: on a machine of a few cores, more SQLite reads at once than
/// this only take turns on them, and every connection holds its own copy of the schema and of
/// its prepared statements.
pub(crate) const READ_POOL: usize = 8;

/// A reader connection's page cache, in KiB (negative: SQLite's unit for a size in KiB).
const READER_CACHE: &str = "PRAGMA cache_size = -256";

/// How much one user may hold: groups owned, and conversations belonged to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    pub groups_owned: usize,
    pub memberships: usize,
}

impl Caps {
    /// For the operator (the seed, the command line): no caps.
    pub const NONE: Caps = Caps {
        groups_owned: usize::MAX,
        memberships: usize::MAX,
    };
}

#[derive(Clone)]
pub(crate) struct Store {
    engine: Arc<Engine>,
    /// One permit per read connection: a read waits for its turn here, as a task, rather
    /// than on a blocking thread of its own that waits for a connection (a storm of socket
    /// starts otherwise ran the blocking pool up to its limit, each thread keeping a stack
    /// and an allocator cache after the storm).
    reads: Arc<Semaphore>,
    writer: Arc<writer::Writer>,
    metrics: Arc<Metrics>,
    caps: Caps,
}

/// The backend's own part of the store: where reads get a connection.
enum Engine {
    Lite {
        /// The read connections; `None` once the store is closed.
        pool: RwLock<Option<ReadPool>>,
        file: DbFile,
    },
    Pg(postgres::Pg),
}

/// The database file the store opened, to notice it being deleted or replaced.
struct DbFile {
    path: std::path::PathBuf,
    identity: Option<(u64, u64)>,
    gone: AtomicBool,
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database, and starts the
    /// writer. Runs on a blocking thread of the runtime.
    pub fn open(
        db: &Database,
        sync: SyncMode,
        caps: Caps,
        bus: Arc<Bus>,
        metrics: Arc<Metrics>,
    ) -> Result<Store> {
        let (engine, conn) = match db {
            Database::File(path) => open_sqlite(path, sync)?,
            Database::Postgres(url) => {
                let (pg, conn) = postgres::Pg::open(url, bus.joined())?;
                (Engine::Pg(pg), db::Conn::Pg(conn))
            }
        };
        let writer = writer::Writer::start(conn, bus, Arc::clone(&metrics))?;
        Ok(Store {
            engine: Arc::new(engine),
            reads: Arc::new(Semaphore::new(READ_POOL)),
            writer: Arc::new(writer),
            metrics,
            caps,
        })
    }

    pub fn backend(&self) -> Backend {
        match *self.engine {
            Engine::Lite { .. } => Backend::Sqlite,
            Engine::Pg(_) => Backend::Postgres,
        }
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T> + Send + 'static,
    {
        let metrics = Arc::clone(&self.metrics);
        let waiting = Instant::now();
        let _turn = self
            .reads
            .acquire()
            .await
            .map_err(|_| Error::unavailable("the server is stopping"))?;
        let task = match &*self.engine {
            Engine::Lite { pool, .. } => {
                let pool = pool
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .ok_or_else(|| Error::unavailable("the server is stopping"))?;
                tokio::task::spawn_blocking(move || {
                    let conn = pool.get()?;
                    metrics
                        .pool_wait_seconds
                        .observe(waiting.elapsed().as_secs_f64());
                    f(&Db::Lite(&conn))
                })
            }
            Engine::Pg(pg) => {
                let (pool, rt) = pg.pool();
                tokio::task::spawn_blocking(move || {
                    let conn = db::PgConn::from_pool(&pool, rt)?;
                    metrics
                        .pool_wait_seconds
                        .observe(waiting.elapsed().as_secs_f64());
                    f(&Db::Pg(&conn))
                })
            }
        };
        task.await
            .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    }

    /// Queues `f` for the writer's next transaction.
    fn write<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<Written<T>> + Send + 'static,
    {
        self.queue(f, (writer::Rules::MayChange, writer::Undo::Savepoint))
    }

    /// Queues `f`, which changes no posting rule (no member, role, mute, name or conversation
    /// setting), so the writer keeps the rules it knows across it (`rules`). Only a send to an
    /// existing group and the search index's catching up are such writes.
    fn write_keeping_rules<T, F>(&self, f: F, undo: writer::Undo) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<Written<T>> + Send + 'static,
    {
        self.queue(f, (writer::Rules::Kept, undo))
    }

    fn queue<T, F>(&self, f: F, kind: (writer::Rules, writer::Undo)) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<Written<T>> + Send + 'static,
    {
        if self.file_gone() {
            return Pending::refused(Error::unavailable(
                "the database file was removed or replaced; the server must be restarted",
            ));
        }
        let (tx, rx) = oneshot::channel();
        match self.writer.submit(f, kind, tx) {
            Ok(()) => Pending(PendingState::Queued(rx)),
            Err(e) => Pending::refused(e),
        }
    }

    fn file_gone(&self) -> bool {
        match &*self.engine {
            Engine::Lite { file, .. } => file.gone.load(Ordering::Relaxed),
            Engine::Pg(_) => false,
        }
    }

    /// Closes the database for a clean stop: the writes queued so far are committed, the WAL is
    /// folded into the database file, and every connection is closed, so that the last one to
    /// close removes the `-wal` and `-shm` and the file alone holds everything. Reads already
    /// running finish on their connection; later reads and writes answer 503.
    pub async fn close(&self) {
        if let Engine::Lite { pool, .. } = &*self.engine {
            drop(pool.write().unwrap_or_else(|e| e.into_inner()).take());
        }
        self.writer.stop().await;
        if let Engine::Pg(pg) = &*self.engine {
            pg.release().await;
        }
    }

    /// True when the database answers a query and is still the file the server opened.
    pub async fn healthy(&self) -> bool {
        let lock_held = match &*self.engine {
            Engine::Pg(pg) => pg.holds_lock(),
            Engine::Lite { .. } => true,
        };
        lock_held
            && !self.file_gone()
            && self
                .read(|c| c.query_row("SELECT 1", db::args![], |r| r.get::<i64>(0)))
                .await
                .is_ok()
    }

    /// Notices the database file deleted or replaced under the server (another file at its
    /// path): from then on `/healthz` and every write answer 503. Called about once a second.
    pub fn check_file(&self) {
        let Engine::Lite { file, .. } = &*self.engine else {
            return;
        };
        if file.gone.load(Ordering::Relaxed) {
            return;
        }
        let now = files::identity(&file.path);
        if now.is_none() || now != file.identity {
            file.gone.store(true, Ordering::Relaxed);
            tracing::error!(
                db = %file.path.display(),
                "the database file was deleted or replaced; writes are refused until a restart"
            );
        }
    }
}

/// A SQLite file's read pool and the writer's connection.
fn open_sqlite(path: &Path, sync: SyncMode) -> Result<(Engine, db::Conn)> {
    let mut conn = sqlite::open_connection(path, sync)?;
    files::make_private(path);
    sqlite::migrate(&mut conn)?;
    // Messages the command line stored while the server was stopped are indexed now.
    search::index_all(&conn)?;
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(move |c| {
            sqlite::configure(c, sync)?;
            // A reader's page cache is small: in WAL mode SQLite empties it whenever the file
            // changed since the reader's last transaction, which under writes is every time,
            // so a large one buys little; the file's pages stay in the OS's cache anyway. At
            // SQLite's default (2 MB each) the readers kept several MB after a burst of reads.
            c.execute_batch(READER_CACHE)
        });
    let pool = r2d2::Pool::builder()
        .max_size(READ_POOL as u32)
        .min_idle(Some(2))
        .build(manager)
        .map_err(|e| Error::unavailable(format!("cannot open database {}: {e}", path.display())))?;
    let file = DbFile {
        path: path.to_path_buf(),
        identity: files::identity(path),
        gone: AtomicBool::new(false),
    };
    let engine = Engine::Lite {
        pool: RwLock::new(Some(pool)),
        file,
    };
    Ok((engine, db::Conn::Lite(conn)))
}
