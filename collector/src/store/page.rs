//! Cursor pagination for the merchant API's lists, shaped like PartnerStack's:
//! newest first unless `order_by` says otherwise; `starting_after=<item key>`
//! continues after that item, `ending_before=<item key>` goes back towards
//! the first; `limit` 1-250; `min_created`, `max_created`, `min_updated`,
//! `max_updated` (epoch ms, inclusive) narrow any list.
//!
//! A cursor is the position of an item in the list's order (its sort value
//! and row id), so a page can continue from an item that was deleted since
//! (see `merchant::cursor`) or that no longer matches the filters.

use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{Connection, Row};

/// Where an item stands: its row id and `updated_at` (the two orders a list
/// can be read in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub id: i64,
    pub updated_at: i64,
}

impl Position {
    /// A row's place in created order (the default), where only its id counts.
    pub fn row(id: i64) -> Position {
        Position { id, updated_at: 0 }
    }
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(Position),
    Before(Position),
}

/// The order a list is read in (`order_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// `-created_at`, the default: newest first.
    #[default]
    NewestCreated,
    /// `created_at`: oldest first.
    OldestCreated,
    /// `-updated_at`: most recently changed first.
    NewestUpdated,
    /// `updated_at`: least recently changed first (an incremental sync).
    OldestUpdated,
}

impl Order {
    /// The `order_by` values, as the API names them.
    pub const NAMES: [&'static str; 4] = ["-created_at", "created_at", "-updated_at", "updated_at"];

    pub fn parse(text: &str) -> Option<Order> {
        match text {
            "-created_at" => Some(Order::NewestCreated),
            "created_at" => Some(Order::OldestCreated),
            "-updated_at" => Some(Order::NewestUpdated),
            "updated_at" => Some(Order::OldestUpdated),
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

#[derive(Debug, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// More items lie beyond this page, in the direction it was read.
    pub has_more: bool,
}

/// Reads one page of `select` (a `SELECT … FROM … WHERE …` whose rows have
/// the columns `{alias}id`, `{alias}created_at`, `{alias}updated_at`).
pub fn fetch<T>(
    conn: &Connection,
    select: &str,
    alias: &str,
    mut params: Vec<Value>,
    list: List,
    map: impl FnMut(&Row) -> rusqlite::Result<T>,
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
    // Created order is row order (ids grow with time); updated order ties
    // on the row id, so every item has one place.
    let by_updated = matches!(list.order, Order::NewestUpdated | Order::OldestUpdated);
    let descending = matches!(list.order, Order::NewestCreated | Order::NewestUpdated);
    let (bound, reading_back) = match list.cursor {
        Cursor::First => (None, false),
        Cursor::After(at) => (Some(at), false),
        Cursor::Before(at) => (Some(at), true),
    };
    // Reading back (`ending_before`) walks the order in reverse, then flips the page.
    let walk_descending = descending != reading_back;
    if let Some(at) = bound {
        let op = if walk_descending { "<" } else { ">" };
        let id = bind(&mut params, at.id);
        if by_updated {
            let updated = bind(&mut params, at.updated_at);
            sql += &format!(" AND ({alias}updated_at, {alias}id) {op} (?{updated}, ?{id})");
        } else {
            sql += &format!(" AND {alias}id {op} ?{id}");
        }
    }
    let direction = if walk_descending { "DESC" } else { "ASC" };
    let n = bind(&mut params, i64::from(list.limit) + 1);
    if by_updated {
        sql += &format!(" ORDER BY {alias}updated_at {direction}, {alias}id {direction} LIMIT ?{n}");
    } else {
        sql += &format!(" ORDER BY {alias}id {direction} LIMIT ?{n}");
    }
    let mut items: Vec<T> = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(params), map)?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = items.len() > list.limit as usize;
    items.truncate(list.limit as usize);
    if reading_back {
        items.reverse();
    }
    Ok(Page { items, has_more })
}
