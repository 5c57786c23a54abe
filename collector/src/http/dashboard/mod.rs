//! The merchant dashboard under `/dashboard`: sign in with a secret key, then
//! the customers (the partner → customer line items, searchable), partners
//! with their figures, transactions, rewards (approve, decline, mark paid),
//! each paged with a CSV export, outgoing webhooks (`webhooks`), and the
//! installation check.
//!
//! Safe by construction: pages are rendered with maud, which escapes every
//! value (customer names and emails are the visitor's input); the CSP allows
//! no script at all and styles only from `/dashboard/style.css`; the session
//! cookie is `HttpOnly`, `SameSite=Strict`, `Secure` over https, and every
//! form that changes something carries the session's CSRF token.

mod payouts;
mod program;
mod webhooks;

use super::reply::{self, Reply};
use crate::app::{App, Client};
use crate::export::Table;
use crate::store::clock::date;
use crate::store::money::{self, RewardFilter};
use crate::store::page::{Cursor, List};
use crate::store::sessions::{self, Session};
use crate::store::{credit, daily, diagnostics, merchant, portal};
use crate::store::{keys, Mode};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_DISPOSITION, COOKIE, HOST, LOCATION, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use maud::{html, Markup, DOCTYPE};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

const COOKIE_NAME: &str = "growsumo_session";
const PAGE: u32 = 50;
const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7fb}
header{display:flex;flex-wrap:wrap;gap:.4rem 1.5rem;align-items:center;padding:.8rem 2rem;background:#1d2433;color:#fff}
header a{color:#cfd8ff;text-decoration:none}main{padding:1.5rem 2rem}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #e3e6ef}
.mode{padding:.15rem .6rem;border-radius:1rem;font-weight:600}.test{background:#ffd666;color:#3b2f00}.live{background:#52c41a;color:#fff}
pre{background:#fff;padding:1rem;overflow:auto;border:1px solid #e3e6ef}.note{color:#5b6478}
td.amount{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
form.inline{display:inline}button{cursor:pointer}
.flag{background:#fff1f0;border:1px solid #ffa39e;padding:.5rem .8rem}.endpoint{margin-bottom:2rem}
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}";

/// A page of the dashboard or the partner portal: the style sheet, a
/// header (`brand`, then `nav`), the title and the body.
pub(super) fn shell(brand: &str, nav: Markup, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · " (brand) }
                link rel="stylesheet" href="/dashboard/style.css";
            }
            body {
                header { strong { (brand) } (nav) }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub(super) fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    let nav = html! {
                    @if let Some(session) = session {
                        a href="/dashboard/customers" { "Customers" }
                        a href="/dashboard/partners" { "Partners" }
                        a href="/dashboard/transactions" { "Transactions" }
                        a href="/dashboard/rewards" { "Rewards" }
                        a href="/dashboard/review" { "Review" }
                        a href="/dashboard/program" { "Program" }
                        a href="/dashboard/payouts" { "Payouts" }
                        a href="/dashboard/webhooks" { "Webhooks" }
                        a href="/dashboard/installation" { "Installation" }
                        @let live = session.key.mode == Mode::Live;
                        span class={ "mode " (if live { "live" } else { "test" }) } id="mode" {
                            (if live { "LIVE data" } else { "TEST data" })
                        }
                        span class="note" { (session.key.public_key) }
                        @if let Some(other) = &session.other {
                            form class="inline" method="post" action="/dashboard/switch" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button id="switch" type="submit" {
                                    "Switch to " (if other.mode == Mode::Live { "live" } else { "test" }) " data"
                                }
                            }
                        }
                        form class="inline" method="post" action="/dashboard/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button id="sign-out" type="submit" { "Sign out" }
                        }
                    }
    };
    shell("growsumo", nav, title, body)
}

pub(super) fn html_reply(status: StatusCode, markup: Markup) -> Reply {
    let mut reply = reply::bytes("text/html; charset=utf-8", "no-store", markup.into_string());
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    reply
}

pub(super) fn redirect(to: &'static str) -> Reply {
    let mut reply = reply::bytes("text/plain", "no-store", Bytes::new());
    *reply.status_mut() = StatusCode::SEE_OTHER;
    reply.headers_mut().insert(LOCATION, HeaderValue::from_static(to));
    reply
}

fn session_cookie(value: &str, max_age_secs: i64, https: bool) -> HeaderValue {
    cookie(COOKIE_NAME, "/dashboard", value, max_age_secs, https)
}

/// A session cookie `name` for the pages under `path`: `HttpOnly`,
/// `SameSite=Strict`, `Secure` over https.
pub(super) fn cookie(name: &str, path: &str, value: &str, max_age_secs: i64, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
}

fn token(req: &Request<Incoming>) -> Option<String> {
    cookie_value(req, COOKIE_NAME)
}

/// The request's cookie `name`.
pub(super) fn cookie_value(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
        .map(String::from)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

pub(super) async fn form(app: &App, req: Request<Incoming>) -> HashMap<String, String> {
    form_fields(app, req, FORM_BYTES).await.into_iter().collect()
}

/// After a form's action: back to the page `to` when it was done, else a
/// page saying why (answered with `status`) that links back.
pub(super) fn after_action<T>(
    done: anyhow::Result<T>,
    session: &Session,
    status: StatusCode,
    to: &'static str,
    back: &str,
) -> Reply {
    match done {
        Ok(_) => redirect(to),
        Err(e) => html_reply(
            status,
            page(
                "Not changed",
                Some(session),
                html! { p id="error" { (e.to_string()) } p { a href=(to) { (back) } } },
            ),
        ),
    }
}

/// Runs `f` in a write transaction (stamped with the time) off the runtime.
pub(super) async fn write<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&crate::store::db::Db, i64) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let store = app.store.clone();
    blocking(move || store.write_stamped(f)).await
}

/// The largest form body read: room for the longest text fields (2,000
/// characters) in any script, percent-encoded.
pub(super) const FORM_BYTES: usize = 64 * 1024;

/// A form's fields in order, repeated names kept (a list of checkboxes),
/// from a body of at most `limit` bytes (none past it).
pub(super) async fn form_fields(app: &App, req: Request<Incoming>, limit: usize) -> Vec<(String, String)> {
    match super::read_body(req.into_body(), app.client_timeout, limit).await {
        Ok(body) => form_urlencoded::parse(&body).into_owned().collect(),
        Err(_) => Vec::new(),
    }
}

pub async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    if path == "/dashboard/style.css" {
        return reply::bytes("text/css; charset=utf-8", "public, max-age=3600", STYLE);
    }
    let https = req.extensions().get::<Client>().is_some_and(|c| c.https);
    let now = app.store.clock().now_ms();
    let session = match token(&req) {
        Some(token) => {
            let store = app.store.clone();
            blocking(move || store.read(|conn| sessions::find(conn, &token, now)))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let result = match (req.method().clone(), path.as_str(), session) {
        (Method::GET, "/dashboard/sign-in", _) => Ok(sign_in_page(StatusCode::OK, None)),
        (Method::POST, "/dashboard/sign-in", _) => sign_in(app, req, https, now).await,
        (_, _, None) => Ok(redirect("/dashboard/sign-in")),
        (Method::POST, "/dashboard/sign-out", Some(session)) => sign_out(app, req, session, https).await,
        (Method::POST, "/dashboard/switch", Some(session)) => switch(app, req, session).await,
        (Method::GET, "/dashboard" | "/dashboard/" | "/dashboard/customers", Some(session)) => {
            customers(app, &req, session).await
        }
        (Method::GET, "/dashboard/customers.csv", Some(session)) => csv(app, session, Table::Customers).await,
        (Method::GET, "/dashboard/transactions.csv", Some(session)) => csv(app, session, Table::Transactions).await,
        (Method::GET, "/dashboard/rewards.csv", Some(session)) => csv(app, session, Table::Rewards).await,
        (Method::GET, "/dashboard/partners", Some(session)) => partners(app, &req, session).await,
        (Method::POST, "/dashboard/partners/link", Some(session)) => partner_link(app, req, session).await,
        (Method::GET, "/dashboard/transactions", Some(session)) => transactions(app, &req, session).await,
        (Method::GET, "/dashboard/rewards", Some(session)) => rewards(app, &req, session).await,
        (Method::POST, p, Some(session)) if p.starts_with("/dashboard/rewards/") => {
            let reward_key = p.trim_start_matches("/dashboard/rewards/").to_owned();
            set_reward(app, req, session, reward_key).await
        }
        (Method::GET, "/dashboard/installation", Some(session)) => installation(app, &req, session).await,
        (Method::GET, "/dashboard/review", Some(session)) => review(app, &req, session).await,
        (Method::POST, "/dashboard/review", Some(session)) => decide_review(app, req, session).await,
        (Method::GET, "/dashboard/program", Some(session)) => program::show(app, &req, session).await,
        (Method::POST, "/dashboard/program", Some(session)) => program::act(app, req, session).await,
        (Method::GET, "/dashboard/payouts", Some(session)) => payouts::show(app, session).await,
        (Method::POST, "/dashboard/payouts", Some(session)) => payouts::act(app, req, session).await,
        (Method::GET, p, Some(session)) if p.starts_with("/dashboard/payouts/") => {
            let file = p.trim_start_matches("/dashboard/payouts/").to_owned();
            payouts::file(app, session, file).await
        }
        (Method::GET, "/dashboard/webhooks", Some(session)) => webhooks::show(app, session).await,
        (Method::POST, "/dashboard/webhooks", Some(session)) => webhooks::act(app, req, session).await,
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
        tracing::error!(error = %e, "dashboard page failed");
        html_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Something went wrong", None, html! { p { "Try again." } }),
        )
    })
}

fn sign_in_page(status: StatusCode, error: Option<&str>) -> Reply {
    html_reply(
        status,
        page(
            "Sign in",
            None,
            html! {
                @if let Some(error) = error { p id="error" class="note" { (error) } }
                form method="post" action="/dashboard/sign-in" {
                    label { "Secret key " input id="secret-key" type="password" name="secret_key" autocomplete="off" required; }
                    " "
                    button id="sign-in" type="submit" { "Sign in" }
                }
                p class="note" { "Use the secret key (sk_test_… or sk_live_…) shown when the key pair was created." }
            },
        ),
    )
}

async fn sign_in(app: &App, req: Request<Incoming>, https: bool, now: i64) -> anyhow::Result<Reply> {
    // Login CSRF: a foreign page's form must not sign a visitor into the
    // attacker's key. Browsers say where a post comes from: `Sec-Fetch-Site`
    // (also under `Referrer-Policy: no-referrer`, when `Origin` is "null"),
    // else `Origin`. Clients that send neither are not browsers.
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = header("host");
    let foreign = match (header("sec-fetch-site"), header("origin")) {
        (Some(site), _) => site != "same-origin" && site != "none",
        // `null` without `Sec-Fetch-Site`: a sandboxed frame or a data: URL
        // in an older browser.
        (None, Some(origin)) => origin == "null" || origin.split_once("://").map(|(_, h)| h) != host,
        (None, None) => false,
    };
    if foreign {
        tracing::warn!(origin = header("origin"), "dashboard sign-in posted from another site");
        return Ok(html_reply(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                None,
                html! { p { "Sign in from the dashboard's own page." } },
            ),
        ));
    }
    let fields = form(app, req).await;
    let secret = fields.get("secret_key").cloned().unwrap_or_default();
    let store = app.store.clone();
    let token = blocking(move || {
        let Some(key) = store.read(|conn| keys::by_secret(conn, &secret))? else {
            return Ok(None);
        };
        Ok(Some(store.write(|tx| sessions::create(tx, key.id, now))?))
    })
    .await?;
    let Some(token) = token else {
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not an active secret key."),
        ));
    };
    let mut reply = redirect("/dashboard/customers");
    let max_age = sessions::LIFETIME_MS / 1000;
    reply
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&token, max_age, https));
    Ok(reply)
}

