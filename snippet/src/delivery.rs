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

use crate::js::{call, delete, get, get_num, get_or_new, get_str, items, new_array, object, push, set, stringify};
use crate::outbox;
use alloc::string::String;
use alloc::vec::Vec;
use wasm_bindgen::JsValue;
use wire::{field, status};

const FIRST_RETRY_MS: f64 = 1000.0;
const LAST_RETRY_MS: f64 = 60_000.0;

/// Asks `core.js` to send what the outbox holds.
pub fn flush(state: &JsValue) {
    call(state, "f", &JsValue::UNDEFINED, &JsValue::UNDEFINED);
}

/// `{"pk": pk, "events": events, "dropped": dropped}` as JSON text.
fn body(pk: &str, events: &JsValue, dropped: f64) -> JsValue {
    let batch = object();
    set(&batch, "pk", &pk.into());
    set(&batch, "events", events);
    if dropped > 0.0 {
        set(&batch, "dropped", &dropped.into());
    }
    stringify(&batch).into()
}

/// The next batch to post, as its JSON body (`undefined`: nothing to send);
/// its ids and drop count are kept in `state.sent` until `settle`.
pub fn next(state: &JsValue) -> JsValue {
    let outbox = outbox::load(state);
    let Some(batch) = outbox::batches(&outbox).into_iter().next() else {
        return JsValue::UNDEFINED;
    };
    let dropped = get_num(&outbox, "dropped");
    let sent = object();
    let ids = new_array();
    for id in &batch.ids {
        push(&ids, &id.into());
    }
    set(&sent, "ids", &ids);
    set(&sent, "dropped", &dropped.into());
    set(state, "sent", &sent);
    body(&batch.pk, &batch.events, dropped)
}

/// Settles the batch in flight by the collector's answer: its HTTP `status`
/// (0: none came) and JSON `body`. True when the next batch may be sent.
pub fn settle(state: &JsValue, status: u16, body: &JsValue) -> bool {
    if matches!(status, 0 | 408 | 429 | 500..=599) {
        retry_later(state);
        return false;
    }
    let sent = get(state, "sent");
    let ids: Vec<String> = items(&get(&sent, "ids")).filter_map(|id| id.as_string()).collect();
    set(state, "delay", &0.into());
    outbox::remove(state, &ids, get_num(&sent, "dropped"));
    let results = get(body, "results");
    for id in &ids {
        let result = items(&results).find(|r| get_str(r, field::ID) == *id);
        let outcome = match result {
            Some(r) if get_str(&r, "status") != status::REJECTED => Ok(r),
            Some(r) => Err(error(&get_str(&r, "message"), &get_str(&r, "field"))),
            None => Err(error(&get_str(body, "message"), &get_str(body, "field"))),
        };
        finish(state, id, outcome);
    }
    true
}

fn retry_later(state: &JsValue) {
    let delay = get_num(state, "delay") * 2.0;
    let delay = delay.clamp(FIRST_RETRY_MS, LAST_RETRY_MS);
    set(state, "delay", &delay.into());
    call(state, "retry", &delay.into(), &JsValue::UNDEFINED);
}

/// Registers `cb` to hear the collector's answer for event `id`.
pub fn wait_for(state: &JsValue, id: &str, cb: &JsValue) {
    if cb.is_function() {
        set(&get_or_new(state, "cbs"), id, cb);
    }
}

/// Calls the callback waiting for `id`, once, as `cb(error, result)`.
fn finish(state: &JsValue, id: &str, outcome: Result<JsValue, JsValue>) {
    let cbs = get_or_new(state, "cbs");
    // (A throwing callback is the page's own error: `call` keeps it there.)
    match outcome {
        Ok(result) => call(&cbs, id, &JsValue::NULL, &result),
        Err(error) => call(&cbs, id, &error, &JsValue::UNDEFINED),
    };
    delete(&cbs, id);
}

/// Every batch the outbox holds, as JSON bodies, for `navigator.sendBeacon`
/// (the page is being hidden). There is no answer: the events stay in the
/// outbox and a later page load re-sends them (the collector answers
/// `duplicate` if the beacon got through). The outbox's bounds keep each
/// beacon under the browser's 64 KB.
pub fn beacons(state: &JsValue) -> JsValue {
    let outbox = outbox::load(state);
    let mut dropped = get_num(&outbox, "dropped");
    let bodies = new_array();
    for batch in outbox::batches(&outbox) {
        push(&bodies, &body(&batch.pk, &batch.events, dropped));
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
    crate::js::error(message, field_name)
}
