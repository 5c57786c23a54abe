//! Pages and answers that misbehave: a `document.cookie` wrapper, canvas and
//! WebGL probes that throw (anti-fingerprinting scripts), odd or hostile
//! `/events` answers, an unreadable outbox of an earlier version. The
//! snippet keeps working (and keeps its fingerprint) in a real browser.
//! Each page loads stage 1 by hand (as faults.rs's blocked storage does) on
//! `welcome.html`, which has no snippet, after the page set up its quirk.
//! (Written by the review of the wasm's hand-written imports: each failed
//! against its first version.)

use e2e::count::CLICKS;
use e2e::{b64, with_browser, Collector, Page};
use fantoccini::Client;
use serde_json::{json, Value};

/// Loads stage 1 on the current page after running `setup` (page JS), and
/// calls `_initialize`; records page errors and unhandled rejections in
/// `window.errors`.
async fn load_snippet(client: &Client, c: &Collector, setup: &str) {
    let script = format!(
        r#"
        const [pk, collector, done] = arguments;
        window.errors = [];
        addEventListener("error", (e) => errors.push(String(e.message)));
        addEventListener("unhandledrejection", (e) => errors.push("rejection: " + String(e.reason)));
        {setup}
        const gs = document.createElement("script");
        gs.src = collector + "/v1/";
        gs.onload = () => {{ growsumo._initialize(pk); done(true); }};
        document.head.appendChild(gs);
    "#
    );
    let collector = c.page("http", "collector.test");
    client
        .execute_async(&script, vec![json!(c.public_key), json!(collector)])
        .await
        .unwrap();
}

/// A page whose `document.cookie` getter answers `undefined` (a cookie
/// wrapper that returns nothing for "blocked"): read as "no cookie". (A
/// non-string passed on to wasm-bindgen's string conversion would throw
/// through the wasm and abort stage 2's start: no click, no referral.)
#[tokio::test]
async fn a_cookie_getter_answering_undefined_still_records_the_landing() {
    with_browser(|client| async move {
        let c = Collector::shop();
        client
            .goto(&format!(
                "{}/welcome.html?ps_partner_key={}&ps_xid=ck-1",
                c.shop_url(),
                b64("alice")
            ))
            .await
            .unwrap();
        load_snippet(
            &client,
            &c,
            r#"Object.defineProperty(document, "cookie", { configurable: true, get() { return undefined; }, set(v) {} });"#,
        )
        .await;
        let referral = Page::until(&client, "growsumo.data.partner_key === 'alice'", 10).await;
        let errors = Page::eval(&client, "errors").await;
        assert!(referral, "referral read: {referral}, page errors: {errors}");
        // (The click is sent after the referral is read: awaited.)
        c.wait_for_count(CLICKS, 1);
    })
    .await;
}

