//! The outbox: every event is written here before it is sent, and leaves only
//! when the collector has answered for it (accepted, duplicate or rejected).
//! It lives in localStorage, so an event survives a page that navigates away, a
//! collector that is down, or a closed tab, and is sent again by a later page
//! load of the same site. Where localStorage is unavailable (private modes,
//! blocked storage, quota) it lives in the page's memory (`state.m`) and is
//! still sent.
//!
//! One storage entry per event (`growsumo_ev_<id>` = `{"pk", "s", "e": {event}}`,
//! `s` its place in the queue, see `next_seq`):
//! tabs of one site share localStorage, and a single entry rewritten by each
//! (read, modify, write) lets one tab's write erase another's new event. Here
//! a tab only ever adds or removes its own entry; two tabs sending the same
//! event is harmless (the collector answers the second `duplicate`).
//!
//! Bounded: at most `MAX_EVENTS` events and about `MAX_CHARS` of JSON; the
//! oldest are dropped first and counted in `growsumo_dropped`, which the next
//! batch reports to the collector.

use crate::js::{array, get, get_num, get_str, set};
use crate::storage::local_storage;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Array, Object, JSON};
use wasm_bindgen::JsValue;
use web_sys::Storage;

/// Prefix of each event's storage entry; the event id follows.
const ENTRY: &str = "growsumo_ev_";
/// Events dropped to stay within bounds, not yet reported.
const DROPPED: &str = "growsumo_dropped";
/// The single-entry outbox of earlier versions, read once and split up.
const LEGACY: &str = "growsumo_outbox";
/// Most events kept.
const MAX_EVENTS: u32 = 50;
/// Most characters of the stored JSON (about 32 KB), well under a beacon's
/// 64 KB and any browser's storage quota.
const MAX_CHARS: u32 = 32 * 1024;
/// Page-memory outbox `{"dropped", "q"}`, used once localStorage has failed
/// on this page.
const MEMORY: &str = "m";

fn memory(state: &Object) -> Option<Object> {
    let memory = get(state, MEMORY);
    memory.is_object().then(|| memory.into())
}

fn new_outbox(q: &Array, dropped: f64) -> Object {
    let outbox = Object::new();
    set(&outbox, "q", q);
    set(&outbox, "dropped", &dropped.into());
    outbox
}

/// The outbox as it is now, `{"dropped", "q": [entry, …]}` oldest first:
/// from page memory once storage has failed, else from localStorage.
pub fn load(state: &Object) -> Object {
    if let Some(memory) = memory(state) {
        return memory;
    }
    let Some(storage) = local_storage() else {
        return new_outbox(&Array::new(), 0.0);
    };
    split_legacy(&storage);
    let mut entries: Vec<(f64, JsValue)> = Vec::new();
    for i in 0..storage.length().unwrap_or(0) {
        let Some(name) = storage.key(i).ok().flatten() else {
            continue;
        };
        if !name.starts_with(ENTRY) {
            continue;
        }
        let entry = storage
            .get_item(&name)
            .ok()
            .flatten()
            .and_then(|text| JSON::parse(&text).ok());
        if let Some(entry) = entry.filter(JsValue::is_object) {
            // Kept in queue order by insertion: `sort_by` costs the wasm 4 KB.
            let ts = get_num(&entry, "s");
            let at = entries.iter().position(|(t, _)| *t > ts).unwrap_or(entries.len());
            entries.insert(at, (ts, entry));
        }
    }
    let q: Array = entries.into_iter().map(|(_, entry)| entry).collect();
    let dropped = storage
        .get_item(DROPPED)
        .ok()
        .flatten()
        .map(|n| js_sys::Number::parse_float(&n))
        .filter(|n| n.is_finite())
        .unwrap_or(0.0);
    new_outbox(&q, dropped)
}

/// Moves the events of an earlier version's single-entry outbox into
/// entries of their own, in their order (before any newer entry) and with
/// its drop count, so nothing is lost across the upgrade.
fn split_legacy(storage: &Storage) {
    let Some(legacy) = storage
        .get_item(LEGACY)
        .ok()
        .flatten()
        .and_then(|t| JSON::parse(&t).ok())
    else {
        return;
    };
    for (seq, entry) in array(get(&legacy, "q")).iter().enumerate() {
        set(&entry, "s", &(seq as f64).into());
        write_entry(storage, &entry);
    }
    let dropped = get_num(&legacy, "dropped");
    if dropped > 0.0 {
        let _ = storage.set_item(DROPPED, &crate::storage::number(dropped));
    }
    let _ = storage.remove_item(LEGACY);
}