async fn sign_out(app: &App, req: Request<Incoming>, session: Session, https: bool) -> anyhow::Result<Reply> {
    let cookie = token(&req).unwrap_or_default();
    let fields = form(app, req).await;
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let store = app.store.clone();
    blocking(move || store.write(|tx| sessions::delete(tx, &cookie))).await?;
    let mut reply = redirect("/dashboard/sign-in");
    reply.headers_mut().insert(SET_COOKIE, session_cookie("", 0, https));
    Ok(reply)
}

/// The 403 page for a form without this session's CSRF token (a forged
/// cross-site post), or `None` when the token matches.
pub(super) fn forged(fields: &HashMap<String, String>, session: &Session) -> Option<Reply> {
    let given = fields.get("csrf").map(String::as_bytes).unwrap_or_default();
    if bool::from(given.ct_eq(session.csrf.as_bytes())) {
        return None;
    }
    Some(html_reply(
        StatusCode::FORBIDDEN,
        page(
            "Refused",
            Some(session),
            html! { p { "The form was not this session's." } },
        ),
    ))
}

/// Shows the other key of a live/test pair (see `sessions`).
async fn switch(app: &App, req: Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let cookie = token(&req).unwrap_or_default();
    let fields = form(app, req).await;
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    if let Some(other) = session.other {
        let store = app.store.clone();
        blocking(move || store.write(|tx| sessions::view(tx, &cookie, other.id))).await?;
    }
    Ok(redirect("/dashboard/customers"))
}

