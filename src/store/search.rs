//! Full-text search over the caller's own conversations, each query within a time budget:
//! SQLite's FTS5, stopped by its progress handler once the budget is spent, or PostgreSQL's
//! `tsvector` index, stopped by `statement_timeout`. Both find every typed word, the last one
//! also as a prefix, with the words taken as plain text.

use std::time::{Duration, Instant};

use super::db::{args, Db};

use super::members::role_of;
use super::messages::{load, SELECT};
use super::{Backend, Store};
use crate::error::Result;
use crate::model::{GroupId, Message, UserId};

/// SQLite virtual-machine steps between looks at the clock.
const STEPS_PER_CHECK: i32 = 1000;

impl Store {
    /// Messages of the caller's conversations (or of one) matching `query`, newest first;
    /// `unavailable` if the search takes longer than `budget`.
    pub async fn search_messages(
        &self,
        user: UserId,
        query: String,
        group: Option<GroupId>,
        limit: u32,
        budget: Duration,
    ) -> Result<Vec<Message>> {
        // Messages answered before this search but still queued for the index are indexed
        // first, by the writer, so a search finds every message sent before it.
        if self.writer.unindexed() > 0 {
            self.write_keeping_rules(
                |c| index_queued(c).map(|()| super::written((), Vec::new())),
                super::writer::Undo::Savepoint,
            )
            .await?;
        }
        self.read(move |c| search(c, user, &query, group, limit, budget))
            .await
    }
}

/// Messages queued before the writer indexes them with its batch's commit. Each indexing
/// writes a new FTS5 segment (and merges older ones): about half of the pages a batch of
/// sends wrote to the WAL, and a fifth of the writer's time, when it was done at every commit.
/// Up to this many a search indexes first instead (`Store::search_messages`). At 1,024 short
/// messages indexing takes about a millisecond.
const INDEX_EVERY: i64 = 1024;

/// Runs `f`, the search's own query, within `budget` (the checks before it are not counted:
/// under load, a PostgreSQL round trip alone can outlast a tiny budget).
fn within<T>(c: &Db, budget: Duration, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match c.lite() {
        Some(lite) => {
            let deadline = Instant::now() + budget;
            lite.progress_handler(STEPS_PER_CHECK, Some(move || Instant::now() > deadline))?;
            let found = f();
            lite.progress_handler(STEPS_PER_CHECK, None::<fn() -> bool>)?;
            // A large query can leave the connection's page cache grown; give it back.
            let _ = lite.execute_batch("PRAGMA shrink_memory");
            found
        }
        None => {
            let ms = budget.as_millis().max(1);
            c.execute_batch(&format!("SET statement_timeout = {ms}"))?;
            let found = f();
            c.execute_batch("RESET statement_timeout")?;
            found
        }
    }
}

fn search(
    c: &Db,
    user: UserId,
    query: &str,
    group: Option<GroupId>,
    limit: u32,
    budget: Duration,
) -> Result<Vec<Message>> {
    if let Some(group) = group {
        role_of(c, group, user)?;
    }
    // Only the caller's own conversations are searched: a user in none costs nothing.
    let member: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM members WHERE user_id = ?1)",
        args![user],
        |r| r.get(0),
    )?;
    let words = words(query);
    if words.is_empty() || !member {
        return Ok(Vec::new());
    }
    let (matching, text) = match c.backend() {
        Backend::Sqlite => (
            "m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?2)",
            fts_query(&words),
        ),
        Backend::Postgres => (
            "m.search @@ to_tsquery('simple', search_text(?2))",
            tsquery(&words),
        ),
    };
    let sql = format!(
        "{SELECT}
                 JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = ?1
                 WHERE {matching}
                   AND m.deleted = 0 AND (CAST(?3 AS BIGINT) IS NULL OR m.conversation_id = ?3)
                 ORDER BY m.id DESC LIMIT ?4"
    );
    within(c, budget, || load(c, &sql, args![user, text, group, limit]))
}

/// The words typed, lower-cased as both indexes store them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An FTS5 query: every word must appear, the last one also as a prefix. Each word is quoted,
/// so FTS5 operators and punctuation in the input are just text.
fn fts_query(words: &[String]) -> String {
    all_of(words, "\"", "*", " ")
}

/// The same as a PostgreSQL `tsquery` (in the `simple` configuration the index uses):
/// `'hello' & 'wor':*`. Words hold only letters and digits, so quoting them is enough.
fn tsquery(words: &[String]) -> String {
    all_of(words, "'", ":*", " & ")
}

/// Every word between `quote`s, joined by `and`; the last one marked as a prefix.
fn all_of(words: &[String], quote: &str, prefix: &str, and: &str) -> String {
    let last = words.len().saturating_sub(1);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mark = if i == last { prefix } else { "" };
            format!("{quote}{w}{quote}{mark}")
        })
        .collect::<Vec<_>>()
        .join(and)
}

/// Before a batch's commit, outside every write's savepoint: indexes the queue once it holds
/// `INDEX_EVERY` messages. Returns how many are left queued (always 0 on PostgreSQL, whose
/// index is kept by the insert itself).
pub(super) fn index_if_due(c: &Db) -> Result<usize> {
    if c.backend() != Backend::Sqlite {
        return Ok(0);
    }
    let queued: i64 = c.query_row("SELECT count(*) FROM messages_fts_queue", args![], |r| {
        r.get(0)
    })?;
    if queued < INDEX_EVERY {
        return Ok(usize::try_from(queued).unwrap_or(usize::MAX));
    }
    index_queued(c)?;
    Ok(0)
}

