//! The default users and groups, from `seed/default.toml` (embedded) or a file like it.
//! Seeding creates what is missing and never overwrites a row.

use super::db::{args, Db};
use serde::Deserialize;

use super::{groups, settings, users, written, Caps, Pending, Store};
use crate::error::{Error, Result};
use crate::model::{Email, GroupId, GroupName, Password, UserId, Username};

/// `seed/default.toml`, built in.
pub(crate) const DEFAULT: &str = include_str!("../../seed/default.toml");
const SEEDED_KEY: &str = "seeded";

/// Turns a password into a stored hash (bcrypt at the configured cost).
pub(crate) type Hasher = dyn Fn(&str) -> Result<String> + Send + Sync;

impl Store {
    /// The first write of every start: seeds a database that was never seeded (when `seed`
    /// is given; when it is not, the database is marked as never to be seeded), and returns the JWT secret, `configured` or the one kept in the database
    /// (`generated` when there is none yet).
    pub fn prepare(
        &self,
        seed: Option<(SeedFile, Box<Hasher>)>,
        configured: Option<String>,
        generated: String,
    ) -> Pending<String> {
        self.write(move |c| {
            if !already_seeded(c)? {
                match seed {
                    Some((file, hash)) => {
                        let report = apply(c, &file, &*hash)?;
                        tracing::info!(users = ?report.users, groups = ?report.groups, "seeded a new database");
                    }
                    // `--no-seed` on a database never seeded is remembered: a later start
                    // without the flag does not seed it either (`chatserver seed` still can).
                    None => settings::set(c, SEEDED_KEY, "declined")?,
                }
            }
            let secret = settings::jwt_secret(c, configured.as_deref(), || generated)?;
            Ok(written(secret, Vec::new()))
        })
    }
}

/// A seed file like `seed/default.toml`, every value already checked.
#[derive(Debug)]
pub(crate) struct SeedFile {
    users: Vec<SeedUser>,
    groups: Vec<SeedGroup>,
}

#[derive(Debug)]
struct SeedUser {
    username: Username,
    email: Email,
    password: Password,
}

#[derive(Debug)]
struct SeedGroup {
    name: GroupName,
    owner: String,
    members: Vec<String>,
}

/// The file as written; `SeedFile::parse` checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: String,
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    owner: String,
    #[serde(default)]
    members: Vec<String>,
}

impl SeedFile {
    pub fn parse(text: &str) -> Result<SeedFile> {
        let raw: RawSeed = toml::from_str(text)
            .map_err(|e| Error::invalid("invalid_seed", format!("seed file: {e}")))?;
        let in_seed =
            |what: String| move |e: Error| Error::invalid("invalid_seed", format!("{what}: {e}"));
        let users = raw
            .users
            .into_iter()
            .map(|u| {
                let what = in_seed(format!("seed user {}", u.username));
                Ok(SeedUser {
                    username: Username::parse(&u.username).map_err(&what)?,
                    email: Email::parse(&u.email).map_err(&what)?,
                    password: Password::parse(&u.password).map_err(&what)?,
                })
            })
            .collect::<Result<_>>()?;
        let groups = raw
            .groups
            .into_iter()
            .map(|g| {
                let name =
                    GroupName::parse(&g.name).map_err(in_seed(format!("seed group {}", g.name)))?;
                Ok(SeedGroup {
                    name,
                    owner: g.owner,
                    members: g.members,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SeedFile { users, groups })
    }
}

impl SeedFile {
    /// Each seeded account's username and password.
    pub fn accounts(&self) -> Vec<(String, String)> {
        self.users
            .iter()
            .map(|u| (u.username.to_string(), u.password.as_str().to_string()))
            .collect()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub memberships: usize,
}

/// Whether this database was ever seeded (then the server never seeds it again).
fn already_seeded(conn: &Db) -> Result<bool> {
    Ok(settings::get(conn, SEEDED_KEY)?.is_some())
}

/// Creates the seed's missing users, groups and memberships, in the caller's transaction.
pub(super) fn apply(conn: &Db, seed: &SeedFile, hash: &Hasher) -> Result<Report> {
    let mut report = Report::default();
    let mut missing = Vec::new();
    for u in &seed.users {
        let taken: Option<i64> = conn.query_opt(
            "SELECT 1 FROM users WHERE username = ?1 OR email = ?2",
            args![u.username.as_str(), u.email.as_str()],
            |r| r.get(0),
        )?;
        if taken.is_none() {
            missing.push(u);
        }
    }
    // bcrypt is slow on purpose: hash the passwords side by side, not one after another.
    let hashes: Vec<Result<String>> = std::thread::scope(|scope| {
        let running: Vec<_> = missing
            .iter()
            .map(|u| scope.spawn(|| hash(u.password.as_str())))
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("hashing panicked")))
            })
            .collect()
    });
    for (u, hashed) in missing.into_iter().zip(hashes) {
        users::insert(conn, &u.username, &u.email, &hashed?)?;
        report.users.push(u.username.to_string());
    }
    for g in &seed.groups {
        report.memberships += seed_group(conn, g, &mut report.groups)?;
    }
    settings::set(conn, SEEDED_KEY, "true")?;
    Ok(report)
}

/// Creates the group if no group has its name, and adds its missing members; returns how many
/// memberships were added (the owner's not counted).
fn seed_group(conn: &Db, g: &SeedGroup, created: &mut Vec<String>) -> Result<usize> {
    let user_id = |name: &str| -> Result<UserId> {
        users::by_username(conn, name)?
            .map(|p| p.id)
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_seed",
                    format!("seed group {}: no user named {name}", g.name),
                )
            })
    };
    let owner = user_id(&g.owner)?;
    let existing: Option<GroupId> = conn.query_opt(
        "SELECT id FROM conversations WHERE kind = 'group' AND name = ?1 ORDER BY id",
        args![g.name.as_str()],
        |r| r.get(0),
    )?;
    let group = match existing {
        Some(id) => id,
        None => {
            created.push(g.name.to_string());
            groups::create(conn, Caps::NONE, owner, &g.name, &[])?
                .value
                .id
        }
    };
    let mut added = 0;
    for name in &g.members {
        let member = user_id(name)?;
        added += conn.execute(
            "INSERT INTO members (conversation_id, user_id, role) VALUES (?1, ?2, 'member')
             ON CONFLICT DO NOTHING",
            args![group, member],
        )?;
    }
    Ok(added)
}
