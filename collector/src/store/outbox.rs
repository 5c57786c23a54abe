//! Outgoing webhooks' outbox: the merchant's endpoints (URLs, the event
//! types each wants, a `whsec_` secret), and the messages changes send them.
//!
//! A message is written by `emit` inside the transaction of the change that
//! caused it, with one delivery per subscribed endpoint: a crash can neither
//! lose it nor send one for a change that rolled back. Its body is
//! `{"type", "timestamp", "data"}`, where `data` is the resource as the
//! merchant API returns it (`http::api::records`), rendered as this change
//! left it. The dispatcher (`crate::dispatch`) claims due deliveries, posts
//! them, and records every attempt here; failures are retried on
//! `SCHEDULE_MS`, then the delivery is `failed`; an endpoint failing for
//! `DISABLE_AFTER_MS` is disabled.

use super::db::{padded_slices, params, row_placeholders, Db, OptionalExtension, Params, Row, Value};
use super::merchant::{self, CustomerRef};
use super::{keys, money, Key, Refusal};
use crate::http::api::records::{CustomerRecord, Partnership, RewardRecord, TransactionRecord};
use anyhow::Result;
use std::collections::HashMap;

/// The event types an endpoint may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "customer.created",
    "customer.updated",
    "transaction.created",
    "transaction.reversed",
    "reward.created",
    "reward.updated",
    "partnership.created",
    "partnership.updated",
];

/// The wait before each attempt of a delivery: the first at once, then
/// after each failure 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about
/// 28 hours in all). After the last, the delivery is `failed`.
pub const SCHEDULE_MS: &[i64] = &[
    0,
    5_000,
    5 * 60_000,
    30 * 60_000,
    2 * 3_600_000,
    5 * 3_600_000,
    10 * 3_600_000,
    10 * 3_600_000,
];

/// An endpoint whose deliveries failed, without one success, for this long
/// is disabled (and flagged on the dashboard) at its next failure.
pub const DISABLE_AFTER_MS: i64 = 5 * 86_400_000;

/// How long a rotated-out secret still signs (both signatures are sent).
pub const ROTATION_OVERLAP_MS: i64 = 86_400_000;

/// How long delivered and failed messages, with their attempts, are kept.
pub const KEEP_MS: i64 = 30 * 86_400_000;

/// Most characters in an endpoint's description.
pub const DESCRIPTION_CHARS: usize = 500;

/// Most endpoints per key.
pub const MAX_ENDPOINTS: i64 = 20;

/// `events` checked: known types (or `*`), each once, sorted; the error
/// names the one that is not.
pub fn event_list<S: AsRef<str>>(events: &[S]) -> Result<Vec<String>, String> {
    let mut list = Vec::new();
    for event in events {
        let event = event.as_ref().trim();
        if event != "*" && !EVENT_TYPES.contains(&event) {
            let shown: String = event.chars().take(64).collect();
            return Err(format!(
                "{shown:?} is not an event type; one of {} or *",
                EVENT_TYPES.join(", ")
            ));
        }
        list.push(event.to_owned());
    }
    if list.is_empty() {
        return Err("names no event type".into());
    }
    list.sort();
    list.dedup();
    if list.iter().any(|e| e == "*") {
        list = vec!["*".into()];
    }
    Ok(list)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    /// `ep_…`: the item key.
    pub key: String,
    pub url: String,
    /// Event types, or `*` for every one.
    pub events: Vec<String>,
    pub description: String,
    /// `whsec_<base64>`: what the receiver verifies signatures with.
    pub secret: String,
    /// Secrets rotated out, each signing too until its time (newest last).
    pub previous: Vec<(String, i64)>,
    pub disabled_at: Option<i64>,
    /// Why: `failing since …` or `by the merchant`.
    pub disabled_reason: Option<String>,
    /// The first failure since the last success, if the newest attempt failed.
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }

    /// The secrets that sign a message sent at `now`: the current one, and
    /// those rotated out less than `ROTATION_OVERLAP_MS` before.
    pub fn signing_secrets(&self, now: i64) -> Vec<String> {
        let previous = self.previous.iter().filter(|(_, until)| now < *until);
        std::iter::once(self.secret.clone())
            .chain(previous.map(|(secret, _)| secret.clone()))
            .collect()
    }
}

