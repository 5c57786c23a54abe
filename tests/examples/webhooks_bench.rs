//! `cargo xtask bench webhooks`: outgoing webhooks from a real collector
//! (release build, `COLLECTOR_BIN`) to a real receiver on loopback, on
//! SQLite, or PostgreSQL with `GROWSUMO_TEST_DB=postgres`.
//!
//! - Latency: one customer made through the merchant API every 20 ms
//!   (nothing queued behind another), `LATENCY_CHANGES` times; from sending
//!   the API call that makes the change to the receiver having read the
//!   message's body: p50, p99 and the largest.
//! - Throughput: `BURST` browser signups posted in batches of 100 (one
//!   customer, so one `customer.created` message, each), to one endpoint
//!   that answers at once: messages per second from the first post to the
//!   last message received, and the time from the last post committed to
//!   the last message received; once on the new database's tables, once
//!   more after `ANALYZE` (a database in use).

use e2e::http::{post_events, Api};
use e2e::receiver::{verify, Receiver};
use e2e::Collector;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LATENCY_CHANGES: usize = 300;
const BURST: usize = 10_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let backend = if e2e::collector::on_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let c = Collector::start_with_key_and(
        &["--mode", "test"],
        &[
            "--allow-private-webhook-targets",
            "--key-events-per-second",
            "0",
            "--client-requests-per-second",
            "0",
        ],
    );
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let receiver = Receiver::start().await;
    let endpoint = api
        .call(
            "POST",
            "webhooks",
            json!({"url": receiver.url, "events": ["customer.created"]}),
        )
        .await
        .json();
    let secret = endpoint["data"]["secret"].as_str().unwrap().to_owned();

    let mut sent = HashMap::new();
    for n in 0..LATENCY_CHANGES {
        let email = format!("l{n}@example.com");
        sent.insert(email.clone(), Instant::now());
        let answer = api
            .call("POST", "customers", json!({"customer_key": email, "email": email}))
            .await;
        assert_eq!(answer.status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = receiver
        .wait_until(Duration::from_secs(60), |r| r.len() >= LATENCY_CHANGES)
        .await;
    let mut latency: Vec<f64> = received
        .iter()
        .map(|r| {
            verify(&secret, r).expect("signed");
            let email = r.json()["data"]["email"].as_str().unwrap().to_owned();
            r.at.duration_since(sent[&email]).as_secs_f64() * 1000.0
        })
        .collect();
    latency.sort_by(f64::total_cmp);

    println!("outgoing webhooks on {backend} (release collector, receiver on loopback)");
    println!(
        "  latency, change to receipt ({LATENCY_CHANGES} changes, one per 20 ms): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        latency[latency.len() - 1]
    );
    // A new database's tables have no statistics yet: PostgreSQL plans
    // their first statements for empty tables until autovacuum analyzes
    // them. The second burst runs as a database in use does.
    for (round, label) in [(1, "new tables"), (2, "after ANALYZE")] {
        if round == 2 {
            c.execute("ANALYZE");
        }
        let (posted, took) = burst(&c, &receiver, round).await;
        println!(
            "  throughput ({label}), {BURST} signups posted in {:.2} s: {BURST} messages received in {:.2} s = \
             {:.0} messages/s; last received {:.2} s after the last post",
            posted.as_secs_f64(),
            took.as_secs_f64(),
            BURST as f64 / took.as_secs_f64(),
            (took - posted).as_secs_f64()
        );
    }
}

/// Posts `BURST` signups (batches of 100) and waits for their messages;
/// returns the time posting took and the time until the last message.
async fn burst(c: &Collector, receiver: &Receiver, round: usize) -> (Duration, Duration) {
    let before = receiver.received().len();
    let started = Instant::now();
    for batch in 0..BURST / 100 {
        let events: Vec<_> = (0..100)
            .map(|i| {
                let id = format!("r{round}b{batch}-{i}");
                json!({"id": id, "type": "signup", "email": format!("{id}@example.com")})
            })
            .collect();
        let answer = post_events(&c.url, json!({"pk": c.public_key, "events": events}).to_string()).await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    }
    let posted = started.elapsed();
    let all = receiver
        .wait_until(Duration::from_secs(600), |r| r.len() >= before + BURST)
        .await;
    let last = all.iter().map(|r| r.at).max().unwrap();
    (posted, last.duration_since(started))
}
