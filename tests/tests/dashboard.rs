//! The dashboard in Chromium: sign in with the secret key, see a customer a
//! real snippet signup created, an attacker's `<script>` name shown as text,
//! the CSV export, partners' figures, transactions, approving and paying a
//! reward, the installation check, sign out. Screenshots of each page
//! go to `target/dashboard-screenshots/` for a reviewer.

use e2e::http::{send, Api};
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::{Client, Locator};
use std::sync::Arc;

const XSS: &str = "<script>document.title='owned'</script><img src=x onerror=alert(1)>";

async fn screenshot(client: &Client, name: &str) {
    let dir = e2e::target_dir().join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text(client: &Client, id: &str) -> String {
    client.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn sign_in_see_customers_safely_export_and_sign_out() {
    // The merchant's live site on its own host; the dashboard on the collector.
    let c = Arc::new(Collector::shop_with_key(&["--mode", "live"]));
    let cc = c.clone();
    with_browser(move |client| async move {
        let base = cc.url.clone();
        let shop = cc.shop_url();
        client
            .goto(&format!("{shop}/?ps_partner_key={}&ps_xid=d1", b64("alice")))
            .await
            .unwrap();
        Page::ready(&client).await;
        client.goto(&format!("{shop}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        Page::submit_signup(&client, XSS, "mallory@example.com").await;
        cc.wait_for_count("SELECT count(*) FROM customers", 1);

        client.goto(&format!("{base}/dashboard")).await.unwrap();
        assert!(client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/dashboard/sign-in"));
        screenshot(&client, "1-sign-in").await;
        let field = client.find(Locator::Id("secret-key")).await.unwrap();
        field.send_keys("sk_test_wrong").await.unwrap();
        client
            .find(Locator::Id("sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let error = client.wait().for_element(Locator::Id("error")).await.unwrap();
        assert_eq!(error.text().await.unwrap(), "That is not an active secret key.");
        let field = client.find(Locator::Id("secret-key")).await.unwrap();
        field.send_keys(cc.secret_key.as_deref().unwrap()).await.unwrap();
        client
            .find(Locator::Id("sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        client.wait().for_element(Locator::Id("customers")).await.unwrap();
        screenshot(&client, "2-customers").await;
        assert_eq!(text(&client, "mode").await, "LIVE data");
        let row = client
            .wait()
            .for_element(Locator::Css("#customers tbody tr"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            row.starts_with("alice mallory@example.com mallory@example.com"),
            "{row}"
        );
        // The stored name is shown as text: no element, no script ran.
        assert_eq!(
            client
                .find(Locator::Css("td.name"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            XSS
        );
        assert_eq!(
            Page::eval(&client, "document.querySelectorAll('main script, main img').length").await,
            0
        );
        assert_ne!(client.title().await.unwrap(), "owned");

        client
            .find(Locator::Id("search"))
            .await
            .unwrap()
            .send_keys("mallory@")
            .await
            .unwrap();
        client
            .find(Locator::Css("form[action='/dashboard/customers'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The search is a GET form: wait for its page, not the old one.
        let searched = url::Url::parse(&format!("{base}/dashboard/customers?q=mallory%40")).unwrap();
        client.wait().for_url(&searched).await.unwrap();
        assert_eq!(
            client
                .find_all(Locator::Css("#customers tbody tr"))
                .await
                .unwrap()
                .len(),
            1
        );

        // The export link's target, fetched with the session cookie from a
        // page of the same site (the dashboard's own CSP allows no script,
        // so not from there).
        client.goto(&format!("{base}/welcome.html")).await.unwrap();
        let csv = client
            .execute_async(
                "const done = arguments[0]; fetch('/dashboard/customers.csv').then(r => r.text()).then(done);",
                vec![],
            )
            .await
            .unwrap();
        let csv = csv.as_str().unwrap();
        assert!(csv.starts_with("customer_key,email,name,partner_key"), "{csv}");
        assert!(csv.contains("mallory@example.com,mallory@example.com,"), "{csv}");

        // An offer and a payment: the money pages.
        let pk = cc.public_key.clone();
        cc.cli(&["offers", "set", &pk, "--key", "share", "--kind", "percent", "--percent", "10"]);
        let api = Api::new(&base, &pk, cc.secret_key.as_deref().unwrap());
        let payment = serde_json::json!({"key": "t1", "customer_email": "mallory@example.com", "amount": 10000, "currency": "USD"});
        assert_eq!(api.call("POST", "transactions", payment).await.status, 200);

        client.goto(&format!("{base}/dashboard/partners")).await.unwrap();
        screenshot(&client, "3-partners").await;
        // The demo's partners: alice (the link's) and bob.
        let alice_row = Locator::XPath("//table[@id='partners']//tr[td[2]='alice@demo.invalid']");
        let partner = client.find(alice_row).await.unwrap().text().await.unwrap();
        assert!(partner.contains("alice@demo.invalid 1 1 100.0% USD 100.00 USD 10.00"), "{partner}");
        // The chart: 90 days, today's click and signup at the peak (y = 28).
        let last_points = Page::eval(
            &client,
            "['clicks-line', 'signups-line'].map(id => { const p = document.getElementById(id).getAttribute('points').split(' '); return [p.length, p[p.length - 1].split(',')[1]]; })",
        )
        .await;
        assert_eq!(last_points, serde_json::json!([[90, "28.0"], [90, "28.0"]]));
        client.find(Locator::LinkText("alice")).await.unwrap().click().await.unwrap();
        client.wait().for_element(Locator::LinkText("all partners")).await.unwrap();
        client.goto(&format!("{base}/dashboard/transactions")).await.unwrap();
        screenshot(&client, "4-transactions").await;
        let row = client.find(Locator::Css("#transactions tbody tr")).await.unwrap().text().await.unwrap();
        assert!(row.starts_with("t1 mallory@example.com USD 100.00"), "{row}");
        client.goto(&format!("{base}/dashboard/rewards")).await.unwrap();
        for status in ["approved", "paid"] {
            let button = format!("#rewards button[value='{status}']");
            client.find(Locator::Css(&button)).await.unwrap().click().await.unwrap();
            // The page after the form's redirect shows the new status.
            let changed = format!("//table[@id='rewards']//td[@class='status' and text()='{status}']");
            client.wait().for_element(Locator::XPath(&changed)).await.unwrap();
        }
        screenshot(&client, "5-rewards").await;
        assert_eq!(cc.count("SELECT count(*) FROM rewards WHERE status = 'paid'"), 1);

        client.goto(&format!("{base}/dashboard/installation")).await.unwrap();
        screenshot(&client, "6-installation").await;
        assert!(text(&client, "embed").await.contains(&cc.public_key));
        assert!(text(&client, "last-event").await.starts_with("Working"));

        client
            .find(Locator::Id("sign-out"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client.wait().for_element(Locator::Id("secret-key")).await.unwrap();
        client.goto(&format!("{base}/dashboard/customers")).await.unwrap();
        assert!(client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/dashboard/sign-in"));
        screenshot(&client, "7-signed-out").await;
    })
    .await;
}

/// The headers and refusals, over plain HTTP.
#[tokio::test]
async fn pages_forbid_scripts_and_forms_need_the_session_token() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let sign_in = send(
        "POST",
        &format!("{}/dashboard/sign-in", c.url),
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("secret_key={}", c.secret_key.as_deref().unwrap()),
    )
    .await;
    assert_eq!(sign_in.status, 303);
    let cookie = sign_in.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; HttpOnly; SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = send(
        "GET",
        &format!("{}/dashboard/customers", c.url),
        &[("cookie", &session)],
        "",
    )
    .await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    // A cross-site form post without the session's token is refused.
    let forged = send(
        "POST",
        &format!("{}/dashboard/sign-out", c.url),
        &[
            ("cookie", &session),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "csrf=guess",
    )
    .await;
    assert_eq!(forged.status, 403);
    let still = send(
        "GET",
        &format!("{}/dashboard/customers", c.url),
        &[("cookie", &session)],
        "",
    )
    .await;
    assert_eq!(still.status, 200);
    let anonymous = send("GET", &format!("{}/dashboard/customers.csv", c.url), &[], "").await;
    assert_eq!(anonymous.status, 303);
}
async fn customers_page(c: &Collector, session: &str) -> String {
    let page = send(
        "GET",
        &format!("{}/dashboard/customers", c.url),
        &[("cookie", session)],
        "",
    )
    .await;
    String::from_utf8(page.body.to_vec()).unwrap()
}

/// A live sign-in switches between the pair's live and test data; a test
/// secret never opens live data.
#[tokio::test]
async fn a_live_sign_in_switches_to_its_test_key_and_never_the_reverse() {
    let c = Collector::start_with_key(&["--mode", "live"]);
    // A test key of the same name is no sibling until paired.
    let (test_pk, test_secret) = c.create_key(&["--mode", "test", "--name", "demo"]);
    let unpaired = customers_page(&c, &c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await).await;
    assert!(!unpaired.contains("/dashboard/switch"), "a name makes no pair");
    c.cli(&["keys", "pair", &c.public_key, &test_pk]);
    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let live = customers_page(&c, &session).await;
    assert!(
        live.contains("LIVE data") && live.contains("Switch to test data"),
        "{live}"
    );
    let csrf = e2e::http::csrf_of(&live);
    let switched = send(
        "POST",
        &format!("{}/dashboard/switch", c.url),
        &[
            ("cookie", &session),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(switched.status, 303);
    let test = customers_page(&c, &session).await;
    assert!(
        test.contains("TEST data") && test.contains("Switch to live data"),
        "{test}"
    );

    let test_only = c.dashboard_sign_in(&test_secret).await;
    let page = customers_page(&c, &test_only).await;
    assert!(
        page.contains("TEST data") && !page.contains("/dashboard/switch"),
        "{page}"
    );
}

/// A control character in a page's filter (PostgreSQL cannot compare a NUL)
/// is left out, never a server error, on either backend.
#[tokio::test]
async fn a_control_character_in_a_filter_is_not_a_server_error() {
    let c = Collector::start();
    let cookie = c
        .dashboard_sign_in(c.secret_key.as_deref().expect("the demo secret"))
        .await;
    for path in ["/dashboard/customers?q=a%00b", "/dashboard/partners?partner=a%00b"] {
        let answer = e2e::http::send("GET", &format!("{}{path}", c.url), &[("cookie", cookie.as_str())], "").await;
        assert_eq!(answer.status.as_u16(), 200, "{path}");
    }
}

/// Amounts read in each currency's own minor unit: a yen has no cents
/// (4900 is JPY 4,900, not 49.00), a dinar has three decimals; thousands
/// are separated; amount cells are right-aligned.
#[tokio::test]
async fn amounts_are_shown_in_each_currency_s_minor_unit() {
    let c = Collector::start_with_key(&["--mode", "live"]);
    c.cli(&[
        "offers",
        "set",
        &c.public_key,
        "--key",
        "share",
        "--kind",
        "percent",
        "--percent",
        "10",
    ]);
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let customer = serde_json::json!({"customer_key": "kei", "email": "kei@example.com", "partner_key": "alice"});
    assert_eq!(api.call("POST", "customers", customer).await.status, 200);
    for (key, amount, currency) in [
        ("t-jpy", 4900, "JPY"),
        ("t-usd", 1_234_567, "USD"),
        ("t-kwd", 12_345, "KWD"),
    ] {
        let payment = serde_json::json!({"key": key, "customer_key": "kei", "amount": amount, "currency": currency});
        assert_eq!(api.call("POST", "transactions", payment).await.status, 200);
    }
    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let page = |path: &'static str| {
        let (url, session) = (format!("{}/dashboard/{path}", c.url), session.clone());
        async move {
            let answer = send("GET", &url, &[("cookie", &session)], "").await;
            String::from_utf8(answer.body.to_vec()).unwrap()
        }
    };
    let transactions = page("transactions").await;
    for shown in ["JPY 4,900", "USD 12,345.67", "KWD 12.345"] {
        assert!(
            transactions.contains(&format!("<td class=\"amount\">{shown}</td>")),
            "{shown}: {transactions}"
        );
    }
    let rewards = page("rewards").await;
    for shown in ["JPY 490", "USD 1,234.57", "KWD 1.235"] {
        assert!(
            rewards.contains(&format!("<td class=\"amount\">{shown}</td>")),
            "{shown}: {rewards}"
        );
    }
    let partners = page("partners").await;
    assert!(partners.contains("JPY 4,900, KWD 12.345, USD 12,345.67"), "{partners}");
    assert!(!transactions.contains("JPY 49.00"));
}
