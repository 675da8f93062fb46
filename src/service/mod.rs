//! What HTTP and the socket both do, once: each operation checks its input (into the model's
//! validated types), applies the rules that are not the database's, and calls the store. The
//! edges (`http`, `ws`) only parse, call a service and answer; no service knows HTTP or SQL.

mod accounts;
mod conversations;
mod messages;
mod presence;
mod users;

use std::sync::Arc;

pub(crate) use accounts::{ProfileEdit, Session};
pub(crate) use messages::PageQuery;

use crate::auth::{Accounts, Keys, Passwords};
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::LoginGuard;
use crate::store::Store;

/// The chat itself: the store, the hub and the keys, shared by every request and socket.
pub(crate) struct Service {
    pub store: Store,
    pub hub: Arc<Hub>,
    keys: Keys,
    passwords: Passwords,
    accounts: Accounts,
    login_guard: LoginGuard,
    config: Config,
}

impl Service {
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        secret: &str,
        accounts: Accounts,
        config: &Config,
    ) -> Service {
        Service {
            keys: Keys::new(secret.as_bytes(), config.tokens.access_ttl),
            passwords: Passwords::new(config.hashing.bcrypt_cost),
            login_guard: LoginGuard::new(config.account_login_limit, config.address_login_limit),
            accounts,
            store,
            hub,
            config: config.clone(),
        }
    }

    /// Notices accounts deleted by the command line (another process): their tokens stop
    /// working and their sockets close. Called about once a second.
    pub async fn forget_deleted_accounts(&self) {
        match self.accounts.refresh(&self.store).await {
            Ok(gone) => {
                for user in gone {
                    tracing::info!(%user, "account deleted; closing its sockets");
                    self.hub.publish(crate::hub::Outbound::User(
                        user,
                        crate::hub::Control::AccountClosed,
                    ));
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking for deleted accounts"),
        }
    }

    /// Forgets refresh tokens that can never be presented again. Called about once an hour.
    pub async fn purge_expired_tokens(&self) {
        let now = crate::auth::unix_now() as i64;
        match self.store.purge_expired_refresh(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired refresh tokens purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired refresh tokens"),
        }
    }
}
