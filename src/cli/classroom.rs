//! The teacher's subcommands: groups (`group create|list|members|add|remove`) and a class list
//! imported at once (`user import`). A running server on the same file tells the sockets
//! concerned within a second.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rand::Rng;

use crate::auth;
use crate::config::HashArgs;
use crate::error::{Error, Result};
use crate::model::{DisplayName, Email, GroupName, Password, Role, Username};
use crate::store::{Admin, NewAccount};

#[derive(Subcommand)]
pub(super) enum GroupCommand {
    /// Create a group (the owner, when given, manages it from the web client too).
    Create {
        /// The group's name.
        name: String,
        /// The username of its owner (default: none; then only the command line manages it).
        #[arg(long, value_name = "USERNAME")]
        owner: Option<String>,
        /// Usernames to add as members, separated by commas.
        #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
        members: Vec<String>,
    },
    /// List every group: id, name, owner, who may post, and how many members.
    List,
    /// List a group's members and their roles.
    Members {
        /// The group's id, or its name when no other group has it.
        group: String,
    },
    /// Add users to a group (those already in it are left as they are).
    Add {
        /// The group's id, or its name when no other group has it.
        group: String,
        /// Usernames to add.
        #[arg(required = true, value_name = "USERNAME")]
        users: Vec<String>,
        /// The role they get.
        #[arg(long, default_value = "member", value_parser = ["member", "admin"])]
        role: String,
    },
    /// Remove users from a group (not its owner).
    Remove {
        /// The group's id, or its name when no other group has it.
        group: String,
        /// Usernames to remove.
        #[arg(required = true, value_name = "USERNAME")]
        users: Vec<String>,
    },
}

/// `user import`.
#[derive(Args)]
pub(super) struct ImportArgs {
    /// A CSV file with a header naming `username,email` and optionally `display_name,password`.
    file: PathBuf,
    /// Also add everyone to this group (created when there is none of that name).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Write the sheet of usernames and generated passwords here (default: print it). The file
    /// is created readable by you alone, and must not exist yet.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    hashing: HashArgs,
}

pub(super) fn group(db: &Path, cmd: GroupCommand) -> Result<()> {
    let mut admin = Admin::open(db)?;
    match cmd {
        GroupCommand::Create {
            name,
            owner,
            members,
        } => {
            let name = GroupName::parse(&name)?;
            let members: Vec<String> = members
                .into_iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            let id = admin.create_group(&name, owner.as_deref(), &members)?;
            println!(
                "created group {} (id {id}) with {} member(s)",
                name.as_str(),
                members.len() + usize::from(owner.is_some())
            );
        }
        GroupCommand::List => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ID\tNAME\tOWNER\tPOSTING\tMEMBERS");
            for g in admin.list_groups()? {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    g.id,
                    g.name,
                    g.owner.as_deref().unwrap_or("-"),
                    g.posting,
                    g.members
                );
            }
        }
        GroupCommand::Members { group } => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "USERNAME\tROLE");
            for (username, role) in admin.group_members(&group)? {
                let _ = writeln!(out, "{username}\t{}", role.as_str());
            }
        }
        GroupCommand::Add { group, users, role } => {
            let role = Role::parse(&role).unwrap_or(Role::Member);
            let added = admin.add_to_group(&group, &users, role)?;
            println!(
                "added {added} user(s) to {group}; {} already in it",
                users.len() - added
            );
        }
        GroupCommand::Remove { group, users } => {
            admin.remove_from_group(&group, &users)?;
            println!("removed {} user(s) from {group}", users.len());
        }
    }
    Ok(())
}

/// One row of the class list, as read.
struct Row {
    line: u64,
    username: String,
    email: String,
    display_name: Option<String>,
    password: Option<String>,
}

pub(super) fn import(db: &Path, args: ImportArgs) -> Result<()> {
    // Everything that can be checked is checked before anything is written: the database, the
    // group's name, the sheet's file, then every row.
    let mut admin = Admin::open(db)?;
    let group = args.group.as_deref().map(GroupName::parse).transpose()?;
    if let Some(out) = args.out.as_deref().filter(|o| o.exists()) {
        return Err(Error::conflict(format!(
            "{} already exists; choose a new file for the sheet",
            out.display()
        )));
    }
    let checked = check_rows(&read_rows(&args.file)?)?;
    let accounts = hashed(&checked, args.hashing.bcrypt_cost)?;
    let sheet = sheet(&checked);
    // The sheet is written before the accounts are made, so there are never accounts whose
    // passwords nobody has; it is removed again if the import fails.
    if let Some(path) = &args.out {
        write_private(path, &sheet)?;
    }
    if let Err(e) = admin.import(&accounts, group.as_ref()) {
        if let Some(path) = &args.out {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    let generated = checked.iter().filter(|c| c.generated).count();
    let done = format!(
        "imported {} user(s){}",
        accounts.len(),
        in_group(group.as_ref())
    );
    match &args.out {
        Some(path) => println!(
            "{done}; the sheet ({generated} generated password(s)) is in {}",
            path.display()
        ),
        None => {
            print!("{sheet}");
            eprintln!("{done}; {generated} password(s) generated");
        }
    }
    Ok(())
}

/// The accounts to create, their passwords hashed.
fn hashed(checked: &[Checked], cost: u32) -> Result<Vec<NewAccount>> {
    Ok(checked
        .iter()
        .zip(hash_all(checked, cost)?)
        .map(|(c, hash)| NewAccount {
            line: c.line,
            username: c.username.clone(),
            email: c.email.clone(),
            display_name: c.display_name.clone(),
            hash,
        })
        .collect())
}

/// A new file readable by its owner only, holding `text`, on disk before this returns.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let cannot =
        |e: std::io::Error| Error::unavailable(format!("cannot write {}: {e}", path.display()));
    let mut file = crate::store::create_private_file(path).map_err(cannot)?;
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        let _ = std::fs::remove_file(path);
        return Err(cannot(e));
    }
    Ok(())
}

