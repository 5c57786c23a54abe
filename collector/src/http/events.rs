//! `POST /v1/events`: the browser's batch endpoint.
//!
//! Accepts `text/plain` (a CORS simple request: no preflight) or JSON, checks
//! the public key and the page's origin, validates each event, and answers per
//! event only after the writer has committed them (`accepted`/`duplicate`), or
//! with the rejected field (`rejected`). 200 when anything was stored, else 4xx.
//! In server-cookie mode, the answer to a click sets the collector's cookie.

use super::decode::{decode_batch, FieldError};
use super::read_body;
use super::reply::{self, Reply};
use super::server_cookie;
use crate::app::App;
use crate::store::attribution;
use crate::store::{EventKind, Key, Outcome, ServerClick, Submission, WriterError};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER};
use hyper::{Request, StatusCode};
use serde::Serialize;
use std::sync::atomic::Ordering;
use wire::{limit, status};

#[derive(Serialize)]
struct EventResult {
    id: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize)]
struct BatchReply<'a> {
    results: Vec<EventResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

pub async fn post(app: &App, req: Request<Incoming>) -> Reply {
    let origin = req.headers().get(ORIGIN).cloned();
    let mut reply = handle(app, req).await;
    // Any page may read the answer (it holds no data); only allowed origins
    // may store events, which `handle` checks.
    if let Some(origin) = origin {
        allow_origin(&mut reply, origin);
    }
    reply
}

/// The CORS preflight, for clients that send `application/json`.
pub fn preflight(req: &Request<Incoming>) -> Reply {
    let mut reply = reply::bytes("text/plain", "no-store", Bytes::new());
    *reply.status_mut() = StatusCode::NO_CONTENT;
    let headers = reply.headers_mut();
    headers.insert("access-control-allow-methods", HeaderValue::from_static("POST"));
    headers.insert("access-control-allow-headers", HeaderValue::from_static("content-type"));
    headers.insert("access-control-max-age", HeaderValue::from_static("86400"));
    if let Some(origin) = req.headers().get(ORIGIN) {
        allow_origin(&mut reply, origin.clone());
    }
    reply
}

/// CORS for the snippet's requests, which carry credentials so that the
/// server cookie travels (and can be set) on the merchant's site.
pub fn allow_origin(reply: &mut Reply, origin: HeaderValue) {
    let headers = reply.headers_mut();
    headers.insert("access-control-allow-origin", origin);
    headers.insert("access-control-allow-credentials", HeaderValue::from_static("true"));
    headers.insert("vary", HeaderValue::from_static("Origin"));
}

