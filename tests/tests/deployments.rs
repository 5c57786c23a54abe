//! The snippet in every shape merchants deploy it, in a real Chromium: the
//! merchant's pages on its own web server (nginx) and host names, the
//! collector on another host, over http and https; the first-party install
//! through the merchant's reverse proxy; the same origin; strict
//! Content-Security-Policies with and without `'wasm-unsafe-eval'`; a
//! single-page app whose router rewrites the URL at once; a script run with
//! no `currentScript`; two tabs signing up at the same moment.
//!
//! Each row is one shape and one journey, with what a merchant must see. The
//! suite prints the table, saves it to `target/deployment-shapes.txt`, and
//! fails unless every row got what it expected.

use e2e::count::CLICKS;
use e2e::http::send;
use e2e::{b64, in_browser, Collector, Page, Profile};
use fantoccini::{Client, Locator};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

const ANN: &str = "ann@example.com";

fn link(partner: &str, xid: &str) -> String {
    format!("?ps_partner_key={}&ps_xid={xid}", b64(partner))
}

/// The referral cookie's domain, and whether it is `Secure`.
async fn referral_cookie(client: &Client) -> String {
    match client.get_named_cookie("growSumoPartnerKey").await {
        Ok(cookie) => format!(
            "cookie on {}{}",
            cookie.domain().unwrap_or("?"),
            if cookie.secure() == Some(true) { " (secure)" } else { "" }
        ),
        Err(_) => "no cookie".into(),
    }
}

/// The main journey on the merchant site at `site`: a partner link lands,
/// the snippet fills `growsumo.data` and stores the referral on the shop's
/// domain, the click is stored, and a signup on another page is credited.
async fn link_then_signup(c: Arc<Collector>, site: String) -> String {
    let cc = c.clone();
    let (partner, cookie) = in_browser(Profile::default(), move |client| async move {
        Page::open(&client, &format!("{site}/{}", link("alice", "x1"))).await;
        let partner = Page::eval(&client, "growsumo.data.partner_key").await;
        let cookie = referral_cookie(&client).await;
        cc.wait_for_count(CLICKS, 1);
        Page::open(&client, &format!("{site}/signup.html")).await;
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.", "createSignup reported an error");
        (partner, cookie)
    })
    .await;
    format!("{}; {cookie}; {}", partner.as_str().unwrap_or("?"), c.credited(ANN))
}

