//! The server's configuration, declared once: every `serve` flag with its `CHATSERVER_*`
//! variable, its default and its range. clap checks the values, so a `Config` that exists is
//! valid; tests build theirs from the same declaration (`Config::for_tests`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::limits::Limit;

mod database;
mod values;
pub use database::Database;
use values::{
    broker, byte_size, count, host_name, origin, ping_interval, seconds, signing_secret, size,
    timeout,
};

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
    /// database). On the command line it shows in the process list: prefer --jwt-secret-file.
    #[arg(long, env = "CHATSERVER_JWT_SECRET", hide_env_values = true, value_parser = signing_secret,
          conflicts_with = "jwt_secret_file")]
    pub jwt_secret: Option<String>,
    /// A file holding the secret for signing tokens (its first line).
    #[arg(long, env = "CHATSERVER_JWT_SECRET_FILE", value_name = "PATH")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime of access tokens (at most ten years).
    #[arg(long, env = "CHATSERVER_ACCESS_TTL", default_value = "3600", value_name = "SECONDS",
          value_parser = seconds)]
    pub access_ttl: Duration,
}

impl TokenArgs {
    /// The configured secret, from the flag or read from the file; `None` when neither is
    /// given (the database keeps a generated one).
    pub fn secret(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.jwt_secret_file else {
            return Ok(self.jwt_secret.clone());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --jwt-secret-file {}: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or("").trim();
        signing_secret(first)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How new password hashes are made: for `serve`, `seed` and `user` alike.
#[derive(Clone, Copy, Debug, Args)]
pub struct HashArgs {
    /// bcrypt cost for new password hashes (4–31).
    #[arg(long, env = "CHATSERVER_BCRYPT_COST", default_value_t = 10, value_name = "COST",
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// The database: the global `--db`.
    #[arg(skip)]
    pub db: Database,
    /// Address to listen on (0.0.0.0:8080 to let other machines in).
    #[arg(long, env = "CHATSERVER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Join the other instances serving the same PostgreSQL database through this NATS server
    /// (nats://host:port). Without it, a server is alone on its database.
    #[arg(long, env = "CHATSERVER_BROKER", value_name = "URL", value_parser = broker)]
    pub broker: Option<String>,
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Lifetime of refresh tokens (at most ten years).
    #[arg(long, env = "CHATSERVER_REFRESH_TTL", default_value = "2592000", value_name = "SECONDS",
          value_parser = seconds)]
    pub refresh_ttl: Duration,
    #[command(flatten)]
    pub hashing: HashArgs,
    /// Do not seed a new database with the default users and group. Remembered in the
    /// database: it is not seeded on a later start without the flag either.
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
        value_delimiter = ',',
        value_name = "ORIGIN",
        value_parser = origin
    )]
    pub cors_origins: Vec<String>,
    /// Serve /metrics on this address (e.g. 127.0.0.1:9090) instead of --addr.
    #[arg(long, env = "CHATSERVER_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// open: anyone who reaches the server may sign up; closed: only the operator creates
    /// accounts (`chatserver user add` or `user import`).
    #[arg(
        long,
        env = "CHATSERVER_REGISTRATION",
        value_enum,
        default_value = "open",
        value_name = "MODE"
    )]
    pub registration: Registration,
    /// Open WebSockets one user may hold at once.
    #[arg(long, env = "CHATSERVER_MAX_SOCKETS_PER_USER", default_value = "32", value_name = "N",
          value_parser = count)]
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
    /// Failed logins (and wrong current passwords) for one account from one address that
    /// lock that account for that address, as FAILURES/SECONDS.
    #[arg(long, env = "CHATSERVER_LOGIN_LIMIT", default_value = "10/600",
          value_name = "FAILURES/SECONDS", value_parser = Limit::parse)]
    pub login_limit: Limit,
    /// Failed logins from one address, over all accounts, after which its attempts are slowed
    /// to one a second, as FAILURES/SECONDS.
    #[arg(long, env = "CHATSERVER_ADDRESS_FAILURE_BUDGET", default_value = "200/3600",
          value_name = "FAILURES/SECONDS", value_parser = Limit::parse)]
    pub address_failure_budget: Limit,
    /// Accounts one address may register in an hour.
    #[arg(long, env = "CHATSERVER_REGISTER_RATE", default_value = "10", value_name = "N",
          value_parser = count)]
    pub register_rate: usize,
    /// Groups one user may own.
    #[arg(long, env = "CHATSERVER_MAX_GROUPS_PER_USER", default_value = "100", value_name = "N",
          value_parser = count)]
    pub max_groups_per_user: usize,
    /// Conversations (groups and direct chats) one user may be in.
    #[arg(long, env = "CHATSERVER_MAX_MEMBERSHIPS", default_value = "1000", value_name = "N",
          value_parser = count)]
    pub max_memberships: usize,
    /// How long one search may run before it is stopped (503).
    #[arg(long, env = "CHATSERVER_SEARCH_TIMEOUT", default_value = "2", value_name = "SECONDS",
          value_parser = timeout)]
    pub search_timeout: Duration,
    /// Largest attachment, in bytes (a number, or with K, M or G: `10M` is 10 MiB).
    #[arg(long, env = "CHATSERVER_MAX_ATTACHMENT", default_value = "10M", value_name = "BYTES",
          value_parser = byte_size)]
    pub max_attachment: u64,
    /// What one user's attachments may take in all, in bytes (K, M or G allowed).
    #[arg(long, env = "CHATSERVER_ATTACHMENT_QUOTA", default_value = "200M", value_name = "BYTES",
          value_parser = byte_size)]
    pub attachment_quota: u64,
    #[command(flatten)]
    pub net: NetArgs,
}

