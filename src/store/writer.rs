//! The single writer: SQLite has one writer at a time, so instead of many connections queueing
//! on its lock, one thread owns the write connection and runs queued writes in batches: one
//! transaction per batch (group commit), one savepoint per write so a failing write undoes only
//! itself. After the commit it publishes each write's events to the hub, in commit order, and
//! only then answers the writers. A message is therefore never on a socket before it is on disk,
//! and a conversation's messages reach the hub in id order.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::hub::{EventKind, Hub, Outbound};
use crate::metrics::Metrics;

/// Most writes in one transaction; bounds the latency one batch adds to the next.
const MAX_BATCH: usize = 512;

pub struct Written<T> {
    pub value: T,
    pub events: Vec<Outbound>,
}

/// A queued write, type-erased. It runs on the writer's connection (or is told why it cannot)
/// and hands back what to do after the commit.
type Job = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> Option<Done> + Send>;

/// A write that succeeded inside the transaction and waits for the commit.
struct Done {
    events: Vec<Outbound>,
    /// Answers the caller: `None` after a commit, or the commit's error.
    answer: Box<dyn FnOnce(Option<ApiError>) + Send>,
}

pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection, hub: Arc<Hub>, metrics: Arc<Metrics>) -> Result<Writer, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, hub, metrics))
            .map_err(|e| format!("cannot start the database writer: {e}"))?;
        Ok(Writer { tx })
    }

    pub fn submit<T, F>(
        &self,
        f: F,
        reply: oneshot::Sender<Result<T, ApiError>>,
    ) -> Result<(), ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Written<T>, ApiError> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Ok(conn) => in_savepoint(conn, f),
                Err(e) => Err(ApiError::from(clone_error(e))),
            };
            match outcome {
                Ok(Written { value, events }) => Some(Done {
                    events,
                    answer: Box::new(move |commit_error| {
                        let _ = reply.send(match commit_error {
                            None => Ok(value),
                            Some(e) => Err(e),
                        });
                    }),
                }),
                Err(e) => {
                    // Nothing of this write is in the transaction any more: answer now.
                    let _ = reply.send(Err(e));
                    None
                }
            }
        });
        self.tx
            .send(job)
            .map_err(|_| ApiError::Unavailable("the database writer has stopped".into()))
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<Written<T>, ApiError>,
) -> Result<Written<T>, ApiError> {
    conn.execute_batch("SAVEPOINT write")?;
    // A bug in one write must not take the writer thread (and every later write) down with it.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(ApiError::internal("a write panicked; it was rolled back")));
    match outcome {
        Ok(written) => match conn.execute_batch("RELEASE write") {
            Ok(()) => Ok(written),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO write; RELEASE write");
                Err(e.into())
            }
        },
        Err(e) => {
            if let Err(rollback) = conn.execute_batch("ROLLBACK TO write; RELEASE write") {
                tracing::error!(error = %rollback, "rolling back a failed write");
            }
            Err(e)
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, hub: Arc<Hub>, metrics: Arc<Metrics>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        metrics.write_batch_size.observe(batch.len() as f64);
        run_batch(&conn, batch, &hub, &metrics);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    tracing::debug!("database writer stopped");
}

fn run_batch(conn: &Connection, batch: Vec<Job>, hub: &Hub, metrics: &Metrics) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "cannot begin a write transaction");
        for job in batch {
            job(Err(&e));
        }
        return;
    }
    let mut done = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        done.extend(job(Ok(conn)));
        if conn.is_autocommit() {
            // SQLite abandoned the whole transaction (disk full, an I/O error): nothing of this
            // batch is stored. The rest must not run outside it, in autocommit, where it would
            // be stored but answered as failed. Every write of the batch is told it failed.
            tracing::error!("the write transaction was abandoned; the batch is refused");
            let abandoned = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the write was abandoned; nothing was stored".into()),
            );
            for d in done {
                (d.answer)(Some(ApiError::from(clone_error(&abandoned))));
            }
            for job in jobs {
                job(Err(&abandoned));
            }
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for d in done {
                for event in d.events {
                    if let Outbound::Group(_, e) = &event {
                        if matches!(e.kind, EventKind::Message { .. }) {
                            metrics.messages_stored.inc();
                        }
                    }
                    hub.publish(event);
                }
                (d.answer)(None);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            for d in done {
                (d.answer)(Some(ApiError::from(clone_error(&e))));
            }
        }
    }
}

/// rusqlite errors are not Clone; keep the code (what `ApiError` maps on) and the text.
fn clone_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
