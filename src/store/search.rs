//! Full-text search (SQLite FTS5) over the caller's own conversations, each query within a
//! time budget: SQLite's progress handler stops it once the budget is spent.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use super::members::role_of;
use super::messages::{load, SELECT};
use super::Store;
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
        self.read(move |c| {
            let deadline = Instant::now() + budget;
            c.progress_handler(STEPS_PER_CHECK, Some(move || Instant::now() > deadline))?;
            let found = search(c, user, &query, group, limit);
            c.progress_handler(STEPS_PER_CHECK, None::<fn() -> bool>)?;
            // A large query can leave the connection's page cache grown; give it back.
            let _ = c.execute_batch("PRAGMA shrink_memory");
            found
        })
        .await
    }
}

fn search(
    c: &Connection,
    user: UserId,
    query: &str,
    group: Option<GroupId>,
    limit: u32,
) -> Result<Vec<Message>> {
    if let Some(group) = group {
        role_of(c, group, user)?;
    }
    // Only the caller's own conversations are searched: a user in none costs nothing.
    let member: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM members WHERE user_id = ?1)")?
        .query_row([user], |r| r.get(0))?;
    let Some(fts) = fts_query(query).filter(|_| member) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "{SELECT}
                 JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = ?1
                 WHERE m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?2)
                   AND m.deleted = 0 AND (?3 IS NULL OR m.conversation_id = ?3)
                 ORDER BY m.id DESC LIMIT ?4"
    );
    load(c, &sql, params![user, fts, group, limit])
}

/// Turns what a person typed into an FTS5 query: every word must appear, the last one also as
/// a prefix. Each word is quoted, so FTS5 operators and punctuation in the input are just text.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    let last = words.len().checked_sub(1)?;
    Some(
        words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == last {
                    format!("{w}*")
                } else {
                    w.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn typed_text_becomes_a_safe_fts_query() {
        assert_eq!(
            fts_query("hello wor").as_deref(),
            Some("\"hello\" \"wor\"*")
        );
        assert_eq!(
            fts_query("a\"b OR (c*) NOT:d").as_deref(),
            Some("\"a\" \"b\" \"OR\" \"c\" \"NOT\" \"d\"*")
        );
        assert_eq!(fts_query(" -*- ").as_deref(), None);
        assert_eq!(fts_query("café").as_deref(), Some("\"café\"*"));
    }
}
