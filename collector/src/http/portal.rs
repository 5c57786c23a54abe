//! The partner portal under `/partners`: a partner signs in with a
//! one-time link (emailed on approval, on invitation or when it asks on
//! the sign-in page; or passed on by the merchant from the dashboard or
//! `collector partners link`), then sees its referral link (with sub-ids
//! of its choosing: `ps_xid`) and each sub-id's results, its clicks,
//! signups and conversion over time, its customers (emails masked), its
//! rewards by status and its payouts, in each currency; and gives its
//! payout and tax details. Anyone may apply to a program that takes
//! applications, at `/partners/apply/<public key>`.
//!
//! Public forms (applying, asking for a link) are limited per client
//! (`limits::FORMS_PER_HOUR`), carry a field people never see that bots
//! fill in (then nothing is stored), and answer the same whether or not
//! the email belongs to a partner.
//!
//! Built as the dashboard is: server-rendered, every value escaped by maud,
//! the same CSP allowing no script, a `HttpOnly`, `SameSite=Strict` cookie
//! for `/partners` only, a CSRF token on every form. A session names one
//! partnership; no URL or parameter selects another (see `store::portal`).

use super::dashboard::{blocking, chart, cookie, cookie_value, form, html_reply, redirect, shell};
use super::decode::{is_email, is_web_url, text};
use super::reply::Reply;
use crate::app::{App, Client};
use crate::store::clock::date;
use crate::store::daily::DAY_MS;
use crate::store::mail;
use crate::store::merchant;
use crate::store::payouts::{self, Details, FIELD_CHARS, TEXT_CHARS};
use crate::store::portal::{self, PartnerSession};
use crate::store::program::{self, Applied, NewApplication};
use hyper::body::Incoming;
use hyper::header::SET_COOKIE;
use hyper::{Method, Request, StatusCode};
use maud::{html, Markup};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

const COOKIE_NAME: &str = "growsumo_partner";

fn page(title: &str, session: Option<&PartnerSession>, body: Markup) -> Markup {
    let nav = html! {
                    @if let Some(session) = session {
                        a href="/partners" { "Home" }
                        a href="/partners/payout-details" { "Payout details" }
                        @let name = format!("{} {}", session.partner.first_name, session.partner.last_name);
                        span { @if !name.trim().is_empty() { (name.trim()) " · " } (session.partner.email) }
                        form class="inline" method="post" action="/partners/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button id="sign-out" type="submit" { "Sign out" }
                        }
                    }
    };
    shell("Partner portal", nav, title, body)
}

pub async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let https = req.extensions().get::<Client>().is_some_and(|c| c.https);
    let now = app.store.clock().now_ms();
    let session = match cookie_value(&req, COOKIE_NAME) {
        Some(token) => {
            let store = app.store.clone();
            blocking(move || store.read(|db| portal::session(db, &token, now)))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let result = match (req.method().clone(), path.as_str(), session) {
        (Method::POST, _, _) if cross_site(&req) => Ok(html_reply(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                None,
                html! { p { "Forms here are sent from the portal's own pages only." } },
            ),
        )),
        (Method::GET, p, _) if p.starts_with("/partners/apply/") => {
            apply_page(app, p.trim_start_matches("/partners/apply/").to_owned()).await
        }
        (Method::POST, p, _) if p.starts_with("/partners/apply/") => {
            let public_key = p.trim_start_matches("/partners/apply/").to_owned();
            apply(app, req, public_key, now).await
        }
        (Method::POST, "/partners/sign-in", _) => request_link(app, req, now).await,
        (Method::GET, p, _) if p.starts_with("/partners/sign-in/") => Ok(confirm(p)),
        (Method::POST, p, _) if p.starts_with("/partners/sign-in/") => {
            let token = p.trim_start_matches("/partners/sign-in/").to_owned();
            sign_in(app, token, https, now).await
        }
        (_, _, None) => Ok(signed_out()),
        (Method::GET, "/partners" | "/partners/", Some(session)) => home(app, &req, session, now).await,
        (Method::POST, "/partners/sign-out", Some(session)) => sign_out(app, req, session, https).await,
        (Method::GET, "/partners/payout-details", Some(session)) => show_details(app, session).await,
        (Method::POST, "/partners/payout-details", Some(session)) => save_details(app, req, session, now).await,
        (_, _, Some(session)) => Ok(html_reply(
            StatusCode::NOT_FOUND,
            page(
                "Not found",
                Some(&session),
                html! { p { "Nothing is served at " (path) "." } },
            ),
        )),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "partner portal page failed");
        html_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Something went wrong", None, html! { p { "Try again." } }),
        )
    })
}

