//! One SQL connection over either backend: an embedded SQLite file or a PostgreSQL server.
//!
//! The store's queries are written once, in the subset of SQL both engines accept, with
//! `?N` placeholders; for PostgreSQL they are rewritten to `$N` and prepared once per
//! connection. Values cross the boundary as [`Value`] (integer, real, text, blob or null),
//! converted to whatever column type the server reports, so `1` binds to a `BIGINT` or a
//! `DOUBLE PRECISION` alike and the queries need no casts.
//!
//! Write transactions ([`Db::begin`]) are serialised on both backends: SQLite's `BEGIN
//! IMMEDIATE` takes the database's one write lock, and on PostgreSQL the transaction takes one
//! advisory lock shared by every coordinator on the database. A read-modify-write therefore
//! sees the same state when it writes as when it read, whichever backend runs it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// The advisory-lock key every PostgreSQL write transaction takes ("PICI" in ASCII).
const PG_WRITE_LOCK: i64 = 0x5049_4349;

/// Prepared statements kept per PostgreSQL connection.
const PG_STATEMENT_CACHE: usize = 256;

/// Errors of the SQL layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {col}: {msg}")]
    Conversion { col: usize, msg: String },
}

pub type DbResult<T> = std::result::Result<T, DbError>;

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One SQL value, as both engines see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A Rust value that can be bound as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u16, u8, usize, u64);

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// A statement's parameters: `()`, an array of one type, or [`params!`](crate::params)'s list.
pub trait Params {
    fn values(self) -> Vec<Value>;
}
impl Params for () {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl Params for Vec<Value> {
    fn values(self) -> Vec<Value> {
        self
    }
}

/// Build a parameter list of mixed types: `params![id, name, value]`.
#[macro_export]
macro_rules! params {
    () => { () };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::db::ToValue),+] as &[&dyn $crate::db::ToValue]
    };
}

/// A Rust value a column can be read as.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: &Value) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        i32::try_from(i).map_err(|_| format!("{i} does not fit in 32 bits"))
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is not an unsigned 32-bit value"))
    }
}
impl FromValue for usize {
    fn from_value(v: &Value) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        usize::try_from(i).map_err(|_| format!("{i} is negative"))
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            Value::Blob(b) => String::from_utf8(b.clone()).map_err(|e| e.to_string()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.clone().into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}
impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `idx` (from 0) as a `T`.
    pub fn get<T: FromValue>(&self, idx: usize) -> DbResult<T> {
        let v = self.values.get(idx).ok_or(DbError::Conversion {
            col: idx,
            msg: format!("the row has only {} columns", self.values.len()),
        })?;
        T::from_value(v).map_err(|msg| DbError::Conversion { col: idx, msg })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// `query_row(..).optional()`: no row becomes `None`.
pub trait OptionalExtension<T> {
    fn optional(self) -> DbResult<Option<T>>;
}
impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
}

struct PgConn {
    client: RefCell<std::mem::ManuallyDrop<postgres::Client>>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// Where to connect again when the server closed the connection.
    url: String,
    /// Inside a transaction a lost connection is an error, never silently replaced.
    in_tx: std::cell::Cell<bool>,
}

/// Drop a client off any async worker thread (see [`PgConn`]'s `Drop`).
fn close_client(client: postgres::Client) {
    // Closing the connection blocks on the client's own runtime, which is not allowed on
    // a thread that drives async tasks (a store dropped inside an async server): close
    // it from a thread of its own there.
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("picidae-pg-close".into())
            .spawn(move || drop(client));
    } else {
        drop(client);
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // SAFETY: the client is taken once, here, and never used again.
        let client = unsafe { std::mem::ManuallyDrop::take(self.client.get_mut()) };
        close_client(client);
    }
}

