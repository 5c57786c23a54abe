//! A regression suite of attacks on a real collector process over real
//! loopback sockets: one test per finding of the hostile-traffic review
//! that is fixed, each asserting the fixed behaviour and that legitimate
//! traffic is still served. Every loop is bounded in count and time.

use e2e::http::{get, post_events, send, send_from};
use e2e::Collector;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A hostile client's address: another client than the legitimate one.
fn hostile() -> std::net::IpAddr {
    "127.0.3.1".parse().unwrap()
}

/// Opens a connection from `from`, sends a keep-alive `GET /healthz` and
/// returns the stream if an answer came (None: refused or closed at once).
fn held_connection(addr: &str, from: std::net::IpAddr) -> Option<TcpStream> {
    let socket = socket2_connect(addr, from)?;
    let mut stream = socket;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n").ok()?;
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).ok()?;
    answer.starts_with(b"HTTP/1.1 200").then_some(stream)
}

/// A TCP connection to `addr` bound to the local address `from`.
fn socket2_connect(addr: &str, from: std::net::IpAddr) -> Option<TcpStream> {
    let target: std::net::SocketAddr = addr.parse().ok()?;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(std::net::SocketAddr::new(from, 0)).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let stream = runtime.block_on(socket.connect(target)).ok()?;
    let std = stream.into_std().ok()?;
    std.set_nonblocking(false).ok()?;
    Some(std)
}

