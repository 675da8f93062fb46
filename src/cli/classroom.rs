//! The teacher's subcommands: groups (`group create|list|members|add|remove`) and a class list
//! imported at once (`user import`). A running server on the same file tells the sockets
//! concerned within a second.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::config::{Database, HashArgs};
use crate::error::{Error, Result};
use crate::model::{GroupName, Role};
use crate::store::{Admin, NewAccount};

use super::import::{check_rows, hash_all, read_rows, sheet, Checked};

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

pub(super) fn group(db: &Database, cmd: GroupCommand) -> Result<()> {
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

pub(super) fn import(db: &Database, args: ImportArgs) -> Result<()> {
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
