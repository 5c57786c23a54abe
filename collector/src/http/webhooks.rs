//! Payment-provider webhooks: `POST /webhooks/stripe`, `/webhooks/chargebee`,
//! `/webhooks/recurly`. Each request is authenticated first (Stripe's
//! signature; Chargebee's and Recurly's Basic auth), which also tells whose
//! key the event belongs to; then the event is read into a provider-neutral
//! `Event` and applied once (`store::webhooks`).
//!
//! Unknown event types are acknowledged and ignored; events naming no known
//! customer or transaction are acknowledged, logged and recorded as
//! `unmatched`; malformed bodies get a 400 and are logged and counted. Nothing
//! here panics on input.

use super::reply::{self, Reply};
use crate::app::App;
use crate::store::merchant::CustomerRef;
use crate::store::webhooks::{self, Event, WebhookSettings};
use crate::store::Key;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use subtle::ConstantTimeEq;

/// Provider payloads (a Stripe invoice with its lines) can be large.
const BODY_BYTES: usize = 512 * 1024;
/// How old a Stripe signature's timestamp may be, either way.
const STRIPE_TOLERANCE_SECS: i64 = 300;

fn refuse(app: &App, status: StatusCode, field: &str, message: &str) -> Reply {
    tracing::warn!(field, message, "webhook refused");
    app.metrics.webhooks_refused.fetch_add(1, Ordering::Relaxed);
    reply::error(status, field, message)
}

async fn body(app: &App, req: Request<Incoming>) -> Result<Bytes, Reply> {
    let read = super::read_body(req.into_body(), app.client_timeout, BODY_BYTES).await;
    if read.is_err() {
        app.metrics.webhooks_refused.fetch_add(1, Ordering::Relaxed);
    }
    read
}

/// The keys whose webhook settings `matches`.
async fn keys_where(app: &App, matches: impl Fn(&WebhookSettings) -> bool) -> Vec<(Key, WebhookSettings)> {
    let store = app.store.clone();
    let all = tokio::task::spawn_blocking(move || store.read(webhooks::all)).await;
    match all {
        Ok(Ok(all)) => all.into_iter().filter(|(_, s)| matches(s)).collect(),
        _ => Vec::new(),
    }
}

/// Applies the event in one transaction and answers the provider.
async fn apply(app: &App, key: Key, provider: &'static str, id: String, kind: String, event: Event) -> Reply {
    let store = app.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.write_stamped(|tx, now| {
            webhooks::apply(tx, &key, provider, &id, &kind, &event, now).map(|o| (o, id, kind))
        })
    })
    .await;
    match result {
        Ok(Ok((outcome, id, kind))) => {
            if outcome == webhooks::Outcome::Unmatched {
                tracing::warn!(
                    provider,
                    id,
                    kind,
                    "webhook event names no known customer or transaction"
                );
            }
            reply::json(StatusCode::OK, &json!({"received": true, "outcome": outcome.as_str()}))
        }
        // A database failure: the provider retries later.
        _ => reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "event",
            "could not be stored; retry later",
        ),
    }
}

/// The string at `path`, cleaned (`decode::clean`): names and metadata
/// come from whoever filled in the provider's checkout.
fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut v = value;
    for step in path {
        v = v.get(step)?;
    }
    v.as_str()
        .map(|s| super::decode::clean(s, TEXT_CHARS))
        .filter(|s| !s.is_empty())
}

/// The longest text kept from a provider's event (keys, emails, names).
const TEXT_CHARS: usize = 255;

/// A successful payment, if the provider named its id, a non-negative whole
/// amount and an ISO 4217 currency; the customer refs are tried in order.
fn payment(
    transaction_key: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    customer: impl IntoIterator<Item = Option<CustomerRef>>,
) -> Option<Event> {
    Some(Event::Payment {
        transaction_key: transaction_key?,
        amount: amount.filter(|a| (0..=super::MAX_AMOUNT).contains(a))?,
        currency: super::currency(&currency?).ok()?,
        customer: customer.into_iter().flatten().collect(),
    })
}

/// The most `v1` signatures a `Stripe-Signature` header may carry (Stripe
/// sends one per active secret, two while one rolls), and the header's
/// longest length: more is refused before any HMAC is computed, so a
/// header cannot multiply the work.
const STRIPE_MAX_SIGNATURES: usize = 8;
const STRIPE_MAX_HEADER: usize = 1024;

