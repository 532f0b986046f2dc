//! What differs between the two databases, as a small trait: how a value
//! is bound, how a column is read, and how run-time statements number
//! their parameters. Everything else (the SQL, the transactions, the
//! bookkeeping) is written once, in [`super::log`], [`super::append`] and
//! [`super::mailboxes`], over [`Backend`].
//!
//! The SQL is portable: numbered `$N` parameters in fixed statements (sqlx's
//! SQLite driver maps `$N` to argument N), 64-bit integers, byte strings,
//! `CASE` instead of `MAX(a, b)` / `GREATEST`, and `CAST(SUM(..) AS BIGINT)`
//! because PostgreSQL sums BIGINT as NUMERIC.

use super::StoreError;
use sqlx::{Database, Pool, Transaction};
use std::future::Future;

/// A value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A 64-bit integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// A byte string.
    Bytes(&'a [u8]),
    /// Text.
    Text(&'a str),
}

/// What a column holds, so that a backend knows how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// A 64-bit integer.
    Int,
    /// An integer or NULL.
    OptInt,
    /// A byte string.
    Bytes,
    /// A byte string or NULL.
    OptBytes,
    /// Text.
    Text,
}

/// One value read from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
    /// NULL.
    Null,
}

/// One row, read as the statement's [`Col`]s said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Val>);

impl Row {
    fn at(&self, i: usize) -> Result<&Val, StoreError> {
        self.0.get(i).ok_or(StoreError::Corrupt("a column is missing"))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.at(i)? {
            Val::Int(v) => Ok(*v),
            _ => Err(StoreError::Corrupt("a column is not an integer")),
        }
    }

    /// Column `i` as an integer or NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i)? {
            Val::Int(v) => Ok(Some(*v)),
            Val::Null => Ok(None),
            _ => Err(StoreError::Corrupt("a column is not an integer")),
        }
    }

    /// Column `i` as bytes, taken out of the row.
    pub fn bytes(&mut self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.0.get_mut(i) {
            Some(Val::Bytes(v)) => Ok(std::mem::take(v)),
            _ => Err(StoreError::Corrupt("a column is not a byte string")),
        }
    }

    /// Column `i` as bytes or NULL, taken out of the row.
    pub fn opt_bytes(&mut self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0.get_mut(i) {
            Some(Val::Bytes(v)) => Ok(Some(std::mem::take(v))),
            Some(Val::Null) => Ok(None),
            _ => Err(StoreError::Corrupt("a column is not a byte string")),
        }
    }

    /// Column `i` as text, taken out of the row.
    pub fn text(&mut self, i: usize) -> Result<String, StoreError> {
        match self.0.get_mut(i) {
            Some(Val::Text(v)) => Ok(std::mem::take(v)),
            _ => Err(StoreError::Corrupt("a column is not text")),
        }
    }
}

/// How statements built at run time number their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?` in order (SQLite). sqlx looks a named SQLite parameter up by name,
    /// which SQLite does by a linear scan: a statement with thousands of
    /// `$N` would bind in quadratic time.
    Positional,
}

impl Placeholders {
    /// Appends parameter `n` (counted from 1).
    pub fn push(self, out: &mut String, n: usize) {
        match self {
            Self::Numbered => {
                out.push('$');
                out.push_str(&n.to_string());
            }
            Self::Positional => out.push('?'),
        }
    }

    /// `$1, $2, …, $n` (or `?, ?, …`), numbered from `first`.
    pub fn list(self, first: usize, n: usize) -> String {
        let mut out = String::with_capacity(n * 5);
        for i in 0..n {
            if i > 0 {
                out.push_str(", ");
            }
            self.push(&mut out, first + i);
        }
        out
    }

    /// `($1, $2, …), (…), …`: `n` rows of `columns` parameters, numbered in
    /// order from 1.
    pub fn rows(self, n: usize, columns: usize) -> String {
        let mut out = String::with_capacity(n * columns * 5);
        for r in 0..n {
            out.push_str(if r == 0 { "(" } else { ", (" });
            out.push_str(&self.list(r * columns + 1, columns));
            out.push(')');
        }
        out
    }

    /// `CASE id WHEN p1 THEN v1 … END` over `n` (id, value) pairs whose
    /// parameters start at `first`, two per pair, the id first.
    pub fn case_by_id(self, n: usize, first: usize) -> String {
        let mut out = String::from("CASE id");
        for i in 0..n {
            out.push_str(" WHEN ");
            self.push(&mut out, first + 2 * i);
            out.push_str(" THEN ");
            self.push(&mut out, first + 2 * i + 1);
        }
        out.push_str(" END");
        out
    }
}

