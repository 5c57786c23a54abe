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
        let csrf = partners
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
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
        let link_shown = client
            .wait()
            .for_element(Locator::Id("link"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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
    let alice = cookie_of(&sign_in(&link(&c, "alice")).await);
    let bob = cookie_of(&sign_in(&link(&c, "bob")).await);
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
    assert!(bobs.contains("bob-fans.example") && !bobs.contains("alice-fans.example"));
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