const ENDPOINT_COLUMNS: &str = "id, endpoint_key, url, events, description, secret, previous_secrets,
     disabled_at, disabled_reason, failing_since, created_at, updated_at";

fn endpoint_row(row: &Row) -> Result<Endpoint> {
    Ok(Endpoint {
        id: row.get(0)?,
        key: row.get(1)?,
        url: row.get(2)?,
        events: row
            .get::<_, String>(3)?
            .split(' ')
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect(),
        description: row.get(4)?,
        secret: row.get(5)?,
        // `until:secret …` (a `whsec_` secret holds neither ':' nor ' ').
        previous: row
            .get::<_, String>(6)?
            .split(' ')
            .filter_map(|entry| {
                let (until, secret) = entry.split_once(':')?;
                Some((secret.to_owned(), until.parse().ok()?))
            })
            .collect(),
        disabled_at: row.get(7)?,
        disabled_reason: row.get(8)?,
        failing_since: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

/// What an endpoint is made with, or changed to (what is `None` stays).
#[derive(Debug, Default, Clone)]
pub struct EndpointFields {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Disable (true) or enable again (false).
    pub disabled: Option<bool>,
}

/// A new `whsec_` secret: 24 random bytes, base64 (Standard Webhooks' form).
fn new_secret() -> Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

pub fn create_endpoint(db: &Db, key_id: i64, fields: EndpointFields, now: i64) -> Result<Endpoint> {
    let count: i64 = db.query_row("SELECT count(*) FROM endpoints WHERE key_id = ?1", [key_id], |r| {
        r.get(0)
    })?;
    if count >= MAX_ENDPOINTS {
        return Err(Refusal::conflict("url", format!("a key has at most {MAX_ENDPOINTS} endpoints")).into());
    }
    let url = fields.url.ok_or_else(|| Refusal::invalid("url", "is required"))?;
    let events = fields.events.unwrap_or_else(|| vec!["*".into()]);
    let endpoint_key = format!("ep_{}", keys::random_token(16)?);
    let disabled_at = fields.disabled.unwrap_or(false).then_some(now);
    db.execute(
        "INSERT INTO endpoints (key_id, endpoint_key, url, events, description, secret, disabled_at, disabled_reason,
                                created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            key_id,
            endpoint_key,
            url,
            events.join(" "),
            fields.description.unwrap_or_default(),
            new_secret()?,
            disabled_at,
            disabled_at.map(|_| "by the merchant"),
            now
        ],
    )?;
    endpoint(db, key_id, &endpoint_key)
}

pub fn endpoint(db: &Db, key_id: i64, endpoint_key: &str) -> Result<Endpoint> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE key_id = ?1 AND endpoint_key = ?2");
    db.query_row(&sql, params![key_id, endpoint_key], endpoint_row)
        .optional()?
        .ok_or_else(|| Refusal::not_found("key", format!("no webhook endpoint {endpoint_key:?}")).into())
}

/// A key's endpoints, oldest first (a key has at most `MAX_ENDPOINTS`).
pub fn endpoints(db: &Db, key_id: i64) -> Result<Vec<Endpoint>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE key_id = ?1 ORDER BY id");
    let rows = db
        .prepare(&sql)?
        .query_map([key_id], endpoint_row)?
        .collect::<Result<_>>()?;
    Ok(rows)
}

/// Changes an endpoint. Disabling it fails its pending deliveries (they
/// can be resent); enabling it clears its failure streak.
pub fn update_endpoint(db: &Db, key_id: i64, endpoint_key: &str, fields: EndpointFields, now: i64) -> Result<Endpoint> {
    let current = endpoint(db, key_id, endpoint_key)?;
    db.execute(
        "UPDATE endpoints SET url = ?2, events = ?3, description = ?4, updated_at = ?5 WHERE id = ?1",
        params![
            current.id,
            fields.url.unwrap_or(current.url),
            fields.events.unwrap_or(current.events).join(" "),
            fields.description.unwrap_or(current.description),
            now
        ],
    )?;
    match (fields.disabled, current.disabled_at) {
        (Some(true), None) => disable(db, current.id, "by the merchant", now)?,
        (Some(false), Some(_)) => {
            db.execute(
                "UPDATE endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL WHERE id = ?1",
                [current.id],
            )?;
        }
        _ => {}
    }
    endpoint(db, key_id, endpoint_key)
}

