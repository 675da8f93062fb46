//! The operator's side of the database, for the command line: each operation opens the
//! database, migrates it, and runs in one transaction of its own. It runs in another process
//! than a server on the same database, so it does not go through that server's writer; the
//! database's own locks keep the two apart.

use std::path::Path;

use super::db::{args, Conn, Db, PgConn};
use super::seed::{self, Hasher, Report, SeedFile};
use super::{postgres, settings, sqlite, users};
use crate::config::{Database, SyncMode};
use crate::error::{Error, Result};
use crate::model::{Email, Profile, UserId, Username};

pub(crate) struct Admin {
    conn: Conn,
    /// Drives the PostgreSQL connection (the command line has no runtime of its own).
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Admin {
    /// Opens and migrates an existing database; a missing file is an error (a mistyped
    /// `--db` must not quietly create an empty database). `migrate` creates one.
    pub fn open(db: &Database) -> Result<Admin> {
        match db {
            Database::File(path) => {
                if !path.exists() {
                    return Err(missing(path));
                }
                let mut conn = sqlite::open_connection(path, SyncMode::Full)?;
                sqlite::migrate(&mut conn)?;
                Ok(Admin {
                    conn: Conn::Lite(conn),
                    _runtime: None,
                })
            }
            Database::Postgres(url) => {
                let runtime = runtime()?;
                let config = postgres::parse(url)?;
                runtime.block_on(postgres::migrate(&config))?;
                let pool = postgres::pool(config, 1)?;
                let conn = PgConn::from_pool(&pool, runtime.handle().clone())?;
                Ok(Admin {
                    conn: Conn::Pg(conn),
                    _runtime: Some(runtime),
                })
            }
        }
    }

    /// Applies pending migrations; returns the names of those applied.
    pub fn migrate(db: &Database) -> Result<Vec<String>> {
        match db {
            Database::File(path) => {
                let mut conn = sqlite::open_connection(path, SyncMode::Full)?;
                sqlite::migrate(&mut conn)
            }
            Database::Postgres(url) => {
                let config = postgres::parse(url)?;
                runtime()?.block_on(postgres::migrate(&config))
            }
        }
    }

    /// Runs `f` in one read-only transaction: a consistent snapshot, whatever a server on the
    /// same database writes meanwhile.
    pub(super) fn in_snapshot<T>(&mut self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let db = self.conn.db();
        db.execute_batch(match db.lite() {
            Some(_) => "BEGIN DEFERRED",
            None => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        let out = f(&db);
        let _ = db.execute_batch("ROLLBACK");
        out
    }

    pub(super) fn in_transaction<T>(&mut self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let db = self.conn.db();
        db.begin_write()?;
        match f(&db) {
            Ok(value) => {
                db.execute_batch("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                let _ = db.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    pub fn seed(&mut self, file: &SeedFile, hash: &Hasher) -> Result<Report> {
        self.in_transaction(|c| seed::apply(c, file, hash))
    }

    pub fn add_user(&mut self, username: &Username, email: &Email, hash: &str) -> Result<Profile> {
        self.in_transaction(|c| users::insert(c, username, email, hash))
    }

    pub(super) fn db(&self) -> Db<'_> {
        self.conn.db()
    }

    pub fn list_users(&mut self) -> Result<Vec<Profile>> {
        users::list_all(&self.conn.db())
    }

    /// Sets a user's password and ends every session of theirs (a running server notices
    /// within a second).
    pub fn set_password(&mut self, username: &str, hash: &str) -> Result<()> {
        self.in_transaction(|c| {
            let user = find_user(c, username)?;
            users::set_password(c, user, hash)?;
            users::end_all_sessions(c, user)?;
            users::count_change(c)
        })
    }

    pub fn delete_user(&mut self, username: &str) -> Result<()> {
        self.in_transaction(|c| {
            let user = find_user(c, username)?;
            users::delete(c, user)
        })
    }

    /// The user named `username`, their session epoch, and the secret their tokens are signed
    /// with: `configured`, or the one kept in the database (`generated` when there is none yet).
    pub fn token_subject(
        &mut self,
        username: &str,
        configured: Option<&str>,
        generated: String,
    ) -> Result<(UserId, i64, String)> {
        self.in_transaction(|c| {
            let user = find_user(c, username)?;
            let epoch = c.query_row(
                "SELECT session_epoch FROM users WHERE id = ?1",
                args![user],
                |r| r.get(0),
            )?;
            Ok((
                user,
                epoch,
                settings::jwt_secret(c, configured, || generated)?,
            ))
        })
    }

    /// Writes a consistent copy of the database to `file` (`VACUUM INTO` reads one snapshot, so
    /// a running server can keep writing).
    pub fn backup(db: &Database, file: &Path) -> Result<()> {
        let Database::File(path) = db else {
            return Err(Error::invalid(
                "invalid_db",
                "backup copies a SQLite file; for PostgreSQL use pg_dump",
            ));
        };
        if !path.exists() {
            return Err(missing(path));
        }
        if file.exists() {
            return Err(Error::conflict(format!(
                "{} already exists; choose a new file",
                file.display()
            )));
        }
        let conn = sqlite::open_connection(path, SyncMode::Full)?;
        // Created empty and private first: VACUUM INTO fills an empty file, and the copy holds
        // the signing secret and the password hashes.
        super::files::create_private(file)
            .map(drop)
            .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", file.display())))?;
        let target = file
            .to_str()
            .ok_or_else(|| Error::invalid("invalid_path", "the backup path must be valid UTF-8"))?;
        conn.execute("VACUUM INTO ?1", [target])
            .map_err(|e| Error::unavailable(format!("backup failed: {e}")))?;
        Ok(())
    }
}

fn missing(path: &Path) -> Error {
    Error::not_found(format!(
        "no database at {}; check --db, or run `chatserver migrate --db {}` to create one",
        path.display(),
        path.display()
    ))
}

pub(super) fn find_user(conn: &Db, username: &str) -> Result<UserId> {
    Ok(users::by_username(conn, username)?
        .ok_or_else(|| Error::not_found(format!("no user named {username}")))?
        .id)
}

/// A small runtime for the command line's PostgreSQL connection.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the runtime: {e}")))
}
