//! `POST /v1/diagnostics`: the loader's report that the snippet could not
//! start on a page (`{"pk", "reason"}`, `text/plain` like events). The page's
//! origin comes from the browser's `Origin` header, never from the body, and
//! must be one the key allows; the reason must be one of
//! `store::diagnostics::REASONS`. Answered 204 once committed.

use super::events::browser_key;
use super::read_body;
use super::reply::{self, Reply};
use crate::app::App;
use crate::store::diagnostics;
use hyper::body::Incoming;
use hyper::header::ORIGIN;
use hyper::{Request, StatusCode};
use serde::Deserialize;

/// A report is two short strings.
const MAX_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    pk: String,
    reason: String,
}

pub async fn post(app: &App, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let Some(origin) = parts
        .headers
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(String::from)
    else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "origin",
            "is required: reports come from a page",
        );
    };
    let body = match read_body(body, app.client_timeout, MAX_BYTES).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, "body", &format!("is not a report: {e}")),
    };
    if diagnostics::explain(&report.reason).is_none() {
        let known: Vec<&str> = diagnostics::REASONS.iter().map(|(r, _)| *r).collect();
        return reply::error(
            StatusCode::BAD_REQUEST,
            "reason",
            &format!("must be one of {}", known.join(", ")),
        );
    }
    let key = match browser_key(app, &report.pk, &parts.headers).await {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    // Reports land on the dashboard: only from origins the merchant listed
    // (a non-browser client can make any origin look like the collector's
    // own by sending a matching Host).
    if !key.allows_origin(&origin, false) {
        return reply::error(
            StatusCode::FORBIDDEN,
            "origin",
            &format!("{origin} is not one of the key's allowed origins"),
        );
    }
    let store = app.store.clone();
    let now = store.clock().now_ms();
    let stored = tokio::task::spawn_blocking(move || {
        store.write(|tx| diagnostics::record(tx, key.id, &origin, &report.reason, now))
    })
    .await;
    match stored {
        Ok(Ok(())) => {
            let mut reply = reply::bytes("text/plain", "no-store", bytes::Bytes::new());
            *reply.status_mut() = StatusCode::NO_CONTENT;
            reply
        }
        _ => reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "diagnostics",
            "could not be stored; retry later",
        ),
    }
}
