//! CSV exports of a key's customers, transactions and rewards, for the CLI
//! (`collector export`) and the dashboard's download links. Written page by
//! page (1,000 rows a query), so a million customers never sit in memory.
//!
//! Values come from anyone who can post a signup: a cell a spreadsheet would
//! read as a formula (`=`, `+`, `-`, `@`, tab or CR first) is written with a
//! leading `'`, which spreadsheets show as text. Numbers stay numbers.

use crate::store::merchant;
use crate::store::money::{self, RewardFilter};
use crate::store::page::{Cursor, List};
use crate::store::Store;
use anyhow::Result;
use std::io::Write;

const PAGE: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Table {
    Customers,
    Transactions,
    Rewards,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Customers => "customers",
            Table::Transactions => "transactions",
            Table::Rewards => "rewards",
        }
    }
}

/// Writes `table` of key `key_id` to `out` as CSV with a header row.
pub fn write_csv(store: &Store, key_id: i64, table: Table, out: impl Write) -> Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut cursor = Cursor::First;
    match table {
        Table::Customers => {
            csv.write_record([
                "customer_key",
                "email",
                "name",
                "partner_key",
                "provider_key",
                "source",
                "created_at",
            ])?;
            loop {
                let page =
                    store.read(|conn| merchant::customers(conn, key_id, None, false, List::from(cursor, PAGE)))?;
                for c in &page.items {
                    let created = c.created_at.to_string();
                    let row = [
                        &c.key,
                        &c.email,
                        &c.name,
                        opt(&c.partner_key),
                        opt(&c.provider_key),
                        opt(&c.source),
                        &created,
                    ];
                    csv.write_record(row.iter().map(|cell| safe(cell)))?;
                }
                match (page.has_more, page.items.last()) {
                    (true, Some(last)) => cursor = Cursor::After(last.id),
                    _ => break,
                }
            }
        }
        Table::Transactions => {
            csv.write_record([
                "key",
                "customer_key",
                "amount",
                "currency",
                "product_key",
                "category_key",
                "origin",
                "created_at",
                "reversed_at",
            ])?;
            loop {
                let page =
                    store.read(|conn| money::transactions(conn, key_id, None, true, List::from(cursor, PAGE)))?;
                for t in &page.items {
                    let (amount, created) = (t.amount.to_string(), t.created_at.to_string());
                    let reversed = t.reversed_at.map(|r| r.to_string()).unwrap_or_default();
                    let row = [
                        &t.key,
                        &t.customer_key,
                        &amount,
                        &t.currency,
                        opt(&t.product_key),
                        opt(&t.category_key),
                        &t.origin,
                        &created,
                        &reversed,
                    ];
                    csv.write_record(row.iter().map(|cell| safe(cell)))?;
                }
                match (page.has_more, page.items.last()) {
                    (true, Some(last)) => cursor = Cursor::After(last.id),
                    _ => break,
                }
            }
        }
        Table::Rewards => {
            csv.write_record([
                "key",
                "partner_key",
                "customer_key",
                "transaction_key",
                "action_key",
                "offer_key",
                "amount",
                "currency",
                "status",
                "reverses",
                "created_at",
            ])?;
            loop {
                let filter = RewardFilter::default();
                let page = store.read(|conn| money::rewards(conn, key_id, &filter, List::from(cursor, PAGE)))?;
                for r in &page.items {
                    let (amount, created) = (r.amount.to_string(), r.created_at.to_string());
                    let transaction = r.transaction.as_ref().map_or("", |t| t.key.as_str());
                    let action = r.action.as_ref().map_or("", |a| a.action_key.as_str());
                    let row = [
                        &r.key,
                        &r.partner_key,
                        &r.customer_key,
                        transaction,
                        action,
                        &r.offer_key,
                        &amount,
                        &r.currency,
                        &r.status,
                        opt(&r.reverses),
                        &created,
                    ];
                    csv.write_record(row.iter().map(|cell| safe(cell)))?;
                }
                match (page.has_more, page.items.last().and_then(|r| money::reward_id(&r.key))) {
                    (true, Some(last)) => cursor = Cursor::After(last),
                    _ => break,
                }
            }
        }
    }
    csv.flush()?;
    Ok(())
}

/// `cell`, made inert for spreadsheets if it would start a formula, also
/// after leading spaces (some imports trim them) or as a full-width sign.
pub fn safe(cell: &str) -> String {
    let first = cell.trim_start_matches(|c: char| c.is_whitespace() && c != '\t' && c != '\r');
    let formula = first.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'])
        && cell.trim().parse::<f64>().is_err();
    match formula {
        true => format!("'{cell}"),
        false => cell.into(),
    }
}

fn opt(value: &Option<String>) -> &String {
    static EMPTY: String = String::new();
    value.as_ref().unwrap_or(&EMPTY)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formulas_are_written_as_text_and_numbers_as_numbers() {
        for (cell, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("+1+1", "'+1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("-1225", "-1225"),
            (" =1+1", "' =1+1"),
            ("\u{a0}=1+1", "'\u{a0}=1+1"),
            ("＝1+1", "'＝1+1"),
            ("ann@example.com", "ann@example.com"),
        ] {
            assert_eq!(super::safe(cell), written);
        }
    }
}
