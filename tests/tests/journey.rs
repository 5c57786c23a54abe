//! The main path in a real browser: a partner link lands, the snippet keeps
//! the referral, a later signup on another page is stored with its partner.
//! The merchant's pages are on the shop's own web server and host
//! (`www.shop.test`), the collector on another (`collector.test`), as the
//! README's install has it.

use e2e::http::{stripe_invoice, stripe_webhook};
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::{Client, Locator};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

const NINETY_DAYS: u64 = 90 * 24 * 3600;

/// Fills and submits the demo signup form, then waits for the welcome page
/// (the form continues in createSignup's callback, after the collector
/// acknowledged the signup).
async fn sign_up(client: &Client, base: &str, name: &str, email: &str) {
    client.goto(&format!("{base}/signup.html")).await.unwrap();
    Page::ready(client).await;
    let status = Page::submit_signup(client, name, email).await;
    assert_eq!(status, "Your account is ready.", "createSignup reported an error");
}

async fn journey(client: Client, landing_query: String, xid: &str) {
    let collector = Collector::shop();
    let base = collector.shop_url();
    client.goto(&format!("{base}/?{landing_query}")).await.unwrap();
    Page::ready(&client).await;

    assert_eq!(Page::eval(&client, "growsumo.data.partner_key").await, json!("alice"));
    assert_eq!(Page::eval(&client, "growsumo.data.xid").await, json!(xid));
    let text = client
        .find(Locator::Id("referral"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "You were referred by alice.");

    let cookie = client.get_named_cookie("growSumoPartnerKey").await.unwrap();
    assert_eq!(cookie.value(), "alice");
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expires = cookie.expires_datetime().expect("a persistent cookie").unix_timestamp() as u64;
    assert!(
        expires.abs_diff(now + NINETY_DAYS) < 120,
        "cookie expires in {} s",
        expires - now
    );
    assert_eq!(client.get_named_cookie("gsxid").await.unwrap().value(), xid);
    let mirror = Page::eval(&client, "[localStorage.growSumoPartnerKey, localStorage.gsxid]").await;
    assert_eq!(mirror, json!(["alice", xid]));

    sign_up(&client, &base, "Ann Example", "ann@example.com").await;

    let customers = collector.customers();
    assert_eq!(customers.len(), 1, "{customers:?}");
    let ann = &customers[0];
    assert_eq!(
        (ann.customer_key.as_str(), ann.email.as_str(), ann.name.as_str()),
        ("ann@example.com", "ann@example.com", "Ann Example")
    );
    assert_eq!(ann.partner_key.as_deref(), Some("alice"));
    assert_eq!(ann.xid.as_deref(), Some(xid));
    // The landing sent a click with this id, so the signup is credited through it.
    assert_eq!(ann.source.as_deref(), Some("xid"));
    assert_eq!(collector.count("SELECT count(*) FROM events WHERE type = 'click'"), 1);

    let listed = collector.cli(&["customers", "list"]);
    assert!(
        listed.contains("ann@example.com") && listed.contains("alice") && listed.contains(xid),
        "{listed}"
    );
}

#[tokio::test]
async fn partner_link_then_signup_is_credited() {
    with_browser(|client| async move {
        let query = format!("ps_partner_key={}&ps_xid=click-123", b64("alice").trim_end_matches('='));
        journey(client, query, "click-123").await;
    })
    .await;
}

#[tokio::test]
async fn legacy_gspk_link_is_credited() {
    with_browser(|client| async move {
        // Standard base64 with its padding percent-encoded, as old links carry it.
        let query = format!("gspk={}&gsxid=legacy-9", b64("alice").replace('=', "%3D"));
        journey(client, query, "legacy-9").await;
    })
    .await;
}

#[tokio::test]
async fn signup_without_a_partner_link_is_not_attributed() {
    with_browser(|client| async move {
        let collector = Collector::shop();
        client.goto(&format!("{}/", collector.shop_url())).await.unwrap();
        Page::ready(&client).await;
        assert_eq!(Page::eval(&client, "growsumo.data.partner_key").await, json!(""));
        sign_up(&client, &collector.shop_url(), "Nobody", "direct@example.com").await;
        let customers = collector.customers();
        assert_eq!(customers.len(), 1);
        assert_eq!(
            (customers[0].partner_key.clone(), customers[0].source.clone()),
            (None, None)
        );
        assert!(
            client.get_named_cookie("growSumoPartnerKey").await.is_err(),
            "no referral cookie without a link"
        );
    })
    .await;
}

#[tokio::test]
async fn last_click_wins() {
    with_browser(|client| async move {
        let collector = Collector::shop();
        let base = &collector.shop_url();
        client
            .goto(&format!("{base}/?ps_partner_key={}&ps_xid=a1", b64("alice")))
            .await
            .unwrap();
        Page::ready(&client).await;
        client
            .goto(&format!("{base}/?ps_partner_key={}", b64("bob")))
            .await
            .unwrap();
        Page::ready(&client).await;
        assert_eq!(
            Page::eval(&client, "[growsumo.data.partner_key, growsumo.data.xid]").await,
            json!(["bob", ""])
        );
        assert_eq!(
            client.get_named_cookie("growSumoPartnerKey").await.unwrap().value(),
            "bob"
        );
        // A later page without a link keeps the last referral.
        client.goto(&format!("{base}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        assert_eq!(Page::eval(&client, "growsumo.data.partner_key").await, json!("bob"));
        sign_up(&client, base, "Bea", "bea@example.com").await;
        let customer = &collector.customers()[0];
        assert_eq!(
            (customer.partner_key.as_deref(), customer.source.as_deref()),
            (Some("bob"), Some("partner_key"))
        );
    })
    .await;
}

/// Loads the snippet the way the embed code does and calls `createSignup`
/// right after `_initialize`, before the wasm can have loaded; returns what
/// the callback received. Page errors are collected, to prove none escaped.
const EARLY_SIGNUP: &str = r#"
    const [pk, email, collector, done] = arguments;
    window.pageErrors = [];
    addEventListener("error", (e) => pageErrors.push(String(e.message)));
    addEventListener("unhandledrejection", (e) => pageErrors.push(String(e.reason)));
    const gs = document.createElement("script");
    gs.src = collector + "/v1/";
    gs.async = true;
    gs.onload = () => {
        growsumo._initialize(pk);
        growsumo.data.email = email;
        growsumo.data.name = "Early Bird";
        growsumo.createSignup((error, result) => done({
            error: error ? { message: error.message, field: error.field || null } : null,
            status: result ? result.status : null,
        }));
        growsumo.data.email = "changed-after-the-call@example.com";
    };
    document.head.appendChild(gs);
"#;

#[tokio::test]
async fn create_signup_right_after_initialize_lands() {
    with_browser(|client| async move {
        let collector = Collector::shop();
        client
            .goto(&format!("{}/welcome.html", collector.shop_url()))
            .await
            .unwrap();
        let answer = client
            .execute_async(
                EARLY_SIGNUP,
                vec![
                    json!(collector.public_key),
                    json!("early@example.com"),
                    json!(collector.page("http", "collector.test")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(answer, json!({"error": null, "status": "accepted"}));
        let customers = collector.customers();
        assert_eq!(customers.len(), 1);
        assert_eq!(
            customers[0].email, "early@example.com",
            "the data as it was at the call"
        );
        assert_eq!(Page::eval(&client, "pageErrors").await, json!([]));
    })
    .await;
}

#[tokio::test]
async fn callback_gets_the_rejected_field() {
    with_browser(|client| async move {
        let collector = Collector::shop();
        client
            .goto(&format!("{}/welcome.html", collector.shop_url()))
            .await
            .unwrap();
        let answer = client
            .execute_async(
                EARLY_SIGNUP,
                vec![
                    json!(collector.public_key),
                    json!("not-an-email"),
                    json!(collector.page("http", "collector.test")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(answer["error"]["field"], json!("email"), "{answer}");
        assert_eq!(collector.customers().len(), 0);
        assert_eq!(Page::eval(&client, "pageErrors").await, json!([]));
    })
    .await;
}

/// The whole story: a partner link, a signup in the browser, the customer's
/// first invoice paid in Stripe (a signed webhook), and the partner's
/// reward, read through the merchant API.
#[tokio::test]
async fn partner_link_signup_payment_reward() {
    let (c, api) = Collector::shop_selling("whsec_story");
    let base = c.shop_url();
    with_browser(move |client| async move {
        let landing = format!("{base}/?ps_partner_key={}&ps_xid=story-1", b64("alice"));
        client.goto(&landing).await.unwrap();
        Page::ready(&client).await;
        sign_up(&client, &base, "Dee Example", "dee@example.com").await;
    })
    .await;
    let invoice = stripe_invoice("story", "dee@example.com", 4900);
    let answer = stripe_webhook(&c.url, "whsec_story", &invoice).await;
    assert_eq!(answer.json()["outcome"], "applied");
    let rewards = api
        .call("GET", "rewards?partner_key=alice", serde_json::Value::Null)
        .await
        .json();
    let reward = &rewards["data"]["items"][0];
    assert_eq!(
        (
            reward["customer"]["customer_key"].clone(),
            reward["amount"].clone(),
            reward["currency"].clone()
        ),
        (json!("dee@example.com"), json!(1225), json!("USD"))
    );
    assert_eq!(reward["reward_status"], "new");
}
