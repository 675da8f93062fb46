//! SQLite itself: opening a connection with our pragmas, the embedded migrations, how SQLite's
//! errors read as domain errors, and how our types are stored (see `db`).

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};

use crate::config::SyncMode;
use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Opens a connection with the pragmas every connection of ours uses. A database that does not
/// exist yet is created readable by its owner only.
pub(crate) fn open_connection(path: &Path, sync: SyncMode) -> Result<Connection> {
    if !path.exists() {
        if let Err(e) = super::files::create_private(path) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(Error::unavailable(format!(
                    "cannot create database {}: {e}",
                    path.display()
                )));
            }
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| Error::unavailable(format!("cannot open database {}: {e}", path.display())))?;
    configure(&conn, sync)
        .map_err(|e| Error::unavailable(format!("cannot use database {}: {e}", path.display())))?;
    Ok(conn)
}

pub(super) fn configure(conn: &Connection, sync: SyncMode) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // SQLite's own lower() and LIKE fold ASCII only; names are not only ASCII.
    conn.create_scalar_function(
        "casefold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(ctx
                .get::<Option<String>>(0)?
                .map(|s| s.to_lowercase())
                .unwrap_or_default())
        },
    )?;
    // journal_mode answers with a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys=ON; PRAGMA synchronous={};",
        sync.pragma()
    ))
}

/// Applies pending migrations; returns the names of those applied.
pub(crate) fn migrate(conn: &mut Connection) -> Result<Vec<String>> {
    let report = embedded::migrations::runner()
        .run(conn)
        .map_err(|e| Error::internal(format!("migration failed: {e}")))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Current time as the API writes it: RFC 3339 UTC with milliseconds.
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// The text `NOW` gives, made here instead: bound as a parameter, it spares the writer a call
/// of SQL's `strftime` per use on the send path (two per send were 6 % of the writer's time).
pub(super) fn now() -> String {
    // Formatting a UTC time with a fixed description has nothing that can fail.
    time::OffsetDateTime::now_utc()
        .format(crate::model::API_TIME)
        .unwrap_or_default()
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(
                ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::OperationAborted,
            ) => {
                tracing::warn!(error = %err, "database cannot take writes");
                Error::unavailable("the database cannot take writes right now")
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Error::unavailable("the database is busy; try again")
            }
            // Only a query's time budget interrupts one (see `search`).
            Some(ErrorCode::OperationInterrupted) => {
                Error::unavailable("the search took too long; try fewer or more specific words")
            }
            _ => Error::internal(format!("sqlite: {err}")),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(err: r2d2::Error) -> Self {
        tracing::warn!(error = %err, "database pool");
        Error::unavailable("the database is unavailable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `now()` stands in for `NOW` on the send path: the same text, to the millisecond's shape.
    #[test]
    fn now_writes_what_sqls_now_writes() {
        let conn = Connection::open_in_memory().unwrap();
        let sql: String = conn
            .query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))
            .unwrap();
        let ours = now();
        assert_eq!(ours.len(), sql.len(), "{ours} against {sql}");
        let shape = |t: &str| t.bytes().map(|b| b.is_ascii_digit()).collect::<Vec<_>>();
        assert_eq!(shape(&ours), shape(&sql), "{ours} against {sql}");
        assert_eq!(
            ours.replace(char::is_numeric, ""),
            sql.replace(char::is_numeric, "")
        );
        let rfc = time::format_description::well_known::Rfc3339;
        let apart = time::OffsetDateTime::parse(&ours, &rfc).unwrap()
            - time::OffsetDateTime::parse(&sql, &rfc).unwrap();
        assert!(
            apart.abs() < time::Duration::seconds(5),
            "{ours} against {sql}"
        );
    }
}
