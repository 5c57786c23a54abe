//! Benchmark fixtures: fills the event log with synthetic clicks (random
//! 128-bit ids, as browsers make them) so ingest can be measured on a large
//! database. Not used by the server.

use super::Store;
use anyhow::Result;
use rusqlite::params;

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
            tx.pragma_update(None, "cache_size", -1_000_000)?;
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