/// A connection to the store's database.
pub struct Db {
    conn: Conn,
}

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        conn.set_prepared_statement_cache_capacity(128);
        Db {
            conn: Conn::Sqlite(conn),
        }
    }

    /// A PostgreSQL connection; `url` is used to connect again should the server close it.
    pub fn postgres(client: postgres::Client, url: &str) -> Db {
        Db {
            conn: Conn::Postgres(Box::new(PgConn {
                client: RefCell::new(std::mem::ManuallyDrop::new(client)),
                statements: RefCell::new(HashMap::new()),
                url: url.to_string(),
                in_tx: std::cell::Cell::new(false),
            })),
        }
    }

    /// On PostgreSQL, outside a transaction: if the server closed the connection (a restart,
    /// a terminated backend), connect again, so one failed call is all a lost connection
    /// costs a long-lived coordinator.
    fn pg_ready(&self) -> DbResult<()> {
        let Conn::Postgres(pg) = &self.conn else {
            return Ok(());
        };
        if pg.in_tx.get() || !pg.client.borrow().is_closed() {
            return Ok(());
        }
        let fresh = postgres::Client::connect(&pg.url, postgres::NoTls)?;
        let mut slot = pg.client.borrow_mut();
        // SAFETY: the old client is taken out and replaced at once.
        let old = unsafe { std::mem::ManuallyDrop::take(&mut *slot) };
        *slot = std::mem::ManuallyDrop::new(fresh);
        pg.statements.borrow_mut().clear();
        close_client(old);
        Ok(())
    }

    fn set_in_tx(&self, on: bool) {
        if let Conn::Postgres(pg) = &self.conn {
            pg.in_tx.set(on);
        }
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, where the store is SQLite (for SQLite-only maintenance).
    pub fn sqlite_connection(&self) -> Option<&rusqlite::Connection> {
        match &self.conn {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// Run several statements with no parameters (schema changes).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        self.pg_ready()?;
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => Ok(pg.client.borrow_mut().batch_execute(sql)?),
        }
    }

    /// Run one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> DbResult<usize> {
        self.pg_ready()?;
        let values = params.values();
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Conn::Postgres(pg) => {
                let st = self.pg_statement(sql)?;
                let refs: Vec<&(dyn PgToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
                Ok(pg.client.borrow_mut().execute(&st, &refs)? as usize)
            }
        }
    }

    /// Every row of a query, each mapped by `f`.
    pub fn query_map<P, T, F>(&self, sql: &str, params: P, mut f: F) -> DbResult<Vec<T>>
    where
        P: Params,
        F: FnMut(&Row) -> DbResult<T>,
    {
        self.pg_ready()?;
        let values = params.values();
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut vals = Vec::with_capacity(n);
                    for i in 0..n {
                        vals.push(match r.get_ref(i)? {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(i) => Value::Int(i),
                            ValueRef::Real(f) => Value::Real(f),
                            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into()),
                            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        });
                    }
                    out.push(f(&Row { values: vals })?);
                }
                Ok(out)
            }
            Conn::Postgres(pg) => {
                let st = self.pg_statement(sql)?;
                let refs: Vec<&(dyn PgToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
                let rows = pg.client.borrow_mut().query(&st, &refs)?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut vals = Vec::with_capacity(r.len());
                    for i in 0..r.len() {
                        let v: PgValue = r.try_get(i)?;
                        vals.push(v.0);
                    }
                    out.push(f(&Row { values: vals })?);
                }
                Ok(out)
            }
        }
    }

    /// The first row of a query mapped by `f`; [`DbError::NoRows`] when there is none.
    pub fn query_row<P, T, F>(&self, sql: &str, params: P, f: F) -> DbResult<T>
    where
        P: Params,
        F: FnOnce(&Row) -> DbResult<T>,
    {
        let mut f = Some(f);
        let mut first = None;
        // Both engines stream; the remaining rows are simply not read into values.
        let rows = self.query_map(sql, params, |r| {
            if first.is_none() {
                if let Some(f) = f.take() {
                    first = Some(f(r));
                }
            }
            Ok(())
        })?;
        drop(rows);
        first.unwrap_or(Err(DbError::NoRows))
    }

    /// Start a write transaction, serialised with every other writer of the database.
    /// It rolls back when dropped without [`Tx::commit`].
    pub fn begin(&self) -> DbResult<Tx<'_>> {
        self.pg_ready()?;
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(pg) => {
                // One round trip: the transaction and its lock.
                let mut client = pg.client.borrow_mut();
                if let Err(e) = client.batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})"
                )) {
                    let _ = client.batch_execute("ROLLBACK");
                    return Err(e.into());
                }
            }
        }
        self.set_in_tx(true);
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    /// Start a read-only transaction: every query in it sees one snapshot of the database.
    pub fn begin_read(&self) -> DbResult<Tx<'_>> {
        self.pg_ready()?;
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch("BEGIN DEFERRED")?,
            Conn::Postgres(pg) => pg
                .client
                .borrow_mut()
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?,
        }
        self.set_in_tx(true);
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    fn pg_statement(&self, sql: &str) -> DbResult<postgres::Statement> {
        let Conn::Postgres(pg) = &self.conn else {
            unreachable!("pg_statement on SQLite")
        };
        if let Some(st) = pg.statements.borrow().get(sql) {
            return Ok(st.clone());
        }
        let st = pg.client.borrow_mut().prepare(&pg_placeholders(sql))?;
        let mut statements = pg.statements.borrow_mut();
        // Queries built with literal id lists differ each time: keep the cache bounded.
        if statements.len() >= PG_STATEMENT_CACHE {
            statements.clear();
        }
        statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

/// A write transaction; derefs to the connection.
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl Tx<'_> {
    /// Commit. A commit that fails (SQLite busy past its timeout, a lost server) rolls the
    /// transaction back, so the connection is never left inside it.
    pub fn commit(mut self) -> DbResult<()> {
        self.done = true;
        let r = self.db.execute_batch("COMMIT");
        if r.is_err() {
            let _ = self.db.execute_batch("ROLLBACK");
        }
        self.db.set_in_tx(false);
        r
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.db.execute_batch("ROLLBACK");
            self.db.set_in_tx(false);
        }
    }
}

