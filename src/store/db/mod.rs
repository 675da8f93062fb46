//! One way to run SQL on either backend. Every store operation is written once, against `Db`:
//! a borrowed SQLite connection or a PostgreSQL client. The SQL is SQLite's, kept to what both
//! understand (`ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`, `CAST`); what PostgreSQL spells
//! differently is rewritten by `pg::translate` (`?1` placeholders, `json_each`) or provided by
//! functions of the same name in its schema (`strftime`, `casefold`, `instr`).
//!
//! Values cross in four shapes (`Cell`): integers, reals, text and bytes, as SQLite stores
//! them; booleans are integers 0 and 1 on both.

mod lite;
pub(crate) mod pg;

use crate::error::{Error, Result};
use crate::model::{AttachmentId, GroupId, Kind, MessageId, Posting, Role, UserId};

pub(crate) use pg::PgConn;

/// Which engine a database is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A connection of either backend, borrowed for one read or one write.
#[derive(Clone, Copy)]
pub(crate) enum Db<'a> {
    Lite(&'a rusqlite::Connection),
    Pg(&'a PgConn),
}

/// A connection of either backend, owned (the writer's, the command line's).
pub(crate) enum Conn {
    Lite(rusqlite::Connection),
    Pg(PgConn),
}

impl Conn {
    pub fn db(&self) -> Db<'_> {
        match self {
            Conn::Lite(c) => Db::Lite(c),
            Conn::Pg(c) => Db::Pg(c),
        }
    }
}

/// One value given to or read from the database.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value of any column, owned (to copy rows between databases).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Arg for Value {
    fn cell(&self) -> Cell<'_> {
        match self {
            Value::Null => Cell::Null,
            Value::Int(i) => Cell::Int(*i),
            Value::Real(r) => Cell::Real(*r),
            Value::Text(t) => Cell::Text(t),
            Value::Blob(b) => Cell::Blob(b),
        }
    }
}

impl Col for Value {
    fn from_cell(cell: Cell<'_>) -> Result<Value> {
        Ok(match cell {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::Int(i),
            Cell::Real(r) => Value::Real(r),
            Cell::Text(t) => Value::Text(t.to_string()),
            Cell::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

/// A value that can be bound to a statement's parameter.
pub(crate) trait Arg: Sync {
    fn cell(&self) -> Cell<'_>;
}

/// The arguments of a statement, in placeholder order: `args![user, group]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$(&$a as &dyn $crate::store::db::Arg),*] as &[&dyn $crate::store::db::Arg]
    };
}
pub(crate) use args;

/// A row of a result, read by column index.
pub(crate) enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a tokio_postgres::Row),
}

impl Row<'_> {
    pub fn get<T: Col>(&self, i: usize) -> Result<T> {
        match self {
            Row::Lite(r) => lite::cell(r, i, T::from_cell),
            Row::Pg(r) => pg::cell(r, i, T::from_cell),
        }
    }
}

/// A type a column can be read as.
pub(crate) trait Col: Sized {
    fn from_cell(cell: Cell<'_>) -> Result<Self>;
}

fn mismatch(want: &str, got: Cell<'_>) -> Error {
    Error::internal(format!("a column read as {want} holds {got:?}"))
}

impl<'a> Db<'a> {
    pub fn backend(&self) -> Backend {
        match self {
            Db::Lite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (FTS5, pragmas, the backup).
    pub fn lite(&self) -> Option<&'a rusqlite::Connection> {
        match self {
            Db::Lite(c) => Some(c),
            Db::Pg(_) => None,
        }
    }

    /// Runs `sql`, calling `each` for every row until it answers `false`.
    pub fn each(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        match self {
            Db::Lite(c) => lite::each(c, sql, args, each),
            Db::Pg(c) => c.each(sql, args, each),
        }
    }

    /// The first row's `f`, or `None` when there is no row.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.each(sql, args, &mut |row| {
            if let Some(f) = f.take() {
                out = Some(f(row)?);
            }
            Ok(false)
        })?;
        Ok(out)
    }

    /// The first row's `f`; a query that finds no row is a bug (it is written to find one).
    pub fn query_row<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, f)?
            .ok_or_else(|| Error::internal(format!("no row where one was expected: {sql}")))
    }

    /// `f` of every row.
    pub fn query_map<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, args, &mut |row| {
            out.push(f(row)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize> {
        match self {
            Db::Lite(c) => lite::execute(c, sql, args),
            Db::Pg(c) => c.execute(sql, args),
        }
    }

    /// Runs statements without arguments (savepoints, transactions).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Lite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(c) => c.batch(sql),
        }
    }

    /// Inside a transaction still (a failure may have ended it: a full disk, a lost server).
    pub fn in_transaction(&self) -> bool {
        match self {
            Db::Lite(c) => !c.is_autocommit(),
            Db::Pg(c) => !c.is_closed(),
        }
    }

    /// Starts the writer's transaction.
    pub fn begin_write(&self) -> Result<()> {
        self.execute_batch(match self {
            Db::Lite(_) => "BEGIN IMMEDIATE",
            Db::Pg(_) => "BEGIN",
        })
    }
}

