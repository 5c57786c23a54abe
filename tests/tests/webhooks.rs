//! Payment-provider webhooks over real HTTP: Stripe events signed in the test
//! with a test secret (valid, wrong secret, stale timestamp, a rolled secret
//! with two `v1`, a replayed event id), and Chargebee and Recurly payloads in
//! their documented shapes with their Basic auth.

use e2e::http::{send, stripe_v1 as v1, stripe_webhook, Answer, Api};
use e2e::Collector;
use serde_json::{json, Value};

const SECRET: &str = "whsec_test_current";

/// A live key with a customer credited to alice, two offers, and webhooks set.
fn shop() -> (Collector, Api, String) {
    let c = Collector::start();
    let (pk, sk) = c.create_key(&["--mode", "live"]);
    // A partnership: credit to a partner key no partnership has waits for review.
    c.cli(&[
        "partners",
        "add",
        &pk,
        "--email",
        "alice@partners.example",
        "--partner-key",
        "alice",
    ]);
    c.cli(&[
        "webhooks",
        "set",
        &pk,
        "--stripe-secret",
        SECRET,
        "--chargebee-auth",
        "chargebee:cb-pass",
        "--recurly-auth",
        "recurly:rc-pass",
    ]);
    c.cli(&[
        "offers",
        "set",
        &pk,
        "--key",
        "welcome",
        "--kind",
        "new-customer",
        "--amount",
        "USD:5000",
    ]);
    c.cli(&[
        "offers",
        "set",
        &pk,
        "--key",
        "share",
        "--kind",
        "percent",
        "--percent",
        "10",
    ]);
    let api = Api::new(&c.url, &pk, &sk);
    (c, api, pk)
}

async fn add_customer(api: &Api, key: &str, email: &str) {
    let body = json!({"customer_key": key, "email": email, "partner_key": "alice"});
    assert_eq!(api.call("POST", "customers", body).await.status, 200);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn stripe(c: &Collector, signature: &str, body: &str) -> Answer {
    let headers = [("content-type", "application/json"), ("stripe-signature", signature)];
    send("POST", &format!("{}/webhooks/stripe", c.url), &headers, body.to_owned()).await
}

async fn signed(c: &Collector, event: &Value) -> Answer {
    stripe_webhook(&c.url, SECRET, event).await
}

fn stripe_event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "livemode": true, "created": now(), "data": {"object": object}})
}

fn outcome(answer: &Answer) -> Value {
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["outcome"].clone()
}

async fn reward_amounts(api: &Api) -> Vec<(i64, String)> {
    let items = api.call("GET", "rewards?limit=250", Value::Null).await.json()["data"]["items"].clone();
    let mut amounts: Vec<(i64, String)> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["amount"].as_i64().unwrap(),
                r["reward_status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    amounts.sort();
    amounts
}

#[tokio::test]
async fn stripe_signatures_are_verified() {
    let (c, api, _) = shop();
    add_customer(&api, "ann", "ann@example.com").await;
    let event = stripe_event(
        "evt_1",
        "customer.updated",
        json!({"id": "cus_1", "email": "ann@example.com"}),
    );
    let body = event.to_string();
    let t = now();
    let wrong = stripe(&c, &format!("t={t},v1={}", v1("whsec_other", t, &body)), &body).await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.json()["field"].clone()),
        (400, json!("stripe-signature"))
    );
    let stale_t = t - 301;
    let stale = stripe(&c, &format!("t={stale_t},v1={}", v1(SECRET, stale_t, &body)), &body).await;
    assert_eq!(stale.status, 400);
    let tampered = stripe(
        &c,
        &format!("t={t},v1={}", v1(SECRET, t, &body)),
        &body.replace("cus_1", "cus_2"),
    )
    .await;
    assert_eq!(tampered.status, 400);
    assert_eq!(stripe(&c, "", &body).await.status, 400);
    assert_eq!(c.count("SELECT count(*) FROM webhook_events"), 0);
    // While a secret is being rolled, Stripe signs with both: one v1 matches.
    let rolled = format!(
        "t={t},v1={},v1={}",
        v1("whsec_test_old", t, &body),
        v1(SECRET, t, &body)
    );
    assert_eq!(outcome(&stripe(&c, &rolled, &body).await), "applied");
    assert_eq!(
        api.call("GET", "customers/ann", Value::Null).await.json()["data"]["provider_key"],
        "cus_1"
    );
}

