//! Clicks and signups per day and partner: the dashboard's chart. The writer
//! counts each stored click and each new customer as it commits them, so the
//! chart reads at most 90 rows per partner instead of scanning events.

use super::db::{params, Db};
use anyhow::Result;

pub const DAY_MS: i64 = 86_400_000;

/// The bucket of every partner key no partnership has (see `writer`).
pub const UNKNOWN_PARTNERS: &str = "?";

/// Counts `clicks` and `signups` for `partner_key` ("" for none) on the day of `at_ms`.
pub fn add(
    conn: &Db,
    key_id: i64,
    partner_key: Option<&str>,
    at_ms: i64,
    clicks: i64,
    signups: i64,
) -> anyhow::Result<()> {
    conn.prepare_cached(
        "INSERT INTO daily (key_id, partner_key, day, clicks, signups) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key_id, partner_key, day) DO UPDATE SET clicks = daily.clicks + ?4, signups = daily.signups + ?5",
    )?
    .execute(params![
        key_id,
        partner_key.unwrap_or(""),
        at_ms / DAY_MS,
        clicks,
        signups
    ])?;
    Ok(())
}

/// (clicks, signups) for each of the `days` days up to and including the
/// day of `now_ms`, oldest first; of one partner, or of all.
pub fn series(conn: &Db, key_id: i64, partner_key: Option<&str>, now_ms: i64, days: i64) -> Result<Vec<(i64, i64)>> {
    let last = now_ms / DAY_MS;
    let first = last - days + 1;
    let mut out = vec![(0, 0); days as usize];
    let mut stmt = conn.prepare_cached(
        "SELECT day, sum(clicks), sum(signups) FROM daily
         WHERE key_id = ?1 AND day BETWEEN ?2 AND ?3 AND (CAST(?4 AS TEXT) IS NULL OR partner_key = ?4) GROUP BY day",
    )?;
    let rows = stmt.query_map(params![key_id, first, last, partner_key], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    for row in rows {
        let (day, clicks, signups) = row?;
        out[(day - first) as usize] = (clicks, signups);
    }
    Ok(out)
}
