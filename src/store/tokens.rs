//! Refresh tokens and sessions. A session is one login's chain of refresh tokens (a family):
//! each refresh rotates the token, and ending the session revokes the family and records it in
//! `ended_sessions`, so access tokens naming it are refused too.

use super::db::{args, Db};

use super::{users, written, Pending, Store};
use crate::error::{Error, Result};
use crate::model::{Profile, UserId};

/// A refresh token to store: its hash, and when it expires (Unix seconds).
pub(crate) struct NewRefresh {
    pub hash: Vec<u8>,
    pub expires_at: i64,
}

/// A session a new access token belongs to: the user's profile, the session's family, and the
/// user's session epoch.
pub(crate) struct Started {
    pub profile: Profile,
    pub family: String,
    pub epoch: i64,
}

/// What presenting a refresh token did.
pub(crate) enum Refreshed {
    /// It was live: it is now revoked and its successor (same family) stored, in one write.
    Rotated(Started),
    /// Already rotated or revoked: someone replayed it, so its whole session has ended.
    Reused { user: UserId, family: String },
    /// Unknown or expired.
    Invalid,
}

impl Store {
    /// Stores the first refresh token of a new session (`family`).
    pub fn start_session(
        &self,
        user: UserId,
        family: String,
        token: NewRefresh,
    ) -> Pending<Started> {
        self.write(move |c| {
            insert(c, user, &token, &family)?;
            Ok(written(started(c, user, family)?, Vec::new()))
        })
    }

    /// Trades the token whose hash is `presented` for `next`, as one write: if storing the
    /// successor fails, the presented token is still live and the client may simply retry.
    pub fn refresh(&self, presented: Vec<u8>, next: NewRefresh, now: i64) -> Pending<Refreshed> {
        self.write(move |c| {
            let outcome = match present(c, &presented, now)? {
                Presented::Live { user, family } => {
                    insert(c, user, &next, &family)?;
                    Refreshed::Rotated(started(c, user, family)?)
                }
                Presented::Reused { user, family } => {
                    end(c, user, &family, now)?;
                    Refreshed::Reused { user, family }
                }
                Presented::Invalid => Refreshed::Invalid,
            };
            Ok(written(outcome, Vec::new()))
        })
    }

    /// Ends the session of one of `user`'s refresh tokens (logout); `None` when the token is
    /// not theirs. Ending a session that has ended changes nothing.
    pub fn end_session(&self, user: UserId, hash: Vec<u8>, now: i64) -> Pending<Option<String>> {
        self.write(move |c| {
            let family: Option<String> = c.query_opt(
                "SELECT family FROM refresh_tokens WHERE token_hash = ?1 AND user_id = ?2",
                args![hash, user],
                |r| r.get(0),
            )?;
            if let Some(family) = &family {
                end(c, user, family, now)?;
            }
            Ok(written(family, Vec::new()))
        })
    }

    /// Forgets refresh tokens that expired a day ago or more (they can never be presented
    /// again), and ended sessions whose access tokens have all expired (ended before
    /// `ended_before`).
    pub fn purge_expired_sessions(&self, now: i64, ended_before: i64) -> Pending<usize> {
        self.write(move |c| {
            let tokens = c.execute(
                "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                args![now - 86_400],
            )?;
            let sessions = c.execute(
                "DELETE FROM ended_sessions WHERE ended_at < ?1",
                args![ended_before],
            )?;
            Ok(written(tokens + sessions, Vec::new()))
        })
    }
}

fn started(conn: &Db, user: UserId, family: String) -> Result<Started> {
    let profile = users::profile(conn, user)?.ok_or_else(Error::account_gone)?;
    let epoch = conn.query_row(
        "SELECT session_epoch FROM users WHERE id = ?1",
        args![user],
        |r| r.get(0),
    )?;
    Ok(Started {
        profile,
        family,
        epoch,
    })
}

fn insert(conn: &Db, user: UserId, token: &NewRefresh, family: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO refresh_tokens (user_id, token_hash, family, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        args![user, token.hash, family, token.expires_at],
    )?;
    Ok(())
}

/// Revokes a session's refresh tokens and records it as ended.
fn end(conn: &Db, user: UserId, family: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE refresh_tokens SET revoked = 1 WHERE family = ?1",
        args![family],
    )?;
    conn.execute(
        "INSERT INTO ended_sessions (family, user_id, ended_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (family) DO NOTHING",
        args![family, user, now],
    )?;
    // Other instances honour the session's access tokens until they hear of it.
    users::count_change(conn)
}

enum Presented {
    /// Live: it is now revoked; its successor goes in the same family.
    Live {
        user: UserId,
        family: String,
    },
    Reused {
        user: UserId,
        family: String,
    },
    Invalid,
}

fn present(conn: &Db, token_hash: &[u8], now: i64) -> Result<Presented> {
    let row: Option<(i64, UserId, String, i64, bool)> = conn.query_opt(
        "SELECT id, user_id, family, expires_at, revoked FROM refresh_tokens
             WHERE token_hash = ?1",
        args![token_hash],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let Some((id, user, family, expires_at, revoked)) = row else {
        return Ok(Presented::Invalid);
    };
    if revoked {
        return Ok(Presented::Reused { user, family });
    }
    if expires_at <= now {
        return Ok(Presented::Invalid);
    }
    conn.execute(
        "UPDATE refresh_tokens SET revoked = 1 WHERE id = ?1",
        args![id],
    )?;
    Ok(Presented::Live { user, family })
}

pub(super) fn revoke_all(conn: &Db, user: UserId) -> Result<()> {
    conn.execute(
        "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
        args![user],
    )?;
    Ok(())
}

/// Sessions ended after `after` (Unix seconds), with whose and when.
pub(super) fn ended_since(conn: &Db, after: i64) -> Result<Vec<(String, UserId, i64)>> {
    conn.query_map(
        "SELECT family, user_id, ended_at FROM ended_sessions WHERE ended_at >= ?1",
        args![after],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}
