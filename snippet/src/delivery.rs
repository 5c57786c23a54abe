//! Delivery: sends what the outbox holds, oldest first, one batch at a time,
//! and settles each event by the collector's answer.
//!
//! - accepted / duplicate / rejected (per event), or any other 4xx for the
//!   whole batch: final. The events leave the outbox and their `createSignup`
//!   callbacks, if still waiting, are called.
//! - no answer (network error), 5xx, 408 or 429: kept, and retried with
//!   backoff (1 s doubling to 60 s) on this page; later page loads of the site
//!   retry too.
//!
//! `state` is a plain object the loader keeps for this page: `busy` (a send is
//! in flight), `delay` (the current backoff), `cbs` (waiting callbacks by event
//! id), `retry(ms)` (a loader function that calls `flush` again later), and
//! the outbox's memory copy.

use crate::js::{array, get, get_num, get_or_new, get_str, set};
use crate::{outbox, send};
use alloc::string::String;
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wire::{field, status};

const FIRST_RETRY_MS: f64 = 1000.0;
const LAST_RETRY_MS: f64 = 60_000.0;

/// Sends everything in the outbox, unless a send is already in flight.
pub fn flush(base: String, state: Object) {
    if get(&state, "busy").is_truthy() {
        return;
    }
    set(&state, "busy", &JsValue::TRUE);
    wasm_bindgen_futures::spawn_local(async move {
        drain(&base, &state).await;
        set(&state, "busy", &JsValue::FALSE);
    });
}

async fn drain(base: &str, state: &Object) {
    loop {
        let outbox = outbox::load(state);
        let Some(outbox::Batch { pk, events, ids }) = outbox::batches(&outbox).into_iter().next() else {
            return;
        };
        let dropped = get_num(&outbox, "dropped");
        let answer = match send::post(base, &pk, &events, dropped).await {
            Ok(answer) if !matches!(answer.status, 408 | 429 | 500..=599) => answer,
            _ => return retry_later(state),
        };
        set(state, "delay", &0.into());
        outbox::remove(state, &ids, dropped);
        let results = array(get(&answer.body, "results"));
        for id in &ids {
            let result = results.iter().find(|r| get_str(r, field::ID) == *id);
            let outcome = match result {
                Some(r) if get_str(&r, "status") != status::REJECTED => Ok(r),
                Some(r) => Err(error(&get_str(&r, "message"), &get_str(&r, "field"))),
                None => Err(error(
                    &get_str(&answer.body, "message"),
                    &get_str(&answer.body, "field"),
                )),
            };
            settle(state, id, outcome);
        }
    }
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
fn settle(state: &Object, id: &str, outcome: Result<JsValue, JsValue>) {
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

/// Beacons everything in the outbox: the page is being hidden or unloaded.
/// The outbox's bounds keep each beacon under the browser's 64 KB.
pub fn beacon(base: &str, state: &Object) {
    let outbox = outbox::load(state);
    let mut dropped = get_num(&outbox, "dropped");
    for batch in outbox::batches(&outbox) {
        send::beacon(base, &batch.pk, &batch.events, dropped);
        dropped = 0.0;
    }
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
