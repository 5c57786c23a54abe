//! Acknowledged means durable, and hostile clients cannot hurt the collector:
//! a SIGKILL under load loses no acknowledged event, a SIGTERM drains and
//! exits cleanly, and malformed, oversized, nested, truncated or slow requests
//! get a 4xx (or a closed connection) while the server stays healthy.

use e2e::http::{get, post_events};
use e2e::Collector;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn signup_batch(pk: &str, id: &str) -> String {
    json!({"pk": pk, "events": [{"id": id, "type": "signup", "email": format!("{id}@example.com")}]}).to_string()
}

/// Sends `request` on a fresh connection and returns everything the server
/// wrote until it closed the connection.
async fn raw(url: &str, request: &[u8], half_close: bool) -> String {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    stream.write_all(request).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn assert_healthy(c: &Collector) {
    assert_eq!(get(&format!("{}/healthz", c.url)).await.status, 200);
    let answer = post_events(&c.url, signup_batch(&c.public_key, &format!("ok{}", rand_suffix()))).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill_under_load() {
    let mut c = Collector::start();
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut senders = Vec::new();
    for sender in 0..16 {
        let (url, pk, acks) = (c.url.clone(), c.public_key.clone(), acks.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let id = format!("k{sender}x{i}");
                let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
                let req = hyper::Request::post(format!("{url}/v1/events"))
                    .header("content-type", "text/plain")
                    .body(http_body_util::Full::new(bytes::Bytes::from(signup_batch(&pk, &id))))
                    .unwrap();
                let Ok(res) = client.request(req).await else { return };
                let Ok(body) = http_body_util::BodyExt::collect(res.into_body()).await else {
                    return;
                };
                let body: Value = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
                if body["results"][0]["status"] == json!("accepted") && acks.send(id).is_err() {
                    return;
                }
            }
        }));
    }
    drop(acks);
    // Kill once 500 events are acknowledged, with requests still in flight.
    let mut ids = Vec::new();
    while ids.len() < 500 {
        ids.push(acked.recv().await.expect("senders stopped early"));
    }
    c.kill();
    while let Some(id) = acked.recv().await {
        ids.push(id);
    }
    for sender in senders {
        sender.await.unwrap();
    }

    let stored: std::collections::HashMap<String, usize> =
        c.texts("SELECT event_id FROM events")
            .into_iter()
            .fold(Default::default(), |mut n, id| {
                *n.entry(id).or_default() += 1;
                n
            });
    let found = ids.iter().filter(|id| stored.get(*id) == Some(&1)).count();
    println!("SIGKILL under load: {} acknowledged, {found} found", ids.len());
    assert_eq!(found, ids.len(), "acknowledged events lost");

    c.restart();
    assert_healthy(&c).await;
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let mut c = Collector::start();
    assert_eq!(
        post_events(&c.url, signup_batch(&c.public_key, "before-term"))
            .await
            .status,
        200
    );
    assert!(c.terminate(), "the collector exits with success on SIGTERM");
    assert_eq!(c.count("SELECT count(*) FROM events"), 1);
}

#[tokio::test]
async fn hostile_requests_get_4xx_and_the_server_stays_healthy() {
    let c = Collector::start_with(&["--client-timeout-ms", "500"]);
    let pk = c.public_key.clone();

    let deep = format!(
        r#"{{"pk":"{pk}","events":{}{}}}"#,
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let answer = post_events(&c.url, deep).await;
    assert_eq!(
        (answer.status.as_u16(), answer.json()["field"].clone()),
        (400, json!("body"))
    );

    let events: Vec<Value> = (0..10_000)
        .map(|i| json!({"id": format!("e{i}"), "type": "click", "partner_key": "p"}))
        .collect();
    let answer = post_events(&c.url, json!({"pk": pk, "events": events}).to_string()).await;
    assert_eq!(
        (answer.status.as_u16(), answer.json()["field"].clone()),
        (413, json!("body"))
    );

    let few: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("f{i}"), "type": "click", "partner_key": "p"}))
        .collect();
    let answer = post_events(&c.url, json!({"pk": pk, "events": few}).to_string()).await;
    assert_eq!(
        (answer.status.as_u16(), answer.json()["field"].clone()),
        (400, json!("events"))
    );

    // Truncated: the body is shorter than its Content-Length, then the client stops sending.
    let truncated = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 500\r\n\r\n{}",
        &signup_batch(&pk, "cut")[..20]
    );
    let answer = raw(&c.url, truncated.as_bytes(), true).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""field":"body""#), "{answer}");

    // Slow loris: half a request line, then nothing. The connection is closed
    // after the client timeout instead of being held open.
    let answer = raw(&c.url, b"POST /v1/events HTTP/1.1\r\nhost:", false).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A slow body is cut off the same way, with a JSON error.
    let slow_body = "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 50\r\n\r\n{";
    let answer = raw(&c.url, slow_body.as_bytes(), false).await;
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains(r#""field":"body""#),
        "{answer}"
    );

    assert_eq!(c.count("SELECT count(*) FROM events"), 0);
    assert_healthy(&c).await;
}
