//! Users: accounts, profiles and password hashes.

use super::db::{args, Db, Row};

use super::{members, sqlite::NOW, tokens, written, Pending, Store};
use crate::error::{Error, Result};
use crate::model::{
    AvatarUrl, DisplayName, Email, Profile, PublicKey, PublicUser, UserId, Username,
};

const PROFILE_COLUMNS: &str =
    "id, username, email, display_name, avatar_url, public_key, created_at";
const PUBLIC_COLUMNS: &str =
    "id, username, display_name, avatar_url, public_key, last_seen, created_at";

/// The settings key counting changes to accounts and sessions (a deletion, a new password, a
/// logout), so every server on the database (another process: the command line, or other
/// instances) notices within a second and stops honouring the tokens those changes ended.
const CHANGES_KEY: &str = "account_changes";

/// The settings key holding the highest id ever deleted, so `insert` never hands it out again.
const HIGHEST_DELETED_KEY: &str = "users_highest_deleted_id";

/// A profile change: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default)]
pub(crate) struct ProfileChanges {
    pub display_name: Option<Option<DisplayName>>,
    pub avatar_url: Option<Option<AvatarUrl>>,
    pub public_key: Option<Option<PublicKey>>,
}

/// What the running server knows of the accounts (see `auth::Accounts`): which exist, in which
/// session epoch, and the sessions that ended early.
pub(crate) struct AccountList {
    pub changes: i64,
    pub users: Vec<(UserId, i64)>,
    pub ended: Vec<(String, UserId, i64)>,
}

impl Store {
    pub async fn profile(&self, id: UserId) -> Result<Option<Profile>> {
        self.read(move |c| profile(c, id)).await
    }

    pub async fn public_user(&self, id: UserId) -> Result<Option<PublicUser>> {
        self.read(move |c| public(c, id)).await
    }

