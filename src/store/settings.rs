//! Server-wide values kept in the database.

use super::db::{args, Db};

use crate::error::Result;

/// The key under which a generated JWT secret is kept.
const JWT_SECRET_KEY: &str = "jwt_secret";

pub(super) fn get(conn: &Db, key: &str) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT value FROM settings WHERE key = ?1",
        args![key],
        |r| r.get(0),
    )
}

/// Stores `value` unless the key exists; returns the value now stored (first writer wins).
fn get_or_insert(conn: &Db, key: &str, value: &str) -> Result<String> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        args![key, value],
    )?;
    Ok(get(conn, key)?.unwrap_or_else(|| value.to_string()))
}

pub(super) fn set(conn: &Db, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )?;
    Ok(())
}

/// The configured JWT secret, or the one kept in the database (`generated` on first use).
pub(super) fn jwt_secret(
    conn: &Db,
    configured: Option<&str>,
    generated: impl FnOnce() -> String,
) -> Result<String> {
    match configured {
        Some(secret) => Ok(secret.to_string()),
        None => get_or_insert(conn, JWT_SECRET_KEY, &generated()),
    }
}
