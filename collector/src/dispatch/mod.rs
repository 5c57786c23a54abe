//! The outgoing webhooks' dispatcher: delivers what `store::outbox` holds,
//! at least once.
//!
//! One loop per collector: it records the attempts that finished and claims
//! the deliveries now due in one write transaction, then posts each claimed
//! delivery in its own task (`send`). An endpoint has at most
//! `PER_ENDPOINT` attempts in flight, so a slow or dead one holds only its
//! own; the loop wakes when a commit in this process wrote a message, when
//! an attempt ends, and every `POLL` (messages other processes wrote,
//! retries that came due). A claim is a lease: a collector that dies with
//! attempts in flight leaves them due again after `LEASE_MS`, and another
//! collector (or this one, restarted) sends them: at least once, never
//! lost; receivers deduplicate by `webhook-id`.

pub mod send;
pub mod target;

use crate::store::outbox::{self, Tried};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most attempts in flight to one endpoint.
pub const PER_ENDPOINT: usize = 16;
/// Most attempts in flight in all: room for a few keys' worth of dead
/// endpoints (20 each, each holding 16 for up to 15 s) beside the rest.
pub const IN_FLIGHT: usize = 1024;
/// How long a claim holds a delivery: past the attempt's timeout.
const LEASE_MS: i64 = 60_000;
/// How long the loop waits for more attempts to end before recording.
const LINGER: Duration = Duration::from_millis(2);
/// How often the loop looks without being woken.
const POLL: Duration = Duration::from_secs(1);
/// The pause between two of `prune`'s transactions.
const PRUNE_PAUSE: Duration = Duration::from_millis(50);
/// How often delivered and failed messages past their keeping are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What the loop and its attempts share.
#[derive(Default)]
struct Flight {
    /// Attempts in flight, per endpoint.
    per_endpoint: Mutex<HashMap<i64, usize>>,
    /// Attempts ended, not recorded yet: (delivery, how).
    ended: Mutex<Vec<(i64, Tried)>>,
}

/// Runs the dispatcher (until its task is aborted: attempts in flight then
/// are abandoned, and their deliveries are due again once their lease ends).
pub async fn run(store: Store, sender: send::Sender) {
    let flight = Arc::new(Flight::default());
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        let ended = std::mem::take(&mut *flight.ended.lock().expect("ended"));
        // Idle (nothing ended, nothing due): only a read, so collectors
        // sharing PostgreSQL take no write lock every second for nothing.
        let idle = ended.is_empty() && {
            let (reader, now) = (store.clone(), store.clock().now_ms());
            let due = tokio::task::spawn_blocking(move || reader.read(|db| outbox::anything_due(db, now))).await;
            matches!(due, Ok(Ok(false)))
        };
        let busy = flight.per_endpoint.lock().expect("in flight").clone();
        let writer = store.clone();
        let claimed = match idle {
            true => Ok(Ok(Vec::new())),
            false => {
                tokio::task::spawn_blocking(move || {
                    writer.write_quietly(|tx, now| {
                        outbox::record_attempts(tx, &ended, now)?;
                        let budget = IN_FLIGHT.saturating_sub(busy.values().sum());
                        outbox::claim(tx, now, LEASE_MS, (budget, PER_ENDPOINT), |endpoint| {
                            busy.get(&endpoint).copied().unwrap_or(0)
                        })
                    })
                })
                .await
            }
        };
        let claimed = match claimed {
            Ok(Ok(claimed)) => claimed,
            // The ended attempts are not recorded: their deliveries are
            // sent again once their lease ends.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "outgoing webhooks: cannot record or claim deliveries");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "outgoing webhooks: recording or claiming panicked");
                Vec::new()
            }
        };
        for due in claimed {
            *flight
                .per_endpoint
                .lock()
                .expect("in flight")
                .entry(due.endpoint_id)
                .or_default() += 1;
            let (sender, flight, woken) = (sender.clone(), flight.clone(), store.outbox().clone());
            tokio::spawn(async move {
                // `webhook-timestamp` is the system's time, never the
                // tests' shifted clock: receivers compare it with their own.
                let tried = sender.attempt(&due, crate::store::now_ms() / 1000).await;
                tracing::debug!(delivery = due.delivery_id, status = ?tried.status, "outgoing webhook attempt");
                flight.ended.lock().expect("ended").push((due.delivery_id, tried));
                let mut per_endpoint = flight.per_endpoint.lock().expect("in flight");
                if let Some(n) = per_endpoint.get_mut(&due.endpoint_id) {
                    *n -= 1;
                    if *n == 0 {
                        per_endpoint.remove(&due.endpoint_id);
                    }
                }
                woken.notify_one();
            });
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let pruner = store.clone();
            // A few hundred at a time, each in its own short transaction,
            // paced so that events get the write lock in between, until
            // none is left.
            tokio::task::spawn_blocking(move || loop {
                match pruner.write_quietly(outbox::prune) {
                    Ok(deleted) if deleted == outbox::PRUNE_AT_ONCE => std::thread::sleep(PRUNE_PAUSE),
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "outgoing webhooks: cannot delete old messages");
                        break;
                    }
                }
            });
        }
        tokio::select! {
            _ = store.outbox().notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        // While attempts are in flight, the ones ending within `LINGER` are
        // recorded together: one write transaction (which holds the write
        // lock every collector's events wait for) for many attempts.
        if !flight.per_endpoint.lock().expect("in flight").is_empty() {
            tokio::time::sleep(LINGER).await;
        }
    }
}
