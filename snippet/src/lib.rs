//! The growsumo snippet, wasm side: the work behind PartnerStack's `growsumo` object.
//!
//! `loader.js` defines the `growsumo` global synchronously (PartnerStack's embed
//! code calls it as soon as the script loads), queues calls until this module is
//! ready, then calls the entry points below, passing `state`, a plain object it
//! keeps for the page (see `delivery`). No entry point returns an error or
//! throws: nothing here may break the host page.
//!
//! Every event goes into the outbox (`outbox`) before it is sent (`delivery`).
//!
//! Size is a feature: no serde, no `format!`, no panicking paths; JSON and number
//! formatting go through the browser's own functions.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod delivery;
mod js;
mod outbox;
mod params;
mod send;
mod storage;

use alloc::string::String;
use js::{get_str, set};
use js_sys::Object;
use wasm_bindgen::prelude::*;
use web_sys::{UrlSearchParams, Window};
use wire::{field, PARTNER_KEY_COOKIE, PARTNER_KEY_PARAMS, XID_COOKIE, XID_PARAMS};

/// Records the referral of this page view and fills `data.partner_key` and
/// `data.xid` from it: the landing URL's partner link if it has one (last click
/// wins), else what an earlier landing stored.
#[wasm_bindgen]
pub fn init(base: String, pk: String, data: Object, state: Object) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let query = window
        .location()
        .search()
        .ok()
        .and_then(|search| UrlSearchParams::new_with_str(&search).ok());
    let landing = query.as_ref().and_then(|q| params::from_query(|name| q.get(name)));
    let (partner_key, xid) = match landing {
        Some(referral) => {
            let known = storage::read(&window, PARTNER_KEY_COOKIE).as_ref() == Some(&referral.partner_key)
                && storage::read(&window, XID_COOKIE).unwrap_or_default() == referral.xid;
            storage::write(&window, PARTNER_KEY_COOKIE, &referral.partner_key);
            storage::write(&window, XID_COOKIE, &referral.xid);
            if !known {
                outbox::push(&state, &pk, &click(&window, &referral, query.as_ref()));
            }
            (referral.partner_key, referral.xid)
        }
        None => (
            storage::read(&window, PARTNER_KEY_COOKIE).unwrap_or_default(),
            storage::read(&window, XID_COOKIE).unwrap_or_default(),
        ),
    };
    set(&data, field::PARTNER_KEY, &partner_key.into());
    set(&data, field::XID, &xid.into());
    // Sends the click, and whatever earlier page views left in the outbox.
    delivery::flush(base, state);
}

/// Queues a signup built from `data` (a snapshot of `growsumo.data` taken when
/// the page called `createSignup`) and sends it. `cb(error, result)` is called
/// when the collector answers: `error` is null once it is stored, else an
/// `Error` whose `field` names the rejected field. Returns the event's id (the
/// loader calls `cb` itself, with status `queued`, if no answer comes soon).
#[wasm_bindgen]
pub fn signup(base: String, pk: String, data: Object, cb: JsValue, state: Object) -> String {
    let event = new_event(wire::EVENT_SIGNUP);
    for name in [
        field::EMAIL,
        field::NAME,
        field::CUSTOMER_KEY,
        field::PROVIDER_KEY,
        field::PARTNER_KEY,
        field::XID,
    ] {
        set_nonempty(&event, name, get_str(&data, name));
    }
    let id = get_str(&event, field::ID);
    outbox::push(&state, &pk, &event);
    delivery::wait_for(&state, &id, &cb);
    delivery::flush(base, state);
    id
}

/// Sends what the outbox holds (the loader's retry timer and `online` event).
#[wasm_bindgen]
pub fn flush(base: String, state: Object) {
    delivery::flush(base, state);
}

/// Hands the outbox to `navigator.sendBeacon` (the page is being hidden).
#[wasm_bindgen]
pub fn beacon(base: String, state: Object) {
    delivery::beacon(&base, &state);
}

/// A click for a landing that carries a partner link.
fn click(window: &Window, referral: &params::Referral, query: Option<&UrlSearchParams>) -> Object {
    let event = new_event(wire::EVENT_CLICK);
    set_nonempty(&event, field::PARTNER_KEY, referral.partner_key.clone());
    set_nonempty(&event, field::XID, referral.xid.clone());
    set_nonempty(&event, field::URL, landing_url(window, query));
    if let Some(doc) = window.document() {
        set_nonempty(&event, field::REFERRER, doc.referrer());
    }
    event
}

/// The landing URL without its partner parameters: the partner key and click
/// id are sent as fields of their own.
fn landing_url(window: &Window, query: Option<&UrlSearchParams>) -> String {
    let location = window.location();
    let mut url = location.origin().unwrap_or_default() + &location.pathname().unwrap_or_default();
    if let Some(query) = query {
        for name in PARTNER_KEY_PARAMS.iter().chain(XID_PARAMS.iter()) {
            query.delete(name);
        }
        let rest = String::from(query.to_string());
        if !rest.is_empty() {
            url.push('?');
            url.push_str(&rest);
        }
    }
    url
}

/// A new event object with a browser-generated unique id (the collector's
/// idempotency key), its type and the client's clock.
fn new_event(kind: &str) -> Object {
    let event = Object::new();
    set(&event, field::ID, &random_id().into());
    set(&event, field::TYPE, &kind.into());
    set(&event, field::TS, &js_sys::Date::now().into());
    event
}

fn set_nonempty(event: &Object, name: &str, value: String) {
    if !value.is_empty() {
        set(event, name, &value.into());
    }
}

/// 128 random bits from `crypto.getRandomValues`, as 32 hex digits.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = alloc::vec::Vec::with_capacity(32);
    for b in bytes {
        hex.push(HEX[(b >> 4) as usize]);
        hex.push(HEX[(b & 15) as usize]);
    }
    String::from_utf8(hex).unwrap_or_default()
}

// A small allocator: the default (dlmalloc) costs about 7 KB of wasm. Safety:
// the snippet runs on the page's single thread.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// A panic would be a bug; it traps (caught by the loader) without pulling in
/// the formatting code a panic message needs.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
