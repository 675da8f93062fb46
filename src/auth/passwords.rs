//! Password hashes. bcrypt reads only the first 72 bytes of what it is given, so two long
//! passwords that share those would log in as each other; new hashes are therefore made of the
//! password's SHA-256 (base64, 44 bytes) and marked `sha256$`. Hashes without the mark, from
//! before, are checked as they were made, and replaced at the next correct login.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::model::Password;

const PREHASHED: &str = "sha256$";

fn prehash(password: &str) -> String {
    STANDARD.encode(Sha256::digest(password.as_bytes()))
}

/// A hash of `password` at bcrypt `cost`, for the server and the command line alike.
pub(crate) fn hash_password(password: &str, cost: u32) -> Result<String> {
    let hashed = bcrypt::hash(prehash(password), cost)
        .map_err(|e| Error::internal(format!("bcrypt: {e}")))?;
    Ok(format!("{PREHASHED}{hashed}"))
}

fn matches(password: &str, stored: &str) -> bool {
    match stored.strip_prefix(PREHASHED) {
        Some(hash) => bcrypt::verify(prehash(password), hash).unwrap_or(false),
        None => bcrypt::verify(password, stored).unwrap_or(false),
    }
}

/// Whether `stored` is an old-style hash, to be replaced at the next correct login.
pub(crate) fn is_legacy(stored: &str) -> bool {
    !stored.starts_with(PREHASHED)
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
                            hash_password("not a password of anyone", cost).unwrap_or_default()
                        })
                        .clone()
                });
                matches(&password, &hash)
            })
            .await?;
        Ok(ok && exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_differing_after_byte_72_do_not_match_and_old_hashes_still_do() {
        let long = "a".repeat(72);
        let hash = hash_password(&format!("{long}1"), 4).unwrap();
        assert!(matches(&format!("{long}1"), &hash));
        assert!(!matches(&format!("{long}2"), &hash));
        assert!(!is_legacy(&hash));

        let legacy = bcrypt::hash("password", 4).unwrap();
        assert!(is_legacy(&legacy));
        assert!(matches("password", &legacy));
        assert!(!matches("passwore", &legacy));
    }
}
