//! The single writer: SQLite has one writer at a time, so instead of many connections queueing
//! on its lock, one thread owns the write connection and runs queued writes in batches: one
//! transaction per batch (group commit), one savepoint per write so a failing write undoes only
//! itself (a plain send on SQLite needs none: see `Undo`). On PostgreSQL it is the same: one
//! connection, batches, savepoints; instances joined by a broker also number and log each
//! batch (see `broker`). After the commit it publishes each write's events, in commit order,
//! and only then answers the writers. A message is therefore never on a socket before it is
//! on disk, and a conversation's messages reach the hub in id order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use tokio::sync::oneshot;

use super::checkpoint::Checkpointer;
use super::db::{args, Conn, Db};
use super::Written;
use super::{cluster, search};
use crate::broker::{Batch, Bus};
use crate::error::{Error, Result};
#[cfg(test)]
use crate::hub::Event;
use crate::hub::Outbound;
use crate::hub::Route;
use crate::metrics::Metrics;
#[cfg(test)]
use crate::protocol::ServerFrame;

/// Most writes in one transaction; bounds the latency one batch adds to the next.
const MAX_BATCH: usize = 512;

/// A queued write, type-erased. It runs on the writer's connection (or is told why it cannot)
/// and hands back what to do after the commit.
type Job = Box<dyn FnOnce(Result<&Db, &Error>) -> Option<Done> + Send>;

/// Whether a write may change the posting rules the writer keeps (`rules`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rules {
    /// It changes no member, role, mute, name or conversation setting.
    Kept,
    MayChange,
}

/// How a failing write is undone without undoing the rest of its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Undo {
    /// Its own savepoint: whatever it changed before it failed is rolled back.
    Savepoint,
    /// No savepoint, for a write that reads before its first change and does nothing after
    /// its changes that can fail but for the database itself: a plain send (its insert, then
    /// its row in the search queue and its mentions). A failing statement undoes itself in
    /// SQLite, so such a write fails having changed nothing. Should it still fail after a change (a bug), the writer rolls
    /// the whole batch back and refuses it, so nothing half-done is ever committed. The
    /// savepoint's journal of first-touched pages was ~7 % of the writer's time. On
    /// PostgreSQL, where a failing statement aborts the whole transaction, it is `Savepoint`.
    Statement,
}

/// A write that succeeded inside the transaction and waits for the commit.
struct Done {
    events: Vec<Outbound>,
    /// Answers the caller: `None` after a commit, or the commit's error.
    answer: Box<dyn FnOnce(Option<Error>) + Send>,
}

/// What the writer thread is sent: a write, or the order to stop.
enum Order {
    Write(Job, Rules),
    /// Finish the writes queued before, fold the WAL into the database file, close the
    /// connection, then answer.
    Stop(oneshot::Sender<()>),
}

pub(super) struct Writer {
    tx: mpsc::Sender<Order>,
    /// Messages committed but not yet in the search index (SQLite), as of the last commit.
    unindexed: Arc<AtomicUsize>,
}

impl Writer {
    pub fn start(conn: Conn, bus: Arc<Bus>, metrics: Arc<Metrics>) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Order>();
        let unindexed = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&unindexed);
        thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx, bus, metrics, &count))
            .map_err(|e| Error::internal(format!("cannot start the database writer: {e}")))?;
        Ok(Writer { tx, unindexed })
    }

    /// How many committed messages wait for the search index. Zero means every message
    /// answered before this call is searchable (the count is set after each commit).
    pub fn unindexed(&self) -> usize {
        self.unindexed.load(Ordering::Acquire)
    }

    pub fn submit<T, F>(
        &self,
        f: F,
        (rules, undo): (Rules, Undo),
        reply: oneshot::Sender<Result<T>>,
    ) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<Written<T>> + Send + 'static,
    {
        self.tx
            .send(Order::Write(job(f, undo, reply), rules))
            .map_err(|_| Error::unavailable("the server is stopping"))
    }

    /// Stops the writer once the writes already queued are done; resolves when its connection
    /// is closed. Later writes are refused.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Order::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Wraps a write and its reply into a job for the writer thread.
