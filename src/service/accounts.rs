//! Accounts and sessions: registering (limited per address), logging in (with the lock-out and
//! the seeded accounts' rule), refreshing (one write), logging out, the caller's own profile
//! and password.

use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;

use super::Service;
use crate::auth::{self, AuthUser};
use crate::config::Registration;
use crate::error::{Error, Result};
use crate::hub::{Control, Outbound};
use crate::limits::{LoginKey, Refused};
use crate::model::{AvatarUrl, DisplayName, Email, Password, Profile, PublicKey, UserId, Username};
use crate::store::{NewRefresh, ProfileChanges, Refreshed, Started};

/// What a login or a refresh hands the client.
#[derive(Serialize, ToSchema)]
pub(crate) struct Session {
    token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    user: Profile,
}

const BAD_LOGIN: &str = "invalid username/email or password";

/// What the login page needs to know before anyone signs in.
#[derive(Serialize, ToSchema)]
pub(crate) struct Welcome {
    /// "open" or "closed".
    registration: &'static str,
    /// The seeded accounts and their passwords: only for a browser on the server's own
    /// machine, and only while the accounts exist.
    pub demo_accounts: Vec<DemoAccount>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DemoAccount {
    pub username: String,
    pub password: String,
}

/// A change of the caller's profile, as given: `None` leaves a field alone, `Some(None)` (or an
/// empty string) clears it.
#[derive(Debug, Default)]
pub(crate) struct ProfileEdit {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub public_key: Option<Option<String>>,
}

fn locked(refused: Refused) -> Error {
    let (wait, what) = match refused {
        Refused::Locked(wait) => (wait, "too many failed attempts for this account"),
        Refused::Paced(wait) => (wait, "too many failed logins from this address"),
    };
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    Error::limit(format!("{what}; try again in {seconds} s"), Some(seconds))
}

impl Service {
    /// The caller a token names: signed by us, unexpired, its account still there and its
    /// session not ended. Every protected route and the socket upgrade go through here.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser> {
        let user = self.keys.verify(token)?;
        self.still_signed_in(&user).await?;
        Ok(user)
    }

    /// Whether `user`'s account and session still stand (also after their socket registered,
    /// so a sign-out in between is not missed).
    pub async fn still_signed_in(&self, user: &AuthUser) -> Result<()> {
        self.accounts.ensure(user, &self.store).await
    }

    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<Profile> {
        if self.config.registration == Registration::Closed {
            return Err(Error::forbidden(
                "registration is closed on this server; ask its operator for an account",
            ));
        }
        let username = Username::parse(username.trim())?;
        let email = Email::parse(email.trim())?;
        let password = Password::parse(password)?;
        let ip = addr.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let slot = self.signups.take(ip).map_err(|wait| {
            let seconds = wait.as_secs().max(1);
            Error::limit(
                format!("too many accounts made from this address; try again in {seconds} s"),
                Some(seconds),
            )
        })?;
        let created = match self.passwords.hash(&password).await {
            Ok(hash) => self.store.create_user(username, email, hash).await,
            Err(e) => Err(e),
        };
        match created {
            Ok(profile) => {
                self.accounts.set_epoch(profile.id, 0);
                Ok(profile)
            }
            Err(e) => {
                self.signups.give_back(ip, slot);
                Err(e)
            }
        }
    }

    /// Signs in by username or email; the same error answers an unknown user and a wrong
    /// password. Failures count per account (however it is named) per address.
    pub async fn login(&self, name: &str, password: &str, addr: Option<IpAddr>) -> Result<Session> {
        let found = self.store.credentials(name.to_string()).await?;
        // Names that match no account are counted as typed, so guessing at them is limited too.
        let key = match &found {
            Some((user, _)) => LoginKey::Account(*user),
            None => LoginKey::Name(name),
        };
        let attempt = self.login_guard.begin(key, addr).await.map_err(locked)?;
        let hash = found.as_ref().map(|(_, h)| h.as_str());
        let ok = self.passwords.verify(password, hash).await?;
        let Some((user, stored)) = found.filter(|_| ok) else {
            attempt.failed();
            return Err(Error::unauthenticated(BAD_LOGIN));
        };
        attempt.succeeded();
        self.refuse_default_password(user, password, addr).await?;
        if auth::is_legacy_hash(&stored) {
            self.upgrade_hash(user, stored, password).await;
        }
        let (token, refresh) = self.next_refresh();
        let started = self
            .store
            .start_session(user, auth::new_token_family(), refresh)
            .await?;
        self.session(started, token)
    }

