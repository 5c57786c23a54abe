//! Nothing lost, in a real browser: forms that leave the page at once, a
//! collector that is down when the visitor signs up, a full outbox, blocked
//! storage. Each test checks the collector's SQLite file. The merchant's pages
//! are on the shop's own host, the collector on another.

use e2e::count::{CLICKS, CUSTOMERS, SIGNUPS};
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::Client;
use serde_json::json;
use std::time::Duration;

async fn land(client: &Client, base: &str) {
    client
        .goto(&format!("{base}/?ps_partner_key={}&ps_xid=fault-1", b64("alice")))
        .await
        .unwrap();
    Page::ready(client).await;
}

/// Fills the one-click form (it calls createSignup and navigates at once,
/// without waiting) and submits it; waits for the page it lands on.
async fn quick_signup(client: &Client, base: &str, action: Option<String>) {
    client.goto(&format!("{base}/quick-signup.html")).await.unwrap();
    Page::ready(client).await;
    if let Some(action) = action {
        client
            .execute(
                "document.getElementById('quick-form').action = arguments[0];",
                vec![json!(action)],
            )
            .await
            .unwrap();
    }
    Page::submit_signup(client, "Quinn", "quinn@example.com").await;
}

#[tokio::test]
async fn a_form_that_navigates_at_once_still_delivers_its_signup() {
    with_browser(|client| async move {
        let c = Collector::shop();
        land(&client, &c.shop_url()).await;
        quick_signup(&client, &c.shop_url(), None).await;
        c.wait_for_count(CUSTOMERS, 1);
        assert_eq!(c.customers()[0].partner_key.as_deref(), Some("alice"));
        assert_eq!(c.count(SIGNUPS), 1);
    })
    .await;
}

#[tokio::test]
async fn a_form_that_navigates_to_another_origin_still_delivers_its_signup() {
    with_browser(|client| async move {
        let c = Collector::shop();
        land(&client, &c.shop_url()).await;
        // Another of the merchant's origins: `app.` instead of `www.`.
        let elsewhere = c.page("http", "app.shop.test") + "/welcome.html";
        quick_signup(&client, &c.shop_url(), Some(elsewhere.clone())).await;
        assert!(client.current_url().await.unwrap().as_str().starts_with(&elsewhere));
        c.wait_for_count(CUSTOMERS, 1);
        assert_eq!(c.customers()[0].email, "quinn@example.com");
    })
    .await;
}

/// Calls createSignup for each email and resolves with what each callback got.
const SIGN_UP_MANY: &str = r#"
    const [emails, done] = arguments;
    window.pageErrors = window.pageErrors || [];
    addEventListener("error", (e) => pageErrors.push(String(e.message)));
    const answers = [];
    for (const email of emails) {
        growsumo.data.email = email;
        growsumo.createSignup((error, result) => {
            answers.push(error ? "error: " + error.message : result.status);
            if (answers.length === emails.length) done(answers);
        });
    }
"#;

/// The events waiting in the outbox (one localStorage entry each), oldest first.
const OUTBOX: &str = r#"Object.keys(localStorage).filter((k) => k.startsWith("growsumo_ev_"))
    .map((k) => JSON.parse(localStorage[k])).sort((a, b) => a.s - b.s).map((entry) => entry.e)"#;

