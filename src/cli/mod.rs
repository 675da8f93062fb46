//! The command line: `serve` (the default) and the operator's subcommands. Every flag also
//! reads a `CHATSERVER_*` environment variable. Errors are one line on stderr and exit 1
//! (2 for a bad command line).

mod admin;
mod banner;
mod classroom;
mod import;
mod line;
mod logging;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app;
use crate::config::{Config, Database, HashArgs, TokenArgs};
use crate::error::Result;

#[derive(Parser)]
#[command(
    name = "chatserver",
    version,
    about = "A real-time chat server: one binary, one SQLite file.",
    after_help = "Without a command, runs `serve`: `chatserver` alone serves http://127.0.0.1:8080 \
on ./chatserver.db, made and seeded when missing. Its options are listed by \
`chatserver serve --help`; the common ones: --addr 0.0.0.0:8080 lets other machines (a class) in, \
--registration closed leaves account-making to `chatserver user add|import`, --no-seed starts \
without the demo users Ava and Mike."
)]
struct Cli {
    /// The database: a SQLite file (`serve` and `migrate` create it when missing; the other
    /// commands refuse a missing file), or a postgres:// URL of an existing database.
    #[arg(
        long,
        global = true,
        env = "CHATSERVER_DB",
        default_value = "chatserver.db"
    )]
    db: Database,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<Config>),
    /// Apply pending migrations, print what was applied, and exit.
    Migrate,
    /// Create the seed's users and groups where they are missing.
    Seed {
        /// A seed file like seed/default.toml (default: the one built in).
        #[arg(long, env = "CHATSERVER_SEED_FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        hashing: HashArgs,
    },
    /// Manage users (add, import a class list, list, passwd, delete).
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage groups (create, list, members, add, remove).
    #[command(subcommand)]
    Group(classroom::GroupCommand),
    /// Print a fresh access token for a user (so `T=$(chatserver token Ava)` works).
    Token {
        /// Whose token.
        username: String,
        #[command(flatten)]
        tokens: TokenArgs,
    },
    /// Write a consistent copy of the database to FILE (also while the server runs).
    Backup {
        /// Where the copy goes (a new file).
        file: PathBuf,
    },
    /// Copy everything (attachments too) from one database into a new, empty one: a SQLite
    /// file to PostgreSQL or back. `--db` is not used.
    Copy {
        /// The database to read (a SQLite file or a postgres:// URL); a server may run on it.
        #[arg(long, value_name = "DB")]
        from: Database,
        /// The database to fill: a new file, or a PostgreSQL database with no accounts.
        #[arg(long, value_name = "DB")]
        to: Database,
    },
}

const SUBCOMMANDS: &[&str] = &[
    "serve", "migrate", "seed", "user", "group", "token", "backup", "copy", "help",
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
            eprintln!("chatserver: {}", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let is_serve = matches!(cli.command, Command::Serve(_));
    // refinery reports each migration at INFO, PostgreSQL its notices and NATS each
    // connection; what was applied is logged once by the store, the broker by the server.
    let logging = logging::init(if is_serve {
        "info,refinery_core=warn,tokio_postgres=warn,async_nats=warn"
    } else {
        "warn"
    });
    let outcome = run(cli);
    // Every log line is on stderr before the closing message below.
    drop(logging);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatserver: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A clap error on one line, with what is missing or wrong and the usage: "the following
/// required arguments were not provided: <EMAIL> (usage: chatserver user add …; see --help)".
fn one_line(text: &str) -> String {
    let mut what = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if usage.is_none() && !line.starts_with("tip:") {
            what.push(line.trim_start_matches("error: ").to_string());
        }
    }
    let what = if what.is_empty() {
        "invalid arguments".to_string()
    } else {
        what.join(" ")
    };
    match usage {
        Some(u) => format!("{what} (usage: {u}; see --help)"),
        None => format!("{what} (see --help)"),
    }
}

fn run(cli: Cli) -> Result<()> {
    let db = cli.db;
    match cli.command {
        Command::Serve(mut config) => {
            config.db = db;
            serve(*config)
        }
        Command::Migrate => admin::migrate(&db),
        Command::Seed { file, hashing } => admin::seed(&db, file.as_deref(), hashing),
        Command::User(cmd) => admin::user(&db, cmd),
        Command::Group(cmd) => classroom::group(&db, cmd),
        Command::Token { username, tokens } => admin::token(&db, &username, &tokens),
        Command::Backup { file } => admin::backup(&db, &file),
        Command::Copy { from, to } => admin::copy(&from, &to),
    }
}

fn serve(config: Config) -> Result<()> {
    if std::env::args().any(|a| a == "--jwt-secret" || a.starts_with("--jwt-secret=")) {
        tracing::warn!(
            "--jwt-secret on the command line shows in the process list; \
             use --jwt-secret-file (or CHATSERVER_JWT_SECRET) instead"
        );
    }
    if let Some(limit) = crate::net::raise_open_files_limit() {
        tracing::debug!(limit, "open-files limit");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work is SQLite reads (8 pooled connections) and bcrypt (a few permits):
        // more threads than this would only wait, each holding a stack and malloc arena.
        .max_blocking_threads(32)
        // A blocking thread idle this long ends (tokio's default is 10 s): the threads a burst
        // of reads or logins started give their memory back soon after it.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| crate::error::Error::internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let db = config.db.clone();
        let server = app::start(config).await?;
        print_banner(server.addr(), &db, &server.demo_accounts().await);
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

fn print_banner(addr: SocketAddr, db: &Database, demo: &[(String, String)]) {
    let text = banner::banner(addr, db, &banner::student_urls(addr), demo);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
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

    #[test]
    fn a_command_line_error_is_one_line_naming_what_is_missing() {
        let e = Cli::try_parse_from(["chatserver", "user", "add", "onlyname"])
            .err()
            .expect("an error");
        let line = one_line(&e.to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("<EMAIL>"), "{line}");
        assert!(line.contains("usage: chatserver user add"), "{line}");
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