async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "text/plain" && essence != "application/json" {
        return reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            &format!("{content_type:?} is not accepted; send the JSON batch as text/plain or application/json"),
        );
    }
    let body = match read_body(body, app.client_timeout, limit::BODY_BYTES).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let batch = match decode_batch(&body) {
        Ok(batch) => batch,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e.field, &e.message),
    };
    let key = match browser_key(app, &batch.pk, headers).await {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    if let Some(low) = app.disk.low() {
        let mut reply = reply::error(StatusCode::SERVICE_UNAVAILABLE, "disk", &low);
        reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("30"));
        return reply;
    }
    // Logged only for a known key and origin: anyone could send the number.
    if batch.dropped > 0 {
        tracing::warn!(pk = %batch.pk, dropped = batch.dropped, "a browser's outbox was full and dropped events");
        // Saturating: a hostile `dropped` of 2^64-1 must not wrap the counter.
        let _ = app
            .metrics
            .outbox_dropped
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(batch.dropped))
            });
    }

    // One slot per event, in the order sent; `None` until the writer answers.
    let mut slots: Vec<Option<EventResult>> = Vec::with_capacity(batch.events.len());
    let mut valid = Vec::new();
    let mut first_rejected = None;
    for (i, event) in batch.events.into_iter().enumerate() {
        match event {
            Ok(event) => {
                slots.push(None);
                valid.push(event);
            }
            Err((id, FieldError { field, message })) => {
                first_rejected.get_or_insert_with(|| (format!("events[{i}].{field}"), message.clone()));
                slots.push(Some(EventResult {
                    id,
                    status: status::REJECTED,
                    field: Some(field),
                    message: Some(message),
                }));
            }
        }
    }
    // Only events that would be stored count against the key's rate: junk
    // posted with a public key must not lock its merchant out.
    if let Some(reply) = app.limits.key_events(key.id, valid.len()) {
        return reply;
    }
    let ids: Vec<String> = valid.iter().map(|e| e.id.clone()).collect();
    // The batch's newest click: the server cookie names it once stored.
    let last_click = valid
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Click)
        .map(|e| ServerClick {
            event_id: e.id.clone(),
            restored: false,
        });
    let client = parts.extensions.get::<crate::app::Client>();
    let submission = Submission {
        key: key.clone(),
        server_click: server_cookie::read(headers),
        network: client.map(|c| attribution::network(c.ip)).unwrap_or_default(),
    };
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        match app.writer.submit(submission, valid).await {
            Ok(outcomes) => outcomes,
            Err(WriterError::Busy) => {
                let mut reply = reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "events",
                    "the collector is busy; retry shortly",
                );
                reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return reply;
            }
            Err(e) => {
                tracing::error!(error = %e, "storing events failed");
                return reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "events",
                    "the events could not be stored; retry later",
                );
            }
        }
    };
    let mut stored = ids.into_iter().zip(outcomes).map(|(id, outcome)| EventResult {
        id: Some(id),
        status: match outcome {
            Outcome::Accepted => status::ACCEPTED,
            Outcome::Duplicate => status::DUPLICATE,
            Outcome::AlreadyAttributed => status::ALREADY_ATTRIBUTED,
        },
        field: None,
        message: None,
    });
    let results: Vec<EventResult> = slots
        .into_iter()
        .filter_map(|slot| slot.or_else(|| stored.next()))
        .collect();
    for result in &results {
        let counter = match result.status {
            status::ACCEPTED => &app.metrics.events_accepted,
            status::DUPLICATE => &app.metrics.events_duplicate,
            _ => &app.metrics.events_rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let stored_any = results.iter().any(|r| r.status != status::REJECTED);
    let code = if stored_any {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let (field, message) = match (&first_rejected, stored_any) {
        (Some((field, message)), false) => (Some(field.as_str()), Some(message.as_str())),
        _ => (None, None),
    };
    let mut reply = reply::json(
        code,
        &BatchReply {
            results,
            status: (!stored_any).then_some(code.as_u16()),
            field,
            message,
        },
    );
    if last_click.is_some() {
        let max_age = key.settings.window_ms() / 1000;
        let client = parts.extensions.get::<crate::app::Client>();
        server_cookie::set(&mut reply, &key, headers, client, last_click.as_ref(), max_age);
    }
    reply
}

/// The active key `pk`, if the requesting page's origin may use it: the
/// collector's own origin, or one of the key's allowed origins. Otherwise the
/// error reply (401 unknown or revoked key, 403 origin), naming the field.
pub async fn browser_key(app: &App, pk: &str, headers: &hyper::HeaderMap) -> Result<Key, Reply> {
    // Looked up (and cached) only when it can be a key at all: a made-up
    // 64 KB "key" must not fill the key cache.
    let plausible = pk.len() <= wire::limit::ID && pk.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plausible {
        return Err(reply::error(
            StatusCode::UNAUTHORIZED,
            "pk",
            "is not a public key (pk_live_… or pk_test_…)",
        ));
    }
    let key = match app.public_key(pk).await {
        Err(()) => {
            let mut reply = reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "pk",
                "the key could not be looked up; retry later",
            );
            reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            return Err(reply);
        }
        Ok(Some(key)) if !key.revoked => key,
        Ok(Some(_)) => {
            return Err(reply::error(
                StatusCode::UNAUTHORIZED,
                "pk",
                "this public key was revoked",
            ))
        }
        Ok(None) => {
            return Err(reply::error(
                StatusCode::UNAUTHORIZED,
                "pk",
                "unknown public key: check the key given to growsumo._initialize",
            ))
        }
    };
    let origin = header(headers, ORIGIN);
    let same_origin = origin
        .as_deref()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host)
        == header(headers, HOST).as_deref();
    if let Some(origin) = origin.as_deref().filter(|o| !key.allows_origin(o, same_origin)) {
        return Err(reply::error(
            StatusCode::FORBIDDEN,
            "origin",
            &format!("pages at {origin} may not use this key; add the origin to the key's allowed origins"),
        ));
    }
    Ok(key)
}

fn header(headers: &hyper::HeaderMap, name: hyper::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(String::from)
}
