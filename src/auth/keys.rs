//! Access tokens: HS256 JWTs naming the user, their session and their session epoch.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{unix_now, AuthUser, SessionKey};
use crate::error::{Error, Result};
use crate::model::UserId;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    /// The session (refresh-token family); absent in tokens made by `chatserver token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// The user's session epoch at issue; tokens from before a password change are older.
    #[serde(default)]
    ver: i64,
}

/// Signs and checks access tokens. HS256 only: a token naming any other algorithm
/// (including `none`) is refused by the pinned validation.
pub(crate) struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    /// Tokens already verified, with whom they name and when they expire: a client sends the
    /// same token with every request, and checking its signature and parsing its JSON was
    /// about a tenth of the request's CPU. Only a token that verified is kept, under its full
    /// text, so a hit is exactly as good as verifying again; expiry is still checked on every
    /// use. Whether its session still stands is not cached here (`Accounts` checks that).
    verified: Mutex<HashMap<Box<str>, (AuthUser, u64)>>,
}

/// Tokens `Keys` remembers before it starts afresh (about 300 bytes each).
const VERIFIED: usize = 4096;

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
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// A token for `user` in session `family` (none for operator tokens) and epoch `epoch`.
    pub fn issue(&self, user: UserId, family: Option<&str>, epoch: i64) -> Result<String> {
        let iat = unix_now();
        let claims = Claims {
            sub: user.0.to_string(),
            iat,
            exp: iat.saturating_add(self.access_ttl.as_secs()),
            sid: family.map(str::to_string),
            ver: epoch,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing a token: {e}")))
    }

    /// Who a token names, if we signed it and it has not expired. Whether its account and
    /// session still stand is `Accounts`'s to say.
    pub fn verify(&self, token: &str) -> Result<AuthUser> {
        let now = unix_now();
        if let Ok(mut verified) = self.verified.lock() {
            match verified.get(token) {
                Some(&(user, exp)) if now <= exp + self.validation.leeway => return Ok(user),
                Some(_) => {
                    verified.remove(token);
                }
                None => {}
            }
        }
        let (user, exp) = self.check(token, now)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED {
                verified.retain(|_, (_, exp)| now <= *exp);
                if verified.len() >= VERIFIED {
                    verified.clear();
                }
            }
            verified.insert(token.into(), (user, exp));
        }
        Ok(user)
    }

    /// The signature and claims of a token not seen before: whom it names, and its expiry.
    fn check(&self, token: &str, now: u64) -> Result<(AuthUser, u64)> {
        let refused = || Error::unauthenticated("invalid or expired token");
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| refused())?;
        // A token issued in the future (beyond the clock leeway) was not issued by us.
        if data.claims.iat > now + self.validation.leeway {
            return Err(refused());
        }
        let id = data.claims.sub.parse::<i64>().map_err(|_| refused())?;
        let user = AuthUser {
            id: UserId(id),
            session: data.claims.sid.as_deref().map(SessionKey::of),
            epoch: data.claims.ver,
        };
        Ok((user, data.claims.exp))
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    #[test]
    fn tokens_round_trip_and_other_secrets_or_algorithms_are_refused() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let token = keys.issue(UserId(42), Some("family"), 3).unwrap();
        let user = keys.verify(&token).unwrap();
        assert_eq!(user.id, UserId(42));
        assert_eq!(user.session, Some(SessionKey::of("family")));
        assert_eq!(user.epoch, 3);

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

    /// A remembered token is still refused once it has expired, and one that never verified
    /// is never remembered.
    #[test]
    fn a_remembered_token_expires_like_any_other() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let now = unix_now();
        let claims = Claims {
            sub: "7".into(),
            iat: now - 100,
            exp: now - 10,
            sid: None,
            ver: 0,
        };
        let stale =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&stale).is_err());
        assert!(keys.verified.lock().unwrap().is_empty());
        // As if it had been verified while it was valid.
        let user = AuthUser {
            id: UserId(7),
            session: None,
            epoch: 0,
        };
        keys.verified
            .lock()
            .unwrap()
            .insert(stale.as_str().into(), (user, now - 10));
        assert!(keys.verify(&stale).is_err(), "expired, though remembered");

        let fresh = keys.issue(UserId(8), None, 0).unwrap();
        assert_eq!(keys.verify(&fresh).unwrap().id, UserId(8));
        assert_eq!(keys.verify(&fresh).unwrap().id, UserId(8), "from memory");
        assert_eq!(keys.verified.lock().unwrap().len(), 1);
    }
}
