//! The attribution scenario suite: each scenario is a partner link clicked in
//! a real Chromium, time passing (the collector's clock moves), and a signup;
//! then the partner and the source the collector decided. Every scenario has
//! a fresh collector (and SQLite file) and a fresh browser profile. The
//! merchant's pages are on its own web server and host names, the collector
//! on another host (`collector.test`, or `collector.example.com` for the
//! shop's own domain).
//!
//! The suite prints a table (scenario, expected, got), saves it to
//! `target/attribution-scenarios.txt`, and fails unless every scenario got
//! what it expected.

use e2e::{b64, with_profile, Collector, Page, Profile};
use fantoccini::{Client, Locator};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

const CLICKS: &str = "SELECT count(*) FROM events WHERE type = 'click'";
const SIGNUPS: &str = "SELECT count(*) FROM events WHERE type = 'signup'";
const ANN: &str = "ann@example.com";

fn link(partner: &str, xid: &str) -> String {
    format!("?ps_partner_key={}&ps_xid={xid}", b64(partner))
}

/// Runs `body` in a fresh Chromium started as `profile` says; returns its value.
async fn in_browser<T, Fut>(profile: Profile, body: impl FnOnce(Client) -> Fut + Send + 'static) -> T
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let slot = Arc::new(Mutex::new(None));
    let out = slot.clone();
    with_profile(profile, move |client| async move {
        let value = body(client).await;
        *out.lock().unwrap() = Some(value);
    })
    .await;
    let value = slot.lock().unwrap().take();
    value.expect("the browser test returned")
}

/// Opens `url` and waits until the snippet has read the referral.
async fn open(client: &Client, url: &str) {
    client.goto(url).await.unwrap();
    Page::ready(client).await;
}

/// Signs up as Ann on the demo signup page of `site` (createSignup) and
/// returns once the welcome page shows.
async fn sign_up(client: &Client, site: &str, email: &str) {
    open(client, &format!("{site}/signup.html")).await;
    let status = Page::submit_signup(client, "Ann Example", email).await;
    assert_eq!(status, "Your account is ready.", "createSignup reported an error");
}

/// Who the customer `email` was credited to: "alice via xid", or "nobody".
fn credited(collector: &Collector, email: &str) -> String {
    let customers = collector.customers();
    let Some(customer) = customers.iter().find(|c| c.email == email) else {
        return format!("no customer {email}");
    };
    match (&customer.partner_key, &customer.source) {
        (Some(partner), Some(source)) => format!("{partner} via {source}"),
        _ => "nobody".into(),
    }
}

/// Deletes every cookie the page can see and empties localStorage.
async fn clear_browser_storage(client: &Client) {
    client.delete_all_cookies().await.unwrap();
    Page::eval(client, "localStorage.clear() || true").await;
}

/// The fingerprint each stored event carries, oldest first.
fn fingerprints(collector: &Collector) -> Vec<String> {
    let db = collector.db();
    let mut stmt = db.prepare("SELECT fingerprint FROM events ORDER BY seq").unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, Option<String>>(0)).unwrap();
    rows.map(|r| r.unwrap().unwrap_or_default()).collect()
}

/// A click, `days` later a signup, both on the collector's own host.
async fn click_then_signup(days: i64) -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        cc.advance_days(days);
        sign_up(&client, &cc.shop_url(), ANN).await;
    })
    .await;
    credited(&c, ANN)
}

/// No partner link at all: a visitor who came on their own.
async fn no_partner_link() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &cc.shop_url()).await;
        sign_up(&client, &cc.shop_url(), ANN).await;
    })
    .await;
    credited(&c, ANN)
}

async fn two_partners() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        cc.advance_days(3);
        open(&client, &format!("{}/{}", cc.shop_url(), link("bob", "x2"))).await;
        cc.wait_for_count(CLICKS, 2);
        cc.advance_days(5);
        sign_up(&client, &cc.shop_url(), ANN).await;
    })
    .await;
    credited(&c, ANN)
}

async fn cookies_cleared_local_storage_kept() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        client.delete_all_cookies().await.unwrap();
        open(&client, &format!("{}/signup.html", cc.shop_url())).await;
        let restored = client.get_named_cookie("growSumoPartnerKey").await.unwrap();
        assert_eq!(restored.value(), "alice", "the cookie is restored from localStorage");
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.");
    })
    .await;
    credited(&c, ANN)
}