/// The page's query parameters; one holding a control character (which no
/// key or search can hold, and PostgreSQL cannot even compare) is left out.
fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(_, value)| !value.chars().any(char::is_control))
        .collect()
}

async fn customers(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let search = query(req).get("q").cloned().unwrap_or_default();
    let cursor = after(req);
    let store = app.store.clone();
    let key_id = session.key.id;
    let q = search.clone();
    let (rows, more) = blocking(move || {
        store.read(|conn| {
            let (items, more) = if q.is_empty() {
                let page = merchant::customers(conn, key_id, None, false, List::from(cursor, PAGE))?;
                (page.items, page.has_more)
            } else {
                (merchant::search_customers(conn, key_id, &q, PAGE)?, false)
            };
            let mut rows = Vec::with_capacity(items.len());
            for c in items {
                let revenue = merchant::revenue(conn, c.id)?;
                rows.push((c, revenue));
            }
            Ok((rows, more))
        })
    })
    .await?;
    let next = rows.last().map(|(c, _)| c.id).filter(|_| more);
    let body = html! {
        form method="get" action="/dashboard/customers" {
            input id="search" type="search" name="q" value=(search) placeholder="email or customer key";
            " " button type="submit" { "Search" }
            " " a id="export" href="/dashboard/customers.csv" { "Export CSV" }
        }
        table id="customers" {
            thead { tr { th { "Partner" } th { "Customer" } th { "Email" } th { "Name" } th { "Signed up" } th { "Source" } th { "Confidence" } th { "Revenue" } } }
            tbody {
                @for (c, revenue) in &rows {
                    tr {
                        td { (c.partner_key.as_deref().unwrap_or("—")) }
                        td { (c.key) }
                        td { (c.email) }
                        td class="name" { (c.name) }
                        td { (date(c.created_at)) }
                        td { (c.source.as_deref().unwrap_or("unattributed"))
                             @if let Some(review) = &c.review { " · " a href="/dashboard/review" { "in review: " (review) } } }
                        td { (c.confidence.as_deref().unwrap_or("—")) }
                        td class="amount" { (revenue) }
                    }
                }
            }
        }
        @if rows.is_empty() { p class="note" { "No customers yet." } }
        @if let Some(next) = next { p { a id="next" href={ "/dashboard/customers?after=" (next) } { "Older customers →" } } }
    };
    Ok(html_reply(StatusCode::OK, page("Customers", Some(&session), body)))
}

