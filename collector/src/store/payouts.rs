//! Paying partners: each partner's payout details (how it wants to be
//! paid: PayPal, Wise or a bank transfer, with what the merchant's payout
//! provider needs, and tax details), and payout batches.
//!
//! A batch takes the approved rewards of the partners the merchant picks
//! that no batch holds yet (per partner and currency, only a positive
//! total: a clawback larger than what is owed waits). It keeps each line
//! as it was made: the amount, and where the partner asked to be paid
//! then, so the files the merchant uploads (PayPal Payouts, Wise batch
//! payments) and what the partner sees never change behind its back. Its
//! rewards are locked: they change only when the batch is marked paid
//! (they become paid, webhooks as for any reward, and each partner gets
//! one email) or cancelled (they are approved and in no batch again). A
//! refund of a batched reward is a clawback, as for a paid one.

use super::db::{params, Db, OptionalExtension, Row};
use super::{mail, money, Key, Refusal};
use crate::export::safe;
use anyhow::Result;

/// What a partner gives to be paid; "" when not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// How it is paid: `paypal`, `wise` or `bank` ("" when it did not say).
    pub method: String,
    pub paypal_email: String,
    pub wise_email: String,
    /// The name on the account (Wise's `name`).
    pub account_name: String,
    /// Bank details as the merchant's process needs them (IBAN, SWIFT…).
    pub bank_details: String,
    /// Tax details the program requires (tax id, VAT number, country…).
    pub tax_details: String,
}

impl Details {
    /// Where a payout goes: (method, recipient) — the PayPal or Wise email,
    /// or the bank details; None when the partner gave no way.
    pub fn destination(&self) -> Option<(&'static str, &str)> {
        match self.method.as_str() {
            "paypal" => Some(("paypal", self.paypal_email.as_str())),
            "wise" => Some(("wise", self.wise_email.as_str())),
            "bank" => Some(("bank", self.bank_details.as_str())),
            _ => None,
        }
    }
}

/// Most characters of a name or email field, and of a free-text one.
pub const FIELD_CHARS: usize = 200;
pub const TEXT_CHARS: usize = 1000;

