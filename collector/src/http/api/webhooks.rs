//! `/api/v2/webhooks`: the merchant's outgoing webhook endpoints (create,
//! list, get, update, delete, rotate the secret), their deliveries, and
//! resending one. Zapier's REST hooks' shape works as is: POST a
//! `target_url` and an `event`, keep the answer's `id`, DELETE it to
//! unsubscribe.

use super::openapi::Op;
use super::records::{DeliveryRecord, List, WebhookRecord};
use super::{db, ok, write, Answer, ApiError, Query};
use crate::app::App;
use crate::dispatch::target;
use crate::http::decode::optional;
use crate::store::outbox::{self, EndpointFields, DESCRIPTION_CHARS};
use crate::store::Key;
use hyper::StatusCode;
use serde_json::{Map, Value};

/// Deliveries per page, by default and at most.
const PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

pub async fn dispatch(app: &App, op: Op, key: &Key, item: String, query: &Query, body: &Map<String, Value>) -> Answer {
    let key_id = key.id;
    match op {
        Op::ListWebhooks => {
            let found = db(app, move |c| outbox::endpoints(c, key_id)).await?;
            let items: Vec<WebhookRecord> = found.into_iter().map(WebhookRecord::from).collect();
            ok(List { items, has_more: false }, "webhooks")
        }
        Op::CreateWebhook => {
            let fields = fields(app, body, true)?;
            let created = write(app, move |c, now| outbox::create_endpoint(c, key_id, fields, now)).await?;
            ok(WebhookRecord::from(created), "webhook created")
        }
        Op::GetWebhook => {
            let found = db(app, move |c| outbox::endpoint(c, key_id, &item)).await?;
            ok(WebhookRecord::from(found), "webhook")
        }
        Op::UpdateWebhook => {
            let fields = fields(app, body, false)?;
            let updated = write(app, move |c, now| {
                outbox::update_endpoint(c, key_id, &item, fields, now)
            })
            .await?;
            ok(WebhookRecord::from(updated), "webhook updated")
        }
        Op::DeleteWebhook => {
            let deleted = write(app, move |c, _| outbox::delete_endpoint(c, key_id, &item)).await?;
            ok(WebhookRecord::from(deleted), "webhook deleted")
        }
        Op::RotateWebhookSecret => {
            let rotated = write(app, move |c, now| outbox::rotate_secret(c, key_id, &item, now)).await?;
            ok(
                WebhookRecord::from(rotated),
                "webhook secret rotated; the previous one signs too for 24 hours",
            )
        }
        Op::ListWebhookDeliveries => {
            let limit = match query.get("limit") {
                None => PAGE,
                Some(text) => text
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| bad("limit", &format!("must be a number from 1 to {MAX_PAGE}")))?,
            };
            let before = match query.get("starting_after") {
                None => None,
                Some(text) => Some(
                    outbox::delivery_id(&text)
                        .ok_or_else(|| bad("starting_after", "must be a delivery key (dlv_…)"))?,
                ),
            };
            let (items, has_more) = db(app, move |c| {
                let endpoint = outbox::endpoint(c, key_id, &item)?;
                let mut page = outbox::deliveries(c, endpoint.id, before, limit + 1)?;
                let more = page.len() > limit as usize;
                page.truncate(limit as usize);
                Ok((page, more))
            })
            .await?;
            let items: Vec<DeliveryRecord> = items.into_iter().map(DeliveryRecord::from).collect();
            ok(List { items, has_more }, "webhook deliveries")
        }
        Op::ResendWebhookDelivery => {
            let resent = write(app, move |c, now| outbox::resend(c, key_id, &item, now)).await?;
            ok(DeliveryRecord::from(resent), "delivery resent")
        }
        _ => unreachable!("not a webhooks route"),
    }
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, field, message)
}

/// An endpoint's fields from a body: `url` (or Zapier's `target_url`),
/// `events` (or Zapier's `event`), `description`, `disabled`.
fn fields(app: &App, body: &Map<String, Value>, creating: bool) -> Result<EndpointFields, ApiError> {
    let (url_field, url) = match (
        optional(body, "target_url", target::URL_CHARS)?,
        optional(body, "url", target::URL_CHARS)?,
    ) {
        (Some(_), Some(_)) => return Err(bad("target_url", "give url or target_url, not both")),
        (Some(url), None) => ("target_url", Some(url)),
        (None, url) => ("url", url),
    };
    if creating && url.is_none() {
        return Err(bad("url", "is required (or target_url)"));
    }
    if let Some(url) = &url {
        target::parse(url, app.allow_private_webhook_targets).map_err(|m| bad(url_field, &m))?;
    }
    if body.get("events").is_some_and(|e| !e.is_null()) && body.get("event").is_some_and(|e| !e.is_null()) {
        return Err(bad("event", "give events or event, not both"));
    }
    let (events_field, events) = match (body.get("events"), optional(body, "event", 64)?) {
        (Some(Value::Array(list)), _) => {
            let names: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
            let names = names.ok_or_else(|| bad("events", "must be a list of event types"))?;
            ("events", Some(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()))
        }
        (None | Some(Value::Null), Some(event)) => ("event", Some(vec![event])),
        (None | Some(Value::Null), None) => ("events", None),
        (Some(_), _) => return Err(bad("events", "must be a list of event types")),
    };
    let events = match events {
        Some(list) => Some(outbox::event_list(&list).map_err(|m| bad(events_field, &m))?),
        None => None,
    };
    let disabled = match body.get("disabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("disabled", "must be true or false")),
    };
    // (An empty description clears it.)
    let description = match body.get("description") {
        Some(Value::String(s)) if s.is_empty() => Some(String::new()),
        _ => optional(body, "description", DESCRIPTION_CHARS)?,
    };
    Ok(EndpointFields {
        url,
        events,
        description,
        disabled,
    })
}
