//! The resolved settings of a running server, validated once at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{Limit, ACCOUNT_LIMIT, ADDRESS_LIMIT};

/// How hard SQLite syncs to disk. `Normal` (WAL + synchronous=NORMAL) survives a crash of
/// the process: every acknowledged message is in the WAL. `Full` also survives power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    Normal,
    Full,
}

impl SyncMode {
    pub fn pragma(self) -> &'static str {
        match self {
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
        }
    }
}

/// Whether anyone may create an account over HTTP, or only the operator with the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Registration {
    Open,
    Closed,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub db_path: PathBuf,
    pub addr: SocketAddr,
    /// None: generated once and kept in the database.
    pub jwt_secret: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub bcrypt_cost: u32,
    /// Seed from `seed/` on a database that has never been seeded.
    pub seed: bool,
    pub sync: SyncMode,
    /// Largest accepted HTTP request body, in bytes.
    pub body_limit: usize,
    /// Largest accepted WebSocket message, in bytes (bigger ones close the socket with 1009).
    pub ws_max_message: usize,
    /// Events buffered per conversation for slow sockets before they catch up from the database.
    pub hub_capacity: usize,
    /// Other origins whose pages may call the API and open sockets (`*` for any).
    pub cors_origins: Vec<String>,
    /// Serve /metrics on this address instead of the main one.
    pub metrics_addr: Option<SocketAddr>,
    pub registration: Registration,
    /// Open sockets one user may hold at once.
    pub max_sockets_per_user: usize,
    /// How often a socket is pinged; one that answers nothing for 2.5 intervals is closed.
    pub ws_ping_interval: Duration,
    /// Failed logins that lock an account, and an address, for a while.
    pub account_login_limit: Limit,
    pub address_login_limit: Limit,
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
pub const DEFAULT_SOCKETS_PER_USER: usize = 32;
/// Events a conversation's channel holds for sockets that are behind. Every active
/// conversation allocates its slots up front (about 40 bytes each), direct chats included, and a
/// socket that falls further behind catches up from the database; so this covers a burst, not
/// a backlog.
pub const DEFAULT_HUB_CAPACITY: usize = 256;

impl Config {
    /// A server on an ephemeral port with the cheapest bcrypt cost, for tests.
    pub fn for_tests(db_path: PathBuf) -> Config {
        Config {
            db_path,
            addr: "127.0.0.1:0".parse().expect("literal address"),
            jwt_secret: None,
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            bcrypt_cost: bcrypt::DEFAULT_COST.min(4),
            seed: true,
            sync: SyncMode::Normal,
            body_limit: DEFAULT_BODY_LIMIT,
            ws_max_message: DEFAULT_BODY_LIMIT,
            hub_capacity: DEFAULT_HUB_CAPACITY,
            cors_origins: Vec::new(),
            metrics_addr: None,
            registration: Registration::Open,
            max_sockets_per_user: DEFAULT_SOCKETS_PER_USER,
            ws_ping_interval: Duration::from_secs(30),
            account_login_limit: ACCOUNT_LIMIT,
            address_login_limit: ADDRESS_LIMIT,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!(
                "bcrypt cost must be between 4 and 31, got {}",
                self.bcrypt_cost
            ));
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < 16 {
                return Err("the JWT secret must be at least 16 bytes long".into());
            }
        }
        if self.access_ttl.is_zero() || self.refresh_ttl.is_zero() {
            return Err("token lifetimes must be positive".into());
        }
        if self.body_limit < 1024 || self.ws_max_message < 1024 {
            return Err("size limits must be at least 1024 bytes".into());
        }
        if self.max_sockets_per_user < 1 {
            return Err("max sockets per user must be at least 1".into());
        }
        if self.ws_ping_interval < Duration::from_millis(100) {
            return Err("the WebSocket ping interval must be at least 100 ms".into());
        }
        if self.hub_capacity < 1 {
            return Err("hub capacity must be at least 1".into());
        }
        Ok(())
    }
}
