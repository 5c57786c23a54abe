//! The dashboard's Webhooks page: the key's outgoing webhook endpoints
//! (add one, disable, enable, rotate its secret, delete), each flagged when
//! it is failing or was disabled, with its newest deliveries and every
//! attempt (time, status, duration, the answer's first characters), and a
//! Resend button per delivery. Every action is a form with the session's
//! CSRF token.

use super::{after_action, blocking, forged, form_fields, html_reply, page, write};
use crate::app::App;
use crate::dispatch::target;
use crate::http::decode::text;
use crate::store::clock::rfc3339;
use crate::store::outbox::{self, Delivery, Endpoint, EndpointFields, DESCRIPTION_CHARS, EVENT_TYPES};
use crate::store::sessions::Session;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use maud::html;

/// Deliveries shown per endpoint.
const SHOWN: u32 = 10;

pub async fn show(app: &App, session: Session) -> anyhow::Result<crate::http::reply::Reply> {
    let store = app.store.clone();
    let key_id = session.key.id;
    let endpoints: Vec<(Endpoint, Vec<Delivery>)> = blocking(move || {
        store.read(|conn| {
            outbox::endpoints(conn, key_id)?
                .into_iter()
                .map(|e| {
                    let deliveries = outbox::deliveries(conn, e.id, None, SHOWN)?;
                    Ok((e, deliveries))
                })
                .collect()
        })
    })
    .await?;
    let csrf = session.csrf.clone();
    let button = |action: &'static str, field: &'static str, value: String, label: &'static str| {
        html! {
            form class="inline" method="post" action="/dashboard/webhooks" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value=(action);
                input type="hidden" name=(field) value=(value);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        @for (e, _) in &endpoints {
            @if let Some(reason) = &e.disabled_reason {
                p class="flag" id={ "flag-" (e.key) } { "Disabled: " (e.url) " (" (reason) "). Nothing is sent to it until it is enabled." }
            } @else if let Some(since) = e.failing_since {
                p class="flag" id={ "flag-" (e.key) } { "Failing since " (rfc3339(since)) ": " (e.url) ". After 5 days of failures it is disabled." }
            }
        }
        p class="note" {
            "Each change is sent to the endpoints that want it, signed per Standard Webhooks (headers webhook-id, "
            "webhook-timestamp, webhook-signature; verify with the endpoint's whsec_ secret), and retried after 5 s, "
            "5 min, 30 min, 2 h, 5 h, 10 h and 10 h."
        }
        @for (e, deliveries) in &endpoints {
            section class="endpoint" id=(e.key) {
                h2 { (e.url) }
                p {
                    "Events: " (e.events.join(", "))
                    @if !e.description.is_empty() { " · " (e.description) }
                    " · " (if e.disabled_at.is_some() { "disabled" } else { "enabled" })
                }
                p { "Secret: " code class="secret" { (e.secret) }
                    @if let Some(until) = e.previous.iter().map(|(_, until)| *until).max() {
                        span class="note" { " (the secrets rotated out sign too until " (rfc3339(until)) ")" } } }
                p {
                    @if e.disabled_at.is_some() { (button("enable", "endpoint", e.key.clone(), "Enable")) }
                    @else { (button("disable", "endpoint", e.key.clone(), "Disable")) }
                    " " (button("rotate", "endpoint", e.key.clone(), "Rotate secret"))
                    " " (button("delete", "endpoint", e.key.clone(), "Delete"))
                }
                table class="deliveries" {
                    thead { tr { th { "Message" } th { "Event" } th { "Status" } th { "Attempts" } th { "" } } }
                    tbody {
                        @for d in deliveries {
                            tr id={ "dlv_" (d.id) } {
                                td { code { (d.message_key) } br; span class="note" { (rfc3339(d.created_at)) } }
                                td { (d.event) }
                                td class="status" { (d.status) @if d.status == "pending" { br; span class="note" { "next " (rfc3339(d.next_at)) } } }
                                td {
                                    @for a in &d.attempts {
                                        div class="attempt" {
                                            (rfc3339(a.at)) " · "
                                            strong { (a.status.map_or("no answer".to_owned(), |s| s.to_string())) }
                                            " · " (a.duration_ms) " ms · " span class="note" { (a.response) }
                                        }
                                    }
                                }
                                td { (button("resend", "delivery", format!("dlv_{}", d.id), "Resend")) }
                            }
                        }
                    }
                }
                @if deliveries.is_empty() { p class="note" { "Nothing sent yet." } }
            }
        }
        h2 { "Add an endpoint" }
        form method="post" action="/dashboard/webhooks" id="add-endpoint" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="action" value="add";
            p { label { "URL (https) " input type="url" name="url" size="60" required; } }
            p { "Events (none checked: every one): "
                @for event in EVENT_TYPES { label { input type="checkbox" name="event" value=(event); " " (event) } " " } }
            p { label { "Description " input type="text" name="description" size="40"; } }
            button type="submit" { "Add endpoint" }
        }
    };
    Ok(html_reply(StatusCode::OK, page("Webhooks", Some(&session), body)))
}

/// A form's action: add, disable, enable, rotate, delete or resend.
pub async fn act(app: &App, req: Request<Incoming>, session: Session) -> anyhow::Result<crate::http::reply::Reply> {
    let pairs = form_fields(app, req, 4096).await;
    let events: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "event")
        .map(|(_, v)| v.clone())
        .collect();
    let fields: std::collections::HashMap<String, String> = pairs.into_iter().collect();
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let (action, endpoint, delivery) = (get("action"), get("endpoint"), get("delivery"));
    let key_id = session.key.id;
    let done: anyhow::Result<()> = match action.as_str() {
        "add" => {
            let url = get("url");
            let checked = match events.is_empty() {
                true => Ok(None),
                false => outbox::event_list(&events).map(Some),
            };
            match (target::parse(&url, app.allow_private_webhook_targets), checked) {
                (Err(m), _) => Err(anyhow::anyhow!("URL: {m}")),
                (_, Err(m)) => Err(anyhow::anyhow!("Events: {m}")),
                (Ok(_), Ok(events)) => match text("description", &get("description"), DESCRIPTION_CHARS) {
                    Err(e) => Err(anyhow::anyhow!("Description: {}", e.message)),
                    Ok(description) => {
                        let fields = EndpointFields {
                            url: Some(url),
                            events,
                            description: Some(description),
                            disabled: None,
                        };
                        write(app, move |tx, now| {
                            outbox::create_endpoint(tx, key_id, fields, now).map(drop)
                        })
                        .await
                    }
                },
            }
        }
        "disable" | "enable" => {
            let fields = EndpointFields {
                disabled: Some(action == "disable"),
                ..Default::default()
            };
            write(app, move |tx, now| {
                outbox::update_endpoint(tx, key_id, &endpoint, fields, now).map(drop)
            })
            .await
        }
        "rotate" => {
            write(app, move |tx, now| {
                outbox::rotate_secret(tx, key_id, &endpoint, now).map(drop)
            })
            .await
        }
        "delete" => {
            write(app, move |tx, _| {
                outbox::delete_endpoint(tx, key_id, &endpoint).map(drop)
            })
            .await
        }
        "resend" => write(app, move |tx, now| outbox::resend(tx, key_id, &delivery, now).map(drop)).await,
        _ => Err(anyhow::anyhow!("no such action")),
    };
    Ok(after_action(
        done,
        &session,
        StatusCode::BAD_REQUEST,
        "/dashboard/webhooks",
        "Back to webhooks",
    ))
}