// What is bound: numbers, text, bytes, and the model's ids and names.

impl Arg for i64 {
    fn cell(&self) -> Cell<'_> {
        Cell::Int(*self)
    }
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn cell(&self) -> Cell<'_> {
                // Counts and limits fit; a value that does not is clamped, never wrapped.
                Cell::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_arg!(i32, u32, u64, usize, u16, u8);

impl Arg for bool {
    fn cell(&self) -> Cell<'_> {
        Cell::Int(i64::from(*self))
    }
}

impl Arg for f64 {
    fn cell(&self) -> Cell<'_> {
        Cell::Real(*self)
    }
}

impl Arg for str {
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self)
    }
}

impl Arg for String {
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self)
    }
}

impl Arg for [u8] {
    fn cell(&self) -> Cell<'_> {
        Cell::Blob(self)
    }
}

impl Arg for Vec<u8> {
    fn cell(&self) -> Cell<'_> {
        Cell::Blob(self)
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn cell(&self) -> Cell<'_> {
        (**self).cell()
    }
}

impl<T: Arg> Arg for Option<T> {
    fn cell(&self) -> Cell<'_> {
        match self {
            Some(v) => v.cell(),
            None => Cell::Null,
        }
    }
}

// What is read.

impl Col for i64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Int(v) => Ok(v),
            other => Err(mismatch("an integer", other)),
        }
    }
}

macro_rules! int_col {
    ($($t:ty),*) => {$(
        impl Col for $t {
            fn from_cell(cell: Cell<'_>) -> Result<Self> {
                let v = i64::from_cell(cell)?;
                <$t>::try_from(v).map_err(|_| mismatch(stringify!($t), cell))
            }
        }
    )*};
}
int_col!(i32, u32, u64, usize);

impl Col for bool {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        Ok(i64::from_cell(cell)? != 0)
    }
}

impl Col for f64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Real(v) => Ok(v),
            // As SQLite, an integer reads as a real.
            Cell::Int(v) => Ok(v as f64),
            other => Err(mismatch("a real", other)),
        }
    }
}

impl Col for String {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Text(v) => Ok(v.to_owned()),
            other => Err(mismatch("text", other)),
        }
    }
}

impl Col for Vec<u8> {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Blob(v) => Ok(v.to_vec()),
            // SQLite may hand text where bytes were stored as text; both are bytes.
            Cell::Text(v) => Ok(v.as_bytes().to_vec()),
            other => Err(mismatch("bytes", other)),
        }
    }
}

impl<T: Col> Col for Option<T> {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

// The model's ids and names.

macro_rules! id_cell {
    ($($name:ident),*) => {$(
        impl Arg for $name {
            fn cell(&self) -> Cell<'_> {
                Cell::Int(self.0)
            }
        }

        impl Col for $name {
            fn from_cell(cell: Cell<'_>) -> Result<Self> {
                i64::from_cell(cell).map($name)
            }
        }
    )*};
}
id_cell!(UserId, GroupId, MessageId, AttachmentId);

macro_rules! name_cell {
    ($($name:ident),*) => {$(
        impl Arg for $name {
            fn cell(&self) -> Cell<'_> {
                Cell::Text(self.as_str())
            }
        }

        impl Col for $name {
            fn from_cell(cell: Cell<'_>) -> Result<Self> {
                match cell {
                    Cell::Text(s) => $name::parse(s).ok_or_else(|| mismatch(stringify!($name), cell)),
                    other => Err(mismatch(stringify!($name), other)),
                }
            }
        }
    )*};
}
name_cell!(Role, Posting, Kind);
