//! Where the data lives: `--db` names a SQLite file (the default) or a PostgreSQL database.

use std::fmt;
use std::path::{Path, PathBuf};

/// The database `--db` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created when missing.
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL (libpq's URL form); the database must exist.
    Postgres(String),
}

impl Database {
    /// A `postgres://` / `postgresql://` URL is PostgreSQL; anything else is a file path.
    pub fn parse(s: &str) -> Database {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Database::Postgres(s.to_string())
        } else {
            Database::File(PathBuf::from(s))
        }
    }

    /// The SQLite file, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Database::File(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }
}

impl Default for Database {
    fn default() -> Database {
        Database::File(PathBuf::from("chatserver.db"))
    }
}

/// For logs and the banner: a URL's password is never shown.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::File(p) => write!(f, "{}", p.display()),
            Database::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.split_once('@') {
        Some((auth, tail)) => (auth, tail),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{tail}"),
        None => url.to_string(),
    }
}

impl std::str::FromStr for Database {
    type Err = String;

    fn from_str(s: &str) -> Result<Database, String> {
        if s.is_empty() {
            return Err("a file path or a postgres:// URL".into());
        }
        Ok(Database::parse(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_their_passwords_are_hidden() {
        assert_eq!(
            Database::parse("chat.db"),
            Database::File(PathBuf::from("chat.db"))
        );
        let pg = Database::parse("postgresql://chat:s3cret@127.0.0.1:5432/chat");
        assert!(pg.file().is_none());
        assert_eq!(pg.to_string(), "postgresql://chat:***@127.0.0.1:5432/chat");
        assert_eq!(
            Database::parse("postgres://127.0.0.1/chat").to_string(),
            "postgres://127.0.0.1/chat"
        );
    }
}