    /// A seeded account that still has the seed's password (printed in the README) may only
    /// be used from this machine: anyone on the network could sign in with it.
    async fn refuse_default_password(
        &self,
        user: UserId,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<()> {
        if addr.is_none_or(|a| a.is_loopback()) {
            return Ok(());
        }
        let Some(profile) = self.store.profile(user).await? else {
            return Ok(());
        };
        let seeded = self.seeded_accounts();
        let default = seeded
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&profile.username));
        match default {
            Some((name, seed_password)) if seed_password == password => Err(Error::Forbidden {
                code: "default_password",
                message: format!(
                    "{name} still has the password everyone knows; change it first, on the \
                     server's machine: chatserver user passwd {name}"
                ),
            }),
            _ => Ok(()),
        }
    }

    pub async fn welcome(&self, addr: Option<IpAddr>) -> Result<Welcome> {
        let registration = match self.config.registration {
            Registration::Open => "open",
            Registration::Closed => "closed",
        };
        let mut demo_accounts = Vec::new();
        if addr.is_some_and(|a| a.is_loopback()) {
            for (username, password) in self.seeded_accounts() {
                if self.store.credentials(username.clone()).await?.is_some() {
                    demo_accounts.push(DemoAccount { username, password });
                }
            }
        }
        Ok(Welcome {
            registration,
            demo_accounts,
        })
    }

    /// The built-in seed's accounts and their passwords.
    pub fn seeded_accounts(&self) -> Vec<(String, String)> {
        crate::store::SeedFile::parse(crate::store::DEFAULT_SEED)
            .map(|seed| seed.accounts())
            .unwrap_or_default()
    }

    /// Replaces an old-style hash after a correct login; a failure only costs the upgrade.
    async fn upgrade_hash(&self, user: UserId, old: String, password: &str) {
        let Ok(password) = Password::parse(password) else {
            return; // set before today's rules; it stays as it is
        };
        let upgraded = match self.passwords.hash(&password).await {
            Ok(new) => self.store.upgrade_password_hash(user, old, new).await,
            Err(e) => Err(e),
        };
        if let Err(e) = upgraded {
            tracing::warn!(%user, error = %e, "upgrading a password hash");
        }
    }

    /// Trades a refresh token for a new session. Revoking it and storing its successor are
    /// one write, so a failure leaves the presented token usable. A token presented again
    /// after its rotation ends its whole session.
    pub async fn refresh(&self, presented: &str, addr: Option<IpAddr>) -> Result<Session> {
        if let Some(ip) = addr {
            self.refreshes.take(ip).map_err(|wait| {
                Error::limit(
                    "too many token refreshes from this address; slow down",
                    Some(wait.as_secs().max(1)),
                )
            })?;
        }
        let (token, next) = self.next_refresh();
        let now = auth::unix_now() as i64;
        let hash = auth::hash_refresh_token(presented);
        match self.store.refresh(hash, next, now).await? {
            Refreshed::Rotated(started) => self.session(started, token),
            Refreshed::Reused { user, family } => {
                self.ended(user, &family);
                Err(Error::unauthenticated(
                    "this refresh token was already used; its session is revoked, sign in again",
                ))
            }
            Refreshed::Invalid => Err(Error::unauthenticated("invalid or expired refresh token")),
        }
    }

    /// Ends the session of one refresh token of the caller's, or (`all`) every session. The
    /// access tokens of an ended session are refused and its sockets close. Ending a session
    /// that has ended, or one that is not the caller's, is not an error: the goal is met.
    pub async fn logout(
        &self,
        user: AuthUser,
        refresh_token: Option<&str>,
        all: bool,
    ) -> Result<()> {
        match (refresh_token, all) {
            (_, true) => {
                let epoch = self.store.end_all_sessions(user.id).await?;
                self.signed_out_everywhere(user.id, epoch);
                Ok(())
            }
            (Some(token), false) => {
                let hash = auth::hash_refresh_token(token);
                let now = auth::unix_now() as i64;
                if let Some(family) = self.store.end_session(user.id, hash, now).await? {
                    self.ended(user.id, &family);
                }
                Ok(())
            }
            (None, false) => Err(Error::invalid(
                "invalid_json",
                "give the refresh_token to revoke, or \"all\": true",
            )),
        }
    }

    fn ended(&self, user: UserId, family: &str) {
        self.accounts.end(family);
        let session = auth::SessionKey::of(family);
        self.bus
            .publish(Outbound::User(user, Control::SessionEnded(session)));
    }

    fn signed_out_everywhere(&self, user: UserId, epoch: i64) {
        self.accounts.set_epoch(user, epoch);
        self.bus
            .publish(Outbound::User(user, Control::SessionsEnded { epoch }));
    }

    pub async fn me(&self, user: AuthUser) -> Result<Profile> {
        self.store
            .profile(user.id)
            .await?
            .ok_or_else(Error::account_gone)
    }

    pub async fn update_profile(&self, user: AuthUser, edit: ProfileEdit) -> Result<Profile> {
        let changes = ProfileChanges {
            display_name: cleaned(edit.display_name, DisplayName::parse)?,
            avatar_url: cleaned(edit.avatar_url, AvatarUrl::parse)?,
            public_key: cleaned(edit.public_key, PublicKey::parse)?,
        };
        self.store.update_profile(user.id, changes).await
    }

    /// Checks the current password (a wrong one counts as a failed login), then sets the new
    /// one and ends every session of the user: every access token issued before is refused,
    /// and the user's sockets close.
    pub async fn change_password(
        &self,
        user: AuthUser,
        current: &str,
        new: &str,
        addr: Option<IpAddr>,
    ) -> Result<()> {
        let new = Password::parse(new)?;
        let hash = self
            .store
            .password_hash(user.id)
            .await?
            .ok_or_else(Error::account_gone)?;
        let attempt = self
            .login_guard
            .begin(LoginKey::Account(user.id), addr)
            .await
            .map_err(locked)?;
        if !self.passwords.verify(current, Some(&hash)).await? {
            attempt.failed();
            return Err(Error::forbidden("the current password is wrong"));
        }
        attempt.succeeded();
        let hash = self.passwords.hash(&new).await?;
        let epoch = self.store.set_password(user.id, hash).await?;
        self.signed_out_everywhere(user.id, epoch);
        Ok(())
    }

    /// A new refresh token for the client and what the store keeps of it.
    fn next_refresh(&self) -> (String, NewRefresh) {
        let token = auth::new_refresh_token();
        let expires_at = auth::unix_now().saturating_add(self.config.refresh_ttl.as_secs()) as i64;
        let stored = NewRefresh {
            hash: auth::hash_refresh_token(&token),
            expires_at,
        };
        (token, stored)
    }

    fn session(&self, started: Started, refresh_token: String) -> Result<Session> {
        let token = self
            .keys
            .issue(started.profile.id, Some(&started.family), started.epoch)?;
        Ok(Session {
            token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.keys.access_ttl.as_secs(),
            user: started.profile,
        })
    }
}

/// Trims a profile field and checks it; empty means clear.
fn cleaned<T>(
    value: Option<Option<String>>,
    parse: impl Fn(&str) -> Result<T>,
) -> Result<Option<Option<T>>> {
    match value {
        None => Ok(None),
        Some(v) => match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Some(None)),
            Some(text) => Ok(Some(Some(parse(text)?))),
        },
    }
}
