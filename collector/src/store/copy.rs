//! Moves an install from one store to another (`collector migrate --from
//! growsumo.db --to postgres://…`, or back): every table's rows, read from
//! one snapshot of the source, parents before children so foreign keys
//! hold, into an empty store, in one transaction that commits only once
//! each table's count matches the source's. Row ids are kept (customers,
//! transactions and rewards are referred to by them), and PostgreSQL's id
//! sequences moved past them. What is written to the source after the copy
//! starts is not in it: the collectors are stopped first.

use super::db::{params, row_placeholders, Db, Value};
use super::Store;
use anyhow::{bail, Context, Result};

/// The tables that hold the store's data, parents first, each with the
/// column it is paged by (its row id), or none for small tables read whole.
const TABLES: &[(&str, Option<&str>)] = &[
    ("keys", Some("id")),
    ("groups", Some("id")),
    ("partners", Some("id")),
    ("customers", Some("id")),
    ("events", Some("seq")),
    ("transactions", Some("id")),
    ("offers", Some("id")),
    ("actions", Some("id")),
    ("payouts", Some("id")),
    ("payout_lines", None),
    ("rewards", Some("id")),
    ("leads", Some("id")),
    ("deals", Some("id")),
    ("attribution_changes", Some("id")),
    ("webhook_settings", None),
    ("webhook_events", None),
    ("sessions", None),
    ("daily", None),
    ("partner_revenue", None),
    ("diagnostics", None),
    ("deleted_items", None),
    ("endpoints", Some("id")),
    ("outgoing_messages", Some("id")),
    ("deliveries", Some("id")),
    ("delivery_attempts", Some("id")),
    ("partner_links", None),
    ("partner_sessions", None),
    ("programs", None),
    ("applications", Some("id")),
    ("emails", Some("id")),
    ("payout_details", None),
];

/// Each store's own bookkeeping, not data to move.
const OWN: &[&str] = &["schema_version", "write_clock", "health", "sqlite_sequence"];

/// Rows read, and inserted, at a time.
const PAGE: usize = 2_000;

/// Most parameters in one statement (SQLite's limit is 32,766).
const MAX_PARAMS: usize = 30_000;

/// What was copied of one table.
#[derive(Debug)]
pub struct Copied {
    pub table: &'static str,
    pub rows: i64,
}

/// Copies everything in `from` into `to`, which must hold no data.
pub fn copy(from: &Store, to: &Store) -> Result<Vec<Copied>> {
    let copied = from.snapshot(|source| {
        unlimited(source)?;
        copy_from(source, &from.location(), to)
    })?;
    // PostgreSQL plans a new table's queries without statistics until its
    // autovacuum's first pass (a minute or more): an index probe becomes a
    // scan of millions of rows meanwhile. (The data is in: a failure here
    // is only a warning.)
    let analyzed = to.read(|db| match db.is_postgres() {
        true => {
            unlimited(db)?;
            let tables: Vec<&str> = TABLES.iter().map(|(name, _)| *name).collect();
            db.execute(&format!("ANALYZE {}", tables.join(", ")), []).map(drop)
        }
        false => Ok(()),
    });
    if let Err(e) = analyzed {
        tracing::warn!(error = %e, "the copy is in, but analyzing its tables failed: run ANALYZE");
    }
    Ok(copied)
}

/// Lifts PostgreSQL's statement timeout (30 s, see `pg`) for this session:
/// counting or analyzing a large table may take longer.
fn unlimited(db: &Db) -> Result<()> {
    if db.is_postgres() {
        db.execute("SET statement_timeout = 0", [])?;
    }
    Ok(())
}