/// Without a session: how to get one (a link by email).
fn signed_out() -> Reply {
    html_reply(
        StatusCode::UNAUTHORIZED,
        page(
            "Sign in",
            None,
            html! {
                p id="signed-out" { "Open the sign-in link the program sent you. Each link works once, for 24 hours." }
                form method="post" action="/partners/sign-in" {
                    label { "Or get a new one by email: " input type="email" name="email" required maxlength=(FIELD_CHARS); }
                    (trap())
                    " " button id="send-link" type="submit" { "Email me a sign-in link" }
                }
            },
        ),
    )
}

/// The field bots fill in and people never see (hidden by the style sheet,
/// skipped by the keyboard): a form with it filled stores nothing.
fn trap() -> Markup {
    html! {
        div class="trap" aria-hidden="true" {
            label { "Leave this empty " input type="text" name="homepage" tabindex="-1" autocomplete="off"; }
        }
    }
}

fn trapped(fields: &HashMap<String, String>) -> bool {
    fields.get("homepage").is_some_and(|v| !v.is_empty())
}

/// The 429 page of a client past `limits::FORMS_PER_HOUR`.
fn too_many() -> Reply {
    let mut reply = html_reply(
        StatusCode::TOO_MANY_REQUESTS,
        page(
            "Try again later",
            None,
            html! { p id="too-many" { "Too many forms from your network in the last hour. Try again later." } },
        ),
    );
    reply.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("720"),
    );
    reply
}

/// Whether the browser says a form came from another site
/// (`Sec-Fetch-Site`, which pages cannot set): the portal's forms are
/// taken from its own pages only, so no site can sign a visitor in to an
/// attacker's session (login CSRF) or post forms in its name. (`Origin`
/// against `Host` would break behind a proxy that rewrites `Host`.)
fn cross_site(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site")
}

fn client_ip(req: &Request<Incoming>) -> Option<std::net::IpAddr> {
    req.extensions().get::<Client>().map(|c| c.ip)
}

/// Emails a sign-in link to each partnership of the email given.
async fn request_link(app: &App, req: Request<Incoming>, now: i64) -> anyhow::Result<Reply> {
    if client_ip(&req).is_some_and(|ip| !app.limits.form(ip)) {
        return Ok(too_many());
    }
    let fields = form(app, req).await;
    let email = fields.get("email").map(|e| e.trim().to_owned()).unwrap_or_default();
    if !is_email(&email) || email.chars().count() > FIELD_CHARS {
        return Ok(html_reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Sign in",
                None,
                html! { p class="flag" id="error" { "email: not an email address" } },
            ),
        ));
    }
    if !trapped(&fields) {
        let store = app.store.clone();
        blocking(move || store.write_stamped(|tx, _| portal::request_links(tx, &email, now))).await?;
    }
    Ok(html_reply(
        StatusCode::OK,
        page(
            "Check your email",
            None,
            html! { p id="link-sent" { "If this email belongs to a partner, a sign-in link is on its way. It works once, for 24 hours." } },
        ),
    ))
}

/// Most characters of an applicant's names, website and pitch.
const NAME_CHARS: usize = 100;
const PITCH_CHARS: usize = 2000;

fn application_form(public_key: &str, program: &str, given: &NewApplication, error: Option<&str>) -> Markup {
    html! {
        p { "Apply to the " strong { (program) } " partner program: tell us who you are and how you will promote it. We answer by email." }
        @if let Some(error) = error { p class="flag" id="error" { (error) } }
        form method="post" action={ "/partners/apply/" (public_key) } {
            p { label { "Email " input type="email" name="email" required value=(given.email) maxlength=(FIELD_CHARS); } }
            p { label { "First name " input type="text" name="first_name" required value=(given.first_name) maxlength=(NAME_CHARS); } }
            p { label { "Last name " input type="text" name="last_name" value=(given.last_name) maxlength=(NAME_CHARS); } }
            p { label { "Website " input type="url" name="website" value=(given.website) maxlength=(FIELD_CHARS) placeholder="https://"; } }
            p { label { "How you will promote it" br; textarea name="promotion" rows="4" cols="60" maxlength=(PITCH_CHARS) { (given.promotion) } } }
            (trap())
            button id="apply" type="submit" { "Apply" }
        }
    }
}

