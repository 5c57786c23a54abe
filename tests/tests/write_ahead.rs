//! Stage 1 writes every signup ahead to localStorage (`growsumo_q<id>`), for
//! stage 2 to send: the cases where that copy could duplicate a signup,
//! credit the wrong partner, or outlive the consent or the browser that
//! should have dropped it. (Each of these failed against the first version
//! of the write-ahead.)
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::Client;
use serde_json::json;
use std::time::Duration;

const SIGNUPS: &str = "SELECT count(*) FROM events WHERE type = 'signup'";
const CUSTOMERS: &str = "SELECT count(*) FROM customers";
const CLICKS: &str = "SELECT count(*) FROM events WHERE type = 'click'";

fn signup_ids(c: &Collector) -> Vec<String> {
    let db = c.db();
    let mut st = db.prepare("SELECT event_id FROM events WHERE type = 'signup'").unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn wq(client: &Client) -> serde_json::Value {
    Page::eval(
        client,
        "Object.keys(localStorage).filter(k => k.startsWith('growsumo_q')).map(k => localStorage[k])",
    )
    .await
}

/// Tab A is still loading stage 2 (held back: a slow network) when tab B
/// replays A's written-ahead signup; then A's stage 2 sends its own: one
/// event id, one signup stored.
#[tokio::test]
async fn a_signup_replayed_by_another_tab_is_stored_once() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        client.goto(&format!("{shop}/")).await.unwrap();
        Page::ready(&client).await;
        let a = client.window().await.unwrap();
        client
            .execute(
                r#"window.held = [];
                   const head = document.head, append = head.append;
                   head.append = function (n) { held.push(n); };
                   window.release = () => held.forEach((n) => append.call(head, n));
                   growsumo.data.email = 'dup@example.com';
                   growsumo.createSignup((e, r) => { window.answer = e ? e.message : JSON.stringify(r); });
                   return true;"#,
                vec![],
            )
            .await
            .unwrap();
        println!("written ahead: {}", wq(&client).await);
        let b = client.new_window(true).await.unwrap();
        client.switch_to_window(b.handle).await.unwrap();
        client.goto(&format!("{shop}/?b")).await.unwrap();
        Page::ready(&client).await;
        c.wait_for_count(SIGNUPS, 1);
        client.switch_to_window(a).await.unwrap();
        client.execute("release(); return true;", vec![]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        println!("A's callback: {}", Page::eval(&client, "window.answer").await);
        let ids = signup_ids(&c);
        assert_eq!(ids.len(), 1, "signup events stored: {ids:?}");
    })
    .await;
}

/// The referral is the domain-wide cookie (alice, from a www landing); app.'s
/// own localStorage mirror still says bob (an older landing on app.). A signup
/// on app. whose stage 2 cannot load is replayed with alice, not bob.
#[tokio::test]
async fn a_replayed_signup_credits_the_referral_cookie_not_a_stale_mirror() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let app = c.page("http", "app.shop.test");
        let www = c.shop_url();
        Page::open(&client, &format!("{app}/?ps_partner_key={}&ps_xid=app-1", b64("bob"))).await;
        c.wait_for_count(CLICKS, 1);
        Page::open(&client, &format!("{www}/?ps_partner_key={}&ps_xid=www-1", b64("alice"))).await;
        c.wait_for_count(CLICKS, 2);
        Page::open(&client, &format!("{app}/")).await;
        let now = Page::eval(
            &client,
            "[growsumo.data.partner_key, localStorage.growSumoPartnerKey, document.cookie]",
        )
        .await;
        println!("on app.: data, mirror, cookies = {now}");
        client.goto(&format!("{app}/welcome.html")).await.unwrap();
        let script = r#"
            const [pk, collector, done] = arguments;
            const gs = document.createElement("script");
            gs.src = collector + "/v1/";
            gs.onload = () => {
                growsumo._initialize(pk, { collector: collector + "/down" });
                growsumo.data.email = "ann@example.com";
                growsumo.createSignup((e, r) => done(e ? e.message : r.status));
            };
            document.head.appendChild(gs);
        "#;
        let collector = c.page("http", "collector.test");
        let answer = client
            .execute_async(script, vec![json!(c.public_key), json!(collector)])
            .await
            .unwrap();
        println!("callback: {answer}; written: {}", wq(&client).await);
        Page::open(&client, &format!("{app}/")).await;
        c.wait_for_count(CUSTOMERS, 1);
        let cust = &c.customers()[0];
        assert_eq!(
            cust.partner_key.as_deref(),
            Some("alice"),
            "credited {:?}",
            cust.partner_key
        );
    })
    .await;
}

/// consent(false) on a page whose stage 2 runs, then a signup while stage 2
/// is still busy with the refusal (the collector slow), and the page leaves:
/// the next page must not send the signup made after the refusal.
#[tokio::test]
async fn a_signup_made_after_a_refusal_is_never_sent() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        client.goto(&format!("{shop}/capture.html")).await.unwrap();
        Page::ready(&client).await;
        // A signup form in use: stage 2 loads.
        client.execute("document.querySelector('#beta-form input').focus(); return true;", vec![]).await.unwrap();
        for _ in 0..50 {
            if Page::eval(&client, "growsumo._q.push != [].push").await == json!(true) { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = c.pid().to_string();
        std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        let written = Page::eval(&client, "(growsumo.consent(false), growsumo.data.email = 'refused@example.com', growsumo.createSignup(), Object.keys(localStorage).filter(k => k.startsWith('growsumo_q')))").await;
        println!("written after the refusal: {written}");
        client.execute("location.href = 'welcome.html'; return true;", vec![]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        println!("on {}: {}", client.current_url().await.unwrap(), wq(&client).await);
        std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
        Page::open(&client, &format!("{shop}/")).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(c.count(SIGNUPS), 0, "a signup made after consent(false) was sent");
    })
    .await;
}

/// A key that requires consent, a page whose CSP blocks WebAssembly: the
/// signup (its callback hears an error) must not stay in localStorage, email
/// and all, making every later page view load stage 2.
#[tokio::test]
async fn where_the_wasm_cannot_run_no_signup_stays_written_ahead() {
    with_browser(|client| async move {
        let c = Collector::shop_with_key(&["--require-consent"]);
        let site = c.page("http", "nowasm.shop.test");
        Page::open(&client, &format!("{site}/")).await;
        let script = r#"const done = arguments[0];
            growsumo.data.email = "kept@example.com";
            growsumo.createSignup((e, r) => done(e ? e.message : r.status));"#;
        let answer = client.execute_async(script, vec![]).await.unwrap();
        println!("callback: {answer}");
        Page::open(&client, &format!("{site}/?again")).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stage2 = Page::eval(
            &client,
            "performance.getEntriesByType('resource').map(e => e.name).filter(n => /growsumo-/.test(n))",
        )
        .await;
        let kept = wq(&client).await;
        println!("after a reload: stage 2 loaded: {stage2}; written ahead: {kept}");
        assert_eq!(kept, json!([]));
    })
    .await;
}
