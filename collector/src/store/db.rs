//! SQL on either backend: the store's modules write each statement once and
//! run it through `Db`, on SQLite (rusqlite) or PostgreSQL (`postgres`).
//!
//! - Statements use SQLite's numbered placeholders (`?1`, `?2`…), rewritten
//!   to PostgreSQL's (`$1`…) for PostgreSQL; the SQL itself keeps to what
//!   both accept (`ON CONFLICT … DO …`, `RETURNING`, `CAST(SUM(x) AS
//!   BIGINT)`); the few places that differ ask `is_postgres`.
//! - Parameters are `Value`s (integer, real, text, blob or null), made by
//!   `params!` from Rust values. Booleans are integers 0 and 1 on both
//!   backends (PostgreSQL's columns for them are `BIGINT`), so a statement
//!   may compare them as numbers.
//! - Cells are read back as `Value`s and converted by `FromValue`, whatever
//!   the column's type on either backend (`BIGINT`, `INTEGER`, `BOOLEAN`…).

use anyhow::{anyhow, bail, Context, Result};
use postgres::GenericClient;
use std::cell::RefCell;
use std::collections::HashMap;

/// A parameter or a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A Rust value a statement can take as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(*self as i64)
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, u32, u16, u8);

impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
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

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// A statement's parameters: `params![a, b]`, an array of one type
/// (`[key_id]`), or none (`[]`), as rusqlite takes them.
pub trait Params {
    fn values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl<const N: usize> Params for &[&dyn ToValue; N] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for [&dyn ToValue; 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

impl Params for Vec<Value> {
    fn values(self) -> Vec<Value> {
        self
    }
}

/// `params![a, b]`: parameters of different types.
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::db::ToValue] };
    ($($value:expr),+ $(,)?) => { &[$(&$value as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue] };
}
pub(crate) use params;

/// The `VALUES` list of a multi-row insert: `rows` tuples of `width`
/// numbered placeholders, `(?1, ?2), (?3, ?4)`.
pub fn row_placeholders(rows: usize, width: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let slots: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", slots.join(", "))
        })
        .collect();
    tuples.join(", ")
}

/// `items` in slices of at most `max` (a power of two), each padded to a
/// power-of-two length by repeating its last item: a statement made per
/// slice then has few texts, each prepared once per connection, and a
/// group takes one statement, not one per bit of its size. Only for
/// statements a repeated item leaves unchanged (an insert that skips
/// conflicts, a set of lookups).
pub fn padded_slices<T: Clone>(items: &[T], max: usize) -> impl Iterator<Item = Vec<T>> + '_ {
    items.chunks(max).map(|chunk| {
        let mut slice = chunk.to_vec();
        let last = chunk[chunk.len() - 1].clone();
        slice.resize(chunk.len().next_power_of_two(), last);
        slice
    })
}

/// A Rust value a cell converts to.
pub trait FromValue: Sized {
    fn from_value(value: Value) -> Result<Self>;
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self> {
        Ok(value)
    }
}

impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Integer(n) => Ok(n),
            other => bail!("expected an integer, got {other:?}"),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self> {
                let n = i64::from_value(value)?;
                <$t>::try_from(n).map_err(|_| anyhow!("{n} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
int_from_value!(i32, i16, u64, u32, u16, u8, usize);

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Real(x) => Ok(x),
            Value::Integer(n) => Ok(n as f64),
            other => bail!("expected a number, got {other:?}"),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Text(s) => Ok(s),
            other => bail!("expected text, got {other:?}"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Blob(b) => Ok(b),
            other => bail!("expected bytes, got {other:?}"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// One result row.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

/// A column of a row, by position (from 0).
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// The cell of column `index` (from 0) as a `T`.
    pub fn get<I: RowIndex, T: FromValue>(&self, index: I) -> Result<T> {
        let index = index.index();
        let value = match self {
            Row::Sqlite(row) => sqlite_cell(row.get_ref(index)?),
            Row::Postgres(row) => postgres_cell(row, index)?,
        };
        T::from_value(value).with_context(|| format!("column {index}"))
    }
}

fn sqlite_cell(cell: rusqlite::types::ValueRef) -> Value {
    use rusqlite::types::ValueRef;
    match cell {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn postgres_cell(row: &postgres::Row, index: usize) -> Result<Value> {
    use postgres::types::Type;
    let column = row.columns().get(index).ok_or_else(|| anyhow!("no column {index}"))?;
    let ty = column.type_().clone();
    let value = if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(index)?.map(Value::Integer)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(index)?.map(|n| Value::Integer(n.into()))
    } else if ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(index)?.map(|n| Value::Integer(n.into()))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(index)?.map(|b| Value::Integer(b.into()))
    } else if ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(index)?.map(Value::Real)
    } else if ty == Type::FLOAT4 {
        row.try_get::<_, Option<f32>>(index)?.map(|x| Value::Real(x.into()))
    } else if ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob)
    } else if ty == Type::NUMERIC {
        // `sum()` of BIGINTs: PostgreSQL answers NUMERIC.
        row.try_get::<_, Option<Numeric>>(index)?.map(|n| n.0)
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(&ty) {
        row.try_get::<_, Option<String>>(index)?.map(Value::Text)
    } else {
        bail!(
            "column {} has type {ty}, which the store does not read (cast it)",
            column.name()
        );
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A NUMERIC cell: an integer when it is one and fits, else a real.
/// (Decoded by hand from PostgreSQL's binary form: base-10000 digits and the
/// weight of the first; the driver reads NUMERIC only with a decimal crate.)
struct Numeric(Value);

impl<'a> postgres::types::FromSql<'a> for Numeric {
    fn from_sql(
        _: &postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Numeric, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> std::result::Result<i16, Box<dyn std::error::Error + Sync + Send>> {
            let bytes = raw.get(i * 2..i * 2 + 2).ok_or("a short NUMERIC")?;
            Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
        };
        let (digits, weight, sign) = (word(0)? as usize, word(1)?, word(2)? as u16);
        if sign == 0xC000 {
            return Ok(Numeric(Value::Real(f64::NAN)));
        }
        let mut integer: Option<i64> = Some(0);
        let mut real = 0.0_f64;
        for i in 0..digits {
            let digit = word(4 + i)?;
            let power = i32::from(weight) - i as i32;
            real += f64::from(digit) * 10_000_f64.powi(power);
            integer = match power {
                p if p < 0 && digit != 0 => None,
                p if p < 0 => integer,
                p => integer
                    .and_then(|n| n.checked_add(i64::from(digit).checked_mul(10_000_i64.checked_pow(p as u32)?)?)),
            };
        }
        let negative = sign == 0x4000;
        Ok(Numeric(match integer {
            Some(n) => Value::Integer(if negative { -n } else { n }),
            None => Value::Real(if negative { -real } else { real }),
        }))
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::NUMERIC
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        // PostgreSQL chose the parameter's type from the statement; the value
        // is written as that type (an integer where text is expected, for a
        // parameter PostgreSQL could not place, is written as its digits).
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(n) if *ty == Type::INT8 => n.to_sql(ty, out),
            Value::Integer(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Value::Integer(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Value::Integer(n) if *ty == Type::BOOL => (*n != 0).to_sql(ty, out),
            Value::Integer(n) if *ty == Type::FLOAT8 => (*n as f64).to_sql(ty, out),
            Value::Integer(n) if text(ty) => n.to_string().to_sql(ty, out),
            Value::Real(x) if *ty == Type::FLOAT4 => (*x as f32).to_sql(ty, out),
            Value::Real(x) if *ty == Type::FLOAT8 => x.to_sql(ty, out),
            Value::Real(x) if text(ty) => x.to_string().to_sql(ty, out),
            Value::Text(s) if text(ty) => s.to_sql(ty, out),
            Value::Blob(b) if *ty == Type::BYTEA => b.to_sql(ty, out),
            // Never bytes in another type's binary form (text as an int8).
            other => Err(format!("a {other:?} cannot be a {ty} parameter").into()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Whether a parameter of type `ty` takes text.
fn text(ty: &postgres::types::Type) -> bool {
    use postgres::types::Type;
    [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::UNKNOWN].contains(ty)
}

/// A PostgreSQL error with the server's words (the driver's own `Display`
/// says only "db error"), and the statement's first line.
pub fn pg_error(e: postgres::Error, sql: &str) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => anyhow!(
            "{} ({}){}: {}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(", {d}")).unwrap_or_default(),
            first_line(sql)
        ),
        // The driver's `Display` leaves out the cause ("error connecting
        // to server"): it is the source.
        None => match std::error::Error::source(&e) {
            Some(cause) => anyhow!("{e}: {cause}: {}", first_line(sql)),
            None => anyhow!("{e}: {}", first_line(sql)),
        },
    }
}

/// What runs PostgreSQL statements: a transaction, or a client outside one.
pub trait PgRun {
    fn query(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<postgres::Row>>;
    fn execute(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<u64>;
}

/// Most statements kept prepared on one connection; past it, the cache
/// starts over (the store's statements are far fewer: a bound for texts
/// built from a request's filters).
const STATEMENTS_KEPT: usize = 512;

/// A PostgreSQL connection or transaction, with the statements already
/// prepared on its connection: each text is parsed once per connection,
/// then only bound and run (one round trip instead of two).
pub struct PgSession<'c, C> {
    client: RefCell<C>,
    statements: RefCell<&'c mut HashMap<String, postgres::Statement>>,
}

impl<'c, C> PgSession<'c, C>
where
    C: std::ops::DerefMut,
    C::Target: postgres::GenericClient,
{
    pub fn new(client: C, statements: &'c mut HashMap<String, postgres::Statement>) -> PgSession<'c, C> {
        PgSession {
            client: RefCell::new(client),
            statements: RefCell::new(statements),
        }
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.borrow_mut().prepare(sql).map_err(|e| pg_error(e, sql))?;
        let mut statements = self.statements.borrow_mut();
        if statements.len() >= STATEMENTS_KEPT {
            statements.clear();
        }
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl<C> PgRun for PgSession<'_, C>
where
    C: std::ops::DerefMut,
    C::Target: postgres::GenericClient,
{
    fn query(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        let statement = self.statement(sql)?;
        self.client
            .borrow_mut()
            .query(&statement, params)
            .map_err(|e| pg_error(e, sql))
    }

    fn execute(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.client
            .borrow_mut()
            .execute(&statement, params)
            .map_err(|e| pg_error(e, sql))
    }
}

/// A connection or transaction of either backend.
#[derive(Clone, Copy)]
pub enum Db<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(&'a (dyn PgRun + 'a)),
}

impl<'a> From<&'a rusqlite::Connection> for Db<'a> {
    fn from(conn: &'a rusqlite::Connection) -> Db<'a> {
        Db::Sqlite(conn)
    }
}

impl<'a> From<&'a rusqlite::Transaction<'_>> for Db<'a> {
    fn from(tx: &'a rusqlite::Transaction<'_>) -> Db<'a> {
        Db::Sqlite(tx)
    }
}

/// A query found no row (`query_row`); `optional` makes it `None`.
#[derive(Debug, thiserror::Error)]
#[error("the query returned no row: {0}")]
pub struct NoRow(String);

/// `query_row(..).optional()`: no row is `None`, as with rusqlite.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is::<NoRow>() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<'a> Db<'a> {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// A statement to run (cached by rusqlite on SQLite).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'a>> {
        Ok(Statement {
            db: *self,
            sql: sql.to_owned(),
        })
    }

    /// The same as `prepare`: every statement is cached.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'a>> {
        self.prepare(sql)
    }

    /// Runs a statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        let values = params.values();
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Db::Postgres(pg) => Ok(pg.execute(&postgres_sql(sql), &pg_params(storable(&values)?))? as usize),
        }
    }

    /// Runs an `INSERT` into a table whose key is `id`, and answers the new
    /// row's id.
    pub fn insert(&self, sql: &str, params: impl Params) -> Result<i64> {
        match self {
            Db::Sqlite(conn) => {
                self.execute(sql, params)?;
                Ok(conn.last_insert_rowid())
            }
            Db::Postgres(_) => self.query_row(&format!("{sql} RETURNING id"), params, |r| r.get(0)),
        }
    }

    /// Every row of a query, each through `f`.
    pub fn query_all<T>(&self, sql: &str, params: impl Params, mut f: impl FnMut(&Row) -> Result<T>) -> Result<Vec<T>> {
        let values = params.values();
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Db::Postgres(pg) => {
                let rows = pg.query(&postgres_sql(sql), &pg_params(storable(&values)?))?;
                rows.iter().map(|row| f(&Row::Postgres(row))).collect()
            }
        }
    }

    /// The first row of a query through `f`; `NoRow` when it has none (see
    /// `OptionalExtension`).
    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        let values = params.values();
        let found = match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                match rows.next()? {
                    Some(row) => Some(f(&Row::Sqlite(row))?),
                    None => None,
                }
            }
            Db::Postgres(pg) => {
                let rows = pg.query(&postgres_sql(sql), &pg_params(storable(&values)?))?;
                rows.first().map(|row| f(&Row::Postgres(row))).transpose()?
            }
        };
        found.ok_or_else(|| NoRow(first_line(sql).to_owned()).into())
    }
}

