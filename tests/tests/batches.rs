//! What a batch of events decides is what the same events decide sent one
//! by one, on either backend: the writer stores a group of requests
//! together (one insert, one round of lookups), but a signup is decided on
//! what was stored before it, never on a click received after it in its
//! batch or group; and one signup the data refuses never fails the others
//! committed with it.

use e2e::http::post_events;
use e2e::Collector;
use serde_json::json;

async fn post(c: &Collector, events: serde_json::Value) -> (u16, String) {
    let answer = post_events(&c.url, json!({"pk": c.public_key, "events": events}).to_string()).await;
    (
        answer.status.as_u16(),
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

/// Open program (`--auto-partners`): partner "carol" exists (made by a
/// first signup); a signup naming "Carol" makes the writer create a
/// partnership whose placeholder email "Carol@partners.invalid" clashes
/// (case-blind) with carol's, `create_partner` refuses it, and the whole writer group fails:
/// every request committed with it (here an innocent click in the same
/// batch) is answered 503, and the snippet's retry fails again, forever.
#[tokio::test]
async fn a_partner_key_differing_only_in_case_does_not_fail_the_group() {
    let c = Collector::start_with_key(&["--auto-partners"]);
    let first = post(
        &c,
        json!([{"id": "s1", "type": "signup", "partner_key": "carol", "email": "a@example.com"}]),
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    let second = post(
        &c,
        json!([
            {"id": "c2", "type": "click", "partner_key": "alice"},
            {"id": "s2", "type": "signup", "partner_key": "Carol", "email": "b@example.com"}
        ]),
    )
    .await;
    assert_eq!(
        second.0, 200,
        "a signup naming \"Carol\" failed its batch: {}",
        second.1
    );
}

/// The batched group inserts every event of the group before it decides
/// any signup, so a click that arrives after a signup (later in the same
/// batch, or in a later request of the same group) now counts for it. The
/// same events in the same order, sent as separate requests, are decided
/// otherwise. (Before "PostgreSQL ingest in fewer round trips", each event
/// was inserted just before it was decided: both visitors got alice.)
#[tokio::test]
async fn a_click_after_a_signup_in_one_batch_does_not_change_its_credit() {
    let c = Collector::start();
    // Alice's visitors clicked her links (click ids "spring" and "summer").
    for (id, xid) in [("c1", "spring"), ("c2", "summer")] {
        let clicked = post(
            &c,
            json!([{"id": id, "type": "click", "partner_key": "alice", "xid": xid}]),
        )
        .await;
        assert_eq!(clicked.0, 200, "{}", clicked.1);
    }
    // Visitor 1: the signup (its click id only), then another partner's
    // click reusing the id, as two requests.
    post(
        &c,
        json!([{"id": "s1", "type": "signup", "xid": "spring", "email": "v1@example.com"}]),
    )
    .await;
    post(
        &c,
        json!([{"id": "m1", "type": "click", "partner_key": "mallory", "xid": "spring"}]),
    )
    .await;
    // Visitor 2: the same two events, in the same order, in one batch.
    let batch = post(
        &c,
        json!([
            {"id": "s2", "type": "signup", "xid": "summer", "email": "v2@example.com"},
            {"id": "m2", "type": "click", "partner_key": "mallory", "xid": "summer"}
        ]),
    )
    .await;
    assert_eq!(batch.0, 200, "{}", batch.1);
    assert_eq!(c.credited("v1@example.com"), "alice via xid");
    assert_eq!(
        c.credited("v2@example.com"),
        "alice via xid",
        "a click received after the signup changed its credit"
    );
}

/// Same cause, fingerprint: a click received after the signup (later in
/// its batch) suggests its partner for a signup that came before it.
#[tokio::test]
async fn a_later_click_in_the_batch_suggests_no_partner() {
    let c = Collector::start();
    let fp = "ab12cd34ef56ab12";
    post(
        &c,
        json!([{"id": "s1", "type": "signup", "email": "v1@example.com", "fingerprint": fp}]),
    )
    .await;
    post(
        &c,
        json!([{"id": "k1", "type": "click", "partner_key": "alice", "fingerprint": fp}]),
    )
    .await;
    let fp2 = "9f8e7d6c5b4a3f2e";
    let batch = post(
        &c,
        json!([
            {"id": "s2", "type": "signup", "email": "v2@example.com", "fingerprint": fp2},
            {"id": "k2", "type": "click", "partner_key": "alice", "fingerprint": fp2}
        ]),
    )
    .await;
    assert_eq!(batch.0, 200, "{}", batch.1);
    assert_eq!(c.credited("v1@example.com"), "nobody");
    assert_eq!(
        c.credited("v2@example.com"),
        "nobody",
        "a click received after the signup was suggested for it"
    );
}

/// Two clicks in one batch sharing a click id for two partners are counted
/// as a reuse, as when they come one by one.
#[tokio::test]
async fn a_click_id_reused_within_a_batch_is_counted() {
    let c = Collector::start();
    let conflicts = async || {
        let metrics = c.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("growsumo_click_id_conflicts_total "))
            .map(|n| n.trim().parse::<u64>().expect("a count"))
            .expect("the metric")
    };
    let batch = post(
        &c,
        json!([
            {"id": "a1", "type": "click", "partner_key": "alice", "xid": "shared"},
            {"id": "m1", "type": "click", "partner_key": "mallory", "xid": "shared"}
        ]),
    )
    .await;
    assert_eq!(batch.0, 200, "{}", batch.1);
    assert_eq!(conflicts().await, 1);
    // And against one stored before.
    post(
        &c,
        json!([{"id": "m2", "type": "click", "partner_key": "mallory", "xid": "shared"}]),
    )
    .await;
    assert_eq!(conflicts().await, 2);
}