fn in_group(group: Option<&GroupName>) -> String {
    group
        .map(|g| format!(" into {}", g.as_str()))
        .unwrap_or_default()
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_path(path)
        .map_err(|e| Error::not_found(format!("cannot read {}: {e}", path.display())))?;
    let bad = |msg: String| Error::invalid("invalid_csv", format!("{}: {msg}", path.display()));
    let header = reader
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect::<Vec<_>>();
    const KNOWN: [&str; 4] = ["username", "email", "display_name", "password"];
    if let Some(unknown) = header.iter().find(|h| !KNOWN.contains(&h.as_str())) {
        return Err(bad(format!(
            "line 1: unknown column {unknown:?} (the columns are username, email, display_name, password)"
        )));
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(username), Some(email)) = (column("username"), column("email")) else {
        return Err(bad(
            "line 1: the header must name the columns username and email".into(),
        ));
    };
    let (display_name, password) = (column("display_name"), column("password"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos: Some(pos),
                expected_len,
                len,
            } => bad(format!(
                "line {}: {len} fields, but the header names {expected_len}",
                pos.line()
            )),
            _ => bad(e.to_string()),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        rows.push(Row {
            line,
            username: field(Some(username)).unwrap_or_default(),
            email: field(Some(email)).unwrap_or_default(),
            display_name: field(display_name),
            password: field(password),
        });
    }
    if rows.is_empty() {
        return Err(bad("no accounts in it".into()));
    }
    Ok(rows)
}

/// A row that passed every check.
struct Checked {
    line: u64,
    username: Username,
    email: Email,
    display_name: Option<DisplayName>,
    password: String,
    generated: bool,
}

/// Every row's fields, and no username or email twice: all problems, each with its line.
fn check_rows(rows: &[Row]) -> Result<Vec<Checked>> {
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for row in rows {
        let mut fail = |what: String| problems.push(format!("line {}: {what}", row.line));
        let username = Username::parse(&row.username);
        let email = Email::parse(&row.email);
        let display_name = row
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose();
        let password = match &row.password {
            Some(p) => Password::parse(p).map(|_| (p.clone(), false)),
            None => Ok((generate_password(), true)),
        };
        for key in [
            format!("username {}", row.username.to_lowercase()),
            format!("email {}", row.email.to_lowercase()),
        ] {
            if let Some(first) = seen.insert(key.clone(), row.line) {
                fail(format!("{key} is also on line {first}"));
            }
        }
        match (username, email, display_name, password) {
            (Ok(username), Ok(email), Ok(display_name), Ok((password, generated))) => {
                checked.push(Checked {
                    line: row.line,
                    username,
                    email,
                    display_name,
                    password,
                    generated,
                })
            }
            (u, e, d, p) => {
                for err in [u.err(), e.err(), d.err(), p.err()].into_iter().flatten() {
                    fail(err.to_string());
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid(
            "invalid_csv",
            format!("nothing imported: {}", problems.join("; ")),
        ));
    }
    Ok(checked)
}

/// bcrypt is slow on purpose: a class list is hashed on every core.
fn hash_all(accounts: &[Checked], cost: u32) -> Result<Vec<String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = accounts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = accounts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|a| auth::hash_password(&a.password, cost))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(accounts.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| Error::internal("hashing a password failed"))??,
            );
        }
        Ok(all)
    })
}

/// The sheet handed to the class: username, display name and password of everyone imported
/// (a given password is not repeated: its owner knows it).
fn sheet(accounts: &[Checked]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(["username", "display_name", "password"]);
    for a in accounts {
        let name = a.display_name.as_ref().map_or("", |d| d.as_str());
        let password = if a.generated {
            a.password.as_str()
        } else {
            "(as given)"
        };
        let _ = out.write_record([a.username.as_str(), name, password]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

const WORDS: &str = include_str!("words.txt");

/// Easy to read aloud and type: two short words and four digits, like `maple-otter-4821`
/// (256² × 10⁴ ≈ 2²⁹ choices; the login limits make guessing one hopeless).
fn generate_password() -> String {
    let words: Vec<&str> = WORDS.lines().filter(|w| !w.is_empty()).collect();
    let mut rng = rand::rng();
    format!(
        "{}-{}-{:04}",
        words[rng.random_range(0..words.len())],
        words[rng.random_range(0..words.len())],
        rng.random_range(0..10_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_enough_and_valid() {
        for _ in 0..200 {
            let p = generate_password();
            assert!(p.len() >= 10, "{p}");
            assert!(Password::parse(&p).is_ok(), "{p}");
            assert!(p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        assert_eq!(WORDS.lines().count(), 256);
    }
}
