//! Why the snippet could not start on a merchant's page, as the loader
//! reported it (`POST /v1/diagnostics`): counted per key, page origin and
//! reason, so the dashboard's Installation page can say what is wrong
//! instead of "no event has arrived yet".

use super::db::{params, Db};
use anyhow::Result;

/// The reasons the loader reports, with what the merchant should do.
pub const REASONS: &[(&str, &str)] = &[
    (
        "csp_wasm",
        "the page's Content-Security-Policy blocks WebAssembly: add 'wasm-unsafe-eval' to its script-src",
    ),
    (
        "wasm_fetch",
        "the snippet's wasm file could not be fetched: check the page's connect-src and that the collector is reachable",
    ),
    (
        "wasm_start",
        "the browser could not start the snippet's WebAssembly (an old browser, or WebAssembly disabled)",
    ),
];

/// What to tell the merchant about `reason`, if it is one the loader sends.
pub fn explain(reason: &str) -> Option<&'static str> {
    REASONS.iter().find(|(r, _)| *r == reason).map(|(_, text)| *text)
}

/// Rows kept per key: anyone can post a report (the public key is public),
/// so the newest are kept and the table cannot grow without bound.
const KEPT: i64 = 50;

/// Counts one report.
pub fn record(tx: &Db, key_id: i64, origin: &str, reason: &str, now_ms: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO diagnostics (key_id, origin, reason, count, last_at) VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (key_id, origin, reason) DO UPDATE SET count = diagnostics.count + 1, last_at = excluded.last_at",
        params![key_id, origin, reason, now_ms],
    )?;
    // The row's own address: SQLite's rowid, PostgreSQL's ctid.
    let row = if tx.is_postgres() { "ctid" } else { "rowid" };
    tx.execute(
        &format!(
            "DELETE FROM diagnostics WHERE key_id = ?1 AND {row} NOT IN
                (SELECT {row} FROM diagnostics WHERE key_id = ?1 ORDER BY last_at DESC LIMIT ?2)"
        ),
        params![key_id, KEPT],
    )?;
    Ok(())
}

/// One reported problem: where, why, how often, and when last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub origin: String,
    pub reason: String,
    pub count: i64,
    pub last_at: i64,
}

/// The key's reports, most recent first.
pub fn list(conn: &Db, key_id: i64) -> Result<Vec<Report>> {
    let mut stmt = conn.prepare(
        "SELECT origin, reason, count, last_at FROM diagnostics WHERE key_id = ?1 ORDER BY last_at DESC LIMIT 50",
    )?;
    let rows = stmt.query_map([key_id], |r| {
        Ok(Report {
            origin: r.get(0)?,
            reason: r.get(1)?,
            count: r.get(2)?,
            last_at: r.get(3)?,
        })
    })?;
    rows.collect::<Result<_, _>>()
}