async fn csv(app: &App, session: Session, table: Table) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let key_id = session.key.id;
    let csv = blocking(move || {
        let mut out = Vec::new();
        crate::export::write_csv(&store, key_id, table, &mut out)?;
        Ok(out)
    })
    .await?;
    let mut reply = reply::bytes("text/csv; charset=utf-8", "no-store", csv);
    let disposition = format!("attachment; filename=\"{}.csv\"", table.name());
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        reply.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(reply)
}

/// The `after` cursor of a page's query string.
fn after(req: &Request<Incoming>) -> Cursor {
    query(req)
        .get("after")
        .and_then(|a| a.parse::<i64>().ok())
        .map_or(Cursor::First, Cursor::After)
}

/// Days the chart covers.
const CHART_DAYS: i64 = 90;

/// Clicks and signups per day as an inline SVG line chart (no script, no
/// library): a line each, the day axis from `first_day` on, the peak labelled.
pub(super) fn chart(series: &[(i64, i64)], first_day_ms: i64) -> Markup {
    let (width, height, pad) = (900.0, 180.0, 28.0);
    let peak = series.iter().map(|(c, s)| (*c).max(*s)).max().unwrap_or(0).max(1) as f64;
    let step = (width - 2.0 * pad) / (series.len().max(2) - 1) as f64;
    let line = |pick: fn(&(i64, i64)) -> i64| -> String {
        let points: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let x = pad + i as f64 * step;
                let y = height - pad - (pick(day) as f64 / peak) * (height - 2.0 * pad);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        points.join(" ")
    };
    let last_day_ms = first_day_ms + (series.len() as i64 - 1) * crate::store::daily::DAY_MS;
    html! {
        svg id="chart" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label="Clicks and signups per day" xmlns="http://www.w3.org/2000/svg" {
            line x1=(pad) y1=(height - pad) x2=(width - pad) y2=(height - pad) stroke="#c8cdda" {}
            polyline id="clicks-line" points=(line(|d| d.0)) fill="none" stroke="#3867d6" stroke-width="2" {}
            polyline id="signups-line" points=(line(|d| d.1)) fill="none" stroke="#20bf6b" stroke-width="2" {}
            text x=(pad) y="16" font-size="12" fill="#5b6478" { "peak " (peak as i64) " per day · " tspan fill="#3867d6" { "clicks" } " · " tspan fill="#20bf6b" { "signups" } }
            text x=(pad) y=(height - 8.0) font-size="11" fill="#5b6478" { (date(first_day_ms)) }
            text x=(width - pad) y=(height - 8.0) font-size="11" fill="#5b6478" text-anchor="end" { (date(last_day_ms)) }
        }
    }
}