fn job<T, F>(f: F, undo: Undo, reply: oneshot::Sender<Result<T>>) -> Job
where
    T: Send + 'static,
    F: FnOnce(&Db) -> Result<Written<T>> + Send + 'static,
{
    Box::new(move |conn| {
        let outcome = match (conn, undo) {
            (Ok(conn), Undo::Statement) => by_statement(conn, f),
            (Ok(conn), Undo::Savepoint) => in_savepoint(conn, f),
            (Err(e), _) => Err(e.clone()),
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
    })
}

/// Runs `f`; a panic becomes an error. A bug in one write must not take the writer thread
/// (and every later write) down with it.
fn guarded<T>(conn: &Db, f: impl FnOnce(&Db) -> Result<Written<T>>) -> Result<Written<T>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(Error::internal("a write panicked; it was rolled back")))
}

/// `Undo::Statement`: on SQLite `f` without a savepoint; if it fails after a change, the
/// transaction is rolled back, which makes `run_jobs` refuse the whole batch. On PostgreSQL
/// in its savepoint.
fn by_statement<T>(conn: &Db, f: impl FnOnce(&Db) -> Result<Written<T>>) -> Result<Written<T>> {
    let Some(lite) = conn.lite() else {
        return in_savepoint(conn, f);
    };
    let before = lite.total_changes();
    let outcome = guarded(conn, f);
    if outcome.is_err() && lite.total_changes() != before {
        tracing::error!(
            "a write without a savepoint failed after a change; its batch is rolled back"
        );
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back the batch");
        }
    }
    outcome
}

fn in_savepoint<T>(conn: &Db, f: impl FnOnce(&Db) -> Result<Written<T>>) -> Result<Written<T>> {
    statement(conn, "SAVEPOINT write")?;
    let outcome = guarded(conn, f);
    match outcome {
        Ok(written) => match statement(conn, "RELEASE write") {
            Ok(()) => Ok(written),
            Err(e) => {
                let _ = roll_back(conn);
                Err(e)
            }
        },
        Err(e) => {
            if let Err(rollback) = roll_back(conn) {
                tracing::error!(error = %rollback, "rolling back a failed write");
            }
            Err(e)
        }
    }
}

fn roll_back(conn: &Db) -> Result<()> {
    statement(conn, "ROLLBACK TO write")?;
    statement(conn, "RELEASE write")
}

/// One savepoint statement: on SQLite from the connection's statement cache (parsing the SQL
/// of two savepoint statements per write was a few percent of the writer's time).
fn statement(conn: &Db, sql: &str) -> Result<()> {
    match conn.lite() {
        Some(_) => conn.execute(sql, args![]).map(drop),
        None => conn.execute_batch(sql),
    }
}

fn run(
    conn: Conn,
    rx: mpsc::Receiver<Order>,
    bus: Arc<Bus>,
    metrics: Arc<Metrics>,
    unindexed: &AtomicUsize,
) {
    let db = conn.db();
    if db.lite().is_some() {
        super::rules::keep();
    }
    let mut checkpoints = Checkpointer::start(db.lite());
    let mut stop = None;
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(order) = next.take() {
            match order {
                Order::Write(job, rules) => batch.push((job, rules)),
                Order::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let started = Instant::now();
            metrics.write_batch_size.observe(batch.len() as f64);
            run_batch(&db, batch, &bus, &metrics, unindexed);
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            checkpoints.committed();
        }
        if stop.is_some() {
            break;
        }
    }
    checkpoints.stop();
    // What waits for the search index (SQLite) is indexed now rather than at the next start.
    if let Some(lite) = db.lite() {
        if let Err(e) = search::index_all(lite) {
            tracing::warn!(error = %e, "indexing the queued messages for search at stop");
        }
    }
    // Everything committed is folded into the database file now, so the file alone holds it
    // even if a reader keeps the WAL open a moment longer (the last connection to close then
    // removes the WAL and the -shm).
    if let Some(lite) = db.lite() {
        if let Err(e) = lite.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "checkpointing the database at stop");
        }
    }
    drop(conn);
    tracing::debug!("database writer stopped");
    if let Some(ack) = stop {
        let _ = ack.send(());
    }
}