/// One database, as the shared store code needs it.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// How run-time statements number their parameters.
    const PLACEHOLDERS: Placeholders;

    /// The pool that writes (SQLite: one connection).
    fn writer(&self) -> &Pool<Self::Db>;
    /// The pool that reads.
    fn reader(&self) -> &Pool<Self::Db>;

    /// Runs `sql` with `args` on `conn`, reading each row as `cols` say.
    fn rows<'a>(
        conn: &'a mut <Self::Db as Database>::Connection,
        sql: &'a str,
        args: &'a [Arg<'a>],
        cols: &'a [Col],
    ) -> impl Future<Output = Result<Vec<Row>, sqlx::Error>> + Send + 'a;

    /// Runs `sql` with `args` on `conn`; returns how many rows it touched.
    fn execute<'a>(
        conn: &'a mut <Self::Db as Database>::Connection,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;
}

/// Binds `args` to a statement, for a backend to call with its own types.
pub fn bind_all<'q, DB: Database>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    for<'e> i64: sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    for<'e> Option<i64>: sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    for<'e> &'e [u8]: sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    for<'e> &'e str: sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    for arg in args {
        query = match *arg {
            Arg::Int(v) => query.bind(v),
            Arg::OptInt(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
        };
    }
    query
}

/// Reads one row as `cols` say, for a backend to call with its own types.
pub fn read_row<R: sqlx::Row>(row: &R, cols: &[Col]) -> Result<Row, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut out = Vec::with_capacity(cols.len());
    for (i, col) in cols.iter().enumerate() {
        out.push(match col {
            Col::Int => Val::Int(row.try_get(i)?),
            Col::OptInt => row.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::Int),
            Col::Bytes => Val::Bytes(row.try_get(i)?),
            Col::OptBytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Val::Null, Val::Bytes),
            Col::Text => Val::Text(row.try_get(i)?),
        });
    }
    Ok(Row(out))
}

/// A write transaction on a backend's writer pool.
pub type Tx<B> = Transaction<'static, <B as Backend>::Db>;

/// Starts a write transaction.
pub async fn begin<B: Backend>(backend: &B) -> Result<Tx<B>, StoreError> {
    Ok(backend.writer().begin().await?)
}

/// Runs a statement that reads, inside `tx`.
pub async fn rows<B: Backend>(
    tx: &mut Tx<B>,
    sql: &str,
    args: &[Arg<'_>],
    cols: &[Col],
) -> Result<Vec<Row>, StoreError> {
    Ok(B::rows(&mut **tx, sql, args, cols).await?)
}

/// Runs a statement that reads at most one row, inside `tx`.
pub async fn row<B: Backend>(
    tx: &mut Tx<B>,
    sql: &str,
    args: &[Arg<'_>],
    cols: &[Col],
) -> Result<Option<Row>, StoreError> {
    Ok(rows::<B>(tx, sql, args, cols).await?.into_iter().next())
}

/// Runs a statement that writes, inside `tx`.
pub async fn execute<B: Backend>(
    tx: &mut Tx<B>,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<u64, StoreError> {
    Ok(B::execute(&mut **tx, sql, args).await?)
}

/// Runs a statement that only reads, on the reader pool.
pub async fn read<B: Backend>(
    backend: &B,
    sql: &str,
    args: &[Arg<'_>],
    cols: &[Col],
) -> Result<Vec<Row>, StoreError> {
    let mut conn = backend.reader().acquire().await?;
    Ok(B::rows(&mut conn, sql, args, cols).await?)
}

/// Runs one statement on the writer pool, as its own transaction.
pub async fn write<B: Backend>(
    backend: &B,
    sql: &str,
    args: &[Arg<'_>],
    cols: &[Col],
) -> Result<Vec<Row>, StoreError> {
    let mut conn = backend.writer().acquire().await?;
    Ok(B::rows(&mut conn, sql, args, cols).await?)
}

#[cfg(test)]
mod tests {
    use super::Placeholders::{Numbered, Positional};

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(Numbered.list(1, 3), "$1, $2, $3");
        assert_eq!(Positional.list(1, 2), "?, ?");
        assert_eq!(Numbered.list(5, 2), "$5, $6");
        assert_eq!(Numbered.rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(Positional.rows(2, 2), "(?, ?), (?, ?)");
        assert_eq!(Numbered.case_by_id(2, 1), "CASE id WHEN $1 THEN $2 WHEN $3 THEN $4 END");
        assert_eq!(Numbered.case_by_id(2, 5), "CASE id WHEN $5 THEN $6 WHEN $7 THEN $8 END");
    }
}