async fn apply_page(app: &App, public_key: String) -> anyhow::Result<Reply> {
    let (store, pk) = (app.store.clone(), public_key.clone());
    let open = blocking(move || store.read(|db| program::open_for_applications(db, &pk))).await?;
    Ok(match open {
        Some((_, program)) => html_reply(
            StatusCode::OK,
            page(
                "Become a partner",
                None,
                application_form(&public_key, &program.name, &NewApplication::default(), None),
            ),
        ),
        None => closed(),
    })
}

fn closed() -> Reply {
    html_reply(
        StatusCode::NOT_FOUND,
        page("Not found", None, html! { p { "This program takes no applications." } }),
    )
}

/// Checks an application's fields: the first fault, named.
fn checked(fields: &HashMap<String, String>) -> Result<NewApplication, String> {
    let get = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let new = NewApplication {
        email: get("email"),
        first_name: get("first_name"),
        last_name: get("last_name"),
        website: get("website"),
        promotion: fields
            .get("promotion")
            .map(|v| v.trim().replace("\r\n", "\n"))
            .unwrap_or_default(),
    };
    let fault = |e: super::decode::FieldError| format!("{}: {}", e.field, e.message);
    if !is_email(&new.email) || new.email.chars().count() > FIELD_CHARS {
        return Err(format!("email: {:?} is not an email address", new.email));
    }
    if new.first_name.is_empty() {
        return Err("first_name: required".into());
    }
    text("first_name", &new.first_name, NAME_CHARS).map_err(fault)?;
    text("last_name", &new.last_name, NAME_CHARS).map_err(fault)?;
    text("website", &new.website, FIELD_CHARS).map_err(fault)?;
    if !(new.website.is_empty() || is_web_url(&new.website)) {
        return Err("website: must start with https:// or http://".into());
    }
    text("promotion", &new.promotion.replace('\n', " "), PITCH_CHARS).map_err(fault)?;
    Ok(new)
}

async fn apply(app: &App, req: Request<Incoming>, public_key: String, now: i64) -> anyhow::Result<Reply> {
    let (store, pk) = (app.store.clone(), public_key.clone());
    let Some((key, program)) = blocking(move || store.read(|db| program::open_for_applications(db, &pk))).await? else {
        return Ok(closed());
    };
    if client_ip(&req).is_some_and(|ip| !app.limits.form(ip)) {
        return Ok(too_many());
    }
    let fields = form(app, req).await;
    let new = match checked(&fields) {
        Ok(new) => new,
        Err(error) => {
            let given = NewApplication {
                email: fields.get("email").cloned().unwrap_or_default(),
                first_name: fields.get("first_name").cloned().unwrap_or_default(),
                last_name: fields.get("last_name").cloned().unwrap_or_default(),
                website: fields.get("website").cloned().unwrap_or_default(),
                promotion: fields.get("promotion").cloned().unwrap_or_default(),
            };
            return Ok(html_reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                page(
                    "Become a partner",
                    None,
                    application_form(&public_key, &program.name, &given, Some(&error)),
                ),
            ));
        }
    };
    let applied = match trapped(&fields) {
        true => Applied::Known,
        false => {
            let store = app.store.clone();
            blocking(move || store.write_stamped(|tx, _| program::apply(tx, &key, &new, now))).await?
        }
    };
    // The same answer for a new applicant and one the program knows.
    let (status, message) = match applied {
        Applied::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The program cannot take more applications right now. Try again in a few days.",
        ),
        _ => (StatusCode::OK, "Thank you! We will answer by email."),
    };
    Ok(html_reply(
        status,
        page("Become a partner", None, html! { p id="applied" { (message) } }),
    ))
}

fn details_page(status: StatusCode, session: &PartnerSession, details: &Details, note: Option<&str>) -> Reply {
    let body = html! {
        p { "How the program pays you. Give what your program asked for; leave the rest empty. You are told by email of every change." }
        @if let Some(note) = note { p class="flag" id="note" { (note) } }
        form method="post" action="/partners/payout-details" {
            input type="hidden" name="csrf" value=(session.csrf);
            p { label { "Pay me by " select name="method" {
                @for (value, label) in [("", "(choose)"), ("paypal", "PayPal"), ("wise", "Wise"), ("bank", "bank transfer")] {
                    option value=(value) selected[details.method == value] { (label) }
                }
            } } }
            p { label { "PayPal email " input type="email" name="paypal_email" value=(details.paypal_email) maxlength=(FIELD_CHARS); } }
            p { label { "Wise email " input type="email" name="wise_email" value=(details.wise_email) maxlength=(FIELD_CHARS); } }
            p { label { "Name on the account " input type="text" name="account_name" value=(details.account_name) maxlength=(FIELD_CHARS); } }
            p { label { "Bank details (IBAN, SWIFT/BIC, account and routing numbers…)" br;
                textarea name="bank_details" rows="3" cols="60" maxlength=(TEXT_CHARS) { (details.bank_details) } } }
            p { label { "Tax details (tax id, VAT number, country…)" br;
                textarea name="tax_details" rows="3" cols="60" maxlength=(TEXT_CHARS) { (details.tax_details) } } }
            button id="save-details" type="submit" { "Save" }
        }
    };
    html_reply(status, page("Payout details", Some(session), body))
}

