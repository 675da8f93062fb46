//! SQLite itself: opening a connection with our pragmas, the embedded migrations, how SQLite's
//! errors read as domain errors, and how our types are stored (see `db`).

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};

use crate::config::SyncMode;
use crate::error::{Error, Result};

pub(super) mod embedded {
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
    api_time(time::OffsetDateTime::now_utc())
}

/// `at` (UTC) in the API's format (`model::API_TIME`), its digits written by hand: the `time`
/// crate's general formatter, walking its format description item by item, was 5 % of the
/// writer thread's time under load.
fn api_time(at: time::OffsetDateTime) -> String {
    // Each field at its fixed width, as digits: "YYYY-MM-DDTHH:MM:SS.mmmZ".
    let fields = [
        (at.year().clamp(0, 9999) as u32, 4, b'-'),
        (u32::from(u8::from(at.month())), 2, b'-'),
        (u32::from(at.day()), 2, b'T'),
        (u32::from(at.hour()), 2, b':'),
        (u32::from(at.minute()), 2, b':'),
        (u32::from(at.second()), 2, b'.'),
        (u32::from(at.millisecond()), 3, b'Z'),
    ];
    let mut out = String::with_capacity(24);
    for (value, width, after) in fields {
        for place in (0..width).rev() {
            let digit = value / 10u32.pow(place) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(char::from(after));
    }
    out
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

    /// The hand-written format is the `time` crate's for `model::API_TIME`: every day from
    /// 1970 to 2400 (leap years, centuries, 2000) at a time of day that moves through each
    /// field's range, and the first and last millisecond of a day.
    #[test]
    fn api_time_matches_the_time_crates_format() {
        let check = |secs: u64, millis: u32| {
            let at = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
                + time::Duration::milliseconds(i64::from(millis));
            assert_eq!(
                api_time(at),
                at.format(crate::model::API_TIME).unwrap(),
                "{secs} s {millis} ms"
            );
        };
        for day in 0..157_000u64 {
            let of_day = day * 7_919 % 86_400;
            check(day * 86_400 + of_day, (day * 37 % 1000) as u32);
        }
        check(0, 0);
        check(86_399, 999);
        check(951_782_400, 0); // 2000-02-29
        check(4_107_542_399, 999); // 2100-02-28 23:59:59.999; 2100 is not a leap year
    }

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
