//! The server's configuration, declared once: every `serve` flag with its `CHATSERVER_*`
//! variable, its default and its range. clap checks the values, so a `Config` that exists is
//! valid; tests build theirs from the same declaration (`Config::for_tests`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::limits::Limit;

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

/// How access tokens are signed and how long they last: for `serve` and `token` alike.
#[derive(Clone, Debug, Args)]
pub struct TokenArgs {
    /// Secret for signing tokens, at least 16 bytes (default: generated once and kept in the
    /// database).
    #[arg(long, env = "CHATSERVER_JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_secret: Option<String>,
    /// Lifetime of access tokens.
    #[arg(long, env = "CHATSERVER_ACCESS_TTL", default_value = "3600", value_name = "SECONDS",
          value_parser = seconds)]
    pub access_ttl: Duration,
}

/// How new password hashes are made: for `serve`, `seed` and `user` alike.
#[derive(Clone, Copy, Debug, Args)]
pub struct HashArgs {
    /// bcrypt cost for new password hashes (4–31).
    #[arg(long, env = "CHATSERVER_BCRYPT_COST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// The database file: the global `--db`.
    #[arg(skip)]
    pub db_path: PathBuf,
    /// Address to listen on (0.0.0.0:8080 to let other machines in).
    #[arg(long, env = "CHATSERVER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Lifetime of refresh tokens.
    #[arg(long, env = "CHATSERVER_REFRESH_TTL", default_value = "2592000", value_name = "SECONDS",
          value_parser = seconds)]
    pub refresh_ttl: Duration,
    #[command(flatten)]
    pub hashing: HashArgs,
    /// Do not seed a new database with the default users and group.
    #[arg(long, env = "CHATSERVER_NO_SEED")]
    pub no_seed: bool,
    /// normal: survives a crash of the process; full: also survives power loss (slower).
    #[arg(long, env = "CHATSERVER_SYNC", value_enum, default_value = "normal")]
    pub sync: SyncMode,
    /// Largest request body, in bytes (at least 1024).
    #[arg(long, env = "CHATSERVER_BODY_LIMIT", default_value = "65536", value_name = "BYTES",
          value_parser = size)]
    pub body_limit: usize,
    /// Largest WebSocket message, in bytes (at least 1024); a bigger one closes the socket
    /// with 1009.
    #[arg(long, env = "CHATSERVER_WS_MAX_MESSAGE", default_value = "65536", value_name = "BYTES",
          value_parser = size)]
    pub ws_max_message: usize,
    /// Another origin whose web pages may use this server (repeat it, or `*` for any).
    /// Without it, browsers on other origins are refused; curl is unaffected.
    #[arg(
        long = "cors-origin",
        env = "CHATSERVER_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Serve /metrics on this address (e.g. 127.0.0.1:9090) instead of --addr.
    #[arg(long, env = "CHATSERVER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// closed: only the operator creates accounts (`chatserver user add`).
    #[arg(
        long,
        env = "CHATSERVER_REGISTRATION",
        value_enum,
        default_value = "open"
    )]
    pub registration: Registration,
    /// Open WebSockets one user may hold at once.
    #[arg(long, env = "CHATSERVER_MAX_SOCKETS_PER_USER", default_value = "32", value_parser = count)]
    pub max_sockets_per_user: usize,
    /// Seconds between pings to each socket (at least 0.1); one silent for 2.5 intervals is
    /// closed.
    #[arg(long, env = "CHATSERVER_WS_PING_INTERVAL", default_value = "30", value_name = "SECONDS",
          value_parser = ping_interval)]
    pub ws_ping_interval: Duration,
    /// Events a conversation's channel holds for sockets that are behind. Every active
    /// conversation allocates its slots up front (about 40 bytes each), direct chats included;
    /// a socket that falls further behind catches up from the database, so this covers a burst.
    #[arg(long, env = "CHATSERVER_CONVERSATION_BUFFER", default_value = "256", value_name = "EVENTS",
          value_parser = count)]
    pub hub_capacity: usize,
    /// Failed logins within a window that lock an account, as FAILURES/SECONDS.
    #[arg(long, env = "CHATSERVER_ACCOUNT_LOGIN_LIMIT", default_value = "5/300",
          value_parser = Limit::parse)]
    pub account_login_limit: Limit,
    /// Failed logins within a window that lock an address, as FAILURES/SECONDS.
    #[arg(long, env = "CHATSERVER_ADDRESS_LOGIN_LIMIT", default_value = "100/300",
          value_parser = Limit::parse)]
    pub address_login_limit: Limit,
}

impl Config {
    /// The configuration `serve ARGS` would have (flags, else variables, else defaults).
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once("serve".into()).chain(args.into_iter().map(Into::into));
        Serve::try_parse_from(args).map(|s| s.config)
    }

    /// A server on an ephemeral port with the cheapest bcrypt cost, for tests.
    #[allow(clippy::expect_used)] // fixed flags, known to parse
    pub fn for_tests(db_path: PathBuf) -> Config {
        let mut config = Config::from_args(["--addr", "127.0.0.1:0", "--bcrypt-cost", "4"])
            .expect("the test flags parse");
        config.db_path = db_path;
        config
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| "a whole number of seconds".to_string())?;
    if n == 0 {
        return Err("must be positive".into());
    }
    Ok(Duration::from_secs(n))
}

fn ping_interval(s: &str) -> Result<Duration, String> {
    let n: f64 = s.parse().map_err(|_| "a number of seconds".to_string())?;
    if !(0.1..=86_400.0).contains(&n) {
        return Err("must be between 0.1 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(n))
}

fn size(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| "a whole number of bytes".to_string())?;
    if n < 1024 {
        return Err("must be at least 1024 bytes".into());
    }
    Ok(n)
}

fn count(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| "a whole number".to_string())?;
    if n < 1 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

fn secret(s: &str) -> Result<String, String> {
    if s.len() < 16 {
        return Err("the JWT secret must be at least 16 bytes long".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_ranges_are_enforced() {
        let c = Config::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.hashing.bcrypt_cost, 10);
        assert_eq!(c.ws_ping_interval, Duration::from_secs(30));
        assert_eq!(c.account_login_limit.failures, 5);
        for bad in [
            &["--bcrypt-cost", "3"][..],
            &["--body-limit", "10"],
            &["--jwt-secret", "short"],
            &["--ws-ping-interval", "0"],
            &["--account-login-limit", "5"],
        ] {
            assert!(Config::from_args(bad).is_err(), "{bad:?} was accepted");
        }
        let fast = Config::from_args(["--ws-ping-interval", "0.2"]).unwrap();
        assert_eq!(fast.ws_ping_interval, Duration::from_millis(200));
    }
}