fn disable(db: &Db, endpoint_id: i64, reason: &str, now: i64) -> Result<()> {
    db.execute(
        "UPDATE endpoints SET disabled_at = ?2, disabled_reason = ?3, updated_at = ?2 WHERE id = ?1",
        params![endpoint_id, now, reason],
    )?;
    db.execute(
        "UPDATE deliveries SET status = 'failed', updated_at = ?2 WHERE endpoint_id = ?1 AND status = 'pending'",
        params![endpoint_id, now],
    )?;
    Ok(())
}

/// Deletes an endpoint with its deliveries and their attempts.
pub fn delete_endpoint(db: &Db, key_id: i64, endpoint_key: &str) -> Result<Endpoint> {
    let current = endpoint(db, key_id, endpoint_key)?;
    db.execute("DELETE FROM endpoints WHERE id = ?1", [current.id])?;
    Ok(current)
}

/// Gives an endpoint a new secret; the old one signs too (another
/// signature) for `ROTATION_OVERLAP_MS`, while the receiver switches, as do
/// those rotated out before it within that time (at most
/// `PREVIOUS_KEPT`): rotating twice does not cut off a receiver still on
/// the first secret.
pub fn rotate_secret(db: &Db, key_id: i64, endpoint_key: &str, now: i64) -> Result<Endpoint> {
    let current = endpoint(db, key_id, endpoint_key)?;
    let mut previous: Vec<(String, i64)> = current.previous.into_iter().filter(|(_, until)| now < *until).collect();
    previous.push((current.secret, now + ROTATION_OVERLAP_MS));
    let kept = &previous[previous.len().saturating_sub(PREVIOUS_KEPT)..];
    let text: Vec<String> = kept.iter().map(|(secret, until)| format!("{until}:{secret}")).collect();
    db.execute(
        "UPDATE endpoints SET secret = ?2, previous_secrets = ?3, updated_at = ?4 WHERE id = ?1",
        params![current.id, new_secret()?, text.join(" "), now],
    )?;
    endpoint(db, key_id, endpoint_key)
}

/// Most rotated-out secrets that still sign.
const PREVIOUS_KEPT: usize = 5;

/// The key's enabled endpoints that want `event`.
fn subscribers(db: &Db, key_id: i64, event: &str) -> Result<Vec<i64>> {
    Ok(endpoints(db, key_id)?
        .into_iter()
        .filter(|e| e.disabled_at.is_none() && e.wants(event))
        .map(|e| e.id)
        .collect())
}

/// Wakes the dispatcher when a commit wrote messages (in this process; the
/// dispatcher also looks every second, for other processes' messages).
pub type Outbox = std::sync::Arc<tokio::sync::Notify>;

/// What a message is about: the resource whose API record is its `data`.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Customer(&'a str),
    Partnership(&'a str),
    Transaction(&'a str),
    Reward(i64),
}

/// Writes an `event` message about `subject` for each of the key's enabled
/// endpoints that wants it, in the caller's transaction; true if any did.
/// Two messages of one type about one subject at one time (one
/// transaction's steps, before the first was sent) are one: the later state.
pub fn emit(db: &Db, key_id: i64, event: &str, subject: Subject, now: i64) -> Result<bool> {
    if super::mail::NOTICED.contains(&event) {
        super::mail::notices(db, &keys::by_id(db, key_id)?, event, &[subject], now)?;
    }
    let targets = subscribers(db, key_id, event)?;
    if targets.is_empty() {
        return Ok(false);
    }
    let key = keys::by_id(db, key_id)?;
    let (about, body) = message(db, &key, event, subject, now)?;
    let merged = db.execute(
        "UPDATE outgoing_messages SET body = ?4
         WHERE key_id = ?1 AND subject = ?2 AND type = ?3 AND created_at = ?5
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = outgoing_messages.id
                           AND (d.attempts > 0 OR d.next_at != outgoing_messages.created_at))",
        params![key_id, about, event, body, now],
    )?;
    if merged == 0 {
        let id = insert_message(db, key_id, event, &about, &body, now)?;
        insert_deliveries(db, &[id], &targets, now)?;
    }
    Ok(true)
}