/// Runs and commits one batch; after its commit, and before anyone is answered, `unindexed`
/// says how many messages wait for the search index.
fn run_batch(
    conn: &Db,
    batch: Vec<(Job, Rules)>,
    bus: &Bus,
    metrics: &Metrics,
    unindexed: &AtomicUsize,
) {
    let begun = conn
        .begin_write()
        .and_then(|()| super::rules::check_others(conn))
        .and_then(|()| match bus.joined() {
            true => cluster::next_batch(conn).map(Some),
            false => Ok(None),
        });
    let seq = match begun {
        Ok(seq) => seq,
        Err(refused) => {
            tracing::error!(error = %refused, "cannot begin a write transaction");
            if conn.in_transaction() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for (job, _) in batch {
                job(Err(&refused));
            }
            return;
        }
    };
    match run_jobs(conn, batch) {
        Some(done) => commit(conn, done, seq, bus, metrics, unindexed),
        None => super::rules::forget(),
    }
}

/// Runs each write of the batch in its own savepoint. `None` when SQLite abandoned the whole
/// transaction (disk full, an I/O error): then nothing of this batch is stored, and the rest
/// must not run outside it, in autocommit, where it would be stored but answered as failed.
/// Every write of the batch has then been told it failed.
fn run_jobs(conn: &Db, batch: Vec<(Job, Rules)>) -> Option<Vec<Done>> {
    let mut done = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some((job, rules)) = jobs.next() {
        done.extend(job(Ok(conn)));
        if rules == Rules::MayChange {
            super::rules::forget();
        }
        if !conn.in_transaction() {
            tracing::error!("the write transaction was abandoned; the batch is refused");
            let abandoned = Error::unavailable("the database cannot take writes right now");
            for d in done {
                (d.answer)(Some(abandoned.clone()));
            }
            for (job, _) in jobs {
                job(Err(&abandoned));
            }
            return None;
        }
    }
    Some(done)
}

