//! Delivery: decides what to send and settles each event by the collector's
//! answer; `core.js` puts the batches on the wire (`fetch`, or
//! `navigator.sendBeacon` when the page is being hidden). The wasm holds no
//! promise and no async executor: wasm-bindgen-futures cost the snippet
//! about 5 KB of wasm for the one `fetch` it awaited.
//!
//! One batch at a time, oldest events first:
//! - accepted / duplicate / rejected (per event), or any other 4xx for the
//!   whole batch: final. The events leave the outbox and their `createSignup`
//!   callbacks, if still waiting, are called.
//! - no answer (network error), 5xx, 408 or 429: kept, and retried with
//!   backoff (1 s doubling to 60 s) on this page; later page loads of the site
//!   retry too.
//!
//! `state` is a plain object `core.js` keeps for the page: `f()` (send what
//! the outbox holds, one batch after another), `delay` (the current
//! backoff), `cbs` (waiting callbacks by event id), `retry(ms)` (call `f`
//! again later), `sent` (the ids and drop count of the batch in flight),
//! and the outbox's memory copy.

use crate::js::{array, get, get_num, get_or_new, get_str, set};
use crate::outbox;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Array, Function, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wire::{field, status};

const FIRST_RETRY_MS: f64 = 1000.0;
const LAST_RETRY_MS: f64 = 60_000.0;

/// Asks `core.js` to send what the outbox holds.
pub fn flush(state: &Object) {
    if let Ok(flush) = get(state, "f").dyn_into::<Function>() {
        let _ = flush.call0(&JsValue::NULL);
    }
}

/// `{"pk": pk, "events": events, "dropped": dropped}` as JSON text.
fn body(pk: &str, events: &Array, dropped: f64) -> JsValue {
    let batch = Object::new();
    set(&batch, "pk", &pk.into());
    set(&batch, "events", events);
    if dropped > 0.0 {
        set(&batch, "dropped", &dropped.into());
    }
    JSON::stringify(&batch).map(JsValue::from).unwrap_or(JsValue::UNDEFINED)
}

/// The next batch to post, as its JSON body (`undefined`: nothing to send);
/// its ids and drop count are kept in `state.sent` until `settle`.
pub fn next(state: &Object) -> JsValue {
    let outbox = outbox::load(state);
    let Some(batch) = outbox::batches(&outbox).into_iter().next() else {
        return JsValue::UNDEFINED;
    };
    let dropped = get_num(&outbox, "dropped");
    let sent = Object::new();
    set(
        &sent,
        "ids",
        &batch.ids.iter().map(|id| JsValue::from(id.as_str())).collect::<Array>(),
    );
    set(&sent, "dropped", &dropped.into());
    set(state, "sent", &sent);
    body(&batch.pk, &batch.events, dropped)
}

/// Settles the batch in flight by the collector's answer: its HTTP `status`
/// (0: none came) and JSON `body`. True when the next batch may be sent.
pub fn settle(state: &Object, status: u16, body: &JsValue) -> bool {
    if matches!(status, 0 | 408 | 429 | 500..=599) {
        retry_later(state);
        return false;
    }
    let sent = get(state, "sent");
    let ids: Vec<String> = array(get(&sent, "ids"))
        .iter()
        .filter_map(|id| id.as_string())
        .collect();
    set(state, "delay", &0.into());
    outbox::remove(state, &ids, get_num(&sent, "dropped"));
    let results = array(get(body, "results"));
    for id in &ids {
        let result = results.iter().find(|r| get_str(r, field::ID) == *id);
        let outcome = match result {
            Some(r) if get_str(&r, "status") != status::REJECTED => Ok(r),
            Some(r) => Err(error(&get_str(&r, "message"), &get_str(&r, "field"))),
            None => Err(error(&get_str(body, "message"), &get_str(body, "field"))),
        };
        finish(state, id, outcome);
    }
    true
}

fn retry_later(state: &Object) {
    let delay = get_num(state, "delay") * 2.0;
    let delay = delay.clamp(FIRST_RETRY_MS, LAST_RETRY_MS);
    set(state, "delay", &delay.into());
    if let Ok(retry) = get(state, "retry").dyn_into::<Function>() {
        let _ = retry.call1(&JsValue::NULL, &delay.into());
    }
}

/// Registers `cb` to hear the collector's answer for event `id`.
pub fn wait_for(state: &Object, id: &str, cb: &JsValue) {
    if cb.is_function() {
        set(&get_or_new(state, "cbs"), id, cb);
    }
}

/// Calls the callback waiting for `id`, once, as `cb(error, result)`.
fn finish(state: &Object, id: &str, outcome: Result<JsValue, JsValue>) {
    let cbs = get_or_new(state, "cbs");
    let Ok(cb) = get(&cbs, id).dyn_into::<Function>() else {
        return;
    };
    let _ = Reflect::delete_property(&cbs, &id.into());
    // A throwing callback is the page's own error; it must not escape here.
    let _ = match outcome {
        Ok(result) => cb.call2(&JsValue::NULL, &JsValue::NULL, &result),
        Err(error) => cb.call1(&JsValue::NULL, &error),
    };
}

/// Every batch the outbox holds, as JSON bodies, for `navigator.sendBeacon`
/// (the page is being hidden). There is no answer: the events stay in the
/// outbox and a later page load re-sends them (the collector answers
/// `duplicate` if the beacon got through). The outbox's bounds keep each
/// beacon under the browser's 64 KB.
pub fn beacons(state: &Object) -> Array {
    let outbox = outbox::load(state);
    let mut dropped = get_num(&outbox, "dropped");
    let bodies = Array::new();
    for batch in outbox::batches(&outbox) {
        bodies.push(&body(&batch.pk, &batch.events, dropped));
        dropped = 0.0;
    }
    bodies
}

/// A JS `Error` with an optional `field` property naming the rejected field.
pub fn error(message: &str, field_name: &str) -> JsValue {
    let message = if message.is_empty() {
        "the collector refused the event"
    } else {
        message
    };
    let error = js_sys::Error::new(message);
    if !field_name.is_empty() {
        set(&error, "field", &field_name.into());
    }
    error.into()
}
