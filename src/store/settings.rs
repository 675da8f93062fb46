//! Server-wide values kept in the database.

use rusqlite::{Connection, OptionalExtension};

use crate::error::ApiError;

pub fn get(conn: &Connection, key: &str) -> Result<Option<String>, ApiError> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Stores `value` unless the key exists; returns the value now stored (first writer wins).
pub fn get_or_insert(conn: &Connection, key: &str, value: &str) -> Result<String, ApiError> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        [key, value],
    )?;
    Ok(get(conn, key)?.unwrap_or_else(|| value.to_string()))
}

pub fn set(conn: &Connection, key: &str, value: &str) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}
