//! The merchant's word on who is credited, and the review of browser credit
//! that must not earn money on its own.
//!
//! Anyone with the public key can post browser events, so browser evidence
//! is never final: a customer credited to a partner key no partnership has
//! (`unknown_partner`), or whose email is their partner's (`self_referral`),
//! earns nothing until the merchant approves; a fingerprint match credits
//! nobody and only suggests a partner (`fingerprint`), which the merchant may
//! approve. The merchant (API, dashboard, CLI, payment webhooks) can set or
//! change any customer's partner; every change is logged (who, when, from,
//! to, why), and rewards follow it: the old partner's unpaid rewards are
//! declined, paid ones clawed back, and the new partner earns what the
//! customer's live transactions earn under the offers.

use super::db::{params, Db, OptionalExtension};
use super::merchant::{self, Customer, CustomerRef};
use super::{money, Key};
use anyhow::Result;
use serde::Serialize;

/// Why a customer waits for the merchant's review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// Credited to a partner key that no partnership has.
    UnknownPartner,
    /// The customer's email is their partner's own.
    SelfReferral,
    /// Not credited: a fingerprint match suggests a partner.
    Fingerprint,
}

impl Review {
    pub fn as_str(self) -> &'static str {
        match self {
            Review::UnknownPartner => "unknown_partner",
            Review::SelfReferral => "self_referral",
            Review::Fingerprint => "fingerprint",
        }
    }
}

/// The confidence of a credit by its source (see `Customer::confidence`).
pub fn confidence(source: &str) -> &'static str {
    match source {
        "xid" | "server_cookie" => "high",
        "partner_key" => "medium",
        "fingerprint" => "low",
        _ => "merchant",
    }
}

/// The review a customer credited to `partner_key` needs, if any. In an
/// open program (`auto_partners`) an unknown partner key becomes a
/// partnership (its email a placeholder under the reserved `.invalid`
/// domain until the partner gives one).
pub fn review_for(conn: &Db, key: &Key, partner_key: &str, email: &str, now: i64) -> Result<Option<Review>> {
    let partner_email: Option<String> = conn
        .query_row(
            "SELECT email FROM partners WHERE key_id = ?1 AND partner_key = ?2",
            params![key.id, partner_key],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match partner_email {
        Some(own) => review_of_partnership(&own, email),
        None if key.settings.auto_partners => {
            // Creating it also approves the customers already waiting for it.
            let fields = merchant::PartnerFields {
                email: Some(format!("{partner_key}@partners.invalid")),
                first_name: None,
                last_name: None,
                group_key: None,
            };
            match merchant::create_partner(conn, key, Some(partner_key.into()), fields, now) {
                Ok(_) => None,
                // A partner key that cannot become a partnership (its
                // placeholder email is another partner's, case aside):
                // the customer waits for review, as in a closed program.
                // A refusal must not fail the writer's whole group.
                Err(e) if e.is::<super::Refusal>() => Some(Review::UnknownPartner),
                Err(e) => return Err(e),
            }
        }
        None => Some(Review::UnknownPartner),
    })
}

/// Whether a customer (`email`) of a partner that has a partnership
/// (`partner_email`) waits for review: when it is the partner itself.
pub fn review_of_partnership(partner_email: &str, email: &str) -> Option<Review> {
    (!email.is_empty() && mailbox(partner_email) == mailbox(email)).then_some(Review::SelfReferral)
}

/// The mailbox an address delivers to, for comparing a customer's email
/// with its partner's: case-insensitive, without a `+tag`.
fn mailbox(email: &str) -> String {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", local.split('+').next().unwrap_or(local)),
        None => email,
    }
}

/// Records a change of a customer's credit. The record outlives the
/// customer: it names the customer by key.
#[allow(clippy::too_many_arguments)]
fn log(
    conn: &Db,
    key_id: i64,
    customer: &Customer,
    actor: &str,
    from: Option<&str>,
    to: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO attribution_changes (key_id, customer_key, customer_id, at, actor, from_partner, to_partner, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![key_id, customer.key, customer.id, now, actor, from, to, reason],
    )?;
    Ok(())
}

