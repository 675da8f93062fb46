//! Who is calling: JWT access tokens (`keys`), bcrypt password hashes (`passwords`), and which
//! accounts and sessions still stand (`accounts`).

mod accounts;
mod keys;
mod passwords;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub(crate) use accounts::Accounts;
pub(crate) use keys::Keys;
pub(crate) use passwords::{hash_password, is_legacy as is_legacy_hash, Passwords};

use crate::model::UserId;

/// The caller of a request or socket, as its access token names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthUser {
    pub id: UserId,
    /// The session (login) the token belongs to; `None` for tokens from `chatserver token`.
    pub session: Option<SessionKey>,
    /// The user's session epoch when the token was issued.
    pub epoch: i64,
}

/// A session, as access tokens and sockets know it: a digest of its refresh-token family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct SessionKey(u64);

impl SessionKey {
    pub fn of(family: &str) -> SessionKey {
        let digest = Sha256::digest(family.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        SessionKey(u64::from_le_bytes(first))
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
