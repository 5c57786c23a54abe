//! Headless Debian Chromium driven over WebDriver (chromedriver on an
//! ephemeral port, a fresh profile per test). `with_browser` always closes the
//! browser and stops the driver, also when the test body panics, then
//! re-raises the panic so the test fails.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The longest any one browser test may take before it fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// How to start Chromium, beyond the defaults: a different "person" for the
/// fingerprint tests.
#[derive(Default, Clone)]
pub struct Profile {
    /// Extra command-line switches (`--lang=fr-FR`, `--user-agent=…`).
    pub args: Vec<String>,
    /// The browser's time zone (`TZ`), e.g. "Asia/Tokyo".
    pub time_zone: Option<String>,
    /// `--window-size`, default 1280,900.
    pub window_size: Option<String>,
}

/// Runs `test` with a fresh headless Chromium.
pub async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_profile(Profile::default(), test).await
}

/// Runs `test` with a fresh headless Chromium started as `profile` says.
pub async fn with_profile<F, Fut>(profile: Profile, test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Chromium and chromedriver write scoped dirs under TMPDIR: keep them in
    // this test's temp dir so they go away with it.
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
        .arg(format!("--port={port}"))
        .env("TMPDIR", dir.path())
        .envs(profile.time_zone.iter().map(|tz| ("TZ", tz)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is not installed: run `cargo xtask test`, which installs it");
    let stdout = driver.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("started successfully"));
    assert!(started, "chromedriver exited before it was ready");
    std::thread::spawn(move || lines.for_each(drop));

    let user_data = dir.path().join("profile");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        // Merchant sites and the collector on real-looking names, all on
        // loopback (see `site`): a registrable domain (example.com), one
        // under a public suffix (co.uk), and `.test` names.
        "--host-resolver-rules=MAP *.example.com 127.0.0.1, MAP *.shop.co.uk 127.0.0.1, MAP *.test 127.0.0.1",
        // Plain http on those names, without first trying https.
        "--disable-features=HttpsUpgrades",
        // https with the test's own certificate (see `site`).
        "--ignore-certificate-errors",
    ]
    .map(String::from)
    .into();
    args.push(format!(
        "--window-size={}",
        profile.window_size.as_deref().unwrap_or("1280,900")
    ));
    args.push(format!("--user-data-dir={}", user_data.display()));
    args.extend(profile.args);
    let options = json!({
        "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        "args": args,
    });
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("starting Chromium through chromedriver");

    let body = tokio::spawn(tokio::time::timeout(TEST_TIMEOUT, test(client.clone())));
    let outcome = body.await;
    let _ = client.close().await;
    let _ = driver.kill();
    let _ = driver.wait();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("browser test timed out after {TEST_TIMEOUT:?}"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("browser test was cancelled: {e}"),
    }
}

/// Runs `body` in a fresh Chromium started as `profile` says, and returns
/// what it returned (the browser is closed either way).
pub async fn in_browser<T, Fut>(profile: Profile, body: impl FnOnce(Client) -> Fut + Send + 'static) -> T
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = slot.clone();
    with_profile(profile, move |client| async move {
        let value = body(client).await;
        *out.lock().unwrap() = Some(value);
    })
    .await;
    let value = slot.lock().unwrap().take();
    value.expect("the browser test returned")
}

/// Helpers for a page under test.
pub struct Page;

impl Page {
    /// Opens `url` and waits until the snippet has read the referral.
    pub async fn open(client: &Client, url: &str) {
        client.goto(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
        Page::ready(client).await;
    }

    /// Waits until the page's `growsumoInit` has run, i.e. `growsumo.data`
    /// holds the referral: the demo pages mark `<html data-growsumo="ready">`.
    /// Event-driven (a MutationObserver), not polled.
    pub async fn ready(client: &Client) {
        let script = r#"
            const done = arguments[arguments.length - 1];
            const html = document.documentElement;
            if (html.dataset.growsumo === "ready") return done(true);
            new MutationObserver((_, observer) => {
                if (html.dataset.growsumo === "ready") { observer.disconnect(); done(true); }
            }).observe(html, { attributes: true });
        "#;
        client
            .execute_async(script, vec![])
            .await
            .expect("growsumo became ready");
    }

    /// Fills the demo signup form's name and email, submits it, and waits for
    /// the welcome page it leads to (whose `#status` says how it went).
    pub async fn submit_signup(client: &Client, name: &str, email: &str) -> String {
        for (id, text) in [("name", name), ("email", email)] {
            let input = client.find(Locator::Id(id)).await.expect("a form field");
            input.send_keys(text).await.expect("typing into the form");
        }
        client.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
        // The page navigates while the element is looked for: chromedriver
        // may then answer a lookup with "aborted by navigation", which only
        // means "look again".
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            match client
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Id("status"))
                .await
            {
                Ok(status) => break status,
                Err(e)
                    if format!("{e:?}").contains("aborted by navigation") && std::time::Instant::now() < deadline => {}
                Err(e) => panic!("the welcome page after the form: {e:?}"),
            }
        };
        status.text().await.unwrap()
    }

    /// Whether `expr` became true in the page within `secs` seconds: for a
    /// state the page reaches by itself (a callback ran, storage emptied)
    /// with no event to await, polled every 50 ms.
    pub async fn until(client: &Client, expr: &str, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while Page::eval(client, expr).await != Value::Bool(true) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Evaluates `expr` in the page and returns its JSON value.
    pub async fn eval(client: &Client, expr: &str) -> Value {
        client
            .execute(&format!("return {expr};"), vec![])
            .await
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }
}