/// Sets `customer`'s partner to `to` (None: nobody) as the merchant says,
/// through `actor` (`api`, `dashboard`, `cli`, a webhook provider), for
/// `reason`: the old partner's rewards are withdrawn, the new partner
/// credited with the customer's live transactions, any review cleared
/// (but for a partner key no partnership has).
pub fn reattribute(
    conn: &Db,
    key: &Key,
    customer: &Customer,
    to: Option<&str>,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<Customer> {
    if let Some(partner) = to {
        if partner.chars().count() > 255 || partner.chars().any(char::is_control) {
            return Err(super::Refusal::invalid(
                "partner_key",
                "must be at most 255 characters, without control characters",
            )
            .into());
        }
    }
    let review = match to {
        Some(partner) => review_for(conn, key, partner, &customer.email, now)?.filter(|r| *r == Review::UnknownPartner),
        None => None,
    };
    let (source, confidence) = (to.map(|_| actor), to.map(|_| "merchant"));
    recredit(
        conn,
        key,
        customer,
        (to, source, confidence, review),
        actor,
        reason,
        now,
    )
}

/// Approves the review of customer `customer_key`: a flagged partner now
/// earns (its live transactions' rewards are created), a fingerprint's
/// suggestion becomes the customer's credit (source `fingerprint`,
/// confidence `low`).
pub fn approve(conn: &Db, key: &Key, customer_key: &str, actor: &str, now: i64) -> Result<Customer> {
    let customer = merchant::find_customer(conn, key.id, &CustomerRef::Key(customer_key.into()))?;
    let Some(review) = customer.review.clone() else {
        return Err(
            super::Refusal::conflict("customer_key", format!("customer {customer_key:?} is not in review")).into(),
        );
    };
    let credit = match customer.suggested_partner_key.as_deref() {
        // The suggested partner is checked as any credit is: an unknown
        // partner or a self-referral still waits.
        Some(suggested) => (
            Some(suggested),
            Some("fingerprint"),
            Some("low"),
            review_for(conn, key, suggested, &customer.email, now)?,
        ),
        None => (
            customer.partner_key.as_deref(),
            customer.source.as_deref(),
            customer.confidence.as_deref(),
            None,
        ),
    };
    let reason = format!("review approved ({review})");
    recredit(conn, key, &customer, credit, actor, &reason, now)
}

/// Moves `customer`'s credit to (partner, source, confidence, review), with
/// its money and per-day signup counts, and logs it.
fn recredit(
    conn: &Db,
    key: &Key,
    customer: &Customer,
    (to, source, confidence, review): (Option<&str>, Option<&str>, Option<&str>, Option<Review>),
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<Customer> {
    let from = customer.partner_key.as_deref();
    money::withdraw(conn, key.id, customer, now)?;
    conn.execute(
        "UPDATE customers SET partner_key = ?2, source = ?3, confidence = ?4, review = ?5,
                              suggested_partner = NULL, updated_at = ?6
         WHERE id = ?1",
        params![customer.id, to, source, confidence, review.map(Review::as_str), now],
    )?;
    if from != to {
        // Moved on the signup's own day, so no day's count goes negative.
        super::daily::add(conn, key.id, from, customer.created_at, 0, -1)?;
        super::daily::add(conn, key.id, to, customer.created_at, 0, 1)?;
    }
    log(conn, key.id, customer, actor, from, to, reason, now)?;
    super::outbox::emit(
        conn,
        key.id,
        "customer.updated",
        super::outbox::Subject::Customer(&customer.key),
        now,
    )?;
    let moved = merchant::find_customer(conn, key.id, &CustomerRef::Key(customer.key.clone()))?;
    money::credit_transactions(conn, key, &moved, now)?;
    Ok(moved)
}

/// A partnership was created: its customers waiting as `unknown_partner`
/// now earn.
pub fn partnership_created(conn: &Db, key: &Key, partner_key: &str, now: i64) -> Result<()> {
    let waiting: Vec<String> = conn
        .prepare(
            "SELECT customer_key FROM customers
             WHERE key_id = ?1 AND partner_key = ?2 AND review = 'unknown_partner'",
        )?
        .query_map(params![key.id, partner_key], |r| r.get(0))?
        .collect::<anyhow::Result<_>>()?;
    for customer_key in waiting {
        approve(conn, key, &customer_key, "partnership created", now)?;
    }
    Ok(())
}

/// One logged change of a customer's credit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Change {
    pub customer_key: String,
    pub at: i64,
    pub actor: String,
    pub from_partner_key: Option<String>,
    pub to_partner_key: Option<String>,
    pub reason: String,
}

/// The key's newest changes of credit (of one customer, when given).
pub fn changes(conn: &Db, key_id: i64, customer_key: Option<&str>, limit: u32) -> Result<Vec<Change>> {
    let rows = conn
        .prepare(
            "SELECT customer_key, at, actor, from_partner, to_partner, reason FROM attribution_changes
             WHERE key_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR customer_key = ?2)
             ORDER BY id DESC LIMIT ?3",
        )?
        .query_map(params![key_id, customer_key, limit], |r| {
            Ok(Change {
                customer_key: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                from_partner_key: r.get(3)?,
                to_partner_key: r.get(4)?,
                reason: r.get(5)?,
            })
        })?
        .collect::<anyhow::Result<_>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mailbox_ignores_case_and_plus_tags() {
        assert_eq!(
            super::mailbox("Mallory+Shop@Partners.Example"),
            "mallory@partners.example"
        );
        assert_eq!(super::mailbox(" ann@x.co "), "ann@x.co");
        assert_ne!(super::mailbox("ann@x.co"), super::mailbox("anne@x.co"));
    }
}
