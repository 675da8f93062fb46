//! `Db` on SQLite: statements from the connection's cache, values passed by reference.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ToSql};

use super::{Arg, Cell, Row};
use crate::error::{Error, Result};

/// An argument as rusqlite binds it, borrowing the value.
struct Bound<'a>(&'a dyn Arg);

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0.cell() {
            Cell::Null => ValueRef::Null,
            Cell::Int(v) => ValueRef::Integer(v),
            Cell::Real(v) => ValueRef::Real(v),
            Cell::Text(v) => ValueRef::Text(v.as_bytes()),
            Cell::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

fn bound<'a>(args: &'a [&'a dyn Arg]) -> impl Iterator<Item = Bound<'a>> {
    args.iter().map(|a| Bound(*a))
}

pub(super) fn each(
    conn: &Connection,
    sql: &str,
    args: &[&dyn Arg],
    each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(bound(args)))?;
    while let Some(row) = rows.next()? {
        if !each(&Row::Lite(row))? {
            break;
        }
    }
    Ok(())
}

pub(super) fn execute(conn: &Connection, sql: &str, args: &[&dyn Arg]) -> Result<usize> {
    Ok(conn
        .prepare_cached(sql)?
        .execute(params_from_iter(bound(args)))?)
}

pub(super) fn cell<T>(
    row: &rusqlite::Row<'_>,
    i: usize,
    read: impl FnOnce(Cell<'_>) -> Result<T>,
) -> Result<T> {
    let value = row.get_ref(i)?;
    read(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(v) => Cell::Int(v),
        ValueRef::Real(v) => Cell::Real(v),
        ValueRef::Text(v) => Cell::Text(
            std::str::from_utf8(v).map_err(|e| Error::internal(format!("text column: {e}")))?,
        ),
        ValueRef::Blob(v) => Cell::Blob(v),
    })
}