/// The fingerprint as the first version (js-sys and web-sys) computed it,
/// re-implemented in the page as its Rust did: a visitor's click and
/// signup match across snippet versions only if it never changes:
/// each browser call on its own (`Reflect.get`, `Function.apply`, each
/// failure `undefined`), a WebGL context that is not an object `null`.
const OLD_FINGERPRINT: &str = r##"
    const enc = new TextEncoder(), M = (1n << 64n) - 1n;
    let h = 0xcbf29ce484222325n;
    const add = (v) => {
        let t;
        try { t = JSON.stringify(v); } catch (e) {}
        if (typeof t != "string") t = "";
        for (const b of [...enc.encode(t), 0]) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M;
    };
    const get = (o, k) => { try { return Reflect.get(o, k); } catch (e) {} };
    const set = (o, k, v) => { try { Reflect.set(o, k, v); } catch (e) {} };
    const call = (o, m, args) => {
        const f = get(o, m);
        if (typeof f != "function") return undefined;
        try { return f.apply(o, args); } catch (e) {}
    };
    const isObj = (v) => typeof v == "object" && v !== null;
    const nav = get(window, "navigator");
    for (const k of ["userAgent", "languages", "hardwareConcurrency", "deviceMemory", "platform", "maxTouchPoints"]) add(get(nav, k));
    const scr = get(window, "screen");
    for (const k of ["width", "height", "availWidth", "availHeight", "colorDepth"]) add(get(scr, k));
    for (const k of ["devicePixelRatio", "outerWidth", "outerHeight"]) add(get(window, k));
    add(get(call(call(get(window, "Intl"), "DateTimeFormat", []), "resolvedOptions", []), "timeZone"));
    add(new Date().getTimezoneOffset());
    const canvas = call(document, "createElement", ["canvas"]);
    const ctx = call(canvas, "getContext", ["2d"]);
    if (isObj(ctx)) {
        set(ctx, "font", "15px Arial");
        set(ctx, "fillStyle", "#f60");
        call(ctx, "fillRect", [90, 2, 50, 20]);
        set(ctx, "fillStyle", "rgba(0,90,200,0.7)");
        call(ctx, "fillText", ["growsumo \u{1f91d} 3.14", 4, 17]);
    }
    add(call(canvas, "toDataURL", []));
    const gl = call(call(document, "createElement", ["canvas"]), "getContext", ["webgl"]);
    if (!isObj(gl)) add(null);
    else {
        const info = call(gl, "getExtension", ["WEBGL_debug_renderer_info"]);
        const u = get(info, "UNMASKED_RENDERER_WEBGL");
        add(call(gl, "getParameter", [typeof u == "number" ? u : 0x1f01]));
    }
    let z = h;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    z = z ^ (z >> 31n);
    return z.toString(16).padStart(16, "0");
"##;

/// Records the bodies stage 2 posts to `/events` in `window.sent`.
const CAPTURE: &str = r#"
    window.sent = [];
    const realFetch = window.fetch;
    window.fetch = function (url, init) {
        if (/\/events$/.test(String(url)) && init && init.body) sent.push(JSON.parse(init.body));
        return realFetch.apply(this, arguments);
    };
"#;

/// The snippet's fingerprint of a signup, against the first version's
/// algorithm, with nothing changed and with canvas/WebGL calls that throw
/// (anti-fingerprinting scripts and extensions do that).
#[tokio::test]
async fn the_fingerprint_is_the_previous_builds() {
    let cases = [
        ("nothing changed", ""),
        (
            "getContext('webgl') throws",
            r#"const g = HTMLCanvasElement.prototype.getContext;
               HTMLCanvasElement.prototype.getContext = function (t, ...a) {
                   if (t == "webgl") throw new Error("blocked"); return g.call(this, t, ...a); };"#,
        ),
        (
            "fillText throws",
            r#"CanvasRenderingContext2D.prototype.fillText = function () { throw new Error("blocked"); };"#,
        ),
    ];
    let mut report = Vec::new();
    for (name, quirk) in cases {
        let (snippet, old) = fingerprints(quirk).await;
        report.push(format!("{name}: snippet {snippet}, first version {old}"));
        if snippet != old {
            report.push(format!("  ^ differs ({name})"));
        }
    }
    let text = report.join("\n");
    println!("{text}");
    assert!(!text.contains("differs"), "{text}");
}

async fn fingerprints(quirk: &'static str) -> (Value, Value) {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = slot.clone();
    with_browser(move |client| async move {
        let c = Collector::shop();
        client.goto(&format!("{}/welcome.html", c.shop_url())).await.unwrap();
        load_snippet(&client, &c, &format!("{quirk}\n{CAPTURE}")).await;
        // Waits for the signup's callback.
        client
            .execute_async(
                r#"const done = arguments[0];
                   growsumo.data.email = "fp@example.com";
                   growsumo.createSignup((e, r) => done(e ? e.message : r.status));"#,
                vec![],
            )
            .await
            .unwrap();
        assert!(
            Page::until(
                &client,
                "sent.some((b) => b.events.some((e) => e.type == 'signup'))",
                10
            )
            .await
        );
        let snippet = Page::eval(
            &client,
            "sent.flatMap((b) => b.events).find((e) => e.type == 'signup').fingerprint",
        )
        .await;
        let old = client.execute(OLD_FINGERPRINT, vec![]).await.unwrap();
        *out.lock().unwrap() = Some((snippet, old));
    })
    .await;
    let value = slot.lock().unwrap().take();
    value.unwrap()
}

