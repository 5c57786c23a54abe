//! Paying partners: each partner's payout details (what the merchant's
//! payout provider needs: a PayPal or Wise email, an account name, bank
//! details, tax details), and payout batches.
//!
//! A batch takes the approved rewards of the partners the merchant picks
//! that no batch holds yet (per partner and currency, only a positive
//! total: a clawback larger than what is owed waits), is exported as the
//! files PayPal Payouts and Wise batch payments take, and is marked paid
//! in one step: its rewards become paid (webhooks as for any reward) and
//! each partner gets one email.

use super::db::{params, Db, OptionalExtension, Row};
use super::{mail, money, Key, Refusal};
use crate::export::safe;
use anyhow::Result;

/// What a partner gives to be paid; "" when not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub paypal_email: String,
    pub wise_email: String,
    /// The name on the account (Wise's `name`).
    pub account_name: String,
    /// Bank details as the merchant's process needs them (IBAN, SWIFT…).
    pub bank_details: String,
    /// Tax details the program requires (tax id, VAT number, country…).
    pub tax_details: String,
}

/// Most characters of a name or email field, and of a free-text one.
pub const FIELD_CHARS: usize = 200;
pub const TEXT_CHARS: usize = 1000;

pub fn details(db: &Db, key_id: i64, partner_key: &str) -> Result<Details> {
    Ok(db
        .query_row(
            "SELECT paypal_email, wise_email, account_name, bank_details, tax_details FROM payout_details
             WHERE key_id = ?1 AND partner_key = ?2",
            params![key_id, partner_key],
            |r| {
                Ok(Details {
                    paypal_email: r.get(0)?,
                    wise_email: r.get(1)?,
                    account_name: r.get(2)?,
                    bank_details: r.get(3)?,
                    tax_details: r.get(4)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Checks and stores a partner's payout details.
pub fn set_details(db: &Db, key_id: i64, partner_key: &str, details: &Details, now: i64) -> Result<()> {
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
    db.execute(
        "INSERT INTO payout_details (key_id, partner_key, paypal_email, wise_email, account_name, bank_details,
                                     tax_details, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key_id, partner_key) DO UPDATE SET paypal_email = ?3, wise_email = ?4, account_name = ?5,
             bank_details = ?6, tax_details = ?7, updated_at = ?8",
        params![
            key_id,
            partner_key,
            details.paypal_email,
            details.wise_email,
            details.account_name,
            details.bank_details,
            details.tax_details,
            now
        ],
    )?;
    Ok(())
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

/// A batch's line: one partner, one currency.
#[derive(Debug, Clone)]
pub struct Line {
    pub partner_key: String,
    pub name: String,
    pub email: String,
    pub currency: String,
    pub amount: i64,
    pub details: Details,
}

/// A payout batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `po_<n>`.
    pub key: String,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    pub lines: Vec<Line>,
}

fn batch_id(payout_key: &str) -> Option<i64> {
    payout_key.strip_prefix("po_")?.parse().ok()
}

/// Makes a batch of the approved rewards of `partners` (all owed when
/// empty) that no batch holds. Refused when that is nothing.
pub fn create(db: &Db, key_id: i64, partners: &[String], now: i64) -> Result<Batch> {
    let owed = owed(db, key_id, "approved")?;
    let included: Vec<(String, String)> = owed
        .iter()
        .filter(|o| partners.is_empty() || partners.contains(&o.partner_key))
        .flat_map(|o| {
            o.sums
                .iter()
                .filter(|(_, sum)| *sum > 0)
                .map(|(currency, _)| (o.partner_key.clone(), currency.clone()))
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
    for (partner_key, currency) in included {
        db.execute(
            "UPDATE rewards SET payout_id = ?4 WHERE key_id = ?1 AND partner_key = ?2 AND currency = ?3
               AND status = 'approved' AND payout_id IS NULL",
            params![key_id, partner_key, currency, id],
        )?;
    }
    batch(db, key_id, &format!("po_{id}"))
}

fn batch_row(r: &Row) -> anyhow::Result<(i64, i64, Option<i64>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn with_lines(db: &Db, key_id: i64, (id, created_at, paid_at): (i64, i64, Option<i64>)) -> Result<Batch> {
    let mut stmt = db.prepare(
        "SELECT r.partner_key, coalesce(p.first_name, ''), coalesce(p.last_name, ''), coalesce(p.email, ''),
                r.currency, sum(r.amount)
         FROM rewards r LEFT JOIN partners p ON p.key_id = r.key_id AND p.partner_key = r.partner_key
         WHERE r.payout_id = ?1 AND r.status IN ('approved', 'paid')
         GROUP BY r.partner_key, p.first_name, p.last_name, p.email, r.currency
         ORDER BY r.partner_key, r.currency",
    )?;
    let rows: Vec<(String, String, String, String, i64)> = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                format!("{} {}", r.get::<_, String>(1)?, r.get::<_, String>(2)?)
                    .trim()
                    .to_owned(),
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_>>()?;
    let mut lines = Vec::with_capacity(rows.len());
    for (partner_key, name, email, currency, amount) in rows {
        lines.push(Line {
            details: details(db, key_id, &partner_key)?,
            partner_key,
            name,
            email,
            currency,
            amount,
        });
    }
    Ok(Batch {
        key: format!("po_{id}"),
        created_at,
        paid_at,
        lines,
    })
}

pub fn batch(db: &Db, key_id: i64, payout_key: &str) -> Result<Batch> {
    let found = db
        .query_row(
            "SELECT id, created_at, paid_at FROM payouts WHERE key_id = ?1 AND id = ?2",
            params![key_id, batch_id(payout_key)],
            batch_row,
        )
        .optional()?;
    match found {
        Some(row) => with_lines(db, key_id, row),
        None => Err(Refusal::not_found("payout", format!("no payout batch {payout_key:?}")).into()),
    }
}

/// The key's newest batches.
pub fn batches(db: &Db, key_id: i64, limit: u32) -> Result<Vec<Batch>> {
    let mut stmt =
        db.prepare("SELECT id, created_at, paid_at FROM payouts WHERE key_id = ?1 ORDER BY id DESC LIMIT ?2")?;
    let rows: Vec<_> = stmt
        .query_map(params![key_id, limit], batch_row)?
        .collect::<Result<_>>()?;
    rows.into_iter().map(|row| with_lines(db, key_id, row)).collect()
}

/// Marks batch `payout_key` paid: its approved rewards become paid, and
/// each partner is told once. Marking it again changes nothing.
pub fn mark_paid(db: &Db, key: &Key, payout_key: &str, now: i64) -> Result<Batch> {
    let found = batch(db, key.id, payout_key)?;
    if found.paid_at.is_some() {
        return Ok(found);
    }
    let id = batch_id(payout_key).unwrap_or_default();
    let mut stmt = db.prepare("SELECT id FROM rewards WHERE payout_id = ?1 AND status = 'approved' ORDER BY id")?;
    let rewards: Vec<i64> = stmt.query_map([id], |r| r.get(0))?.collect::<Result<_>>()?;
    for reward in rewards {
        money::set_reward_status(db, key.id, &format!("rwd_{reward}"), "paid", now)?;
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

/// A partner's view of a batch: (payout key, created, paid, totals in words).
pub type PartnerPayout = (String, i64, Option<i64>, String);

/// A partner's batches, newest first.
pub fn of_partner(db: &Db, key_id: i64, partner_key: &str) -> Result<Vec<PartnerPayout>> {
    let mut stmt = db.prepare(
        "SELECT po.id, po.created_at, po.paid_at, r.currency, sum(r.amount)
         FROM payouts po JOIN rewards r ON r.payout_id = po.id
         WHERE po.key_id = ?1 AND r.partner_key = ?2 AND r.status IN ('approved', 'paid')
         GROUP BY po.id, po.created_at, po.paid_at, r.currency ORDER BY po.id DESC, r.currency",
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
/// spaces allow), note to the recipient, wallet. Lines without a PayPal
/// email are left out (see `missing`).
pub fn paypal_csv(batch: &Batch, currency: &str, program: &str) -> Result<String> {
    let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for line in batch.lines.iter().filter(|l| l.currency == currency) {
        if line.details.paypal_email.is_empty() {
            continue;
        }
        let id = match line.partner_key.len() <= 30 && !line.partner_key.contains(char::is_whitespace) {
            true => line.partner_key.as_str(),
            false => "",
        };
        out.write_record([
            safe(&line.details.paypal_email),
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
/// recipients' Wise emails, each paid the exact amount in its currency.
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
    for line in &batch.lines {
        if line.details.wise_email.is_empty() {
            continue;
        }
        let name = match line.details.account_name.as_str() {
            "" => line.name.as_str(),
            name => name,
        };
        out.write_record([
            safe(name),
            safe(&line.details.wise_email),
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

/// The batch's lines that neither file pays (no PayPal or Wise email):
/// for the merchant to pay by hand, from the bank details.
pub fn missing(batch: &Batch) -> Vec<&Line> {
    batch
        .lines
        .iter()
        .filter(|l| l.details.paypal_email.is_empty() && l.details.wise_email.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(partner: &str, currency: &str, amount: i64, paypal: &str, wise: &str) -> Line {
        Line {
            partner_key: partner.into(),
            name: "Ann Lee".into(),
            email: format!("{partner}@example.com"),
            currency: currency.into(),
            amount,
            details: Details {
                paypal_email: paypal.into(),
                wise_email: wise.into(),
                ..Details::default()
            },
        }
    }

    #[test]
    fn payout_files_carry_each_currency_s_own_decimals_and_quote_what_needs_it() {
        let batch = Batch {
            key: "po_7".into(),
            created_at: 0,
            paid_at: None,
            lines: vec![
                line("ann", "JPY", 4900, "ann@pay.example", ""),
                line("ann", "USD", 123_456, "ann@pay.example", "ann@wise.example"),
                line("bob", "USD", 500, "", ""),
                Line {
                    name: "=HYPERLINK(\"http://evil.example\")".into(),
                    ..line("eve", "EUR", 100, "", "eve@wise.example")
                },
            ],
        };
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
             Ann Lee,ann@wise.example,po_7,PERSON,target,1234.56,USD,USD\n\
             \"'=HYPERLINK(\"\"http://evil.example\"\")\",eve@wise.example,po_7,PERSON,target,1.00,EUR,EUR\n"
        );
        assert_eq!(missing(&batch).len(), 1);
    }
}
