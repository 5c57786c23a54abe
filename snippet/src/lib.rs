//! The growsumo snippet, wasm side: the work behind PartnerStack's `growsumo` object.
//!
//! `stage1.js` defines the `growsumo` global synchronously (PartnerStack's
//! embed code calls it as soon as the script loads) and queues calls; only
//! when a page view has work does it load stage 2, `core.js` with this module,
//! which calls the entry points below, passing `state`, a plain object it
//! keeps for the page (see `delivery`). No entry point returns an error or
//! throws: nothing here may break the host page.
//!
//! Every event goes into the outbox (`outbox`) before it is sent (`delivery`).
//!
//! Size is a feature: no serde, no `format!`, no panicking paths; JSON and number
//! formatting go through the browser's own functions.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod config;
mod consent;
mod delivery;
mod fingerprint;
mod js;
mod outbox;
mod params;
mod storage;

use alloc::string::String;
use js::{get_str, set};
use params::Referral;
use wasm_bindgen::prelude::*;
use wire::{field, REFERRAL_MAX_AGE_SECS};

/// Whether an earlier landing's referral is stored in this browser (if not,
/// the loader asks the collector to restore it from its server cookie).
#[wasm_bindgen]
pub fn stored() -> bool {
    storage::load().is_some()
}

/// Starts the snippet on a page, again after `growsumo.consent(..)`, and
/// for each single-page-app navigation: applies the key's settings
/// (`config`, the collector's answer or null),
/// decides consent, records the referral of this page view and fills
/// `data.partner_key` and `data.xid`: the landing URL's partner link if it has
/// one (last click wins), else what an earlier landing stored, else what the
/// collector's server cookie kept. Without consent the referral stays in page
/// memory only: nothing is stored or sent, and what was stored is deleted.
///
/// Stage 1 reads the landing URL when it runs (before a router can rewrite
/// it); `core.js` passes it as `url` (without the partner parameters, which
/// a click carries as fields of their own) and `query` (its parameters, an
/// object of the first value of each), with the page's `referrer`.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn init(pk: String, data: JsValue, state: JsValue, config: JsValue, url: String, query: JsValue, referrer: String) {
    let config = config::parse(&config);
    let stored = storage::load();
    let landing = params::from_query(|name| Some(get_str(&query, name)), &config.aliases);
    let allowed = consent::decide(&state, &config);
    // (the referral, seconds it has left, whether storage must be written)
    let current = match (landing, stored, config.referral) {
        (Some(landing), stored, _) => {
            // A reload or in-site navigation keeps the link: not a new click.
            let known = stored.as_ref().is_some_and(|(s, _)| *s == landing);
            if allowed && !known {
                outbox::add(&state, &pk, &click(&state, &landing, url, referrer));
            }
            let restore = stored.is_some_and(|(_, restore)| restore.is_some());
            Some((landing, REFERRAL_MAX_AGE_SECS, !known || restore))
        }
        (None, Some((stored, restore)), _) => Some((stored, restore.unwrap_or(0), restore.is_some())),
        (None, None, Some((restored, left))) => Some((restored, left, true)),
        (None, None, None) => None,
    };
    let (partner_key, xid) = match current {
        Some((referral, max_age, write)) => {
            if allowed && write {
                storage::save(&referral, max_age);
            }
            (referral.partner_key, referral.xid)
        }
        None => Default::default(),
    };
    set(&data, field::PARTNER_KEY, &partner_key.into());
    set(&data, field::XID, &xid.into());
    // Sends the click, and whatever earlier page views left in the outbox.
    delivery::flush(&state);
}

/// Queues a signup built from `data` (a snapshot of `growsumo.data` taken when
/// the page called `createSignup`, or read from a captured form, with the
/// `_id` stage 1 gave it, and its `_ts` when an earlier page made it) and
/// sends it.
/// `cb(error, result)` is called when the collector answers: `error` is null
/// once it is stored, else an `Error` whose `field` names the rejected field.
/// Returns the event's id (the loader calls `cb` itself, with status
/// `queued`, if no answer comes soon). Without consent nothing is sent and
/// it returns "": the loader tells `cb` at once (`consent_denied`).
#[wasm_bindgen]
pub fn signup(pk: String, data: JsValue, cb: JsValue, state: JsValue) -> String {
    if consent::denied(&state) {
        return String::new();
    }
    let event = new_event(&state, wire::EVENT_SIGNUP);
    // Written ahead by stage 1, a signup keeps its id (sent twice, the
    // collector answers `duplicate`); replayed by a later page, its time.
    set_nonempty(&event, field::ID, get_str(&data, "_id"));
    let ts = js::get(&data, "_ts");
    if ts.as_f64().is_some() {
        set(&event, field::TS, &ts);
    }
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
    set_nonempty(&event, field::FINGERPRINT, consent::fingerprint(&state));
    let id = get_str(&event, field::ID);
    outbox::add(&state, &pk, &event);
    delivery::wait_for(&state, &id, &cb);
    delivery::flush(&state);
    id
}

/// The next batch to send, as its JSON body; `undefined` when the outbox is
/// empty (see `delivery`).
#[wasm_bindgen]
pub fn next(state: JsValue) -> JsValue {
    delivery::next(&state)
}

/// Settles the batch in flight by the collector's answer (`status` 0: none
/// came); true when the next may be sent.
#[wasm_bindgen]
pub fn settle(state: JsValue, status: u16, body: JsValue) -> bool {
    delivery::settle(&state, status, &body)
}

/// Every batch in the outbox as JSON bodies, for `navigator.sendBeacon`
/// (the page is being hidden).
#[wasm_bindgen]
pub fn beacons(state: JsValue) -> JsValue {
    delivery::beacons(&state)
}

/// A click for a landing that carries a partner link.
fn click(state: &JsValue, referral: &Referral, url: String, referrer: String) -> JsValue {
    let event = new_event(state, wire::EVENT_CLICK);
    set_nonempty(&event, field::PARTNER_KEY, referral.partner_key.clone());
    set_nonempty(&event, field::XID, referral.xid.clone());
    set_nonempty(&event, field::FINGERPRINT, consent::fingerprint(state));
    set_nonempty(&event, field::URL, url);
    set_nonempty(&event, field::REFERRER, referrer);
    event
}

/// A new event object with a browser-generated unique id (the collector's
/// idempotency key: 128 random bits from `crypto.getRandomValues`, which
/// `core.js`'s `state.id()` hands over), its type and the client's clock.
fn new_event(state: &JsValue, kind: &str) -> JsValue {
    let event = js::object();
    set(
        &event,
        field::ID,
        &js::call(state, "id", &JsValue::UNDEFINED, &JsValue::UNDEFINED),
    );
    set(&event, field::TYPE, &kind.into());
    set(&event, field::TS, &js::now().into());
    event
}

fn set_nonempty(event: &JsValue, name: &str, value: String) {
    if !value.is_empty() {
        set(event, name, &value.into());
    }
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