    /// The user a login names, by username or email (case-insensitive), with the password hash.
    pub async fn credentials(&self, login: String) -> Result<Option<(UserId, String)>> {
        self.read(move |c| credentials(c, login.trim())).await
    }

    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        self.read(move |c| {
            c.query_opt(
                "SELECT password_hash FROM users WHERE id = ?1",
                args![id],
                |r| r.get(0),
            )
        })
        .await
    }

    /// The user's session epoch; `None` when there is no such user.
    pub async fn session_epoch(&self, id: UserId) -> Result<Option<i64>> {
        self.read(move |c| {
            c.query_opt(
                "SELECT session_epoch FROM users WHERE id = ?1",
                args![id],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Users whose username or display name contains `query`, ignoring case (in any script),
    /// by username.
    pub async fn search_users(
        &self,
        query: String,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<PublicUser>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {PUBLIC_COLUMNS} FROM users
                 WHERE instr(casefold(username), ?1) > 0 OR instr(casefold(display_name), ?1) > 0
                 ORDER BY username COLLATE NOCASE LIMIT ?2 OFFSET ?3"
            );
            c.query_map(&sql, args![query.to_lowercase(), limit, offset], public_row)
        })
        .await
    }

    /// Every account with its session epoch, and the sessions ended since `ended_after` (Unix
    /// seconds), unless the command line's change count is still `seen`.
    pub async fn accounts_if_changed(
        &self,
        seen: Option<i64>,
        ended_after: i64,
    ) -> Result<Option<AccountList>> {
        self.read(move |c| {
            let changes = changes(c)?;
            if seen == Some(changes) {
                return Ok(None);
            }
            Ok(Some(AccountList {
                changes,
                users: epochs(c)?,
                ended: tokens::ended_since(c, ended_after)?,
            }))
        })
        .await
    }

    pub fn create_user(&self, username: Username, email: Email, hash: String) -> Pending<Profile> {
        self.write(move |c| Ok(written(insert(c, &username, &email, &hash)?, Vec::new())))
    }

    pub fn update_profile(&self, id: UserId, changes: ProfileChanges) -> Pending<Profile> {
        self.write(move |c| Ok(written(update_profile(c, id, &changes)?, Vec::new())))
    }

    /// Sets a new password hash and ends every session of the user, in one write; returns the
    /// new session epoch.
    pub fn set_password(&self, id: UserId, hash: String) -> Pending<i64> {
        self.write(move |c| {
            set_password(c, id, &hash)?;
            Ok(written(end_all_sessions(c, id)?, Vec::new()))
        })
    }

    /// "Log out everywhere": ends every session of the user; returns the new session epoch.
    pub fn end_all_sessions(&self, id: UserId) -> Pending<i64> {
        self.write(move |c| Ok(written(end_all_sessions(c, id)?, Vec::new())))
    }

    /// Replaces an old-style hash of the same password with a new one, unless the password
    /// changed meanwhile. Sessions are untouched.
    pub fn upgrade_password_hash(&self, id: UserId, old: String, new: String) -> Pending<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
                args![id, old, new],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    /// Records that the user was last connected now; returns their contacts (who hear of it)
    /// and that time.
    pub fn went_offline(&self, id: UserId) -> Pending<(Vec<UserId>, Option<String>)> {
        self.write(move |c| {
            let last_seen: Option<String> = c.query_opt(
                &format!("UPDATE users SET last_seen = {NOW} WHERE id = ?1 RETURNING last_seen"),
                args![id],
                |r| r.get(0),
            )?;
            Ok(written(
                (members::contacts_of(c, id)?, last_seen),
                Vec::new(),
            ))
        })
    }

    /// Everyone who shares a conversation with `id`, with when each was last seen (a socket
    /// that missed presence events tells its client again).
    pub async fn contacts_seen(&self, id: UserId) -> Result<Vec<(UserId, Option<String>)>> {
        self.read(move |c| {
            c.query_map(
                "SELECT u.id, u.last_seen FROM users u WHERE u.id IN (
                     SELECT other.user_id FROM members mine
                     JOIN members other ON other.conversation_id = mine.conversation_id
                     WHERE mine.user_id = ?1 AND other.user_id != ?1)",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    /// The user's contacts (who hear of their coming online) and when they were last seen.
    pub async fn came_online(&self, id: UserId) -> Result<(Vec<UserId>, Option<String>)> {
        self.read(move |c| {
            let last_seen = public(c, id)?.and_then(|u| u.last_seen);
            Ok((members::contacts_of(c, id)?, last_seen))
        })
        .await
    }
}

fn profile_row(r: &Row) -> Result<Profile> {
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

fn public_row(r: &Row) -> Result<PublicUser> {
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

/// Which of the two, "username" or "email", another account already has (case-insensitively).
pub(super) fn taken(conn: &Db, username: &Username, email: &Email) -> Result<Option<&'static str>> {
    let username_taken: Option<bool> = conn.query_opt(
        "SELECT username = ?1 FROM users WHERE username = ?1 OR email = ?2
             ORDER BY username = ?1 DESC LIMIT 1",
        args![username.as_str(), email.as_str()],
        |r| r.get(0),
    )?;
    Ok(username_taken.map(|u| if u { "username" } else { "email" }))
}

pub(super) fn insert(
    conn: &Db,
    username: &Username,
    email: &Email,
    password_hash: &str,
) -> Result<Profile> {
    if let Some(what) = taken(conn, username, email)? {
        return Err(Error::conflict(format!("that {what} is already taken")));
    }
    let (username, email) = (username.as_str(), email.as_str());
    // Ids are never reused (see `delete`): a deleted account's unexpired token must not name a
    // new account. SQLite would reuse the highest id, as `users` has no AUTOINCREMENT.
    let sql = format!(
        "INSERT INTO users (id, username, email, password_hash)
         VALUES (max(coalesce((SELECT max(id) FROM users), 0),
                     coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?4), 0)) + 1,
                 ?1, ?2, ?3)
         RETURNING {PROFILE_COLUMNS}"
    );
    conn.query_row(
        &sql,
        args![username, email, password_hash, HIGHEST_DELETED_KEY],
        profile_row,
    )
}

pub(super) fn profile(conn: &Db, id: UserId) -> Result<Option<Profile>> {
    let sql = format!("SELECT {PROFILE_COLUMNS} FROM users WHERE id = ?1");
    conn.query_opt(&sql, args![id], profile_row)
}

pub(super) fn by_username(conn: &Db, username: &str) -> Result<Option<Profile>> {
    let sql = format!("SELECT {PROFILE_COLUMNS} FROM users WHERE username = ?1");
    conn.query_opt(&sql, args![username], profile_row)
}

pub(super) fn public(conn: &Db, id: UserId) -> Result<Option<PublicUser>> {
    let sql = format!("SELECT {PUBLIC_COLUMNS} FROM users WHERE id = ?1");
    conn.query_opt(&sql, args![id], public_row)
}

pub(super) fn exists(conn: &Db, id: UserId) -> Result<bool> {
    Ok(conn
        .query_opt("SELECT 1 FROM users WHERE id = ?1", args![id], |_| Ok(()))?
        .is_some())
}

fn credentials(conn: &Db, login: &str) -> Result<Option<(UserId, String)>> {
    conn.query_opt(
        "SELECT id, password_hash FROM users WHERE username = ?1 OR email = ?1 LIMIT 1",
        args![login],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

pub(super) fn list_all(conn: &Db) -> Result<Vec<Profile>> {
    let sql = format!("SELECT {PROFILE_COLUMNS} FROM users ORDER BY id");
    conn.query_map(&sql, args![], profile_row)
}

pub(super) fn set_password(conn: &Db, id: UserId, hash: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        args![id, hash],
    )?;
    Ok(())
}

/// Revokes every refresh token of the user and moves them to a new session epoch, so access
/// tokens issued before are refused too; returns the new epoch.
pub(super) fn end_all_sessions(conn: &Db, id: UserId) -> Result<i64> {
    tokens::revoke_all(conn, id)?;
    count_change(conn)?;
    let epoch = conn.query_opt(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?1
             RETURNING session_epoch",
        args![id],
        |r| r.get(0),
    )?;
    epoch.ok_or_else(Error::account_gone)
}

/// Tells every running server that accounts or sessions changed (see `CHANGES_KEY`).
pub(super) fn count_change(conn: &Db) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(settings.value AS INTEGER) + 1",
        args![CHANGES_KEY],
    )?;
    Ok(())
}

/// Deletes an account. Each group it owned passes to its oldest admin, else to its oldest
/// member; a group left with nobody is deleted.
pub(super) fn delete(conn: &Db, id: UserId) -> Result<()> {
    super::groups::hand_over(conn, id)?;
    conn.execute("DELETE FROM users WHERE id = ?1", args![id])?;
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE
         SET value = max(CAST(settings.value AS INTEGER), CAST(excluded.value AS INTEGER))",
        args![HIGHEST_DELETED_KEY, id.0.to_string()],
    )?;
    count_change(conn)
}