fn entry_name(entry: &JsValue) -> String {
    String::from(ENTRY) + &get_str(&get(entry, "e"), wire::field::ID)
}

fn write_entry(storage: &Storage, entry: &JsValue) -> bool {
    let json = JSON::stringify(entry).ok().and_then(|s| s.as_string());
    json.is_some_and(|json| storage.set_item(&entry_name(entry), &json).is_ok())
}

/// Drops every queued event, stored or in page memory (consent refused).
pub fn discard(state: &Object) {
    if let Some(storage) = local_storage() {
        for entry in get_queue(&load(state)).iter() {
            let _ = storage.remove_item(&entry_name(&entry));
        }
        let _ = storage.remove_item(DROPPED);
        let _ = storage.remove_item(LEGACY);
    }
    set(state, MEMORY, &JsValue::UNDEFINED);
}

fn get_queue(outbox: &Object) -> Array {
    array(get(outbox, "q"))
}

/// Adds `event` (for public key `pk`) and enforces the bounds. Never once
/// consent is refused.
pub fn push(state: &Object, pk: &str, event: &Object) {
    if crate::consent::denied(state) {
        return;
    }
    let entry = Object::new();
    set(&entry, "pk", &pk.into());
    set(&entry, "s", &next_seq(state).into());
    set(&entry, "e", event);
    let storage = local_storage().filter(|_| memory(state).is_none());
    if memory(state).is_none() && !storage.as_ref().is_some_and(|s| write_entry(s, &entry)) {
        // No storage, or it refused (quota, blocked): this page keeps its
        // outbox in memory from now on, starting with what storage holds.
        let outbox = load(state);
        set(state, MEMORY, &outbox);
    }
    let storage = storage.filter(|_| memory(state).is_none());
    let outbox = load(state);
    let q = get_queue(&outbox);
    if memory(state).is_some() {
        q.push(&entry);
    }
    let mut dropped = get_num(&outbox, "dropped");
    while q.length() > 1 && (q.length() > MAX_EVENTS || json_len(&q) > MAX_CHARS) {
        let oldest = q.shift();
        if let Some(storage) = &storage {
            let _ = storage.remove_item(&entry_name(&oldest));
        }
        dropped += 1.0;
    }
    save_dropped(state, &outbox, dropped);
}

/// The queue position of a new entry: the time in ms, made strictly
/// increasing within the page (events pushed in one millisecond keep their
/// order), so tabs' entries interleave by time.
fn next_seq(state: &Object) -> f64 {
    let last = get_num(state, "s");
    let now = js_sys::Date::now();
    let seq = if now > last { now } else { last + 0.001 };
    set(state, "s", &seq.into());
    seq
}

fn save_dropped(state: &Object, outbox: &Object, dropped: f64) {
    let dropped = if dropped > 0.0 { dropped } else { 0.0 };
    set(outbox, "dropped", &dropped.into());
    if memory(state).is_none() {
        if let Some(storage) = local_storage() {
            let _ = if dropped > 0.0 {
                storage.set_item(DROPPED, &crate::storage::number(dropped))
            } else {
                storage.remove_item(DROPPED)
            };
        }
    }
}

fn json_len(value: &JsValue) -> u32 {
    JSON::stringify(value).map(|s| s.length()).unwrap_or(0)
}

/// Removes the events with these ids, and takes `reported` off the drop count
/// (the collector has been told of them). Never writes once consent is
/// refused: a send still in flight then must not write the outbox back.
pub fn remove(state: &Object, ids: &[String], reported: f64) {
    if crate::consent::denied(state) {
        return;
    }
    match memory(state) {
        Some(outbox) => {
            let kept: Array = get_queue(&outbox)
                .iter()
                .filter(|entry| !ids.contains(&get_str(&get(entry, "e"), wire::field::ID)))
                .collect();
            set(&outbox, "q", &kept);
            save_dropped(state, &outbox, get_num(&outbox, "dropped") - reported);
        }
        None => {
            if let Some(storage) = local_storage() {
                for id in ids {
                    let _ = storage.remove_item(&(String::from(ENTRY) + id));
                }
            }
            let outbox = load(state);
            save_dropped(state, &outbox, get_num(&outbox, "dropped") - reported);
        }
    }
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
    for entry in get_queue(outbox).iter() {
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
