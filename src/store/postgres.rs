//! PostgreSQL itself: connecting, the embedded migrations (migrations/postgres), the pool, and
//! the advisory lock that keeps a second server off the same database, as the lock file does
//! for SQLite.

use std::sync::Mutex;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::{Client, NoTls};

use super::db::PgConn;
use super::READ_POOL;
use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock a server holds on its database for as long as it runs ("chatsrv").
const SERVE_LOCK: i64 = 0x0063_6861_7473_7276;
/// Held while migrating, so instances starting together migrate one at a time.
const MIGRATE_LOCK: i64 = SERVE_LOCK + 1;

/// The pool the reads and the writer take their connections from, and the connection that
/// holds the lock.
pub(super) struct Pg {
    pool: Pool,
    rt: Handle,
    /// `None` once released by a clean stop.
    lock: Mutex<Option<Client>>,
}

impl Pg {
    /// Takes the lock, migrates, and opens the pool; also hands back the writer's connection.
    /// Runs on a blocking thread of the runtime. `shared`: this instance is joined to others
    /// by a broker, and takes the lock in shared mode (so do they); a server alone takes it
    /// exclusively, so the two kinds keep each other off one database.
    pub fn open(url: &str, shared: bool) -> Result<(Pg, PgConn)> {
        let rt = Handle::current();
        let config = parse(url)?;
        let lock = rt.block_on(lock(&config, shared))?;
        rt.block_on(migrate(&config))?;
        // The reads' connections, the writer's, and one to spare.
        let pool = pool(config, READ_POOL + 2)?;
        let writer = PgConn::from_pool(&pool, rt.clone())?;
        let lock = Mutex::new(Some(lock));
        Ok((Pg { pool, rt, lock }, writer))
    }

    pub fn pool(&self) -> (Pool, Handle) {
        (self.pool.clone(), self.rt.clone())
    }

    /// The lock is held only while its connection lives.
    pub fn holds_lock(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    /// A clean stop: the pool's connections close and the lock is given back now, so the next
    /// server may start at once (a crash gives it back when PostgreSQL sees the connection go).
    pub async fn release(&self) {
        self.pool.close();
        let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(client) = lock {
            // Whichever mode it was taken in.
            let unlock = "SELECT pg_advisory_unlock($1), pg_advisory_unlock_shared($1)";
            if let Err(e) = client.execute(unlock, &[&SERVE_LOCK]).await {
                tracing::warn!(error = %e, "releasing the database lock");
            }
        }
    }
}

/// A pool of at most `size` connections, made as they are needed.
pub(crate) fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::internal(format!("cannot build the PostgreSQL pool: {e}")))
}

pub(crate) fn parse(url: &str) -> Result<tokio_postgres::Config> {
    url.parse()
        .map_err(|e| Error::invalid("invalid_db", format!("--db {}: {e}", redacted(url))))
}

fn redacted(url: &str) -> String {
    crate::config::Database::Postgres(url.to_string()).to_string()
}

pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        // The error's own text is only "error connecting to server"; the cause says why.
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
        Error::unavailable(format!("cannot connect to PostgreSQL: {e}{cause}"))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The lock's connection names its process, so a server refused can say who holds it.
async fn lock(config: &tokio_postgres::Config, shared: bool) -> Result<Client> {
    let mut named = config.clone();
    named.application_name(format!("chatserver pid {}", std::process::id()));
    let client = connect(&named).await?;
    let take = match shared {
        true => "SELECT pg_try_advisory_lock_shared($1)",
        false => "SELECT pg_try_advisory_lock($1)",
    };
    let held: bool = client.query_one(take, &[&SERVE_LOCK]).await?.get(0);
    if held {
        return Ok(client);
    }
    let holder = client
        .query_opt(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((CAST(l.classid AS bigint) << 32) | CAST(l.objid AS bigint)) = $1",
            &[&SERVE_LOCK],
        )
        .await
        .ok()
        .flatten()
        .map(|r| format!("{}, from {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .unwrap_or_else(|| "another process".into());
    let message = match shared {
        true => format!(
            "this PostgreSQL database is served by a chatserver without --broker ({holder}); \
             stop it, or give every instance the same --broker"
        ),
        false => format!(
            "this PostgreSQL database is already served by another chatserver ({holder}); \
             stop it first, or give every instance the same --broker to run them together"
        ),
    };
    Err(Error::Conflict {
        code: "in_use",
        message,
    })
}

/// Applies pending migrations; returns the names of those applied.
pub(crate) async fn migrate(config: &tokio_postgres::Config) -> Result<Vec<String>> {
    let mut client = connect(config).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(|e| Error::internal(format!("migration failed: {e}")));
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await;
    Ok(report?
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
