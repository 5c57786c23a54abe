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
//! Bounded: at most `MAX_EVENTS` events and about `MAX_BYTES` of JSON; the
//! oldest are dropped first and counted in `growsumo_dropped`, which the next
//! batch reports to the collector.

use crate::js::{get, get_num, get_str, items, len, new_array, object, parse, parse_float, push, set, shift};
use crate::js::{number, storage_get, storage_keys, storage_remove, storage_set, stringify};
use alloc::string::String;
use alloc::vec::Vec;
use wasm_bindgen::JsValue;

/// Prefix of each event's storage entry; the event id follows.
const ENTRY: &str = "growsumo_ev_";
/// Events dropped to stay within bounds, not yet reported.
const DROPPED: &str = "growsumo_dropped";
/// The single-entry outbox of earlier versions, read once and split up.
const LEGACY: &str = "growsumo_outbox";
/// Most events kept.
const MAX_EVENTS: u32 = 50;
/// Most bytes of the stored JSON (32 KB), well under a beacon's 64 KB and
/// any browser's storage quota.
const MAX_BYTES: usize = 32 * 1024;
/// Page-memory outbox `{"dropped", "q"}`, used once localStorage has failed
/// on this page.
const MEMORY: &str = "m";

fn memory(state: &JsValue) -> Option<JsValue> {
    let memory = get(state, MEMORY);
    memory.is_object().then_some(memory)
}

fn new_outbox(q: &JsValue, dropped: f64) -> JsValue {
    let outbox = object();
    set(&outbox, "q", q);
    set(&outbox, "dropped", &dropped.into());
    outbox
}

/// The outbox as it is now, `{"dropped", "q": [entry, …]}` oldest first:
/// from page memory once storage has failed, else from localStorage.
pub fn load(state: &JsValue) -> JsValue {
    if let Some(memory) = memory(state) {
        return memory;
    }
    split_legacy();
    let mut entries: Vec<(f64, JsValue)> = Vec::new();
    for name in items(&storage_keys()) {
        let name = name.as_string().unwrap_or_default();
        if !name.starts_with(ENTRY) {
            continue;
        }
        let entry = storage_get(&name).map(|text| parse(&text));
        if let Some(entry) = entry.filter(JsValue::is_object) {
            // Kept in queue order by insertion: `sort_by` costs the wasm 4 KB,
            // and `Vec::insert` its panic message.
            let ts = get_num(&entry, "s");
            let at = entries.iter().position(|(t, _)| *t > ts).unwrap_or(entries.len());
            entries.push((ts, entry));
            if let Some(tail) = entries.get_mut(at..) {
                tail.rotate_right(1);
            }
        }
    }
    let q = new_array();
    for (_, entry) in entries {
        push(&q, &entry);
    }
    let dropped = storage_get(DROPPED)
        .map(|n| parse_float(&n))
        .filter(|n| n.is_finite())
        .unwrap_or(0.0);
    new_outbox(&q, dropped)
}

/// Moves the events of an earlier version's single-entry outbox into
/// entries of their own, in their order (before any newer entry) and with
/// its drop count, so nothing is lost across the upgrade.
/// One that is not JSON, or holds no queue, is removed all the same: it
/// could never be sent, and would make stage 1 load stage 2 on every page.
fn split_legacy() {
    let Some(text) = storage_get(LEGACY) else {
        return;
    };
    let legacy = parse(&text);
    for (seq, entry) in items(&get(&legacy, "q")).enumerate() {
        set(&entry, "s", &(seq as f64).into());
        write_entry(&entry);
    }
    let dropped = get_num(&legacy, "dropped");
    if dropped > 0.0 {
        storage_set(DROPPED, &number(dropped));
    }
    storage_remove(LEGACY);
}

fn entry_name(entry: &JsValue) -> String {
    String::from(ENTRY) + &get_str(&get(entry, "e"), wire::field::ID)
}

fn write_entry(entry: &JsValue) -> bool {
    let json = stringify(entry);
    !json.is_empty() && storage_set(&entry_name(entry), &json)
}