/// Like `emit`, for many subjects of `key` new in this transaction (the
/// writer's new customers, which no message named yet): the endpoints
/// looked up once, the deliveries inserted together.
pub fn emit_new(db: &Db, key: &Key, event: &str, subjects: &[Subject], now: i64) -> Result<bool> {
    super::mail::notices(db, key, event, subjects, now)?;
    let targets = subscribers(db, key.id, event)?;
    if targets.is_empty() || subjects.is_empty() {
        return Ok(false);
    }
    let mut messages = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let (about, body) = message(db, key, event, *subject, now)?;
        messages.push(insert_message(db, key.id, event, &about, &body, now)?);
    }
    insert_deliveries(db, &messages, &targets, now)?;
    Ok(true)
}

/// The message's subject (`customer:<key>`…) and body: `{"type",
/// "timestamp", "data"}`, `data` the API's record of the subject now.
fn message(db: &Db, key: &Key, event: &str, subject: Subject, now: i64) -> Result<(String, String)> {
    debug_assert!(EVENT_TYPES.contains(&event));
    let (about, data) = match subject {
        Subject::Customer(customer_key) => {
            let customer = merchant::find_customer(db, key.id, &CustomerRef::Key(customer_key.into()))?;
            (
                format!("customer:{customer_key}"),
                json(CustomerRecord::new(customer, key)),
            )
        }
        Subject::Partnership(partner_key) => {
            let partner = merchant::partner(db, key.id, partner_key)?;
            (
                format!("partnership:{partner_key}"),
                json(Partnership::new(partner, key)),
            )
        }
        Subject::Transaction(transaction_key) => {
            let transaction = money::transaction(db, key.id, transaction_key)?
                .ok_or_else(|| anyhow::anyhow!("transaction {transaction_key:?} is gone"))?;
            (
                format!("transaction:{transaction_key}"),
                json(TransactionRecord::new(transaction, key)),
            )
        }
        Subject::Reward(id) => {
            let reward = money::reward(db, key.id, &format!("rwd_{id}"))?;
            (format!("reward:{id}"), json(RewardRecord::from(reward)))
        }
    };
    let body = serde_json::json!({
        "type": event,
        "timestamp": super::clock::rfc3339(now),
        "data": data,
    });
    Ok((about, body.to_string()))
}

fn insert_message(db: &Db, key_id: i64, event: &str, about: &str, body: &str, now: i64) -> Result<i64> {
    db.insert(
        "INSERT INTO outgoing_messages (key_id, message_key, type, subject, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key_id,
            format!("msg_{}", keys::random_token(24)?),
            event,
            about,
            body,
            now
        ],
    )
}

/// A pending delivery of each message to each endpoint, due at `now`.
fn insert_deliveries(db: &Db, messages: &[i64], endpoints: &[i64], now: i64) -> Result<()> {
    let rows: Vec<Vec<Value>> = messages
        .iter()
        .flat_map(|m| {
            endpoints
                .iter()
                .map(move |e| params![*m, *e, "pending", 0, now, now, now].values())
        })
        .collect();
    // (A repeated row, the padding, is skipped as a conflict.)
    for slice in padded_slices(&rows, BATCH) {
        let sql = format!(
            "INSERT INTO deliveries (message_id, endpoint_id, status, attempts, next_at, created_at, updated_at)
             VALUES {} ON CONFLICT (message_id, endpoint_id) DO NOTHING",
            row_placeholders(slice.len(), 7)
        );
        db.execute(&sql, slice.concat())?;
    }
    Ok(())
}

fn json(record: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}

/// A delivery the dispatcher claimed: what to send where.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub secrets: Vec<String>,
    /// `msg_…`: the `webhook-id`, the same at every attempt.
    pub message_key: String,
    pub body: String,
}

