//! Cursor pagination for the merchant API's lists, shaped like PartnerStack's:
//! newest first, or oldest first with `order_by=created_at`;
//! `starting_after=<item key>` continues after that item, `ending_before=<item
//! key>` goes back towards the first; `limit` 1-250; `min_created`,
//! `max_created`, `min_updated`, `max_updated` (epoch ms, inclusive) narrow
//! any list.
//!
//! A cursor is the position of an item in created order, its row id, which
//! never changes: a page continues from an item that was changed, deleted
//! (see `merchant::cursor`) or no longer matches the filters since. (An
//! order by `updated_at` would move its cursor item whenever it changes, and
//! a sync paging by it would skip or repeat items: not offered.)

use super::db::Value;
use super::db::{Db, Row};
use anyhow::Result;

/// Where a page starts, as the row id of the item named by the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(i64),
    Before(i64),
}

/// The order a list is read in (`order_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// `-created_at`, the default: newest first.
    #[default]
    Newest,
    /// `created_at`: oldest first.
    Oldest,
}

impl Order {
    /// The `order_by` values, as the API names them.
    pub const NAMES: [&'static str; 2] = ["-created_at", "created_at"];

    pub fn parse(text: &str) -> Option<Order> {
        match text {
            "-created_at" => Some(Order::Newest),
            "created_at" => Some(Order::Oldest),
            _ => None,
        }
    }
}

/// Inclusive bounds on `created_at` and `updated_at`, in epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub min_created: Option<i64>,
    pub max_created: Option<i64>,
    pub min_updated: Option<i64>,
    pub max_updated: Option<i64>,
}

/// What one list request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List {
    pub cursor: Cursor,
    pub limit: u32,
    pub order: Order,
    pub range: Range,
}

impl List {
    /// The first `limit` items, newest first, unfiltered.
    pub fn first(limit: u32) -> List {
        List {
            cursor: Cursor::First,
            limit,
            order: Order::default(),
            range: Range::default(),
        }
    }

    /// The `limit` items after `cursor`, newest first, unfiltered.
    pub fn from(cursor: Cursor, limit: u32) -> List {
        List {
            cursor,
            ..List::first(limit)
        }
    }
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// More items lie beyond this page, in the direction it was read.
    pub has_more: bool,
}

/// Reads one page of `select` (a `SELECT … FROM … WHERE …` whose rows have
/// the columns `{alias}id`, `{alias}created_at`, `{alias}updated_at`).
pub fn fetch<T>(
    conn: &Db,
    select: &str,
    alias: &str,
    mut params: Vec<Value>,
    list: List,
    map: impl FnMut(&Row) -> anyhow::Result<T>,
) -> Result<Page<T>> {
    let mut sql = String::from(select);
    let bind = |params: &mut Vec<Value>, value: i64| {
        params.push(Value::Integer(value));
        params.len()
    };
    let range = list.range;
    for (bound, column, op) in [
        (range.min_created, "created_at", ">="),
        (range.max_created, "created_at", "<="),
        (range.min_updated, "updated_at", ">="),
        (range.max_updated, "updated_at", "<="),
    ] {
        if let Some(value) = bound {
            let n = bind(&mut params, value);
            sql += &format!(" AND {alias}{column} {op} ?{n}");
        }
    }
    // Created order is row order (ids grow with time). Reading back
    // (`ending_before`) walks the order in reverse, then flips the page.
    let (bound, reading_back) = match list.cursor {
        Cursor::First => (None, false),
        Cursor::After(id) => (Some(id), false),
        Cursor::Before(id) => (Some(id), true),
    };
    let walk_descending = (list.order == Order::Newest) != reading_back;
    if let Some(id) = bound {
        let op = if walk_descending { "<" } else { ">" };
        let n = bind(&mut params, id);
        sql += &format!(" AND {alias}id {op} ?{n}");
    }
    let direction = if walk_descending { "DESC" } else { "ASC" };
    let n = bind(&mut params, i64::from(list.limit) + 1);
    sql += &format!(" ORDER BY {alias}id {direction} LIMIT ?{n}");
    let mut items: Vec<T> = conn
        .prepare(&sql)?
        .query_map(params, map)?
        .collect::<anyhow::Result<_>>()?;
    let has_more = items.len() > list.limit as usize;
    items.truncate(list.limit as usize);
    if reading_back {
        items.reverse();
    }
    Ok(Page { items, has_more })
}
