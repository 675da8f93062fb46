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
        // Messages answered before this search but still waiting for the index are indexed
        // first, by the writer, so a search finds every message sent before it.
        if self.writer.unindexed() > 0 {
            self.write_keeping_rules(
                |c| index_waiting(c).map(|()| super::written((), Vec::new())),
                super::writer::Undo::Savepoint,
            )
            .await?;
        }
        self.read(move |c| search(c, user, &query, group, limit, budget))
            .await
    }
}

/// Messages that wait before the writer indexes them with its batch's commit. Each indexing
/// writes a new FTS5 segment (and merges older ones): about half of the pages a batch of
/// sends wrote to the WAL, and a fifth of the writer's time, when it was done at every commit.
/// Until this many, a search indexes them first instead (`Store::search_messages`). At 1,024 short
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

/// How many messages wait for the index: those above the mark (migration V8). An upper bound
/// where the newest of them were deleted since; zero exactly when none waits.
const WAITING: &str = "SELECT max(coalesce((SELECT max(id) FROM messages), 0) - upto, 0)
                         FROM messages_fts_indexed";

/// Before a batch's commit, outside every write's savepoint: indexes what waits once that is
/// `INDEX_EVERY` messages. Returns how many are left waiting (always 0 on PostgreSQL, whose
/// index is kept by the insert itself).
pub(super) fn index_if_due(c: &Db) -> Result<usize> {
    if c.backend() != Backend::Sqlite {
        return Ok(0);
    }
    let waiting: i64 = c.query_row(WAITING, args![], |r| r.get(0))?;
    if waiting < INDEX_EVERY {
        return Ok(usize::try_from(waiting).unwrap_or(usize::MAX));
    }
    index_waiting(c)?;
    Ok(0)
}

/// Indexes every waiting message in a transaction of its own: when the server opens the
/// database (what the command line stored meanwhile) and when it stops.
pub(super) fn index_all(lite: &rusqlite::Connection) -> Result<()> {
    let tx = lite.unchecked_transaction()?;
    index_waiting(&Db::Lite(&tx))?;
    tx.commit()?;
    Ok(())
}

/// Indexes the messages that wait for search (SQLite only: PostgreSQL's index is kept by the
/// insert itself), all in one FTS5 segment instead of one per message (migration V6 says
/// why), and moves the mark to the newest message. Ids only grow, so whatever is stored
/// after this is above the mark.
pub(super) fn index_waiting(c: &Db) -> Result<()> {
    if c.backend() != Backend::Sqlite {
        return Ok(());
    }
    c.execute(
        "INSERT INTO messages_fts (rowid, content)
         SELECT id, content FROM messages WHERE id > (SELECT upto FROM messages_fts_indexed)",
        args![],
    )?;
    c.execute(
        "UPDATE messages_fts_indexed
            SET upto = max(upto, (SELECT coalesce(max(id), 0) FROM messages))",
        args![],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::{fts_query, index_if_due, index_waiting, tsquery, words, INDEX_EVERY, WAITING};
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
    /// the index always matches what the messages hold (the mark, and V8's triggers for edits
    /// and deletes).
    #[test]
    fn the_search_index_follows_every_write_whether_waiting_or_indexed() {
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
        };
        let edit = |id: i64, text: &str| {
            c.execute(
                "UPDATE messages SET content = ?2 WHERE id = ?1",
                args![id, text],
            )
            .unwrap();
        };
        let found = |word: &str| found(&c, word);
        send(1, "apple one");
        send(2, "apple two");
        send(3, "apple three");
        assert!(found("apple").is_empty(), "waiting, not yet indexed");
        edit(2, "banana two"); // edited while waiting
        c.execute("DELETE FROM messages WHERE id = 3", args![])
            .unwrap(); // deleted while waiting
        index_waiting(&c).unwrap();
        assert_eq!(found("apple"), [1]);
        assert_eq!(found("banana"), [2]);
        edit(1, "cherry one"); // edited once indexed
        send(4, "cherry four");
        index_waiting(&c).unwrap();
        c.execute("DELETE FROM messages WHERE id = 2", args![])
            .unwrap(); // deleted once indexed
        assert!(found("apple").is_empty() && found("banana").is_empty());
        assert_eq!(found("cherry"), [1, 4]);
        // The index agrees with its content table everywhere (FTS5's own check).
        c.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
            .unwrap();
        let waiting: i64 = c.query_row(WAITING, args![], |r| r.get(0)).unwrap();
        assert_eq!(waiting, 0);
        // The newest message deleted once indexed: the mark stays, the next id is above it.
        c.execute("DELETE FROM messages WHERE id = 4", args![])
            .unwrap();
        index_waiting(&c).unwrap();
        assert_eq!(upto(&c), 4);
        assert_eq!(found("cherry"), [1]);
    }

    /// The writer indexes at a commit only once enough messages wait; until then it says how
    /// many (and a search indexes them first).
    #[test]
    fn waiting_messages_are_indexed_once_there_are_index_every() {
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
    }

    /// V8 on a database whose V6 queue holds messages: they are indexed by the migration, the
    /// mark starts at the newest message, and edits and deletes of them keep the index right.
    #[test]
    fn v8_indexes_what_the_queue_held_and_starts_the_mark_there() {
        let mut lite = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::sqlite::embedded::migrations::runner()
            .set_target(refinery::Target::Version(7))
            .run(&mut lite)
            .unwrap();
        lite.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO messages (id, conversation_id, sender_id, content)
                 VALUES (1, 1, 1, 'old indexed'), (2, 1, 1, 'old queued');
             INSERT INTO messages_fts (rowid, content) VALUES (1, 'old indexed');
             INSERT INTO messages_fts_queue (id) VALUES (2);",
        )
        .unwrap();
        crate::store::sqlite::migrate(&mut lite).unwrap();
        let c = Db::Lite(&lite);
        let found = |word: &str| found(&c, word);
        assert_eq!(found("old"), [1, 2]);
        assert_eq!(upto(&c), 2);
        c.execute("UPDATE messages SET content = 'new' WHERE id = 2", args![])
            .unwrap();
        c.execute("DELETE FROM messages WHERE id = 1", args![])
            .unwrap();
        assert!(found("old").is_empty());
        assert_eq!(found("new"), [2]);
        c.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
            .unwrap();
    }

    /// The ids of the indexed messages that match `word`, ascending.
    fn found(c: &Db, word: &str) -> Vec<i64> {
        c.query_map(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid",
            args![word],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// The search index's mark (migration V8).
    fn upto(c: &Db) -> i64 {
        c.query_row("SELECT upto FROM messages_fts_indexed", args![], |r| {
            r.get(0)
        })
        .unwrap()
    }
}
