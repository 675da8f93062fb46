//! Blocking: someone blocked by X cannot add X to a group, nor open or write a direct chat with
//! X. The rules are checked in the writes they guard (`members`, `groups`, `messages`).

use super::db::{args, Db};

use super::{users, written, Pending, Store};
use crate::error::{Error, Result};
use crate::model::{PublicUser, UserId};

impl Store {
    /// `blocker` blocks `blocked` (again: nothing changes).
    pub fn block(&self, blocker: UserId, blocked: UserId) -> Pending<()> {
        self.write(move |c| {
            if !users::exists(c, blocked)? {
                return Err(Error::not_found("no such user"));
            }
            c.execute(
                "INSERT INTO blocks (blocker_id, blocked_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                args![blocker, blocked],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    /// Lifts a block (one that does not exist: nothing changes).
    pub fn unblock(&self, blocker: UserId, blocked: UserId) -> Pending<()> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2",
                args![blocker, blocked],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    /// Whom `blocker` has blocked, by username.
    pub async fn blocked_by(&self, blocker: UserId) -> Result<Vec<PublicUser>> {
        self.read(move |c| {
            let ids: Vec<UserId> = c.query_map(
                "SELECT b.blocked_id FROM blocks b JOIN users u ON u.id = b.blocked_id
                 WHERE b.blocker_id = ?1 ORDER BY u.username COLLATE NOCASE",
                args![blocker],
                |r| r.get(0),
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(users::public(c, id)?);
            }
            Ok(out)
        })
        .await
    }
}

/// Refuses when `target` has blocked `actor`.
pub(super) fn refuse_if_blocked(conn: &Db, target: UserId, actor: UserId) -> Result<()> {
    let blocked = conn
        .query_opt(
            "SELECT 1 FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2",
            args![target, actor],
            |_| Ok(()),
        )?
        .is_some();
    if blocked {
        return Err(Error::Forbidden {
            code: "blocked",
            message: "that user has blocked you".into(),
        });
    }
    Ok(())
}
