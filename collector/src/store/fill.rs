//! Benchmark fixtures: fills the event log with synthetic clicks (random
//! 128-bit ids, as browsers make them) so ingest can be measured on a large
//! database, and adds customers, partners and payments so the dashboard and
//! the API can be. Not used by the server.

use super::db::params;
use super::Store;
use anyhow::Result;

/// Rows per transaction while filling.
const CHUNK: u64 = 100_000;

/// Adds `count` click events for key `key_id`.
pub fn clicks(store: &Store, key_id: i64, count: u64) -> Result<()> {
    let mut seed = super::now_ms() as u64;
    let mut next = move || {
        // splitmix64: fast, and random enough for index keys.
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        store.write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (key_id, event_id, type, received_at, client_ts, partner_key, xid, url)
                 VALUES (?1, ?2, 'click', ?3, ?3, ?4, ?5, 'https://shop.example/')",
            )?;
            let now = super::now_ms();
            for i in 0..n {
                let id = format!("{:016x}{:016x}", next(), next());
                insert.execute(params![key_id, id, now, format!("partner{}", i % 1000), id])?;
            }
            Ok(())
        })?;
        done += n;
    }
    Ok(())
}

/// Partners the customers are spread over.
const PARTNERS: u64 = 1000;

/// Adds `count` customers for key `key_id`, spread over 1,000 registered
/// partners (`partner0`…), one in ten with a payment, then rebuilds the
/// per-day counts from everything stored.
pub fn customers(store: &Store, key_id: i64, count: u64) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    let now = super::now_ms();
    store.write(|tx| {
        for p in 0..PARTNERS {
            tx.execute(
                "INSERT INTO partners (key_id, partner_key, email, first_name, last_name, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'Partner', ?4, ?5, ?5) ON CONFLICT DO NOTHING",
                params![
                    key_id,
                    format!("partner{p}"),
                    format!("partner{p}@partners.example"),
                    p.to_string(),
                    now
                ],
            )?;
        }
        Ok(())
    })?;
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        store.write(|tx| {
            let customer_sql = "INSERT INTO customers (key_id, customer_key, email, name, partner_key, source, event_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'Customer', ?4, 'xid', '', ?5, ?5)";
            let mut payment = tx.prepare_cached(
                "INSERT INTO transactions (key_id, transaction_key, customer_id, amount, currency, origin, created_at)
                 VALUES (?1, ?2, ?3, 4900, 'USD', 'api', ?4)",
            )?;
            for i in done..done + n {
                // Spread over the last 90 days, so the chart has a shape.
                let at = now - (i % 90) as i64 * 86_400_000;
                let key = format!("customer{i}");
                let id = tx.insert(customer_sql, params![key_id, key, format!("{key}@example.com"), format!("partner{}", i % PARTNERS), at])?;
                if i % 10 == 0 {
                    payment.execute(params![key_id, format!("txn{i}"), id, at])?;
                }
            }
            Ok(())
        })?;
        done += n;
    }
    store.write(|tx| {
        tx.execute("DELETE FROM daily WHERE key_id = ?1", [key_id])?;
        tx.execute(
            "INSERT INTO daily (key_id, partner_key, day, clicks)
             SELECT key_id, coalesce(partner_key, ''), received_at / 86400000, count(*) FROM events
             WHERE key_id = ?1 AND type = 'click' GROUP BY 1, 2, 3",
            [key_id],
        )?;
        tx.execute(
            "INSERT INTO daily (key_id, partner_key, day, signups)
             SELECT key_id, coalesce(partner_key, ''), created_at / 86400000, count(*) FROM customers
             WHERE key_id = ?1 GROUP BY 1, 2, 3
             ON CONFLICT (key_id, partner_key, day) DO UPDATE SET signups = excluded.signups",
            [key_id],
        )?;
        tx.execute("DELETE FROM partner_revenue WHERE key_id = ?1", [key_id])?;
        tx.execute(
            "INSERT INTO partner_revenue (key_id, partner_key, currency, amount)
             SELECT t.key_id, c.partner_key, t.currency, sum(t.amount)
             FROM transactions t JOIN customers c ON c.id = t.customer_id
             WHERE t.key_id = ?1 AND c.partner_key IS NOT NULL AND t.reversed_at IS NULL GROUP BY 1, 2, 3",
            [key_id],
        )?;
        Ok(())
    })
}
