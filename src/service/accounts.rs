//! Accounts and sessions: registering, logging in (with the lock-out), refreshing (one write),
//! logging out, the caller's own profile and password.

use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;

use super::Service;
use crate::auth::{self, AuthUser};
use crate::config::Registration;
use crate::error::{Error, Result};
use crate::limits::LoginKey;
use crate::model::{AvatarUrl, DisplayName, Email, Password, Profile, PublicKey, Username};
use crate::store::{NewRefresh, ProfileChanges, Refreshed};

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

/// A change of the caller's profile, as given: `None` leaves a field alone, `Some(None)` (or an
/// empty string) clears it.
#[derive(Debug, Default)]
pub(crate) struct ProfileEdit {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub public_key: Option<Option<String>>,
}

impl Service {
    /// The caller a token names: signed by us, unexpired, and its account still exists.
    /// Every protected route and the socket upgrade go through here.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser> {
        let user = self.keys.verify(token)?;
        self.accounts.ensure(user.id, &self.store).await?;
        Ok(user)
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Result<Profile> {
        if self.config.registration == Registration::Closed {
            return Err(Error::forbidden(
                "registration is closed on this server; ask its operator for an account",
            ));
        }
        let username = Username::parse(username.trim())?;
        let email = Email::parse(email.trim())?;
        let password = Password::parse(password)?;
        let hash = self.passwords.hash(&password).await?;
        let profile = self.store.create_user(username, email, hash).await?;
        self.accounts.add(profile.id);
        Ok(profile)
    }

    /// Signs in by username or email; the same error answers an unknown user and a wrong
    /// password. Failures are counted per account however it is named, and per address.
    pub async fn login(&self, name: &str, password: &str, addr: Option<IpAddr>) -> Result<Session> {
        let found = self.store.credentials(name.to_string()).await?;
        // Names that match no account are counted as typed, so guessing at them is limited too.
        let key = match &found {
            Some((user, _)) => LoginKey::Account(*user),
            None => LoginKey::Name(name),
        };
        if let Err(wait) = self.login_guard.attempt(key, addr) {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Error::limit(
                format!("too many failed logins; try again in {seconds} s"),
                Some(seconds.max(1)),
            ));
        }
        let hash = found.as_ref().map(|(_, h)| h.as_str());
        let ok = self.passwords.verify(password, hash).await?;
        match found {
            Some((user, _)) if ok => {
                self.login_guard.succeeded(key, addr);
                let (token, refresh) = self.next_refresh();
                let profile = self
                    .store
                    .start_session(user, auth::new_token_family(), refresh)
                    .await?;
                self.session(profile, token)
            }
            // The attempt was already counted as a failure.
            _ => Err(Error::unauthenticated(BAD_LOGIN)),
        }
    }

    /// Trades a refresh token for a new session. Revoking it and storing its successor are
    /// one write, so a failure leaves the presented token usable.
    pub async fn refresh(&self, presented: &str) -> Result<Session> {
        let (token, next) = self.next_refresh();
        let now = auth::unix_now() as i64;
        let hash = auth::hash_refresh_token(presented);
        match self.store.refresh(hash, next, now).await? {
            Refreshed::Rotated(profile) => self.session(profile, token),
            Refreshed::Reused => Err(Error::unauthenticated(
                "this refresh token was already used; its session is revoked, sign in again",
            )),
            Refreshed::Invalid => Err(Error::unauthenticated("invalid or expired refresh token")),
        }
    }

    /// Revokes one refresh token of the caller's, or (`all`) every one. Revoking a token that
    /// is not live is not an error: the goal is already met.
    pub async fn logout(
        &self,
        user: AuthUser,
        refresh_token: Option<&str>,
        all: bool,
    ) -> Result<()> {
        match (refresh_token, all) {
            (_, true) => self.store.revoke_all_refresh(user.id).await,
            (Some(token), false) => {
                let hash = auth::hash_refresh_token(token);
                self.store.revoke_refresh(user.id, hash).await
            }
            (None, false) => Err(Error::invalid(
                "invalid_json",
                "give the refresh_token to revoke, or \"all\": true",
            )),
        }
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

    /// Checks the current password, then sets the new one and signs the user out of every
    /// session (refresh tokens revoked).
    pub async fn change_password(&self, user: AuthUser, current: &str, new: &str) -> Result<()> {
        let new = Password::parse(new)?;
        let hash = self
            .store
            .password_hash(user.id)
            .await?
            .ok_or_else(Error::account_gone)?;
        if !self.passwords.verify(current, Some(&hash)).await? {
            return Err(Error::forbidden("the current password is wrong"));
        }
        let hash = self.passwords.hash(&new).await?;
        self.store.set_password(user.id, hash).await
    }

    /// A new refresh token for the client and what the store keeps of it.
    fn next_refresh(&self) -> (String, NewRefresh) {
        let token = auth::new_refresh_token();
        let expires_at = (auth::unix_now() + self.config.refresh_ttl.as_secs()) as i64;
        let stored = NewRefresh {
            hash: auth::hash_refresh_token(&token),
            expires_at,
        };
        (token, stored)
    }

    fn session(&self, profile: Profile, refresh_token: String) -> Result<Session> {
        Ok(Session {
            token: self.keys.issue(profile.id)?,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.keys.access_ttl.as_secs(),
            user: profile,
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