/// Whether any delivery is due at `now` (a read: an idle dispatcher takes
/// no write lock).
pub fn anything_due(db: &Db, now: i64) -> Result<bool> {
    db.query_row(
        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND next_at <= ?1)",
        [now],
        |r| r.get(0),
    )
}

/// Claims deliveries due at `now`, oldest due first: at most `budget` in
/// all, and for each enabled endpoint up to `per_endpoint` in flight
/// (`busy(endpoint)` are already), or one when it is failing (endpoints
/// taken in turn from a place that moves every second, so none is always
/// last). A claim moves the delivery's due time by `lease_ms`, so another
/// dispatcher (another collector on PostgreSQL) does not take it
/// meanwhile, and one that was claimed by a dispatcher that died is due
/// again after it.
pub fn claim(
    db: &Db,
    now: i64,
    lease_ms: i64,
    (budget, per_endpoint): (usize, usize),
    busy: impl Fn(i64) -> usize,
) -> Result<Vec<Due>> {
    // Every enabled endpoint, each then asked for its due deliveries
    // through `deliveries_due` (endpoints are few; a join or EXISTS would
    // let a planner without statistics scan every delivery).
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE disabled_at IS NULL ORDER BY id");
    let mut enabled: Vec<Endpoint> = db.prepare(&sql)?.query_map([], endpoint_row)?.collect::<Result<_>>()?;
    if !enabled.is_empty() {
        let first = (now / 1000).rem_euclid(enabled.len() as i64) as usize;
        enabled.rotate_left(first);
    }
    // Two rounds: one delivery for every endpoint with work first, so
    // endpoints that hold slots (hung ones) cannot leave the others none;
    // then the rest of the budget. A failing endpoint gets one at a time:
    // a dead one holds one slot, not its whole share.
    let mut claimed = Vec::new();
    for round in [Round::One, Round::Rest] {
        for endpoint in &enabled {
            let mine = claimed.iter().filter(|d: &&Due| d.endpoint_id == endpoint.id).count();
            // (Nothing claimed in the first round: nothing is due.)
            if matches!(round, Round::Rest) && mine == 0 {
                continue;
            }
            let limit = match endpoint.failing_since {
                Some(_) => 1,
                None => per_endpoint,
            };
            let free = limit.saturating_sub(busy(endpoint.id) + mine);
            let room = match round {
                Round::One => free.min(1),
                Round::Rest => free,
            }
            .min(budget - claimed.len());
            if room > 0 {
                claimed.extend(claim_of(db, endpoint, now, lease_ms, room)?);
            }
        }
    }
    Ok(claimed)
}

/// Which round of a claim: one each, then the rest.
#[derive(Clone, Copy)]
enum Round {
    One,
    Rest,
}

