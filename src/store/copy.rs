//! `chatserver copy --from <db> --to <db>`: everything in one database (accounts, sessions,
//! conversations, messages, attachments and their bytes, settings and the signing secret)
//! into an empty one, SQLite or PostgreSQL either way. The source is read in one transaction
//! (a consistent snapshot, even under a running server); the destination is written in one
//! transaction, so a copy that fails leaves it as it was.

use std::path::Path;

use super::admin::Admin;
use super::db::{args, Db, Value};
use crate::config::Database;
use crate::error::{Error, Result};

/// Every table that holds data, parents before children, with its primary key (the order
/// it is read in). `settings` and `attachment_usage`
/// replace what the destination already has (its migrations write settings; its triggers
/// count usage as attachments arrive). What is left out is per database, not data: the
/// migrations' history, SQLite's search index (every copied message is queued for it, and the
/// server indexes the queue when it opens the database), the cluster log.
const TABLES: &[(&str, &[&str])] = &[
    ("settings", &["key"]),
    ("users", &["id"]),
    ("conversations", &["id"]),
    ("members", &["conversation_id", "user_id"]),
    ("messages", &["id"]),
    ("refresh_tokens", &["id"]),
    ("ended_sessions", &["family"]),
    ("blocks", &["blocker_id", "blocked_id"]),
    ("cli_events", &["id"]),
    ("attachments", &["id"]),
    ("attachment_chunks", &["attachment_id", "seq"]),
    ("attachment_thumbnails", &["attachment_id"]),
    ("message_attachments", &["message_id", "position"]),
    ("reactions", &["id"]),
    ("mentions", &["message_id", "user_id"]),
    ("attachment_usage", &["user_id"]),
];

/// Tables whose rows the destination's own may already hold.
const REPLACED: &[&str] = &["settings", "attachment_usage"];

/// Tables whose `id` the database hands out (PostgreSQL's identity sequences follow the copy).
const IDENTITIES: &[&str] = &[
    "users",
    "conversations",
    "messages",
    "refresh_tokens",
    "cli_events",
    "attachments",
    "reactions",
];

/// Rows read from a PostgreSQL source per query (attachment chunks are 256 KiB each).
const PAGE: usize = 64;