async fn show_details(app: &App, session: PartnerSession) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let (key_id, partner) = (session.key.id, session.partner.key.clone());
    let details = blocking(move || store.read(|db| payouts::details(db, key_id, &partner))).await?;
    Ok(details_page(StatusCode::OK, &session, &details, None))
}

async fn save_details(app: &App, req: Request<Incoming>, session: PartnerSession, now: i64) -> anyhow::Result<Reply> {
    let fields = form(app, req).await;
    let given = fields.get("csrf").map(String::as_bytes).unwrap_or_default();
    if !bool::from(given.ct_eq(session.csrf.as_bytes())) {
        return Ok(refused(&session));
    }
    let get = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim().replace("\r\n", "\n"))
            .unwrap_or_default()
    };
    let details = Details {
        method: get("method"),
        paypal_email: get("paypal_email"),
        wise_email: get("wise_email"),
        account_name: get("account_name"),
        bank_details: get("bank_details"),
        tax_details: get("tax_details"),
    };
    let (store, key, partner) = (app.store.clone(), session.key.clone(), session.partner.clone());
    let saved = {
        let details = details.clone();
        blocking(move || {
            store.write(|tx| {
                let before = payouts::details(tx, key.id, &partner.key)?;
                let saved = payouts::set_details(tx, key.id, &partner.key, &details, now)?;
                if saved.destination() != before.destination() {
                    let how = match saved.destination() {
                        Some(("paypal", to)) => format!("by PayPal, to {to}"),
                        Some(("wise", to)) => format!("by Wise, to {to}"),
                        Some(_) => "by bank transfer, to the bank details you gave".to_owned(),
                        None => "in no way yet (no payout details)".to_owned(),
                    };
                    mail::details_changed(tx, &key, &partner, &how, now)?;
                }
                Ok(saved)
            })
        })
        .await
    };
    Ok(match saved {
        Ok(saved) => details_page(StatusCode::OK, &session, &saved, Some("Saved.")),
        Err(e) => details_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &session,
            &details,
            Some(&e.to_string()),
        ),
    })
}

fn refused(session: &PartnerSession) -> Reply {
    html_reply(
        StatusCode::FORBIDDEN,
        page(
            "Refused",
            Some(session),
            html! { p { "The form was not this session's." } },
        ),
    )
}

/// The sign-in link's page: a button that uses it. Opening the link alone
/// uses nothing (mail scanners and link previews fetch links).
fn confirm(path: &str) -> Reply {
    html_reply(
        StatusCode::OK,
        page(
            "Sign in",
            None,
            html! {
                form method="post" action=(path) {
                    button id="sign-in" type="submit" { "Sign in to the partner portal" }
                }
            },
        ),
    )
}

async fn sign_in(app: &App, token: String, https: bool, now: i64) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let session = blocking(move || store.write_stamped(|tx, _| portal::redeem(tx, &token, now))).await?;
    let Some(session) = session else {
        return Ok(html_reply(
            StatusCode::GONE,
            page(
                "Sign in",
                None,
                html! { p id="expired" { "This sign-in link was used already or has expired. Ask the program for a new one." } },
            ),
        ));
    };
    let mut reply = redirect("/partners");
    let max_age = portal::SESSION_LIFETIME_MS / 1000;
    reply
        .headers_mut()
        .insert(SET_COOKIE, cookie(COOKIE_NAME, "/partners", &session, max_age, https));
    Ok(reply)
}

async fn sign_out(app: &App, req: Request<Incoming>, session: PartnerSession, https: bool) -> anyhow::Result<Reply> {
    let token = cookie_value(&req, COOKIE_NAME).unwrap_or_default();
    let fields = form(app, req).await;
    let given = fields.get("csrf").map(String::as_bytes).unwrap_or_default();
    if !bool::from(given.ct_eq(session.csrf.as_bytes())) {
        return Ok(refused(&session));
    }
    let store = app.store.clone();
    blocking(move || store.write(|tx| portal::sign_out(tx, &token))).await?;
    let mut reply = redirect("/partners");
    reply
        .headers_mut()
        .insert(SET_COOKIE, cookie(COOKIE_NAME, "/partners", "", 0, https));
    Ok(reply)
}

