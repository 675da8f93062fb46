//! The operator's subcommands: migrate, seed, users, tokens and backups. Each works on the
//! database file directly (see `store::Admin`), also while a server runs on it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use clap::Subcommand;

use crate::auth::{self, Keys};
use crate::config::{Database, HashArgs, TokenArgs};
use crate::error::{Error, Result};
use crate::model::{Email, Password, Username};
use crate::store::{Admin, SeedFile, DEFAULT_SEED};

#[derive(Subcommand)]
pub(super) enum UserCommand {
    /// Create a user; without --password, asks on the terminal (twice) or reads a line from
    /// stdin.
    Add {
        /// 3–32 letters, digits, `_`, `.` or `-`; unique regardless of case.
        username: String,
        /// Their email address (unique; they may log in with it too).
        email: String,
        /// 8–128 characters. On the command line it shows in the process list and the shell's
        /// history: leave it out to be asked.
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        hashing: HashArgs,
    },
    /// Create the accounts of a class list (CSV) at once, all or nothing.
    Import(super::classroom::ImportArgs),
    /// List users.
    List,
    /// Set a user's password (and sign them out everywhere).
    Passwd {
        /// Whose password.
        username: String,
        /// The new password, 8–128 characters (leave it out to be asked).
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        hashing: HashArgs,
    },
    /// Delete a user (their messages stay, shown as from a deleted account).
    Delete {
        /// Whose account.
        username: String,
    },
}

pub(super) fn migrate(db: &Database) -> Result<()> {
    let applied = Admin::migrate(db)?;
    if applied.is_empty() {
        println!("{db}: up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}

pub(super) fn seed(db: &Database, file: Option<&Path>, hashing: HashArgs) -> Result<()> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| Error::not_found(format!("cannot read {}: {e}", f.display())))?,
        None => DEFAULT_SEED.to_string(),
    };
    let parsed = SeedFile::parse(&text)?;
    let cost = hashing.bcrypt_cost;
    let report = Admin::open(db)?.seed(&parsed, &move |p| auth::hash_password(p, cost))?;
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

pub(super) fn token(db: &Database, username: &str, tokens: &TokenArgs) -> Result<()> {
    let configured = tokens
        .secret()
        .map_err(|e| Error::invalid("invalid_secret", e))?;
    let configured = configured.as_deref();
    let (user, epoch, secret) =
        Admin::open(db)?.token_subject(username, configured, auth::generate_secret())?;
    // An operator's token belongs to no session: only a new password or expiry ends it.
    let token = Keys::new(secret.as_bytes(), tokens.access_ttl).issue(user, None, epoch)?;
    println!("{token}");
    Ok(())
}

pub(super) fn backup(db: &Database, file: &Path) -> Result<()> {
    Admin::backup(db, file)?;
    println!("backed up {db} to {}", file.display());
    Ok(())
}

pub(super) fn copy(from: &Database, to: &Database) -> Result<()> {
    let copied = crate::store::copy(from, to)?;
    let count = |table| {
        (copied.tables.iter())
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    };
    println!(
        "copied {from} to {to}: {} users, {} conversations, {} messages, {} attachments",
        count("users"),
        count("conversations"),
        count("messages"),
        count("attachments")
    );
    Ok(())
}

pub(super) fn user(db: &Database, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            email,
            password,
            hashing,
        } => {
            let username = Username::parse(&username)?;
            let email = Email::parse(&email)?;
            let password = Password::parse(&read_password(password)?)?;
            let hashed = auth::hash_password(password.as_str(), hashing.bcrypt_cost)?;
            let profile = Admin::open(db)?.add_user(&username, &email, &hashed)?;
            println!("created user {} (id {})", profile.username, profile.id);
        }
        UserCommand::Import(args) => super::classroom::import(db, args)?,
        UserCommand::List => {
            let users = Admin::open(db)?.list_users()?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ID\tUSERNAME\tEMAIL\tCREATED");
            for u in users {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    u.id, u.username, u.email, u.created_at
                );
            }
        }
        UserCommand::Passwd {
            username,
            password,
            hashing,
        } => {
            let password = Password::parse(&read_password(password)?)?;
            let hashed = auth::hash_password(password.as_str(), hashing.bcrypt_cost)?;
            Admin::open(db)?.set_password(&username, &hashed)?;
            println!("password changed for {username}; their sessions are signed out");
        }
        UserCommand::Delete { username } => {
            Admin::open(db)?.delete_user(&username)?;
            println!("deleted user {username}");
        }
    }
    Ok(())
}

/// The password from --password, the terminal (not echoed), or one line of stdin.
fn read_password(given: Option<String>) -> Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map_err(|e| Error::invalid("invalid_password", e.to_string()))
        };
        let first = ask("Password: ")?;
        Password::parse(&first)?;
        if ask("Again: ")? != first {
            return Err(Error::invalid(
                "invalid_password",
                "the two passwords differ; nothing changed",
            ));
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Error::invalid(
            "invalid_password",
            format!("cannot read the password from stdin: {e}"),
        )
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
