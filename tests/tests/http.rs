//! The collector over real HTTP on loopback, against its real SQLite file:
//! what is stored, what is refused (and that the refusal names the field),
//! and how the snippet's files are served.

use e2e::http::{get, post_events, send};
use e2e::Collector;
use serde_json::{json, Value};

fn batch(pk: &str, events: Value) -> String {
    json!({ "pk": pk, "events": events }).to_string()
}

fn signup(id: &str, email: &str) -> Value {
    json!({"id": id, "type": "signup", "ts": 1_700_000_000_000u64, "email": email, "name": "Ann", "partner_key": "alice"})
}

fn stored_events(c: &Collector) -> i64 {
    c.count("SELECT count(*) FROM events")
}

#[tokio::test]
async fn a_valid_batch_is_stored_once() {
    let c = Collector::start();
    let click =
        json!({"id": "c1", "type": "click", "partner_key": "alice", "xid": "x1", "url": "https://shop.example/"});
    let body = batch(&c.public_key, json!([click, signup("s1", "ann@example.com")]));
    let first = post_events(&c.url, body.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.json(),
        json!({"results": [{"id": "c1", "status": "accepted"}, {"id": "s1", "status": "accepted"}]})
    );
    // A retry after a lost answer: acknowledged again, stored once.
    let again = post_events(&c.url, body).await;
    assert_eq!(again.json()["results"][1], json!({"id": "s1", "status": "duplicate"}));
    assert_eq!(stored_events(&c), 2);
    let customers = c.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].partner_key.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_bad_event_is_rejected_alone() {
    let c = Collector::start();
    let body = batch(
        &c.public_key,
        json!([signup("ok1", "ok@example.com"), signup("bad1", "nope")]),
    );
    let answer = post_events(&c.url, body).await;
    assert_eq!(answer.status, 200);
    let results = answer.json()["results"].clone();
    assert_eq!(results[0], json!({"id": "ok1", "status": "accepted"}));
    assert_eq!(
        (results[1]["status"].clone(), results[1]["field"].clone()),
        (json!("rejected"), json!("email"))
    );
    assert_eq!(stored_events(&c), 1);
}

#[tokio::test]
async fn bad_requests_get_a_json_error_naming_the_field_and_store_nothing() {
    let c = Collector::start();
    let pk = c.public_key.clone();
    let long_name = "n".repeat(wire::limit::NAME + 1);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            r#"{"pk": "x", "events": [{"id": "#.into(),
            400,
            "body",
        ),
        ("not an object", "[1,2]".into(), 400, "body"),
        (
            "unknown key",
            batch("pk_test_nobody", json!([signup("a", "a@example.com")])),
            401,
            "pk",
        ),
        (
            "missing key",
            json!({"events": [signup("a", "a@example.com")]}).to_string(),
            400,
            "pk",
        ),
        (
            "oversized body",
            batch(
                &pk,
                json!([{"id": "big", "type": "click", "partner_key": "x".repeat(70_000)}]),
            ),
            413,
            "body",
        ),
        (
            "overlong name",
            batch(
                &pk,
                json!([{"id": "n1", "type": "signup", "email": "a@example.com", "name": long_name}]),
            ),
            400,
            "events[0].name",
        ),
        (
            "invalid email",
            batch(&pk, json!([signup("e1", "ann@@example")])),
            400,
            "events[0].email",
        ),
        (
            "wrong type",
            batch(&pk, json!([{"id": "t1", "type": "purchase"}])),
            400,
            "events[0].type",
        ),
        (
            "too many events",
            batch(&pk, Value::Array(vec![signup("m", "a@example.com"); 101])),
            400,
            "events",
        ),
        ("no events", batch(&pk, json!([])), 400, "events"),
    ];
    for (what, body, status, field) in cases {
        let answer = post_events(&c.url, body).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let error = answer.json();
        assert_eq!(error["field"], json!(field), "{what}: {error}");
        assert_eq!(error["status"], json!(status), "{what}: {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {error}"
        );
    }

    let invalid_utf8 = post_events(&c.url, &b"{\"pk\": \"\xff\xfe\"}"[..]).await;
    assert_eq!(
        (invalid_utf8.status.as_u16(), invalid_utf8.json()["field"].clone()),
        (400, json!("body"))
    );
    let form = send(
        "POST",
        &format!("{}/v1/events", c.url),
        &[("content-type", "application/x-www-form-urlencoded")],
        batch(&pk, json!([signup("f1", "a@example.com")])),
    )
    .await;
    assert_eq!(
        (form.status.as_u16(), form.json()["field"].clone()),
        (415, json!("content-type"))
    );

    assert_eq!(stored_events(&c), 0);
    assert_eq!(get(&format!("{}/healthz", c.url)).await.status, 200, "still healthy");
}