/// What a client may hold of the server: connections, and how long they may take.
#[derive(Clone, Debug, Args)]
pub struct NetArgs {
    /// Seconds a request's headers may take to arrive (from the connection's opening, or from
    /// the first byte of a later request on it).
    #[arg(long, env = "CHATSERVER_HEADER_TIMEOUT", default_value = "10", value_name = "SECONDS",
          value_parser = timeout)]
    pub header_timeout: Duration,
    /// Seconds a request's body may take to arrive, and its answer to be read.
    #[arg(long, env = "CHATSERVER_BODY_TIMEOUT", default_value = "30", value_name = "SECONDS",
          value_parser = timeout)]
    pub body_timeout: Duration,
    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(long, env = "CHATSERVER_IDLE_TIMEOUT", default_value = "60", value_name = "SECONDS",
          value_parser = timeout)]
    pub idle_timeout: Duration,
    /// Connections (sockets included) held at once (default: what the open-files limit allows,
    /// less a reserve for the database and the server's own files).
    #[arg(long, env = "CHATSERVER_MAX_CONNECTIONS", value_name = "N", value_parser = count)]
    pub max_connections: Option<usize>,
    /// Connections one address may hold at once; never more than half of --max-connections.
    #[arg(long, env = "CHATSERVER_MAX_CONNECTIONS_PER_IP", default_value = "512",
          value_name = "N", value_parser = count)]
    pub max_connections_per_ip: usize,
    /// Another name this server is reached by (repeatable). Requests whose Host is not an IP
    /// address, localhost, this machine's name or one of these get 421: that is what stops a
    /// web page on another site from reaching the server through DNS rebinding.
    #[arg(
        long = "public-host",
        env = "CHATSERVER_PUBLIC_HOST",
        value_delimiter = ',',
        value_name = "NAME",
        value_parser = host_name
    )]
    pub public_hosts: Vec<String>,
    /// A reverse proxy in front of this server (repeatable, an IP address such as
    /// 127.0.0.1): a request from it is taken to come from the address it appended to
    /// X-Forwarded-For, for the per-address limits and the loopback-only rules. A request from
    /// it without one counts as from an unknown, non-local address.
    #[arg(
        long = "trusted-proxy",
        env = "CHATSERVER_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "IP"
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
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

    /// A server on an ephemeral port with the cheapest bcrypt cost, for tests; they register
    /// many users from one address, so sign-ups are not limited unless a test asks.
    #[allow(clippy::expect_used)] // fixed flags, known to parse
    pub fn for_tests(db_path: PathBuf) -> Config {
        let flags = [
            "--addr",
            "127.0.0.1:0",
            "--bcrypt-cost",
            "4",
            "--register-rate",
            "100000",
        ];
        let mut config = Config::from_args(flags).expect("the test flags parse");
        config.db = Database::File(db_path);
        config
    }
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
        assert_eq!(c.login_limit.failures, 10);
        assert_eq!(c.net.header_timeout, Duration::from_secs(10));
        for bad in [
            &["--bcrypt-cost", "3"][..],
            &["--body-limit", "10"],
            &["--jwt-secret", "short"],
            &["--ws-ping-interval", "0"],
            &["--ws-ping-interval", "1e300"],
            &["--access-ttl", "99999999999999"],
            &["--login-limit", "5"],
            &["--idle-timeout", "-1"],
            &["--cors-origin", "not a url"],
            &["--broker", "http://127.0.0.1:4222"],
            &["--broker", "nats://"],
            &["--public-host", "chat.example:8080"],
            &["--public-host", "http://chat.example"],
            &["--cors-origin", "https://a.example/path"],
            &["--cors-origin", "ftp://a.example"],
            &["--cors-origin", "http://a.example:99999"],
        ] {
            assert!(Config::from_args(bad).is_err(), "{bad:?} was accepted");
        }
        let cors = Config::from_args([
            "--cors-origin",
            "https://Chat.Example.org/,http://192.168.1.20:8080,http://[::1]:3000,*",
        ])
        .unwrap();
        assert_eq!(
            cors.cors_origins,
            [
                "https://chat.example.org",
                "http://192.168.1.20:8080",
                "http://[::1]:3000",
                "*"
            ]
        );
        assert_eq!(c.max_attachment, 10 * 1024 * 1024);
        assert_eq!(c.attachment_quota, 200 * 1024 * 1024);
        let sized = Config::from_args(["--max-attachment", "512K", "--attachment-quota", "1g"]);
        let sized = sized.unwrap();
        assert_eq!(
            (sized.max_attachment, sized.attachment_quota),
            (512 << 10, 1 << 30)
        );
        for bad in ["10X", "", "-1", "0", "99999999999G"] {
            assert!(
                Config::from_args(["--max-attachment", bad]).is_err(),
                "{bad:?}"
            );
        }
        let fast = Config::from_args(["--ws-ping-interval", "0.2"]).unwrap();
        assert_eq!(fast.ws_ping_interval, Duration::from_millis(200));
    }
}