async fn all_storage_cleared() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        clear_browser_storage(&client).await;
        cc.advance_days(2);
        sign_up(&client, &cc.shop_url(), ANN).await;
    })
    .await;
    credited(&c, ANN)
}

/// Server-cookie mode: the collector is reached on the merchant's own domain.
/// Safari-style, the browser drops what scripts stored; the server's
/// `HttpOnly` cookie survives.
async fn script_storage_gone_server_cookie_alive() -> String {
    let c = Arc::new(Collector::shop_with_key(&["--cookie-domain", "example.com"]));
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        let site = cc.page("http", "www.example.com");
        open(&client, &format!("{site}/{}", link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        let server = client
            .get_named_cookie("growsumo_click")
            .await
            .expect("the server cookie");
        assert_eq!(server.http_only(), Some(true));
        // A domain cookie (a host-only one would name www.example.com).
        assert_eq!(server.domain(), Some("example.com"));
        for name in ["growSumoPartnerKey", "gsxid"] {
            client.delete_cookie(name).await.unwrap();
        }
        Page::eval(&client, "localStorage.clear() || true").await;
        cc.advance_days(10);
        open(&client, &format!("{site}/signup.html")).await;
        // The snippet restored its own storage from the collector.
        let restored = client.get_named_cookie("growSumoPartnerKey").await.unwrap();
        assert_eq!(restored.value(), "alice");
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.");
    })
    .await;
    credited(&c, ANN)
}

/// A click on `click_host`, the signup on `signup_host`, one registrable
/// domain `domain`: the referral cookie must be set on it.
async fn across_subdomains(click_host: &'static str, signup_host: &'static str, domain: &'static str) -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(
            &client,
            &format!("{}/{}", cc.page("http", click_host), link("alice", "x1")),
        )
        .await;
        cc.wait_for_count(CLICKS, 1);
        let cookie = client.get_named_cookie("growSumoPartnerKey").await.unwrap();
        // A domain cookie (a host-only one would name the click's host).
        assert_eq!(cookie.domain(), Some(domain));
        sign_up(&client, &cc.page("http", signup_host), ANN).await;
    })
    .await;
    credited(&c, ANN)
}

/// A key that accepts `?via=<partner>` (plain text) besides PartnerStack's
/// parameters. The link carries no click id, so the partner key decides.
async fn alias_parameter() -> String {
    let c = Arc::new(Collector::shop_with_key(&["--param", "via"]));
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/?via=alice", cc.shop_url())).await;
        assert_eq!(Page::eval(&client, "growsumo.data.partner_key").await, "alice");
        cc.wait_for_count(CLICKS, 1);
        sign_up(&client, &cc.shop_url(), ANN).await;
    })
    .await;
    credited(&c, ANN)
}

/// A form marked `data-growsumo-signup`, with no code of its own.
async fn form_captured() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        open(&client, &format!("{}/capture.html", cc.shop_url())).await;
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.");
        cc.wait_for_count(SIGNUPS, 1);
    })
    .await;
    credited(&c, ANN)
}

/// A single-page app: the landing is the app, the form appears after a
/// history-API navigation, and the app cancels the submit itself.
async fn single_page_app() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/app.html{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        client
            .find(Locator::Id("to-signup"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(client.current_url().await.unwrap().path().ends_with("/app/signup"));
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.");
        cc.wait_for_count(SIGNUPS, 1);
    })
    .await;
    credited(&c, ANN)
}

/// Calls `growsumo.createSignup` for `email` on the current page; returns the
/// result's status (it answers after every earlier call, e.g. consent).
async fn create_signup(client: &Client, email: &str) -> String {
    let script = format!(
        r#"const done = arguments[arguments.length - 1];
           growsumo.data.email = "{email}";
           growsumo.createSignup(function (error, result) {{ done(error ? error.message : result.status); }});"#
    );
    let answer = client.execute_async(&script, vec![]).await.unwrap();
    answer.as_str().unwrap_or_default().to_owned()
}