async fn partners(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let (key_id, cursor) = (session.key.id, after(req));
    let focus = query(req).get("partner").cloned().filter(|p| !p.is_empty());
    let now = store.clock().now_ms();
    let partner = focus.clone();
    let series = {
        let store = store.clone();
        blocking(move || store.read(|conn| daily::series(conn, key_id, partner.as_deref(), now, CHART_DAYS))).await?
    };
    let first_day_ms = (now / daily::DAY_MS - CHART_DAYS + 1) * daily::DAY_MS;
    let (rows, more) = blocking(move || {
        store.read(|conn| {
            let page = merchant::partners(conn, key_id, &Default::default(), List::from(cursor, PAGE))?;
            let mut rows = Vec::new();
            for partner in page.items {
                let id: i64 = conn.query_row(
                    "SELECT id FROM partners WHERE key_id = ?1 AND partner_key = ?2",
                    crate::store::db::params![key_id, partner.key],
                    |r| r.get(0),
                )?;
                let figures = money::partner_figures(conn, key_id, &partner.key)?;
                rows.push((id, partner, figures));
            }
            Ok((rows, page.has_more))
        })
    })
    .await?;
    let next = rows.last().map(|(id, ..)| *id).filter(|_| more);
    let body = html! {
        h2 {
            "Clicks and signups, last 90 days: "
            @match &focus { Some(p) => { (p) " · " a href="/dashboard/partners" { "all partners" } } None => { "all partners" } }
        }
        (chart(&series, first_day_ms))
        table id="partners" {
            thead { tr { th { "Partner" } th { "Email" } th { "Clicks" } th { "Signups" } th { "Conversion" } th { "Revenue" } th { "Rewards owed" } th { "Rewards paid" } th { "Referral link" } th { "Portal" } } }
            tbody {
                @for (_, p, f) in &rows {
                    tr {
                        td { a href={ "/dashboard/partners?partner=" (form_urlencoded::byte_serialize(p.key.as_bytes()).collect::<String>()) } { (p.key) } " " span class="note" { (p.first_name) " " (p.last_name) } }
                        td { (p.email) }
                        td { (f.clicks) }
                        td { (f.signups) }
                        td { @if f.clicks > 0 { (format!("{:.1}%", 100.0 * f.signups as f64 / f.clicks as f64)) } @else { "—" } }
                        td class="amount" { (f.revenue) }
                        td class="amount" { (f.owed) }
                        td class="amount" { (f.paid) }
                        @let (parameter, link) = merchant::referral_link(&session.key, &p.key);
                        td { code { (link.unwrap_or_else(|| format!("?{parameter}"))) } }
                        td {
                            form class="inline" method="post" action="/dashboard/partners/link" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                input type="hidden" name="partner" value=(p.key);
                                button type="submit" { "Sign-in link" }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p class="note" { "No partners yet: add them with the API or `collector partners add`." } }
        @if let Some(next) = next { p { a href={ "/dashboard/partners?after=" (next) } { "More partners →" } } }
    };
    Ok(html_reply(StatusCode::OK, page("Partners", Some(&session), body)))
}

async fn transactions(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let (key_id, cursor) = (session.key.id, after(req));
    let page_ =
        blocking(move || store.read(|conn| money::transactions(conn, key_id, None, true, List::from(cursor, PAGE))))
            .await?;
    let next = page_.items.last().map(|t| t.id).filter(|_| page_.has_more);
    let body = html! {
        p { a id="export" href="/dashboard/transactions.csv" { "Export CSV" } }
        table id="transactions" {
            thead { tr { th { "Key" } th { "Customer" } th { "Amount" } th { "Product" } th { "From" } th { "Date" } th { "Refunded" } } }
            tbody {
                @for t in &page_.items {
                    tr {
                        td { (t.key) } td { (t.customer_key) } td class="amount" { (money::amount_text(t.amount, &t.currency)) }
                        td { (t.product_key.as_deref().unwrap_or("")) } td { (t.origin) } td { (date(t.created_at)) }
                        td { (t.reversed_at.map(date).unwrap_or_default()) }
                    }
                }
            }
        }
        @if page_.items.is_empty() { p class="note" { "No transactions yet." } }
        @if let Some(next) = next { p { a href={ "/dashboard/transactions?after=" (next) } { "Older transactions →" } } }
    };
    Ok(html_reply(StatusCode::OK, page("Transactions", Some(&session), body)))
}

async fn rewards(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let (key_id, cursor) = (session.key.id, after(req));
    let filter = RewardFilter::default();
    let page_ =
        blocking(move || store.read(|conn| money::rewards(conn, key_id, &filter, List::from(cursor, PAGE)))).await?;
    let next = page_
        .items
        .last()
        .and_then(|r| money::reward_id(&r.key))
        .filter(|_| page_.has_more);
    let csrf = session.csrf.clone();
    let body = html! {
        p { a id="export" href="/dashboard/rewards.csv" { "Export CSV" } }
        table id="rewards" {
            thead { tr { th { "Reward" } th { "Partner" } th { "Customer" } th { "Offer" } th { "Amount" } th { "Status" } th { "" } } }
            tbody {
                @for r in &page_.items {
                    tr id=(r.key) {
                        td { (r.key) } td { (r.partner_key) } td { (r.customer_key) } td { (r.offer_key) }
                        td class="amount" { (money::amount_text(r.amount, &r.currency)) } td class="status" { (r.status) }
                        td {
                            @if let (Some(payout), "approved") = (&r.payout, r.status.as_str()) {
                                a href={ "/dashboard/payouts#" (payout) } { "in " (payout) }
                            } @else { @for (label, status) in reward_actions(&r.status) {
                                form class="inline" method="post" action={ "/dashboard/rewards/" (r.key) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="status" value=(status);
                                    button type="submit" name="action" value=(status) { (label) }
                                }
                            } }
                        }
                    }
                }
            }
        }
        @if page_.items.is_empty() { p class="note" { "No rewards yet: they come with transactions, under your offers." } }
        @if let Some(next) = next { p { a href={ "/dashboard/rewards?after=" (next) } { "Older rewards →" } } }
    };
    Ok(html_reply(StatusCode::OK, page("Rewards", Some(&session), body)))
}

/// What a reward in `status` can become: (button, new status).
fn reward_actions(status: &str) -> &'static [(&'static str, &'static str)] {
    match status {
        "new" => &[("Approve", "approved"), ("Decline", "declined")],
        "approved" => &[("Mark paid", "paid"), ("Decline", "declined")],
        _ => &[],
    }
}

async fn set_reward(app: &App, req: Request<Incoming>, session: Session, reward_key: String) -> anyhow::Result<Reply> {
    let fields = form(app, req).await;
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let status = fields.get("status").cloned().unwrap_or_default();
    let store = app.store.clone();
    let key_id = session.key.id;
    let changed = blocking(move || {
        store.write_stamped(|tx, now| money::set_reward_status(tx, key_id, &reward_key, &status, now))
    })
    .await;
    Ok(after_action(
        changed,
        &session,
        StatusCode::CONFLICT,
        "/dashboard/rewards",
        "Back to rewards",
    ))
}

/// Customers whose credit waits for the merchant (an unknown partner, a
/// self-referral, a fingerprint's suggestion), with approve and change
/// actions, and the log of every change of credit.
async fn review(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let store = app.store.clone();
    let (key_id, cursor) = (session.key.id, after(req));
    let (waiting, changes) = blocking(move || {
        store.read(|conn| {
            Ok((
                merchant::customers(conn, key_id, None, true, List::from(cursor, PAGE))?,
                credit::changes(conn, key_id, None, 50)?,
            ))
        })
    })
    .await?;
    let next = waiting.items.last().map(|c| c.id).filter(|_| waiting.has_more);
    let csrf = session.csrf.clone();
    let body = html! {
        p class="note" { "These customers earn no reward until you decide. Approving credits the partner shown (a fingerprint's suggestion is only a likelihood); changing sets the partner you name (empty: nobody). Either is logged, and rewards follow." }
        table id="review" {
            thead { tr { th { "Customer" } th { "Email" } th { "Signed up" } th { "Why" } th { "Partner" } th { "" } } }
            tbody {
                @for c in &waiting.items {
                    tr id=(c.key) {
                        td { (c.key) } td { (c.email) } td { (date(c.created_at)) }
                        td class="why" { (c.review.as_deref().unwrap_or("")) }
                        td { (c.partner_key.as_deref().or(c.suggested_partner_key.as_deref()).unwrap_or("—"))
                             @if c.suggested_partner_key.is_some() { " (suggested)" } }
                        td {
                            form class="inline" method="post" action="/dashboard/review" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="customer_key" value=(c.key);
                                button type="submit" name="action" value="approve" { "Approve" }
                            }
                            form class="inline" method="post" action="/dashboard/review" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="customer_key" value=(c.key);
                                input type="text" name="partner_key" placeholder="partner key" size="12";
                                input type="text" name="reason" placeholder="why" size="16";
                                button type="submit" name="action" value="change" { "Change partner" }
                            }
                        }
                    }
                }
            }
        }
        @if waiting.items.is_empty() { p class="note" id="nothing" { "Nothing waits for review." } }
        @if let Some(next) = next { p { a href={ "/dashboard/review?after=" (next) } { "More →" } } }
        h2 { "Change a customer's partner" }
        form method="post" action="/dashboard/review" {
            input type="hidden" name="csrf" value=(csrf);
            input id="change-customer" type="text" name="customer_key" placeholder="customer key" required;
            " " input id="change-partner" type="text" name="partner_key" placeholder="partner key (empty: nobody)";
            " " input id="change-reason" type="text" name="reason" placeholder="why";
            " " button id="change" type="submit" name="action" value="change" { "Change partner" }
        }
        h2 { "Changes of credit" }
        table id="changes" {
            thead { tr { th { "When" } th { "Customer" } th { "From" } th { "To" } th { "By" } th { "Why" } } }
            tbody {
                @for change in &changes {
                    tr {
                        td { (date(change.at)) } td { (change.customer_key) }
                        td { (change.from_partner_key.as_deref().unwrap_or("—")) }
                        td { (change.to_partner_key.as_deref().unwrap_or("—")) }
                        td { (change.actor) } td { (change.reason) }
                    }
                }
            }
        }
    };
    Ok(html_reply(StatusCode::OK, page("Review", Some(&session), body)))
}

/// Approves a customer's review, or changes its partner (the form's
/// `action`), as the signed-in merchant.
async fn decide_review(app: &App, req: Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let fields = form(app, req).await;
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let field = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (customer_key, partner, action) = (field("customer_key"), field("partner_key"), field("action"));
    let reason = Some(field("reason"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "changed on the dashboard".into());
    let store = app.store.clone();
    let key = session.key.clone();
    let done = blocking(move || {
        store.write_stamped(|tx, now| match (action.as_str(), now) {
            ("approve", now) => credit::approve(tx, &key, &customer_key, "dashboard", now).map(drop),
            ("change", now) => {
                let current = merchant::find_customer(tx, key.id, &merchant::CustomerRef::Key(customer_key.clone()))?;
                let to = Some(partner.as_str()).filter(|p| !p.is_empty());
                // The same partner again changes nothing (as in the API).
                if current.partner_key.as_deref() == to && current.review.is_none() {
                    return Ok(());
                }
                credit::reattribute(tx, &key, &current, to, "dashboard", &reason, now).map(drop)
            }
            (other, _) => anyhow::bail!("{other:?} is not an action: approve or change"),
        })
    })
    .await;
    Ok(after_action(
        done,
        &session,
        StatusCode::CONFLICT,
        "/dashboard/review",
        "Back to review",
    ))
}

/// This collector's URL as the request reached it: `https://host`.
pub(super) fn own_url(req: &Request<Incoming>) -> String {
    let https = req.extensions().get::<Client>().is_some_and(|c| c.https);
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("collector.example");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// A one-time sign-in link to the partner portal, for the merchant to pass
/// on to the partner (see `portal`).
async fn partner_link(app: &App, req: Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let base = own_url(&req);
    let fields = form(app, req).await;
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let partner = fields.get("partner").cloned().unwrap_or_default();
    let (store, key_id, shown) = (app.store.clone(), session.key.id, partner.clone());
    let made = blocking(move || store.write_stamped(|tx, now| portal::sign_in_link(tx, key_id, &partner, now))).await;
    let body = match made {
        Ok(token) => html! {
            p { "Send this link to " strong { (shown) } ". It signs them in to the partner portal once, within 24 hours." }
            p { code id="portal-link" { (base) "/partners/sign-in/" (token) } }
        },
        Err(e) => html! { p { (e.to_string()) } },
    };
    Ok(html_reply(
        StatusCode::OK,
        page("Partner sign-in link", Some(&session), body),
    ))
}

async fn installation(app: &App, req: &Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let base = format!("{}/v1/", own_url(req));
    let store = app.store.clone();
    let key_id = session.key.id;
    let (last, problems): (Option<i64>, _) = blocking(move || {
        store.read(|conn| {
            let last = conn.query_row("SELECT max(received_at) FROM events WHERE key_id = ?1", [key_id], |r| {
                r.get(0)
            })?;
            Ok((last, diagnostics::list(conn, key_id)?))
        })
    })
    .await?;
    let embed = format!(
        "<script>\n  (function () {{\n    var gs = document.createElement(\"script\");\n    gs.src = \"{base}\";\n    gs.type = \"text/javascript\";\n    gs.async = \"true\";\n    gs.onload = gs.onreadystatechange = function () {{\n      var rs = this.readyState;\n      if (rs && rs != \"complete\" && rs != \"loaded\") return;\n      try {{\n        growsumo._initialize(\"{}\");\n        if (typeof growsumoInit === \"function\") {{\n          growsumoInit();\n        }}\n      }} catch (e) {{}}\n    }};\n    var s = document.getElementsByTagName(\"script\")[0];\n    s.parentNode.insertBefore(gs, s);\n  }})();\n</script>",
        session.key.public_key
    );
    let body = html! {
        p { "Paste this into every page of your site, before " code { "</head>" } ":" }
        pre id="embed" { (embed) }
        p { "If your pages send a Content-Security-Policy, it must allow the collector and WebAssembly: "
            code { "script-src " (base.trim_end_matches("/v1/")) " 'wasm-unsafe-eval'; connect-src " (base.trim_end_matches("/v1/")) } "." }
        @if !problems.is_empty() {
            h2 { "Problems reported by your pages" }
            ul id="problems" {
                @for problem in &problems {
                    li {
                        "The snippet could not start on " code { (problem.origin) } ": "
                        (diagnostics::explain(&problem.reason).unwrap_or(&problem.reason))
                        " (reported " (problem.count) (if problem.count == 1 { " time" } else { " times" }) ", last on " (date(problem.last_at)) ")."
                    }
                }
            }
        }
        p id="last-event" {
            @match last {
                Some(at) => { "Working: the last event from your site arrived on " (date(at)) "." }
                None => { "No event has arrived yet. Open your site with a partner link (" code { "?ps_partner_key=…" } ") to check." }
            }
        }
    };
    Ok(html_reply(StatusCode::OK, page("Installation", Some(&session), body)))
}