/// One client holding as many keep-alive connections as it can gets at
/// most its per-client share; everyone else is still served meanwhile.
/// (Before: 4,096 connections from one client locked everyone out.)
#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let c = Collector::start_with(&["--max-connections-per-client", "16"]);
    let addr = c.url.trim_start_matches("http://").to_owned();
    let hostile_addr = addr.clone();
    let held = tokio::task::spawn_blocking(move || {
        (0..64)
            .filter_map(|_| held_connection(&hostile_addr, hostile()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(held.len(), 16, "the hostile client holds its share only");
    let health = tokio::time::timeout(Duration::from_secs(5), get(&format!("{}/healthz", c.url)))
        .await
        .expect("healthz answers while the connections are held");
    assert_eq!(health.status, 200);
    let signup = json!({"pk": c.public_key, "events": [{"id": "legit-1", "type": "signup", "ts": 0, "email": "legit@example.com"}]});
    let answer = tokio::time::timeout(Duration::from_secs(5), post_events(&c.url, signup.to_string()))
        .await
        .expect("a signup answers while the connections are held");
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    drop(held);
    // Closed connections give the client its share back, once the server has
    // seen them close (the closes race the next connection: polled, bounded).
    let again = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if held_connection(&addr, hostile()).is_some() {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(
        again,
        "the client's share came back within 5 s of closing its connections"
    );
}

/// `serve` never starts an empty database where one was expected.
#[test]
fn serve_refuses_a_missing_database_unless_told_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lost.db");
    let out = std::process::Command::new(e2e::collector::binary())
        .arg("--db")
        .arg(&db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no database at") && stderr.contains("--create"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing was created");
}

/// Anyone may call `/readyz`, so its probe write runs at most once every
/// 5 s: callers in between share its result. (Before: each call wrote and
/// committed, 1000 a second, fighting the writer for its lock.)
#[tokio::test]
async fn readiness_probes_cannot_be_multiplied() {
    let c = Collector::start();
    let url = format!("{}/readyz", c.url);
    assert_eq!(get(&url).await.status, 200);
    let probed: i64 = c.count("SELECT at FROM health");
    for _ in 0..20 {
        assert_eq!(get(&url).await.status, 200);
    }
    assert_eq!(
        c.count("SELECT at FROM health"),
        probed,
        "no new probe write within 5 s"
    );
}

/// A "public key" that cannot be one is refused before any lookup: a
/// made-up 64 KB key must not fill the key cache (6,000 of them took 400 MB).
#[tokio::test]
async fn impossible_public_keys_are_refused_unlooked() {
    let c = Collector::start();
    let huge = "a".repeat(10_000);
    let answer = get(&format!("{}/v1/config?pk={huge}", c.url)).await;
    assert_eq!(
        (answer.status.as_u16(), answer.json()["field"].clone()),
        (401, json!("pk"))
    );
    assert!(answer.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("not a public key"));
}

/// CSV cells a spreadsheet would run as formulas are exported as text.
#[tokio::test]
async fn exported_csv_cells_never_start_a_formula() {
    let c = Collector::start();
    let names = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+cmd|' /C calc'!A0",
        "@SUM(1)",
    ];
    let events: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": format!("f{i}"), "type": "signup", "ts": 0, "email": format!("f{i}@example.com"), "name": name}))
        .collect();
    let answer = post_events(&c.url, json!({"pk": c.public_key, "events": events}).to_string()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let csv = c.cli(&["export", &c.public_key, "customers"]);
    for name in names {
        assert!(
            csv.contains(&format!("'{}", name.replace('"', "\"\""))),
            "{name} in {csv}"
        );
    }
}

/// A browser's `dropped` count of 2^64-1 saturates the counter, not wraps it.
#[tokio::test]
async fn reported_drops_saturate() {
    let c = Collector::start();
    for id in ["d1", "d2"] {
        let batch = json!({"pk": c.public_key, "dropped": u64::MAX, "events": [{"id": id, "type": "click", "ts": 0, "partner_key": "alice"}]});
        assert_eq!(post_events(&c.url, batch.to_string()).await.status, 200);
    }
    let metrics = String::from_utf8(get(&format!("{}/metrics", c.url)).await.body.to_vec()).unwrap();
    assert!(
        metrics.contains(&format!("growsumo_outbox_dropped_total {}", u64::MAX)),
        "{metrics}"
    );
}

/// `/metrics` is not public: a request through the reverse proxy (or from
/// another host) needs the metrics token; a local agent reads it directly.
#[tokio::test]
async fn metrics_need_the_token_unless_read_locally() {
    let c = Collector::start_with(&["--trusted-proxy", "127.0.0.1", "--metrics-token", "s3cret-metrics"]);
    let url = format!("{}/metrics", c.url);
    let proxied = [("x-forwarded-for", "203.0.113.9")];
    let refused = send("GET", &url, &proxied, "").await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["field"].clone()),
        (401, json!("authorization"))
    );
    let wrong = send("GET", &url, &[proxied[0], ("authorization", "Bearer guess")], "").await;
    assert_eq!(wrong.status, 401);
    let scraper = send(
        "GET",
        &url,
        &[proxied[0], ("authorization", "Bearer s3cret-metrics")],
        "",
    )
    .await;
    assert_eq!(scraper.status, 200);
    // Every request from the proxy's own address counts as proxied, with or
    // without forwarding headers; a local agent on another address reads it.
    assert_eq!(get(&url).await.status, 401, "the proxy's address");
    let local = Some("127.0.0.2".parse().unwrap());
    assert_eq!(
        send_from(local, "GET", &url, &[], "").await.status,
        200,
        "a local agent"
    );
}

/// Request ids say nothing about the process (they held its pid).
#[tokio::test]
async fn request_ids_reveal_nothing() {
    let c = Collector::start();
    let a = get(&format!("{}/healthz", c.url)).await.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let b = get(&format!("{}/healthz", c.url)).await.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!a.contains(&format!("{:x}", c.pid())), "{a}");
    for id in [&a, &b] {
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(a, b, "random, not a counter that tells the request volume");
}

/// A foreign page cannot sign a visitor into the attacker's key (login
/// CSRF); the dashboard's own form still signs in.
#[tokio::test]
async fn dashboard_sign_in_refuses_foreign_origins() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let form = format!("secret_key={}", c.secret_key.as_deref().unwrap());
    let url = format!("{}/dashboard/sign-in", c.url);
    let forged = send(
        "POST",
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "https://evil.example"),
        ],
        form.clone(),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.headers.get("set-cookie").is_none());
    // A foreign page with `Referrer-Policy: no-referrer` sends `Origin: null`;
    // its `Sec-Fetch-Site` still says cross-site.
    let hidden = send(
        "POST",
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ],
        form.clone(),
    )
    .await;
    assert_eq!(hidden.status, 403);
    // Without `Sec-Fetch-Site` (older browsers), `Origin: null` (a
    // sandboxed frame) is foreign too.
    let sandboxed = send(
        "POST",
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "null"),
        ],
        form.clone(),
    )
    .await;
    assert_eq!(sandboxed.status, 403);
    let host = c.url.trim_start_matches("http://").to_owned();
    let own = send(
        "POST",
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &format!("http://{host}")),
        ],
        form,
    )
    .await;
    assert_eq!(own.status, 303);
}