/// A parsed `Stripe-Signature` (`t=…,v1=…[,v1=…]`): its time and its
/// SHA-256-sized `v1` signatures; None when malformed or over the caps.
pub fn stripe_signature(header: &str) -> Option<(i64, Vec<[u8; 32]>)> {
    if header.len() > STRIPE_MAX_HEADER {
        return None;
    }
    let mut timestamp = None;
    let (mut count, mut signatures) = (0, Vec::new());
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => {
                count += 1;
                signatures.extend(hex::decode(sig).ok().and_then(|s| <[u8; 32]>::try_from(s).ok()));
            }
            _ => {}
        }
    }
    (count <= STRIPE_MAX_SIGNATURES).then_some((timestamp?, signatures))
}

/// Whether a parsed signature holds for `secret`: HMAC-SHA256 of
/// `"{t}.{body}"`, computed once, compared in constant time with every
/// `v1`; `t` within the tolerance.
pub fn stripe_signature_ok((t, signatures): &(i64, Vec<[u8; 32]>), body: &[u8], secret: &str, now_secs: i64) -> bool {
    if (now_secs - t).abs() > STRIPE_TOLERANCE_SECS {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    signatures
        .iter()
        .any(|sig| bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &sig[..])))
}

pub async fn stripe(app: &App, req: Request<Incoming>) -> Reply {
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match body(app, req).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let now_secs = crate::store::now_ms() / 1000;
    let Some(signature) = stripe_signature(&header) else {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "stripe-signature",
            &format!("must be t=…,v1=… with at most {STRIPE_MAX_SIGNATURES} signatures, in {STRIPE_MAX_HEADER} bytes"),
        );
    };
    // A header with no usable signature, or out of time, costs nothing more.
    if signature.1.is_empty() || (now_secs - signature.0).abs() > STRIPE_TOLERANCE_SECS {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "stripe-signature",
            "does not match an endpoint secret, or its timestamp is over 300 s from now",
        );
    }
    // One HMAC per endpoint secret over the body: off the async threads, and
    // two requests at a time at most, so unsigned requests cannot take the
    // machine's cores from everyone else.
    static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let Ok(_turn) = CHECKS.acquire().await else {
        return refuse(
            app,
            StatusCode::SERVICE_UNAVAILABLE,
            "stripe-signature",
            "cannot be checked now",
        );
    };
    let candidates = keys_where(app, |s| !s.stripe_secret.is_empty()).await;
    let checked = body.clone();
    let found = tokio::task::spawn_blocking(move || {
        candidates
            .into_iter()
            .find(|(_, s)| stripe_signature_ok(&signature, &checked, &s.stripe_secret, now_secs))
    })
    .await
    .ok()
    .flatten();
    let Some((key, settings)) = found else {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "stripe-signature",
            "does not match an endpoint secret, or its timestamp is over 300 s from now",
        );
    };
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return refuse(app, StatusCode::BAD_REQUEST, "body", "is not JSON");
    };
    let (Some(id), Some(kind)) = (text(&event, &["id"]), text(&event, &["type"])) else {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "id",
            "a Stripe event needs an id and a type",
        );
    };
    let object = &event["data"]["object"];
    let parsed = match kind.as_str() {
        "customer.created" | "customer.updated" => match text(object, &["id"]) {
            Some(provider_key) => Event::Customer {
                provider_key,
                email: text(object, &["email"]),
                name: text(object, &["name"]),
                customer_key: text(object, &["metadata", "customer_key"]),
                partner_key: text(object, &["metadata", "partner_key"]),
            },
            None => return refuse(app, StatusCode::BAD_REQUEST, "data.object.id", "is missing"),
        },
        k if k == settings.stripe_payment_event => {
            let invoice = k == "invoice.payment_succeeded";
            let amount = object[if invoice { "amount_paid" } else { "amount" }].as_i64();
            let email = if invoice {
                text(object, &["customer_email"])
            } else {
                text(object, &["billing_details", "email"]).or_else(|| text(object, &["receipt_email"]))
            };
            let customer = [
                text(object, &["customer"]).map(CustomerRef::Provider),
                email.map(CustomerRef::Email),
            ];
            match payment(text(object, &["id"]), amount, text(object, &["currency"]), customer) {
                Some(event) => event,
                None => {
                    return refuse(
                        app,
                        StatusCode::BAD_REQUEST,
                        "data.object",
                        "needs an id, a whole non-negative amount and an ISO currency",
                    )
                }
            }
        }
        "charge.refunded" if object["refunded"].as_bool() == Some(true) => Event::Refund {
            // The charge itself, or the invoice it paid.
            transaction_keys: [text(object, &["id"]), text(object, &["invoice"])]
                .into_iter()
                .flatten()
                .collect(),
        },
        _ => Event::Other,
    };
    apply(app, key, "stripe", id, kind, parsed).await
}