fn copy_from(source: &Db, from: &super::Location, to: &Store) -> Result<Vec<Copied>> {
    let found = tables(source)?;
    if let Some(unknown) = found
        .iter()
        .find(|t| !OWN.contains(&t.as_str()) && !TABLES.iter().any(|(name, _)| name == t))
    {
        bail!(
            "{from} has a table this version does not know ({unknown}): migrate with the collector version that made it"
        );
    }
    to.write(|out| {
        unlimited(out)?;
        for (table, _) in TABLES {
            if count(out, table)? > 0 {
                bail!("{} already holds data ({table}): migrate copies into an empty database", to.location());
            }
        }
        let mut copied = Vec::new();
        for &(table, key) in TABLES {
            let names = columns(source, table)?;
            let mut theirs = columns(out, table)?;
            let mut ours = names.clone();
            theirs.sort();
            ours.sort();
            if theirs != ours {
                bail!("the table {table} has other columns in {}: both stores must be at the same schema version", to.location());
            }
            let rows = copy_table(source, out, table, key, &names).with_context(|| format!("copying {table}"))?;
            copied.push(Copied { table, rows });
        }
        if out.is_postgres() {
            for (table, key) in TABLES {
                if let Some(key) = key {
                    out.query_row(
                        &format!("SELECT setval(pg_get_serial_sequence('{table}', '{key}'), coalesce(max({key}), 0) + 1, false) FROM {table}"),
                        [],
                        |_| Ok(()),
                    )?;
                }
            }
        }
        // Checked before the commit (a failure leaves the destination
        // empty): what the snapshot holds, what was read, what arrived.
        for c in &copied {
            let (held, arrived) = (count(source, c.table)?, count(out, c.table)?);
            if held != c.rows || arrived != c.rows {
                bail!(
                    "{}: {held} rows in the source, {} copied, {arrived} in the destination",
                    c.table,
                    c.rows
                );
            }
        }
        Ok(copied)
    })
}

/// Copies one table's rows; answers how many. Keys' `pair_id` (a key
/// naming another, maybe later, key) is set once every key is in.
fn copy_table(source: &Db, out: &Db, table: &str, key: Option<&str>, columns: &[String]) -> Result<i64> {
    let list = columns.join(", ");
    let pair = (table == "keys")
        .then(|| columns.iter().position(|c| c == "pair_id"))
        .flatten();
    let id = columns.iter().position(|c| c == "id");
    let mut pairs = Vec::new();
    let mut rows = 0;
    let mut after = i64::MIN;
    loop {
        let read = |r: &super::db::Row| (0..columns.len()).map(|i| r.get::<_, Value>(i)).collect();
        let page: Vec<Vec<Value>> = match key {
            Some(key) => source.query_all(
                &format!("SELECT {list} FROM {table} WHERE {key} > ?1 ORDER BY {key} LIMIT {PAGE}"),
                params![after],
                read,
            )?,
            None => source.query_all(&format!("SELECT {list} FROM {table}"), [], read)?,
        };
        let Some(last) = page.last() else { break };
        if let Some(key) = key {
            let at = columns.iter().position(|c| c == key).expect("the page key is a column");
            after = match &last[at] {
                Value::Integer(n) => *n,
                other => bail!("{table}.{key} is not an integer: {other:?}"),
            };
        }
        let mut page = page;
        if let (Some(pair), Some(id)) = (pair, id) {
            for row in &mut page {
                let paired = std::mem::replace(&mut row[pair], Value::Null);
                if paired != Value::Null {
                    pairs.push((row[id].clone(), paired));
                }
            }
        }
        rows += page.len() as i64;
        let per_statement = (MAX_PARAMS / columns.len()).clamp(1, PAGE);
        for chunk in page.chunks(per_statement) {
            insert(out, table, &list, columns.len(), chunk)?;
        }
        if key.is_none() {
            break;
        }
    }
    for (id, paired) in pairs {
        out.execute("UPDATE keys SET pair_id = ?2 WHERE id = ?1", vec![id, paired])?;
    }
    Ok(rows)
}

/// One multi-row `INSERT` of `rows`.
fn insert(out: &Db, table: &str, list: &str, width: usize, rows: &[Vec<Value>]) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} ({list}) VALUES {}",
        row_placeholders(rows.len(), width)
    );
    out.execute(&sql, rows.concat())?;
    Ok(())
}

fn count(db: &Db, table: &str) -> Result<i64> {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
}

/// The store's tables.
fn tables(db: &Db) -> Result<Vec<String>> {
    let sql = match db.is_postgres() {
        true => "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()",
        false => "SELECT name FROM sqlite_master WHERE type = 'table'",
    };
    db.query_all(sql, [], |r| r.get(0))
}

/// A table's columns, in their order.
fn columns(db: &Db, table: &str) -> Result<Vec<String>> {
    let sql = match db.is_postgres() {
        true => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
        }
        false => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
    };
    let columns = db.query_all(sql, params![table], |r| r.get(0))?;
    if columns.is_empty() {
        bail!("no table {table}");
    }
    Ok(columns)
}
