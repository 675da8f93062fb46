//! Refresh tokens: stored as SHA-256 hashes, rotated on use, revocable per family (one login's
//! chain of rotations).

use rusqlite::{params, Connection, OptionalExtension};

use super::{users, written, Pending, Store};
use crate::error::{Error, Result};
use crate::model::{Profile, UserId};

/// A refresh token to store: its hash, and when it expires (Unix seconds).
pub(crate) struct NewRefresh {
    pub hash: Vec<u8>,
    pub expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub(crate) enum Refreshed {
    /// It was live: it is now revoked and its successor (same family) stored, in one write.
    Rotated(Profile),
    /// Already rotated or revoked: someone replayed it, so its whole family is now revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

impl Store {
    /// Stores the first refresh token of a new login (`family`) and returns the profile.
    pub fn start_session(
        &self,
        user: UserId,
        family: String,
        token: NewRefresh,
    ) -> Pending<Profile> {
        self.write(move |c| {
            let profile = users::profile(c, user)?.ok_or_else(Error::account_gone)?;
            insert(c, user, &token, &family)?;
            Ok(written(profile, Vec::new()))
        })
    }

    /// Trades the token whose hash is `presented` for `next`, as one write: if storing the
    /// successor fails, the presented token is still live and the client may simply retry.
    pub fn refresh(&self, presented: Vec<u8>, next: NewRefresh, now: i64) -> Pending<Refreshed> {
        self.write(move |c| {
            let outcome = match present(c, &presented, now)? {
                Presented::Live { user, family } => {
                    let profile = users::profile(c, user)?.ok_or_else(Error::account_gone)?;
                    insert(c, user, &next, &family)?;
                    Refreshed::Rotated(profile)
                }
                Presented::Reused => Refreshed::Reused,
                Presented::Invalid => Refreshed::Invalid,
            };
            Ok(written(outcome, Vec::new()))
        })
    }

    /// Revokes one of `user`'s tokens; revoking one that is not live changes nothing.
    pub fn revoke_refresh(&self, user: UserId, hash: Vec<u8>) -> Pending<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE refresh_tokens SET revoked = 1
                 WHERE token_hash = ?1 AND user_id = ?2 AND revoked = 0",
                params![hash, user],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    pub fn revoke_all_refresh(&self, user: UserId) -> Pending<()> {
        self.write(move |c| {
            revoke_all(c, user)?;
            Ok(written((), Vec::new()))
        })
    }

    /// Forgets tokens that expired a day ago or more; they can never be presented again.
    pub fn purge_expired_refresh(&self, now: i64) -> Pending<usize> {
        self.write(move |c| {
            let purged = c.execute(
                "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                [now - 86_400],
            )?;
            Ok(written(purged, Vec::new()))
        })
    }
}

fn insert(conn: &Connection, user: UserId, token: &NewRefresh, family: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO refresh_tokens (user_id, token_hash, family, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![user, token.hash, family, token.expires_at],
    )?;
    Ok(())
}

enum Presented {
    /// Live: it is now revoked; its successor goes in the same family.
    Live {
        user: UserId,
        family: String,
    },
    Reused,
    Invalid,
}

fn present(conn: &Connection, token_hash: &[u8], now: i64) -> Result<Presented> {
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
    Ok(Presented::Live { user, family })
}

pub(super) fn revoke_all(conn: &Connection, user: UserId) -> Result<()> {
    conn.execute(
        "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
        [user],
    )?;
    Ok(())
}