/// Claims at most `room` of `endpoint`'s deliveries due at `now`.
fn claim_of(db: &Db, endpoint: &Endpoint, now: i64, lease_ms: i64, room: usize) -> Result<Vec<Due>> {
    let secrets = endpoint.signing_secrets(now);
    let due: Vec<(i64, String, String)> = db
        .prepare(
            // The due ones first, through `deliveries_due` in its order,
            // then their messages: joined before the limit, a planner
            // without statistics read every due message.
            "SELECT d.id, m.message_key, m.body FROM (
                 SELECT id, message_id, next_at FROM deliveries
                 WHERE endpoint_id = ?1 AND status = 'pending' AND next_at <= ?2
                 ORDER BY next_at, id LIMIT ?3) d
             JOIN outgoing_messages m ON m.id = d.message_id ORDER BY d.next_at, d.id",
        )?
        .query_map(params![endpoint.id, now, room as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_>>()?;
    let ids: Vec<i64> = due.iter().map(|(id, _, _)| *id).collect();
    for slice in padded_slices(&ids, BATCH) {
        let mut values = vec![Value::Integer(now + lease_ms)];
        values.extend(slice.iter().map(|id| Value::Integer(*id)));
        let list = numbered(2, slice.len());
        db.execute(
            &format!("UPDATE deliveries SET next_at = ?1 WHERE id IN ({list})"),
            values,
        )?;
    }
    Ok(due
        .into_iter()
        .map(|(delivery_id, message_key, body)| Due {
            delivery_id,
            endpoint_id: endpoint.id,
            url: endpoint.url.clone(),
            secrets: secrets.clone(),
            message_key,
            body,
        })
        .collect())
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Tried {
    /// The HTTP status, none when no answer came (refused, timed out).
    pub status: Option<u16>,
    pub duration_ms: i64,
    /// The answer's first bytes, or what went wrong.
    pub response: String,
    /// How long the receiver asked to be left alone (`Retry-After` seconds
    /// with a 429 or 503).
    pub retry_after_ms: Option<i64>,
}

impl Tried {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Worth another attempt later: no answer, 408, 429 or a 5xx. Any other
    /// status is the receiver refusing this message for good.
    pub fn retryable(&self) -> bool {
        match self.status {
            None => true,
            Some(s) => s == 408 || s == 429 || s >= 500,
        }
    }
}

/// Most characters of an answer kept with its attempt.
pub const RESPONSE_KEPT: usize = 500;

/// Records attempts that ended, as (delivery, how), at `now`, and what
/// follows each: delivered; due again on the schedule; or failed (and the
/// endpoint disabled once it has failed for `DISABLE_AFTER_MS`). Successes,
/// the common case, take a few statements whatever their number: on
/// PostgreSQL each statement is a round trip under the write lock.
pub fn record_attempts(db: &Db, ended: &[(i64, Tried)], now: i64) -> Result<()> {
    let ids: Vec<i64> = ended.iter().map(|(id, _)| *id).collect();
    // The deliveries still there (deleting an endpoint deletes its own).
    let mut live: HashMap<i64, (i64, String, i64)> = HashMap::new();
    for slice in padded_slices(&ids, BATCH) {
        let sql = format!(
            "SELECT id, endpoint_id, status, attempts FROM deliveries WHERE id IN ({})",
            numbered(1, slice.len())
        );
        for (id, endpoint, status, attempts) in db.query_all(
            &sql,
            slice.iter().map(|id| Value::Integer(*id)).collect::<Vec<_>>(),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )? {
            live.insert(id, (endpoint, status, attempts));
        }
    }
    let ended: Vec<&(i64, Tried)> = ended.iter().filter(|(id, _)| live.contains_key(id)).collect();
    let rows: Vec<Vec<Value>> = ended
        .iter()
        .map(|(id, tried)| {
            // (An answer may hold anything: a NUL PostgreSQL cannot store,
            // control characters for a terminal.)
            let response = crate::http::decode::clean(&tried.response, RESPONSE_KEPT);
            params![*id, now, tried.status.map(i64::from), tried.duration_ms, response].values()
        })
        .collect();
    for chunk in power_chunks(&rows, BATCH) {
        let sql = format!(
            "INSERT INTO delivery_attempts (delivery_id, at, status, duration_ms, response) VALUES {}",
            row_placeholders(chunk.len(), 5)
        );
        db.execute(&sql, chunk.concat())?;
    }
    let delivered: Vec<i64> = ended.iter().filter(|(_, t)| t.succeeded()).map(|(id, _)| *id).collect();
    for slice in padded_slices(&delivered, BATCH) {
        let mut values = vec![Value::Integer(now)];
        values.extend(slice.iter().map(|id| Value::Integer(*id)));
        let sql = format!(
            "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, updated_at = ?1 WHERE id IN ({})",
            numbered(2, slice.len())
        );
        db.execute(&sql, values)?;
    }
    // A success ends its endpoint's failing streak.
    let mut succeeded: Vec<i64> = delivered.iter().map(|id| live[id].0).collect();
    succeeded.sort_unstable();
    succeeded.dedup();
    for slice in padded_slices(&succeeded, BATCH) {
        let sql = format!(
            "UPDATE endpoints SET failing_since = NULL WHERE failing_since IS NOT NULL AND id IN ({})",
            numbered(1, slice.len())
        );
        db.execute(&sql, slice.iter().map(|id| Value::Integer(*id)).collect::<Vec<_>>())?;
    }
    for (id, tried) in ended.into_iter().filter(|(_, t)| !t.succeeded()) {
        let (endpoint, status, attempts) = &live[id];
        failed(db, *id, *endpoint, (status, *attempts + 1), tried, now)?;
    }
    Ok(())
}

/// After a failed attempt (the `attempts`-th) of delivery `id`, in
/// `status`: due again on the schedule, or failed; the endpoint failing
/// since its first failure, and disabled after `DISABLE_AFTER_MS`.
fn failed(db: &Db, id: i64, endpoint_id: i64, (status, attempts): (&str, i64), tried: &Tried, now: i64) -> Result<()> {
    // (A delivery another dispatcher finished, or the merchant failed by
    // disabling its endpoint, stays as it is.)
    let next = SCHEDULE_MS
        .get(attempts as usize)
        .filter(|_| tried.retryable() && status == "pending");
    match next {
        // A receiver that asked for more time gets it (a day at most).
        Some(wait) => db.execute(
            "UPDATE deliveries SET attempts = ?2, next_at = ?3, updated_at = ?4 WHERE id = ?1",
            params![
                id,
                attempts,
                now + (*wait).max(tried.retry_after_ms.unwrap_or(0).min(86_400_000)),
                now
            ],
        )?,
        None => db.execute(
            "UPDATE deliveries SET status = CASE WHEN status = 'delivered' THEN status ELSE 'failed' END,
                                   attempts = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, attempts, now],
        )?,
    };
    // 410 Gone: the receiver says the subscription is over (Zapier's
    // REST hooks' unsubscribe): nothing more is sent to it.
    if tried.status == Some(410) {
        return disable(db, endpoint_id, "answered 410 Gone", now);
    }
    db.execute(
        "UPDATE endpoints SET failing_since = coalesce(failing_since, ?2) WHERE id = ?1",
        params![endpoint_id, now],
    )?;
    let since: Option<i64> = db
        .query_row(
            "SELECT failing_since FROM endpoints WHERE id = ?1 AND disabled_at IS NULL",
            [endpoint_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(since) = since.filter(|since| now - since >= DISABLE_AFTER_MS) {
        let reason = format!("failing since {}", super::clock::rfc3339(since));
        disable(db, endpoint_id, &reason, now)?;
    }
    Ok(())
}

/// Most rows or ids in one statement.
const BATCH: usize = 64;

/// `?first, ?first+1, …`: `n` numbered placeholders.
fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `items` in chunks whose lengths are powers of two, largest first, at
/// most `max`: few statement texts (each prepared once per connection),
/// and, unlike `padded_slices`, no repeated row (for inserts nothing
/// deduplicates).
fn power_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (chunk, after) = rest.split_at(max.min(1 << rest.len().ilog2()));
        rest = after;
        Some(chunk)
    })
}