/// The first-party install: the shop proxies `/_ps/` to the collector, so
/// the collector's own cookie is first-party on the shop's domain.
async fn proxied() -> String {
    let c = Arc::new(Collector::shop_with_key(&["--cookie-domain", "proxied.test"]));
    let site = c.page("https", "www.proxied.test");
    let cc = c.clone();
    let server = in_browser(Profile::default(), move |client| async move {
        Page::open(&client, &format!("{site}/{}", link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        let server = match client.get_named_cookie("growsumo_click").await {
            Ok(cookie) => format!(
                "server cookie on {}{}",
                cookie.domain().unwrap_or("?"),
                if cookie.http_only() == Some(true) {
                    " (HttpOnly)"
                } else {
                    ""
                }
            ),
            Err(_) => "no server cookie".into(),
        };
        let cookie = referral_cookie(&client).await;
        Page::open(&client, &format!("{site}/signup.html")).await;
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.", "createSignup reported an error");
        format!("{server}; {cookie}")
    })
    .await;
    format!("{server}; {}", c.credited(ANN))
}

/// A strict CSP without `'wasm-unsafe-eval'`: the page still works, the
/// signup's callback names the cause, the collector hears why (and the
/// dashboard shows it), and the partner link is kept for a later page
/// without the restriction, which records it.
async fn csp_blocks_wasm() -> String {
    let c = Arc::new(Collector::shop());
    let site = c.page("https", "nowasm.shop.test");
    let cc = c.clone();
    let (error, page_errors) = in_browser(Profile::default(), move |client| async move {
        Page::open(&client, &format!("{site}/{}", link("alice", "x1"))).await;
        let answer = client
            .execute_async(
                r#"const done = arguments[0];
                   window.pageErrors = [];
                   addEventListener("error", (e) => pageErrors.push(String(e.message)));
                   growsumo.data.email = "early@example.com";
                   growsumo.createSignup((error, result) => done(error ? error.message : result.status));"#,
                vec![],
            )
            .await
            .unwrap();
        let page_errors = Page::eval(&client, "pageErrors.length").await;
        // The report arrives on its own: wait for it, then for the kept link.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while cc.count("SELECT count(*) FROM diagnostics") == 0 {
            assert!(std::time::Instant::now() < deadline, "no diagnostics report arrived");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        while Page::eval(&client, "localStorage.growsumo_landing || ''").await == json!("") {
            assert!(std::time::Instant::now() < deadline, "the partner link was not kept");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Another restricted page, with a query but no partner link, keeps it.
        Page::open(&client, &format!("{site}/?sort=price")).await;
        Page::open(&client, &format!("{site}/signup.html")).await;
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.");
        (answer.as_str().unwrap_or_default().to_owned(), page_errors)
    })
    .await;
    let report = (
        c.query_text("SELECT origin FROM diagnostics"),
        c.query_text("SELECT reason FROM diagnostics"),
    );
    let secret = c.secret_key.clone().expect("a shop key has its secret");
    let installation = installation_page(&c, &secret).await;
    let shown = installation.contains("blocks WebAssembly") && installation.contains(&report.0);
    let origin = report.0.rsplit_once(':').map(|(o, _)| o).unwrap_or_default().to_owned();
    format!(
        "signup error \"{}\"; {page_errors} page errors; report {} from {origin}{}; later page: {}",
        error.split(" (").next().unwrap_or_default(),
        report.1,
        if shown {
            " (on the dashboard)"
        } else {
            " (NOT on the dashboard)"
        },
        c.credited(ANN)
    )
}

/// The dashboard's Installation page, signed in with `secret`.
async fn installation_page(c: &Collector, secret: &str) -> String {
    let session = c.dashboard_sign_in(secret).await;
    let page = send(
        "GET",
        &format!("{}/dashboard/installation", c.url),
        &[("cookie", &session)],
        "",
    )
    .await;
    String::from_utf8_lossy(&page.body).into_owned()
}

/// A single-page app whose router rewrites the URL (drops the query) at
/// once, before the snippet loads; then an in-app partner link reached by
/// `pushState`. Returns who the landing credited and who the later link did.
async fn single_page_app() -> String {
    let c = Arc::new(Collector::shop());
    let site = c.shop_url();
    let cc = c.clone();
    let (landing, pushed) = in_browser(Profile::default(), move |client| async move {
        Page::open(&client, &format!("{site}/app.html{}", link("alice", "x1"))).await;
        cc.wait_for_count(CLICKS, 1);
        let rewritten = client.current_url().await.unwrap();
        assert_eq!(rewritten.query(), None, "the router rewrote the URL");
        let landing = Page::eval(&client, "growsumo.data.partner_key").await;
        client
            .find(Locator::Id("to-offer"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        cc.wait_for_count(CLICKS, 2);
        client
            .find(Locator::Id("to-signup"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let status = Page::submit_signup(&client, "Ann Example", ANN).await;
        assert_eq!(status, "Your account is ready.");
        (landing, Page::eval(&client, "growsumo.data.partner_key").await)
    })
    .await;
    c.wait_for_count("SELECT count(*) FROM customers", 1);
    format!(
        "landing {}; after pushState {}; signup {}",
        landing.as_str().unwrap_or("?"),
        pushed.as_str().unwrap_or("?"),
        c.credited(ANN)
    )
}

/// A tag manager or bundle runs the loader with no `currentScript`: the
/// collector is named in `_initialize`'s options, or by a `data-collector`
/// attribute on a script tag of the page.
async fn no_current_script(by_attribute: bool) -> String {
    let c = Arc::new(Collector::shop());
    let site = c.shop_url();
    let collector = c.page("http", "collector.test");
    let pk = c.public_key.clone();
    let answer = in_browser(Profile::default(), move |client| async move {
        Page::open(&client, &format!("{site}/{}", link("alice", "x1"))).await;
        client.goto(&format!("{site}/welcome.html")).await.unwrap();
        let script = r#"
            const [collector, pk, byAttribute, done] = arguments;
            if (byAttribute) {
                const tag = document.createElement("script");
                tag.dataset.collector = collector;
                document.head.appendChild(tag);
            }
            fetch(collector + "/v1/").then((r) => r.text()).then((text) => {
                (0, eval)(text); // no currentScript while this runs
                growsumo._initialize(pk, byAttribute ? undefined : { collector: collector });
                growsumo.data.email = "ann@example.com";
                growsumo.createSignup((error, result) => done(error ? error.message : result.status));
            });
        "#;
        client
            .execute_async(script, vec![json!(collector), json!(pk), json!(by_attribute)])
            .await
            .unwrap()
    })
    .await;
    format!("signup {}; {}", answer.as_str().unwrap_or("?"), c.credited(ANN))
}

/// Two tabs of the shop sign up at the same moment while the collector is
/// down (both signups wait in the shared outbox), then it comes back: each
/// signup is stored once, and nothing is left behind.
async fn two_tabs() -> String {
    let mut c = Collector::shop();
    let site = c.shop_url();
    in_browser(Profile::default(), move |client| async move {
        Page::open(&client, &format!("{site}/{}", link("alice", "x1"))).await;
        c.wait_for_count(CLICKS, 1);
        let first = client.window().await.unwrap();
        Page::open(&client, &format!("{site}/signup.html")).await;
        let second = client.new_window(true).await.unwrap().handle;
        client.switch_to_window(second.clone()).await.unwrap();
        Page::open(&client, &format!("{site}/signup.html")).await;
        c.kill();
        // Both tabs sign up at one agreed moment.
        let at = Page::eval(&client, "Date.now() + 400").await;
        let schedule = r#"const [at, email] = arguments;
            setTimeout(() => {
                growsumo.data.email = email;
                growsumo.createSignup((error, result) => { window.answer = error ? error.message : result.status; });
            }, at - Date.now()); return true;"#;
        client.execute(schedule, vec![at.clone(), json!("tab2@example.com")]).await.unwrap();
        client.switch_to_window(first.clone()).await.unwrap();
        client.execute(schedule, vec![at, json!("tab1@example.com")]).await.unwrap();
        for window in [second, first] {
            client.switch_to_window(window).await.unwrap();
            let answer = client
                .execute_async(
                    "const done = arguments[0]; (function wait() { window.answer ? done(answer) : setTimeout(wait, 20); })();",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(answer, json!("queued"));
        }
        c.restart();
        c.wait_for_count("SELECT count(*) FROM customers", 2);
        // A later page sees the collector's answers and empties the outbox.
        Page::open(&client, &format!("{site}/")).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while Page::eval(&client, "Object.keys(localStorage).filter((k) => k.startsWith('growsumo_ev_')).length").await
            != json!(0)
        {
            assert!(std::time::Instant::now() < deadline, "the outbox never emptied");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let signups = c.count("SELECT count(*) FROM events WHERE type = 'signup'");
        format!(
            "{} customers, {signups} signups, outbox empty; {} and {}",
            c.customers().len(),
            c.credited("tab1@example.com"),
            c.credited("tab2@example.com")
        )
    })
    .await
}

type Run = Pin<Box<dyn Future<Output = String> + Send>>;

fn journey(c: Collector, scheme: &str, host: &str) -> Run {
    let site = if host.is_empty() {
        c.url.clone()
    } else {
        c.page(scheme, host)
    };
    Box::pin(link_then_signup(Arc::new(c), site))
}

#[tokio::test]
async fn deployment_shapes() {
    const CREDITED: &str = "alice; cookie on shop.test; alice via xid";
    const CREDITED_HTTPS: &str = "alice; cookie on shop.test (secure); alice via xid";
    let rows: Vec<(&str, &str, String, Run)> = vec![
        (
            "cross-origin, http",
            "link -> signup",
            CREDITED.into(),
            journey(Collector::shop(), "http", "www.shop.test"),
        ),
        (
            "cross-origin, https",
            "link -> signup",
            CREDITED_HTTPS.into(),
            journey(Collector::shop(), "https", "www.shop.test"),
        ),
        (
            "proxied at /_ps/, https",
            "link -> signup",
            "server cookie on proxied.test (HttpOnly); cookie on proxied.test (secure); alice via xid".into(),
            Box::pin(proxied()),
        ),
        (
            "same origin, http",
            "link -> signup",
            "alice; cookie on 127.0.0.1; alice via xid".into(),
            journey(Collector::start(), "http", ""),
        ),
        (
            "strict CSP with 'wasm-unsafe-eval'",
            "link -> signup",
            CREDITED_HTTPS.into(),
            journey(Collector::shop(), "https", "strict.shop.test"),
        ),
        (
            "strict CSP without 'wasm-unsafe-eval'",
            "link -> signup",
            "signup error \"growsumo could not start: the page's Content-Security-Policy blocks WebAssembly\"; \
             0 page errors; report csp_wasm from https://nowasm.shop.test (on the dashboard); later page: alice via xid"
                .into(),
            Box::pin(csp_blocks_wasm()),
        ),
        (
            "single-page app",
            "URL rewritten at once; pushState link",
            "landing alice; after pushState bob; signup bob via xid".into(),
            Box::pin(single_page_app()),
        ),
        (
            "no currentScript (tag manager)",
            "collector in _initialize",
            "signup accepted; alice via xid".into(),
            Box::pin(no_current_script(false)),
        ),
        (
            "no currentScript (bundled)",
            "data-collector attribute",
            "signup accepted; alice via xid".into(),
            Box::pin(no_current_script(true)),
        ),
        (
            "two tabs, collector down",
            "two signups at once",
            "2 customers, 2 signups, outbox empty; alice via xid and alice via xid".into(),
            Box::pin(two_tabs()),
        ),
    ];
    let mut table = format!("{:<40} {:<38} {}\n", "shape", "journey", "result");
    let mut passed = 0;
    let total = rows.len();
    for (shape, journey, expected, run) in rows {
        let got = match tokio::spawn(run).await {
            Ok(got) => got,
            Err(e) => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("failed: {}", message.lines().collect::<Vec<_>>().join(" "))
            }
        };
        if got == expected {
            passed += 1;
            table += &format!("{shape:<40} {journey:<38} pass: {got}\n");
        } else {
            table += &format!(
                "{shape:<40} {journey:<38} FAIL: got {got}\n{:<80} expected {expected}\n",
                ""
            );
        }
    }
    table += &format!("{passed} of {total} deployment shapes pass\n");
    println!("{table}");
    let _ = std::fs::write(e2e::target_dir().join("deployment-shapes.txt"), &table);
    assert_eq!(passed, total, "\n{table}");
}
