//! The dashboard's Program page: the applications waiting (approve: a
//! partnership in the program's group and an email with a sign-in link;
//! decline), inviting a partner by email, the program's settings (name,
//! applications closed, reviewed or automatic, the group applicants join,
//! which emails go out and where the merchant hears of applications), and
//! the emails sent lately, with their status.

use super::{after_action, forged, form_fields, html_reply, own_url, page, write};
use crate::app::App;
use crate::http::decode::{is_email, text};
use crate::http::reply::Reply;
use crate::store::clock::rfc3339;
use crate::store::merchant::PartnerFields;
use crate::store::page::List;
use crate::store::program::{self, Applications, Program};
use crate::store::sessions::Session;
use crate::store::{groups, mail};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use maud::html;
use std::collections::HashMap;

/// Applications and emails listed.
const SHOWN: u32 = 100;

pub async fn show(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let base = own_url(req);
    let key = session.key.clone();
    let (program, waiting, groups, emails) = super::blocking({
        let store = app.store.clone();
        move || {
            store.read(|db| {
                Ok((
                    program::get(db, &key)?,
                    program::applications(db, key.id, "pending", SHOWN)?,
                    groups::list(db, key.id, false, List::first(100))?.items,
                    mail::recent(db, key.id, SHOWN)?,
                ))
            })
        }
    })
    .await?;
    let csrf = session.csrf.clone();
    let decide = |id: i64, action: &'static str, label: &'static str| {
        html! {
            form class="inline" method="post" action="/dashboard/program" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value=(action);
                input type="hidden" name="application" value=(id);
                button type="submit" id={ (action) "-" (id) } { (label) }
            }
        }
    };
    let public_emails = ["sign_in", "approved", "application"]
        .iter()
        .any(|k| program.emails.iter().any(|e| e == k));
    let body = html! {
        @if !app.smtp && !program.emails.is_empty() {
            p class="flag" id="no-smtp" { "No SMTP server is configured ([smtp] in the config file): emails wait, and are dropped after 2 days (sign-in links after 24 hours)." }
        }
        @if program.portal_url.is_empty() && public_emails {
            p class="flag" id="no-portal-url" { "Set the portal address below: emails that public pages cause (sign-in links asked for, automatic approvals, application notices) link only to it, never to the address a stranger's request names. Without it, sign-in links are not sent from public pages." }
        }
        h2 { "Applications" }
        @if program.applications == Applications::Closed {
            p class="note" { "The program takes no applications: open it below." }
        } @else {
            p { "Application page: " code id="apply-link" { (base) "/partners/apply/" (session.key.public_key) } }
        }
        table id="applications" {
            thead { tr { th { "Applied" } th { "Name" } th { "Email" } th { "Website" } th { "How they will promote it" } th { "" } } }
            tbody {
                @for a in &waiting {
                    tr {
                        td { (rfc3339(a.created_at)) } td { (a.first_name) " " (a.last_name) } td { (a.email) }
                        td { (a.website) } td { (a.promotion) }
                        td { (decide(a.id, "approve", "Approve")) " " (decide(a.id, "decline", "Decline")) }
                    }
                }
            }
        }
        @if waiting.is_empty() { p class="note" { "No application waiting." } }
        h2 { "Invite a partner" }
        form method="post" action="/dashboard/program" id="invite" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="action" value="invite";
            label { "Email " input type="email" name="email" required; } " "
            label { "First name " input type="text" name="first_name"; } " "
            label { "Last name " input type="text" name="last_name"; } " "
            label { "Group " select name="group" {
                @for g in &groups { option value=(g.key) selected[program.group_key.as_deref() == Some(g.key.as_str())] { (g.name) } }
            } } " "
            button type="submit" { "Invite" }
        }
        @if !program.emails.iter().any(|k| k == "invited") {
            p class="note" { "Invitation emails are off: after inviting, send a sign-in link from the Partners page." }
        }
        h2 { "Settings" }
        form method="post" action="/dashboard/program" id="settings" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="action" value="settings";
            p { label { "Name partners see " input type="text" name="name" value=(program.name) maxlength="100"; } }
            p { label { "Applications " select name="applications" {
                @for (value, label) in [("closed", "closed"), ("review", "open, each reviewed here"), ("auto", "open, approved at once")] {
                    option value=(value) selected[program.applications.as_str() == value] { (label) }
                }
            } } }
            p { label { "Applicants join the group " select name="group" {
                @for g in &groups { option value=(g.key) selected[program.group_key.as_deref() == Some(g.key.as_str())] { (g.name) } }
            } } }
            p { label { "Tell me of applications at " input type="email" name="merchant_email" value=(program.merchant_email); } }
            p { label { "Portal address for emails " input type="url" name="portal_url" value=(program.portal_url) placeholder=(base); } }
            p { "Emails sent: "
                @for kind in mail::KINDS {
                    label { input type="checkbox" name="email" value=(kind) checked[program.emails.iter().any(|k| k == kind)]; " " (kind) } " "
                }
            }
            button type="submit" { "Save settings" }
        }
        h2 { "Emails" }
        table id="emails" {
            thead { tr { th { "Written" } th { "Kind" } th { "To" } th { "Subject" } th { "Status" } th { "Attempts" } th { "Last error" } } }
            tbody {
                @for (kind, to, subject, status, attempts, error, at) in &emails {
                    tr { td { (rfc3339(*at)) } td { (kind) } td { (to) } td { (subject) } td class="status" { (status) } td { (attempts) } td { (error) } }
                }
            }
        }
        @if emails.is_empty() { p class="note" { "No email yet. Emails go out through the [smtp] server of the config file." } }
    };
    Ok(html_reply(StatusCode::OK, page("Program", Some(&session), body)))
}