/// Most characters of a sub-id.
const SUB_CHARS: usize = 64;

async fn home(app: &App, req: &Request<Incoming>, session: PartnerSession, now: i64) -> anyhow::Result<Reply> {
    let sub: Option<String> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(name, _)| name == "sub")
        .map(|(_, v)| {
            v.chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .take(SUB_CHARS)
                .collect()
        })
        .filter(|s: &String| !s.is_empty());
    let store = app.store.clone();
    let (key_id, partner_key) = (session.key.id, session.partner.key.clone());
    let overview = blocking(move || store.read(|db| portal::overview(db, key_id, &partner_key, now))).await?;
    let (parameter, link) = merchant::referral_link(&session.key, &session.partner.key);
    let with_sub = |base: String| match &sub {
        Some(sub) => format!("{base}&ps_xid={sub}"),
        None => base,
    };
    let f = &overview.figures;
    let body = html! {
        h2 { "Your referral link" }
        @if link.is_none() {
            p class="flag" { "The program has not named its site yet: add this to any of its pages' addresses, or ask it for your link." }
        }
        p { code id="link" { (with_sub(link.clone().unwrap_or_else(|| format!("?{parameter}")))) } }
        @let others: Vec<&String> = session.key.origins.iter().filter(|o| o.as_str() != "*").skip(1).collect();
        @if !others.is_empty() {
            p class="note" { "The same link works on the program's other sites:" }
            ul id="other-links" { @for site in others { li { code { (with_sub(format!("{site}/?{parameter}"))) } } } }
        }
        form method="get" action="/partners" {
            label { "Sub-id (to tell your links apart) " input type="text" name="sub" value=(sub.clone().unwrap_or_default()) maxlength=(SUB_CHARS); }
            " " button type="submit" { "Make the link" }
        }
        h2 { "Your results" }
        table id="figures" {
            thead { tr { th { "Clicks" } th { "Signups" } th { "Conversion" } th { "Revenue" } th { "Rewards owed" } th { "Rewards paid" } } }
            tbody { tr {
                td { (f.clicks) } td { (f.signups) }
                td { @if f.clicks > 0 { (format!("{:.1}%", 100.0 * f.signups as f64 / f.clicks as f64)) } @else { "—" } }
                td class="amount" { (f.revenue) } td class="amount" { (f.owed) } td class="amount" { (f.paid) }
            } }
        }
        (chart(&overview.series, (now / DAY_MS - portal::CHART_DAYS + 1) * DAY_MS))
        h2 { "Your sub-ids" }
        table id="subs" {
            thead { tr { th { "Sub-id" } th { "Clicks" } th { "Signups" } } }
            tbody {
                @for (sub, clicks, signups) in &overview.subs {
                    tr { td { code { (sub) } } td { (clicks) } td { (signups) } }
                }
            }
        }
        @if overview.subs.is_empty() { p class="note" { "Add a sub-id to your link to see each placement's results here." } }
        h2 { "Rewards" }
        table id="rewards" {
            thead { tr { th { "Status" } th { "Total" } } }
            tbody {
                @for (status, totals) in &overview.rewards {
                    tr { td { (status) } td class="amount" { @if totals.is_empty() { "—" } @else { (totals) } } }
                }
            }
        }
        h2 { "Payouts" }
        table id="payouts" {
            thead { tr { th { "Payout" } th { "Made" } th { "Status" } th { "Total" } } }
            tbody {
                @for (key, created, paid, totals) in &overview.payouts {
                    tr {
                        td { (key) } td { (date(*created)) }
                        td { @if let Some(paid) = paid { "paid " (date(*paid)) } @else { "being paid" } }
                        td class="amount" { (totals) }
                    }
                }
            }
        }
        @if overview.payouts.is_empty() { p class="note" { "No payout yet. " a href="/partners/payout-details" { "Give your payout details" } " so the program can pay you." } }
        h2 { "Your customers" }
        table id="customers" {
            thead { tr { th { "Customer" } th { "Signed up" } } }
            tbody {
                @for (email, at) in &overview.customers { tr { td { (email) } td { (date(*at)) } } }
            }
        }
        @if overview.customers.is_empty() { p class="note" { "No customers yet: share your link." } }
    };
    Ok(html_reply(
        StatusCode::OK,
        page("Your partnership", Some(&session), body),
    ))
}
