//! Puts a batch of events on the wire: `fetch` (with its answer) while the page
//! lives, `navigator.sendBeacon` when it is being hidden or unloaded.
//!
//! The body is JSON sent as `text/plain`, a CORS "simple request" that needs no
//! preflight, and `fetch` uses `keepalive` so the request outlives a page that
//! navigates away. JSON is built and parsed by the browser's own `JSON`, not
//! serde: it costs the wasm nothing.

use crate::js::set;
use alloc::string::String;
use js_sys::{Array, Object, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

/// The collector's answer to one POST: its HTTP status and JSON body
/// (`undefined` when the body was not JSON).
pub struct Answer {
    pub status: u16,
    pub body: JsValue,
}

fn url(base: &str) -> String {
    String::from(base) + wire::EVENTS_PATH
}

/// `{"pk": pk, "events": events, "dropped": dropped}` as JSON text.
fn body(pk: &str, events: &Array, dropped: f64) -> Option<String> {
    let batch = Object::new();
    set(&batch, "pk", &pk.into());
    set(&batch, "events", events);
    if dropped > 0.0 {
        set(&batch, "dropped", &dropped.into());
    }
    JSON::stringify(&batch).ok()?.as_string()
}

/// POSTs a batch to the collector. Fails only when no HTTP answer came back
/// (network error, blocked request).
pub async fn post(base: &str, pk: &str, events: &Array, dropped: f64) -> Result<Answer, JsValue> {
    let init = Object::new();
    set(&init, "method", &"POST".into());
    set(&init, "body", &body(pk, events, dropped).into());
    set(&init, "keepalive", &JsValue::TRUE);
    // The server cookie (server-cookie mode) travels with events, and is set
    // by the answer to a click.
    set(&init, "credentials", &"include".into());
    let window = web_sys::window().ok_or(JsValue::NULL)?;
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(&url(base), init.unchecked_ref()))
        .await?
        .dyn_into()?;
    let body = match response.json() {
        Ok(promise) => JsFuture::from(promise).await.unwrap_or(JsValue::UNDEFINED),
        Err(_) => JsValue::UNDEFINED,
    };
    Ok(Answer {
        status: response.status(),
        body,
    })
}

/// Hands a batch to the browser to deliver after the page is gone. There is
/// no answer: the events stay in the outbox and a later page load re-sends
/// them (the collector answers `duplicate` if the beacon got through).
pub fn beacon(base: &str, pk: &str, events: &Array, dropped: f64) {
    if let (Some(window), Some(body)) = (web_sys::window(), body(pk, events, dropped)) {
        let _ = window.navigator().send_beacon_with_opt_str(&url(base), Some(&body));
    }
}
