//! The partner portal, as a partner uses it: a one-time sign-in link from
//! the merchant (the dashboard or the CLI), then its own link, results,
//! customers (emails masked) and rewards; in a real browser for the
//! journey (screenshots in `target/portal-screenshots/`), over HTTP for
//! the rules: a link works once and for a day, a partner sees only its
//! own data whatever it sends, forms carry the session's CSRF token.

use e2e::http::{send, Answer, Api};
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::{Client, Locator};
use serde_json::json;
use std::sync::Arc;

async fn text_of(client: &Client, at: Locator<'_>) -> String {
    client.find(at).await.unwrap().text().await.unwrap()
}

/// The text of the element at `at`, once the page has one.
async fn text_when(client: &Client, at: Locator<'_>) -> String {
    client.wait().for_element(at).await.unwrap().text().await.unwrap()
}

async fn click(client: &Client, at: Locator<'_>) {
    client.find(at).await.unwrap().click().await.unwrap();
}

async fn screenshot(client: &Client, name: &str) {
    let dir = e2e::target_dir().join("portal-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// A sign-in link for `partner`, from the CLI.
fn link(c: &Collector, partner: &str) -> String {
    c.cli(&["partners", "link", &c.public_key, partner, "--base-url", &c.url])
        .trim()
        .to_owned()
}

/// Uses the sign-in link `link` as the portal's button does; the answer.
async fn sign_in(link: &str) -> Answer {
    send(
        "POST",
        link,
        &[("content-type", "application/x-www-form-urlencoded")],
        "",
    )
    .await
}

/// The session cookie (`name=value`) a sign-in set.
fn cookie_of(answer: &Answer) -> String {
    let set = answer.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/partners"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

async fn get(url: &str, cookie: &str) -> (u16, String) {
    let answer = send("GET", url, &[("cookie", cookie)], "").await;
    (answer.status.as_u16(), String::from_utf8(answer.body.to_vec()).unwrap())
}

/// Visitor lands through alice's link and signs up on the shop; the
/// merchant records a payment and gives alice a sign-in link from the
/// dashboard; alice signs in and sees her link, her click and signup, her
/// customer (masked) and her reward; then signs out.
#[tokio::test]
async fn a_partner_signs_in_with_the_merchants_link_and_sees_its_results() {
    let c = Arc::new(Collector::shop_with_key(&["--mode", "live"]));
    c.offer_quarter();
    let cc = c.clone();
    with_browser(move |client| async move {
        let (base, shop) = (cc.url.clone(), cc.shop_url());
        client
            .goto(&format!("{shop}/?ps_partner_key={}&ps_xid=p1", b64("alice")))
            .await
            .unwrap();
        Page::ready(&client).await;
        client.goto(&format!("{shop}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        Page::submit_signup(&client, "Vera Visitor", "vera@example.com").await;
        cc.wait_for_count("SELECT count(*) FROM customers", 1);
        let api = Api::new(&base, &cc.public_key, cc.secret_key.as_deref().unwrap());
        let payment = json!({"key": "t1", "customer_email": "vera@example.com", "amount": 10000, "currency": "USD"});
        assert_eq!(api.call("POST", "transactions", payment).await.status, 200);

        // The merchant's dashboard makes the link.
        let session = cc.dashboard_sign_in(cc.secret_key.as_deref().unwrap()).await;
        let (_, partners) = get(&format!("{base}/dashboard/partners"), &session).await;
        let csrf = e2e::http::csrf_of(&partners);
        let made = send(
            "POST",
            &format!("{base}/dashboard/partners/link"),
            &[
                ("cookie", &session),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("csrf={csrf}&partner=alice"),
        )
        .await;
        let made = String::from_utf8(made.body.to_vec()).unwrap();
        let link = made
            .split("id=\"portal-link\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned();
        assert!(link.starts_with(&format!("{base}/partners/sign-in/")), "{link}");

        client.goto(&link).await.unwrap();
        screenshot(&client, "1-sign-in").await;
        click(&client, Locator::Id("sign-in")).await;
        let link_shown = text_when(&client, Locator::Id("link")).await;
        assert!(
            link_shown.contains(&format!("ps_partner_key={}", b64("alice").trim_end_matches('='))),
            "{link_shown}"
        );
        let figures = text_of(&client, Locator::Css("#figures tbody tr")).await;
        assert!(figures.starts_with("1 1 100.0% USD 100.00 USD 25.00"), "{figures}");
        let customers = text_of(&client, Locator::Id("customers")).await;
        assert!(
            customers.contains("v•••@example.com") && !customers.contains("vera@"),
            "{customers}"
        );
        let rewards = text_of(&client, Locator::Id("rewards")).await;
        assert!(rewards.contains("new USD 25.00"), "{rewards}");
        screenshot(&client, "2-home").await;
        let sub = client.find(Locator::Css("input[name='sub']")).await.unwrap();
        sub.send_keys("spring-news").await.unwrap();
        sub.send_keys("\u{E007}").await.unwrap();
        client
            .wait()
            .for_url(&url::Url::parse(&format!("{base}/partners?sub=spring-news")).unwrap())
            .await
            .unwrap();
        let with_sub = text_of(&client, Locator::Id("link")).await;
        assert!(with_sub.ends_with("&ps_xid=spring-news"), "{with_sub}");
        screenshot(&client, "3-sub-id").await;
        click(&client, Locator::Id("sign-out")).await;
        client.wait().for_element(Locator::Id("signed-out")).await.unwrap();
        screenshot(&client, "4-signed-out").await;
    })
    .await;
}

/// A link works once, and for a day; a used or expired one says so.
#[tokio::test]
async fn a_sign_in_link_works_once_and_for_a_day() {
    let c = Collector::start_with_key(&["--mode", "test"]);
    let first = link(&c, "alice");
    let opened = send("GET", &first, &[], "").await;
    assert_eq!(opened.status, 200, "opening the link uses nothing");
    assert_eq!(sign_in(&first).await.status, 303);
    assert_eq!(sign_in(&first).await.status, 410, "used once already");
    let late = link(&c, "alice");
    c.advance_days(2);
    assert_eq!(sign_in(&late).await.status, 410, "expired");
    assert_eq!(
        sign_in(&format!("{}/partners/sign-in/made-up", c.url)).await.status,
        410
    );
    let archived = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    assert_eq!(
        archived
            .call("DELETE", "partnerships/bob", serde_json::Value::Null)
            .await
            .status,
        200
    );
    let refused = std::process::Command::new(e2e::collector::binary())
        .args(["--db", &c.location, "partners", "link", &c.public_key, "bob"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "no link for an archived partnership");
}

/// Each partner sees its own data only, whatever it asks for; signing out
/// takes the session's CSRF token; an archived partnership's session ends.
#[tokio::test]
async fn a_partner_sees_only_its_own_data() {
    let c = Collector::start_with_key(&["--mode", "live"]);
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    for (email, partner) in [("ann@alice-fans.example", "alice"), ("bea@bob-fans.example", "bob")] {
        let customer = json!({"customer_key": email, "email": email, "partner_key": partner});
        assert_eq!(api.call("POST", "customers", customer).await.status, 200);
    }
    // A yen payment: JPY has no minor unit (4900 is JPY 4,900).
    c.offer_quarter();
    let payment = json!({"key": "y1", "customer_key": "ann@alice-fans.example", "amount": 4900, "currency": "JPY"});
    assert_eq!(api.call("POST", "transactions", payment).await.status, 200);
    let alice = cookie_of(&sign_in(&link(&c, "alice")).await);
    let bob = cookie_of(&sign_in(&link(&c, "bob")).await);
    let (_, home) = get(&format!("{}/partners", c.url), &alice).await;
    assert!(home.contains("JPY 4,900") && home.contains("JPY 1,225"), "{home}");
    for path in [
        "/partners",
        "/partners?partner=bob",
        "/partners?partner_key=bob",
        "/partners/?sub=x&partner=bob",
    ] {
        let (status, page) = get(&format!("{}{path}", c.url), &alice).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            page.contains("alice-fans.example") && !page.contains("bob-fans.example"),
            "{path}: {page}"
        );
    }
    assert_eq!(get(&format!("{}/partners/bob", c.url), &alice).await.0, 404);
    let (_, bobs) = get(&format!("{}/partners", c.url), &bob).await;
    assert!(bobs.contains("bob-fans.example") && !bobs.contains("alice-fans.example") && !bobs.contains("JPY"));
    assert_eq!(
        get(&format!("{}/partners", c.url), "growsumo_partner=forged").await.0,
        401
    );
    // The dashboard's cookie opens nothing here, nor the portal's there.
    let merchant = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    assert_eq!(get(&format!("{}/partners", c.url), &merchant).await.0, 401);
    assert_eq!(get(&format!("{}/dashboard/customers", c.url), &alice).await.0, 303);

    let headers = [
        ("cookie", alice.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let forged = send("POST", &format!("{}/partners/sign-out", c.url), &headers, "csrf=guess").await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        get(&format!("{}/partners", c.url), &alice).await.0,
        200,
        "still signed in"
    );
    // Archiving the partnership ends its sessions.
    assert_eq!(
        api.call("DELETE", "partnerships/bob", serde_json::Value::Null)
            .await
            .status,
        200
    );
    assert_eq!(get(&format!("{}/partners", c.url), &bob).await.0, 401);
}

/// A config file sending email through the in-test SMTP server on `port`;
/// kept as long as the returned directory.
fn smtp_config(port: u16) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growsumo.toml");
    let text = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"Shop partners <partners@shop.test>\"\n"
    );
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

/// The program settings `collector program set` gives the key.
fn program(c: &Collector, args: &[&str]) {
    c.cli(&[&["program", "set", &c.public_key], args].concat());
}

/// Posts a public form's `body` to `url` from the client address `from`
/// (public forms are limited per address): (status, page).
async fn post_from(from: &str, url: &str, body: &str) -> (u16, String) {
    let answer = e2e::http::send_from(
        Some(from.parse().expect("an address")),
        "POST",
        url,
        &[("content-type", "application/x-www-form-urlencoded")],
        body.to_owned(),
    )
    .await;
    (
        answer.status.as_u16(),
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

/// Posts `fields` to the form page at `url` as the session `cookie`, with
/// the CSRF token the page holds.
async fn submit(url: &str, cookie: &str, fields: &str) -> Answer {
    let (_, page) = get(url, cookie).await;
    post_form(url, cookie, format!("csrf={}&{fields}", e2e::http::csrf_of(&page))).await
}

async fn post_form(url: &str, cookie: &str, body: String) -> Answer {
    send(
        "POST",
        url,
        &[
            ("cookie", cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await
}

async fn fill(client: &Client, name: &str, text: &str) {
    let field = client.find(Locator::Css(&format!("[name='{name}']"))).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The whole program, in Chromium: a partner applies; the merchant hears
/// of it by email and approves it on the dashboard; the partner gets the
/// approval email (through a real SMTP conversation), signs in with its
/// link, makes a sub-id link and gives payout details; a visitor lands
/// through the link and signs up (the partner is emailed); the partner
/// sees the click and signup; a payment earns a reward; the merchant
/// approves it and makes a payout batch, exports it for PayPal and Wise,
/// and marks it paid; the partner is emailed and sees it paid.
#[tokio::test]
async fn a_partner_applies_is_approved_earns_and_is_paid() {
    let smtp = e2e::smtp::SmtpServer::start();
    let (_config_dir, config) = smtp_config(smtp.port);
    let c = Arc::new(Collector::shop_with_key_and(
        &["--mode", "live"],
        &["--config", &config],
    ));
    c.offer_quarter();
    program(
        &c,
        &[
            "--name",
            "Shop & Co",
            "--merchant-email",
            "owner@shop.test",
            "--applications",
            "review",
            "--emails",
            "all",
            "--portal-url",
            &c.url,
        ],
    );
    let smtp = Arc::new(smtp);
    let (cc, mail) = (c.clone(), smtp.clone());
    with_browser(move |client| async move {
        let (base, shop, pk) = (cc.url.clone(), cc.shop_url(), cc.public_key.clone());
        let secret = cc.secret_key.clone().unwrap();

        // Carol applies.
        client.goto(&format!("{base}/partners/apply/{pk}")).await.unwrap();
        fill(&client, "email", "carol@example.com").await;
        fill(&client, "first_name", "Carol").await;
        fill(&client, "last_name", "<b>Reed</b>").await;
        fill(&client, "website", "https://carol.example").await;
        fill(&client, "promotion", "My newsletter, 12k readers.").await;
        screenshot(&client, "5-apply").await;
        click(&client, Locator::Id("apply")).await;
        let applied = text_when(&client, Locator::Id("applied")).await;
        screenshot(&client, "5b-applied").await;
        assert!(applied.contains("We will answer by email"), "{applied}");
        // Applications reach the merchant as a digest, 10 minutes later.
        cc.advance_seconds(600);
        let to_merchant = mail.wait_for_mail("owner@shop.test", "New partner application").await;
        assert_eq!(to_merchant.subject(), "New partner application: Carol <b>Reed</b>");
        let text = to_merchant.text();
        assert!(
            text.contains("https://carol.example") && text.contains(&format!("{base}/dashboard/program")),
            "{text}"
        );

        // The merchant approves it on the dashboard.
        client.goto(&format!("{base}/dashboard/sign-in")).await.unwrap();
        fill(&client, "secret_key", &secret).await;
        client
            .find(Locator::Css("button[type='submit']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client.wait().for_element(Locator::Id("mode")).await.unwrap();
        client.goto(&format!("{base}/dashboard/program")).await.unwrap();
        let waiting = text_of(&client, Locator::Id("applications")).await;
        assert!(
            waiting.contains("Carol <b>Reed</b>") && waiting.contains("12k readers"),
            "{waiting}"
        );
        screenshot(&client, "6-dashboard-applications").await;
        let id = cc.count("SELECT id FROM applications");
        click(&client, Locator::Id(&format!("approve-{id}"))).await;
        cc.wait_for_count("SELECT count(*) FROM applications WHERE status = 'approved'", 1);
        let partner = cc.query_text("SELECT partner_key FROM applications WHERE status = 'approved'");
        let welcome = mail
            .wait_for_mail("carol@example.com", "You are a Shop & Co partner")
            .await;
        let link = welcome.sign_in_link().expect("a sign-in link in the approval email");
        assert!(link.starts_with(&format!("{base}/partners/sign-in/")), "{link}");

        // Carol signs in, makes a sub-id link and gives her payout details.
        client.goto(&link).await.unwrap();
        click(&client, Locator::Id("sign-in")).await;
        client.wait().for_element(Locator::Id("link")).await.unwrap();
        fill(&client, "sub", "newsletter").await;
        client
            .find(Locator::Css("input[name='sub']"))
            .await
            .unwrap()
            .send_keys("\u{E007}")
            .await
            .unwrap();
        client
            .wait()
            .for_url(&url::Url::parse(&format!("{base}/partners?sub=newsletter")).unwrap())
            .await
            .unwrap();
        let referral = text_of(&client, Locator::Id("link")).await;
        assert!(
            referral.starts_with(&shop) && referral.ends_with("&ps_xid=newsletter"),
            "{referral}"
        );
        let others = text_of(&client, Locator::Id("other-links")).await;
        assert!(
            others.lines().count() > 1 && others.lines().all(|l| l.ends_with("&ps_xid=newsletter")),
            "a link on each of the key's other sites: {others}"
        );
        client.goto(&format!("{base}/partners/payout-details")).await.unwrap();
        client
            .find(Locator::Css("select[name='method'] option[value='paypal']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        fill(&client, "paypal_email", "carol@pay.example").await;
        fill(&client, "wise_email", "carol@wise.example").await;
        fill(&client, "account_name", "Carol Reed").await;
        fill(&client, "tax_details", "VAT GB123456789").await;
        click(&client, Locator::Id("save-details")).await;
        let saved = text_when(&client, Locator::Id("note")).await;
        assert_eq!(saved, "Saved.");
        screenshot(&client, "7-payout-details").await;
        let told = mail
            .wait_for_mail("carol@example.com", "Your Shop & Co payout details were changed")
            .await;
        assert!(
            told.text().contains("by PayPal, to carol@pay.example"),
            "{}",
            told.text()
        );
        // Bob, paid by Wise, gives his details too.
        let bob = cookie_of(&sign_in(&self::link(&cc, "bob")).await);
        let saved = submit(
            &format!("{base}/partners/payout-details"),
            &bob,
            "method=wise&wise_email=bob%40wise.example&account_name=Bob+Stone",
        )
        .await;
        assert_eq!(saved.status, 200);

        // A visitor comes through the link and signs up.
        client.goto(&referral).await.unwrap();
        Page::ready(&client).await;
        client.goto(&format!("{shop}/signup.html")).await.unwrap();
        Page::ready(&client).await;
        Page::submit_signup(&client, "Dan Visitor", "dan@example.net").await;
        cc.wait_for_count(
            &format!("SELECT count(*) FROM customers WHERE partner_key = '{partner}'"),
            1,
        );
        // Signups reach the partner as a digest too.
        cc.advance_seconds(1300);
        let signup = mail
            .wait_for_mail("carol@example.com", "A new signup through your Shop & Co link")
            .await;
        let text = signup.text();
        assert!(
            text.contains("d•••@example.net") && text.contains(&format!("{base}/partners")),
            "{text}"
        );

        client.goto(&format!("{base}/partners")).await.unwrap();
        let figures = text_of(&client, Locator::Css("#figures tbody tr")).await;
        assert!(figures.starts_with("1 1 100.0%"), "{figures}");
        let subs = text_of(&client, Locator::Css("#subs tbody")).await;
        assert_eq!(subs, "newsletter 1 1");
        client.find(Locator::Id("chart")).await.expect("the chart");

        // Two payments earn Carol rewards; the merchant approves them (one email), makes a batch.
        let api = Api::new(&base, &pk, &secret);
        for (key, amount) in [("t1", 10000), ("t2", 20000)] {
            let payment = json!({"key": key, "customer_email": "dan@example.net", "amount": amount, "currency": "USD"});
            assert_eq!(api.call("POST", "transactions", payment).await.status, 200);
        }
        // And a yen payment earns Bob a reward (JPY has no minor unit).
        let eve = json!({"customer_key": "eve", "email": "eve@example.org", "partner_key": "bob"});
        assert_eq!(api.call("POST", "customers", eve).await.status, 200);
        let yen = json!({"key": "y1", "customer_key": "eve", "amount": 4900, "currency": "JPY"});
        assert_eq!(api.call("POST", "transactions", yen).await.status, 200);
        client.goto(&format!("{base}/dashboard/payouts")).await.unwrap();
        let new = text_of(&client, Locator::Id("approve-form")).await;
        assert!(new.contains("USD 75.00"), "{new}");
        client
            .find(Locator::Css("#approve-form button[type='submit']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        cc.wait_for_count("SELECT count(*) FROM rewards WHERE status = 'approved'", 3);
        client.goto(&format!("{base}/dashboard/payouts")).await.unwrap();
        let approved = text_of(&client, Locator::Id("batch-form")).await;
        assert!(
            approved.contains("PayPal carol@pay.example") && approved.contains("VAT GB123456789"),
            "{approved}"
        );
        client
            .find(Locator::Css("#batch-form button[type='submit']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client.wait().for_element(Locator::Id("paid-po_1")).await.unwrap();
        screenshot(&client, "8-dashboard-payouts").await;
        mail.wait_for_mail("carol@example.com", "USD 75.00 approved: your Shop & Co rewards")
            .await;
        mail.wait_for_mail("bob@demo.invalid", "JPY 1,225 approved: your Shop & Co rewards")
            .await;

        let session = cc.dashboard_sign_in(&secret).await;
        let (status, paypal) = get(&format!("{base}/dashboard/payouts/po_1-paypal-USD.csv"), &session).await;
        assert_eq!(status, 200);
        assert_eq!(
            paypal,
            format!("carol@pay.example,75.00,USD,{partner},Shop & Co partner payout po_1,PAYPAL\n")
        );
        let (_, wise) = get(&format!("{base}/dashboard/payouts/po_1-wise.csv"), &session).await;
        assert_eq!(
            wise,
            "name,recipientEmail,paymentReference,receiverType,amountCurrency,amount,sourceCurrency,targetCurrency\n\
             Bob Stone,bob@wise.example,po_1,PERSON,target,1225,JPY,JPY\n",
            "Bob only: Carol is paid by PayPal, once"
        );
        assert_eq!(
            get(&format!("{base}/dashboard/payouts/po_1-paypal-JPY.csv"), &session)
                .await
                .0,
            404,
            "no PayPal line in yen"
        );
        click(&client, Locator::Id("paid-po_1")).await;
        client.wait().for_element(Locator::Id("batch-form")).await.unwrap();
        mail.wait_for_mail("carol@example.com", "Your Shop & Co payout: USD 75.00")
            .await;
        mail.wait_for_mail("bob@demo.invalid", "Your Shop & Co payout: JPY 1,225")
            .await;
        let to_carol: Vec<String> = mail.to("carol@example.com").iter().map(|m| m.subject()).collect();
        assert_eq!(
            to_carol.len(),
            5,
            "approved, details changed, a signup, two rewards approved in one email, the batch: {to_carol:?}"
        );

        // Carol sees it paid.
        client.goto(&format!("{base}/partners")).await.unwrap();
        let payouts = text_of(&client, Locator::Css("#payouts tbody")).await;
        assert!(
            payouts.starts_with("po_1") && payouts.contains("paid") && payouts.ends_with("USD 75.00"),
            "{payouts}"
        );
        let rewards = text_of(&client, Locator::Id("rewards")).await;
        assert!(rewards.contains("paid USD 75.00"), "{rewards}");
        screenshot(&client, "9-home-paid").await;
    })
    .await;
}

/// An email written while the SMTP server is down is sent when it is back,
/// on the retry schedule; a full mailbox (452) is retried too; an unknown
/// mailbox (550) fails at once. Nothing waits for any of it.
#[tokio::test]
async fn emails_wait_out_a_down_smtp_server_and_are_sent() {
    let port = e2e::site::free_port();
    let (_dir, config) = smtp_config(port);
    let c = Collector::start_with_key_and(&["--mode", "test"], &["--config", &config]);
    program(
        &c,
        &[
            "--merchant-email",
            "owner@shop.test",
            "--applications",
            "review",
            "--emails",
            "all",
        ],
    );
    let apply = |email: &'static str| {
        let url = format!("{}/partners/apply/{}", c.url, c.public_key);
        async move {
            let body = format!("email={email}&first_name=Ann&website=&promotion=blog");
            let (status, page) = post_from("127.0.0.1", &url, &body).await;
            assert_eq!(status, 200, "{page}");
        }
    };
    // (Applications reach the merchant as a digest, 10 minutes after the first.)
    apply("ann@example.com").await;
    c.advance_seconds(600);
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'pending' AND attempts = 1 AND last_error != ''",
        1,
    );
    let smtp = e2e::smtp::SmtpServer::start_on(port);
    c.advance_seconds(610);
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0].subject(), "New partner application: Ann");
    c.wait_for_count("SELECT count(*) FROM emails WHERE status = 'sent' AND body = ''", 1);

    smtp.refuse_next("452 4.2.2 mailbox full");
    apply("bea@example.com").await;
    c.advance_seconds(1220);
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'pending' AND last_error LIKE '%mailbox full%'",
        1,
    );
    c.advance_seconds(1230);
    smtp.wait_for(2).await;

    // A refused recipient fails at once; a refused sender (a wrong
    // password, relaying denied) is the merchant's to fix: retried.
    smtp.refuse_next("550 5.1.1 no such mailbox");
    apply("cid@example.com").await;
    c.advance_seconds(1840);
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'failed' AND last_error LIKE '%no such mailbox%'",
        1,
    );
    smtp.refuse_next("554 5.7.1 relaying denied");
    apply("dee@example.com").await;
    c.advance_seconds(2450);
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'pending' AND last_error LIKE '%relaying denied%'",
        1,
    );
    assert_eq!(smtp.mails().len(), 2);
}

/// The public forms hold against spam: a closed program has no page, bad
/// fields are named, a bot's hidden field stores nothing, an email applies
/// once, and a client sends at most 5 forms an hour. Asking for a sign-in
/// link tells no one whether the email is a partner's. What applicants
/// type is shown escaped. One partner's payout details are its own.
#[tokio::test]
async fn public_forms_hold_against_spam_and_show_nothing_they_should_not() {
    let smtp = e2e::smtp::SmtpServer::start();
    let (_dir, config) = smtp_config(smtp.port);
    let c = Collector::start_with_key_and(&["--mode", "test"], &["--config", &config]);
    let url = format!("{}/partners/apply/{}", c.url, c.public_key);
    assert_eq!(send("GET", &url, &[], "").await.status, 404, "closed by default");
    program(&c, &["--applications", "review", "--emails", "sign_in"]);
    assert_eq!(send("GET", &url, &[], "").await.status, 200);
    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let (_, dashboard) = get(&format!("{}/dashboard/program", c.url), &session).await;
    assert!(
        dashboard.contains("id=\"no-portal-url\""),
        "the merchant is told to set the portal address"
    );
    program(&c, &["--portal-url", &c.url]);
    let post = |body: &'static str| post_from("127.0.0.1", &url, body);
    let (status, page) = post("email=not-an-email&first_name=Ann").await;
    assert_eq!(status, 422);
    assert!(page.contains("email: ") && page.contains("value=\"Ann\""), "{page}");
    let (status, page) = post("email=x%40example.com&first_name=X&website=javascript%3Aalert(1)").await;
    assert_eq!(status, 422);
    assert!(page.contains("website: must start with https://"), "{page}");
    assert_eq!(
        post("email=bot%40example.com&first_name=Bot&homepage=http%3A%2F%2Fspam")
            .await
            .0,
        200
    );
    assert_eq!(
        c.count("SELECT count(*) FROM applications"),
        0,
        "the bot's form is dropped"
    );
    assert_eq!(
        post("email=eve%40example.com&first_name=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
            .await
            .0,
        200
    );
    assert_eq!(
        post("email=EVE%40example.com&first_name=Eve").await.0,
        200,
        "answered as any other"
    );
    assert_eq!(c.count("SELECT count(*) FROM applications"), 1, "an email applies once");
    let (status, page) = post("email=fay%40example.com&first_name=Fay").await;
    assert_eq!(status, 429, "the 6th form in an hour: {page}");

    let (_, dashboard) = get(&format!("{}/dashboard/program", c.url), &session).await;
    assert!(
        dashboard.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !dashboard.contains("<script>alert"),
        "applicants' text is escaped"
    );

    // Links by email (another client address: 127.0.0.1 used its forms),
    // asked with a Host header of the asker's choosing: the link is on the
    // program's portal address all the same.
    let ask = |email: &'static str| {
        let url = format!("{}/partners/sign-in", c.url);
        async move {
            let answer = e2e::http::send_from(
                Some("127.0.0.3".parse().unwrap()),
                "POST",
                &url,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", "attacker.example"),
                ],
                format!("email={email}"),
            )
            .await;
            (answer.status.as_u16(), String::from_utf8(answer.body.to_vec()).unwrap())
        }
    };
    let (known, unknown) = (ask("alice%40demo.invalid").await, ask("nobody%40example.com").await);
    assert_eq!((known.0, unknown.0), (200, 200));
    assert_eq!(known.1, unknown.1, "the answer does not tell who is a partner");
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["alice@demo.invalid"]);
    let link = mails[0].sign_in_link().unwrap();
    assert!(link.starts_with(&format!("{}/partners/sign-in/", c.url)), "{link}");
    // A partner applying again is sent a sign-in link, answered as anyone.
    let (_, again) = post_from("127.0.0.4", &url, "email=ALICE%40demo.invalid&first_name=Alice").await;
    assert!(again.contains("Thank you! We will answer by email."));
    assert_eq!(smtp.wait_for(2).await[1].to, ["alice@demo.invalid"]);
    // No flooding a partner with links: 3 an hour.
    ask("alice%40demo.invalid").await;
    ask("alice%40demo.invalid").await;
    assert_eq!(c.count("SELECT count(*) FROM emails WHERE kind = 'sign_in'"), 3);
    // No other site's form signs anyone in (login CSRF).
    let cross = send(
        "POST",
        &link,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("sec-fetch-site", "cross-site"),
        ],
        "",
    )
    .await;
    assert_eq!(cross.status, 403);
    let alice = cookie_of(&sign_in(&link).await);
    let bob = cookie_of(&sign_in(&self::link(&c, "bob")).await);

    // Payout details: each partner's own, checked.
    let details = format!("{}/partners/payout-details", c.url);
    let saved = submit(
        &details,
        &alice,
        "method=bank&paypal_email=alice%40pay.example&bank_details=IBAN+DE89",
    )
    .await;
    assert_eq!(saved.status, 200);
    let bad = submit(&details, &alice, "paypal_email=nope").await;
    assert_eq!(bad.status, 422);
    assert!(String::from_utf8_lossy(&bad.body).contains("paypal_email"));
    let unpayable = submit(&details, &alice, "method=wise&paypal_email=alice%40pay.example").await;
    assert_eq!(unpayable.status, 422);
    assert!(String::from_utf8_lossy(&unpayable.body).contains("wise_email: required"));
    let forged = post_form(
        &format!("{}/partners/payout-details", c.url),
        &bob,
        "csrf=forged&paypal_email=bob%40evil.example".into(),
    )
    .await;
    assert_eq!(forged.status, 403);
    let (_, bobs) = get(&format!("{}/partners/payout-details", c.url), &bob).await;
    assert!(
        !bobs.contains("alice@pay.example") && !bobs.contains("IBAN DE89"),
        "{bobs}"
    );
    let (_, alices) = get(&format!("{}/partners/payout-details", c.url), &alice).await;
    assert!(
        alices.contains("alice@pay.example") && alices.contains("IBAN DE89"),
        "{alices}"
    );

    // Automatic approval needs the portal's address (the welcome links to
    // it): without one, applications wait for the merchant.
    program(&c, &["--applications", "auto", "--portal-url", ""]);
    let (status, page) = post_from("127.0.0.5", &url, "email=gus%40example.com&first_name=Gus").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        c.count("SELECT count(*) FROM applications WHERE email = 'gus@example.com' AND status = 'pending'"),
        1
    );
    program(&c, &["--portal-url", &c.url]);
    let (status, page) = post_from("127.0.0.5", &url, "email=hal%40example.com&first_name=Hal").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        c.count("SELECT count(*) FROM applications WHERE email = 'hal@example.com' AND status = 'approved'"),
        1
    );
}

/// Invitations, from the merchant API and the dashboard: the partner gets
/// an email with a sign-in link on the program's portal address; a program
/// whose invitation emails are off refuses, naming why.
#[tokio::test]
async fn invitations_from_the_api_and_the_dashboard_email_a_sign_in_link() {
    let smtp = e2e::smtp::SmtpServer::start();
    let (_dir, config) = smtp_config(smtp.port);
    let c = Collector::start_with_key_and(&["--mode", "test"], &["--config", &config]);
    program(
        &c,
        &[
            "--name",
            "Shop",
            "--emails",
            "invited",
            "--portal-url",
            "https://partners.shop.test/",
        ],
    );
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    let dana = json!({"partner_key": "dana", "email": "dana@example.com", "first_name": "Dana"});
    assert_eq!(api.call("POST", "partnerships", dana).await.status, 200);
    let invited = api
        .call("POST", "partnerships/dana/invite", serde_json::Value::Null)
        .await;
    assert_eq!(invited.status, 200, "{:?}", invited.json());
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0].to, ["dana@example.com"]);
    assert_eq!(mails[0].subject(), "Your invitation to the Shop partner program");
    let link = mails[0].sign_in_link().unwrap();
    assert!(
        link.starts_with("https://partners.shop.test/partners/sign-in/"),
        "{link}"
    );
    let token = link.rsplit('/').next().unwrap();
    let signed_in = sign_in(&format!("{}/partners/sign-in/{token}", c.url)).await;
    assert_eq!(signed_in.status, 303, "the emailed link signs Dana in");

    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let invite = submit(
        &format!("{}/dashboard/program", c.url),
        &session,
        "action=invite&email=eli%40example.com&first_name=Eli&last_name=&group=default",
    )
    .await;
    assert_eq!(invite.status, 303, "{}", String::from_utf8_lossy(&invite.body));
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails[1].to, ["eli@example.com"]);
    assert!(mails[1].sign_in_link().is_some());

    program(&c, &["--emails", ""]);
    let refused = api
        .call("POST", "partnerships/dana/invite", serde_json::Value::Null)
        .await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["field"], "emails", "{:?}", refused.json());
    let missing = api
        .call("POST", "partnerships/nobody/invite", serde_json::Value::Null)
        .await;
    assert_eq!(missing.status, 404);
}

/// A batch holds still once made: its rewards are locked (the API refuses
/// to change them), a refund meanwhile is clawed back instead of taken
/// out, a partner changing its payout details changes no file, and each
/// partner is in one file only. Cancelling frees the rewards; marking paid
/// twice pays once.
#[tokio::test]
async fn a_payout_batch_holds_still_until_it_is_paid_or_cancelled() {
    let c = Collector::start_with_key(&["--mode", "live"]);
    c.offer_quarter();
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
    for (customer, partner, payment, amount) in [
        ("ann", "alice", "t1", 10000),
        ("ann", "alice", "t2", 4000),
        ("bea", "bob", "t3", 2000),
    ] {
        let body =
            json!({"customer_key": customer, "email": format!("{customer}@example.com"), "partner_key": partner});
        let _ = api.call("POST", "customers", body).await;
        let paid = json!({"key": payment, "customer_key": customer, "amount": amount, "currency": "USD"});
        assert_eq!(api.call("POST", "transactions", paid).await.status, 200);
    }
    let alice = cookie_of(&sign_in(&link(&c, "alice")).await);
    let details = |cookie: String, body: &'static str| {
        let url = format!("{}/partners/payout-details", c.url);
        async move {
            let saved = submit(&url, &cookie, body).await;
            assert_eq!(saved.status, 200, "{}", String::from_utf8_lossy(&saved.body));
        }
    };
    // Both a PayPal and a Wise email, paid by Wise: in the Wise file only.
    details(
        alice.clone(),
        "method=wise&paypal_email=alice%40pay.example&wise_email=alice%40wise.example&account_name=Alice+Ames",
    )
    .await;

    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let payouts = format!("{}/dashboard/payouts", c.url);
    let act = |body: String| {
        let (payouts, session) = (payouts.clone(), session.clone());
        async move {
            let answer = submit(&payouts, &session, &body).await;
            (
                answer.status.as_u16(),
                String::from_utf8_lossy(&answer.body).into_owned(),
            )
        }
    };
    assert_eq!(act("action=approve&partner=alice&partner=bob".into()).await.0, 303);
    assert_eq!(act("action=batch&partner=alice&partner=bob".into()).await.0, 303);
    let (_, page) = get(&payouts, &session).await;
    assert!(page.contains("no payout details"), "bob gave none: paid by hand");
    let file = |name: &'static str| {
        let (url, session) = (format!("{}/dashboard/payouts/po_1-{name}", c.url), session.clone());
        async move { get(&url, &session).await }
    };
    let wise =
        "name,recipientEmail,paymentReference,receiverType,amountCurrency,amount,sourceCurrency,targetCurrency\n\
                Alice Ames,alice@wise.example,po_1,PERSON,target,35.00,USD,USD\n";
    assert_eq!(file("wise.csv").await, (200, wise.to_owned()));
    assert_eq!(file("paypal-USD.csv").await.0, 404, "alice is paid by Wise, once");

    // Locked: the API cannot change a batched reward.
    let reward = c.query_text("SELECT 'rwd_' || id FROM rewards WHERE partner_key = 'bob'");
    let changed = api
        .call("PATCH", &format!("rewards/{reward}"), json!({"status": "declined"}))
        .await;
    assert_eq!(changed.status, 409);
    assert_eq!(changed.json()["field"], "status");
    let (_, rewards) = get(&format!("{}/dashboard/rewards", c.url), &session).await;
    assert!(
        rewards.contains(">in po_1<"),
        "the Rewards page shows the batch, not buttons that cannot work"
    );
    // A refund is clawed back from the next payout, not taken out of this one.
    assert_eq!(
        api.call("DELETE", "transactions/t2", serde_json::Value::Null)
            .await
            .status,
        200
    );
    assert_eq!(
        c.count("SELECT count(*) FROM rewards WHERE partner_key = 'alice' AND amount = -1000 AND status = 'new'"),
        1
    );
    // Details changed after the batch change no file.
    details(alice.clone(), "method=paypal&paypal_email=mallory%40pay.example").await;
    assert_eq!(file("wise.csv").await, (200, wise.to_owned()));

    // Cancelling frees the rewards (the refunded one is declined, with its
    // clawback: it will not be paid now); a new batch takes the details now.
    assert_eq!(act("action=cancel&payout=po_1".into()).await.0, 303);
    assert_eq!(file("wise.csv").await.0, 404);
    assert_eq!(
        c.count(
            "SELECT count(*) FROM rewards WHERE partner_key = 'alice' AND status = 'declined' AND abs(amount) = 1000"
        ),
        2
    );
    assert_eq!(act("action=batch&partner=alice".into()).await.0, 303);
    let (status, paypal) = get(&format!("{}/dashboard/payouts/po_2-paypal-USD.csv", c.url), &session).await;
    assert_eq!(status, 200);
    assert!(paypal.starts_with("mallory@pay.example,25.00,USD,alice,"), "{paypal}");

    // Paid once, however often it is marked.
    assert_eq!(act("action=paid&payout=po_2".into()).await.0, 303);
    assert_eq!(act("action=paid&payout=po_2".into()).await.0, 303);
    assert_eq!(
        c.count("SELECT count(*) FROM rewards WHERE partner_key = 'alice' AND status = 'paid'"),
        1
    );
    assert_eq!(
        act("action=cancel&payout=po_2".into()).await.0,
        409,
        "a paid batch stays"
    );
    let (_, home) = get(&format!("{}/partners", c.url), &alice).await;
    assert!(
        home.contains("po_2") && home.contains("USD 25.00") && !home.contains("po_1"),
        "{home}"
    );
}

/// Emails go out as deployed: STARTTLS required, the server's certificate
/// verified (here against the config's `ca_file`); a server the collector
/// cannot verify gets nothing, and the email waits.
#[tokio::test]
async fn emails_go_out_over_starttls_to_a_verified_server_only() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = e2e::smtp::SmtpServer::start_starttls(dir.path());
    let config = |ca: bool| {
        let path = dir.path().join(format!("growsumo-{ca}.toml"));
        let ca_file = match ca {
            true => format!("ca_file = \"{}\"\n", dir.path().join("ca.pem").display()),
            false => String::new(),
        };
        let text = format!(
            "[smtp]\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nfrom = \"Shop partners <partners@shop.test>\"\n{ca_file}",
            smtp.port
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (trusting, untrusting) = (config(true), config(false));
    for (config, verified) in [(trusting, true), (untrusting, false)] {
        let c = Collector::start_with_key_and(&["--mode", "test"], &["--config", &config]);
        program(&c, &["--emails", "invited", "--portal-url", &c.url]);
        let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().unwrap());
        let email = format!("fay-{verified}@example.com");
        let fay = json!({"partner_key": "fay", "email": email});
        assert_eq!(api.call("POST", "partnerships", fay).await.status, 200);
        let invited = api
            .call("POST", "partnerships/fay/invite", serde_json::Value::Null)
            .await;
        assert_eq!(invited.status, 200);
        if verified {
            let mail = smtp.wait_for_mail(&email, "Your invitation").await;
            assert!(mail.secure, "sent after STARTTLS");
        } else {
            c.wait_for_count(
                "SELECT count(*) FROM emails WHERE status = 'pending' AND attempts = 1 AND last_error != ''",
                1,
            );
            assert!(smtp.to(&email).is_empty(), "nothing to a server it cannot verify");
        }
    }
}