/// Commits (joined, with the batch's events logged under its number); then publishes every
/// write's events in commit order and answers the writers. A failed commit rolls the batch
/// back and answers every write with the error.
fn commit(
    conn: &Db,
    done: Vec<Done>,
    seq: Option<i64>,
    bus: &Bus,
    metrics: &Metrics,
    unindexed: &AtomicUsize,
) {
    let mut events = Vec::new();
    let mut answers = Vec::with_capacity(done.len());
    for d in done {
        events.extend(d.events);
        answers.push(d.answer);
    }
    let logged = seq.map(|seq| Batch {
        seq,
        // Every field is a string, number or a struct of them: this cannot fail.
        body: serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
    });
    let committed = match &logged {
        Some(batch) => cluster::log_batch(conn, batch.seq, &batch.body),
        None => Ok(()),
    }
    .and_then(|()| search::index_if_due(conn))
    .and_then(|left| conn.execute_batch("COMMIT").map(|()| left));
    let left = match committed {
        Ok(left) => left,
        Err(failed) => {
            tracing::error!(error = %failed, "commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            super::rules::forget();
            for answer in answers {
                answer(Some(failed.clone()));
            }
            return;
        }
    };
    // Before any answer: whoever searches after one is answered must see this count or a
    // later one (`Store::search_messages` flushes the queue when it is not zero).
    unindexed.store(left, Ordering::Release);
    for event in &events {
        if let Outbound::Group(_, e) = event {
            if matches!(e.route, Route::Message(_)) {
                metrics.messages_stored.inc();
            }
        }
    }
    bus.committed(logged, events);
    for answer in answers {
        answer(None);
    }
}

#[cfg(test)]
mod tests {
    //! The batch rules on a connection whose writes fail on demand: a write that errs or
    //! panics, a write after which SQLite has abandoned the transaction (as on a full disk),
    //! and a commit that fails (a deferred foreign key, checked only at COMMIT).

    use super::*;
    use crate::model::{GroupId, MessageId};
    use tokio::sync::oneshot::Receiver;

    fn connection() -> Conn {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE t (v INTEGER NOT NULL);
             CREATE TABLE queued (v INTEGER NOT NULL CHECK (v > 0));
             CREATE TRIGGER t_queued AFTER INSERT ON t BEGIN
                 INSERT INTO queued (v) VALUES (new.v);
             END;
             CREATE TABLE messages (id INTEGER PRIMARY KEY, content TEXT NOT NULL);
             CREATE VIRTUAL TABLE messages_fts USING fts5(content);
             CREATE TABLE messages_fts_indexed (upto INTEGER NOT NULL);
             INSERT INTO messages_fts_indexed (upto) VALUES (0);
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        Conn::Lite(conn)
    }

    /// What a test write does after its insert.
    type Then = fn(&Db) -> Result<()>;

    /// A write of `v` into `t` (whose trigger copies it into `queued`, which refuses `v` ≤ 0),
    /// with an event naming `v`, after `first` and before `then` on the connection.
    fn write(v: i64, first: Then, then: Then, undo: Undo) -> (Job, Receiver<Result<i64>>) {
        let (tx, rx) = oneshot::channel();
        let f = move |c: &Db| {
            first(c)?;
            c.execute("INSERT INTO t (v) VALUES (?1)", args![v])?;
            then(c)?;
            let event = Event::new(ServerFrame::MessageDeleted {
                id: MessageId(v),
                group_id: GroupId(1),
            });
            Ok(super::super::written(
                v,
                vec![Outbound::Group(GroupId(1), event)],
            ))
        };
        (job(f, undo, tx), rx)
    }

    fn fine(_: &Db) -> Result<()> {
        Ok(())
    }

    fn fails(_: &Db) -> Result<()> {
        Err(Error::conflict("this write fails"))
    }

    fn panics(_: &Db) -> Result<()> {
        panic!("this write panics")
    }

    /// What SQLite may do on a full disk or an I/O error: roll the whole transaction back,
    /// and fail the statement.
    fn abandons(c: &Db) -> Result<()> {
        c.execute_batch("ROLLBACK")?;
        Err(Error::unavailable("the disk is full"))
    }

    /// Breaks a deferred constraint: the write succeeds, the COMMIT fails.
    fn breaks_commit(c: &Db) -> Result<()> {
        c.execute("INSERT INTO child (p) VALUES (999)", args![])?;
        Ok(())
    }

    /// What one batch did: the answers, what `t` and `queued` hold, the events published.
    type Outcome = (Vec<Result<i64>>, Vec<i64>, Vec<i64>, Vec<MessageId>);

    /// Runs one batch of `writes`, each in its savepoint.
    fn batch(conn: &Conn, writes: &[(i64, Then)]) -> (Vec<Result<i64>>, Vec<i64>, Vec<MessageId>) {
        let writes: Vec<_> = writes
            .iter()
            .map(|&(v, then)| (v, fine as Then, then, Undo::Savepoint))
            .collect();
        let (answers, stored, _, published) = batch_of(conn, &writes);
        (answers, stored, published)
    }

    /// Runs one batch of `writes` (`v`, before the insert, after it, how it is undone).
    fn batch_of(conn: &Conn, writes: &[(i64, Then, Then, Undo)]) -> Outcome {
        let bus = Bus::alone(Arc::new(crate::hub::Hub::new(64)));
        let (mut events, _) = bus.hub().subscribe_group(GroupId(1));
        let (jobs, replies): (Vec<_>, Vec<_>) = writes
            .iter()
            .map(|&(v, first, then, undo)| {
                let (job, reply) = write(v, first, then, undo);
                ((job, Rules::MayChange), reply)
            })
            .unzip();
        let conn = conn.db();
        run_batch(&conn, jobs, &bus, &Metrics::new(), &AtomicUsize::new(0));
        let answers = replies
            .into_iter()
            .map(|mut rx| rx.try_recv().expect("every write is answered"))
            .collect();
        let stored = conn
            .query_map("SELECT v FROM t ORDER BY rowid", args![], |r| r.get(0))
            .unwrap();
        let queued = conn
            .query_map("SELECT v FROM queued ORDER BY rowid", args![], |r| r.get(0))
            .unwrap();
        let mut published = Vec::new();
        while let Ok(e) = events.try_recv() {
            let frame: serde_json::Value = serde_json::from_str(e.text().as_str()).unwrap();
            published.push(MessageId(frame["id"].as_i64().unwrap()));
        }
        (answers, stored, queued, published)
    }

    #[test]
    fn a_failing_or_panicking_write_undoes_only_itself() {
        let conn = connection();
        let (answers, stored, published) =
            batch(&conn, &[(1, fine), (2, fails), (3, panics), (4, fine)]);
        assert_eq!(answers[0], Ok(1));
        assert_eq!(answers[1].as_ref().unwrap_err().code(), "conflict");
        assert_eq!(answers[2].as_ref().unwrap_err().code(), "internal");
        assert_eq!(answers[3], Ok(4));
        assert_eq!(stored, [1, 4]);
        assert_eq!(
            published,
            [MessageId(1), MessageId(4)],
            "after the commit, in order"
        );
    }

    #[test]
    fn an_abandoned_transaction_refuses_the_whole_batch_and_the_next_one_works() {
        let conn = connection();
        let (answers, stored, published) = batch(&conn, &[(1, fine), (2, abandons), (3, fine)]);
        for answer in &answers {
            assert_eq!(
                answer.as_ref().map_err(Error::code),
                Err("unavailable"),
                "{answers:?}"
            );
        }
        assert!(
            stored.is_empty(),
            "nothing of the batch is stored: {stored:?}"
        );
        assert!(published.is_empty(), "nothing is published: {published:?}");
        assert!(!conn.db().in_transaction());

        let (answers, stored, published) = batch(&conn, &[(4, fine)]);
        assert_eq!(answers, [Ok(4)]);
        assert_eq!((stored, published), (vec![4], vec![MessageId(4)]));
    }

    #[test]
    fn a_failed_commit_answers_every_write_with_the_error_and_publishes_nothing() {
        let conn = connection();
        let (answers, stored, published) = batch(&conn, &[(1, fine), (2, breaks_commit)]);
        assert_eq!(answers.len(), 2);
        for answer in &answers {
            assert!(answer.is_err(), "{answers:?}");
        }
        assert!(stored.is_empty() && published.is_empty());
        assert!(!conn.db().in_transaction(), "the batch was rolled back");
    }

    #[test]
    fn a_write_without_a_savepoint_that_fails_undoes_only_itself() {
        let conn = connection();
        let (answers, stored, queued, published) = batch_of(
            &conn,
            &[
                (1, fine, fine, Undo::Statement),
                // Refused before its first change, as a send is by its checks.
                (2, fails, fine, Undo::Statement),
                // Its insert into `t` succeeds and the trigger's into `queued` fails: the
                // statement undoes both.
                (-3, fine, fine, Undo::Statement),
                (4, fine, fails, Undo::Savepoint),
                (5, fine, fine, Undo::Statement),
            ],
        );
        assert_eq!(answers[0], Ok(1));
        assert_eq!(answers[1].as_ref().unwrap_err().code(), "conflict");
        assert!(answers[2].is_err(), "{answers:?}");
        assert_eq!(answers[3].as_ref().unwrap_err().code(), "conflict");
        assert_eq!(answers[4], Ok(5));
        assert_eq!((stored, queued), (vec![1, 5], vec![1, 5]));
        assert_eq!(published, [MessageId(1), MessageId(5)]);
    }

    #[test]
    fn a_write_without_a_savepoint_that_fails_after_a_change_refuses_its_whole_batch() {
        for then in [fails as Then, panics] {
            let conn = connection();
            let (answers, stored, queued, published) = batch_of(
                &conn,
                &[
                    (1, fine, fine, Undo::Statement),
                    (2, fine, then, Undo::Statement),
                    (3, fine, fine, Undo::Savepoint),
                ],
            );
            assert!(answers[1].is_err(), "{answers:?}");
            for answer in [&answers[0], &answers[2]] {
                assert_eq!(answer.as_ref().map_err(Error::code), Err("unavailable"));
            }
            assert!(
                stored.is_empty() && queued.is_empty(),
                "{stored:?} {queued:?}"
            );
            assert!(published.is_empty(), "nothing is published: {published:?}");
            assert!(!conn.db().in_transaction());

            let (answers, stored, _, _) = batch_of(&conn, &[(4, fine, fine, Undo::Statement)]);
            assert_eq!((answers, stored), (vec![Ok(4)], vec![4]));
        }
    }
}