#[tokio::test]
async fn stripe_payments_and_refunds_move_rewards_once() {
    let (c, api, _) = shop();
    add_customer(&api, "ann", "ann@example.com").await;
    // A Stripe customer created by the merchant's checkout, linked by metadata.
    let customer = json!({"id": "cus_9", "email": "ann@example.com", "metadata": {"customer_key": "ann"}});
    assert_eq!(
        outcome(&signed(&c, &stripe_event("evt_c", "customer.created", customer)).await),
        "applied"
    );
    let invoice = json!({"id": "in_1", "object": "invoice", "customer": "cus_9", "amount_paid": 20000,
                         "currency": "usd", "customer_email": "ann@example.com", "charge": "ch_1"});
    let paid = stripe_event("evt_p", "invoice.payment_succeeded", invoice);
    assert_eq!(outcome(&signed(&c, &paid).await), "applied");
    // A replay of the same event: acknowledged, not applied again.
    assert_eq!(outcome(&signed(&c, &paid).await), "duplicate");
    // charge.succeeded is not the configured payment event: one payment counts once.
    let charge = json!({"id": "ch_1", "customer": "cus_9", "amount": 20000, "currency": "usd", "invoice": "in_1"});
    assert_eq!(
        outcome(&signed(&c, &stripe_event("evt_ch", "charge.succeeded", charge)).await),
        "ignored"
    );
    assert_eq!(c.count("SELECT count(*) FROM transactions"), 1);
    assert_eq!(reward_amounts(&api).await, [(2000, "new".into()), (5000, "new".into())]);
    let tx = api.call("GET", "transactions/in_1", Value::Null).await.json()["data"].clone();
    assert_eq!(
        (tx["amount"].clone(), tx["currency"].clone(), tx["origin"].clone()),
        (json!(20000), json!("USD"), json!("stripe"))
    );

    let refund = json!({"id": "ch_1", "object": "charge", "amount": 20000, "amount_refunded": 20000,
                        "refunded": true, "invoice": "in_1", "currency": "usd"});
    assert_eq!(
        outcome(&signed(&c, &stripe_event("evt_r", "charge.refunded", refund)).await),
        "applied"
    );
    assert_eq!(
        reward_amounts(&api).await,
        [(2000, "declined".into()), (5000, "declined".into())]
    );

    // Unknown types are acknowledged; events naming nobody are recorded as unmatched.
    assert_eq!(
        outcome(&signed(&c, &stripe_event("evt_u", "payout.paid", json!({"id": "po_1"}))).await),
        "ignored"
    );
    let stranger = json!({"id": "in_2", "customer": "cus_x", "amount_paid": 100, "currency": "usd"});
    let unmatched = stripe_event("evt_x", "invoice.payment_succeeded", stranger);
    assert_eq!(outcome(&signed(&c, &unmatched).await), "unmatched");
    let broken = stripe_event("evt_b", "invoice.payment_succeeded", json!({"id": "in_3"}));
    assert_eq!(signed(&c, &broken).await.status, 400);
    let not_json = "{not json";
    let t = now();
    assert_eq!(
        stripe(&c, &format!("t={t},v1={}", v1(SECRET, t, not_json)), not_json)
            .await
            .status,
        400
    );
    assert_eq!(
        c.count("SELECT count(*) FROM webhook_events WHERE outcome = 'unmatched'"),
        1,
        "unmatched events are counted"
    );
}

async fn chargebee(c: &Collector, auth: &str, event: &Value) -> Answer {
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(auth));
    let headers = [("content-type", "application/json"), ("authorization", basic.as_str())];
    send(
        "POST",
        &format!("{}/webhooks/chargebee", c.url),
        &headers,
        event.to_string(),
    )
    .await
}

#[tokio::test]
async fn chargebee_payments_and_refunds() {
    let (c, api, _) = shop();
    add_customer(&api, "ben", "ben@example.com").await;
    // Chargebee's event shape: {id, event_type, content: {transaction, customer}}.
    let payment = json!({
        "id": "ev_cb_1", "occurred_at": now(), "object": "event", "api_version": "v2",
        "event_type": "payment_succeeded",
        "content": {
            "transaction": {"id": "txn_cb_1", "customer_id": "cb_cus_1", "type": "payment", "amount": 5000,
                            "currency_code": "USD", "status": "success"},
            "customer": {"id": "cb_cus_1", "email": "ben@example.com"}
        }
    });
    assert_eq!(chargebee(&c, "chargebee:wrong", &payment).await.status, 401);
    assert_eq!(outcome(&chargebee(&c, "chargebee:cb-pass", &payment).await), "applied");
    assert_eq!(
        outcome(&chargebee(&c, "chargebee:cb-pass", &payment).await),
        "duplicate"
    );
    assert_eq!(reward_amounts(&api).await, [(500, "new".into()), (5000, "new".into())]);
    let refund = json!({
        "id": "ev_cb_2", "event_type": "payment_refunded",
        "content": {"transaction": {"id": "txn_cb_2", "type": "refund", "amount": 5000, "currency_code": "USD",
                                    "reference_transaction_id": "txn_cb_1"}}
    });
    assert_eq!(outcome(&chargebee(&c, "chargebee:cb-pass", &refund).await), "applied");
    assert_eq!(
        reward_amounts(&api).await,
        [(500, "declined".into()), (5000, "declined".into())]
    );
    let other = json!({"id": "ev_cb_3", "event_type": "subscription_created", "content": {}});
    assert_eq!(outcome(&chargebee(&c, "chargebee:cb-pass", &other).await), "ignored");
}

