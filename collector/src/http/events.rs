//! `POST /v1/events`: the browser's batch endpoint.
//!
//! Accepts `text/plain` (a CORS simple request: no preflight) or JSON, checks
//! the public key and the page's origin, validates each event, and answers per
//! event only after the writer has committed them (`accepted`/`duplicate`), or
//! with the rejected field (`rejected`). 200 when anything was stored, else 4xx.

use super::decode::{decode_batch, FieldError};
use super::reply::{self, Reply};
use crate::app::App;
use crate::store::{Outcome, WriterError};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER};
use hyper::{Request, StatusCode};
use serde::Serialize;
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

fn allow_origin(reply: &mut Reply, origin: HeaderValue) {
    let headers = reply.headers_mut();
    headers.insert("access-control-allow-origin", origin);
    headers.insert("vary", HeaderValue::from_static("Origin"));
}

async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "text/plain" && essence != "application/json" {
        return reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            &format!("{content_type:?} is not accepted; send the JSON batch as text/plain or application/json"),
        );
    }
    let origin = header(&req, ORIGIN);
    let same_origin = origin
        .as_deref()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host)
        == header(&req, HOST).as_deref();

    let body = match read_body(req.into_body(), app.client_timeout).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let batch = match decode_batch(&body) {
        Ok(batch) => batch,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e.field, &e.message),
    };
    let key = match app.public_key(&batch.pk).await {
        Some(key) if !key.revoked => key,
        Some(_) => return reply::error(StatusCode::UNAUTHORIZED, "pk", "this public key was revoked"),
        None => {
            return reply::error(
                StatusCode::UNAUTHORIZED,
                "pk",
                "unknown public key: check the key given to growsumo._initialize",
            )
        }
    };
    if let Some(origin) = origin.as_deref().filter(|o| !key.allows_origin(o, same_origin)) {
        return reply::error(
            StatusCode::FORBIDDEN,
            "origin",
            &format!(
                "pages at {origin} may not send events with this key; add the origin to the key's allowed origins"
            ),
        );
    }
    // Logged only for a known key and origin: anyone could send the number.
    if batch.dropped > 0 {
        tracing::warn!(pk = %batch.pk, dropped = batch.dropped, "a browser's outbox was full and dropped events");
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
    let ids: Vec<String> = valid.iter().map(|e| e.id.clone()).collect();
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        match app.writer.submit(key.id, valid).await {
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
        },
        field: None,
        message: None,
    });
    let results: Vec<EventResult> = slots
        .into_iter()
        .filter_map(|slot| slot.or_else(|| stored.next()))
        .collect();
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
    reply::json(
        code,
        &BatchReply {
            results,
            status: (!stored_any).then_some(code.as_u16()),
            field,
            message,
        },
    )
}

fn header(req: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from)
}

/// Reads at most `limit::BODY_BYTES`, within `timeout`.
async fn read_body(body: Incoming, timeout: std::time::Duration) -> Result<Bytes, Reply> {
    let limited = Limited::new(body, limit::BODY_BYTES);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            &format!(
                "is larger than {} bytes; send fewer events per request",
                limit::BODY_BYTES
            ),
        )),
        Ok(Err(_)) => Err(reply::error(StatusCode::BAD_REQUEST, "body", "was cut short")),
        Err(_) => Err(reply::error(
            StatusCode::REQUEST_TIMEOUT,
            "body",
            "took too long to arrive",
        )),
    }
}
