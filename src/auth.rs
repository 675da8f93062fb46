//! Who is calling: bcrypt password hashes, JWT access tokens, refresh tokens, and which
//! accounts still exist.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::model::{Password, UserId};
use crate::store::Store;

/// The caller of a request or socket, as its access token names them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuthUser {
    pub id: UserId,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs and checks access tokens. HS256 only: a token naming any other algorithm
/// (including `none`) is refused by the pinned validation.
pub(crate) struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
}

impl Keys {
    pub fn new(secret: &[u8], access_ttl: Duration) -> Keys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }
    }

    pub fn issue(&self, user: UserId) -> Result<String> {
        let iat = unix_now();
        let claims = Claims {
            sub: user.0.to_string(),
            iat,
            exp: iat + self.access_ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing a token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<AuthUser> {
        let refused = || Error::unauthenticated("invalid or expired token");
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| refused())?;
        // A token issued in the future (beyond the clock leeway) was not issued by us.
        if data.claims.iat > unix_now() + self.validation.leeway {
            return Err(refused());
        }
        let id = data.claims.sub.parse::<i64>().map_err(|_| refused())?;
        Ok(AuthUser { id: UserId(id) })
    }
}

/// A fresh random secret for signing tokens (kept in the database unless one is configured).
pub(crate) fn generate_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new refresh token for the client; only its hash is stored.
pub(crate) fn new_refresh_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub(crate) fn new_token_family() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

pub(crate) fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// bcrypt on the blocking pool, at most a few at once, so a login storm cannot take every
/// core from message delivery.
pub(crate) struct Passwords {
    cost: u32,
    permits: Semaphore,
    /// Checked against when the account does not exist, so both failures take as long.
    /// Made on first use, not at start-up, where it would cost a bcrypt round.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Passwords {
    /// `cost` is checked where it is configured (4–31).
    pub fn new(cost: u32) -> Passwords {
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Passwords {
            cost,
            permits: Semaphore::new(parallel.div_ceil(2).max(1)),
            dummy_hash: Arc::default(),
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::internal("password pool closed"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::internal(format!("bcrypt task: {e}")))
    }

    pub async fn hash(&self, password: &Password) -> Result<String> {
        let cost = self.cost;
        let password = password.as_str().to_string();
        self.run(move || hash_password(&password, cost)).await?
    }

    /// Checks `password` against `hash`, or against a dummy when there is no such account.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let exists = hash.is_some();
        let hash = hash.map(str::to_string);
        let (password, dummy, cost) = (
            password.to_string(),
            Arc::clone(&self.dummy_hash),
            self.cost,
        );
        let ok = self
            .run(move || {
                let hash = hash.unwrap_or_else(|| {
                    dummy
                        .get_or_init(|| {
                            bcrypt::hash("not a password of anyone", cost).unwrap_or_default()
                        })
                        .clone()
                });
                bcrypt::verify(password, &hash).unwrap_or(false)
            })
            .await?;
        Ok(ok && exists)
    }
}

/// A bcrypt hash of `password` at `cost`, for the server and the command line alike.
pub(crate) fn hash_password(password: &str, cost: u32) -> Result<String> {
    bcrypt::hash(password, cost).map_err(|e| Error::internal(format!("bcrypt: {e}")))
}

/// Which accounts exist, so a deleted account's still-valid tokens stop working. Accounts are
/// deleted only by the CLI, in another process; it counts deletions in the database and
/// `watch_deletions` reloads this set within a second of one. A token whose user is not in the
/// set is checked against the database once (a user created meanwhile).
#[derive(Default)]
pub(crate) struct Accounts {
    alive: RwLock<HashSet<UserId>>,
    deletions: AtomicI64,
}

impl Accounts {
    pub async fn load(store: &Store) -> Result<Accounts> {
        let list = store
            .accounts_if_changed(None)
            .await?
            .ok_or_else(|| Error::internal("no account list"))?;
        Ok(Accounts {
            alive: RwLock::new(list.ids.into_iter().collect()),
            deletions: AtomicI64::new(list.deletions),
        })
    }

    fn is_alive(&self, user: UserId) -> bool {
        self.alive
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&user)
    }

    pub fn add(&self, user: UserId) {
        self.alive
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user);
    }

    /// Ok if the account exists; unauthenticated if it was deleted.
    pub async fn ensure(&self, user: UserId, store: &Store) -> Result<()> {
        if self.is_alive(user) {
            return Ok(());
        }
        if store.user_exists(user).await? {
            self.add(user);
            return Ok(());
        }
        Err(Error::account_gone())
    }

    /// Reloads the set if accounts were deleted since the last look; returns the deleted ones.
    pub async fn refresh(&self, store: &Store) -> Result<Vec<UserId>> {
        let seen = self.deletions.load(Ordering::Relaxed);
        let Some(list) = store.accounts_if_changed(Some(seen)).await? else {
            return Ok(Vec::new());
        };
        let (now, fresh): (i64, HashSet<UserId>) = (list.deletions, list.ids.into_iter().collect());
        let mut alive = self.alive.write().unwrap_or_else(|p| p.into_inner());
        let gone = alive.difference(&fresh).copied().collect();
        *alive = fresh;
        self.deletions.store(now, Ordering::Relaxed);
        Ok(gone)
    }
}

/// The bearer token of a request, from `Authorization: Bearer …`.
pub(crate) fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_other_secrets_or_algorithms_are_refused() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let token = keys.issue(UserId(42)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().id, UserId(42));

        let other = Keys::new(b"another secret of enough length!", Duration::from_secs(60));
        assert!(other.verify(&token).is_err());

        // An unsigned token claiming alg "none".
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(
            format!(
                r#"{{"sub":"42","iat":{},"exp":{}}}"#,
                unix_now(),
                unix_now() + 60
            )
            .as_bytes(),
        );
        assert!(keys.verify(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
