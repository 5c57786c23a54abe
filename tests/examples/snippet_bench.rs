//! `cargo xtask bench snippet`: what the snippet costs a merchant's page, in
//! headless Chromium over loopback, against the real collector behind the
//! shop's nginx (the collector on its own origin, as merchants install it).
//!
//! For each scenario, `RUNS` page loads, each in a fresh browser profile
//! (an empty cache: the first page view of a new visitor), then one more
//! plain page view in the same profile (a returning page view, the cache
//! warm): the medians of the time from navigation to `growsumo` defined, to
//! `growsumoInit` (`growsumo.data` holds the referral), and of the page's
//! long tasks; and the requests each load made to the collector.

use e2e::{b64, in_browser, Collector, Page, Profile};
use serde_json::Value;

const RUNS: usize = 9;

#[derive(Default)]
struct Samples {
    defined: Vec<f64>,
    ready: Vec<f64>,
    long: Vec<f64>,
    requests: Vec<String>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The collector requests of the page, as `path (transfer bytes)`.
const REQUESTS: &str = "performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/v1/'))
    .map(e => new URL(e.name).pathname.replace(/-[0-9a-f]{12,16}[.]/, '-<hash>.') + ' (' + e.transferSize + ' B)')";

async fn load(client: &fantoccini::Client, url: &str, samples: &mut Samples, partner: &str) {
    Page::open(client, url).await;
    let bench = Page::eval(client, "bench").await;
    assert_eq!(bench["partner_key"], partner, "{url}: the referral in growsumo.data");
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    samples.defined.push(number(&bench["defined_ms"]));
    samples.ready.push(number(&bench["ready_ms"]));
    samples.long.push(number(&bench["long_ms"]));
    let requests = Page::eval(client, REQUESTS).await;
    samples.requests = requests
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
}

fn print(label: &str, samples: &mut Samples) {
    println!(
        "{label:<44} {:>9.1} {:>9.1} {:>9.1}   {}",
        median(&mut samples.defined),
        median(&mut samples.ready),
        median(&mut samples.long),
        samples.requests.join(", ")
    );
}

#[tokio::main]
async fn main() {
    let c = Collector::shop();
    let plain = format!("{}/bench.html", c.shop_url());
    let partner = format!("{plain}?ps_partner_key={}&ps_xid=bench", b64("alice"));
    let mut rows: Vec<(&str, Samples, Samples)> = Vec::new();
    for (label, url, key) in [
        ("plain page view", plain.clone(), ""),
        ("partner landing", partner, "alice"),
    ] {
        let (mut first, mut again) = (Samples::default(), Samples::default());
        for _ in 0..RUNS {
            let (url, plain) = (url.clone(), plain.clone());
            let (a, b) = in_browser(Profile::default(), move |client| async move {
                let (mut a, mut b) = (Samples::default(), Samples::default());
                load(&client, &url, &mut a, key).await;
                load(&client, &plain, &mut b, key).await;
                (a, b)
            })
            .await;
            first.defined.extend(a.defined);
            first.ready.extend(a.ready);
            first.long.extend(a.long);
            first.requests = a.requests;
            again.defined.extend(b.defined);
            again.ready.extend(b.ready);
            again.long.extend(b.long);
            again.requests = b.requests;
        }
        rows.push((label, first, again));
    }
    println!("medians of {RUNS} page loads, ms since navigation");
    println!(
        "{:<44} {:>9} {:>9} {:>9}   requests to the collector",
        "", "defined", "ready", "long tasks"
    );
    for (label, mut first, mut again) in rows {
        print(&format!("{label}, new visitor"), &mut first);
        print(&format!("{label}, then a plain page view"), &mut again);
    }
}
