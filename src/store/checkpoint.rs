//! Checkpoints on a thread of their own (SQLite). By default the connection whose commit takes
//! the WAL past 1,000 pages folds it into the database file there and then: two fsyncs and the
//! copying, 15-25 ms here, inside the writer thread, so every write queued meanwhile waited,
//! and that was the whole p99 of plain chat (BENCHMARKS.md). The writer's connection now only
//! reports its WAL's size (SQLite's WAL hook, which replaces the automatic checkpoint), and past
//! 1,000 pages it wakes this thread, which runs a PASSIVE checkpoint on a connection of its
//! own: that copies what no reader still needs while the writer goes on committing. The
//! writer's last checkpoint at stop (TRUNCATE) is unchanged, after this thread has stopped.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

/// WAL pages (4 KiB) that make the writer ask for a checkpoint: SQLite's own threshold.
const PAGES: c_int = 1000;

/// WAL pages past which the writer waits for the checkpoint it asked for. While the writer keeps
/// committing, a passive checkpoint never reaches the WAL's end, so the WAL is never started
/// over and grows: under uploads at disk speed sends then waited 80-370 ms (p99), and at
/// 40,000 sends a second a WAL growing to 32 MB cost 12 % of them. Waiting here at 8 MB lets
/// the checkpoint finish and the WAL restart: sends under uploads 7-14 ms p99, and 6 % fewer
/// sends a second at saturation than checkpoints in the writer (BENCHMARKS.md).
const BACKSTOP: c_int = 2 * PAGES;

thread_local! {
    /// The WAL's size in pages after the last commit on this thread, as the WAL hook (a plain
    /// function) reports it. The hook runs on the committing thread, which is the writer.
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

fn hook(_: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    Ok(())
}

/// The checkpoint thread, or nothing (PostgreSQL, a database in memory, or a thread that
/// could not start: then SQLite's automatic checkpoint stays on).
pub(super) struct Checkpointer {
    wake: Option<mpsc::SyncSender<()>>,
    /// One message after each checkpoint.
    done: Option<mpsc::Receiver<()>>,
    /// The WAL size at which to ask again: one checkpoint per 1,000 pages it grew, not one
    /// per commit while it stays large (a checkpoint that cannot reach the WAL's end leaves
    /// it large, and each costs two fsyncs).
    next: Cell<c_int>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Takes the checkpoints of the writer's connection `writer` over.
    pub fn start(writer: Option<&Connection>) -> Checkpointer {
        let none = Checkpointer {
            wake: None,
            done: None,
            next: Cell::new(PAGES),
            thread: None,
        };
        let Some((writer, path)) = writer.and_then(|w| Some((w, w.path()?.to_string()))) else {
            return none;
        };
        if path.is_empty() {
            return none; // in memory: nothing to checkpoint
        }
        let conn = match Connection::open(&path) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread; the writer checkpoints");
                return none;
            }
        };
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let (tell, done) = mpsc::sync_channel::<()>(1);
        let spawned = thread::Builder::new()
            .name("db-checkpoint".into())
            .spawn(move || run(&conn, &woken, &tell));
        match spawned {
            Ok(thread) => {
                writer.wal_hook(Some(hook));
                Checkpointer {
                    wake: Some(wake),
                    done: Some(done),
                    next: Cell::new(PAGES),
                    thread: Some(thread),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread; the writer checkpoints");
                none
            }
        }
    }

    /// After each commit, on the writer thread: wakes the checkpointer if the WAL has grown
    /// past the threshold (it stays past it while readers hold old pages, so this repeats).
    pub fn committed(&self) {
        let pages = WAL_PAGES.get();
        if pages < self.next.get().saturating_sub(PAGES) {
            self.next.set(PAGES); // the WAL started over
        }
        if pages < self.next.get() {
            return;
        }
        self.next.set(pages.saturating_add(PAGES));
        if let (Some(wake), Some(done)) = (&self.wake, &self.done) {
            let _ = done.try_recv(); // forget checkpoints finished before this commit
            let _ = wake.try_send(()); // already awake with one queued: enough
            if pages >= BACKSTOP {
                let _ = done.recv_timeout(std::time::Duration::from_secs(2));
            }
        }
    }

    /// Stops the thread, after the checkpoint it may be running.
    pub fn stop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, woken: &mpsc::Receiver<()>, done: &mpsc::SyncSender<()>) {
    while woken.recv().is_ok() {
        let checkpoint = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match checkpoint {
            Ok((log, copied)) => tracing::trace!(log, copied, "checkpoint"),
            Err(e) => tracing::warn!(error = %e, "checkpoint failed; the next one retries"),
        }
        let _ = done.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 MB of commits on a connection with the hook: its database file grows only when
    /// the checkpoint thread folds the WAL into it; the commits themselves never do.
    #[test]
    fn the_writer_never_checkpoints_and_the_thread_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .unwrap();
        writer
            .execute_batch("CREATE TABLE t (b BLOB NOT NULL)")
            .unwrap();
        let fill = |n: usize| {
            for _ in 0..n {
                writer
                    .execute("INSERT INTO t (b) VALUES (zeroblob(100000))", [])
                    .unwrap();
            }
        };
        let size = || std::fs::metadata(&path).unwrap().len();

        // The hook alone: past 1,000 pages, the commits still do not checkpoint.
        writer.wal_hook(Some(hook));
        fill(80);
        assert!(WAL_PAGES.get() > PAGES, "{} pages", WAL_PAGES.get());
        assert!(
            size() < 1_000_000,
            "the writer checkpointed: {} bytes",
            size()
        );

        let mut checkpoints = Checkpointer::start(Some(&writer));
        fill(1);
        checkpoints.committed();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while size() < 8_000_000 && std::time::Instant::now() < deadline {
            thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(size() >= 8_000_000, "no checkpoint: {} bytes", size());
        checkpoints.stop();
    }
}