/// Rewrite SQLite's `?N` and `?` placeholders as PostgreSQL's `$N`, leaving quoted text alone.
pub fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 0usize;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&format!("${next}"));
                } else {
                    next = next.max(digits.parse().unwrap_or(0));
                    out.push('$');
                    out.push_str(&digits);
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl PgToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().to_sql(&Type::TEXT, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 if f.fract() == 0.0 => (*f as i64).to_sql(ty, out),
                Type::INT8 | Type::INT4 | Type::INT2 => {
                    Err(format!("{f} is not an integer for a {ty} parameter").into())
                }
                _ => f.to_string().to_sql(&Type::TEXT, out),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::FLOAT8 => s.parse::<f64>()?.to_sql(ty, out),
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
            Value::Blob(b) => b.as_slice().to_sql(&Type::BYTEA, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Any PostgreSQL column read as a [`Value`].
struct PgValue(Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let v = match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)? as i64),
            Type::OID => Value::Int(u32::from_sql(ty, raw)? as i64),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)? as f64),
            Type::NUMERIC => Value::Real(numeric_to_f64(raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(String::from_utf8(raw.to_vec())?),
        };
        Ok(PgValue(v))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC (what `SUM` of integers returns) as an `f64`.
fn numeric_to_f64(raw: &[u8]) -> Result<f64, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("short NUMERIC value")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i32;
    let sign = word(2)? as u16;
    if sign == 0xC000 {
        return Ok(f64::NAN);
    }
    let mut v = 0f64;
    for i in 0..ndigits {
        let d = word(4 + i)? as f64;
        v += d * 10000f64.powi(weight - i as i32);
    }
    Ok(if sign == 0x4000 { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            pg_placeholders("SELECT '?' , ?1, ?2, x FROM t WHERE a = ?"),
            "SELECT '?' , $1, $2, x FROM t WHERE a = $3"
        );
        assert_eq!(pg_placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
    }

    #[test]
    fn sqlite_round_trip_and_rollback() {
        let db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b REAL)")
            .unwrap();
        let id: i64 = db
            .query_row(
                "INSERT INTO t (a, b) VALUES (?1, ?2) RETURNING id",
                params!["x", 1.5],
                |r| r.get(0),
            )
            .unwrap();
        {
            let tx = db.begin().unwrap();
            tx.execute("UPDATE t SET a = 'y' WHERE id = ?1", [id])
                .unwrap();
            // dropped: rolled back
        }
        let a: String = db
            .query_row("SELECT a FROM t WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        assert_eq!(a, "x");
        let none: Option<String> = db
            .query_row("SELECT a FROM t WHERE id = 99", (), |r| r.get(0))
            .optional()
            .unwrap();
        assert!(none.is_none());
        let bad = db.query_row("SELECT a FROM t", (), |r| r.get::<i64>(0));
        assert!(matches!(bad, Err(DbError::Conversion { col: 0, .. })));
    }

    #[test]
    fn numeric_decodes() {
        // 12345.67: ndigits 3, weight 1, sign +, dscale 2, digits [1, 2345, 6700]
        let raw: Vec<u8> = [3i16, 1, 0, 2, 1, 2345, 6700]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!((numeric_to_f64(&raw).unwrap() - 12345.67).abs() < 1e-9);
    }
}
