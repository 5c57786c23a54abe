//! Cursor pagination for the merchant API's lists, shaped like PartnerStack's:
//! newest first; `starting_after=<item key>` continues after that item,
//! `ending_before=<item key>` goes back towards newer items; `limit` 1-250.

use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{Connection, Row};

/// Where a page starts, as the row id of the item named by the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(i64),
    Before(i64),
}

#[derive(Debug, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// More items lie beyond this page, in the direction it was read.
    pub has_more: bool,
}

/// Reads one page of `select` (a `SELECT … FROM … WHERE …` whose rows have
/// the id column `id`), `limit` items, newest first.
pub fn fetch<T>(
    conn: &Connection,
    select: &str,
    id: &str,
    mut params: Vec<Value>,
    cursor: Cursor,
    limit: u32,
    map: impl FnMut(&Row) -> rusqlite::Result<T>,
) -> Result<Page<T>> {
    let (bound, order) = match cursor {
        Cursor::First => (String::new(), "DESC"),
        Cursor::After(row) => {
            params.push(Value::Integer(row));
            (format!(" AND {id} < ?{}", params.len()), "DESC")
        }
        Cursor::Before(row) => {
            params.push(Value::Integer(row));
            (format!(" AND {id} > ?{}", params.len()), "ASC")
        }
    };
    params.push(Value::Integer(i64::from(limit) + 1));
    let sql = format!("{select}{bound} ORDER BY {id} {order} LIMIT ?{}", params.len());
    let mut items: Vec<T> = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(params), map)?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    if order == "ASC" {
        items.reverse();
    }
    Ok(Page { items, has_more })
}
