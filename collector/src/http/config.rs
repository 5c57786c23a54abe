//! `GET /v1/config?pk=…`: what the snippet must know of its key before it
//! reads the landing URL or stores anything: the extra partner-key parameters
//! and the consent rules. In server-cookie mode it also answers for the
//! collector's cookie: `restore=1` (asked when the browser's own storage is
//! empty) returns the referral the cookie still holds and marks the cookie as
//! restored; `forget=1` (the visitor refused consent) deletes it.
//!
//! Per visitor (it reads the cookie), so never cached.

use super::events::browser_key;
use super::reply::{self, Reply};
use super::server_cookie;
use crate::app::App;
use crate::store::attribution::{self, Context};
use crate::store::{Key, Param, ServerClick};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;

#[derive(Serialize)]
struct Config<'a> {
    params: &'a [Param],
    require_consent: bool,
    honor_gpc: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    referral: Option<&'a Referral>,
}

#[derive(Serialize)]
struct Referral {
    partner_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    xid: Option<String>,
    /// Seconds the referral has left in the key's window.
    max_age: i64,
}

pub async fn get(app: &App, req: Request<Incoming>) -> Reply {
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let pk = param("pk");
    if pk.is_empty() {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "pk",
            "is required: the public key given to growsumo._initialize",
        );
    }
    let headers = req.headers();
    let client = req.extensions().get::<crate::app::Client>();
    let key = match browser_key(app, pk, headers).await {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let cookie = server_cookie::read(headers);
    let restored = match (&cookie, param("restore")) {
        (Some(cookie), "1") => restore(app, &key, cookie).await,
        _ => None,
    };
    let settings = &key.settings;
    let mut reply = reply::json(
        StatusCode::OK,
        &Config {
            params: &settings.params,
            require_consent: settings.require_consent,
            honor_gpc: settings.honor_gpc,
            referral: restored.as_ref().map(|(referral, _)| referral),
        },
    );
    if let Some((referral, click)) = &restored {
        server_cookie::set(&mut reply, &key, headers, client, Some(click), referral.max_age);
    } else if cookie.is_some() && param("forget") == "1" {
        server_cookie::set(&mut reply, &key, headers, client, None, 0);
    }
    reply
}

/// The referral the server cookie names, if its click is within the window,
/// with the cookie value that marks it restored.
async fn restore(app: &App, key: &Key, cookie: &ServerClick) -> Option<(Referral, ServerClick)> {
    let store = app.store.clone();
    let now_ms = store.clock().now_ms();
    let ctx = Context {
        key_id: key.id,
        now_ms,
        window_ms: key.settings.window_ms(),
        fingerprint_ms: 0,
        server_click: None,
        network: String::new(),
        // Every stored click counts.
        before_seq: i64::MAX,
    };
    let event_id = cookie.event_id.clone();
    let click = tokio::task::spawn_blocking(move || store.read(|conn| attribution::click_by_id(conn, &ctx, &event_id)))
        .await
        .ok()?
        .map_err(|e| tracing::error!(error = %e, "server-cookie lookup failed"))
        .ok()??;
    let referral = Referral {
        partner_key: click.partner_key,
        xid: click.xid,
        max_age: (key.settings.window_ms() - (now_ms - click.at)) / 1000,
    };
    let restored = ServerClick {
        event_id: click.event_id,
        restored: true,
    };
    Some((referral, restored))
}
