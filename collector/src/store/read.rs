//! Read queries for the CLI and, later, the API and dashboard. They run on
//! read connections and never block the writer (WAL).

use super::db::Db;
use anyhow::Result;
use serde::Serialize;

/// A customer line item: which partner referred which customer, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CustomerRow {
    pub public_key: String,
    pub customer_key: String,
    pub email: String,
    pub name: String,
    pub partner_key: Option<String>,
    pub xid: Option<String>,
    /// How the partner was decided: `xid`, `partner_key`, `server_cookie` or
    /// `fingerprint`; none when unattributed.
    pub source: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Why it waits for the merchant's review, if it does (see `credit`).
    pub review: Option<String>,
    /// The partner a fingerprint match suggests (not credited).
    pub suggested_partner_key: Option<String>,
}

/// The newest `limit` customers of every key.
pub fn customers(conn: &Db, limit: u32) -> Result<Vec<CustomerRow>> {
    let mut stmt = conn.prepare(
        "SELECT k.public_key, c.customer_key, c.email, c.name, c.partner_key, c.xid, c.source, c.created_at,
                c.review, c.suggested_partner
         FROM customers c JOIN keys k ON k.id = c.key_id
         ORDER BY c.id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |row| {
            Ok(CustomerRow {
                public_key: row.get(0)?,
                customer_key: row.get(1)?,
                email: row.get(2)?,
                name: row.get(3)?,
                partner_key: row.get(4)?,
                xid: row.get(5)?,
                source: row.get(6)?,
                created_at: row.get(7)?,
                review: row.get(8)?,
                suggested_partner_key: row.get(9)?,
            })
        })?
        .collect::<anyhow::Result<_>>()?;
    Ok(rows)
}
