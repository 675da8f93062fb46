//! The command line: `serve` (the default) and the operator's subcommands. Every flag also
//! reads a `CHATSERVER_*` environment variable. Errors are one line on stderr and exit 1
//! (2 for a bad command line).

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rusqlite::Connection;

use crate::app::{self, jwt_secret};
use crate::auth::Keys;
use crate::config::{
    Config, Registration, SyncMode, DEFAULT_ADDR, DEFAULT_BODY_LIMIT, DEFAULT_HUB_CAPACITY,
    DEFAULT_SOCKETS_PER_USER,
};
use crate::limits::{ACCOUNT_LIMIT, ADDRESS_LIMIT};
use crate::store::{self, seed, users};
use crate::validate;

#[derive(Parser)]
#[command(
    name = "chatserver",
    version,
    about = "A real-time chat server: one binary, one SQLite file.",
    after_help = "Without a command, runs `serve`."
)]
struct Cli {
    /// The SQLite database file (created if missing).
    #[arg(
        long,
        global = true,
        env = "CHATSERVER_DB",
        default_value = "chatserver.db"
    )]
    db: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Apply pending migrations, print what was applied, and exit.
    Migrate,
    /// Create the seed's users and groups where they are missing.
    Seed {
        /// A seed file like seed/default.toml (default: the one built in).
        #[arg(long, env = "CHATSERVER_SEED_FILE")]
        file: Option<PathBuf>,
        #[arg(long, env = "CHATSERVER_BCRYPT_COST", default_value_t = 10)]
        bcrypt_cost: u32,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a fresh access token for a user (so `T=$(chatserver token Ava)` works).
    Token {
        username: String,
        /// The server's --jwt-secret, if it was given one.
        #[arg(long, env = "CHATSERVER_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        #[arg(
            long,
            env = "CHATSERVER_ACCESS_TTL",
            default_value_t = 3600,
            value_name = "SECONDS"
        )]
        access_ttl: u64,
    },
    /// Write a consistent copy of the database to FILE (also while the server runs).
    Backup { file: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; without --password, asks on the terminal or reads a line from stdin.
    Add {
        username: String,
        email: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long, env = "CHATSERVER_BCRYPT_COST", default_value_t = 10)]
        bcrypt_cost: u32,
    },
    /// List users.
    List,
    /// Set a user's password (and sign them out everywhere).
    Passwd {
        username: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long, env = "CHATSERVER_BCRYPT_COST", default_value_t = 10)]
        bcrypt_cost: u32,
    },
    /// Delete a user.
    Delete { username: String },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (0.0.0.0:8080 to let other machines in).
    #[arg(long, env = "CHATSERVER_ADDR", default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Secret for signing tokens (default: generated once and kept in the database).
    #[arg(long, env = "CHATSERVER_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Lifetime of access tokens.
    #[arg(
        long,
        env = "CHATSERVER_ACCESS_TTL",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    access_ttl: u64,
    /// Lifetime of refresh tokens.
    #[arg(long, env = "CHATSERVER_REFRESH_TTL", default_value_t = 30 * 24 * 3600, value_name = "SECONDS")]
    refresh_ttl: u64,
    /// bcrypt cost for new password hashes (4–31).
    #[arg(long, env = "CHATSERVER_BCRYPT_COST", default_value_t = 10)]
    bcrypt_cost: u32,
    /// Do not seed a new database with the default users and group.
    #[arg(long, env = "CHATSERVER_NO_SEED")]
    no_seed: bool,
    /// normal: survives a crash of the process; full: also survives power loss (slower).
    #[arg(long, env = "CHATSERVER_SYNC", value_enum, default_value = "normal")]
    sync: SyncMode,
    /// Largest request body, in bytes.
    #[arg(long, env = "CHATSERVER_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Largest WebSocket message, in bytes; a bigger one closes the socket with 1009.
    #[arg(long, env = "CHATSERVER_WS_MAX_MESSAGE", default_value_t = DEFAULT_BODY_LIMIT)]
    ws_max_message: usize,
    /// Another origin whose web pages may use this server (repeat it, or `*` for any).
    /// Without it, browsers on other origins are refused; curl is unaffected.
    #[arg(long, env = "CHATSERVER_CORS_ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Serve /metrics on this address (e.g. 127.0.0.1:9090) instead of --addr.
    #[arg(long, env = "CHATSERVER_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// closed: only the operator creates accounts (`chatserver user add`).
    #[arg(
        long,
        env = "CHATSERVER_REGISTRATION",
        value_enum,
        default_value = "open"
    )]
    registration: Registration,
    /// Open WebSockets one user may hold at once.
    #[arg(long, env = "CHATSERVER_MAX_SOCKETS_PER_USER", default_value_t = DEFAULT_SOCKETS_PER_USER)]
    max_sockets_per_user: usize,
    /// Seconds between pings to each socket; one silent for 2.5 intervals is closed.
    #[arg(
        long,
        env = "CHATSERVER_WS_PING_INTERVAL",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    ws_ping_interval: u64,
}

