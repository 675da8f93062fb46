//! Refresh tokens: stored as SHA-256 hashes, rotated on use, revocable per family.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::ApiError;
use crate::ids::UserId;

pub fn insert(
    conn: &Connection,
    user: UserId,
    token_hash: &[u8],
    family: &str,
    expires_at: i64,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO refresh_tokens (user_id, token_hash, family, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![user, token_hash, family, expires_at],
    )?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum Presented {
    /// Live: it is now revoked, and its family and user are returned for the next one.
    Rotated { user: UserId, family: String },
    /// Already rotated or revoked: someone replayed it, so its whole family is now revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

pub fn present(conn: &Connection, token_hash: &[u8], now: i64) -> Result<Presented, ApiError> {
    let row: Option<(i64, UserId, String, i64, bool)> = conn
        .query_row(
            "SELECT id, user_id, family, expires_at, revoked FROM refresh_tokens
             WHERE token_hash = ?1",
            [token_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((id, user, family, expires_at, revoked)) = row else {
        return Ok(Presented::Invalid);
    };
    if revoked {
        conn.execute(
            "UPDATE refresh_tokens SET revoked = 1 WHERE family = ?1",
            [&family],
        )?;
        return Ok(Presented::Reused);
    }
    if expires_at <= now {
        return Ok(Presented::Invalid);
    }
    conn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE id = ?1", [id])?;
    Ok(Presented::Rotated { user, family })
}

/// Revokes one token of `user`; false when it is not theirs or not live.
pub fn revoke(conn: &Connection, user: UserId, token_hash: &[u8]) -> Result<bool, ApiError> {
    let n = conn.execute(
        "UPDATE refresh_tokens SET revoked = 1
         WHERE token_hash = ?1 AND user_id = ?2 AND revoked = 0",
        params![token_hash, user],
    )?;
    Ok(n > 0)
}

pub fn revoke_all(conn: &Connection, user: UserId) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
        [user],
    )?;
    Ok(())
}

/// Forgets tokens that expired a day ago or more; they can never be presented again.
pub fn purge_expired(conn: &Connection, now: i64) -> Result<usize, ApiError> {
    Ok(conn.execute(
        "DELETE FROM refresh_tokens WHERE expires_at < ?1",
        [now - 86_400],
    )?)
}
