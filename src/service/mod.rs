//! What HTTP and the socket both do, once: each operation checks its input (into the model's
//! validated types), applies the rules that are not the database's, and calls the store. The
//! edges (`http`, `ws`) only parse, call a service and answer; no service knows HTTP or SQL.

mod accounts;
mod attachments;
mod blocks;
mod conversations;
mod messages;
mod presence;
mod thumbnails;
mod users;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use accounts::{ProfileEdit, Session, Welcome};
pub(crate) use attachments::Span;
pub(crate) use messages::{NewMessage, PageQuery};

use crate::auth::{Accounts, Keys, Passwords};
use crate::broker::Bus;
use crate::config::Config;
use crate::hub::{Control, Hub, Outbound};
use crate::limits::{LoginGuard, RateLimit};
use crate::store::Store;

/// The chat itself: the store, the hub and the keys, shared by every request and socket.
pub(crate) struct Service {
    pub store: Store,
    /// This process's sockets.
    pub hub: Arc<Hub>,
    /// Where events not stored are published: the hub, and other instances if joined.
    pub bus: Arc<Bus>,
    keys: Keys,
    passwords: Passwords,
    accounts: Arc<Accounts>,
    login_guard: Arc<LoginGuard>,
    signups: Arc<RateLimit>,
    refreshes: RateLimit,
    searches: messages::Searches,
    thumbnails: thumbnails::Thumbnails,
    /// Uploads in progress, per user.
    uploads: crate::limits::Slots,
    config: Config,
}

/// Token refreshes one address may make a minute. A client refreshes about once an access
/// token's lifetime; each refresh writes a row kept for a month (to catch a reused token), so
/// a loop of them would grow the database without end.
const REFRESHES_PER_MINUTE: usize = 600;

impl Service {
    pub fn new(
        store: Store,
        bus: Arc<Bus>,
        secret: &str,
        accounts: Accounts,
        config: &Config,
        metrics: &crate::metrics::Metrics,
    ) -> Service {
        let accounts = Arc::new(accounts);
        bus.follow_accounts(Arc::clone(&accounts));
        let login_guard = Arc::new(LoginGuard::new(
            config.login_limit,
            config.address_failure_budget,
        ));
        let signups = Arc::new(RateLimit::new(
            config.register_rate,
            Duration::from_secs(3600),
        ));
        bus.share_limits(Arc::clone(&login_guard), Arc::clone(&signups));
        Service {
            keys: Keys::new(secret.as_bytes(), config.tokens.access_ttl),
            passwords: Passwords::new(config.hashing.bcrypt_cost),
            login_guard,
            signups,
            refreshes: RateLimit::new(REFRESHES_PER_MINUTE, Duration::from_secs(60)),
            searches: messages::Searches::default(),
            thumbnails: thumbnails::Thumbnails::new(metrics),
            uploads: crate::limits::Slots::new(attachments::UPLOADS_PER_USER),
            accounts,
            store,
            hub: Arc::clone(bus.hub()),
            bus,
            config: config.clone(),
        }
    }

    /// Notices what was changed elsewhere (the command line, other instances): deleted
    /// accounts' sockets close, and so do those of sessions ended. Called about once a second.
    pub async fn follow_account_changes(&self) {
        match self.accounts.refresh(&self.store).await {
            Ok(changed) => {
                for user in changed.gone {
                    tracing::info!(%user, "account deleted; closing its sockets");
                    self.hub
                        .publish(Outbound::User(user, Control::AccountClosed));
                }
                for (user, epoch) in changed.signed_out {
                    tracing::info!(%user, "signed out elsewhere; closing its sockets");
                    self.hub
                        .publish(Outbound::User(user, Control::SessionsEnded { epoch }));
                }
                for (user, session) in changed.ended {
                    self.hub
                        .publish(Outbound::User(user, Control::SessionEnded(session)));
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking for changed accounts"),
        }
    }

    /// Tells the sockets concerned about memberships the command line changed (`chatserver
    /// group add|remove|create`, `user import --group`). Called every second.
    pub async fn follow_cli_changes(&self) {
        match self.store.has_cli_events().await {
            Ok(false) => {}
            Ok(true) => match self.store.take_cli_events().await {
                Ok(n) => tracing::info!(changes = n, "memberships changed by the command line"),
                Err(e) => tracing::warn!(error = %e, "publishing the command line's changes"),
            },
            Err(e) => tracing::warn!(error = %e, "checking for the command line's changes"),
        }
    }

    /// Forgets refresh tokens and ended sessions that can never be presented again. Called
    /// about once an hour.
    pub async fn purge_expired_sessions(&self) {
        let now = crate::auth::unix_now() as i64;
        let ended_before = now - self.config.tokens.access_ttl.as_secs() as i64 - 60;
        self.accounts.forget_old_sessions();
        match self.store.purge_expired_sessions(now, ended_before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired refresh tokens and sessions purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired sessions"),
        }
    }
}
