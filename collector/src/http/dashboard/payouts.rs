//! The dashboard's Payouts page: new rewards by partner (approve the
//! checked partners' in bulk), approved rewards by partner (make a payout
//! batch of the checked partners'), and the batches: each partner's line
//! and where it is paid, as made; the PayPal Payouts files (one per
//! currency) and the Wise batch file to upload, the lines neither pays (to
//! pay by hand from the bank details), "Mark paid" and "Cancel".

use super::{after_action, blocking, forged, form_fields, html_reply, page, write};
use crate::app::App;
use crate::http::reply::{self, Reply};
use crate::store::clock::date;
use crate::store::money::amounts_text;
use crate::store::payouts::{self, Batch, Owed};
use crate::store::program;
use crate::store::sessions::Session;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_DISPOSITION};
use hyper::{Request, StatusCode};
use maud::{html, Markup};
use std::collections::HashMap;

/// Batches listed.
const SHOWN: u32 = 20;

/// How a partner is paid, in words: (method, recipient) as `Details::destination` gives.
fn paid_by(destination: Option<(&str, &str)>) -> String {
    match destination {
        Some(("paypal", to)) => format!("PayPal {to}"),
        Some(("wise", to)) => format!("Wise {to}"),
        Some((_, bank)) => format!("bank transfer (by hand): {bank}"),
        None => "no payout details (by hand)".into(),
    }
}