#[tokio::test]
async fn only_allowed_origins_may_write() {
    let c = Collector::start();
    let created = c.cli(&["keys", "create", "--name", "shop", "--origin", "https://shop.example"]);
    let shop_pk = created
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .to_owned();
    let post_from = |origin: String, pk: String, id: &'static str| {
        let url = format!("{}/v1/events", c.url);
        async move {
            let body = batch(&pk, json!([signup(id, "a@example.com")]));
            send(
                "POST",
                &url,
                &[("content-type", "text/plain"), ("origin", &origin)],
                body,
            )
            .await
        }
    };

    let allowed = post_from("https://shop.example".into(), shop_pk.clone(), "o1").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], "https://shop.example");

    let other = post_from("https://evil.example".into(), shop_pk, "o2").await;
    assert_eq!(
        (other.status.as_u16(), other.json()["field"].clone()),
        (403, json!("origin"))
    );

    // The demo key has no allowed origins: only the collector's own pages.
    let own = post_from(c.url.clone(), c.public_key.clone(), "o3").await;
    assert_eq!(own.status, 200);
    let foreign = post_from("https://shop.example".into(), c.public_key.clone(), "o4").await;
    assert_eq!(foreign.status, 403);

    assert_eq!(stored_events(&c), 2);
}

#[tokio::test]
async fn the_snippet_is_served_with_the_right_types_and_caching() {
    let c = Collector::start();
    let loader = get(&format!("{}/v1/", c.url)).await;
    assert_eq!(loader.status, 200);
    assert_eq!(loader.headers["content-type"], "application/javascript; charset=utf-8");
    // Stage 1's URL never changes: revalidated on every use (a 304 of no
    // body), so it never names a stage 2 of an earlier release.
    assert_eq!(loader.headers["cache-control"], "no-cache");
    let etag = loader.headers["etag"].to_str().unwrap().to_owned();
    let revalidated = send("GET", &format!("{}/v1/", c.url), &[("if-none-match", &etag)], "").await;
    assert_eq!(revalidated.status, 304);

    // Stage 1 names stage 2's script, which names the wasm: both immutable.
    let named = |body: &[u8], suffix: &str| {
        String::from_utf8(body.to_vec())
            .unwrap()
            .split('"')
            .find(|s| s.starts_with("growsumo-") && s.ends_with(suffix))
            .unwrap_or_else(|| panic!("a file ending {suffix} named"))
            .to_owned()
    };
    let core_name = named(&loader.body, ".js");
    let core = get(&format!("{}/v1/{core_name}", c.url)).await;
    assert_eq!(core.headers["content-type"], "application/javascript; charset=utf-8");
    assert_eq!(core.headers["cache-control"], "public, max-age=31536000, immutable");
    let name = named(&core.body, ".wasm");
    let wasm = get(&format!("{}/v1/{name}", c.url)).await;
    assert_eq!(wasm.status, 200);
    assert_eq!(wasm.headers["content-type"], "application/wasm");
    assert_eq!(wasm.headers["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(&wasm.body[..4], b"\0asm");
    let name = name.as_str();

    // Pages on other origins may fetch both (the wasm in CORS mode), also
    // pages with COEP; no credentials are offered with them.
    for answer in [&loader, &core, &wasm] {
        assert_eq!(answer.headers["access-control-allow-origin"], "*");
        assert_eq!(answer.headers["cross-origin-resource-policy"], "cross-origin");
        assert!(answer.headers.get("access-control-allow-credentials").is_none());
        assert_eq!(answer.headers["vary"], "Accept-Encoding");
    }
    // Precompressed: brotli when accepted, else gzip, each the same bytes
    // once decoded; each encoding has its own ETag.
    for path in ["", core_name.as_str(), name] {
        let url = format!("{}/v1/{path}", c.url);
        let plain = get(&url).await.body;
        let br = send("GET", &url, &[("accept-encoding", "gzip, deflate, br")], "").await;
        assert_eq!(br.headers["content-encoding"], "br");
        let gz = send("GET", &url, &[("accept-encoding", "gzip")], "").await;
        assert_eq!(gz.headers["content-encoding"], "gzip");
        assert!(br.body.len() < gz.body.len() && gz.body.len() < plain.len(), "{path}");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped, plain, "{path}");
        assert_ne!(br.headers["etag"], gz.headers["etag"]);
        let etag = br.headers["etag"].to_str().unwrap();
        let again = send("GET", &url, &[("accept-encoding", "br"), ("if-none-match", etag)], "").await;
        assert_eq!(again.status, 304);
        // A list of tags, and a CDN's weak form of ours, revalidate too.
        for tags in [format!("\"other\", {etag}"), format!("W/{etag}")] {
            let listed = send("GET", &url, &[("accept-encoding", "br"), ("if-none-match", &tags)], "").await;
            assert_eq!(listed.status, 304, "{tags}");
        }
        let head = send("HEAD", &url, &[("accept-encoding", "br")], "").await;
        assert_eq!((head.status.as_u16(), head.body.len()), (200, 0), "HEAD {path}");
        assert_eq!(head.headers["content-encoding"], "br");
    }

    let stale = get(&format!("{}/v1/growsumo-0000000000000000.wasm", c.url)).await;
    assert_eq!(
        (stale.status.as_u16(), stale.json()["field"].clone()),
        (404, json!("path"))
    );
}

/// `GET /v1/config`: a key's snippet settings; and in server-cookie mode the
/// cookie a click sets on the merchant's domain, read back by a restore.
#[tokio::test]
async fn config_and_the_server_cookie() {
    let c = Collector::start_with_key(&[
        "--cookie-domain",
        "shop.example",
        "--origin",
        "https://www.shop.example",
        "--param",
        "via",
        "--param",
        "ref:base64",
    ]);
    // Requests as the merchant's pages make them: to t.shop.example, the
    // collector on the merchant's own domain.
    let on_site = |cookie: Option<&str>| {
        let mut headers = vec![
            ("content-type", "text/plain".to_owned()),
            ("host", "t.shop.example".to_owned()),
            ("origin", "https://www.shop.example".to_owned()),
        ];
        headers.extend(cookie.map(|c| ("cookie", c.to_owned())));
        headers
    };
    let request = |method: &'static str, path: String, headers: Vec<(&'static str, String)>, body: String| {
        let url = format!("{}{path}", c.url);
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(method, &url, &headers, body).await
        }
    };
    let config = |query: &str, headers| request("GET", format!("/v1/config?{query}"), headers, String::new());
    let pk = c.public_key.clone();

    let plain = config(&format!("pk={pk}"), vec![]).await;
    assert_eq!(
        (plain.status.as_u16(), plain.headers["cache-control"].to_str().unwrap()),
        (200, "no-store")
    );
    assert_eq!(
        plain.json(),
        json!({"params": [{"name": "via", "base64": false}, {"name": "ref", "base64": true}],
               "require_consent": false, "honor_gpc": true})
    );
    assert_eq!(config("", vec![]).await.json()["field"], json!("pk"));
    assert_eq!(config("pk=pk_test_nope", vec![]).await.status, 401);
    let foreign = config(&format!("pk={pk}"), vec![("origin", "https://evil.example".into())]).await;
    assert_eq!(
        (foreign.status.as_u16(), foreign.json()["field"].clone()),
        (403, json!("origin"))
    );

    let click = json!({"id": "c1", "type": "click", "partner_key": "alice", "xid": "x1"});
    let clicked = request("POST", "/v1/events".into(), on_site(None), batch(&pk, json!([click]))).await;
    assert_eq!(clicked.status, 200);
    assert_eq!(clicked.headers["access-control-allow-credentials"], "true");
    assert_eq!(
        clicked.headers["set-cookie"],
        "growsumo_click=c1; Domain=shop.example; Path=/; Max-Age=7776000; HttpOnly; SameSite=Lax; Secure"
    );
    // Off the merchant's domain (a browser would refuse it): no cookie.
    let elsewhere = post_events(
        &c.url,
        batch(&pk, json!([{"id": "c2", "type": "click", "partner_key": "bob"}])),
    )
    .await;
    assert!(!elsewhere.headers.contains_key("set-cookie"));

    // The snippet found its storage empty: the cookie restores the referral
    // and is marked as restored.
    let restored = config(&format!("pk={pk}&restore=1"), on_site(Some("growsumo_click=c1"))).await;
    assert_eq!(restored.json()["referral"]["partner_key"], json!("alice"));
    assert_eq!(restored.json()["referral"]["xid"], json!("x1"));
    assert!(restored.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("growsumo_click=c1.r;"));
    // A signup carrying the restored click id is credited through the cookie.
    let signup = json!({"id": "s1", "type": "signup", "email": "ann@example.com", "partner_key": "alice", "xid": "x1"});
    let signed = request(
        "POST",
        "/v1/events".into(),
        on_site(Some("growsumo_click=c1.r")),
        batch(&pk, json!([signup])),
    )
    .await;
    assert_eq!(signed.status, 200);
    assert_eq!(c.customers()[0].source.as_deref(), Some("server_cookie"));

    // Consent refused: the cookie is deleted.
    let forgot = config(&format!("pk={pk}&forget=1"), on_site(Some("growsumo_click=c1.r"))).await;
    assert!(forgot.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("growsumo_click=; Domain=shop.example; Path=/; Max-Age=0;"));
}

