//! The partner portal's data: one-time sign-in links a partner opens to
//! start a session, the sessions, and what a partner may see of the
//! program: its own figures, customers (emails masked) and rewards.
//!
//! Tokens are random, shown once, and stored as SHA-256 hashes only, as
//! the dashboard's sessions are. A session names one partnership of one
//! key; every read here is scoped to both, so nothing a partner sends can
//! show another partner's data.

use super::db::{params, Db, OptionalExtension};
use super::merchant::{self, Customer, Partner};
use super::page::List;
use super::{keys, money, Key, Refusal};
use anyhow::Result;

/// How long a sign-in link can be used (once).
pub const LINK_LIFETIME_MS: i64 = 24 * 3_600_000;
/// How long a partner's session lasts.
pub const SESSION_LIFETIME_MS: i64 = 7 * 86_400_000;

use super::sessions::token_hash as hash;

/// A new one-time sign-in link's token for partnership `partner_key` of
/// the key: to email, or for the merchant to pass on.
pub fn sign_in_link(db: &Db, key_id: i64, partner_key: &str, now: i64) -> Result<String> {
    let partner = merchant::partner(db, key_id, partner_key)?;
    if partner.archived_at.is_some() {
        return Err(Refusal::conflict("partner_key", format!("partnership {partner_key:?} is archived")).into());
    }
    let token = keys::random_token(40)?;
    db.execute("DELETE FROM partner_links WHERE expires_at < ?1", [now])?;
    db.execute(
        "INSERT INTO partner_links (token_hash, key_id, partner_key, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash(&token), key_id, partner_key, now, now + LINK_LIFETIME_MS],
    )?;
    Ok(token)
}

