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
        let to_merchant = mail.wait_for(1).await;
        assert_eq!(to_merchant[0].to, ["owner@shop.test"]);
        assert_eq!(to_merchant[0].subject(), "New partner application: Carol <b>Reed</b>");
        assert!(
            to_merchant[0].text().contains("https://carol.example"),
            "{}",
            to_merchant[0].text()
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
        client.wait().for_element(Locator::Id("settings")).await.unwrap();
        let partner = cc.query_text("SELECT partner_key FROM applications WHERE status = 'approved'");
        let mails = mail.wait_for(2).await;
        let welcome = &mails[1];
        assert_eq!(welcome.to, ["carol@example.com"]);
        assert_eq!(welcome.subject(), "You are a Shop & Co partner");
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
        fill(&client, "paypal_email", "carol@pay.example").await;
        fill(&client, "wise_email", "carol@wise.example").await;
        fill(&client, "account_name", "Carol Reed").await;
        fill(&client, "tax_details", "VAT GB123456789").await;
        click(&client, Locator::Id("save-details")).await;
        let saved = text_when(&client, Locator::Id("note")).await;
        assert_eq!(saved, "Saved.");
        screenshot(&client, "7-payout-details").await;

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
        let mails = mail.wait_for(3).await;
        assert_eq!(mails[2].to, ["carol@example.com"]);
        assert!(mails[2].text().contains("d•••@example.net"), "{}", mails[2].text());
        assert!(
            mails[2].text().contains(&format!("{base}/partners")),
            "{}",
            mails[2].text()
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
        let approved = text_when(&client, Locator::Id("batch-form")).await;
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
        let mails = mail.wait_for(4).await;
        assert_eq!(mails[3].subject(), "USD 75.00 approved: your Shop & Co rewards");

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
             Carol Reed,carol@wise.example,po_1,PERSON,target,75.00,USD,USD\n"
        );
        click(&client, Locator::Id("paid-po_1")).await;
        client.wait().for_element(Locator::Id("batch-form")).await.unwrap();
        let mails = mail.wait_for(5).await;
        assert_eq!(mails[4].subject(), "Your Shop & Co payout: USD 75.00");
        assert_eq!(mails.len(), 5, "one email for two rewards approved, one for the batch");

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
    let port = e2e::smtp::free_port();
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
            let answer = send(
                "POST",
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                format!("email={email}&first_name=Ann&website=&promotion=blog"),
            )
            .await;
            assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        }
    };
    apply("ann@example.com").await;
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'pending' AND attempts = 1 AND last_error != ''",
        1,
    );
    let smtp = e2e::smtp::SmtpServer::start_on(port);
    c.advance_seconds(10);
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0].subject(), "New partner application: Ann");
    c.wait_for_count("SELECT count(*) FROM emails WHERE status = 'sent' AND body = ''", 1);

    smtp.refuse_next("452 4.2.2 mailbox full");
    apply("bea@example.com").await;
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'pending' AND last_error LIKE '%mailbox full%'",
        1,
    );
    c.advance_seconds(20);
    smtp.wait_for(2).await;

    smtp.refuse_next("550 5.1.1 no such mailbox");
    apply("cid@example.com").await;
    c.wait_for_count(
        "SELECT count(*) FROM emails WHERE status = 'failed' AND last_error LIKE '%no such mailbox%'",
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
    let post = |body: &'static str| {
        let url = url.clone();
        async move {
            let answer = send(
                "POST",
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await;
            (answer.status.as_u16(), String::from_utf8(answer.body.to_vec()).unwrap())
        }
    };
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

    let session = c.dashboard_sign_in(c.secret_key.as_deref().unwrap()).await;
    let (_, dashboard) = get(&format!("{}/dashboard/program", c.url), &session).await;
    assert!(
        dashboard.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !dashboard.contains("<script>alert"),
        "applicants' text is escaped"
    );

    // Links by email (another client address: 127.0.0.1 used its forms).
    let ask = |email: &'static str| {
        let url = format!("{}/partners/sign-in", c.url);
        async move {
            let answer = e2e::http::send_from(
                Some("127.0.0.3".parse().unwrap()),
                "POST",
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
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
    let alice = cookie_of(&sign_in(&link).await);
    let bob = cookie_of(&sign_in(&self::link(&c, "bob")).await);

    // Payout details: each partner's own, checked.
    let (_, form) = get(&format!("{}/partners/payout-details", c.url), &alice).await;
    let saved = post_form(
        &format!("{}/partners/payout-details", c.url),
        &alice,
        format!(
            "csrf={}&paypal_email=alice%40pay.example&bank_details=IBAN+DE89",
            e2e::http::csrf_of(&form)
        ),
    )
    .await;
    assert_eq!(saved.status, 200);
    let bad = post_form(
        &format!("{}/partners/payout-details", c.url),
        &alice,
        format!("csrf={}&paypal_email=nope", e2e::http::csrf_of(&form)),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(String::from_utf8_lossy(&bad.body).contains("paypal_email"));
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
    let (_, page) = get(&format!("{}/dashboard/program", c.url), &session).await;
    let invite = post_form(
        &format!("{}/dashboard/program", c.url),
        &session,
        format!(
            "csrf={}&action=invite&email=eli%40example.com&first_name=Eli&last_name=&group=default",
            e2e::http::csrf_of(&page)
        ),
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
