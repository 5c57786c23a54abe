//! What only the SQLite backend has: its file (deleted under the server),
//! the free-space guard on the file's disk, the WAL's bound. The PostgreSQL run of the suites (`GROWSUMO_TEST_DB=postgres`)
//! leaves this file out: a PostgreSQL server keeps its own files and disk.

use e2e::http::{get, post_events};
use e2e::Collector;
use serde_json::json;
use std::time::Duration;

/// A database file deleted under the running server: writes stop (503,
/// nothing acknowledged into a file nobody will read) and readiness says
/// why. (Before: 76,900 events were acknowledged into the deleted file.)
#[tokio::test]
async fn a_database_deleted_under_the_server_stops_writes_and_readiness() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let event = |id: &str| {
        json!({"pk": c.public_key, "events": [{"id": id, "type": "signup", "ts": 0, "email": format!("{id}@example.com")}]}).to_string()
    };
    assert_eq!(post_events(&c.url, event("before")).await.status, 200);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", c.db.display()));
    }
    let after = post_events(&c.url, event("after")).await;
    assert_eq!(after.status, 503, "{:?}", after.json());
    let ready = get(&format!("{}/readyz", c.url)).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("deleted or replaced"),
        "{:?}",
        ready.json()
    );
    // The merchant API's writes stop too, with a 503 to retry, not a 500.
    let api = e2e::http::Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let partner = api
        .call(
            "POST",
            "partnerships",
            json!({"partner_key": "late", "email": "late@partners.example"}),
        )
        .await;
    assert_eq!(partner.status, 503, "{:?}", partner.json());
    assert!(partner.headers.get("retry-after").is_some());
    assert_eq!(get(&format!("{}/healthz", c.url)).await.status, 200);
}

/// Below the free-space minimum, events get 503 (the snippet keeps them and
/// retries) and readiness says why, before SQLite runs out of room
/// mid-commit. (Before: a flood filled the disk; commits then failed while
/// `/readyz` said ready.)
#[tokio::test]
async fn a_low_disk_refuses_events_and_readiness_says_why() {
    // More free space than any disk has: the guard is tripped.
    let c = Collector::start_with(&["--min-free-mb", "1000000000000"]);
    let event = json!({"pk": c.public_key, "events": [{"id": "d1", "type": "click", "ts": 0, "partner_key": "alice"}]});
    let refused = post_events(&c.url, event.to_string()).await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["field"].clone()),
        (503, json!("disk"))
    );
    assert!(refused.headers.get("retry-after").is_some());
    let ready = get(&format!("{}/readyz", c.url)).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["message"].as_str().unwrap_or("").contains("free"),
        "{:?}",
        ready.json()
    );
    assert_eq!(get(&format!("{}/healthz", c.url)).await.status, 200);
    assert_eq!(c.count("SELECT count(*) FROM events"), 0);
}

/// The WAL stays bounded while serving: past its limit the checkpointer
/// empties it. (Before: a flood grew a 2.75 GB WAL that never shrank
/// while the server ran.)
#[tokio::test]
async fn the_wal_stays_bounded_under_a_flood() {
    let c = Collector::start_with(&["--wal-limit-mb", "1"]);
    // 200 batches of 30 clicks of about 1.6 KB: about 10 MB written.
    for batch in 0..200 {
        let events: Vec<_> = (0..30)
            .map(|i| {
                json!({"id": format!("w{batch}-{i}"), "type": "click", "ts": 0, "partner_key": "alice",
                            "url": format!("https://shop.example/{}", "x".repeat(1500))})
            })
            .collect();
        let answer = post_events(&c.url, json!({"pk": c.public_key, "events": events}).to_string()).await;
        assert_eq!(answer.status, 200);
    }
    let wal = std::path::PathBuf::from(format!("{}-wal", c.db.display()));
    // The checkpointer runs every 500 ms: wait for it to empty the WAL.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size <= 2 * 1024 * 1024 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the WAL stayed at {size} bytes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.count("SELECT count(*) FROM events"), 6000);
}
