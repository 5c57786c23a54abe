//! Actions, as PartnerStack has them: conversion events the merchant sends
//! for a customer (`activated`, `upgraded`), which `action` offers reward
//! once per customer (see `money::reward_action`), in the same database
//! transaction as the action.

use super::db::Value;
use super::db::{params, Db, OptionalExtension, Row};
use super::merchant::{self, CustomerRef};
use super::page::{self, List, Page};
use super::{Key, Refusal};
use anyhow::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// `act_<n>`: the item key for `starting_after`.
    pub key: String,
    /// What the customer did (`activated`).
    pub action_key: String,
    pub customer_key: String,
    pub customer_email: String,
    pub customer_name: String,
    pub partner_key: Option<String>,
    /// A number the merchant attaches (seats, a plan's rank): kept, not used.
    pub value: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str = "SELECT 'act_' || a.id, a.action_key, c.customer_key, c.email, c.name, c.partner_key, a.value,
            a.created_at, a.updated_at
     FROM actions a JOIN customers c ON c.id = a.customer_id WHERE a.key_id = ?1";

fn row(row: &Row) -> anyhow::Result<Action> {
    Ok(Action {
        key: row.get(0)?,
        action_key: row.get(1)?,
        customer_key: row.get(2)?,
        customer_email: row.get(3)?,
        customer_name: row.get(4)?,
        partner_key: row.get(5)?,
        value: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

/// The row id in an action key (`act_12` → 12).
pub fn action_id(action_key: &str) -> Option<i64> {
    action_key.strip_prefix("act_")?.parse().ok()
}

/// Records that the customer `by` did `action_key`, and the rewards it earns.
pub fn record(
    conn: &Db,
    key: &Key,
    by: &CustomerRef,
    action_key: &str,
    value: Option<i64>,
    now: i64,
) -> Result<Action> {
    let customer = merchant::find_customer(conn, key.id, by)?;
    let id = conn.insert(
        "INSERT INTO actions (key_id, action_key, customer_id, value, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![key.id, action_key, customer.id, value, now],
    )?;
    super::money::reward_action(conn, key, &customer, id, action_key, now)?;
    get(conn, key.id, &format!("act_{id}"))
}

pub fn get(conn: &Db, key_id: i64, key: &str) -> Result<Action> {
    let missing = || Refusal::not_found("key", format!("no action {key:?}"));
    let id = action_id(key).ok_or_else(missing)?;
    let sql = format!("{SELECT} AND a.id = ?2");
    conn.query_row(&sql, params![key_id, id], row)
        .optional()?
        .ok_or_else(|| missing().into())
}

/// A key's actions: of one customer, or of one kind (`action_key`), if asked.
pub fn list(
    conn: &Db,
    key_id: i64,
    customer_key: Option<&str>,
    action_key: Option<&str>,
    list: List,
) -> Result<Page<Action>> {
    let mut select = String::from(SELECT);
    let mut params = vec![Value::Integer(key_id)];
    for (column, value) in [("c.customer_key", customer_key), ("a.action_key", action_key)] {
        if let Some(value) = value {
            params.push(Value::Text(value.into()));
            select += &format!(" AND {column} = ?{}", params.len());
        }
    }
    page::fetch(conn, &select, "a.", params, list, row)
}
