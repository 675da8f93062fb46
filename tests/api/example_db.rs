//! The checked-in `chatserver.db.example` is what the binary produces from migrations + seed now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::helpers::*;
use rusqlite::types::Value as SqlValue;

const REGENERATE: &str =
    "chatserver.db.example is out of date. Regenerate it from the repository root with:\n    \
    rm -f chatserver.db.example && cargo run --release -- migrate --db chatserver.db.example && \
    cargo run --release -- seed --db chatserver.db.example";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("chatserver.db.example")
}

type Rows = Vec<Vec<String>>;

fn rows(conn: &rusqlite::Connection, sql: &str) -> Rows {
    let mut stmt = conn
        .prepare(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}\n{REGENERATE}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| r.get::<_, SqlValue>(i).map(|v| format!("{v:?}")))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// What must match: the schema, the migration history, and the seeded values (every column
/// called username / email / name, and each table's row count). Hashes, secrets and times differ
/// from run to run and are left out.
#[derive(Debug, PartialEq)]
struct Snapshot {
    schema: Rows,
    migrations: Rows,
    seeded: BTreeMap<String, Rows>,
    row_counts: BTreeMap<String, i64>,
}

fn snapshot(path: &Path) -> Snapshot {
    let conn = rusqlite::Connection::open(path).expect("open database");
    let schema = rows(
        &conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name",
    );
    let migrations = rows(
        &conn,
        "SELECT version, name, checksum FROM refinery_schema_history ORDER BY version",
    );
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> 'refinery_schema_history' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut seeded = BTreeMap::new();
    let mut row_counts = BTreeMap::new();
    for table in &tables {
        let count: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        row_counts.insert(table.clone(), count);
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for column in columns
            .iter()
            .filter(|c| ["username", "email", "name"].contains(&c.as_str()))
        {
            seeded.insert(
                format!("{table}.{column}"),
                rows(
                    &conn,
                    &format!("SELECT \"{column}\" FROM \"{table}\" ORDER BY 1"),
                ),
            );
        }
    }
    Snapshot {
        schema,
        migrations,
        seeded,
        row_counts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_database_matches_migrations_and_seed() {
    if sqlite_only("chatserver.db.example is a SQLite file") {
        return;
    }
    let example = example_path();
    assert!(
        example.exists(),
        "{} is missing.\n{REGENERATE}",
        example.display()
    );

    let dir = tempfile::tempdir().unwrap();
    // Work on a copy so the checked-in file is never touched.
    let example_copy = dir.path().join("example-copy.db");
    std::fs::copy(&example, &example_copy).unwrap();
    assert_eq!(integrity_check(&example_copy), "ok", "{REGENERATE}");

    let fresh = dir.path().join("fresh.db");
    let fresh_text = fresh.to_str().unwrap();
    cli(&["migrate", "--db", fresh_text], None)
        .await
        .assert_success();
    cli(&["seed", "--db", fresh_text], None)
        .await
        .assert_success();

    let expected = snapshot(&fresh);
    // The comparison is only meaningful if the seed is visible in it.
    let seeded_text = format!("{:?}", expected.seeded);
    for needle in ["Ava", "Mike", "ava@temp.com", "mike@temp.com", "General"] {
        assert!(
            seeded_text.contains(needle),
            "fresh database lacks {needle}: {seeded_text}"
        );
    }
    assert!(!expected.migrations.is_empty());

    let actual = snapshot(&example_copy);
    assert_eq!(
        actual.schema, expected.schema,
        "schema differs.\n{REGENERATE}"
    );
    assert_eq!(
        actual.migrations, expected.migrations,
        "migration history differs.\n{REGENERATE}"
    );
    assert_eq!(
        actual.seeded, expected.seeded,
        "seeded rows differ.\n{REGENERATE}"
    );
    assert_eq!(
        actual.row_counts, expected.row_counts,
        "row counts differ.\n{REGENERATE}"
    );
}
