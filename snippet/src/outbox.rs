//! The outbox: every event is written here before it is sent, and leaves only
//! when the collector has answered for it (accepted, duplicate or rejected).
//! It lives in localStorage, so an event survives a page that navigates away, a
//! collector that is down, or a closed tab, and is sent again by a later page
//! load of the same site. Where localStorage is unavailable (private modes,
//! blocked storage, quota) it lives in the page's memory (`state.m`) and is
//! still sent.
//!
//! Bounded: at most `MAX_EVENTS` events and about `MAX_CHARS` of JSON; the
//! oldest are dropped first and counted in `dropped`, which the next batch
//! reports to the collector.
//!
//! Stored as `{"dropped": n, "q": [{"pk": "pk_…", "e": {event}}, …]}`.

use crate::js::{get, get_num, get_str, set};
use crate::storage::local_storage;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Array, Object, JSON};
use wasm_bindgen::JsValue;

const KEY: &str = "growsumo_outbox";
/// Most events kept.
const MAX_EVENTS: u32 = 50;
/// Most characters of the stored JSON (about 32 KB), well under a beacon's
/// 64 KB and any browser's storage quota.
const MAX_CHARS: u32 = 32 * 1024;
/// Page-memory copy, used once localStorage has failed on this page.
const MEMORY: &str = "m";

/// The outbox as it is now: from page memory once storage has failed, else
/// from localStorage; empty when missing or unreadable.
pub fn load(state: &Object) -> Object {
    let memory = get(state, MEMORY);
    if memory.is_object() {
        return memory.into();
    }
    let stored = local_storage()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .and_then(|text| JSON::parse(&text).ok())
        .filter(|v| Array::is_array(&get(v, "q")));
    stored.map(Object::from).unwrap_or_else(|| {
        let empty = Object::new();
        set(&empty, "q", &Array::new());
        empty
    })
}

/// Writes the outbox back: to localStorage, or to page memory if that fails.
/// Never once consent is refused: a send still in flight then must not
/// write the outbox back.
pub fn save(state: &Object, outbox: &Object) {
    if crate::consent::denied(state) {
        return;
    }
    if !get(state, MEMORY).is_object() {
        let json = JSON::stringify(outbox).ok().and_then(|s| s.as_string());
        let stored = match (local_storage(), json) {
            (Some(storage), Some(json)) => storage.set_item(KEY, &json).is_ok(),
            _ => false,
        };
        if stored {
            return;
        }
    }
    set(state, MEMORY, outbox);
}

fn queue(outbox: &Object) -> Array {
    get(outbox, "q").into()
}

/// Drops every queued event, stored or in page memory (consent refused).
pub fn discard(state: &Object) {
    if let Some(storage) = local_storage() {
        let _ = storage.remove_item(KEY);
    }
    set(state, MEMORY, &JsValue::UNDEFINED);
}

/// Adds `event` (for public key `pk`) and enforces the bounds.
pub fn push(state: &Object, pk: &str, event: &Object) {
    let outbox = load(state);
    let q = queue(&outbox);
    let entry = Object::new();
    set(&entry, "pk", &pk.into());
    set(&entry, "e", event);
    q.push(&entry);
    let mut dropped = get_num(&outbox, "dropped");
    while q.length() > 1 && (q.length() > MAX_EVENTS || json_len(&outbox) > MAX_CHARS) {
        q.shift();
        dropped += 1.0;
    }
    set(&outbox, "dropped", &dropped.into());
    save(state, &outbox);
}

fn json_len(value: &JsValue) -> u32 {
    JSON::stringify(value).map(|s| s.length()).unwrap_or(0)
}

/// Removes the events with these ids, and takes `reported` off the drop count
/// (the collector has been told of them).
pub fn remove(state: &Object, ids: &[String], reported: f64) {
    let outbox = load(state);
    let kept: Array = queue(&outbox)
        .iter()
        .filter(|entry| {
            let id = get_str(&get(entry, "e"), wire::field::ID);
            !ids.contains(&id)
        })
        .collect();
    set(&outbox, "q", &kept);
    let dropped = get_num(&outbox, "dropped") - reported;
    set(&outbox, "dropped", &(if dropped > 0.0 { dropped } else { 0.0 }).into());
    save(state, &outbox);
}

/// Events of one public key, in the order queued, at most
/// `wire::limit::BATCH_EVENTS`.
pub struct Batch {
    pub pk: String,
    pub events: Array,
    pub ids: Vec<String>,
}

/// The outbox's events in batches, oldest first.
pub fn batches(outbox: &Object) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    for entry in queue(outbox).iter() {
        let pk = get_str(&entry, "pk");
        let event = get(&entry, "e");
        let open = batches
            .iter()
            .rposition(|b| b.pk == pk && b.ids.len() < wire::limit::BATCH_EVENTS);
        let index = open.unwrap_or_else(|| {
            batches.push(Batch {
                pk,
                events: Array::new(),
                ids: Vec::new(),
            });
            batches.len() - 1
        });
        let Some(batch) = batches.get_mut(index) else { continue };
        batch.ids.push(get_str(&event, wire::field::ID));
        batch.events.push(&event);
    }
    batches
}
