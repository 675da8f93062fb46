//! The posting rules of the senders, kept in memory by the writer thread (SQLite only), so
//! that a send checks who may post without a query. The check itself stays in the writer, in
//! the send's transaction and in commit order, so it sees exactly what SQL would: a rule is
//! read from the database the first time it is needed and then kept only while nothing could
//! have changed it. Every write other than a plain send or the search index's catching up
//! (`Writer::submit` is told which is which) forgets them all when it has run, whether it
//! succeeded or not; so do a batch rolled back and a commit by another connection (the
//! command line), which SQLite's `data_version` reveals at the start of each batch. The one
//! rule that moves on its own, a mute's end, is compared with the clock at each send. On
//! PostgreSQL other instances change the same tables, so the rules are always read there.

use std::cell::RefCell;
use std::collections::HashMap;

use super::db::{args, Db};
use crate::error::Result;
use crate::model::{GroupId, Posting, Role, UserId};

/// Rules kept at most; past this they are all forgotten (a class is a few thousand pairs).
const MOST: usize = 16_384;

/// What decides whether `user` may post in a conversation, and what a message of theirs needs.
#[derive(Clone, Debug)]
pub(super) struct Rule {
    pub username: String,
    pub role: Role,
    /// When their mute ends, in the API's time format (compared as text, as SQL compares it).
    pub muted_until: Option<String>,
    pub posting: Posting,
    /// In a direct conversation, the other member.
    pub peer: Option<UserId>,
}

struct Kept {
    rules: HashMap<(GroupId, UserId), Rule>,
    /// The database's `data_version` when the rules were last known to be current.
    version: Option<i64>,
}

thread_local! {
    /// `None` on every thread but a SQLite writer's: there every rule is read from SQL.
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// On the writer thread of a SQLite database: keep rules from now on.
pub(super) fn keep() {
    KEPT.set(Some(Kept {
        rules: HashMap::new(),
        version: None,
    }));
}

/// Forgets every rule kept (after a write that may have changed one, or a rollback).
pub(super) fn forget() {
    KEPT.with_borrow_mut(|kept| {
        if let Some(kept) = kept {
            kept.rules.clear();
        }
    });
}

/// At the start of each batch, inside its transaction: forgets the rules if another
/// connection has committed since the last batch.
pub(super) fn check_others(conn: &Db) -> Result<()> {
    let keeping = KEPT.with_borrow(Option::is_some);
    if !keeping {
        return Ok(());
    }
    let version: i64 = conn.query_row("PRAGMA data_version", args![], |r| r.get(0))?;
    KEPT.with_borrow_mut(|kept| {
        if let Some(kept) = kept {
            if kept.version != Some(version) {
                kept.rules.clear();
                kept.version = Some(version);
            }
        }
    });
    Ok(())
}

/// The rule of `user` in `group`: kept, or read (and kept, on the writer). `None` when they are
/// not a member.
pub(super) fn of(conn: &Db, group: GroupId, user: UserId) -> Result<Option<Rule>> {
    let kept = KEPT.with_borrow(|kept| kept.as_ref().map(|k| k.rules.get(&(group, user)).cloned()));
    if let Some(Some(rule)) = kept {
        return Ok(Some(rule));
    }
    let rule = read(conn, group, user)?;
    if let (Some(rule), Some(_)) = (&rule, kept) {
        KEPT.with_borrow_mut(|kept| {
            if let Some(kept) = kept {
                if kept.rules.len() >= MOST {
                    kept.rules.clear();
                }
                kept.rules.insert((group, user), rule.clone());
            }
        });
    }
    Ok(rule)
}

fn read(conn: &Db, group: GroupId, user: UserId) -> Result<Option<Rule>> {
    conn.query_opt(
        "SELECT u.username, m.role, m.muted_until, c.posting,
                CASE WHEN c.kind = 'direct' THEN
                    (SELECT p.user_id FROM members p
                     WHERE p.conversation_id = c.id AND p.user_id != ?2) END
         FROM members m JOIN users u ON u.id = m.user_id
                        JOIN conversations c ON c.id = m.conversation_id
         WHERE m.conversation_id = ?1 AND m.user_id = ?2",
        args![group, user],
        |r| {
            Ok(Rule {
                username: r.get(0)?,
                role: r.get(1)?,
                muted_until: r.get(2)?,
                posting: r.get(3)?,
                peer: r.get(4)?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    //! On the real schema, in a file, with a second connection standing for the command line.

    use super::*;
    use rusqlite::Connection;

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        conn
    }

    fn role(conn: &Connection, role: &str) {
        conn.execute(
            "UPDATE members SET role = ?1 WHERE conversation_id = 1 AND user_id = 1",
            [role],
        )
        .unwrap();
    }

    fn kept_role(writer: &Connection) -> Role {
        of(&Db::Lite(writer), GroupId(1), UserId(1))
            .unwrap()
            .expect("a member")
            .role
    }

    #[test]
    fn a_kept_rule_lasts_until_forgotten_or_another_connection_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.db");
        let mut writer = open(&path);
        crate::store::sqlite::migrate(&mut writer).unwrap();
        writer
            .execute_batch(
                "INSERT INTO users (id, username, email, password_hash) VALUES (1, 'ann', 'a@x', '-');
                 INSERT INTO conversations (id, kind, name) VALUES (1, 'group', 'g');
                 INSERT INTO members (conversation_id, user_id, role) VALUES (1, 1, 'member');",
            )
            .unwrap();
        let other = open(&path);
        keep();
        let db = Db::Lite(&writer);
        check_others(&db).unwrap();
        assert_eq!(kept_role(&writer), Role::Member);

        // A write on the writer's own connection that was (wrongly) said to keep the rules is
        // not seen: what is kept is what is served.
        role(&writer, "admin");
        assert_eq!(kept_role(&writer), Role::Member);
        forget();
        assert_eq!(kept_role(&writer), Role::Admin);

        // Another connection's commit is noticed at the next batch.
        role(&other, "member");
        assert_eq!(kept_role(&writer), Role::Admin, "not before the next batch");
        check_others(&db).unwrap();
        assert_eq!(kept_role(&writer), Role::Member);
        check_others(&db).unwrap();
        role(&writer, "admin");
        assert_eq!(
            kept_role(&writer),
            Role::Member,
            "its own writes do not count as another's"
        );

        // Not a member: nothing kept, read again each time.
        writer.execute_batch("DELETE FROM members").unwrap();
        forget();
        assert!(of(&db, GroupId(1), UserId(1)).unwrap().is_none());
        KEPT.set(None);
    }
}