/// Indexes every queued message in a transaction of its own: when the server opens the
/// database (what the command line stored meanwhile) and when it stops.
pub(super) fn index_all(lite: &rusqlite::Connection) -> Result<()> {
    let tx = lite.unchecked_transaction()?;
    index_queued(&Db::Lite(&tx))?;
    tx.commit()?;
    Ok(())
}

/// Queues a new message for search, in the write that inserts it (SQLite; the caller checks).
/// Whatever inserts into `messages` must queue what it inserts: no trigger does it since V7
/// (which says why). The writer indexes the queue (`index_if_due`), and so does a search that
/// would otherwise miss a queued message.
pub(super) fn queue(c: &Db, id: crate::model::MessageId) -> Result<()> {
    c.execute("INSERT INTO messages_fts_queue (id) VALUES (?1)", args![id])
        .map(drop)
}

/// Queues every message (a database just filled by `copy`); SQLite only.
pub(super) fn queue_all(c: &Db) -> Result<()> {
    if c.backend() != Backend::Sqlite {
        return Ok(());
    }
    c.execute(
        "INSERT OR IGNORE INTO messages_fts_queue (id) SELECT id FROM messages",
        args![],
    )
    .map(drop)
}

/// Indexes the messages queued for search (SQLite only: PostgreSQL's index is kept by the
/// insert itself), all in one FTS5 segment instead of one per message (migration V6 says why).
pub(super) fn index_queued(c: &Db) -> Result<()> {
    if c.backend() != Backend::Sqlite {
        return Ok(());
    }
    c.execute(
        "INSERT INTO messages_fts (rowid, content)
         SELECT m.id, m.content FROM messages_fts_queue q JOIN messages m ON m.id = q.id",
        args![],
    )?;
    c.execute("DELETE FROM messages_fts_queue", args![])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{fts_query, index_if_due, index_queued, queue, tsquery, words, INDEX_EVERY};
    use crate::store::db::{args, Db};

    #[test]
    fn typed_text_becomes_a_safe_query() {
        assert_eq!(fts_query(&words("hello wor")), "\"hello\" \"wor\"*");
        assert_eq!(
            fts_query(&words("a\"b OR (c*) NOT:d")),
            "\"a\" \"b\" \"or\" \"c\" \"not\" \"d\"*"
        );
        assert!(words(" -*- ").is_empty());
        assert_eq!(fts_query(&words("Café")), "\"café\"*");
        assert_eq!(tsquery(&words("it's a wor")), "'it' & 's' & 'a' & 'wor':*");
    }

    /// Sends, edits and deletes in one batch, before and after indexing, on the real schema:
    /// the index always matches what the messages hold (the queue, and the V6 triggers for edits
    /// and deletes).
    #[test]
    fn the_search_index_follows_every_write_whether_queued_or_indexed() {
        let mut lite = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::sqlite::migrate(&mut lite).unwrap();
        lite.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let c = Db::Lite(&lite);
        let send = |id: i64, text: &str| {
            c.execute(
                "INSERT INTO messages (id, conversation_id, sender_id, content) VALUES (?1, 1, 1, ?2)",
                args![id, text],
            )
            .unwrap();
            queue(&c, crate::model::MessageId(id)).unwrap();
        };
        let edit = |id: i64, text: &str| {
            c.execute(
                "UPDATE messages SET content = ?2 WHERE id = ?1",
                args![id, text],
            )
            .unwrap();
        };
        let found = |word: &str| -> Vec<i64> {
            c.query_map(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid",
                args![word],
                |r| r.get(0),
            )
            .unwrap()
        };
        send(1, "apple one");
        send(2, "apple two");
        send(3, "apple three");
        assert!(found("apple").is_empty(), "queued, not yet indexed");
        edit(2, "banana two"); // edited while queued
        c.execute("DELETE FROM messages WHERE id = 3", args![])
            .unwrap(); // deleted while queued
        index_queued(&c).unwrap();
        assert_eq!(found("apple"), [1]);
        assert_eq!(found("banana"), [2]);
        edit(1, "cherry one"); // edited once indexed
        send(4, "cherry four");
        index_queued(&c).unwrap();
        c.execute("DELETE FROM messages WHERE id = 2", args![])
            .unwrap(); // deleted once indexed
        assert!(found("apple").is_empty() && found("banana").is_empty());
        assert_eq!(found("cherry"), [1, 4]);
        // The index agrees with its content table everywhere (FTS5's own check).
        c.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
            .unwrap();
        let queued: i64 = c
            .query_row("SELECT count(*) FROM messages_fts_queue", args![], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(queued, 0);
    }

    /// The writer indexes at a commit only once the queue is long enough; until then it says
    /// how many wait (and a search indexes them first).
    #[test]
    fn the_queue_is_indexed_once_it_holds_index_every_messages() {
        let mut lite = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::sqlite::migrate(&mut lite).unwrap();
        lite.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let c = Db::Lite(&lite);
        let indexed = || -> i64 {
            c.query_row(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'word'",
                args![],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(index_if_due(&c).unwrap(), 0);
        for _ in 1..INDEX_EVERY {
            send_one(&c);
        }
        assert_eq!(index_if_due(&c).unwrap() as i64, INDEX_EVERY - 1);
        assert_eq!(indexed(), 0, "not yet");
        send_one(&c);
        assert_eq!(index_if_due(&c).unwrap(), 0);
        assert_eq!(indexed(), INDEX_EVERY);
    }

    fn send_one(c: &Db) {
        c.execute(
            "INSERT INTO messages (conversation_id, sender_id, content) VALUES (1, 1, 'word')",
            args![],
        )
        .unwrap();
        let id = c.lite().unwrap().last_insert_rowid();
        queue(c, crate::model::MessageId(id)).unwrap();
    }
}
