//! Users: accounts, profiles and password hashes.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::ApiError;
use crate::ids::UserId;

/// A user's own view of their account (the only place an email appears).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub public_key: Option<String>,
    pub created_at: String,
}

/// What anyone signed in may see of a user.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PublicUser {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub public_key: Option<String>,
    /// Filled in from the hub by the caller; the database does not know who is connected.
    pub online: bool,
    pub last_seen: Option<String>,
    pub created_at: String,
}

const PROFILE_COLUMNS: &str =
    "id, username, email, display_name, avatar_url, public_key, created_at";
const PUBLIC_COLUMNS: &str =
    "id, username, display_name, avatar_url, public_key, last_seen, created_at";

fn profile_row(r: &Row) -> rusqlite::Result<Profile> {
    Ok(Profile {
        id: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        avatar_url: r.get(4)?,
        public_key: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn public_row(r: &Row) -> rusqlite::Result<PublicUser> {
    Ok(PublicUser {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        avatar_url: r.get(3)?,
        public_key: r.get(4)?,
        online: false,
        last_seen: r.get(5)?,
        created_at: r.get(6)?,
    })
}

pub fn insert(
    conn: &Connection,
    username: &str,
    email: &str,
    password_hash: &str,
) -> Result<Profile, ApiError> {
    let taken: Option<String> = conn
        .query_row(
            "SELECT CASE WHEN username = ?1 THEN 'username' ELSE 'email' END
             FROM users WHERE username = ?1 OR email = ?2 LIMIT 1",
            params![username, email],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(what) = taken {
        return Err(ApiError::conflict(format!("that {what} is already taken")));
    }
    // Ids are never reused (see `delete`): a deleted account's unexpired token must not name a
    // new account. SQLite would reuse the highest id, as `users` has no AUTOINCREMENT.
    let sql = format!(
        "INSERT INTO users (id, username, email, password_hash)
         VALUES (max(coalesce((SELECT max(id) FROM users), 0),
                     coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?4), 0)) + 1,
                 ?1, ?2, ?3)
         RETURNING {PROFILE_COLUMNS}"
    );
    Ok(conn.query_row(
        &sql,
        params![username, email, password_hash, HIGHEST_DELETED_KEY],
        profile_row,
    )?)
}

pub fn profile(conn: &Connection, id: UserId) -> Result<Option<Profile>, ApiError> {
    let sql = format!("SELECT {PROFILE_COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], profile_row).optional()?)
}

pub fn by_username(conn: &Connection, username: &str) -> Result<Option<Profile>, ApiError> {
    let sql = format!("SELECT {PROFILE_COLUMNS} FROM users WHERE username = ?1");
    Ok(conn.query_row(&sql, [username], profile_row).optional()?)
}

pub fn public(conn: &Connection, id: UserId) -> Result<Option<PublicUser>, ApiError> {
    let sql = format!("SELECT {PUBLIC_COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], public_row).optional()?)
}

pub fn exists(conn: &Connection, id: UserId) -> Result<bool, ApiError> {
    Ok(conn
        .query_row("SELECT 1 FROM users WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The user a login names, by username or email (case-insensitive), with the password hash.
pub fn credentials(conn: &Connection, login: &str) -> Result<Option<(UserId, String)>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT id, password_hash FROM users WHERE username = ?1 OR email = ?1 LIMIT 1",
            [login],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Users whose username or display name contains `query`, ignoring case (in any script),
/// by username.
pub fn search(
    conn: &Connection,
    query: &str,
    limit: u32,
    offset: u32,
) -> Result<Vec<PublicUser>, ApiError> {
    let sql = format!(
        "SELECT {PUBLIC_COLUMNS} FROM users
         WHERE instr(casefold(username), ?1) > 0 OR instr(casefold(display_name), ?1) > 0
         ORDER BY username COLLATE NOCASE LIMIT ?2 OFFSET ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![query.to_lowercase(), limit, offset], public_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn list_all(conn: &Connection) -> Result<Vec<Profile>, ApiError> {
    let sql = format!("SELECT {PROFILE_COLUMNS} FROM users ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], profile_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn set_password(conn: &Connection, id: UserId, hash: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id, hash],
    )?;
    Ok(())
}

/// The settings key counting account deletions, so a running server (another process than
/// the CLI that deletes) notices and stops honouring the deleted accounts' tokens.
pub const DELETIONS_KEY: &str = "user_deletions";

/// The settings key holding the highest id ever deleted, so `insert` never hands it out again.
const HIGHEST_DELETED_KEY: &str = "users_highest_deleted_id";

pub fn delete(conn: &Connection, id: UserId) -> Result<(), ApiError> {
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE
         SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        params![HIGHEST_DELETED_KEY, id.0.to_string()],
    )?;
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [DELETIONS_KEY],
    )?;
    Ok(())
}

pub fn deletions(conn: &Connection) -> Result<i64, ApiError> {
    Ok(super::settings::get(conn, DELETIONS_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

pub fn all_ids(conn: &Connection) -> Result<Vec<UserId>, ApiError> {
    let mut stmt = conn.prepare("SELECT id FROM users")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A profile change: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub public_key: Option<Option<String>>,
}

pub fn update_profile(
    conn: &Connection,
    id: UserId,
    changes: &ProfileChanges,
) -> Result<Profile, ApiError> {
    let fields = [
        ("display_name", &changes.display_name),
        ("avatar_url", &changes.avatar_url),
        ("public_key", &changes.public_key),
    ];
    for (column, value) in fields {
        if let Some(value) = value {
            // `column` comes from the list above, never from the request.
            conn.execute(
                &format!("UPDATE users SET {column} = ?2 WHERE id = ?1"),
                params![id, value],
            )?;
        }
    }
    profile(conn, id)?.ok_or_else(|| ApiError::unauthorized("this account no longer exists"))
}

pub fn password_hash(conn: &Connection, id: UserId) -> Result<Option<String>, ApiError> {
    Ok(conn
        .query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Records that the user was last connected now; returns that time.
pub fn touch_last_seen(conn: &Connection, id: UserId) -> Result<Option<String>, ApiError> {
    Ok(conn
        .query_row(
            &format!(
                "UPDATE users SET last_seen = {} WHERE id = ?1 RETURNING last_seen",
                super::now_sql()
            ),
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_users_id_is_never_given_again() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let a = insert(&conn, "first", "a@x.y", "h").unwrap();
        let b = insert(&conn, "second", "b@x.y", "h").unwrap();
        delete(&conn, b.id).unwrap();
        let c = insert(&conn, "third", "c@x.y", "h").unwrap();
        assert!(c.id > b.id, "{} reused {}", c.id, b.id);
        delete(&conn, a.id).unwrap();
        let d = insert(&conn, "fourth", "d@x.y", "h").unwrap();
        assert!(d.id > c.id);
    }
}