/// The key whose `user:password` (by `secret`) the request's Basic auth carries.
async fn basic_auth_key(app: &App, req: &Request<Incoming>, secret: fn(&WebhookSettings) -> &str) -> Option<Key> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())?;
    let candidates = keys_where(app, |s| !secret(s).is_empty()).await;
    candidates
        .into_iter()
        .find(|(_, s)| bool::from(secret(s).as_bytes().ct_eq(&given)))
        .map(|(key, _)| key)
}

pub async fn chargebee(app: &App, req: Request<Incoming>) -> Reply {
    let Some(key) = basic_auth_key(app, &req, |s| &s.chargebee_auth).await else {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "authorization",
            "Basic credentials do not match",
        );
    };
    let body = match body(app, req).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return refuse(app, StatusCode::BAD_REQUEST, "body", "is not JSON");
    };
    let (Some(id), Some(kind)) = (text(&event, &["id"]), text(&event, &["event_type"])) else {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "id",
            "a Chargebee event needs an id and an event_type",
        );
    };
    let txn = &event["content"]["transaction"];
    let parsed = match kind.as_str() {
        "payment_succeeded" => {
            let customer = [
                text(txn, &["customer_id"]).map(CustomerRef::Provider),
                text(&event, &["content", "customer", "email"]).map(CustomerRef::Email),
            ];
            match payment(
                text(txn, &["id"]),
                txn["amount"].as_i64(),
                text(txn, &["currency_code"]),
                customer,
            ) {
                Some(event) => event,
                None => {
                    return refuse(
                        app,
                        StatusCode::BAD_REQUEST,
                        "content.transaction",
                        "needs an id, a whole non-negative amount and an ISO currency_code",
                    )
                }
            }
        }
        "payment_refunded" => Event::Refund {
            transaction_keys: [text(txn, &["reference_transaction_id"])]
                .into_iter()
                .flatten()
                .chain(
                    txn["linked_payments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| text(p, &["txn_id"])),
                )
                .collect(),
        },
        _ => Event::Other,
    };
    apply(app, key, "chargebee", id, kind, parsed).await
}

/// The text of each element of a Recurly notification, by its path below
/// the root (`account/account_code`), and the root's name.
fn xml_fields(body: &[u8]) -> Option<(String, HashMap<String, String>)> {
    use quick_xml::events::Event as Xml;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut fields = HashMap::new();
    let mut root = None;
    loop {
        match reader.read_event().ok()? {
            Xml::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).ok()?;
                root.get_or_insert_with(|| name.clone());
                path.push(name);
            }
            Xml::End(_) => {
                path.pop();
            }
            Xml::Text(t) => {
                let value = t.unescape().ok()?.trim().to_owned();
                if path.len() > 1 && !value.is_empty() {
                    fields.insert(path[1..].join("/"), value);
                }
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    Some((root?, fields))
}

pub async fn recurly(app: &App, req: Request<Incoming>) -> Reply {
    let Some(key) = basic_auth_key(app, &req, |s| &s.recurly_auth).await else {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "authorization",
            "Basic credentials do not match",
        );
    };
    let body = match body(app, req).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some((kind, fields)) = xml_fields(&body) else {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "body",
            "is not a Recurly XML notification",
        );
    };
    let field = |name: &str| {
        fields
            .get(name)
            .map(|s| super::decode::clean(s, TEXT_CHARS))
            .filter(|s| !s.is_empty())
    };
    let Some(txn_id) = field("transaction/id") else {
        // Notifications without a transaction are not about money.
        return reply::json(StatusCode::OK, &json!({"received": true, "outcome": "ignored"}));
    };
    // A refund names the invoice of the payment it refunds: payments are
    // recorded under their invoice when they have one.
    let payment_key = field("transaction/invoice_id").unwrap_or_else(|| txn_id.clone());
    let parsed = match kind.as_str() {
        "successful_payment_notification" => {
            let amount = field("transaction/amount_in_cents").and_then(|a| a.parse::<i64>().ok());
            let currency = field("transaction/currency").or_else(|| Some("USD".into()));
            let customer = [
                field("account/account_code").map(CustomerRef::Key),
                field("account/email").map(CustomerRef::Email),
            ];
            match payment(Some(payment_key), amount, currency, customer) {
                Some(event) => event,
                None => {
                    return refuse(
                        app,
                        StatusCode::BAD_REQUEST,
                        "transaction",
                        "needs a whole non-negative amount_in_cents and an ISO currency",
                    )
                }
            }
        }
        "successful_refund_notification" => Event::Refund {
            transaction_keys: vec![payment_key],
        },
        _ => Event::Other,
    };
    apply(app, key, "recurly", txn_id, kind, parsed).await
}