/// Clicks for made-up partner keys are counted in one bucket: a flood of
/// junk keys cannot grow the per-day counts (and slow the Partners page)
/// without bound. (Before: a row per junk key; 329 k junk clicks slowed
/// the Partners page from 0.8 ms to 151 ms.)
#[tokio::test]
async fn junk_partner_keys_share_one_daily_bucket() {
    let c = Collector::start();
    for batch in 0..5 {
        let events: Vec<_> = (0..100)
            .map(|i| json!({"id": format!("j{batch}-{i}"), "type": "click", "ts": 0, "partner_key": format!("junk-{batch}-{i}")}))
            .collect();
        let answer = post_events(&c.url, json!({"pk": c.public_key, "events": events}).to_string()).await;
        assert_eq!(answer.status, 200);
    }
    let real = json!({"pk": c.public_key, "events": [{"id": "a1", "type": "click", "ts": 0, "partner_key": "alice"}]});
    assert_eq!(post_events(&c.url, real.to_string()).await.status, 200);
    assert_eq!(
        c.count("SELECT count(*) FROM events WHERE type = 'click'"),
        501,
        "every click is kept"
    );
    assert_eq!(
        c.count("SELECT count(DISTINCT partner_key) FROM daily"),
        2,
        "alice, and one bucket"
    );
    assert_eq!(c.count("SELECT clicks FROM daily WHERE partner_key = '?'"), 500);
}

/// Keys with zero-width or right-to-left characters are refused, in events
/// and in the API: they would show as another partner's key.
#[tokio::test]
async fn invisible_characters_in_keys_are_refused() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let spoof = json!({"pk": c.public_key, "events": [
        {"id": "z1", "type": "click", "ts": 0, "partner_key": "ali\u{200B}ce"},
        {"id": "z2", "type": "signup", "ts": 0, "email": "z@example.com", "customer_key": "cus\u{202E}tomer"}
    ]});
    let answer = post_events(&c.url, spoof.to_string()).await.json();
    let fields: Vec<_> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].clone())
        .collect();
    assert_eq!(fields, [json!("partner_key"), json!("customer_key")], "{answer}");
    let api = e2e::http::Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let refused = api
        .call(
            "POST",
            "partnerships",
            json!({"partner_key": "bob\u{2066}", "email": "b@partners.example"}),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["field"].clone()),
        (400, json!("partner_key"))
    );
}

/// The API's router is strict: path parameters are percent-decoded (a key
/// `john doe` can be read, changed and deleted, not only created), extra
/// segments are no route (`DELETE …/tmp1/dry-run` reversed `tmp1`), an
/// unknown body field is a 400 naming it (not silently ignored), and a
/// method a resource lacks is a 405.
#[tokio::test]
async fn the_api_router_is_strict() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let api = e2e::http::Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    for (key, path) in [
        ("john doe", "john%20doe"),
        ("josé@exämple.de", "jos%C3%A9@ex%C3%A4mple.de"),
    ] {
        let created = api
            .call(
                "POST",
                "customers",
                json!({"customer_key": key, "email": "jd@example.com"}),
            )
            .await;
        assert_eq!(created.status, 200, "{:?}", created.json());
        let read = api
            .call("GET", &format!("customers/{path}"), serde_json::Value::Null)
            .await;
        assert_eq!(
            (read.status.as_u16(), read.json()["data"]["key"].clone()),
            (200, json!(key))
        );
        let changed = api
            .call("PATCH", &format!("customers/{path}"), json!({"name": "J. Doe"}))
            .await;
        assert_eq!(changed.json()["data"]["name"], "J. Doe");
        assert_eq!(
            api.call("DELETE", &format!("customers/{path}"), serde_json::Value::Null)
                .await
                .status,
            200
        );
    }
    api.call(
        "POST",
        "customers",
        json!({"customer_key": "ann", "email": "ann@example.com"}),
    )
    .await;
    let paid = api
        .call(
            "POST",
            "transactions",
            json!({"key": "tmp1", "customer_key": "ann", "amount": 100, "currency": "USD"}),
        )
        .await;
    assert_eq!(paid.status, 200, "{:?}", paid.json());
    let dry = api
        .call("DELETE", "transactions/tmp1/dry-run", serde_json::Value::Null)
        .await;
    assert_eq!((dry.status.as_u16(), dry.json()["field"].clone()), (404, json!("path")));
    let still = api
        .call("GET", "transactions/tmp1", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(still["data"]["reversed_at"], serde_json::Value::Null, "not reversed");
    let unknown = api
        .call("PATCH", "customers/ann", json!({"name": "Ann", "partner": "bob"}))
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.json()["field"].clone()),
        (400, json!("partner"))
    );
    let put = api.call("PUT", "customers/ann", json!({"name": "Ann"})).await;
    assert_eq!(
        (put.status.as_u16(), put.json()["field"].clone()),
        (405, json!("method"))
    );
}