/// A form's action: approve, decline, invite or settings.
pub async fn act(app: &App, req: Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let base = own_url(&req);
    let pairs = form_fields(app, req, 8192).await;
    let emails: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "email")
        .map(|(_, v)| v.clone())
        .collect();
    let fields: HashMap<String, String> = pairs.into_iter().collect();
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let get = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let key = session.key.clone();
    let application: i64 = get("application").parse().unwrap_or(-1);
    let done: anyhow::Result<()> = match get("action").as_str() {
        "approve" => {
            write(app, move |tx, now| {
                program::approve(tx, &key, application, &base, now).map(drop)
            })
            .await
        }
        "decline" => write(app, move |tx, now| program::decline(tx, key.id, application, now)).await,
        "invite" => {
            let email = get("email");
            let fields = PartnerFields {
                email: Some(email.clone()),
                first_name: Some(get("first_name")),
                last_name: Some(get("last_name")),
                group_key: Some(get("group")).filter(|g| !g.is_empty()),
            };
            let names = [("first_name", &fields.first_name), ("last_name", &fields.last_name)];
            let bad_name = names.iter().find_map(|(field, value)| {
                text(field, value.as_deref().unwrap_or_default(), program::NAME_CHARS).err()
            });
            match (is_email(&email), bad_name) {
                (false, _) => Err(anyhow::anyhow!("email: {email:?} is not an email address")),
                (_, Some(e)) => Err(anyhow::anyhow!("{}: {}", e.field, e.message)),
                (true, None) => {
                    write(app, move |tx, now| {
                        program::invite(tx, &key, fields, &base, now).map(drop)
                    })
                    .await
                }
            }
        }
        "settings" => {
            let settings = Program {
                name: get("name"),
                merchant_email: get("merchant_email"),
                portal_url: get("portal_url"),
                applications: Applications::parse(&get("applications")).unwrap_or(Applications::Closed),
                group_key: Some(get("group")).filter(|g| !g.is_empty()),
                emails,
            };
            write(app, move |tx, now| program::set(tx, &key, &settings, now)).await
        }
        _ => Err(anyhow::anyhow!("no such action")),
    };
    Ok(after_action(
        done,
        &session,
        StatusCode::BAD_REQUEST,
        "/dashboard/program",
        "Back to the program",
    ))
}
