//! The partner portal under `/partners`: a partner opens the one-time
//! sign-in link the merchant gave it (`collector partners link`, the
//! dashboard's Partners page), then sees its referral link (with a sub-id
//! of its choosing: `ps_xid`), its clicks, signups and conversion, its
//! customers (emails masked) and its rewards by status, in each currency.
//!
//! Built as the dashboard is: server-rendered, every value escaped by maud,
//! the same CSP allowing no script, a `HttpOnly`, `SameSite=Strict` cookie
//! for `/partners` only, a CSRF token on every form. A session names one
//! partnership; no URL or parameter selects another (see `store::portal`).

use super::dashboard::{blocking, cookie, cookie_value, form, html_reply, redirect};
use super::reply::Reply;
use crate::app::{App, Client};
use crate::store::clock::date;
use crate::store::merchant;
use crate::store::portal::{self, PartnerSession};
use hyper::body::Incoming;
use hyper::header::SET_COOKIE;
use hyper::{Method, Request, StatusCode};
use maud::{html, Markup, DOCTYPE};
use subtle::ConstantTimeEq;

const COOKIE_NAME: &str = "growsumo_partner";

fn page(title: &str, session: Option<&PartnerSession>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · partner portal" }
                link rel="stylesheet" href="/dashboard/style.css";
            }
            body {
                header {
                    strong { "Partner portal" }
                    @if let Some(session) = session {
                        @let name = format!("{} {}", session.partner.first_name, session.partner.last_name);
                        span { @if !name.trim().is_empty() { (name.trim()) " · " } (session.partner.email) }
                        form class="inline" method="post" action="/partners/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button id="sign-out" type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
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
        (Method::GET, p, _) if p.starts_with("/partners/sign-in/") => Ok(confirm(p)),
        (Method::POST, p, _) if p.starts_with("/partners/sign-in/") => {
            let token = p.trim_start_matches("/partners/sign-in/").to_owned();
            sign_in(app, token, https, now).await
        }
        (_, _, None) => Ok(signed_out()),
        (Method::GET, "/partners" | "/partners/", Some(session)) => home(app, &req, session).await,
        (Method::POST, "/partners/sign-out", Some(session)) => sign_out(app, req, session, https).await,
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

/// Without a session: how to get one.
fn signed_out() -> Reply {
    html_reply(
        StatusCode::UNAUTHORIZED,
        page(
            "Sign in",
            None,
            html! { p id="signed-out" { "Open the sign-in link the program sent you. Each link works once, for 24 hours; ask the program for a new one." } },
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
        return Ok(html_reply(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                Some(&session),
                html! { p { "The form was not this session's." } },
            ),
        ));
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

async fn home(app: &App, req: &Request<Incoming>, session: PartnerSession) -> anyhow::Result<Reply> {
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
    let overview = blocking(move || store.read(|db| portal::overview(db, key_id, &partner_key))).await?;
    let (parameter, link) = merchant::referral_link(&session.key, &session.partner.key);
    let with_sub = |base: String| match &sub {
        Some(sub) => format!("{base}&ps_xid={sub}"),
        None => base,
    };
    let f = &overview.figures;
    let body = html! {
        h2 { "Your referral link" }
        p { code id="link" { (with_sub(link.unwrap_or_else(|| format!("?{parameter}")))) } }
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
        h2 { "Rewards" }
        table id="rewards" {
            thead { tr { th { "Status" } th { "Total" } } }
            tbody {
                @for (status, totals) in &overview.rewards {
                    tr { td { (status) } td class="amount" { @if totals.is_empty() { "—" } @else { (totals) } } }
                }
            }
        }
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