const SUBCOMMANDS: &[&str] = &[
    "serve", "migrate", "seed", "user", "token", "backup", "help",
];

/// `chatserver [flags]` means `chatserver serve [flags]`.
fn with_default_command(mut args: Vec<String>) -> Vec<String> {
    let names_command = args
        .iter()
        .skip(1)
        .any(|a| SUBCOMMANDS.contains(&a.as_str()));
    let asks_top_level = args
        .iter()
        .skip(1)
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "-V" | "--version"));
    if !names_command && !asks_top_level {
        args.insert(1.min(args.len()), "serve".into());
    }
    args
}

pub fn main() -> ExitCode {
    let args = with_default_command(std::env::args().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "chatserver: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let is_serve = matches!(cli.command, Command::Serve(_));
    init_logging(if is_serve { "info" } else { "warn" });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatserver: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> Result<(), String> {
    let db = cli.db;
    match cli.command {
        Command::Serve(args) => serve(&db, args),
        Command::Migrate => {
            let mut conn = store::open_connection(&db, SyncMode::Full)?;
            let applied = store::migrate(&mut conn)?;
            if applied.is_empty() {
                println!("{}: up to date", db.display());
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
        Command::Seed { file, bcrypt_cost } => {
            let text = match &file {
                Some(f) => std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?,
                None => seed::DEFAULT.to_string(),
            };
            let parsed = seed::SeedFile::parse(&text)?;
            let report =
                in_transaction(&db, |c| seed::apply(c, &parsed, &|p| hash(p, bcrypt_cost)))?;
            println!(
                "created {} user(s) {:?}, {} group(s) {:?}, {} membership(s)",
                report.users.len(),
                report.users,
                report.groups.len(),
                report.groups,
                report.memberships
            );
            Ok(())
        }
        Command::User(cmd) => user(&db, cmd),
        Command::Token {
            username,
            jwt_secret: configured,
            access_ttl,
        } => {
            let token = in_transaction(&db, |c| {
                let user = find_user(c, &username)?;
                let secret = jwt_secret(c, configured.as_deref()).map_err(|e| e.to_string())?;
                Keys::new(secret.as_bytes(), Duration::from_secs(access_ttl))
                    .issue(user.id)
                    .map_err(|e| e.to_string())
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Backup { file } => backup(&db, &file),
    }
}

fn serve(db: &Path, args: ServeArgs) -> Result<(), String> {
    let config = Config {
        db_path: db.to_path_buf(),
        addr: args.addr,
        jwt_secret: args.jwt_secret,
        access_ttl: Duration::from_secs(args.access_ttl),
        refresh_ttl: Duration::from_secs(args.refresh_ttl),
        bcrypt_cost: args.bcrypt_cost,
        seed: !args.no_seed,
        sync: args.sync,
        body_limit: args.body_limit,
        ws_max_message: args.ws_max_message,
        hub_capacity: DEFAULT_HUB_CAPACITY,
        cors_origins: args.cors_origin,
        metrics_addr: args.metrics_addr,
        registration: args.registration,
        max_sockets_per_user: args.max_sockets_per_user,
        ws_ping_interval: Duration::from_secs(args.ws_ping_interval),
        account_login_limit: ACCOUNT_LIMIT,
        address_login_limit: ADDRESS_LIMIT,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work is SQLite reads (16 pooled connections) and bcrypt (a few permits):
        // more threads than this would only wait, each holding a stack and malloc arena.
        .max_blocking_threads(32)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let server = app::start(config).await.map_err(|e| e.to_string())?;
        print_banner(server.addr(), db);
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

fn print_banner(addr: SocketAddr, db: &Path) {
    let host = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "chatserver {} listening on http://{addr} (database: {})\n\
         Try it (seeded users Ava and Mike, password \"password\"):\n  \
         TOKEN=$(curl -s http://{host}/v1/users/login -d '{{\"username\":\"Ava\",\"password\":\"password\"}}' | jq -r .token)\n  \
         websocat \"ws://{host}/ws?token=$TOKEN\"\n  \
         curl -s http://{host}/v1/messages/group/1 -H \"Authorization: Bearer $TOKEN\" -d '{{\"content\":\"Hello!\"}}'",
        env!("CARGO_PKG_VERSION"),
        db.display(),
    );
    let _ = out.flush();
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn open(db: &Path) -> Result<Connection, String> {
    let mut conn = store::open_connection(db, SyncMode::Full)?;
    store::migrate(&mut conn)?;
    Ok(conn)
}

fn in_transaction<T>(
    db: &Path,
    f: impl FnOnce(&Connection) -> Result<T, String>,
) -> Result<T, String> {
    let mut conn = open(db)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let value = f(&tx)?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(value)
}

fn hash(password: &str, cost: u32) -> Result<String, String> {
    bcrypt::hash(password, cost).map_err(|e| format!("bcrypt: {e}"))
}

fn find_user(conn: &Connection, username: &str) -> Result<users::Profile, String> {
    users::by_username(conn, username)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named {username}"))
}

/// The password from --password, the terminal (not echoed), or one line of stdin.
fn read_password(given: Option<String>) -> Result<String, String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ").map_err(|e| e.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn user(db: &Path, cmd: UserCommand) -> Result<(), String> {
    let err = |e: crate::error::ApiError| e.to_string();
    match cmd {
        UserCommand::Add {
            username,
            email,
            password,
            bcrypt_cost,
        } => {
            validate::username(&username).map_err(err)?;
            validate::email(&email).map_err(err)?;
            let password = read_password(password)?;
            validate::password(&password).map_err(err)?;
            let hashed = hash(&password, bcrypt_cost)?;
            let profile = in_transaction(db, |c| {
                users::insert(c, &username, &email, &hashed).map_err(err)
            })?;
            println!("created user {} (id {})", profile.username, profile.id);
        }
        UserCommand::List => {
            let conn = open(db)?;
            for u in users::list_all(&conn).map_err(err)? {
                println!("{}\t{}\t{}\t{}", u.id, u.username, u.email, u.created_at);
            }
        }
        UserCommand::Passwd {
            username,
            password,
            bcrypt_cost,
        } => {
            let password = read_password(password)?;
            validate::password(&password).map_err(err)?;
            let hashed = hash(&password, bcrypt_cost)?;
            in_transaction(db, |c| {
                let user = find_user(c, &username)?;
                users::set_password(c, user.id, &hashed).map_err(err)?;
                store::tokens::revoke_all(c, user.id).map_err(err)
            })?;
            println!("password changed for {username}; their sessions are signed out");
        }
        UserCommand::Delete { username } => {
            in_transaction(db, |c| {
                let user = find_user(c, &username)?;
                users::delete(c, user.id).map_err(err)
            })?;
            println!("deleted user {username}");
        }
    }
    Ok(())
}

fn backup(db: &Path, file: &Path) -> Result<(), String> {
    if !db.exists() {
        return Err(format!("no database at {}", db.display()));
    }
    if file.exists() {
        return Err(format!(
            "{} already exists; choose a new file",
            file.display()
        ));
    }
    let conn = store::open_connection(db, SyncMode::Full)?;
    let target = file
        .to_str()
        .ok_or_else(|| "the backup path must be valid UTF-8".to_string())?;
    // VACUUM INTO reads one consistent snapshot, so a running server can keep writing.
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| format!("backup failed: {e}"))?;
    println!("backed up {} to {}", db.display(), file.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serve_is_the_default_command() {
        assert_eq!(with_default_command(args(&["cs"])), args(&["cs", "serve"]));
        assert_eq!(
            with_default_command(args(&["cs", "--addr", "0.0.0.0:1"])),
            args(&["cs", "serve", "--addr", "0.0.0.0:1"])
        );
        assert_eq!(
            with_default_command(args(&["cs", "--db", "x", "user", "list"])),
            args(&["cs", "--db", "x", "user", "list"])
        );
        assert_eq!(
            with_default_command(args(&["cs", "--help"])),
            args(&["cs", "--help"])
        );
    }
}
