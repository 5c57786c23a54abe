//! Consent: whether this page may store anything in the browser and send
//! events. Refused (by `growsumo.consent(false)`, by Global Privacy Control
//! when the key honours it, or while a key that requires consent has none),
//! the snippet stores nothing (no cookies, no localStorage), computes no
//! fingerprint and sends nothing; what an earlier page stored is deleted.
//!
//! `state.c` is the page's own call (`true`/`false`, set by the loader),
//! `state.gpc` the browser's Global Privacy Control signal,
//! `state.denied` the decision, `state.fp` the fingerprint once computed. A
//! grant is remembered (localStorage) for later page views; a refusal deletes
//! the grant with everything else, and the loader asks the collector to
//! delete its server cookie.

use crate::config::Config;
use crate::js::{get, get_str, set, storage_get, storage_set};
use crate::storage;
use alloc::string::String;
use wasm_bindgen::JsValue;
use wire::CONSENT_KEY;

/// Decides for this page view; returns whether storing and sending is allowed.
pub fn decide(state: &JsValue, config: &Config) -> bool {
    let allowed = match get(state, "c").as_bool() {
        Some(true) => {
            // Remembered for later page views, which may not ask again.
            storage_set(CONSENT_KEY, "1");
            true
        }
        Some(false) => false,
        None => {
            let granted = storage_get(CONSENT_KEY).is_some();
            let gpc = config.honor_gpc && get(state, "gpc").is_truthy();
            granted || !(config.require_consent || gpc)
        }
    };
    set(state, "denied", &(!allowed).into());
    if !allowed {
        refuse(state);
    }
    allowed
}

/// Deletes everything stored, drops queued events, and stops this page from
/// storing or sending.
fn refuse(state: &JsValue) {
    storage::clear();
    crate::outbox::discard(state);
    set(state, "fp", &JsValue::UNDEFINED);
    set(state, "denied", &JsValue::TRUE);
}

pub fn denied(state: &JsValue) -> bool {
    get(state, "denied").is_truthy()
}

/// The fingerprint, computed on first use (a click or a signup, never a
/// plain page view: the canvas and WebGL probes cost the page time) and kept
/// for the page; empty without consent.
pub fn fingerprint(state: &JsValue) -> String {
    if denied(state) {
        return String::new();
    }
    let known = get_str(state, "fp");
    if !known.is_empty() {
        return known;
    }
    let fp = crate::fingerprint::compute();
    set(state, "fp", &fp.as_str().into());
    fp
}
