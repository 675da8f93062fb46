//! `Db` on PostgreSQL. The store's operations are synchronous (they run on the writer thread or
//! the blocking pool, as on SQLite), so each statement is driven to completion on the runtime
//! from there; statements come from the pooled client's cache.
//!
//! The SQL is SQLite's; `translate` rewrites the little PostgreSQL spells otherwise, and values
//! are bound by the parameter's type as PostgreSQL inferred it (an integer given for an `int4`
//! column, a boolean or a text is written as that), so the store need not know the difference.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use futures_util::TryStreamExt;
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::{Arg, Cell, Row};
use crate::error::{Error, Result};

/// A pooled PostgreSQL client and the runtime that drives it.
pub(crate) struct PgConn {
    client: deadpool_postgres::Object,
    rt: Handle,
}

impl PgConn {
    /// Waits for a pooled client (from outside the runtime's threads).
    pub fn from_pool(pool: &deadpool_postgres::Pool, rt: Handle) -> Result<PgConn> {
        let client = rt.block_on(pool.get()).map_err(pool_error)?;
        Ok(PgConn { client, rt })
    }

    pub(super) fn each(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        let rows: Vec<tokio_postgres::Row> = self.rt.block_on(async {
            let stmt = self.client.prepare_cached(&translate(sql)).await?;
            self.client
                .query_raw(&stmt, bound(args))
                .await?
                .try_collect()
                .await
        })?;
        for row in &rows {
            if !each(&Row::Pg(row))? {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn execute(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize> {
        let n = self.rt.block_on(async {
            let stmt = self.client.prepare_cached(&translate(sql)).await?;
            self.client.execute_raw(&stmt, bound(args)).await
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.rt.block_on(self.client.batch_execute(sql))?)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// SQLite's SQL as PostgreSQL reads it: `?N` placeholders become `$N`, `json_each(?N)` (a
/// JSON array given as text) becomes `json_array_elements_text`, whose column is also `value`,
/// `COLLATE NOCASE` goes (those columns are `citext`), and `BLOB` is `bytea`. Quoted text is left alone.
pub(crate) fn translate(sql: &str) -> String {
    let sql = sql
        .replace("json_each(?", "json_array_elements_text(CAST(?")
        // citext columns compare and sort without case already.
        .replace(" COLLATE NOCASE", "")
        .replace(" AS BLOB)", " AS bytea)");
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                let json_arg = out.ends_with("json_array_elements_text(CAST(");
                out.push('$');
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                if json_arg {
                    out.push_str(" AS json)");
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

/// The arguments as the statement's parameters.
fn bound<'a>(args: &'a [&'a dyn Arg]) -> impl ExactSizeIterator<Item = Bound<'a>> {
    args.iter().map(|a| Bound(a.cell()))
}

/// A value bound as the parameter's type, as PostgreSQL inferred it.
#[derive(Debug)]
struct Bound<'a>(Cell<'a>);

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Bound<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self.0 {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) => int_to_sql(v, ty, out),
            Cell::Real(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                Type::FLOAT8 => v.to_sql(ty, out),
                _ => v.to_string().as_str().to_sql(ty, out),
            },
            Cell::Text(s) => match *ty {
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::INT8 | Type::INT4 | Type::INT2 => int_to_sql(s.parse()?, ty, out),
                // text, varchar, citext, json, name: the bytes as they are.
                _ => s.to_sql(ty, out),
            },
            Cell::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn int_to_sql(v: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    match *ty {
        Type::INT8 => v.to_sql(ty, out),
        Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
        Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
        Type::BOOL => (v != 0).to_sql(ty, out),
        Type::FLOAT8 => (v as f64).to_sql(ty, out),
        Type::FLOAT4 => (v as f32).to_sql(ty, out),
        _ => v.to_string().as_str().to_sql(ty, out),
    }
}

/// A column as one of the four shapes, by its type.
pub(super) fn cell<T>(
    row: &tokio_postgres::Row,
    i: usize,
    read: impl FnOnce(Cell<'_>) -> Result<T>,
) -> Result<T> {
    let ty = row
        .columns()
        .get(i)
        .ok_or_else(|| Error::internal(format!("no column {i}")))?
        .type_()
        .clone();
    let cell = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Cell::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Cell::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Cell::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Cell::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Cell::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map(|v| Cell::Real(v.into())),
        Type::BYTEA => row.try_get::<_, Option<&[u8]>>(i)?.map(Cell::Blob),
        _ => row.try_get::<_, Option<&str>>(i)?.map(Cell::Text),
    };
    read(cell.unwrap_or(Cell::Null))
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            if err.is_closed() {
                tracing::warn!(error = %err, "the PostgreSQL connection is closed");
                return Error::unavailable("the database is unavailable");
            }
            return Error::internal(format!("postgres: {err}"));
        };
        let code = db.code();
        if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        {
            Error::unavailable("the database is busy; try again")
        } else if *code == SqlState::QUERY_CANCELED {
            // Only a search's time budget cancels a statement (see `search`).
            Error::unavailable("the search took too long; try fewer or more specific words")
        } else if code.code().starts_with("53")
            || code.code().starts_with("57")
            || code.code().starts_with("08")
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            tracing::warn!(error = %db, "database cannot take writes");
            Error::unavailable("the database cannot take writes right now")
        } else {
            Error::internal(format!("postgres: {db}"))
        }
    }
}

pub(crate) fn pool_error(err: deadpool_postgres::PoolError) -> Error {
    tracing::warn!(error = %err, "database pool");
    Error::unavailable("the database is unavailable")
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn placeholders_and_json_arrays_are_rewritten_outside_quotes() {
        assert_eq!(
            translate(
                "SELECT '?1', x FROM t WHERE a = ?1 AND b IN (SELECT value FROM json_each(?12))"
            ),
            "SELECT '?1', x FROM t WHERE a = $1 AND b IN \
             (SELECT value FROM json_array_elements_text(CAST($12 AS json)))"
        );
    }
}