fn changes(conn: &Db) -> Result<i64> {
    Ok(super::settings::get(conn, CHANGES_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn epochs(conn: &Db) -> Result<Vec<(UserId, i64)>> {
    conn.query_map("SELECT id, session_epoch FROM users", args![], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

fn update_profile(conn: &Db, id: UserId, changes: &ProfileChanges) -> Result<Profile> {
    let fields: [(&str, Option<Option<&str>>); 3] = [
        (
            "display_name",
            (changes.display_name.as_ref()).map(|v| v.as_ref().map(DisplayName::as_str)),
        ),
        (
            "avatar_url",
            (changes.avatar_url.as_ref()).map(|v| v.as_ref().map(AvatarUrl::as_str)),
        ),
        (
            "public_key",
            (changes.public_key.as_ref()).map(|v| v.as_ref().map(PublicKey::as_str)),
        ),
    ];
    for (column, value) in fields {
        if let Some(value) = value {
            // `column` comes from the list above, never from the request.
            conn.execute(
                &format!("UPDATE users SET {column} = ?2 WHERE id = ?1"),
                args![id, value],
            )?;
        }
    }
    profile(conn, id)?.ok_or_else(Error::account_gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_users_id_is_never_given_again() {
        let mut lite = rusqlite::Connection::open_in_memory().unwrap();
        super::super::sqlite::migrate(&mut lite).unwrap();
        let conn = Db::Lite(&lite);
        let user = |name: &str| {
            let username = Username::parse(name).unwrap();
            let email = Email::parse(&format!("{name}@x.y")).unwrap();
            insert(&conn, &username, &email, "h").unwrap()
        };
        let a = user("first");
        let b = user("second");
        delete(&conn, b.id).unwrap();
        let c = user("third");
        assert!(c.id > b.id, "{} reused {}", c.id, b.id);
        delete(&conn, a.id).unwrap();
        let d = user("fourth");
        assert!(d.id > c.id);
    }
}