/// Operations: liveness, readiness (the database takes writes), Prometheus
/// metrics that move with the traffic, and a request id on every answer.
#[tokio::test]
async fn health_readiness_and_metrics() {
    let c = Collector::start();
    assert_eq!(get(&format!("{}/healthz", c.url)).await.status, 200);
    let ready = get(&format!("{}/readyz", c.url)).await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()["status"].clone()),
        (200, json!("ready"))
    );
    assert!(!ready.headers["x-request-id"].is_empty());
    let click = json!({"id": "m1", "type": "click", "partner_key": "alice"});
    let body =
        json!({"pk": c.public_key, "events": [click, {"id": "m2", "type": "signup", "email": "nope"}], "dropped": 3});
    post_events(&c.url, body.to_string()).await;
    post_events(&c.url, body.to_string()).await;
    let metrics = get(&format!("{}/metrics", c.url)).await;
    assert_eq!(
        metrics.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    for line in [
        "growsumo_requests_total{route=\"events\",status=\"200\"} 2",
        "growsumo_requests_total{route=\"readyz\",status=\"200\"} 1",
        "growsumo_events_total{outcome=\"accepted\"} 1",
        "growsumo_events_total{outcome=\"duplicate\"} 1",
        "growsumo_events_total{outcome=\"rejected\"} 2",
        "growsumo_outbox_dropped_total 6",
        "growsumo_writer_group_requests_count 2",
        "growsumo_writer_commit_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}