/// One attempt, as the dashboard and the API show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at: i64,
    /// The HTTP status; null when no answer came.
    pub status: Option<i64>,
    pub duration_ms: i64,
    /// The answer's first 500 characters, or what went wrong.
    pub response: String,
}

/// A message's delivery to one endpoint, with its attempts.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub message_key: String,
    pub event: String,
    pub body: String,
    pub status: String,
    pub attempts: Vec<Attempt>,
    /// When a pending delivery is due next.
    pub next_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An endpoint's deliveries, newest first, before row id `before` if given;
/// each with its newest 20 attempts.
pub fn deliveries(db: &Db, endpoint_id: i64, before: Option<i64>, limit: u32) -> Result<Vec<Delivery>> {
    let mut found: Vec<Delivery> = db
        .prepare(
            "SELECT d.id, m.message_key, m.type, m.body, d.status, d.next_at, d.created_at, d.updated_at
             FROM deliveries d JOIN outgoing_messages m ON m.id = d.message_id
             WHERE d.endpoint_id = ?1 AND d.id < ?2 ORDER BY d.id DESC LIMIT ?3",
        )?
        .query_map(params![endpoint_id, before.unwrap_or(i64::MAX), limit], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                message_key: r.get(1)?,
                event: r.get(2)?,
                body: r.get(3)?,
                status: r.get(4)?,
                next_at: r.get(5)?,
                created_at: r.get(6)?,
                updated_at: r.get(7)?,
                attempts: Vec::new(),
            })
        })?
        .collect::<Result<_>>()?;
    for d in found.iter_mut() {
        d.attempts = db
            .prepare(
                "SELECT at, status, duration_ms, response FROM delivery_attempts WHERE delivery_id = ?1
                 ORDER BY id DESC LIMIT 20",
            )?
            .query_map([d.id], |r| {
                Ok(Attempt {
                    at: r.get(0)?,
                    status: r.get(1)?,
                    duration_ms: r.get(2)?,
                    response: r.get(3)?,
                })
            })?
            .collect::<Result<_>>()?;
    }
    Ok(found)
}

