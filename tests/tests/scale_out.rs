//! Several collectors on one PostgreSQL, as a load balancer spreads a
//! merchant's traffic over them: events spread over three collectors with
//! one SIGKILLed are each stored once; a visitor's click and signups
//! arriving at different collectors at once make one customer with its
//! partner, and one payment one reward; a key changed or revoked through
//! the CLI is applied by every collector at once; PostgreSQL restarted
//! under load makes collectors answer 503 and not ready, then recover by
//! themselves, losing nothing acknowledged; outgoing webhooks made at any
//! collector are each delivered once.
//!
//! Always on PostgreSQL (a SQLite file has one collector), so the test
//! command runs this suite once, in its SQLite pass.

use e2e::http::{get, send, try_send, Api};
use e2e::postgres::{self, Cluster};
use e2e::Collector;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn signup(pk: &str, id: &str) -> String {
    json!({"pk": pk, "events": [{"id": id, "type": "signup", "ts": 0, "email": format!("{id}@example.com")}]})
        .to_string()
}

/// Posts a batch of events as the snippet does; the answer's status and
/// JSON, or None when no answer came (the collector is down).
async fn post(url: &str, body: String) -> Option<(u16, Value)> {
    let answer = try_send(
        "POST",
        &format!("{url}/v1/events"),
        &[("content-type", "text/plain;charset=UTF-8")],
        body,
    )
    .await?;
    Some((
        answer.status.as_u16(),
        serde_json::from_slice(&answer.body).unwrap_or_default(),
    ))
}

/// Whether the answer acknowledges the batch's one event as stored.
fn stored(answer: &Option<(u16, Value)>) -> bool {
    matches!(answer, Some((200, body)) if ["accepted", "duplicate"].contains(&body["results"][0]["status"].as_str().unwrap_or("")))
}

/// How many times each event id is stored.
fn stored_ids(c: &Collector) -> HashMap<String, usize> {
    c.texts("SELECT event_id FROM events")
        .into_iter()
        .fold(HashMap::new(), |mut n, id| {
            *n.entry(id).or_default() += 1;
            n
        })
}