#[tokio::test]
async fn a_signup_made_while_the_collector_is_down_is_delivered_once_after_restart() {
    with_browser(|client| async move {
        let mut c = Collector::shop();
        let shop = c.shop_url();
        land(&client, &shop).await;
        client.goto(&format!("{shop}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        c.kill();

        let answers = client
            .execute_async(SIGN_UP_MANY, vec![json!(["late@example.com"])])
            .await
            .unwrap();
        assert_eq!(
            answers,
            json!(["queued"]),
            "the page is told the signup is safe, and may move on"
        );
        let pending = Page::eval(&client, OUTBOX).await;
        assert_eq!(pending[0]["email"], json!("late@example.com"));

        c.restart();
        // Any later page of the site with the snippet delivers it.
        client.goto(&format!("{shop}/")).await.unwrap();
        Page::ready(&client).await;
        c.wait_for_count(CUSTOMERS, 1);
        let customer = &c.customers()[0];
        assert_eq!(
            (customer.email.as_str(), customer.partner_key.as_deref()),
            ("late@example.com", Some("alice"))
        );
        // The outbox empties once the collector has answered.
        client.goto(&format!("{shop}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Page::eval(&client, OUTBOX).await != json!([]) {
            assert!(std::time::Instant::now() < deadline, "the outbox never emptied");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(c.count(SIGNUPS), 1, "delivered exactly once");
    })
    .await;
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_counts_them_and_throws_nothing() {
    with_browser(|client| async move {
        let mut c = Collector::shop();
        // A stored referral: the signup page runs stage 2 (the outbox's).
        land(&client, &c.shop_url()).await;
        c.wait_for_count(CLICKS, 1);
        client.goto(&format!("{}/signup.html", c.shop_url())).await.unwrap();
        Page::ready(&client).await;
        assert_eq!(
            Page::eval(&client, "growsumo._q.push != [].push").await,
            json!(true),
            "stage 2 runs"
        );
        c.kill();

        let emails: Vec<String> = (0..60).map(|i| format!("user{i}@example.com")).collect();
        let answers = client.execute_async(SIGN_UP_MANY, vec![json!(emails)]).await.unwrap();
        assert_eq!(answers.as_array().unwrap().len(), 60, "every callback was called");
        let pending = Page::eval(&client, OUTBOX).await;
        let queue = pending.as_array().unwrap();
        assert_eq!(queue.len(), 50, "bounded at 50 events");
        assert_eq!(
            Page::eval(&client, "localStorage.growsumo_dropped").await,
            json!("10"),
            "the 10 oldest were dropped and counted"
        );
        assert_eq!(queue[0]["email"], json!("user10@example.com"));
        assert_eq!(Page::eval(&client, "pageErrors").await, json!([]));

        c.restart();
        client.goto(&format!("{}/", c.shop_url())).await.unwrap();
        Page::ready(&client).await;
        c.wait_for_count(SIGNUPS, 50);
    })
    .await;
}

/// Storage that refuses writes (quota, private modes), and storage the
/// browser blocks outright (site data blocked: reading `localStorage`
/// throws): events live in page memory and are still sent.
#[tokio::test]
async fn blocked_storage_falls_back_to_memory_and_still_sends() {
    for blocked in ["setItem", "localStorage"] {
        blocked_storage(blocked).await;
    }
}

async fn blocked_storage(blocked: &'static str) {
    with_browser(move |client| async move {
        let c = Collector::shop();
        client.goto(&format!("{}/welcome.html", c.shop_url())).await.unwrap();
        let script = r#"
            const [pk, collector, blocked, done] = arguments;
            const refuse = () => { throw new DOMException("blocked", "SecurityError"); };
            if (blocked === "setItem") Storage.prototype.setItem = refuse;
            else Object.defineProperty(window, "localStorage", { get: refuse });
            window.growsumoInit = () => {
                growsumo.data.email = "private@example.com";
                growsumo.createSignup((error, result) => done(error ? error.message : result.status));
            };
            const gs = document.createElement("script");
            gs.src = collector + "/v1/";
            gs.onload = () => { growsumo._initialize(pk); growsumoInit(); };
            document.head.appendChild(gs);
        "#;
        let collector = c.page("http", "collector.test");
        let answer = client
            .execute_async(script, vec![json!(c.public_key), json!(collector), json!(blocked)])
            .await
            .unwrap();
        assert_eq!(answer, json!("accepted"), "with {blocked} blocked");
        assert_eq!(c.customers()[0].email, "private@example.com");
        if blocked == "setItem" {
            assert_eq!(Page::eval(&client, OUTBOX).await, json!([]));
        }
    })
    .await;
}

#[tokio::test]
async fn the_same_page_retries_once_the_collector_is_back() {
    with_browser(|client| async move {
        let mut c = Collector::shop();
        client.goto(&format!("{}/signup.html", c.shop_url())).await.unwrap();
        Page::ready(&client).await;
        c.kill();
        let answers = client
            .execute_async(SIGN_UP_MANY, vec![json!(["retry@example.com"])])
            .await
            .unwrap();
        assert_eq!(answers, json!(["queued"]));
        c.restart();
        // No navigation: the page's own backoff timer (1 s, then doubling) sends it.
        c.wait_for_count(CUSTOMERS, 1);
        assert_eq!(c.customers()[0].email, "retry@example.com");
    })
    .await;
}

/// A visitor whose browser still holds an earlier version's outbox (one
/// localStorage entry for all events): its events are delivered in their
/// order (the click before the signup it credits) and its drop count is
/// reported.
#[tokio::test]
async fn an_earlier_versions_outbox_is_delivered_in_order() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        client.goto(&format!("{shop}/welcome.html")).await.unwrap();
        let legacy = json!({"dropped": 3, "q": [
            {"pk": c.public_key, "e": {"id": "old-click", "type": "click", "ts": 1, "partner_key": "alice", "xid": "old-1"}},
            {"pk": c.public_key, "e": {"id": "old-signup", "type": "signup", "ts": 1, "email": "old@example.com",
                                       "customer_key": "old@example.com", "partner_key": "alice", "xid": "old-1"}}
        ]});
        client
            .execute(
                "localStorage.growsumo_outbox = JSON.stringify(arguments[0]); return true;",
                vec![legacy],
            )
            .await
            .unwrap();
        client.goto(&format!("{shop}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        c.wait_for_count(CUSTOMERS, 1);
        assert_eq!(c.customers()[0].source.as_deref(), Some("xid"), "the click came first");
        let text = c.metrics().await;
        assert!(text.contains("growsumo_outbox_dropped_total 3"), "{text}");
        assert_eq!(Page::eval(&client, "localStorage.growsumo_outbox ?? null").await, json!(null));
    })
    .await;
}

/// A page that calls `createSignup` and navigates at once, before stage 2
/// has loaded (a visitor with nothing stored: stage 1 only): the signup is
/// kept as the page goes away and delivered by the next page.
#[tokio::test]
async fn a_signup_sent_as_the_page_navigates_away_is_delivered() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        client.goto(&format!("{shop}/")).await.unwrap();
        Page::ready(&client).await;
        let script = "growsumo.data.email = 'gone@example.com'; growsumo.createSignup(); location.href = '/?next';";
        client.execute(script, vec![]).await.unwrap();
        c.wait_for_count(CUSTOMERS, 1);
        assert_eq!(c.customers()[0].email, "gone@example.com");
        assert_eq!(c.count(SIGNUPS), 1, "delivered once");
    })
    .await;
}

/// Stage 2 cannot load (the collector is down) on a plain page: stage 1
/// writes each signup ahead, at most 50 (a page calling createSignup in a
/// loop cannot fill the site's storage); the 10 others are refused to their
/// callbacks. A later page delivers the 50, each once.
#[tokio::test]
async fn stage_1_keeps_at_most_50_signups_while_stage_2_cannot_load() {
    with_browser(|client| async move {
        let mut c = Collector::shop();
        client.goto(&format!("{}/signup.html", c.shop_url())).await.unwrap();
        Page::ready(&client).await;
        assert_eq!(
            Page::eval(&client, "growsumo._q.push != [].push").await,
            json!(false),
            "stage 1 only"
        );
        c.kill();

        let emails: Vec<String> = (0..60).map(|i| format!("user{i}@example.com")).collect();
        let answers = client.execute_async(SIGN_UP_MANY, vec![json!(emails)]).await.unwrap();
        let answers = answers.as_array().unwrap();
        let queued = answers.iter().filter(|a| *a == "queued").count();
        assert_eq!(
            (answers.len(), queued),
            (60, 50),
            "every callback was called: {answers:?}"
        );
        assert!(answers[50..].iter().all(|a| a.as_str().unwrap().starts_with("error: ")));
        assert_eq!(Page::eval(&client, "pageErrors").await, json!([]));

        c.restart();
        client.goto(&format!("{}/", c.shop_url())).await.unwrap();
        Page::ready(&client).await;
        c.wait_for_count(SIGNUPS, 50);
        let mut emails: Vec<String> = c.customers().into_iter().map(|c| c.email).collect();
        emails.sort_by_key(|e| {
            e.trim_start_matches("user")
                .trim_end_matches("@example.com")
                .parse::<u32>()
                .unwrap()
        });
        let expected: Vec<String> = (0..50).map(|i| format!("user{i}@example.com")).collect();
        assert_eq!(emails, expected, "the 50 written ahead, each once");
    })
    .await;
}