/// What was copied, table by table.
pub(crate) struct Copied {
    pub tables: Vec<(&'static str, usize)>,
}

/// Copies `from` into `to` (created and migrated if needed), which must hold no account.
pub(crate) fn copy(from: &Database, to: &Database) -> Result<Copied> {
    if from == to {
        return Err(Error::invalid(
            "same_database",
            "--from and --to are the same database",
        ));
    }
    let mut source = Admin::open(from)?;
    let made = to.file().filter(|f| !f.exists()).map(Path::to_path_buf);
    let copied = Admin::migrate(to).and_then(|_| fill(&mut source, to));
    if let (Err(_), Some(file)) = (&copied, made) {
        // A new file that did not fill is not left behind.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
    copied
}

fn fill(source: &mut Admin, to: &Database) -> Result<Copied> {
    let mut dest = Admin::open(to)?;
    source.in_snapshot(|src| {
        dest.in_transaction(|dst| {
            let users: i64 = dst.query_row("SELECT count(*) FROM users", args![], |r| r.get(0))?;
            if users > 0 {
                return Err(Error::Conflict {
                    code: "not_empty",
                    message: format!("{to} already has accounts: copy into a new, empty database"),
                });
            }
            let mut tables = Vec::new();
            for &(table, key) in TABLES {
                tables.push((table, copy_table(src, dst, table, key)?));
            }
            follow_identities(dst)?;
            // Into SQLite: the destination's search index is empty and its mark at 0, so every
            // message copied waits for the index, which the server builds when it opens the file.
            Ok(Copied { tables })
        })
    })
}

/// The columns of `table` that are stored (not generated), in order.
fn columns(db: &Db, table: &str) -> Result<Vec<String>> {
    match db.lite() {
        Some(_) => db.query_map(
            "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 ORDER BY cid",
            args![table],
            |r| r.get(0),
        ),
        None => db.query_map(
            "SELECT column_name FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1
               AND is_generated = 'NEVER'
             ORDER BY ordinal_position",
            args![table],
            |r| r.get(0),
        ),
    }
}

fn copy_table(src: &Db, dst: &Db, table: &str, key: &[&str]) -> Result<usize> {
    // The columns both have: one only the destination has keeps its default (PostgreSQL's
    // `conversations.seq`), one only the source has is not the destination's business.
    let have = columns(src, table)?;
    let wanted: Vec<String> = (columns(dst, table)?.into_iter())
        .filter(|c| have.contains(c))
        .collect();
    if REPLACED.contains(&table) {
        dst.execute(&format!("DELETE FROM {table}"), args![])?;
    }
    let list = wanted.join(", ");
    let insert = format!(
        "INSERT INTO {table} ({list}) VALUES ({})",
        marks(wanted.len())
    );
    let mut copied = 0;
    let read = Read {
        table,
        list: &list,
        width: wanted.len(),
        key: (key.iter())
            .map(|k| {
                let at = wanted.iter().position(|c| c == k);
                at.map(|i| (*k, i))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::internal(format!("{table}: its key is not copied")))?,
    };
    scan(src, &read, &mut |row| {
        dst.execute(&insert, &bound(row))?;
        copied += 1;
        Ok(())
    })?;
    Ok(copied)
}

/// `?1, ?2, …, ?n`.
fn marks(n: usize) -> String {
    let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    marks.join(", ")
}

fn bound(row: &[Value]) -> Vec<&dyn super::db::Arg> {
    row.iter().map(|v| v as _).collect()
}

/// How one table is read: its columns, and where its key is among them.
struct Read<'a> {
    table: &'a str,
    list: &'a str,
    width: usize,
    key: Vec<(&'a str, usize)>,
}

/// Calls `f` with every row of the table, stopping at its first error, holding at most a page
/// of rows: SQLite steps through them; PostgreSQL is read a page at a time in key order
/// (within the snapshot, so nothing moves between pages).
fn scan(src: &Db, t: &Read<'_>, f: &mut dyn FnMut(&[Value]) -> Result<()>) -> Result<()> {
    let read = |r: &super::db::Row<'_>| -> Result<Vec<Value>> {
        (0..t.width).map(|i| r.get::<Value>(i)).collect()
    };
    let (table, list) = (t.table, t.list);
    if src.lite().is_some() {
        let select = format!("SELECT {list} FROM {table}");
        return src.each(&select, args![], &mut |r| f(&read(r)?).map(|()| true));
    }
    let names: Vec<&str> = t.key.iter().map(|(k, _)| *k).collect();
    let order = names.join(", ");
    let first = format!("SELECT {list} FROM {table} ORDER BY {order} LIMIT {PAGE}");
    let next = format!(
        "SELECT {list} FROM {table} WHERE ({order}) > ({}) ORDER BY {order} LIMIT {PAGE}",
        marks(names.len())
    );
    let mut after: Option<Vec<Value>> = None;
    loop {
        let page = match &after {
            None => src.query_map(&first, args![], read)?,
            Some(last) => src.query_map(&next, &bound(last), read)?,
        };
        for row in &page {
            f(row)?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => {
                after = Some(t.key.iter().map(|(_, i)| last[*i].clone()).collect());
            }
            _ => return Ok(()),
        }
    }
}

/// PostgreSQL hands out ids from sequences, which rows inserted with their ids do not move:
/// each is set past the highest id copied. (SQLite takes the highest id + 1 by itself.)
fn follow_identities(dst: &Db) -> Result<()> {
    if dst.lite().is_some() {
        return Ok(());
    }
    for table in IDENTITIES {
        dst.query_row(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            ),
            args![],
            |r| r.get::<i64>(0),
        )?;
    }
    Ok(())
}
