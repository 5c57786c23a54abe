//! Delivers a batch of events to the collector and reads its per-event answer.
//!
//! The body is JSON sent as `text/plain`, a CORS "simple request" that needs no
//! preflight, with `keepalive` so the request outlives a page that navigates away.
//! JSON is built and parsed by the browser's own `JSON`, not serde: it costs the
//! wasm nothing.

use alloc::string::String;
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

/// Sets `obj[key] = value`, ignoring failure (a plain object never refuses).
pub fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

/// `obj[key]` as a string, or "" when it is missing or not a string.
pub fn get_str(obj: &JsValue, key: &str) -> String {
    Reflect::get(obj, &key.into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// The collector's answer to one POST: its HTTP status and JSON body
/// (`undefined` when the body was not JSON).
pub struct Answer {
    pub status: u16,
    pub body: JsValue,
}

/// POSTs `{"pk": pk, "events": events}` to the collector's events endpoint.
/// Fails only when no HTTP answer came back (network error, blocked request).
pub async fn post(base: &str, pk: &str, events: &Array) -> Result<Answer, JsValue> {
    let batch = Object::new();
    set(&batch, "pk", &pk.into());
    set(&batch, "events", events);
    let init = Object::new();
    set(&init, "method", &"POST".into());
    set(&init, "body", &JSON::stringify(&batch)?.into());
    set(&init, "keepalive", &JsValue::TRUE);
    let window = web_sys::window().ok_or(JsValue::NULL)?;
    let url = String::from(base) + wire::EVENTS_PATH;
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(&url, init.unchecked_ref()))
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