async fn recurly(c: &Collector, auth: &str, xml: &str) -> Answer {
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(auth));
    let headers = [("content-type", "text/xml"), ("authorization", basic.as_str())];
    send("POST", &format!("{}/webhooks/recurly", c.url), &headers, xml.to_owned()).await
}

#[tokio::test]
async fn recurly_payments_and_refunds() {
    let (c, api, _) = shop();
    add_customer(&api, "cat", "cat@example.com").await;
    // Recurly's XML notifications; account_code is our customer_key.
    let payment = r#"<?xml version="1.0" encoding="UTF-8"?>
<successful_payment_notification>
  <account>
    <account_code>cat</account_code>
    <username nil="true"></username>
    <email>cat@example.com</email>
    <first_name>Cat</first_name>
  </account>
  <transaction>
    <id>a5143c1d3a6f4a8287d0e2cc1d4c0427</id>
    <invoice_id>4d3b2c1a</invoice_id>
    <invoice_number type="integer">2059</invoice_number>
    <action>purchase</action>
    <date type="datetime">2026-11-24T10:00:00Z</date>
    <amount_in_cents type="integer">3000</amount_in_cents>
    <status>success</status>
    <message>Bogus Gateway: Forced success</message>
    <test type="boolean">true</test>
  </transaction>
</successful_payment_notification>"#;
    assert_eq!(recurly(&c, "recurly:nope", payment).await.status, 401);
    assert_eq!(outcome(&recurly(&c, "recurly:rc-pass", payment).await), "applied");
    assert_eq!(outcome(&recurly(&c, "recurly:rc-pass", payment).await), "duplicate");
    assert_eq!(reward_amounts(&api).await, [(300, "new".into()), (5000, "new".into())]);
    let refund = payment
        .replace("successful_payment_notification", "successful_refund_notification")
        .replace("a5143c1d3a6f4a8287d0e2cc1d4c0427", "b6254d2e")
        .replace("<action>purchase</action>", "<action>credit</action>");
    assert_eq!(outcome(&recurly(&c, "recurly:rc-pass", &refund).await), "applied");
    assert_eq!(
        reward_amounts(&api).await,
        [(300, "declined".into()), (5000, "declined".into())]
    );
    assert_eq!(recurly(&c, "recurly:rc-pass", "<unclosed").await.status, 400);
}

/// A signature header cannot multiply the HMAC work: more than 8 `v1`
/// entries (or more than 1 KiB) is refused before any is checked, even
/// with the right one among them, while the collector keeps answering.
/// (Before the cap, 6,200 entries cost 1.6 s of HMAC per request.)
#[tokio::test]
async fn a_stripe_signature_header_cannot_multiply_the_work() {
    let (c, api, _) = shop();
    add_customer(&api, "ann", "ann@example.com").await;
    let event = stripe_event(
        "evt_many",
        "customer.updated",
        json!({"id": "cus_1", "email": "ann@example.com"}),
    );
    let body = event.to_string();
    let t = now();
    let good = v1(SECRET, t, &body);
    let nine = format!("t={t},{}v1={good}", "v1=00,".repeat(8));
    let refused = stripe(&c, &nine, &body).await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["field"].clone()),
        (400, json!("stripe-signature"))
    );
    let long = format!("t={t},v1={good},x={}", "a".repeat(1024));
    assert_eq!(stripe(&c, &long, &body).await.status, 400);
    let health = e2e::http::get(&format!("{}/healthz", c.url)).await;
    assert_eq!(health.status, 200);
    assert_eq!(c.count("SELECT count(*) FROM webhook_events"), 0);
    let eight = format!("t={t},{}v1={good}", "v1=00,".repeat(7));
    assert_eq!(outcome(&stripe(&c, &eight, &body).await), "applied");
}

/// Every money path has the API's amount limits: a provider's payment of
/// 9×10^18 cents is refused, not turned into an overflowed reward.
#[tokio::test]
async fn webhook_amounts_have_the_api_limits() {
    let (c, api, _) = shop();
    add_customer(&api, "ben", "ben@example.com").await;
    let huge = json!({
        "id": "ev_cb_huge", "occurred_at": now(), "object": "event", "api_version": "v2",
        "event_type": "payment_succeeded",
        "content": {
            "transaction": {"id": "txn_huge", "customer_id": "cb_cus_1", "type": "payment", "amount": 9_000_000_000_000_000_000_i64,
                            "currency_code": "USD", "status": "success"},
            "customer": {"id": "cb_cus_1", "email": "ben@example.com"}
        }
    });
    assert_eq!(chargebee(&c, "chargebee:cb-pass", &huge).await.status, 400);
    let xml = "<?xml version=\"1.0\"?><successful_payment_notification><account><account_code>ben</account_code></account>\
               <transaction><id>rc_huge</id><amount_in_cents>9000000000000000000</amount_in_cents><currency>USD</currency>\
               </transaction></successful_payment_notification>";
    assert_eq!(recurly(&c, "recurly:rc-pass", xml).await.status, 400);
    assert_eq!(reward_amounts(&api).await, []);
    assert_eq!(c.count("SELECT count(*) FROM transactions"), 0);
}