pub fn details(db: &Db, key_id: i64, partner_key: &str) -> Result<Details> {
    Ok(db
        .query_row(
            "SELECT method, paypal_email, wise_email, account_name, bank_details, tax_details FROM payout_details
             WHERE key_id = ?1 AND partner_key = ?2",
            params![key_id, partner_key],
            |r| {
                Ok(Details {
                    method: r.get(0)?,
                    paypal_email: r.get(1)?,
                    wise_email: r.get(2)?,
                    account_name: r.get(3)?,
                    bank_details: r.get(4)?,
                    tax_details: r.get(5)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Checks and stores a partner's payout details. The method must have
/// what it needs (PayPal: its email; Wise: its email; bank: the details);
/// left empty, it is the first of them given.
pub fn set_details(db: &Db, key_id: i64, partner_key: &str, details: &Details, now: i64) -> Result<Details> {
    for (field, value) in [
        ("paypal_email", &details.paypal_email),
        ("wise_email", &details.wise_email),
    ] {
        if !value.is_empty() && (value.chars().count() > FIELD_CHARS || !crate::http::decode::is_email(value)) {
            return Err(Refusal::invalid(field, format!("{value:?} is not an email address")).into());
        }
    }
    for (field, value, max) in [
        ("account_name", &details.account_name, FIELD_CHARS),
        ("bank_details", &details.bank_details, TEXT_CHARS),
        ("tax_details", &details.tax_details, TEXT_CHARS),
    ] {
        if value.chars().count() > max {
            return Err(Refusal::invalid(field, format!("at most {max} characters")).into());
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(Refusal::invalid(field, "control characters are not allowed").into());
        }
    }
    let mut details = details.clone();
    if details.method.is_empty() {
        details.method = [
            ("paypal", &details.paypal_email),
            ("wise", &details.wise_email),
            ("bank", &details.bank_details),
        ]
        .iter()
        .find(|(_, v)| !v.is_empty())
        .map(|(m, _)| m.to_string())
        .unwrap_or_default();
    }
    let needed = match details.method.as_str() {
        "" => None,
        "paypal" => Some(("paypal_email", details.paypal_email.is_empty())),
        "wise" => Some(("wise_email", details.wise_email.is_empty())),
        "bank" => Some(("bank_details", details.bank_details.is_empty())),
        other => return Err(Refusal::invalid("method", format!("{other:?} is not paypal, wise or bank")).into()),
    };
    if let Some((field, true)) = needed {
        return Err(Refusal::invalid(field, format!("required to be paid by {}", details.method)).into());
    }
    db.execute(
        "INSERT INTO payout_details (key_id, partner_key, method, paypal_email, wise_email, account_name,
                                     bank_details, tax_details, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (key_id, partner_key) DO UPDATE SET method = ?3, paypal_email = ?4, wise_email = ?5,
             account_name = ?6, bank_details = ?7, tax_details = ?8, updated_at = ?9",
        params![
            key_id,
            partner_key,
            details.method,
            details.paypal_email,
            details.wise_email,
            details.account_name,
            details.bank_details,
            details.tax_details,
            now
        ],
    )?;
    Ok(details)
}

/// What a partner is owed (or has new) per currency, for the payouts page.
#[derive(Debug, Clone)]
pub struct Owed {
    pub partner_key: String,
    pub name: String,
    pub email: String,
    /// (currency, sum) of rewards with the status asked for, in no batch.
    pub sums: Vec<(String, i64)>,
    pub count: i64,
    pub details: Details,
}

/// The partners with rewards in `status` (`new` or `approved`) that no
/// batch holds, and how much, per currency.
pub fn owed(db: &Db, key_id: i64, status: &str) -> Result<Vec<Owed>> {
    let mut stmt = db.prepare(
        "SELECT r.partner_key, coalesce(p.first_name, ''), coalesce(p.last_name, ''), coalesce(p.email, ''),
                r.currency, sum(r.amount), count(*)
         FROM rewards r LEFT JOIN partners p ON p.key_id = r.key_id AND p.partner_key = r.partner_key
         WHERE r.key_id = ?1 AND r.status = ?2 AND r.payout_id IS NULL
         GROUP BY r.partner_key, p.first_name, p.last_name, p.email, r.currency
         ORDER BY r.partner_key, r.currency",
    )?;
    let rows = stmt.query_map(params![key_id, status], |r| {
        Ok((
            r.get::<_, String>(0)?,
            format!("{} {}", r.get::<_, String>(1)?, r.get::<_, String>(2)?)
                .trim()
                .to_owned(),
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    let mut out: Vec<Owed> = Vec::new();
    for row in rows {
        let (partner_key, name, email, currency, sum, count) = row?;
        match out.last_mut() {
            Some(last) if last.partner_key == partner_key => {
                last.sums.push((currency, sum));
                last.count += count;
            }
            _ => out.push(Owed {
                details: details(db, key_id, &partner_key)?,
                partner_key,
                name,
                email,
                sums: vec![(currency, sum)],
                count,
            }),
        }
    }
    Ok(out)
}

/// Rewards one bulk approval approves at most (one transaction, holding
/// the write lock); the rest stay new for the next.
pub const APPROVE_AT_ONCE: usize = 1000;

/// Approves the new rewards of `partners` (all of them when empty) that
/// are in no batch, `APPROVE_AT_ONCE` at most: the number approved.
pub fn approve_new(db: &Db, key_id: i64, partners: &[String], now: i64) -> Result<usize> {
    let mut stmt = db.prepare(
        "SELECT id, partner_key FROM rewards WHERE key_id = ?1 AND status = 'new' AND payout_id IS NULL ORDER BY id",
    )?;
    let ids: Vec<(i64, String)> = stmt
        .query_map([key_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    let mut approved = 0;
    for (id, partner) in ids {
        if approved == APPROVE_AT_ONCE {
            break;
        }
        if partners.is_empty() || partners.contains(&partner) {
            money::set_reward_status(db, key_id, &format!("rwd_{id}"), "approved", now)?;
            approved += 1;
        }
    }
    Ok(approved)
}

/// A batch's line: one partner, one currency, as the batch was made.
#[derive(Debug, Clone)]
pub struct Line {
    pub partner_key: String,
    pub name: String,
    pub currency: String,
    pub amount: i64,
    /// `paypal`, `wise`, `bank`, or "" (no way given: paid by hand).
    pub method: String,
    /// The PayPal or Wise email; for `bank`, the bank details.
    pub recipient: String,
}

/// A payout batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `po_<n>`.
    pub key: String,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    /// A cancelled batch pays nothing: its rewards were freed.
    pub cancelled_at: Option<i64>,
    pub lines: Vec<Line>,
}

impl Batch {
    /// The currencies its PayPal lines are in (one PayPal file each).
    pub fn paypal_currencies(&self) -> Vec<&str> {
        let mut currencies: Vec<&str> = self
            .lines
            .iter()
            .filter(|l| l.method == "paypal")
            .map(|l| l.currency.as_str())
            .collect();
        currencies.sort_unstable();
        currencies.dedup();
        currencies
    }
}

pub fn batch_id(payout_key: &str) -> Option<i64> {
    payout_key.strip_prefix("po_")?.parse().ok()
}

/// Makes a batch of the approved rewards of `partners` (all owed when
/// empty) that no batch holds, each line kept with where its partner is
/// paid now. Refused when that is nothing.
pub fn create(db: &Db, key_id: i64, partners: &[String], now: i64) -> Result<Batch> {
    let owed = owed(db, key_id, "approved")?;
    let included: Vec<(&Owed, &String, i64)> = owed
        .iter()
        .filter(|o| partners.is_empty() || partners.contains(&o.partner_key))
        .flat_map(|o| {
            o.sums
                .iter()
                .filter(|(_, sum)| *sum > 0)
                .map(move |(currency, sum)| (o, currency, *sum))
        })
        .collect();
    if included.is_empty() {
        return Err(Refusal::conflict("partners", "no approved rewards to pay for these partners").into());
    }
    let id: i64 = db.query_row(
        "INSERT INTO payouts (key_id, created_at) VALUES (?1, ?2) RETURNING id",
        params![key_id, now],
        |r| r.get(0),
    )?;
    for (owed, currency, amount) in included {
        db.execute(
            "UPDATE rewards SET payout_id = ?4 WHERE key_id = ?1 AND partner_key = ?2 AND currency = ?3
               AND status = 'approved' AND payout_id IS NULL",
            params![key_id, owed.partner_key, currency, id],
        )?;
        let (method, recipient) = owed.details.destination().unwrap_or(("", ""));
        let name = match owed.details.account_name.as_str() {
            "" => owed.name.as_str(),
            name => name,
        };
        db.execute(
            "INSERT INTO payout_lines (payout_id, partner_key, currency, amount, method, recipient, name, bank_details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                owed.partner_key,
                currency,
                amount,
                method,
                recipient,
                name,
                owed.details.bank_details
            ],
        )?;
    }
    batch(db, key_id, &format!("po_{id}"))
}

type BatchRow = (i64, i64, Option<i64>, Option<i64>);

fn batch_row(r: &Row) -> anyhow::Result<BatchRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn with_lines(db: &Db, (id, created_at, paid_at, cancelled_at): BatchRow) -> Result<Batch> {
    let mut stmt = db.prepare(
        "SELECT partner_key, name, currency, amount, method, recipient FROM payout_lines
         WHERE payout_id = ?1 ORDER BY partner_key, currency",
    )?;
    let lines = stmt
        .query_map([id], |r| {
            Ok(Line {
                partner_key: r.get(0)?,
                name: r.get(1)?,
                currency: r.get(2)?,
                amount: r.get(3)?,
                method: r.get(4)?,
                recipient: r.get(5)?,
            })
        })?
        .collect::<Result<_>>()?;
    Ok(Batch {
        key: format!("po_{id}"),
        created_at,
        paid_at,
        cancelled_at,
        lines,
    })
}

pub fn batch(db: &Db, key_id: i64, payout_key: &str) -> Result<Batch> {
    let found = db
        .query_row(
            "SELECT id, created_at, paid_at, cancelled_at FROM payouts WHERE key_id = ?1 AND id = ?2",
            params![key_id, batch_id(payout_key)],
            batch_row,
        )
        .optional()?;
    match found {
        Some(row) => with_lines(db, row),
        None => Err(Refusal::not_found("payout", format!("no payout batch {payout_key:?}")).into()),
    }
}

/// The key's newest batches.
pub fn batches(db: &Db, key_id: i64, limit: u32) -> Result<Vec<Batch>> {
    let mut stmt = db.prepare(
        "SELECT id, created_at, paid_at, cancelled_at FROM payouts WHERE key_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows: Vec<_> = stmt
        .query_map(params![key_id, limit], batch_row)?
        .collect::<Result<_>>()?;
    rows.into_iter().map(|row| with_lines(db, row)).collect()
}

/// Marks batch `payout_key` paid: its rewards become paid, and each
/// partner is told once. Marking it again changes nothing.
pub fn mark_paid(db: &Db, key: &Key, payout_key: &str, now: i64) -> Result<Batch> {
    let found = batch(db, key.id, payout_key)?;
    if found.paid_at.is_some() {
        return Ok(found);
    }
    if found.cancelled_at.is_some() {
        return Err(Refusal::conflict("payout", format!("{payout_key} was cancelled")).into());
    }
    let id = batch_id(payout_key).unwrap_or_default();
    let mut stmt = db.prepare("SELECT id FROM rewards WHERE payout_id = ?1 AND status = 'approved' ORDER BY id")?;
    let rewards: Vec<i64> = stmt.query_map([id], |r| r.get(0))?.collect::<Result<_>>()?;
    for reward in rewards {
        money::pay_batched(db, key.id, reward, now)?;
    }
    db.execute("UPDATE payouts SET paid_at = ?2 WHERE id = ?1", params![id, now])?;
    let mut partners: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for line in &found.lines {
        match partners.last_mut() {
            Some((partner, sums)) if *partner == line.partner_key => sums.push((line.currency.clone(), line.amount)),
            _ => partners.push((line.partner_key.clone(), vec![(line.currency.clone(), line.amount)])),
        }
    }
    for (partner, sums) in partners {
        mail::payout_paid(db, key, &partner, &money::amounts_text(&sums), payout_key, now)?;
    }
    batch(db, key.id, payout_key)
}

/// Cancels batch `payout_key`, not paid yet: its rewards are approved and
/// in no batch again (those refunded meanwhile are declined, with their
/// clawbacks); the batch stays listed, cancelled, with no files.
pub fn cancel(db: &Db, key_id: i64, payout_key: &str, now: i64) -> Result<()> {
    let found = batch(db, key_id, payout_key)?;
    if found.paid_at.is_some() {
        return Err(Refusal::conflict("payout", format!("{payout_key} is paid")).into());
    }
    let id = batch_id(payout_key).unwrap_or_default();
    // A reward refunded while the batch held it was to be paid, then
    // clawed back; now it will not be paid: both are declined (unless the
    // clawback is already being paid or was).
    let settled: Vec<(i64, i64)> = db.query_all(
        "SELECT r.id, c.id FROM rewards r JOIN rewards c ON c.reverses = r.id
         WHERE r.payout_id = ?1 AND c.status IN ('new', 'approved') AND c.payout_id IS NULL",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    db.execute("UPDATE rewards SET payout_id = NULL WHERE payout_id = ?1", [id])?;
    for (reward, clawback) in settled {
        for declined in [reward, clawback] {
            money::set_reward_status(db, key_id, &format!("rwd_{declined}"), "declined", now)?;
        }
    }
    db.execute(
        "UPDATE payouts SET cancelled_at = coalesce(cancelled_at, ?2) WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// A partner's view of a batch: (payout key, created, paid, totals in words).
pub type PartnerPayout = (String, i64, Option<i64>, String);

/// A partner's batches, newest first.
pub fn of_partner(db: &Db, key_id: i64, partner_key: &str) -> Result<Vec<PartnerPayout>> {
    let mut stmt = db.prepare(
        "SELECT po.id, po.created_at, po.paid_at, l.currency, l.amount
         FROM payout_lines l JOIN payouts po ON po.id = l.payout_id
         WHERE l.partner_key = ?2 AND po.key_id = ?1 AND po.cancelled_at IS NULL ORDER BY po.id DESC, l.currency",
    )?;
    let rows: Vec<(i64, i64, Option<i64>, String, i64)> = stmt
        .query_map(params![key_id, partner_key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_>>()?;
    let mut out: Vec<PartnerPayout> = Vec::new();
    let mut sums: Vec<(String, i64)> = Vec::new();
    for (i, (id, created, paid, currency, sum)) in rows.iter().enumerate() {
        sums.push((currency.clone(), *sum));
        // The batch's last currency: its line is complete.
        if rows.get(i + 1).is_none_or(|next| next.0 != *id) {
            out.push((format!("po_{id}"), *created, *paid, money::amounts_text(&sums)));
            sums.clear();
        }
    }
    Ok(out)
}

// Every text cell of a payout file goes through `export::safe`: a partner
// named `=HYPERLINK(…)` must not become a formula in the merchant's
// spreadsheet.

/// The batch's PayPal Payouts file for `currency` (PayPal takes one
/// currency per file): no header; recipient email, amount, currency,
/// customer id (the partner key, when PayPal's 30 characters without
/// spaces allow), note to the recipient, wallet. Only the lines of
/// partners paid by PayPal.
pub fn paypal_csv(batch: &Batch, currency: &str, program: &str) -> Result<String> {
    let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for line in batch
        .lines
        .iter()
        .filter(|l| l.currency == currency && l.method == "paypal")
    {
        let id = match line.partner_key.len() <= 30 && !line.partner_key.contains(char::is_whitespace) {
            true => line.partner_key.as_str(),
            false => "",
        };
        out.write_record([
            safe(&line.recipient),
            money::decimal(line.amount, &line.currency),
            line.currency.clone(),
            safe(id),
            safe(&format!("{program} partner payout {}", batch.key)),
            "PAYPAL".into(),
        ])?;
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

/// The batch's Wise batch payment file ("send by email" template): the
/// lines of partners paid by Wise, each the exact amount in its currency.
pub fn wise_csv(batch: &Batch) -> Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "name",
        "recipientEmail",
        "paymentReference",
        "receiverType",
        "amountCurrency",
        "amount",
        "sourceCurrency",
        "targetCurrency",
    ])?;
    for line in batch.lines.iter().filter(|l| l.method == "wise") {
        out.write_record([
            safe(&line.name),
            safe(&line.recipient),
            batch.key.clone(),
            "PERSON".into(),
            "target".into(),
            money::decimal(line.amount, &line.currency),
            line.currency.clone(),
            line.currency.clone(),
        ])?;
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

/// The batch's lines that neither file pays (a bank transfer, or no way
/// given): for the merchant to pay by hand.
pub fn by_hand(batch: &Batch) -> Vec<&Line> {
    batch
        .lines
        .iter()
        .filter(|l| l.method != "paypal" && l.method != "wise")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(partner: &str, currency: &str, amount: i64, method: &str, recipient: &str) -> Line {
        Line {
            partner_key: partner.into(),
            name: "Ann Lee".into(),
            currency: currency.into(),
            amount,
            method: method.into(),
            recipient: recipient.into(),
        }
    }

    #[test]
    fn payout_files_pay_each_line_once_in_its_currency_s_own_decimals() {
        let batch = Batch {
            key: "po_7".into(),
            created_at: 0,
            paid_at: None,
            cancelled_at: None,
            lines: vec![
                line("ann", "JPY", 4900, "paypal", "ann@pay.example"),
                line("ann", "USD", 123_456, "paypal", "ann@pay.example"),
                line("bob", "USD", 500, "bank", "IBAN DE89"),
                line("cid", "USD", 700, "wise", "cid@wise.example"),
                Line {
                    name: "=HYPERLINK(\"http://evil.example\")".into(),
                    ..line("eve", "EUR", 100, "wise", "eve@wise.example")
                },
                line("fay", "KWD", 1234, "", ""),
            ],
        };
        assert_eq!(batch.paypal_currencies(), ["JPY", "USD"]);
        assert_eq!(
            paypal_csv(&batch, "USD", "Shop, Inc.").unwrap(),
            "ann@pay.example,1234.56,USD,ann,\"Shop, Inc. partner payout po_7\",PAYPAL\n"
        );
        assert_eq!(
            paypal_csv(&batch, "JPY", "Shop").unwrap(),
            "ann@pay.example,4900,JPY,ann,Shop partner payout po_7,PAYPAL\n"
        );
        assert_eq!(
            wise_csv(&batch).unwrap(),
            "name,recipientEmail,paymentReference,receiverType,amountCurrency,amount,sourceCurrency,targetCurrency\n\
             Ann Lee,cid@wise.example,po_7,PERSON,target,7.00,USD,USD\n\
             \"'=HYPERLINK(\"\"http://evil.example\"\")\",eve@wise.example,po_7,PERSON,target,1.00,EUR,EUR\n"
        );
        let by_hand: Vec<&str> = by_hand(&batch).iter().map(|l| l.partner_key.as_str()).collect();
        assert_eq!(by_hand, ["bob", "fay"]);
    }
}