/// Collector answers to `/events` that are not the usual shape: each
/// signup's callback is called once, at once, and nothing throws into the
/// page.
#[tokio::test]
async fn odd_event_answers_call_each_callback_once_and_at_once() {
    odd_answers(&[
        r#"{"results": "ok"}"#,
        r#"{"results": null}"#,
        r#"{"results": 5}"#,
        r#"{"results": {}}"#,
        r#""just a string""#,
        r#"[1, 2, 3]"#,
        r#"null"#,
    ])
    .await;
}

/// An array-like `results` (an object with a `length`) is not an array: not
/// walked item by item (4,294,967,295 of them would block the page).
#[tokio::test]
async fn an_array_like_results_answer_does_not_block_the_page() {
    odd_answers(&[r#"{"results": {"length": 1000000}}"#]).await;
}

async fn odd_answers(answers: &'static [&'static str]) {
    with_browser(move |client| async move {
        let c = Collector::shop();
        client.goto(&format!("{}/welcome.html", c.shop_url())).await.unwrap();
        let mock = r#"
            window.answer = undefined;
            const realFetch = window.fetch;
            window.fetch = function (url, init) {
                if (/\/events$/.test(String(url)) && window.answer !== undefined) {
                    window.answered = performance.now();
                    return Promise.resolve(new Response(window.answer, { status: 200 }));
                }
                return realFetch.apply(this, arguments);
            };
        "#;
        load_snippet(&client, &c, mock).await;
        let mut report = Vec::new();
        for answer in answers {
            let got = client
                .execute_async(
                    r#"const [answer, done] = arguments;
                       window.answer = answer;
                       let calls = 0, thisKind = "";
                       growsumo.data.email = "odd@example.com";
                       growsumo.createSignup(function (e, r) {
                           calls++;
                           thisKind = this === undefined || this === window ? "plain" : "other";
                           const ms = Math.round(performance.now() - window.answered);
                           // Give a second call the chance to happen.
                           setTimeout(() => done({ calls, thisKind, ms, outcome: e ? "error" : r.status }), 1700);
                       });"#,
                    vec![json!(answer)],
                )
                .await
                .unwrap();
            report.push(format!("{answer}: {got}"));
        }
        let errors = Page::eval(&client, "errors").await;
        let text = report.join("\n");
        println!("{text}\npage errors: {errors}");
        for line in &report {
            assert!(line.contains(r#""calls":1"#), "{text}");
            assert!(line.contains(r#""thisKind":"plain""#), "{text}");
            let ms: i64 = line
                .split(r#""ms":"#)
                .nth(1)
                .unwrap()
                .split([',', '}'])
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(ms < 500, "the callback waited {ms} ms: {line}\n{text}");
        }
        assert_eq!(errors, json!([]));
    })
    .await;
}

/// An earlier version's single-entry outbox that is JSON but not an object
/// (`null`) is removed: kept, it would make stage 1 (`growsumo_[eoldq]`)
/// load stage 2 on every page view.
#[tokio::test]
async fn a_legacy_outbox_that_is_not_an_object_is_removed() {
    with_browser(|client| async move {
        let c = Collector::shop();
        let shop = c.shop_url();
        client.goto(&format!("{shop}/welcome.html")).await.unwrap();
        client
            .execute("localStorage.growsumo_outbox = 'null';", vec![])
            .await
            .unwrap();
        Page::open(&client, &format!("{shop}/")).await;
        assert_eq!(
            Page::eval(&client, "growsumo._q.push != [].push").await,
            json!(true),
            "stage 2 ran"
        );
        let gone = Page::until(&client, "localStorage.growsumo_outbox === undefined", 5).await;
        assert!(
            gone,
            "growsumo_outbox is still {}",
            Page::eval(&client, "localStorage.growsumo_outbox").await
        );
    })
    .await;
}
