//! Stage 1 writes every signup ahead to localStorage (`growsumo_q<id>`), for
//! stage 2 to send: the cases where that copy could duplicate a signup,
//! credit the wrong partner, or outlive the consent or the browser that
//! should have dropped it. (Each of these failed against the first version
//! of the write-ahead.)

use e2e::count::{CLICKS, CUSTOMERS, SIGNUPS};
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::Client;
use serde_json::{json, Value};

/// The signups written ahead and not yet taken by a stage 2.
const WRITTEN: &str = "Object.keys(localStorage).filter((k) => k.startsWith('growsumo_q'))";

/// Signs up on a page whose collector path is dead (`/down`: stage 2 cannot
/// load), after loading stage 1 as the embed code does; returns what the
/// callback heard.
async fn sign_up_without_stage_2(client: &Client, c: &Collector, email: &str) -> Value {
    let script = r#"
        const [pk, collector, email, done] = arguments;
        const gs = document.createElement("script");
        gs.src = collector + "/v1/";
        gs.onload = () => {
            growsumo._initialize(pk, { collector: collector + "/down" });
            growsumo.data.email = email;
            growsumo.createSignup((e, r) => done(e ? e.message : r.status));
        };
        document.head.appendChild(gs);
    "#;
    let collector = c.page("http", "collector.test");
    client
        .execute_async(script, vec![json!(c.public_key), json!(collector), json!(email)])
        .await
        .unwrap()
}

/// Tab A is still loading stage 2 (held back: a slow network) when tab B
/// replays A's written-ahead signup; then A's stage 2 sends its own: one
/// event id, one signup stored.
#[tokio::test]
async fn a_signup_replayed_by_another_tab_is_stored_once() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        Page::open(&client, &format!("{shop}/")).await;
        let a = client.window().await.unwrap();
        client
            .execute(
                r#"window.held = [];
                   const head = document.head, append = head.append;
                   head.append = function (n) { held.push(n); };
                   window.release = () => held.forEach((n) => append.call(head, n));
                   growsumo.data.email = 'dup@example.com';
                   growsumo.createSignup((e, r) => { window.answer = e ? e.message : r.status; });"#,
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(Page::eval(&client, &format!("{WRITTEN}.length")).await, json!(1));

        let b = client.new_window(true).await.unwrap();
        client.switch_to_window(b.handle).await.unwrap();
        Page::open(&client, &format!("{shop}/?b")).await;
        c.wait_for_count(SIGNUPS, 1);

        client.switch_to_window(a).await.unwrap();
        client.execute("release();", vec![]).await.unwrap();
        // A's callback, then A's outbox settled by the collector's answer.
        assert!(
            Page::until(&client, "window.answer !== undefined", 10).await,
            "the callback never ran"
        );
        assert!(
            Page::until(
                &client,
                "!Object.keys(localStorage).some((k) => k.startsWith('growsumo_ev_'))",
                10
            )
            .await,
            "the outbox never emptied"
        );
        assert_eq!((c.count(SIGNUPS), c.count(CUSTOMERS)), (1, 1), "one signup stored");
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
        assert_eq!(
            Page::eval(&client, "[growsumo.data.partner_key, localStorage.growSumoPartnerKey]").await,
            json!(["alice", "bob"]),
            "the cookie says alice, app.'s mirror still bob"
        );

        client.goto(&format!("{app}/welcome.html")).await.unwrap();
        let answer = sign_up_without_stage_2(&client, &c, "ann@example.com").await;
        assert_eq!(answer, json!("queued"));
        Page::open(&client, &format!("{app}/")).await;
        c.wait_for_count(CUSTOMERS, 1);
        assert_eq!(c.customers()[0].partner_key.as_deref(), Some("alice"));
    })
    .await;
}

/// consent(false) on a page whose stage 2 runs, then a signup while stage 2
/// is stuck on the refusal (the collector stopped), and the page leaves: the
/// signup is neither written ahead nor sent by a later page.
#[tokio::test]
async fn a_signup_made_after_a_refusal_is_never_sent() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        Page::open(&client, &format!("{shop}/capture.html")).await;
        // A signup form in use: stage 2 loads and takes the queue.
        client
            .execute("document.querySelector('#beta-form input').focus();", vec![])
            .await
            .unwrap();
        assert!(
            Page::until(&client, "growsumo._q.push != [].push", 10).await,
            "stage 2 never took the queue"
        );

        let pid = c.pid().to_string();
        let signal = |name: &str| {
            let status = std::process::Command::new("kill").args([name, &pid]).status().unwrap();
            assert!(status.success());
        };
        signal("-STOP");
        let written = Page::eval(
            &client,
            &format!(
                "growsumo.consent(false), growsumo.data.email = 'refused@example.com', \
                 growsumo.createSignup(), {WRITTEN}"
            ),
        )
        .await;
        assert_eq!(written, json!([]), "nothing written ahead after a refusal");
        client.goto("about:blank").await.unwrap();
        signal("-CONT");

        // A later page's own signup is sent; the refused one never is.
        Page::open(&client, &format!("{shop}/")).await;
        client
            .execute(
                "growsumo.data.email = 'after@example.com'; growsumo.createSignup();",
                vec![],
            )
            .await
            .unwrap();
        c.wait_for_count(CUSTOMERS, 1);
        let emails: Vec<String> = c.customers().into_iter().map(|c| c.email).collect();
        assert_eq!(emails, ["after@example.com"]);
        assert_eq!(c.count(SIGNUPS), 1);
    })
    .await;
}

/// A page whose CSP blocks WebAssembly: a key that requires consent writes
/// nothing ahead; any other key's written-ahead signup is dropped once the
/// wasm fails (its callback hears so), instead of staying, email and all,
/// and loading stage 2 on every later page view.
#[tokio::test]
async fn where_the_wasm_cannot_run_no_signup_stays_written_ahead() {
    for flags in [&["--require-consent"][..], &[]] {
        with_browser(|client| async move {
            let c = Collector::shop_with_key(flags);
            let site = c.page("http", "nowasm.shop.test");
            Page::open(&client, &format!("{site}/")).await;
            let script = r#"const done = arguments[0];
                growsumo.data.email = "kept@example.com";
                growsumo.createSignup((e, r) => done(e ? e.message : r.status));"#;
            let answer = client.execute_async(script, vec![]).await.unwrap();
            assert!(
                answer.as_str().unwrap().contains("Content-Security-Policy"),
                "{flags:?}: {answer}"
            );
            assert_eq!(Page::eval(&client, WRITTEN).await, json!([]), "{flags:?}");

            Page::open(&client, &format!("{site}/?again")).await;
            let stage2 = Page::eval(
                &client,
                "performance.getEntriesByType('resource').some((e) => /growsumo-/.test(e.name))",
            )
            .await;
            assert_eq!(stage2, json!(false), "{flags:?}: a later page view loads stage 1 only");
        })
        .await;
    }
}
