//! The emails a program sends, as an outbox: a change writes its email in
//! its own transaction (`enqueue`), and the mailer (`crate::mailer`)
//! sends what is due over SMTP, retried on the outgoing webhooks'
//! schedule (`outbox::SCHEDULE_MS`), so an SMTP server that is down loses
//! nothing and no request waits for it.
//!
//! Each kind can be turned off per program (`program::Program::emails`);
//! a kind that is off writes nothing. An email still unsent after
//! `EXPIRE_MS` is dropped as `failed` (its sign-in link expired anyway),
//! and a sent email's body, which may hold a sign-in link, is not kept.

use super::db::{params, Db, OptionalExtension};
use super::merchant::Partner;
use super::outbox::{Subject, SCHEDULE_MS};
use super::program::{NewApplication, Program};
use super::{money, portal, Key};
use anyhow::Result;

/// The kinds of email, each of which a program can turn off.
pub const KINDS: &[&str] = &[
    // To the merchant: someone applied.
    "application",
    // To a partner: its application was approved (with a sign-in link).
    "approved",
    // To a partner the merchant invited (with a sign-in link).
    "invited",
    // To a partner who asked for a sign-in link on the portal.
    "sign_in",
    // To a partner: a signup was credited to it.
    "signup",
    // To a partner: a reward was approved.
    "reward_approved",
    // To a partner: a reward, or a payout batch, was paid.
    "reward_paid",
];

/// An email not sent within this long is dropped (failed, "expired").
pub const EXPIRE_MS: i64 = 2 * 86_400_000;

/// Sent and failed emails are deleted after this long.
pub const KEEP_MS: i64 = super::outbox::KEEP_MS;