/// Polls `check` until it holds, for at most `bound`; how long it took.
async fn within(bound: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spread_over_three_collectors_are_stored_once_with_one_killed() {
    const SENDERS: usize = 12;
    const EACH: usize = 100;
    let a = Collector::start_on(&postgres::database());
    let b = a.another();
    let mut c = a.another();
    let urls: Arc<[String]> = [a.url.clone(), b.url.clone(), c.url.clone()].into();
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (urls, pk, acks) = (urls.clone(), a.public_key.clone(), acks.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..EACH {
                let id = format!("s{sender}e{i}");
                // Round robin, as a load balancer; a request that gets no
                // acknowledgement is sent again to the next collector, as
                // the snippet retries.
                let mut attempt = 0;
                while !stored(&post(&urls[(sender + i + attempt) % urls.len()], signup(&pk, &id)).await) {
                    attempt += 1;
                    assert!(attempt < 30, "{id} was never acknowledged");
                }
                let _ = acks.send(id);
            }
        }));
    }
    drop(acks);
    let mut ids = Vec::new();
    while ids.len() < SENDERS * EACH / 4 {
        ids.push(acked.recv().await.expect("senders stopped early"));
    }
    // Killed with requests in flight on it.
    c.kill();
    while let Some(id) = acked.recv().await {
        ids.push(id);
    }
    for sender in senders {
        sender.await.expect("a sender failed");
    }
    assert_eq!(ids.len(), SENDERS * EACH);
    let stored = stored_ids(&a);
    let once = ids.iter().filter(|id| stored.get(*id) == Some(&1)).count();
    println!(
        "three collectors, one SIGKILLed: {} acknowledged, {once} stored once, {} rows",
        ids.len(),
        stored.values().sum::<usize>()
    );
    assert_eq!(once, ids.len(), "an acknowledged event is missing or stored twice");
    assert_eq!(stored.values().sum::<usize>(), ids.len(), "rows no one sent");
    assert_eq!(a.count(e2e::count::CUSTOMERS), (SENDERS * EACH) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_and_two_signups_at_three_collectors_at_once_make_one_customer_with_its_partner() {
    const VISITORS: usize = 40;
    let a = Collector::start_on(&postgres::database());
    let (b, c) = (a.another(), a.another());
    // A live key (test keys earn no rewards), with its partner.
    let (pk, sk) = a.create_key(&["--mode", "live", "--name", "shop"]);
    a.cli(&[
        "partners",
        "add",
        &pk,
        "--email",
        "alice@example.com",
        "--partner-key",
        "alice",
    ]);
    for v in 0..VISITORS {
        let xid = format!("x{v}");
        let fingerprint = format!("{v:016x}");
        let click = json!({"pk": pk, "events": [{"id": format!("c{v}"), "type": "click", "ts": 0,
            "partner_key": "alice", "xid": xid, "fingerprint": fingerprint}]});
        let signup = |id: &str| {
            json!({"pk": pk, "events": [{"id": id, "type": "signup", "ts": 0, "customer_key": format!("cus{v}"),
                "email": format!("v{v}@example.com"), "partner_key": "alice", "xid": xid, "fingerprint": fingerprint}]})
            .to_string()
        };
        let (clicked, first, second) = tokio::join!(
            post(&a.url, click.to_string()),
            post(&b.url, signup(&format!("s{v}a"))),
            post(&c.url, signup(&format!("s{v}b"))),
        );
        for answer in [&clicked, &first, &second] {
            assert!(matches!(answer, Some((200, _))), "{answer:?}");
        }
        // One signup made the customer, the other found it made.
        let mut outcomes = [&first, &second].map(|a| a.as_ref().unwrap().1["results"][0]["status"].clone());
        outcomes.sort_by_key(|s| s.to_string());
        assert_eq!(
            outcomes,
            [json!("accepted"), json!("already_attributed")],
            "visitor {v}"
        );
    }
    assert_eq!(a.count(e2e::count::CUSTOMERS), VISITORS as i64);
    assert_eq!(
        a.count("SELECT count(*) FROM customers WHERE partner_key = 'alice'"),
        VISITORS as i64,
        "a customer lost its partner"
    );
    assert_eq!(a.count(e2e::count::SIGNUPS), 2 * VISITORS as i64);
    assert_eq!(
        a.count("SELECT CAST(sum(signups) AS BIGINT) FROM daily"),
        VISITORS as i64,
        "the chart counts each customer once"
    );
    assert_eq!(
        a.count("SELECT CAST(sum(clicks) AS BIGINT) FROM daily"),
        VISITORS as i64
    );

    // One payment sent to two collectors at once: one transaction, one reward.
    let api = |c: &Collector| Api::new(&c.url, &pk, &sk);
    let (on_a, on_b, on_c) = (api(&a), api(&b), api(&c));
    let offer = json!({"key": "share", "kind": "percent", "percent": 20});
    assert_eq!(on_a.call("POST", "offers", offer).await.status, 200);
    for v in 0..VISITORS {
        let payment =
            json!({"key": format!("t{v}"), "customer_key": format!("cus{v}"), "amount": 10_000, "currency": "usd"});
        let (first, second) = tokio::join!(
            on_b.call("POST", "transactions", payment.clone()),
            on_c.call("POST", "transactions", payment.clone()),
        );
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses[0], 200, "{statuses:?}");
        assert!([200, 409].contains(&statuses[1]), "{statuses:?}");
    }
    assert_eq!(a.count("SELECT count(*) FROM transactions"), VISITORS as i64);
    assert_eq!(a.count("SELECT count(*) FROM rewards"), VISITORS as i64);
    assert_eq!(
        a.count("SELECT count(*) FROM rewards WHERE partner_key = 'alice' AND amount = 2000"),
        VISITORS as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changed_or_revoked_through_the_cli_is_applied_by_every_collector_at_once() {
    // The key cache keeps a key 30 s; a change must reach the collectors
    // that cached it well before, by PostgreSQL's notifications.
    const BOUND: Duration = Duration::from_secs(5);
    let a = Collector::start_on(&postgres::database());
    let others = [a.another(), a.another()];
    let pk = a.public_key.clone();
    let from = |origin: &'static str, url: String, n: u32| {
        let body = signup(
            &pk,
            &format!("{}-{n}", origin.trim_start_matches("https://").replace('.', "-")),
        );
        async move {
            let headers = [("content-type", "text/plain;charset=UTF-8"), ("origin", origin)];
            send("POST", &format!("{url}/v1/events"), &headers, body)
                .await
                .status
                .as_u16()
        }
    };
    a.cli(&["keys", "set", &pk, "--origin", "https://one.example"]);
    for c in &others {
        // Looked up, and cached, by both.
        assert_eq!(from("https://one.example", c.url.clone(), 0).await, 200);
        assert_eq!(from("https://two.example", c.url.clone(), 0).await, 403);
    }
    // Each change, made through the CLI, must reach both within the bound.
    let applied = async |what: &str, origin: &'static str, want: u16| {
        for c in &others {
            let mut n = 0;
            let took = within(BOUND, what, async || {
                n += 1;
                from(origin, c.url.clone(), n).await == want
            })
            .await;
            println!("{what} applied by another collector after {took:?}");
        }
    };
    a.cli(&["keys", "set", &pk, "--origin", "https://two.example"]);
    applied("a key's new origin", "https://two.example", 200).await;
    for c in &others {
        assert_eq!(from("https://one.example", c.url.clone(), 0).await, 403);
    }
    a.cli(&["keys", "revoke", &pk]);
    applied("a key's revocation", "https://two.example", 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_under_load_makes_collectors_unready_then_they_recover_losing_nothing() {
    const SENDERS: usize = 8;
    let cluster = Cluster::start();
    let a = Collector::start_on(&cluster.database());
    let b = a.another();
    let urls: Arc<[String]> = [a.url.clone(), b.url.clone()].into();
    let sending = Arc::new(AtomicBool::new(true));
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (urls, pk, acks, sending) = (urls.clone(), a.public_key.clone(), acks.clone(), sending.clone());
        senders.push(tokio::spawn(async move {
            let mut i = 0;
            let mut refused = 0;
            while sending.load(Ordering::Relaxed) {
                let id = format!("s{sender}e{i}");
                let mut attempt = 0;
                // Sent until acknowledged (the snippet keeps it meanwhile).
                loop {
                    let answer = post(&urls[(sender + attempt) % urls.len()], signup(&pk, &id)).await;
                    if stored(&answer) {
                        break;
                    }
                    assert!(
                        matches!(answer, Some((503, _))),
                        "not a 503 while the database is away: {answer:?}"
                    );
                    refused += 1;
                    attempt += 1;
                }
                let _ = acks.send(id);
                i += 1;
            }
            refused
        }));
    }
    drop(acks);
    let mut ids = Vec::new();
    let mut take = async |ids: &mut Vec<String>, n: usize| {
        for _ in 0..n {
            ids.push(acked.recv().await.expect("senders stopped early"));
        }
    };
    take(&mut ids, 200).await;
    cluster.stop();
    let ready = |url: String| async move { get(&format!("{url}/readyz")).await.status.as_u16() };
    for url in urls.iter() {
        within(
            Duration::from_secs(30),
            "not ready while PostgreSQL is down",
            async || ready(url.clone()).await == 503,
        )
        .await;
    }
    cluster.resume();
    let recovered = Instant::now();
    for url in urls.iter() {
        within(Duration::from_secs(30), "ready again", async || {
            ready(url.clone()).await == 200
        })
        .await;
    }
    println!("ready again {:?} after PostgreSQL restarted", recovered.elapsed());
    take(&mut ids, 200).await;
    sending.store(false, Ordering::Relaxed);
    while let Some(id) = acked.recv().await {
        ids.push(id);
    }
    let mut refused = 0;
    for sender in senders {
        refused += sender.await.expect("a sender failed");
    }
    let stored = stored_ids(&a);
    let once = ids.iter().filter(|id| stored.get(*id) == Some(&1)).count();
    println!(
        "PostgreSQL restarted under load: {} acknowledged, {once} stored once, {refused} answers 503",
        ids.len()
    );
    assert!(refused > 0, "no request met the database away");
    assert_eq!(once, ids.len(), "an acknowledged event is missing or stored twice");
}

/// Runs the collector's CLI on `location`; its output, or the error it printed.
fn collector(location: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(e2e::collector::binary())
        .args(["--db", location])
        .args(args)
        .output()
        .expect("run collector");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Every table's row count, through the CLI-independent readers.
fn counts(c: &Collector) -> Vec<(String, i64)> {
    let tables = [
        "keys",
        "groups",
        "partners",
        "customers",
        "events",
        "transactions",
        "offers",
        "rewards",
        "daily",
        "partner_revenue",
    ];
    tables
        .iter()
        .map(|t| (t.to_string(), c.count(&format!("SELECT count(*) FROM {t}"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_filled_install_to_postgresql_and_back_and_it_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("growsumo.db").display().to_string();
    // An install: a live and test key pair, an offer, payments that earned
    // rewards (through the API), and the fill command's clicks and customers.
    let source = Collector::start_on(&sqlite);
    let created = collector(&sqlite, &["keys", "create", "--pair", "--name", "shop"]).unwrap();
    let field = |label: &str, nth: usize| {
        created
            .lines()
            .filter_map(|l| l.strip_prefix(label))
            .nth(nth)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let (pk, sk) = (field("public key: ", 1), field("secret key: ", 1));
    source.cli(&[
        "partners",
        "add",
        &pk,
        "--email",
        "alice@example.com",
        "--partner-key",
        "alice",
    ]);
    source.cli(&[
        "offers",
        "set",
        &pk,
        "--key",
        "share",
        "--kind",
        "percent",
        "--percent",
        "25",
    ]);
    let api = Api::new(&source.url, &pk, &sk);
    for n in 0..5 {
        let customer =
            json!({"customer_key": format!("c{n}"), "email": format!("c{n}@example.com"), "partner_key": "alice"});
        assert_eq!(api.call("POST", "customers", customer).await.status, 200);
        let payment =
            json!({"key": format!("t{n}"), "customer_key": format!("c{n}"), "amount": 4_000, "currency": "usd"});
        assert_eq!(api.call("POST", "transactions", payment).await.status, 200);
    }
    collector(
        &sqlite,
        &["fill", "--events", "12000", "--customers", "1500", "--public-key", &pk],
    )
    .unwrap();
    let before = counts(&source);
    drop(source);

    let postgres = postgres::database();
    let moved = collector(&postgres, &["migrate", "--from", &sqlite, "--to", &postgres]).unwrap();
    println!("{moved}");
    assert!(moved.contains("every table's count checked"), "{moved}");
    // Into a store that holds data: refused, and nothing changes.
    let again = collector(&postgres, &["migrate", "--from", &sqlite, "--to", &postgres]).unwrap_err();
    assert!(again.contains("already holds data"), "{again}");

    let on_postgres = Collector::start_on(&postgres);
    assert_eq!(counts(&on_postgres), before);
    assert_eq!(
        on_postgres.count("SELECT count(*) FROM keys WHERE pair_id IS NOT NULL"),
        1,
        "the pair"
    );
    // It serves the moved data, and new rows get ids past the moved ones.
    let api = Api::new(&on_postgres.url, &pk, &sk);
    let rewards = api.call("GET", "rewards?limit=250", Value::Null).await.json()["data"]["items"].clone();
    assert_eq!(rewards.as_array().map(Vec::len), Some(5), "{rewards}");
    let customer = json!({"customer_key": "new", "email": "new@example.com", "partner_key": "alice"});
    assert_eq!(api.call("POST", "customers", customer).await.status, 200);
    let payment = json!({"key": "t-new", "customer_key": "new", "amount": 4_000, "currency": "usd"});
    assert_eq!(api.call("POST", "transactions", payment).await.status, 200);
    assert_eq!(on_postgres.count("SELECT count(*) FROM rewards"), 6);
    let after = counts(&on_postgres);
    drop(on_postgres);

    // And back to a SQLite file.
    let back = dir.path().join("back.db").display().to_string();
    collector(&back, &["migrate", "--from", &postgres, "--to", &back]).unwrap();
    assert_eq!(counts(&Collector::start_on(&back)), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_reach_postgresql_over_tls_and_check_its_certificate_as_sslmode_asks() {
    let cluster = Cluster::start_tls();
    let plain = cluster.database();
    // The certificate names `localhost`, not 127.0.0.1.
    let by_name = plain.replace("127.0.0.1", "localhost");
    let ca = cluster.ca().display().to_string();
    let verified = format!("{by_name}?sslmode=verify-full&sslrootcert={ca}");
    let c = Collector::start_on(&verified);
    let tls_sessions = postgres::blocking(|| {
        let mut admin = ::postgres::Client::connect(&plain, ::postgres::NoTls).unwrap();
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
                 WHERE ssl AND datname = current_database()",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0)
    });
    assert!(tls_sessions > 0, "the collector's connections are not encrypted");
    let answer = post(&c.url, signup(&c.public_key, "over-tls")).await;
    assert!(stored(&answer), "{answer:?}");
    drop(c);

    // A certificate no trusted root vouches for, or that names another
    // host: refused, saying why.
    for (url, why) in [
        (
            format!("{by_name}?sslmode=verify-full"),
            "a certificate no root vouches for",
        ),
        (
            format!("{plain}?sslmode=verify-full&sslrootcert={ca}"),
            "a certificate for another name",
        ),
    ] {
        let refused = collector(&url, &["keys", "list"]).unwrap_err();
        assert!(refused.to_lowercase().contains("certificate"), "{why}: {refused}");
    }
    // `require` encrypts without checking, as libpq's does.
    collector(&format!("{plain}?sslmode=require"), &["keys", "list"]).unwrap();
    let refused = collector(&format!("{plain}?sslmode=verify-ca"), &["keys", "list"]).unwrap_err();
    assert!(refused.contains("verify-full"), "{refused}");
}

/// Three collectors on one database, each with its dispatcher: messages
/// made at any of them are each delivered once (a claim holds a delivery
/// for one dispatcher), none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_webhooks_made_at_three_collectors_are_each_delivered_once() {
    const SIGNUPS: usize = 300;
    let a = Collector::start_on_with(&postgres::database(), &["--allow-private-webhook-targets"]);
    let (b, c) = (a.another(), a.another());
    let receiver = e2e::receiver::Receiver::start().await;
    let api = Api::new(
        &a.url,
        &a.public_key,
        a.secret_key.as_deref().expect("the demo key's secret"),
    );
    let endpoint = api
        .call(
            "POST",
            "webhooks",
            json!({"url": receiver.url, "events": ["customer.created"]}),
        )
        .await;
    assert_eq!(endpoint.status, 200, "{}", String::from_utf8_lossy(&endpoint.body));
    let urls = [&a.url, &b.url, &c.url];
    for n in 0..SIGNUPS {
        let answer = post(urls[n % 3], signup(&a.public_key, &format!("w{n}"))).await;
        assert!(stored(&answer), "{answer:?}");
    }
    let received = receiver.wait_for(SIGNUPS).await;
    within(Duration::from_secs(30), "every attempt recorded", async || {
        a.count("SELECT count(*) FROM delivery_attempts") >= SIGNUPS as i64
    })
    .await;
    let ids: std::collections::HashSet<String> = received.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), SIGNUPS);
    assert_eq!(receiver.received().len(), SIGNUPS, "a message was delivered twice");
    assert_eq!(a.count("SELECT count(*) FROM delivery_attempts"), SIGNUPS as i64);
    assert_eq!(
        a.count("SELECT count(*) FROM deliveries WHERE status = 'delivered'"),
        SIGNUPS as i64
    );
}