/// A statement bound to its connection, used as rusqlite's is.
pub struct Statement<'a> {
    db: Db<'a>,
    sql: String,
}

impl Statement<'_> {
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        self.db.execute(&self.sql, params)
    }

    pub fn query_row<T>(&mut self, params: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        self.db.query_row(&self.sql, params, f)
    }

    /// Every row through `f`, as an iterator of results (rows are read first).
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.db.query_all(&self.sql, params, |row| Ok(f(row)))?;
        Ok(rows.into_iter())
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

/// `values`, when PostgreSQL can take them: a text holding a NUL byte
/// (which SQLite stores, and a request may carry percent-encoded) is
/// refused as invalid input, not failed as a storage error.
fn storable(values: &[Value]) -> Result<&[Value]> {
    if values.iter().any(|v| matches!(v, Value::Text(t) if t.contains('\0'))) {
        return Err(super::Refusal::invalid("text", "holds a NUL character, which cannot be stored").into());
    }
    Ok(values)
}

fn pg_params(values: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// A statement in PostgreSQL's words: SQLite's `?N` placeholders as `$N`
/// (outside quoted text), and its case-blind comparisons
/// (`column = ?N COLLATE NOCASE`) as `lower(column) = lower($N COLLATE "C")` (the
/// schema's indexes for them are on `lower(column)`).
pub fn postgres_sql(sql: &str) -> String {
    dollars(&nocase(sql))
}

fn nocase(sql: &str) -> String {
    const NOCASE: &str = " COLLATE NOCASE";
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(NOCASE) {
        let (before, after) = rest.split_at(at);
        // `column = ?N` just before: split off its three words.
        let words: Vec<&str> = before.rsplitn(4, ' ').collect();
        match words.as_slice() {
            // (The parameter in the column's bytewise collation: in the
            // database's own, lower() would fold letters the column's does
            // not, and `É` would never match `É`.)
            [value, "=", column, head] => {
                out.push_str(&format!("{head} lower({column}) = lower({value} COLLATE \"C\")"))
            }
            // Any other shape stays as written, and PostgreSQL refuses it
            // (no collation "nocase"): never silently case-sensitive.
            _ => {
                out.push_str(before);
                out.push_str(NOCASE);
            }
        }
        rest = &after[NOCASE.len()..];
    }
    out.push_str(rest);
    out
}

fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_blind_comparisons_become_lower_ones() {
        assert_eq!(
            postgres_sql("SELECT 1 FROM leads WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE AND x = 1"),
            "SELECT 1 FROM leads WHERE key_id = $1 AND lower(email) = lower($2 COLLATE \"C\") AND x = 1"
        );
        assert_eq!(
            postgres_sql("WHERE (partner_key = ?2 OR email = ?3 COLLATE NOCASE)"),
            "WHERE (partner_key = $2 OR lower(email) = lower($3 COLLATE \"C\"))"
        );
    }

    #[test]
    fn placeholders_become_numbered_dollars_outside_text() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
    }

    #[test]
    fn sqlite_round_trips_every_kind_of_value() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let db = Db::from(&conn);
        db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL, s TEXT, b BLOB)",
            [],
        )
        .unwrap();
        let id = db
            .insert(
                "INSERT INTO t (n, x, s, b) VALUES (?1, ?2, ?3, ?4)",
                params![true, 1.5, "text", b"\x00\x01".as_slice()],
            )
            .unwrap();
        let row: (bool, f64, String, Vec<u8>, Option<i64>) = db
            .query_row("SELECT n, x, s, b, NULL FROM t WHERE id = ?1", params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        assert_eq!(row, (true, 1.5, "text".into(), vec![0, 1], None));
        let missing = db.query_row("SELECT 1 FROM t WHERE id = ?1", [99], |r| r.get::<_, i64>(0));
        assert!(missing.optional().unwrap().is_none());
        let broken = db.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0));
        assert!(broken.optional().is_err(), "only a missing row is None");
    }
}
