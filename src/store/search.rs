//! Full-text search (SQLite FTS5) over the caller's own conversations.

use rusqlite::params;

use super::members::role_of;
use super::messages::{message_row, SELECT};
use super::Store;
use crate::error::Result;
use crate::model::{GroupId, Message, UserId};

impl Store {
    /// Messages of the caller's conversations (or of one) matching `query`, newest first.
    pub async fn search_messages(
        &self,
        user: UserId,
        query: String,
        group: Option<GroupId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        self.read(move |c| {
            if let Some(group) = group {
                role_of(c, group, user)?;
            }
            let Some(fts) = fts_query(&query) else {
                return Ok(Vec::new());
            };
            let sql = format!(
                "{SELECT}
                 JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = ?1
                 WHERE m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?2)
                   AND m.deleted = 0 AND (?3 IS NULL OR m.conversation_id = ?3)
                 ORDER BY m.id DESC LIMIT ?4"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![user, fts, group, limit], message_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
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