/// What the browser holds: "N cookies, M localStorage items".
async fn held(client: &Client) -> String {
    let cookies = client.get_all_cookies().await.unwrap().len();
    let items = Page::eval(client, "localStorage.length").await;
    format!("{cookies} cookies, {items} localStorage items")
}

/// A key that requires consent; the visitor declines on the landing page.
/// Then, as a barrier, a later landing is accepted: its click arriving
/// proves the browser had time to send anything the refused page sent.
async fn consent_denied() -> String {
    let c = Arc::new(Collector::shop_with_key(&["--require-consent"]));
    let cc = c.clone();
    let (held_after, status) = in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        client
            .find(Locator::Id("decline"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let status = create_signup(&client, ANN).await;
        let held_after = held(&client).await;
        open(&client, &format!("{}/{}", cc.shop_url(), link("bob", "x2"))).await;
        client.find(Locator::Id("accept")).await.unwrap().click().await.unwrap();
        cc.wait_for_count(CLICKS, 1);
        (held_after, status)
    })
    .await;
    let before = c.count("SELECT count(*) FROM events WHERE partner_key IS NOT 'bob'");
    format!("{held_after}, {before} events sent; signup {status}")
}

/// Consent granted earlier, then withdrawn: what was stored is deleted.
async fn consent_withdrawn() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    let (held_after, status) = in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        client
            .find(Locator::Id("decline"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let status = create_signup(&client, ANN).await;
        (held(&client).await, status)
    })
    .await;
    let signups = c.count(SIGNUPS);
    format!("{held_after}, {signups} signups sent; signup {status}")
}

/// Another person on another machine: a different browser profile with its
/// own window size, language, time zone and user agent signs up after
/// someone else clicked. The fingerprint must not credit them.
fn stranger() -> Profile {
    Profile {
        args: vec![
            "--lang=fr-FR".into(),
            "--accept-lang=fr-FR,fr".into(),
            "--user-agent=Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15".into(),
        ],
        time_zone: Some("Asia/Tokyo".into()),
        window_size: Some("1024,700".into()),
    }
}

async fn different_profile() -> String {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
    })
    .await;
    let cc = c.clone();
    in_browser(stranger(), move |client| async move {
        sign_up(&client, &cc.shop_url(), ANN).await;
    })
    .await;
    let fps = fingerprints(&c);
    assert!(fps.len() == 2 && !fps[0].is_empty() && fps[0] != fps[1], "{fps:?}");
    credited(&c, ANN)
}

type Run = Pin<Box<dyn Future<Output = String> + Send>>;

