//! Which accounts and sessions still stand, kept in memory so that checking a token costs no
//! query. An access token is honoured while its account exists, its session epoch is the
//! user's current one (a password change or "log out everywhere" moves the epoch on), and its
//! session has not been ended (logout, a replayed refresh token). Changes made by the server
//! itself are applied here at once; every change is also counted in the database, and
//! `refresh` picks up those made elsewhere (the command line, other instances) within a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use super::{unix_now, AuthUser, SessionKey};
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::store::Store;

pub(crate) struct Accounts {
    /// Each existing account's session epoch.
    epochs: RwLock<HashMap<UserId, i64>>,
    /// Sessions ended early, with when (Unix seconds); forgotten once their tokens expire.
    ended: RwLock<HashMap<SessionKey, i64>>,
    /// The command line's change count last seen.
    changes: AtomicI64,
    access_ttl: Duration,
}

/// What `refresh` found changed by the command line.
#[derive(Default)]
pub(crate) struct Changed {
    /// Accounts deleted: their sockets close.
    pub gone: Vec<UserId>,
    /// Accounts whose sessions all ended (a new password): their sockets close.
    pub signed_out: Vec<(UserId, i64)>,
    /// Sessions ended elsewhere (a logout on another instance): their sockets close.
    pub ended: Vec<(UserId, SessionKey)>,
}

impl Accounts {
    pub async fn load(store: &Store, access_ttl: Duration) -> Result<Accounts> {
        let accounts = Accounts {
            epochs: RwLock::default(),
            ended: RwLock::default(),
            changes: AtomicI64::new(-1),
            access_ttl,
        };
        accounts.refresh(store).await?;
        Ok(accounts)
    }

    fn oldest_live_token(&self) -> i64 {
        unix_now().saturating_sub(self.access_ttl.as_secs() + 60) as i64
    }

    /// Ok while the token's account exists and its session stands.
    pub async fn ensure(&self, user: &AuthUser, store: &Store) -> Result<()> {
        let epoch = self
            .epochs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user.id)
            .copied();
        let epoch = match epoch {
            Some(epoch) => epoch,
            // Created since the last look (by the command line), or never: ask the database.
            None => {
                let epoch = store
                    .session_epoch(user.id)
                    .await?
                    .ok_or_else(Error::account_gone)?;
                self.set_epoch(user.id, epoch);
                epoch
            }
        };
        let ended = user.session.is_some_and(|s| {
            self.ended
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&s)
        });
        if user.epoch != epoch || ended {
            return Err(Error::unauthenticated(
                "this session has ended (signed out, or the password changed); sign in again",
            ));
        }
        Ok(())
    }

    /// A new account, or a new epoch of one (its earlier tokens are refused).
    pub fn set_epoch(&self, user: UserId, epoch: i64) {
        // Epochs only grow: two sign-outs at once may report theirs in either order.
        let mut epochs = self.epochs.write().unwrap_or_else(|p| p.into_inner());
        let known = epochs.entry(user).or_insert(epoch);
        *known = (*known).max(epoch);
    }

    /// A session ended: tokens naming it are refused.
    pub fn end(&self, family: &str) {
        self.end_session(SessionKey::of(family));
    }

    pub fn end_session(&self, session: SessionKey) {
        self.ended
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session, unix_now() as i64);
    }

    /// Forgets ended sessions whose tokens have all expired.
    pub fn forget_old_sessions(&self) {
        let oldest = self.oldest_live_token();
        self.ended
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, at| *at >= oldest);
    }

    /// Reloads from the database if the command line changed accounts since the last look.
    pub async fn refresh(&self, store: &Store) -> Result<Changed> {
        let seen = self.changes.load(Ordering::Relaxed);
        let seen = (seen >= 0).then_some(seen);
        let Some(list) = store
            .accounts_if_changed(seen, self.oldest_live_token())
            .await?
        else {
            return Ok(Changed::default());
        };
        // The list was read a moment ago: merged, not swapped in, so that an account made or a
        // session ended since is not forgotten (epochs only grow).
        let fresh: HashMap<UserId, i64> = list.users.into_iter().collect();
        let mut changed = Changed::default();
        let mut missing = Vec::new();
        {
            let mut epochs = self.epochs.write().unwrap_or_else(|p| p.into_inner());
            for (user, epoch) in epochs.iter_mut() {
                match fresh.get(user) {
                    None => missing.push(*user),
                    Some(&now) if now > *epoch => {
                        *epoch = now;
                        changed.signed_out.push((*user, now));
                    }
                    Some(_) => {}
                }
            }
            for (user, now) in fresh {
                epochs.entry(user).or_insert(now);
            }
        }
        // Not in the list: deleted, or made after it was read. Only the first are gone.
        for user in missing {
            if store.profile(user).await?.is_none() {
                self.epochs
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&user);
                changed.gone.push(user);
            }
        }
        let mut ended = self.ended.write().unwrap_or_else(|p| p.into_inner());
        for (family, user, at) in list.ended {
            let key = SessionKey::of(&family);
            if ended.insert(key, at).is_none() {
                changed.ended.push((user, key));
            }
        }
        self.changes.store(list.changes, Ordering::Relaxed);
        Ok(changed)
    }
}