/// Writes an email of `kind` to `to` if the program sends that kind.
#[allow(clippy::too_many_arguments)]
fn enqueue(
    db: &Db,
    key_id: i64,
    program: &Program,
    kind: &str,
    to: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> Result<bool> {
    if to.is_empty() || !program.emails.iter().any(|k| k == kind) {
        return Ok(false);
    }
    db.execute(
        "INSERT INTO emails (key_id, kind, recipient, subject, body, next_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
        params![key_id, kind, to, subject, body, now],
    )?;
    Ok(true)
}

/// Where sign-in links point: the program's portal address when it has
/// one (a request may have reached the collector by an internal name),
/// else `base`, the request's own.
fn link_base<'a>(program: &'a Program, base: &'a str) -> &'a str {
    match program.portal_url.as_str() {
        "" => base,
        url => url,
    }
}

/// The portal's address under `base` ("" when unknown).
fn portal(base: &str) -> String {
    match base.trim_end_matches('/') {
        "" => String::new(),
        base => format!("{base}/partners"),
    }
}

fn signature(program: &Program) -> String {
    format!("\n\n-- \n{} partner program\n", program.name)
}

/// To the merchant: a new application, to decide on the dashboard.
pub fn application(db: &Db, key: &Key, program: &Program, new: &NewApplication, base: &str, now: i64) -> Result<bool> {
    let base = link_base(program, base).trim_end_matches('/');
    let body = format!(
        "{} {} <{}> applied to the {} partner program.\n\nWebsite: {}\nHow they will promote it: {}\n\nApprove or decline it on the dashboard: {base}/dashboard/applications{}",
        new.first_name,
        new.last_name,
        new.email,
        program.name,
        new.website,
        new.promotion,
        signature(program)
    );
    let name = format!("{} {}", new.first_name, new.last_name);
    let subject = format!("New partner application: {}", name.trim());
    enqueue(
        db,
        key.id,
        program,
        "application",
        &program.merchant_email,
        &subject,
        &body,
        now,
    )
}

/// To a partner: welcome (`approved` or `invited`), with a one-time
/// sign-in link to the portal at `base`.
pub fn welcome(
    db: &Db,
    key: &Key,
    program: &Program,
    partner: &Partner,
    kind: &str,
    base: &str,
    now: i64,
) -> Result<bool> {
    if !program.emails.iter().any(|k| k == kind) {
        return Ok(false);
    }
    let token = portal::sign_in_link(db, key.id, &partner.key, now)?;
    let (opening, subject) = match kind {
        "approved" => (
            format!(
                "your application to the {} partner program is approved. Welcome!",
                program.name
            ),
            format!("You are a {} partner", program.name),
        ),
        _ => (
            format!("you are invited to the {} partner program.", program.name),
            format!("Your invitation to the {} partner program", program.name),
        ),
    };
    let body = format!(
        "Hello {},\n\n{opening}\n\nSign in to your partner portal to get your referral link and follow your results (the link works once, for 24 hours):\n{}/sign-in/{token}{}",
        partner.first_name,
        portal(link_base(program, base)),
        signature(program)
    );
    enqueue(db, key.id, program, kind, &partner.email, &subject, &body, now)
}

/// To a partner who asked for a sign-in link on the portal at `base`.
pub fn sign_in(db: &Db, key: &Key, program: &Program, partner: &Partner, base: &str, now: i64) -> Result<bool> {
    if !program.emails.iter().any(|k| k == "sign_in") {
        return Ok(false);
    }
    let token = portal::sign_in_link(db, key.id, &partner.key, now)?;
    let body = format!(
        "Hello {},\n\nhere is your sign-in link to the {} partner portal (it works once, for 24 hours):\n{}/sign-in/{token}\n\nIf you did not ask for it, ignore this email.{}",
        partner.first_name,
        program.name,
        portal(link_base(program, base)),
        signature(program)
    );
    let subject = format!("Sign in to the {} partner portal", program.name);
    enqueue(db, key.id, program, "sign_in", &partner.email, &subject, &body, now)
}

/// The line pointing partners to their portal, if the program has its address.
fn see_more(program: &Program) -> String {
    match portal(&program.portal_url).as_str() {
        "" => String::new(),
        url => format!("\n\nSee it on your partner portal: {url}"),
    }
}

/// The partner (key, email, first name) of `partner_key`, if active.
fn partner_of(db: &Db, key_id: i64, partner_key: &str) -> Result<Option<(String, String)>> {
    db.query_row(
        "SELECT email, first_name FROM partners WHERE key_id = ?1 AND partner_key = ?2 AND archived_at IS NULL",
        params![key_id, partner_key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The emails an outgoing event means for partners (`outbox::emit` calls
/// it for every change it records): a customer credited to a partner
/// (`signup`), a reward approved or paid outside a payout batch (a batch
/// sends one email per partner, see `payouts`).
pub fn notices(db: &Db, key: &Key, event: &str, subjects: &[Subject], now: i64) -> Result<()> {
    if !NOTICED.contains(&event) {
        return Ok(());
    }
    let program = super::program::get(db, key)?;
    if !program
        .emails
        .iter()
        .any(|k| ["signup", "reward_approved", "reward_paid"].contains(&k.as_str()))
    {
        return Ok(());
    }
    for subject in subjects {
        match subject {
            Subject::Customer(customer_key) => {
                let found: Option<(String, Option<String>)> = db
                    .query_row(
                        "SELECT email, partner_key FROM customers WHERE key_id = ?1 AND customer_key = ?2",
                        params![key.id, customer_key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((email, Some(partner_key))) = found else {
                    continue;
                };
                let Some((to, first_name)) = partner_of(db, key.id, &partner_key)? else {
                    continue;
                };
                let body = format!(
                    "Hello {first_name},\n\na new customer signed up through your link: {}.{}{}",
                    portal::masked(&email),
                    see_more(&program),
                    signature(&program)
                );
                let subject = format!("A new signup through your {} link", program.name);
                enqueue(db, key.id, &program, "signup", &to, &subject, &body, now)?;
            }
            Subject::Reward(id) => {
                let found: Option<(String, String, Option<i64>)> = db
                    .query_row(
                        "SELECT partner_key, status, payout_id FROM rewards WHERE key_id = ?1 AND id = ?2",
                        params![key.id, id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((partner_key, status, payout)) = found else {
                    continue;
                };
                let (kind, done) = match (status.as_str(), payout) {
                    ("approved", _) => ("reward_approved", "approved"),
                    ("paid", None) => ("reward_paid", "paid"),
                    _ => continue,
                };
                let Some((to, first_name)) = partner_of(db, key.id, &partner_key)? else {
                    continue;
                };
                // One email per partner and transaction: approving many
                // rewards at once tells the partner once, with the total.
                let total = money::sums_text(
                    db,
                    "SELECT currency, sum(amount) FROM rewards
                     WHERE key_id = ?1 AND partner_key = ?2 AND status = ?3 AND updated_at = ?4
                       AND (status = 'approved' OR payout_id IS NULL)
                     GROUP BY currency ORDER BY currency",
                    params![key.id, partner_key, status, now],
                )?;
                let body = format!(
                    "Hello {first_name},\n\nyour {} rewards of {total} were {done}.{}{}",
                    program.name,
                    see_more(&program),
                    signature(&program)
                );
                let subject = format!("{total} {done}: your {} rewards", program.name);
                let merged = db.execute(
                    "UPDATE emails SET subject = ?5, body = ?6
                     WHERE key_id = ?1 AND kind = ?2 AND recipient = ?3 AND created_at = ?4 AND status = 'pending' AND attempts = 0",
                    params![key.id, kind, to, now, subject, body],
                )?;
                if merged == 0 {
                    enqueue(db, key.id, &program, kind, &to, &subject, &body, now)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// To a partner: its payout was sent (`totals` in words).
pub fn payout_paid(db: &Db, key: &Key, partner_key: &str, totals: &str, payout_key: &str, now: i64) -> Result<bool> {
    let program = super::program::get(db, key)?;
    let Some((to, first_name)) = partner_of(db, key.id, partner_key)? else {
        return Ok(false);
    };
    let body = format!(
        "Hello {first_name},\n\nyour payout {payout_key} of {totals} was sent.{}{}",
        see_more(&program),
        signature(&program)
    );
    let subject = format!("Your {} payout: {totals}", program.name);
    enqueue(db, key.id, &program, "reward_paid", &to, &subject, &body, now)
}

/// The outgoing events `notices` turns into emails.
pub const NOTICED: &[&str] = &["customer.created", "reward.updated"];

/// An email to send now.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Sent {
    Ok,
    /// Worth trying again (connection refused, a 4xx reply): the error.
    Retry(String),
    /// Never worth trying again (a 5xx reply: the mailbox does not exist).
    Refused(String),
}

/// Whether any email is due: the mailer's cheap look when idle.
pub fn anything_due(db: &Db, now: i64) -> Result<bool> {
    db.query_row(
        "SELECT EXISTS (SELECT 1 FROM emails WHERE status = 'pending' AND next_at <= ?1)",
        [now],
        |r| r.get(0),
    )
}

/// Claims at most `limit` due emails for `lease_ms` (another mailer sends
/// them if this one dies before recording), after dropping the expired.
pub fn claim(db: &Db, now: i64, lease_ms: i64, limit: usize) -> Result<Vec<Due>> {
    db.execute(
        "UPDATE emails SET status = 'failed', last_error = 'expired: not sent in time', body = '', updated_at = ?1
         WHERE status = 'pending' AND next_at <= ?1 AND created_at < ?2",
        params![now, now - EXPIRE_MS],
    )?;
    let mut stmt = db.prepare(
        "UPDATE emails SET next_at = ?1 + ?2, updated_at = ?1
         WHERE id IN (SELECT id FROM emails WHERE status = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?3)
         RETURNING id, recipient, subject, body",
    )?;
    let rows = stmt.query_map(params![now, lease_ms, limit as i64], |r| {
        Ok(Due {
            id: r.get(0)?,
            recipient: r.get(1)?,
            subject: r.get(2)?,
            body: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Records how attempts ended: sent (the body dropped), due again on the
/// schedule, or failed.
pub fn record(db: &Db, ended: &[(i64, Sent)], now: i64) -> Result<()> {
    for (id, sent) in ended {
        match sent {
            Sent::Ok => db.execute(
                "UPDATE emails SET status = 'sent', body = '', attempts = attempts + 1, last_error = '', updated_at = ?2
                 WHERE id = ?1 AND status = 'pending'",
                params![id, now],
            )?,
            Sent::Retry(error) | Sent::Refused(error) => {
                let attempts: i64 = db
                    .query_row("SELECT attempts FROM emails WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0)
                    + 1;
                let error = crate::http::decode::clean(error, 500);
                match SCHEDULE_MS.get(attempts as usize).filter(|_| matches!(sent, Sent::Retry(_))) {
                    Some(wait) => db.execute(
                        "UPDATE emails SET attempts = ?2, next_at = ?3, last_error = ?4, updated_at = ?5
                         WHERE id = ?1 AND status = 'pending'",
                        params![id, attempts, now + wait, error, now],
                    )?,
                    None => db.execute(
                        "UPDATE emails SET status = 'failed', body = '', attempts = ?2, last_error = ?3, updated_at = ?4
                         WHERE id = ?1 AND status = 'pending'",
                        params![id, attempts, error, now],
                    )?,
                }
            }
        };
    }
    Ok(())
}

/// Deletes sent and failed emails older than `KEEP_MS`.
pub fn prune(db: &Db, now: i64) -> Result<usize> {
    db.execute(
        "DELETE FROM emails WHERE status != 'pending' AND created_at < ?1",
        [now - KEEP_MS],
    )
}

/// The key's newest emails, for the dashboard: (kind, to, subject, status,
/// attempts, last error, created at).
pub type EmailRow = (String, String, String, String, i64, String, i64);

pub fn recent(db: &Db, key_id: i64, limit: u32) -> Result<Vec<EmailRow>> {
    let mut stmt = db.prepare(
        "SELECT kind, recipient, subject, status, attempts, last_error, created_at FROM emails
         WHERE key_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![key_id, limit], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Db;
    use crate::store::merchant::{create_customer, create_partner, CustomerFields, PartnerFields};
    use crate::store::program::{self, Applications};
    use crate::store::{keys, Mode, Settings};
    use rusqlite::Connection;

    const NOW: i64 = 1_800_000_000_000;

    /// A program sending `kinds`, with partner alice.
    fn setup(kinds: &[&str]) -> (Connection, Key) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let db = Db::from(&conn);
        let key = keys::create(&db, Mode::Live, "shop", &[], &Settings::default()).unwrap().key;
        let settings = Program {
            name: "Shop".into(),
            merchant_email: String::new(),
            portal_url: String::new(),
            applications: Applications::Review,
            group_key: None,
            emails: kinds.iter().map(|k| k.to_string()).collect(),
        };
        program::set(&db, &key, &settings, NOW).unwrap();
        let alice = PartnerFields {
            email: Some("alice@partners.example".into()),
            first_name: Some("Alice".into()),
            last_name: None,
            group_key: None,
        };
        create_partner(&db, &key, Some("alice".into()), alice, NOW).unwrap();
        (conn, key)
    }

    fn signup(db: &Db, key: &Key, email: &str, now: i64) {
        let fields = CustomerFields {
            email: Some(email.into()),
            name: None,
            provider_key: None,
            meta: None,
        };
        create_customer(db, key, email, Some("alice"), fields, "api", now).unwrap();
    }

    #[test]
    fn a_kind_turned_off_writes_nothing() {
        let (conn, key) = setup(&["approved"]);
        let db = Db::from(&conn);
        signup(&db, &key, "ann@example.com", NOW);
        assert!(claim(&db, NOW, 60_000, 10).unwrap().is_empty());
    }

    #[test]
    fn emails_are_retried_on_the_schedule_then_failed_and_expire_unsent() {
        let (conn, key) = setup(&["signup"]);
        let db = Db::from(&conn);
        signup(&db, &key, "ann@example.com", NOW);
        let due = claim(&db, NOW, 60_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].recipient, "alice@partners.example");
        assert!(due[0].body.contains("a•••@example.com"), "{}", due[0].body);
        assert!(claim(&db, NOW + 1, 60_000, 10).unwrap().is_empty(), "leased");
        record(&db, &[(due[0].id, Sent::Retry("421 busy".into()))], NOW + 10).unwrap();
        assert!(claim(&db, NOW + 5_009, 60_000, 10).unwrap().is_empty());
        let again = claim(&db, NOW + 5_010, 60_000, 10).unwrap();
        assert_eq!(again.len(), 1, "due 5 s after the first failure");
        record(&db, &[(again[0].id, Sent::Refused("550 no such mailbox".into()))], NOW + 6_000).unwrap();
        let (status, body, error): (String, String, String) = db
            .query_row("SELECT status, body, last_error FROM emails", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((status.as_str(), body.as_str()), ("failed", ""));
        assert!(error.contains("550"));

        signup(&db, &key, "bea@example.com", NOW);
        assert!(claim(&db, NOW + EXPIRE_MS + 1, 60_000, 10).unwrap().is_empty());
        let expired: String = db
            .query_row("SELECT last_error FROM emails ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert!(expired.starts_with("expired"), "{expired}");
    }

    #[test]
    fn a_sent_email_keeps_no_body_and_is_deleted_after_30_days() {
        let (conn, key) = setup(&["signup"]);
        let db = Db::from(&conn);
        signup(&db, &key, "ann@example.com", NOW);
        let due = claim(&db, NOW, 60_000, 10).unwrap();
        record(&db, &[(due[0].id, Sent::Ok)], NOW + 1).unwrap();
        let (status, body): (String, String) = db
            .query_row("SELECT status, body FROM emails", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((status.as_str(), body.as_str()), ("sent", ""));
        assert_eq!(prune(&db, NOW + KEEP_MS - 1).unwrap(), 0);
        assert_eq!(prune(&db, NOW + KEEP_MS + 1).unwrap(), 1);
    }
}