/// Drops every queued event, stored or in page memory (consent refused).
pub fn discard(state: &JsValue) {
    for entry in items(&get_queue(&load(state))) {
        storage_remove(&entry_name(&entry));
    }
    storage_remove(DROPPED);
    storage_remove(LEGACY);
    set(state, MEMORY, &JsValue::UNDEFINED);
}

fn get_queue(outbox: &JsValue) -> JsValue {
    get(outbox, "q")
}

/// Adds `event` (for public key `pk`) and enforces the bounds. Never once
/// consent is refused.
pub fn add(state: &JsValue, pk: &str, event: &JsValue) {
    if crate::consent::denied(state) {
        return;
    }
    let entry = object();
    set(&entry, "pk", &pk.into());
    set(&entry, "s", &next_seq(state).into());
    set(&entry, "e", event);
    if memory(state).is_none() && !write_entry(&entry) {
        // No storage, or it refused (quota, blocked): this page keeps its
        // outbox in memory from now on, starting with what storage holds.
        let outbox = load(state);
        set(state, MEMORY, &outbox);
    }
    let in_memory = memory(state).is_some();
    let outbox = load(state);
    let q = get_queue(&outbox);
    if in_memory {
        push(&q, &entry);
    }
    let mut dropped = get_num(&outbox, "dropped");
    while len(&q) > 1 && (len(&q) > MAX_EVENTS || stringify(&q).len() > MAX_BYTES) {
        let oldest = shift(&q);
        if !in_memory {
            storage_remove(&entry_name(&oldest));
        }
        dropped += 1.0;
    }
    save_dropped(state, &outbox, dropped);
}

/// The queue position of a new entry: the time in ms, made strictly
/// increasing within the page (events pushed in one millisecond keep their
/// order), so tabs' entries interleave by time.
fn next_seq(state: &JsValue) -> f64 {
    let last = get_num(state, "s");
    let now = crate::js::now();
    let seq = if now > last { now } else { last + 0.001 };
    set(state, "s", &seq.into());
    seq
}

fn save_dropped(state: &JsValue, outbox: &JsValue, dropped: f64) {
    let dropped = if dropped > 0.0 { dropped } else { 0.0 };
    set(outbox, "dropped", &dropped.into());
    if memory(state).is_none() {
        if dropped > 0.0 {
            storage_set(DROPPED, &number(dropped));
        } else {
            storage_remove(DROPPED);
        }
    }
}

/// Removes the events with these ids, and takes `reported` off the drop count
/// (the collector has been told of them). Never writes once consent is
/// refused: a send still in flight then must not write the outbox back.
pub fn remove(state: &JsValue, ids: &[String], reported: f64) {
    if crate::consent::denied(state) {
        return;
    }
    match memory(state) {
        Some(outbox) => {
            let kept = new_array();
            for entry in items(&get_queue(&outbox)) {
                if !ids.contains(&get_str(&get(&entry, "e"), wire::field::ID)) {
                    push(&kept, &entry);
                }
            }
            set(&outbox, "q", &kept);
            save_dropped(state, &outbox, get_num(&outbox, "dropped") - reported);
        }
        None => {
            for id in ids {
                storage_remove(&(String::from(ENTRY) + id));
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
    pub events: JsValue,
    pub ids: Vec<String>,
}

/// The outbox's events in batches, oldest first.
pub fn batches(outbox: &JsValue) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    for entry in items(&get_queue(outbox)) {
        let pk = get_str(&entry, "pk");
        let event = get(&entry, "e");
        let open = batches
            .iter()
            .rposition(|b| b.pk == pk && b.ids.len() < wire::limit::BATCH_EVENTS);
        let index = open.unwrap_or_else(|| {
            batches.push(Batch {
                pk,
                events: new_array(),
                ids: Vec::new(),
            });
            batches.len() - 1
        });
        let Some(batch) = batches.get_mut(index) else { continue };
        batch.ids.push(get_str(&event, wire::field::ID));
        push(&batch.events, &event);
    }
    batches
}