/// The row id in a delivery key (`dlv_12` → 12).
pub fn delivery_id(delivery_key: &str) -> Option<i64> {
    delivery_key.strip_prefix("dlv_")?.parse().ok()
}

/// The key's delivery `delivery_key` (`dlv_<n>`).
pub fn delivery(db: &Db, key_id: i64, delivery_key: &str) -> Result<Delivery> {
    let missing = || Refusal::not_found("key", format!("no delivery {delivery_key:?}"));
    let id = delivery_id(delivery_key).ok_or_else(missing)?;
    let endpoint: Option<i64> = db
        .query_row(
            "SELECT d.endpoint_id FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
             WHERE d.id = ?1 AND e.key_id = ?2",
            params![id, key_id],
            |r| r.get(0),
        )
        .optional()?;
    let endpoint = endpoint.ok_or_else(missing)?;
    deliveries(db, endpoint, Some(id + 1), 1)?
        .into_iter()
        .next()
        .ok_or_else(|| missing().into())
}

/// Sends a delivery again, at once: one more attempt (and the schedule's
/// retries, if it has attempts left), with the same `webhook-id`. A
/// disabled endpoint's are refused: enable it first.
pub fn resend(db: &Db, key_id: i64, delivery_key: &str, now: i64) -> Result<Delivery> {
    let found = delivery(db, key_id, delivery_key)?;
    let disabled: bool = db.query_row(
        "SELECT e.disabled_at IS NOT NULL FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id WHERE d.id = ?1",
        [found.id],
        |r| r.get(0),
    )?;
    if disabled {
        return Err(Refusal::conflict("key", "its endpoint is disabled: enable it first").into());
    }
    db.execute(
        "UPDATE deliveries SET status = 'pending', next_at = ?2, updated_at = ?2 WHERE id = ?1",
        params![found.id, now],
    )?;
    delivery(db, key_id, delivery_key)
}

/// Most messages `prune` deletes at once (a short transaction: events wait
/// for the write lock meanwhile).
pub const PRUNE_AT_ONCE: usize = 200;

/// Deletes at most `PRUNE_AT_ONCE` messages older than `KEEP_MS` that
/// nothing is still sending, with their deliveries and attempts; returns
/// how many.
pub fn prune(db: &Db, now: i64) -> Result<usize> {
    db.execute(
        &format!(
            "DELETE FROM outgoing_messages WHERE id IN (
                 SELECT m.id FROM outgoing_messages m WHERE m.created_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = 'pending')
                 LIMIT {PRUNE_AT_ONCE})"
        ),
        [now - KEEP_MS],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_are_powers_of_two_and_cover_every_item_once() {
        let items: Vec<u32> = (0..77).collect();
        let sizes: Vec<usize> = super::power_chunks(&items, 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [64, 8, 4, 1]);
        assert_eq!(
            super::power_chunks(&items, 64).flatten().copied().collect::<Vec<_>>(),
            items
        );
        assert_eq!(super::power_chunks(&[] as &[u32], 64).count(), 0);
        assert_eq!(super::numbered(2, 3), "?2, ?3, ?4");
    }

    #[test]
    fn event_lists_are_checked_sorted_and_deduplicated() {
        let list = super::event_list(&["reward.updated", "customer.created", "reward.updated"]).unwrap();
        assert_eq!(list, ["customer.created", "reward.updated"]);
        assert_eq!(super::event_list(&["customer.created", "*"]).unwrap(), ["*"]);
        assert!(super::event_list(&["customer.deleted"])
            .unwrap_err()
            .contains("customer.deleted"));
        assert!(super::event_list::<&str>(&[]).is_err());
    }
}
