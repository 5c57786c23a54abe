//! Outgoing webhooks, as a merchant's receiver (a CRM, a Zap) sees them: a
//! real HTTP receiver on loopback gets each change of the merchant's data,
//! signed per Standard Webhooks and verified with its reference
//! implementation (the `standardwebhooks` crate, which shares no code with
//! the collector); retried on failures with the same `webhook-id`; never
//! lost to a SIGKILL, never sent for a change that rolled back; one slow
//! receiver delays no other. Retries are made due by moving the
//! collector's clock, never by waiting.

use e2e::http::{post_events, Api};
use e2e::receiver::{verify, Receiver, Reply};
use e2e::Collector;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

/// The tests' receivers are on loopback, over plain http.
const ALLOW: &[&str] = &["--allow-private-webhook-targets"];

/// A live shop (rewards are made) paying 25% of each payment, whose
/// collector may send to loopback; with its API client.
fn shop() -> (Collector, Api) {
    let c = Collector::start_with_key_and(&["--mode", "live"], ALLOW);
    c.offer_quarter();
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().expect("a secret"));
    (c, api)
}

/// Registers `url` for `events`; returns the endpoint's key and secret.
async fn subscribe(api: &Api, url: &str, events: Value) -> (String, String) {
    let answer = api
        .call("POST", "webhooks", json!({"url": url, "events": events}))
        .await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let data = &answer.json()["data"];
    (
        data["key"].as_str().unwrap().into(),
        data["secret"].as_str().unwrap().into(),
    )
}