/// One client sending requests too fast gets 429 with `Retry-After` (the
/// snippet retries after it) while another client is served; one key
/// receiving events too fast is held the same way.
#[tokio::test]
async fn fast_clients_and_keys_are_slowed_with_429() {
    let c = Collector::start_with(&["--client-requests-per-second", "5", "--key-events-per-second", "50"]);
    let hostile = Some(hostile());
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let answer = send_from(
            hostile,
            "GET",
            &format!("{}/v1/config?pk={}", c.url, c.public_key),
            &[],
            "",
        )
        .await;
        statuses.push(answer.status.as_u16());
        if answer.status == 429 {
            assert!(answer.headers.get("retry-after").is_some());
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(
        get(&format!("{}/v1/config?pk={}", c.url, c.public_key)).await.status,
        200,
        "another client"
    );
    assert_eq!(get(&format!("{}/healthz", c.url)).await.status, 200);
    // 50 a second, bursts of 100: a first full batch passes, the next waits.
    let batch = |from: usize| {
        let events: Vec<_> = (from..from + 100)
            .map(|i| json!({"id": format!("k{i}"), "type": "click", "ts": 0, "partner_key": "alice"}))
            .collect();
        json!({"pk": c.public_key, "events": events}).to_string()
    };
    assert_eq!(post_events(&c.url, batch(0)).await.status, 200);
    let flood = post_events(&c.url, batch(100)).await;
    assert_eq!(
        (flood.status.as_u16(), flood.json()["field"].clone()),
        (429, json!("pk"))
    );
    assert!(flood.headers.get("retry-after").is_some());
    assert_eq!(c.count("SELECT count(*) FROM events"), 100);
}

/// A collector started by `sh` with `limits` (e.g. `ulimit -n 128`) in
/// front; returns it and its URL once it listens.
fn start_limited(limits: &str, db: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{limits}; exec \"$0\" \"$@\""))
        .arg(e2e::collector::binary())
        .arg("--db")
        .arg(db)
        .args(["serve", "--create", "--demo", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(String::from))
        .expect("the collector listens");
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// Under a low open-file limit the connection cap stays below it (so
/// `accept` never runs out of descriptors and spins) and one client gets a
/// quarter of it. (Before: with 256 descriptors, accept failed in a loop:
/// both cores at 100%, 830 MB of logs in 15 s, health unanswered.)
#[tokio::test]
async fn a_low_file_limit_caps_connections_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start_limited("ulimit -n 128", &dir.path().join("g.db"));
    let addr = url.trim_start_matches("http://").to_owned();
    let hostile_addr = addr.clone();
    let held = tokio::task::spawn_blocking(move || {
        (0..200)
            .filter_map(|_| held_connection(&hostile_addr, hostile()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // 128 descriptors, 64 kept free: 64 connections, 16 for one client.
    assert_eq!(held.len(), 16);
    let health = tokio::time::timeout(Duration::from_secs(5), get(&format!("{url}/healthz"))).await;
    assert_eq!(health.expect("healthz answers").status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// A disk that refuses writes (a file-size limit standing in for a full
/// disk): commits fail, nothing unstored is acknowledged, and `/readyz`
/// says the database does not take writes. (Before: `/readyz` answered
/// "ready" while every commit failed.)
#[tokio::test]
async fn failing_commits_make_readiness_fail_and_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let (mut child, url) = start_limited("ulimit -f 2048", &db);
    let pk: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT public_key FROM keys WHERE name = 'demo'", [], |r| r.get(0))
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for batch in 0..200 {
        let events: Vec<_> = (0..100)
            .map(|i| {
                json!({"id": format!("b{batch}-{i}"), "type": "click", "ts": 0, "partner_key": "alice",
                            "url": format!("https://shop.example/{}", "x".repeat(400))})
            })
            .collect();
        let answer = post_events(&url, json!({"pk": pk, "events": events}).to_string()).await;
        match answer.status.as_u16() {
            200 => acknowledged.extend((0..100).map(|i| format!("b{batch}-{i}"))),
            503 => {
                refused += 1;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 1, "the 2 MiB file-size limit was reached");
    let ready = get(&format!("{url}/readyz")).await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()["field"].clone()),
        (503, json!("database"))
    );
    assert_eq!(get(&format!("{url}/healthz")).await.status, 200);
    let _ = child.kill();
    let _ = child.wait();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert!(
        stored >= acknowledged.len() as i64,
        "{stored} stored, {} acknowledged",
        acknowledged.len()
    );
}

/// Merchant API writes during an event flood wait for the write lock
/// instead of failing. (Before: 1 in 40 failed with 500 "database is
/// locked".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_during_an_event_flood_all_succeed() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let mut flood = Vec::new();
    for sender in 0..4 {
        let (url, pk) = (c.url.clone(), c.public_key.clone());
        flood.push(tokio::spawn(async move {
            for batch in 0..25 {
                let events: Vec<_> = (0..100)
                    .map(|i| json!({"id": format!("s{sender}b{batch}e{i}"), "type": "click", "ts": 0, "partner_key": "alice"}))
                    .collect();
                post_events(&url, json!({"pk": pk, "events": events}).to_string()).await;
            }
        }));
    }
    let api = e2e::http::Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let mut statuses = Vec::new();
    for i in 0..40 {
        let body =
            json!({"customer_key": format!("cus-{i}"), "email": format!("c{i}@example.com"), "partner_key": "alice"});
        statuses.push(api.call("POST", "customers", body).await.status.as_u16());
    }
    for sender in flood {
        sender.await.unwrap();
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// Reads one HTTP answer from `stream`: its head (lowercased) and body.
fn read_answer(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head)
}

/// Pipelined requests whose answers are never read do not hold a
/// connection (and its slot) forever: the write timeout drops it. (Before:
/// more than 25 s, megabytes queued.)
#[tokio::test]
async fn unread_answers_do_not_hold_a_connection() {
    let c = Collector::start_with(&["--write-timeout-ms", "300", "--max-connections-per-client", "1"]);
    let addr = c.url.trim_start_matches("http://").to_owned();
    let freed = tokio::task::spawn_blocking(move || {
        let mut stalled = socket2_connect(&addr, hostile()).expect("a connection");
        stalled.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let requests = b"GET /v1/ HTTP/1.1\r\nHost: c\r\n\r\n".repeat(2000);
        let _ = stalled.write_all(&requests); // blocks once the server stops reading
                                              // Its one slot is taken while the answers wait; once the write
                                              // timeout drops the connection, a new one is served.
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        loop {
            if held_connection(&addr, hostile()).is_some() {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(freed, "the stalled connection was dropped");
}

/// A keep-alive connection is closed once it is older than its maximum
/// age: a client cannot hold one forever with a request every few seconds.
#[tokio::test]
async fn keep_alive_connections_have_a_lifetime() {
    let c = Collector::start_with(&["--connection-max-age-s", "1"]);
    let addr = c.url.trim_start_matches("http://").to_owned();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut answers = 0;
        while std::time::Instant::now() < deadline {
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n").ok()?;
            let head = read_answer(&mut stream)?;
            answers += 1;
            if head.contains("connection: close") {
                return Some(answers);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    })
    .await
    .unwrap();
    assert!(closed.is_some_and(|n| n > 1), "kept, then closed: {closed:?}");
}