/// Uses the sign-in link `token` (once, before it expires): a new
/// session's token, or `None` when the link is unknown, used or expired.
pub fn redeem(db: &Db, token: &str, now: i64) -> Result<Option<String>> {
    let link: Option<(i64, String)> = db
        .query_row(
            "SELECT key_id, partner_key FROM partner_links WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
            params![hash(token), now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((key_id, partner_key)) = link else {
        return Ok(None);
    };
    db.execute(
        "UPDATE partner_links SET used_at = ?2 WHERE token_hash = ?1",
        params![hash(token), now],
    )?;
    let session = keys::random_token(40)?;
    db.execute("DELETE FROM partner_sessions WHERE expires_at < ?1", [now])?;
    db.execute(
        "INSERT INTO partner_sessions (token_hash, key_id, partner_key, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            hash(&session),
            key_id,
            partner_key,
            keys::random_token(32)?,
            now,
            now + SESSION_LIFETIME_MS
        ],
    )?;
    Ok(Some(session))
}

/// A partner signed in.
pub struct PartnerSession {
    pub key: Key,
    pub partner: Partner,
    /// Every form of the session carries it.
    pub csrf: String,
}

/// The live session `token`, if its key is active and its partnership not
/// archived.
pub fn session(db: &Db, token: &str, now: i64) -> Result<Option<PartnerSession>> {
    let found: Option<(i64, String, String)> = db
        .query_row(
            "SELECT s.key_id, s.partner_key, s.csrf FROM partner_sessions s JOIN keys k ON k.id = s.key_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND k.revoked_at IS NULL",
            params![hash(token), now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((key_id, partner_key, csrf)) = found else {
        return Ok(None);
    };
    let partner = match merchant::partner(db, key_id, &partner_key) {
        Ok(partner) if partner.archived_at.is_none() => partner,
        Ok(_) => return Ok(None),
        Err(e) if Refusal::is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(PartnerSession {
        key: keys::by_id(db, key_id)?,
        partner,
        csrf,
    }))
}

pub fn sign_out(db: &Db, token: &str) -> Result<()> {
    db.execute("DELETE FROM partner_sessions WHERE token_hash = ?1", [hash(token)])?;
    Ok(())
}

/// Asks for sign-in links by email: one to `email` for each active
/// partnership with it whose program sends them (`mail::sign_in`),
/// on the program's portal address. The number written (the page tells
/// the asker nothing of it: it must not reveal who is a partner).
pub fn request_links(db: &Db, email: &str, now: i64) -> Result<usize> {
    let mut stmt = db.prepare(
        "SELECT p.key_id, p.partner_key FROM partners p JOIN keys k ON k.id = p.key_id
         WHERE p.email = ?1 COLLATE NOCASE AND p.archived_at IS NULL AND k.revoked_at IS NULL ORDER BY p.id LIMIT 20",
    )?;
    let found: Vec<(i64, String)> = stmt
        .query_map([email], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    let mut sent = 0;
    for (key_id, partner_key) in found {
        let key = keys::by_id(db, key_id)?;
        let program = super::program::get(db, &key)?;
        let partner = merchant::partner(db, key_id, &partner_key)?;
        if super::mail::sign_in(db, &key, &program, &partner, now)? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Sub-ids shown on the portal, the busiest first.
const SUBS_SHOWN: u32 = 20;

/// The partner's sub-ids (`ps_xid` values of its links): (sub-id, clicks,
/// signups), the most clicked first.
pub fn sub_ids(db: &Db, key_id: i64, partner_key: &str) -> Result<Vec<(String, i64, i64)>> {
    let mut stmt = db.prepare(
        "SELECT xid, count(*) FROM events WHERE key_id = ?1 AND partner_key = ?2 AND type = 'click' AND xid IS NOT NULL
         GROUP BY xid ORDER BY count(*) DESC, xid LIMIT ?3",
    )?;
    let clicks: Vec<(String, i64)> = stmt
        .query_map(params![key_id, partner_key, SUBS_SHOWN], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(clicks.len());
    for (xid, clicks) in clicks {
        let signups: i64 = db.query_row(
            "SELECT count(*) FROM customers WHERE key_id = ?1 AND partner_key = ?2 AND xid = ?3",
            params![key_id, partner_key, xid],
            |r| r.get(0),
        )?;
        out.push((xid, clicks, signups));
    }
    Ok(out)
}

/// Days the portal's chart covers.
pub const CHART_DAYS: i64 = 90;

/// What a partner sees of its program.
pub struct Overview {
    pub figures: money::PartnerFigures,
    /// Clicks and signups per day, `CHART_DAYS` up to today.
    pub series: Vec<(i64, i64)>,
    /// Its sub-ids: (sub-id, clicks, signups).
    pub subs: Vec<(String, i64, i64)>,
    /// Its payout batches: (payout key, created, paid, totals).
    pub payouts: Vec<super::payouts::PartnerPayout>,

    /// Rewards per status (new, approved, paid, declined): totals per currency.
    pub rewards: Vec<(&'static str, String)>,
    /// The newest customers credited to it: (masked email, signed up at).
    pub customers: Vec<(String, i64)>,
}

/// Customers listed on the portal's page.
const CUSTOMERS_SHOWN: u32 = 50;

pub fn overview(db: &Db, key_id: i64, partner_key: &str, now: i64) -> Result<Overview> {
    let mut rewards = Vec::new();
    for status in ["new", "approved", "paid", "declined"] {
        let totals = money::sums_text(
            db,
            "SELECT currency, sum(amount) FROM rewards WHERE key_id = ?1 AND partner_key = ?2 AND status = ?3
             GROUP BY currency ORDER BY currency",
            params![key_id, partner_key, status],
        )?;
        rewards.push((status, totals));
    }
    let page = merchant::customers(db, key_id, Some(partner_key), false, List::first(CUSTOMERS_SHOWN))?;
    Ok(Overview {
        figures: money::partner_figures(db, key_id, partner_key)?,
        series: super::daily::series(db, key_id, Some(partner_key), now, CHART_DAYS)?,
        subs: sub_ids(db, key_id, partner_key)?,
        payouts: super::payouts::of_partner(db, key_id, partner_key)?,
        rewards,
        customers: page
            .items
            .iter()
            .map(|c: &Customer| (masked(&c.email), c.created_at))
            .collect(),
    })
}

/// An email a partner may see of its customer: the first character of
/// the mailbox and the domain (`a•••@example.com`).
pub fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails_are_masked_but_for_their_first_character_and_domain() {
        assert_eq!(super::masked("ann.smith@example.com"), "a•••@example.com");
        assert_eq!(super::masked("élodie@exämple.de"), "é•••@exämple.de");
        assert_eq!(super::masked("nobody"), "•••");
    }
}