async fn create_customer(api: &Api, email: &str) -> Value {
    let answer = api
        .call(
            "POST",
            "customers",
            json!({"customer_key": email, "email": email, "partner_key": "alice"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["data"].clone()
}

async fn ok(api: &Api, method: &str, path: &str, body: Value) -> Value {
    let answer = api.call(method, path, body).await;
    assert_eq!(
        answer.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["data"].clone()
}

/// Every event type arrives, each signed (the reference verifier accepts
/// it), with `data` the very record the API returns for the resource.
#[tokio::test]
async fn every_event_type_arrives_signed_with_the_api_record() {
    let (c, api) = shop();
    let receiver = Receiver::start().await;
    let (_, secret) = subscribe(&api, &format!("{}/crm", receiver.url), json!(["*"])).await;

    ok(
        &api,
        "POST",
        "partnerships",
        json!({"partner_key": "carol", "email": "carol@example.com"}),
    )
    .await;
    ok(&api, "PATCH", "partnerships/carol", json!({"first_name": "Carol"})).await;
    let signup = json!({"pk": c.public_key, "events": [
        {"id": "s1", "type": "signup", "partner_key": "alice", "email": "web@example.com"}]});
    assert_eq!(post_events(&c.url, signup.to_string()).await.status, 200);
    create_customer(&api, "dan@example.com").await;
    ok(
        &api,
        "PATCH",
        "customers/dan@example.com",
        json!({"partner_key": "carol", "name": "Dan"}),
    )
    .await;
    let paid = json!({"key": "t1", "customer_key": "dan@example.com", "amount": 10000, "currency": "USD"});
    ok(&api, "POST", "transactions", paid).await;
    let rewards = ok(&api, "GET", "rewards", Value::Null).await;
    let reward = rewards["items"][0]["key"].as_str().unwrap().to_owned();
    ok(
        &api,
        "PATCH",
        &format!("rewards/{reward}"),
        json!({"status": "approved"}),
    )
    .await;
    ok(&api, "DELETE", "transactions/t1", Value::Null).await;

    let received = receiver.wait_for(10).await;
    let mut types: Vec<String> = received.iter().map(|r| r.event()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "customer.created",
            "customer.created",
            "customer.updated",
            "partnership.created",
            "partnership.updated",
            "reward.created",
            "reward.updated",
            "reward.updated",
            "transaction.created",
            "transaction.reversed"
        ]
    );
    for r in &received {
        verify(&secret, r).unwrap_or_else(|e| panic!("{}: {e}", r.event()));
        assert_eq!(r.path, "/crm");
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.json()["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let ids: HashSet<String> = received.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 10, "each message has its own webhook-id");
    let last = |event: &str| {
        received
            .iter()
            .rev()
            .find(|r| r.event() == event)
            .map(|r| r.json()["data"].clone())
            .unwrap()
    };
    // One parser serves both: the data is what the API answers.
    assert_eq!(
        last("customer.updated"),
        ok(&api, "GET", "customers/dan@example.com", Value::Null).await
    );
    assert_eq!(last("customer.updated")["partner_key"], "carol");
    assert_eq!(
        last("transaction.reversed"),
        ok(&api, "GET", "transactions/t1", Value::Null).await
    );
    assert_eq!(
        last("partnership.updated"),
        ok(&api, "GET", "partnerships/carol", Value::Null).await
    );
    assert_eq!(
        last("reward.updated"),
        ok(&api, "GET", &format!("rewards/{reward}"), Value::Null).await
    );
    assert_eq!(last("reward.updated")["reward_status"], "declined");
    let browser = received
        .iter()
        .find(|r| r.event() == "customer.created" && r.json()["data"]["email"] == "web@example.com")
        .expect("the browser signup's customer");
    assert_eq!(browser.json()["data"]["source_type"], "partner_key");
}

/// A receiver that answers 500 three times gets the message again after
/// each failure (5 s, then 5 min, then 30 min later on the collector's
/// clock), with the same `webhook-id`, and once it answers 200, never again.
#[tokio::test]
async fn failures_are_retried_with_the_same_id_until_delivered_then_never_again() {
    let (c, api) = shop();
    let receiver = Receiver::start().await;
    receiver.answer_with(&[500, 500, 500]);
    let (endpoint, secret) = subscribe(&api, &receiver.url, json!(["customer.created"])).await;
    create_customer(&api, "ann@example.com").await;
    receiver.wait_for(1).await;
    for (n, offset) in [(2, 6), (3, 6 + 5 * 60), (4, 6 + 35 * 60)] {
        // The retry is scheduled when the failure is recorded, just after
        // the receiver answered: the clock moves on only then.
        attempts_recorded(&api, &endpoint, n - 1).await;
        c.advance_seconds(offset);
        receiver.wait_for(n).await;
    }
    attempts_recorded(&api, &endpoint, 4).await;
    let received = receiver.received();
    let id = received[0].id();
    assert!(
        received.iter().all(|r| r.id() == id),
        "one webhook-id for every attempt"
    );
    for r in &received {
        verify(&secret, r).unwrap();
    }
    let deliveries = ok(&api, "GET", &format!("webhooks/{endpoint}/deliveries"), Value::Null).await;
    let delivery = &deliveries["items"][0];
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["message_id"], id.as_str());
    let statuses: Vec<i64> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 500, 500, 500], "newest first");
    // Two days on, a new message goes out; the delivered one never again.
    c.advance_days(2);
    create_customer(&api, "bea@example.com").await;
    let received = receiver.wait_for(5).await;
    assert_eq!(received.len(), 5);
    assert_ne!(received[4].id(), id);
    assert_eq!(received.iter().filter(|r| r.id() == id).count(), 4);
}

/// Waits until the endpoint's newest delivery has `n` attempts recorded.
async fn attempts_recorded(api: &Api, endpoint: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let deliveries = ok(api, "GET", &format!("webhooks/{endpoint}/deliveries"), Value::Null).await;
        let recorded = deliveries["items"][0]["attempts"].as_array().map_or(0, Vec::len);
        if recorded >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{recorded} attempts recorded, waited for {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The receiver is down; the collector is SIGKILLed with undelivered
/// messages and restarted; once the receiver is back, every message
/// arrives.
#[tokio::test]
async fn messages_survive_a_sigkill_while_the_receiver_is_down() {
    let (mut c, api) = shop();
    let down = Receiver::start().await;
    let port = down.port;
    down.stop();
    let (_, secret) = subscribe(&api, &format!("http://127.0.0.1:{port}/"), json!(["customer.created"])).await;
    let mut emails = BTreeSet::new();
    for n in 0..20 {
        let email = format!("c{n}@example.com");
        create_customer(&api, &email).await;
        emails.insert(email);
    }
    c.restart();
    let receiver = Receiver::start_on(port).await;
    // Past every first retry and any lease the killed process held.
    c.advance_seconds(3600);
    let received = receiver
        .wait_until(Duration::from_secs(30), |r| {
            r.iter().map(|r| r.id()).collect::<HashSet<_>>().len() >= 20
        })
        .await;
    let arrived: BTreeSet<String> = received
        .iter()
        .map(|r| r.json()["data"]["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arrived, emails);
    for r in &received {
        verify(&secret, r).unwrap();
    }
}

/// A change whose transaction fails after its message was written (here a
/// trigger the test adds refuses the message's delivery row) sends
/// nothing, and leaves no message behind; the next change is sent.
#[tokio::test]
async fn a_change_that_rolls_back_sends_nothing() {
    let (c, api) = shop();
    let receiver = Receiver::start().await;
    subscribe(&api, &receiver.url, json!(["customer.created"])).await;
    if e2e::collector::on_postgres() {
        c.execute(
            "CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN
                 IF (SELECT body FROM outgoing_messages WHERE id = NEW.message_id) LIKE '%rollback@%' THEN
                     RAISE EXCEPTION 'refused by the test';
                 END IF;
                 RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_marked BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION refuse_marked();",
        );
    } else {
        c.execute(
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON deliveries
             WHEN (SELECT body FROM outgoing_messages WHERE id = NEW.message_id) LIKE '%rollback@%'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        );
    }
    let refused = api
        .call(
            "POST",
            "customers",
            json!({"customer_key": "r", "email": "rollback@example.com"}),
        )
        .await;
    assert_eq!(refused.status, 503, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(api.call("GET", "customers/r", Value::Null).await.status, 404);
    assert_eq!(c.count("SELECT count(*) FROM outgoing_messages"), 0);
    create_customer(&api, "after@example.com").await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["data"]["email"], "after@example.com");
}

/// One endpoint that never answers holds only its own attempts: another
/// endpoint gets every message meanwhile; the slow one gets them all too
/// once it answers.
#[tokio::test]
async fn a_slow_endpoint_does_not_delay_a_fast_one() {
    let (c, api) = shop();
    let (slow, fast) = (Receiver::start().await, Receiver::start().await);
    slow.hold();
    subscribe(&api, &slow.url, json!(["customer.created"])).await;
    subscribe(&api, &fast.url, json!(["customer.created"])).await;
    for n in 0..40 {
        create_customer(&api, &format!("c{n}@example.com")).await;
    }
    fast.wait_for(40).await;
    let held = slow.received().len();
    assert!(held <= 16, "{held} attempts in flight to one endpoint (at most 16)");
    slow.release();
    // Attempts that timed out meanwhile are due again after 5 s.
    c.advance_seconds(60);
    let received = slow
        .wait_until(Duration::from_secs(30), |r| {
            r.iter().map(|r| r.id()).collect::<HashSet<_>>().len() >= 40
        })
        .await;
    assert!(received.len() >= 40);
}

/// Without `--allow-private-webhook-targets`, plain http and private,
/// loopback, link-local and local names are refused when registered; a
/// public-looking name is checked where it resolves, when sending.
#[tokio::test]
async fn private_targets_are_refused_unless_the_operator_allows_them() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    for (url, said) in [
        ("http://hooks.example.com/", "must be an https URL"),
        ("https://127.0.0.1/", "private address"),
        ("https://[::ffff:169.254.169.254]/latest", "private address"),
        ("https://10.0.0.7/", "private address"),
        ("https://localhost:8443/", "local host"),
        ("https://user:secret@hooks.example.com/", "user name"),
        ("https://2130706433/", "other than a.b.c.d"),
        ("https://0x7f000001/", "other than a.b.c.d"),
        ("https://127.0.0.1./", "private address"),
        ("https://[2002:7f00:1::]/", "private address"),
        ("https://hooks.example.com:99999/", "valid port"),
    ] {
        let answer = api
            .call(
                "POST",
                "webhooks",
                json!({"target_url": url, "event": "customer.created"}),
            )
            .await;
        assert_eq!(answer.status, 400, "{url}");
        let error = answer.json();
        assert_eq!(error["field"], "target_url", "{url}");
        assert!(error["message"].as_str().unwrap().contains(said), "{url}: {error}");
    }
    // This machine's own name resolves to its private address (checked
    // here: a test machine on a public address would prove nothing).
    let host = hostname();
    let resolved: Vec<std::net::IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 443))
        .expect("the machine's name resolves")
        .map(|a| a.ip())
        .collect();
    assert!(
        resolved.iter().all(|ip| ip.is_loopback() || is_private(ip)),
        "{host} resolves to {resolved:?}"
    );
    let (endpoint, _) = subscribe(&api, &format!("https://{host}:9/hook"), json!(["customer.created"])).await;
    create_customer(&api, "ann@example.com").await;
    attempts_recorded(&api, &endpoint, 1).await;
    let deliveries = ok(&api, "GET", &format!("webhooks/{endpoint}/deliveries"), Value::Null).await;
    let attempt = &deliveries["items"][0]["attempts"][0];
    assert_eq!(attempt["status"], Value::Null);
    let response = attempt["response"].as_str().unwrap();
    assert!(
        response.starts_with(&format!("refused: {host} resolves to private addresses")),
        "{response}"
    );
}

fn hostname() -> String {
    let out = std::process::Command::new("hostname").output().expect("hostname");
    String::from_utf8(out.stdout).unwrap().trim().to_ascii_lowercase()
}

fn is_private(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// After a rotation, messages carry two signatures for a day: one under
/// the new secret, one under the old; the receiver switches when it likes.
#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let (_c, api) = shop();
    let receiver = Receiver::start().await;
    let (endpoint, old) = subscribe(&api, &receiver.url, json!(["customer.created"])).await;
    let between = ok(&api, "POST", &format!("webhooks/{endpoint}/rotate"), Value::Null).await;
    // Rotated again within the day (a double click): a receiver still on
    // the first secret is not cut off.
    let rotated = ok(&api, "POST", &format!("webhooks/{endpoint}/rotate"), Value::Null).await;
    let (new, between) = (rotated["secret"].as_str().unwrap(), between["secret"].as_str().unwrap());
    assert!(new != old && new != between);
    assert!(rotated["previous_secret_expires_at"].as_i64().is_some());
    create_customer(&api, "ann@example.com").await;
    let received = &receiver.wait_for(1).await[0];
    assert_eq!(received.header("webhook-signature").split(' ').count(), 3);
    verify(new, received).expect("the new secret verifies");
    verify(between, received).expect("the secret in between verifies");
    verify(&old, received).expect("the old secret verifies");
    assert!(verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", received).is_err());
}

/// Zapier's REST hook shape: POST a `target_url` and an `event`, keep the
/// `id`, DELETE it to unsubscribe; nothing is sent after.
#[tokio::test]
async fn zapier_subscribes_and_unsubscribes() {
    let (_c, api) = shop();
    let receiver = Receiver::start().await;
    let zap = ok(
        &api,
        "POST",
        "webhooks",
        json!({"target_url": format!("{}/hooks/catch/1/abc/", receiver.url), "event": "customer.created"}),
    )
    .await;
    assert_eq!(zap["events"], json!(["customer.created"]));
    let id = zap["id"].as_str().unwrap();
    create_customer(&api, "ann@example.com").await;
    assert_eq!(receiver.wait_for(1).await[0].path, "/hooks/catch/1/abc/");
    ok(&api, "DELETE", &format!("webhooks/{id}"), Value::Null).await;
    assert_eq!(
        api.call("GET", &format!("webhooks/{id}"), Value::Null).await.status,
        404
    );
    // A second endpoint hears the next customer; the deleted one does not.
    let other = Receiver::start().await;
    subscribe(&api, &other.url, json!(["customer.created"])).await;
    create_customer(&api, "bea@example.com").await;
    other.wait_for(1).await;
    assert_eq!(receiver.received().len(), 1);
}

/// The dashboard page, as a signed-in merchant uses it: an endpoint added
/// through its form, a failed delivery shown with its attempt and flagged,
/// the Resend button sending it again with the same `webhook-id`, and
/// what the merchant typed shown as text.
#[tokio::test]
async fn the_dashboard_adds_endpoints_shows_attempts_and_resends() {
    let (c, api) = shop();
    let receiver = Receiver::start().await;
    receiver.answer_with(&[503]);
    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let csrf = e2e::http::csrf_of(&dashboard(&c, &session).await);
    let form = format!(
        "csrf={csrf}&action=add&url={}&event=customer.created&description=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        urlencode(&format!("{}/dash", receiver.url))
    );
    assert_eq!(post_form(&c, &session, &form).await, 303);
    let forged = format!("csrf=guess&action=add&url={}", urlencode(&receiver.url));
    assert_eq!(post_form(&c, &session, &forged).await, 403);
    let endpoints = ok(&api, "GET", "webhooks", Value::Null).await;
    assert_eq!(
        endpoints["items"].as_array().unwrap().len(),
        1,
        "the forged form added nothing"
    );
    let endpoint = endpoints["items"][0]["key"].as_str().unwrap().to_owned();
    create_customer(&api, "ann@example.com").await;
    let first = receiver.wait_for(1).await[0].clone();
    attempts_recorded(&api, &endpoint, 1).await;
    let shown = dashboard(&c, &session).await;
    assert!(shown.contains(&first.id()), "the message is listed");
    assert!(shown.contains("<strong>503</strong>"), "the attempt's status is shown");
    assert!(shown.contains("answered 503"), "the answer's excerpt is shown");
    assert!(shown.contains("Failing since"), "the failing endpoint is flagged");
    assert!(
        shown.contains("&lt;script&gt;") && !shown.contains("<script>"),
        "typed text is escaped"
    );
    let delivery = shown.split("id=\"dlv_").nth(1).unwrap().split('"').next().unwrap();
    let resend = format!("csrf={csrf}&action=resend&delivery=dlv_{delivery}");
    assert_eq!(post_form(&c, &session, &resend).await, 303);
    let again = receiver.wait_for(2).await;
    assert_eq!(again[1].id(), first.id());
    attempts_recorded(&api, &endpoint, 2).await;
    let shown = dashboard(&c, &session).await;
    assert!(shown.contains("<td class=\"status\">delivered"), "{shown}");
    assert!(!shown.contains("Failing since"), "a success clears the flag");
}

/// An endpoint that has failed for 5 days is disabled at its next failure,
/// flagged on the dashboard and in the API; enabled again, it is sent to.
#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_and_flagged() {
    let (c, api) = shop();
    let down = Receiver::start().await;
    let port = down.port;
    down.stop();
    let (endpoint, _) = subscribe(&api, &format!("http://127.0.0.1:{port}/"), json!(["customer.created"])).await;
    create_customer(&api, "ann@example.com").await;
    attempts_recorded(&api, &endpoint, 1).await;
    c.advance_days(6);
    attempts_recorded(&api, &endpoint, 2).await;
    let found = ok(&api, "GET", &format!("webhooks/{endpoint}"), Value::Null).await;
    assert_eq!(found["disabled"], true);
    assert!(
        found["disabled_reason"].as_str().unwrap().starts_with("failing since"),
        "{found}"
    );
    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    assert!(dashboard(&c, &session).await.contains("Disabled: http://127.0.0.1"));
    // Disabled: a new change makes no delivery to it.
    create_customer(&api, "bea@example.com").await;
    let deliveries = ok(&api, "GET", &format!("webhooks/{endpoint}/deliveries"), Value::Null).await;
    assert_eq!(deliveries["items"].as_array().unwrap().len(), 1);
    assert_eq!(deliveries["items"][0]["status"], "failed");
    // Back up and enabled: the failed delivery is resent on request.
    let receiver = Receiver::start_on(port).await;
    ok(
        &api,
        "PATCH",
        &format!("webhooks/{endpoint}"),
        json!({"disabled": false}),
    )
    .await;
    let delivery = deliveries["items"][0]["key"].as_str().unwrap();
    ok(
        &api,
        "POST",
        &format!("webhook-deliveries/{delivery}/resend"),
        Value::Null,
    )
    .await;
    assert_eq!(receiver.wait_for(1).await[0].json()["data"]["email"], "ann@example.com");
}

/// The operator's command line: add (refusing plain http and unknown
/// events), list, remove.
#[tokio::test]
async fn the_cli_adds_lists_and_removes_endpoints() {
    let (c, _api) = shop();
    let pk = c.public_key.clone();
    let added: Value = serde_json::from_str(&c.cli(&[
        "endpoints",
        "add",
        &pk,
        "--url",
        "https://hooks.example.com/crm",
        "--event",
        "reward.created",
        "--event",
        "reward.updated",
    ]))
    .unwrap();
    assert_eq!(added["events"], json!(["reward.created", "reward.updated"]));
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    for refused in [
        vec!["--url", "http://hooks.example.com/"],
        vec!["--url", "https://hooks.example.com/", "--event", "customer.deleted"],
    ] {
        let out = std::process::Command::new(e2e::collector::binary())
            .args(["--db", &c.location, "endpoints", "add", &pk])
            .args(&refused)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{refused:?}");
    }
    let listed = c.cli(&["endpoints", "list", &pk]);
    assert_eq!(listed.lines().count(), 1);
    c.cli(&["endpoints", "remove", &pk, added["key"].as_str().unwrap()]);
    assert_eq!(c.cli(&["endpoints", "list", &pk]), "");
}

async fn dashboard(c: &Collector, session: &str) -> String {
    let answer = e2e::http::send(
        "GET",
        &format!("{}/dashboard/webhooks", c.url),
        &[("cookie", session)],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.body.to_vec()).unwrap()
}

async fn post_form(c: &Collector, session: &str, form: &str) -> u16 {
    let headers = [
        ("cookie", session),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let url = format!("{}/dashboard/webhooks", c.url);
    e2e::http::send("POST", &url, &headers, form.to_owned())
        .await
        .status
        .as_u16()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// An https endpoint is reached over verified TLS: delivered when its
/// certificate chains to a CA the operator trusts (`--webhook-ca-file`, an
/// intranet's CA); refused, with the reason kept, when it chains to none
/// or names another host.
#[tokio::test]
async fn https_endpoints_are_delivered_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start_tls(dir.path()).await;
    let ca = dir.path().join("ca.pem").display().to_string();
    let c = Collector::start_with_key_and(&["--mode", "test"], &[ALLOW[0], "--webhook-ca-file", &ca]);
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let (good, secret) = subscribe(&api, &receiver.url, json!(["customer.created"])).await;
    let wrong_name = receiver.url.replace("localhost", "127.0.0.1");
    let (mismatched, _) = subscribe(&api, &wrong_name, json!(["customer.created"])).await;
    create_customer(&api, "ann@example.com").await;
    let received = receiver.wait_for(1).await;
    verify(&secret, &received[0]).unwrap();
    attempts_recorded(&api, &good, 1).await;
    attempts_recorded(&api, &mismatched, 1).await;
    let failure = |deliveries: &Value| {
        deliveries["items"][0]["attempts"][0]["response"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let refused = failure(&ok(&api, "GET", &format!("webhooks/{mismatched}/deliveries"), Value::Null).await);
    assert!(
        refused.starts_with("TLS with 127.0.0.1 failed") && refused.contains("not valid for name"),
        "{refused}"
    );
    // Without the CA, the same receiver is not trusted.
    let untrusting = Collector::start_with_key_and(&["--mode", "test"], ALLOW);
    let api = Api::new(
        &untrusting.url,
        &untrusting.public_key,
        untrusting.secret_key.as_deref().unwrap(),
    );
    let (endpoint, _) = subscribe(&api, &receiver.url, json!(["customer.created"])).await;
    create_customer(&api, "bea@example.com").await;
    attempts_recorded(&api, &endpoint, 1).await;
    let refused = failure(&ok(&api, "GET", &format!("webhooks/{endpoint}/deliveries"), Value::Null).await);
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    assert_eq!(
        receiver.received().len(),
        1,
        "only the trusting collector's message arrived"
    );
}

/// More endpoints than one endpoint's share of the attempts in flight, all
/// but the last idle: the last one still gets its messages.
#[tokio::test]
async fn the_twentieth_endpoint_is_sent_to_like_the_first() {
    let (_c, api) = shop();
    let idle = Receiver::start().await;
    for _ in 0..19 {
        subscribe(&api, &idle.url, json!(["reward.created"])).await;
    }
    let receiver = Receiver::start().await;
    subscribe(&api, &receiver.url, json!(["customer.created"])).await;
    create_customer(&api, "ann@example.com").await;
    assert_eq!(receiver.wait_for(1).await[0].json()["data"]["email"], "ann@example.com");
}

/// What a receiver answers is its own business: a NUL (which PostgreSQL
/// cannot store) and control characters are left out of the excerpt, and
/// the attempts recorded with it are recorded too. 410 Gone ends the
/// subscription (Zapier's REST hooks); a 429's `Retry-After` is honoured.
#[tokio::test]
async fn receivers_answers_are_kept_safely_and_obeyed() {
    let (_c, api) = shop();
    let (odd, gone, busy) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    odd.reply_with([Reply {
        status: 200,
        body: b"ok\0\x1b[31m\r\nfine".to_vec(),
        headers: Vec::new(),
    }]);
    gone.answer_with(&[410]);
    busy.reply_with([Reply {
        status: 429,
        body: Vec::new(),
        headers: vec![("retry-after", "3600".into())],
    }]);
    let (odd_key, _) = subscribe(&api, &odd.url, json!(["customer.created"])).await;
    let (gone_key, _) = subscribe(&api, &gone.url, json!(["customer.created"])).await;
    let (busy_key, _) = subscribe(&api, &busy.url, json!(["customer.created"])).await;
    create_customer(&api, "ann@example.com").await;
    for endpoint in [&odd_key, &gone_key, &busy_key] {
        attempts_recorded(&api, endpoint, 1).await;
    }
    let first = |deliveries: Value| deliveries["items"][0].clone();
    let odd_delivery = first(ok(&api, "GET", &format!("webhooks/{odd_key}/deliveries"), Value::Null).await);
    assert_eq!(odd_delivery["status"], "delivered");
    assert_eq!(odd_delivery["attempts"][0]["response"], "ok[31mfine");
    let gone_endpoint = ok(&api, "GET", &format!("webhooks/{gone_key}"), Value::Null).await;
    assert_eq!(
        (
            gone_endpoint["disabled"].clone(),
            gone_endpoint["disabled_reason"].clone()
        ),
        (json!(true), json!("answered 410 Gone"))
    );
    let busy_delivery = first(ok(&api, "GET", &format!("webhooks/{busy_key}/deliveries"), Value::Null).await);
    let (tried_at, next) = (
        busy_delivery["attempts"][0]["at"].as_i64().unwrap(),
        busy_delivery["next_attempt_at"].as_i64().unwrap(),
    );
    assert!(
        next - tried_at >= 3_600_000,
        "retried {} ms later, not after Retry-After's hour",
        next - tried_at
    );
}

/// Fields are checked as everywhere else: url and target_url are one
/// field; an empty description clears it.
#[tokio::test]
async fn endpoint_fields_are_checked_and_an_empty_description_clears() {
    let (_c, api) = shop();
    let both = api
        .call(
            "POST",
            "webhooks",
            json!({"url": "https://a.example.com/", "target_url": "https://b.example.com/"}),
        )
        .await;
    assert_eq!(
        (both.status.as_u16(), both.json()["field"].clone()),
        (400, json!("target_url"))
    );
    let created = ok(
        &api,
        "POST",
        "webhooks",
        json!({"url": "https://a.example.com/", "description": "CRM"}),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let cleared = ok(&api, "PATCH", &format!("webhooks/{key}"), json!({"description": ""})).await;
    assert_eq!(cleared["description"], "");
    let bidi = api
        .call(
            "PATCH",
            &format!("webhooks/{key}"),
            json!({"description": "a\u{202e}b"}),
        )
        .await;
    assert_eq!(
        (bidi.status.as_u16(), bidi.json()["field"].clone()),
        (400, json!("description"))
    );
}

/// A failing endpoint gets one attempt at a time (a dead one holds one
/// slot, not sixteen), and the others meanwhile everything.
#[tokio::test]
async fn a_failing_endpoint_is_tried_one_delivery_at_a_time() {
    let (c, api) = shop();
    let (failing, healthy) = (Receiver::start().await, Receiver::start().await);
    failing.answer_with(&[500]);
    let (endpoint, _) = subscribe(&api, &failing.url, json!(["customer.created"])).await;
    create_customer(&api, "first@example.com").await;
    attempts_recorded(&api, &endpoint, 1).await;
    failing.hold();
    subscribe(&api, &healthy.url, json!(["customer.created"])).await;
    for n in 0..10 {
        create_customer(&api, &format!("c{n}@example.com")).await;
    }
    healthy.wait_for(10).await;
    failing.wait_for(2).await;
    // The first's retry comes due too, and one more change goes out: the
    // passes that sent it claimed nothing more for the failing endpoint.
    c.advance_seconds(10);
    create_customer(&api, "marker@example.com").await;
    healthy.wait_for(11).await;
    assert_eq!(
        failing.received().len(),
        2,
        "one attempt in flight to a failing endpoint"
    );
    failing.release();
    let all = failing
        .wait_until(Duration::from_secs(30), |r| {
            r.iter().map(|r| r.id()).collect::<HashSet<_>>().len() >= 11
        })
        .await;
    assert!(all.len() >= 11);
}