fn owed_table(id: &str, csrf: &str, action: &str, button: &str, rows: &[Owed]) -> Markup {
    html! {
        form method="post" action="/dashboard/payouts" id=(id) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="action" value=(action);
            table {
                thead { tr { th { "" } th { "Partner" } th { "Rewards" } th { "Total" } th { "Payout details" } } }
                tbody {
                    @for o in rows {
                        tr {
                            td { input type="checkbox" name="partner" value=(o.partner_key) checked; }
                            td { (o.name) " " span class="note" { (o.email) " · " (o.partner_key) } }
                            td { (o.count) }
                            td class="amount" { (amounts_text(&o.sums)) }
                            td { (paid_by(o.details.destination())) @if !o.details.tax_details.is_empty() { br; span class="note" { "tax: " (o.details.tax_details) } } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p class="note" { "None." } } @else { p { button type="submit" { (button) } } }
        }
    }
}

pub async fn show(app: &App, session: Session) -> anyhow::Result<Reply> {
    let (store, key_id) = (app.store.clone(), session.key.id);
    let (new, approved, batches) = blocking(move || {
        store.read(|db| {
            Ok((
                payouts::owed(db, key_id, "new")?,
                payouts::owed(db, key_id, "approved")?,
                payouts::batches(db, key_id, SHOWN)?,
            ))
        })
    })
    .await?;
    let csrf = session.csrf.clone();
    let batch_section = |b: &Batch| {
        let by_hand = payouts::by_hand(b);
        let wise = b.lines.iter().any(|l| l.method == "wise");
        html! {
            section class="endpoint" id=(b.key) {
                h3 { (b.key) " · made " (date(b.created_at)) " · "
                    span class="status" {
                        @if let Some(paid) = b.paid_at { "paid " (date(paid)) }
                        @else if let Some(cancelled) = b.cancelled_at { "cancelled " (date(cancelled)) }
                        @else { "not paid yet" }
                    } }
                table {
                    thead { tr { th { "Partner" } th { "Amount" } th { "Pay by" } } }
                    tbody {
                        @for l in &b.lines {
                            tr { td { (l.name) " " span class="note" { (l.partner_key) } } td class="amount" { (crate::store::money::amount_text(l.amount, &l.currency)) } td { (paid_by(Some((l.method.as_str(), l.recipient.as_str())).filter(|(m, _)| !m.is_empty()))) } }
                        }
                    }
                }
                @if b.cancelled_at.is_none() { p {
                    "Files: "
                    @for c in b.paypal_currencies() { a href={ "/dashboard/payouts/" (b.key) "-paypal-" (c) ".csv" } { "PayPal Payouts (" (c) ")" } " · " }
                    @if wise { a href={ "/dashboard/payouts/" (b.key) "-wise.csv" } { "Wise batch" } }
                } }
                @if !by_hand.is_empty() && b.cancelled_at.is_none() {
                    div class="flag" {
                        "Neither file pays these; pay them by hand:"
                        ul { @for l in &by_hand { li { (l.name) " (" (l.partner_key) "): " (crate::store::money::amount_text(l.amount, &l.currency)) " · "
                            @if l.recipient.is_empty() { "no payout details" } @else { (l.recipient) } } } }
                    }
                }
                @if b.paid_at.is_none() && b.cancelled_at.is_none() {
                    p class="note" { "Its rewards are locked until the batch is marked paid or cancelled; a refund meanwhile is clawed back from the next." }
                    @for (action, label) in [("paid", "Mark paid"), ("cancel", "Cancel the batch")] {
                        form class="inline" method="post" action="/dashboard/payouts" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="action" value=(action);
                            input type="hidden" name="payout" value=(b.key);
                            button type="submit" id={ (action) "-" (b.key) } { (label) }
                        }
                        " "
                    }
                }
            }
        }
    };
    let body = html! {
        h2 { "New rewards" }
        p class="note" { "Approve the checked partners' new rewards." }
        (owed_table("approve-form", &session.csrf, "approve", "Approve rewards", &new))
        h2 { "Approved, to pay" }
        p class="note" { "Make a payout batch of the checked partners' approved rewards (a positive total per currency), then upload its files to PayPal or Wise and mark it paid." }
        (owed_table("batch-form", &session.csrf, "batch", "Make a payout batch", &approved))
        h2 { "Payout batches" }
        @for b in &batches { (batch_section(b)) }
        @if batches.is_empty() { p class="note" { "No batch yet." } }
    };
    Ok(html_reply(StatusCode::OK, page("Payouts", Some(&session), body)))
}

/// A form's action: approve, batch or paid.
pub async fn act(app: &App, req: Request<Incoming>, session: Session) -> anyhow::Result<Reply> {
    let pairs = form_fields(app, req, 256 * 1024).await;
    let partners: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "partner")
        .map(|(_, v)| v.clone())
        .collect();
    let fields: HashMap<String, String> = pairs.into_iter().collect();
    if let Some(refused) = forged(&fields, &session) {
        return Ok(refused);
    }
    let (key, payout) = (session.key.clone(), fields.get("payout").cloned().unwrap_or_default());
    let done: anyhow::Result<()> = match fields.get("action").map(String::as_str) {
        Some("approve") | Some("batch") if partners.is_empty() => Err(anyhow::anyhow!("partner: none checked")),
        Some("approve") => {
            write(app, move |tx, now| {
                payouts::approve_new(tx, key.id, &partners, now).map(drop)
            })
            .await
        }
        Some("batch") => {
            write(app, move |tx, now| {
                payouts::create(tx, key.id, &partners, now).map(drop)
            })
            .await
        }
        Some("paid") => write(app, move |tx, now| payouts::mark_paid(tx, &key, &payout, now).map(drop)).await,
        Some("cancel") => write(app, move |tx, now| payouts::cancel(tx, key.id, &payout, now)).await,
        _ => Err(anyhow::anyhow!("no such action")),
    };
    Ok(after_action(
        done,
        &session,
        StatusCode::CONFLICT,
        "/dashboard/payouts",
        "Back to payouts",
    ))
}

/// A batch's file: `po_<n>-paypal-<currency>.csv` or `po_<n>-wise.csv`.
pub async fn file(app: &App, session: Session, name: String) -> anyhow::Result<Reply> {
    let not_found = || {
        html_reply(
            StatusCode::NOT_FOUND,
            page("Not found", Some(&session), html! { p { "No such payout file." } }),
        )
    };
    let Some((payout, kind)) = name.strip_suffix(".csv").and_then(|n| n.split_once('-')) else {
        return Ok(not_found());
    };
    let (store, key, payout_key) = (app.store.clone(), session.key.clone(), payout.to_owned());
    let found = blocking(move || {
        store.read(|db| {
            let batch = payouts::batch(db, key.id, &payout_key)?;
            Ok((batch, program::get(db, &key)?.name))
        })
    })
    .await;
    let Some((batch, program)) = found.ok().filter(|(b, _)| b.cancelled_at.is_none()) else {
        return Ok(not_found());
    };
    let text = match kind.strip_prefix("paypal-") {
        Some(currency) if batch.paypal_currencies().contains(&currency) => {
            payouts::paypal_csv(&batch, currency, &program)?
        }
        Some(_) => return Ok(not_found()),
        None if kind == "wise" && batch.lines.iter().any(|l| l.method == "wise") => payouts::wise_csv(&batch)?,
        None => return Ok(not_found()),
    };
    let mut reply = reply::bytes("text/csv; charset=utf-8", "no-store", text);
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        reply.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(reply)
}
