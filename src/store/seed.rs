//! The default users and groups, from `seed/default.toml` (embedded) or a file like it.
//! Seeding creates what is missing and never overwrites a row.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;

use super::{groups, settings, users};
use crate::error::ApiError;
use crate::ids::{GroupId, UserId};
use crate::validate;

pub const DEFAULT: &str = include_str!("../../seed/default.toml");
const SEEDED_KEY: &str = "seeded";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub username: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGroup {
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub members: Vec<String>,
}

impl SeedFile {
    pub fn parse(text: &str) -> Result<SeedFile, String> {
        let seed: SeedFile = toml::from_str(text).map_err(|e| format!("seed file: {e}"))?;
        for u in &seed.users {
            validate::username(&u.username)
                .and(validate::email(&u.email))
                .and(validate::password(&u.password))
                .map_err(|e| format!("seed user {}: {e}", u.username))?;
        }
        for g in &seed.groups {
            validate::group_name(&g.name).map_err(|e| format!("seed group {}: {e}", g.name))?;
        }
        Ok(seed)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub memberships: usize,
}

/// Whether this database was ever seeded (then the server never seeds it again).
pub fn already_seeded(conn: &Connection) -> Result<bool, ApiError> {
    Ok(settings::get(conn, SEEDED_KEY)?.is_some())
}

/// Creates the seed's missing users, groups and memberships, in the caller's transaction.
/// `hash` turns a password into a stored hash (bcrypt at the configured cost).
pub fn apply(
    conn: &Connection,
    seed: &SeedFile,
    hash: &(dyn Fn(&str) -> Result<String, String> + Sync),
) -> Result<Report, String> {
    let mut report = Report::default();
    let err = |e: ApiError| e.to_string();
    let mut missing = Vec::new();
    for u in &seed.users {
        let taken: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM users WHERE username = ?1 OR email = ?2",
                params![u.username, u.email],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        if taken.is_none() {
            missing.push(u);
        }
    }
    // bcrypt is slow on purpose: hash the passwords side by side, not one after another.
    let hashes: Vec<Result<String, String>> = std::thread::scope(|scope| {
        let running: Vec<_> = missing
            .iter()
            .map(|u| scope.spawn(|| hash(&u.password)))
            .collect();
        running
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("hashing panicked".into())))
            .collect()
    });
    for (u, hashed) in missing.into_iter().zip(hashes) {
        users::insert(conn, &u.username, &u.email, &hashed?).map_err(err)?;
        report.users.push(u.username.clone());
    }
    for g in &seed.groups {
        let user_id = |name: &str| -> Result<UserId, String> {
            users::by_username(conn, name)
                .map_err(err)?
                .map(|p| p.id)
                .ok_or_else(|| format!("seed group {}: no user named {name}", g.name))
        };
        let owner = user_id(&g.owner)?;
        let existing: Option<GroupId> = conn
            .query_row(
                "SELECT id FROM conversations WHERE kind = 'group' AND name = ?1 ORDER BY id",
                [&g.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        let group = match existing {
            Some(id) => id,
            None => {
                report.groups.push(g.name.clone());
                groups::create(conn, owner, &g.name, &[])
                    .map_err(err)?
                    .value
                    .id
            }
        };
        for name in &g.members {
            let member = user_id(name)?;
            let added = conn
                .execute(
                    "INSERT INTO members (conversation_id, user_id, role) VALUES (?1, ?2, 'member')
                     ON CONFLICT DO NOTHING",
                    params![group, member],
                )
                .map_err(|e| e.to_string())?;
            report.memberships += added;
        }
    }
    settings::set(conn, SEEDED_KEY, "true").map_err(err)?;
    Ok(report)
}