#[tokio::test]
async fn attribution_scenarios() {
    let scenarios: Vec<(&str, &str, Run)> = vec![
        ("click, signup at once", "alice via xid", Box::pin(click_then_signup(0))),
        (
            "click, signup 30 days later",
            "alice via xid",
            Box::pin(click_then_signup(30)),
        ),
        ("click, signup 91 days later", "nobody", Box::pin(click_then_signup(91))),
        ("no partner link (direct visit)", "nobody", Box::pin(no_partner_link())),
        ("two partners: alice, then bob", "bob via xid", Box::pin(two_partners())),
        (
            "cookies cleared, localStorage kept",
            "alice via xid",
            Box::pin(cookies_cleared_local_storage_kept()),
        ),
        (
            "all browser storage cleared: fingerprint",
            "alice via fingerprint",
            Box::pin(all_storage_cleared()),
        ),
        (
            "script storage wiped (ITP), server cookie alive",
            "alice via server_cookie",
            Box::pin(script_storage_gone_server_cookie_alive()),
        ),
        (
            "click on www.example.com, signup on app.",
            "alice via xid",
            Box::pin(across_subdomains("www.example.com", "app.example.com", "example.com")),
        ),
        (
            "click on www.shop.co.uk, signup on app.",
            "alice via xid",
            Box::pin(across_subdomains("www.shop.co.uk", "app.shop.co.uk", "shop.co.uk")),
        ),
        (
            "link alias ?via=alice (no click id)",
            "alice via partner_key",
            Box::pin(alias_parameter()),
        ),
        (
            "form captured automatically",
            "alice via xid",
            Box::pin(form_captured()),
        ),
        ("single-page app signup", "alice via xid", Box::pin(single_page_app())),
        (
            "consent required, visitor declines",
            "0 cookies, 0 localStorage items, 0 events sent; signup consent_denied",
            Box::pin(consent_denied()),
        ),
        (
            "consent withdrawn after a click",
            "0 cookies, 0 localStorage items, 0 signups sent; signup consent_denied",
            Box::pin(consent_withdrawn()),
        ),
        (
            "a different browser profile signs up",
            "nobody",
            Box::pin(different_profile()),
        ),
    ];
    let mut rows = Vec::new();
    for (name, expected, run) in scenarios {
        let got = match tokio::spawn(run).await {
            Ok(got) => got,
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("failed: {}", message.lines().collect::<Vec<_>>().join(" "))
            }
            Err(e) => format!("failed: {e}"),
        };
        rows.push((name, expected, got));
    }
    let correct = rows.iter().filter(|(_, expected, got)| expected == got).count();
    let wrong_partner = rows
        .iter()
        .filter(|(_, expected, got)| {
            let partner = |s: &str| s.split(" via ").next().unwrap_or_default().to_owned();
            got.contains(" via ") && partner(expected) != partner(got)
        })
        .count();
    let mut table = format!("{:<48} {:<40} {}\n", "scenario", "expected", "got");
    for (name, expected, got) in &rows {
        let mark = if expected == got { "" } else { "   <-- WRONG" };
        table += &format!("{name:<48} {expected:<40} {got}{mark}\n");
    }
    table += &format!(
        "{correct} of {} correct, {wrong_partner} attributed to the wrong partner\n",
        rows.len()
    );
    println!("{table}");
    let _ = std::fs::write(e2e::target_dir().join("attribution-scenarios.txt"), &table);
    assert_eq!(correct, rows.len(), "\n{table}");
}

/// The fingerprint is the same across new tabs and reloads of one profile,
/// and differs when any one setting differs: window size, language, time
/// zone, user agent. A reload does not count another click.
#[tokio::test]
async fn fingerprints_are_stable_per_profile_and_differ_between_profiles() {
    let c = Arc::new(Collector::shop());
    let cc = c.clone();
    in_browser(Profile::default(), move |client| async move {
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "t1"))).await;
        cc.wait_for_count(CLICKS, 1);
        let tab = client.new_window(true).await.unwrap();
        client.switch_to_window(tab.handle).await.unwrap();
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "t2"))).await;
        cc.wait_for_count(CLICKS, 2);
        client.refresh().await.unwrap();
        Page::ready(&client).await;
        // A new link after the reload: once its click is stored, a click
        // from the reload would have been too.
        open(&client, &format!("{}/{}", cc.shop_url(), link("alice", "t3"))).await;
        cc.wait_for_count(CLICKS, 3);
    })
    .await;
    let stra = stranger();
    let variants = [
        Profile {
            window_size: Some("800,600".into()),
            ..Profile::default()
        },
        Profile {
            args: vec!["--lang=de-DE".into(), "--accept-lang=de-DE,de".into()],
            ..Profile::default()
        },
        Profile {
            time_zone: stra.time_zone.clone(),
            ..Profile::default()
        },
        Profile {
            args: vec![stra.args[2].clone()],
            ..Profile::default()
        },
    ];
    for (i, profile) in variants.into_iter().enumerate() {
        let cc = c.clone();
        in_browser(profile, move |client| async move {
            open(
                &client,
                &format!("{}/{}", cc.shop_url(), link("alice", &format!("v{i}"))),
            )
            .await;
            cc.wait_for_count(CLICKS, 4 + i as i64);
        })
        .await;
    }
    let fps = fingerprints(&c);
    assert_eq!(fps.len(), 7, "{fps:?}");
    assert!(
        fps[0].len() == 16 && fps[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{fps:?}"
    );
    assert!(
        fps[0] == fps[1] && fps[1] == fps[2],
        "same profile, same fingerprint: {fps:?}"
    );
    for (i, fp) in fps.iter().enumerate().skip(3) {
        assert!(
            fps.iter().filter(|other| *other == fp).count() == 1,
            "variant {} has a fingerprint of its own: {fps:?}",
            i - 3
        );
    }
}
