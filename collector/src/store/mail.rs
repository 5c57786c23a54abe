//! The emails a program sends, as an outbox: a change writes its email in
//! its own transaction, and the mailer (`crate::mailer`) sends what is due
//! over SMTP, retried on the outgoing webhooks' schedule
//! (`outbox::SCHEDULE_MS`), so an SMTP server that is down loses nothing
//! and no request waits for it.
//!
//! Each kind can be turned off per program (`program::Program::emails`);
//! a kind that is off writes nothing. What strangers can cause is bounded:
//! signups (browser events anyone can send) and applications are digests,
//! one email per recipient per `DIGEST_MS` listing what came meanwhile;
//! a partner gets at most `SIGN_IN_PER_HOUR` sign-in links an hour. Links
//! in emails written by public pages point only to the program's portal
//! address (`portal_url`), never to the address a request claims (its
//! `Host` header is the requester's to choose). An email with a sign-in
//! link still unsent when the link expires is dropped (`failed`,
//! "expired"), any other after `EXPIRE_MS`; a sent email's body is not
//! kept.

use super::db::{params, Db, OptionalExtension};
use super::merchant::Partner;
use super::outbox::{Subject, SCHEDULE_MS};
use super::program::{NewApplication, Program};
use super::{money, portal, Key};
use anyhow::Result;

/// The kinds of email, each of which a program can turn off.
pub const KINDS: &[&str] = &[
    // To the merchant: who applied (a digest).
    "application",
    // To a partner: its application was approved (with a sign-in link).
    "approved",
    // To a partner the merchant invited (with a sign-in link).
    "invited",
    // To a partner who asked for a sign-in link on the portal.
    "sign_in",
    // To a partner: signups credited to it (a digest).
    "signup",
    // To a partner: rewards approved.
    "reward_approved",
    // To a partner: a reward, or a payout batch, was paid.
    "reward_paid",
    // To a partner: its payout details were changed.
    "payout_details",
];

/// Kinds holding a sign-in link: dropped unsent once the link expires.
const WITH_LINK: &[&str] = &["approved", "invited", "sign_in"];

/// An email without a link not sent within this long is dropped.
pub const EXPIRE_MS: i64 = 2 * 86_400_000;

/// Sent and failed emails are deleted after this long.
pub const KEEP_MS: i64 = super::outbox::KEEP_MS;

/// How long a digest gathers before it is sent.
pub const DIGEST_MS: i64 = 10 * 60_000;

/// Items a digest lists (it counts the rest).
const DIGEST_ITEMS: i64 = 50;

/// Sign-in links one partner is sent per hour at most.
pub const SIGN_IN_PER_HOUR: i64 = 3;

fn sends(program: &Program, kind: &str) -> bool {
    program.emails.iter().any(|k| k == kind)
}

/// Writes an email of `kind` to `to`, due at `due`, if the program sends
/// that kind.
#[allow(clippy::too_many_arguments)]
fn enqueue(
    db: &Db,
    key_id: i64,
    program: &Program,
    (kind, to): (&str, &str),
    subject: &str,
    body: &str,
    now: i64,
    due: i64,
) -> Result<bool> {
    if to.is_empty() || !sends(program, kind) {
        return Ok(false);
    }
    db.execute(
        "INSERT INTO emails (key_id, kind, recipient, subject, body, next_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![key_id, kind, to, subject, body, due, now],
    )?;
    Ok(true)
}

/// Adds `item` to the recipient's digest of `kind` that is gathering, or
/// starts one, due in `DIGEST_MS`; `render` makes (subject, body) of the
/// items listed and their count.
#[allow(clippy::too_many_arguments)]
fn digest(
    db: &Db,
    key_id: i64,
    program: &Program,
    (kind, to): (&str, &str),
    item: &str,
    render: impl Fn(&[&str], i64) -> (String, String),
    now: i64,
) -> Result<bool> {
    if to.is_empty() || !sends(program, kind) {
        return Ok(false);
    }
    // Gathering: not claimed yet (a claim moves `next_at` off the digest's
    // own due time).
    let gathering: Option<(i64, String, i64)> = db
        .query_row(
            "SELECT id, items, item_count FROM emails
             WHERE key_id = ?1 AND kind = ?2 AND recipient = ?3 AND status = 'pending' AND attempts = 0
               AND next_at = created_at + ?4 AND next_at > ?5
             ORDER BY id DESC LIMIT 1",
            params![key_id, kind, to, DIGEST_MS, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (id, mut items, count) = gathering.unwrap_or((0, String::new(), 0));
    if count < DIGEST_ITEMS {
        if !items.is_empty() {
            items.push('\n');
        }
        items.push_str(item);
    }
    let listed: Vec<&str> = items.lines().collect();
    let (subject, body) = render(&listed, count + 1);
    match id {
        0 => {
            db.execute(
                "INSERT INTO emails (key_id, kind, recipient, subject, body, items, item_count, next_at, created_at,
                                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?8)",
                params![key_id, kind, to, subject, body, items, now + DIGEST_MS, now],
            )?;
        }
        id => {
            db.execute(
                "UPDATE emails SET subject = ?2, body = ?3, items = ?4, item_count = item_count + 1, updated_at = ?5
                 WHERE id = ?1",
                params![id, subject, body, items, now],
            )?;
        }
    }
    Ok(true)
}

/// A digest's list: its items, and how many more it counted.
fn listing(items: &[&str], count: i64) -> String {
    let mut text: String = items.iter().map(|i| format!("- {i}\n")).collect();
    let more = count - items.len() as i64;
    if more > 0 {
        text += &format!("- and {more} more\n");
    }
    text
}

/// Where sign-in links point: the program's portal address when it has
/// one, else `base`: the address of an authenticated request (the
/// merchant's dashboard or API call), or "" from a public page.
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

/// To the merchant: a new application (a digest), to decide on the
/// dashboard at `base` ("" from the public page: the program's portal
/// address, if any).
pub fn application(db: &Db, key: &Key, program: &Program, new: &NewApplication, base: &str, now: i64) -> Result<bool> {
    let name = format!("{} {}", new.first_name, new.last_name);
    let mut pitch: String = new.promotion.split_whitespace().collect::<Vec<_>>().join(" ");
    if pitch.chars().count() > 200 {
        pitch = pitch.chars().take(200).collect::<String>() + "…";
    }
    let item = format!("{} <{}>, {}: {pitch}", name.trim(), new.email, new.website);
    let base = link_base(program, base).trim_end_matches('/');
    let decide = match base {
        "" => "Approve or decline them on the dashboard's Program page.".to_owned(),
        base => format!("Approve or decline them on the dashboard: {base}/dashboard/program"),
    };
    let render = |items: &[&str], count: i64| {
        let subject = match count {
            1 => format!("New partner application: {}", name.trim()),
            n => format!("{n} new partner applications"),
        };
        let body = format!(
            "New applications to the {} partner program:\n\n{}\n{decide}{}",
            program.name,
            listing(items, count),
            signature(program)
        );
        (subject, body)
    };
    digest(
        db,
        key.id,
        program,
        ("application", &program.merchant_email),
        &item,
        render,
        now,
    )
}

/// To a partner: welcome (`approved` or `invited`), with a one-time
/// sign-in link to the portal at `base` (see `link_base`); nothing when
/// there is no address to link to.
pub fn welcome(
    db: &Db,
    key: &Key,
    program: &Program,
    partner: &Partner,
    kind: &str,
    base: &str,
    now: i64,
) -> Result<bool> {
    let base = link_base(program, base);
    if !sends(program, kind) || base.is_empty() {
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
        portal(base),
        signature(program)
    );
    enqueue(db, key.id, program, (kind, &partner.email), &subject, &body, now, now)
}

/// To a partner who asked for a sign-in link (on a public page: the link
/// is on the program's portal address, and nothing is sent without one),
/// `SIGN_IN_PER_HOUR` at most.
pub fn sign_in(db: &Db, key: &Key, program: &Program, partner: &Partner, now: i64) -> Result<bool> {
    let base = link_base(program, "");
    if !sends(program, "sign_in") || base.is_empty() {
        return Ok(false);
    }
    let recent: i64 = db.query_row(
        "SELECT count(*) FROM emails WHERE key_id = ?1 AND kind = 'sign_in' AND recipient = ?2 AND created_at > ?3",
        params![key.id, partner.email, now - 3_600_000],
        |r| r.get(0),
    )?;
    if recent >= SIGN_IN_PER_HOUR {
        return Ok(false);
    }
    let token = portal::sign_in_link(db, key.id, &partner.key, now)?;
    let body = format!(
        "Hello {},\n\nhere is your sign-in link to the {} partner portal (it works once, for 24 hours):\n{}/sign-in/{token}\n\nIf you did not ask for it, ignore this email.{}",
        partner.first_name,
        program.name,
        portal(base),
        signature(program)
    );
    let subject = format!("Sign in to the {} partner portal", program.name);
    enqueue(
        db,
        key.id,
        program,
        ("sign_in", &partner.email),
        &subject,
        &body,
        now,
        now,
    )
}

/// To a partner: its payout details were changed (so a stolen session
/// that redirects its payouts does not go unnoticed).
pub fn details_changed(db: &Db, key: &Key, partner: &Partner, how: &str, now: i64) -> Result<bool> {
    let program = super::program::get(db, key)?;
    let body = format!(
        "Hello {},\n\nyour payout details for the {} partner program were changed: you are now paid {how}.\n\nIf you did not change them, tell the program at once.{}{}",
        partner.first_name,
        program.name,
        see_more(&program),
        signature(&program)
    );
    let subject = format!("Your {} payout details were changed", program.name);
    enqueue(
        db,
        key.id,
        &program,
        ("payout_details", &partner.email),
        &subject,
        &body,
        now,
        now,
    )
}

/// The line pointing partners to their portal, if the program has its address.
fn see_more(program: &Program) -> String {
    match portal(&program.portal_url).as_str() {
        "" => String::new(),
        url => format!("\n\nSee it on your partner portal: {url}"),
    }
}

/// The partner (email, first name) of `partner_key`, if active.
fn partner_of(db: &Db, key_id: i64, partner_key: &str) -> Result<Option<(String, String)>> {
    db.query_row(
        "SELECT email, first_name FROM partners WHERE key_id = ?1 AND partner_key = ?2 AND archived_at IS NULL",
        params![key_id, partner_key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The outgoing events `notices` turns into emails.
pub const NOTICED: &[&str] = &["customer.created", "reward.updated"];

/// The emails an outgoing event means for partners (`outbox::emit` calls
/// it for every change it records): a customer credited to a partner
/// (`signup`, a digest), rewards approved or paid outside a payout batch
/// (a batch sends one email per partner, see `payouts`).
pub fn notices(db: &Db, key: &Key, event: &str, subjects: &[Subject], now: i64) -> Result<()> {
    if !NOTICED.contains(&event) {
        return Ok(());
    }
    let program = super::program::get(db, key)?;
    if !["signup", "reward_approved", "reward_paid"]
        .iter()
        .any(|k| sends(&program, k))
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
                let render = |items: &[&str], count: i64| {
                    let subject = match count {
                        1 => format!("A new signup through your {} link", program.name),
                        n => format!("{n} new signups through your {} link", program.name),
                    };
                    let body = format!(
                        "Hello {first_name},\n\nnew customers signed up through your link:\n\n{}{}{}",
                        listing(items, count),
                        see_more(&program),
                        signature(&program)
                    );
                    (subject, body)
                };
                digest(
                    db,
                    key.id,
                    &program,
                    ("signup", &to),
                    &portal::masked(&email),
                    render,
                    now,
                )?;
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
                let sums: Vec<(String, i64)> = db.query_all(
                    "SELECT currency, sum(amount) FROM rewards
                     WHERE key_id = ?1 AND partner_key = ?2 AND status = ?3 AND updated_at = ?4
                       AND (status = 'approved' OR payout_id IS NULL)
                     GROUP BY currency ORDER BY currency",
                    params![key.id, partner_key, status, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                // (A clawback approved on its own is no news to celebrate.)
                let sums: Vec<(String, i64)> = sums.into_iter().filter(|(_, sum)| *sum > 0).collect();
                if sums.is_empty() {
                    continue;
                }
                let total = money::amounts_text(&sums);
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
                    enqueue(db, key.id, &program, (kind, &to), &subject, &body, now, now)?;
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
    enqueue(db, key.id, &program, ("reward_paid", &to), &subject, &body, now, now)
}

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

/// Drops the emails that waited too long: those with a sign-in link once
/// it has expired, the others after `EXPIRE_MS`.
pub fn expire(db: &Db, now: i64) -> Result<usize> {
    let with_link = WITH_LINK
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut expired = 0;
    for (kinds, older_than) in [
        (format!("kind IN ({with_link})"), now - portal::LINK_LIFETIME_MS),
        (format!("kind NOT IN ({with_link})"), now - EXPIRE_MS),
    ] {
        expired += db.execute(
            &format!(
                "UPDATE emails SET status = 'failed', last_error = 'expired: not sent in time', body = '', items = '',
                                   updated_at = ?1
                 WHERE status = 'pending' AND {kinds} AND created_at < ?2"
            ),
            params![now, older_than],
        )?;
    }
    Ok(expired)
}

/// Claims at most `limit` due emails for `lease_ms` (another mailer sends
/// them if this one dies before recording), after dropping the expired.
pub fn claim(db: &Db, now: i64, lease_ms: i64, limit: usize) -> Result<Vec<Due>> {
    expire(db, now)?;
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
                "UPDATE emails SET status = 'sent', body = '', items = '', attempts = attempts + 1, last_error = '',
                                   updated_at = ?2
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
                match SCHEDULE_MS
                    .get(attempts as usize)
                    .filter(|_| matches!(sent, Sent::Retry(_)))
                {
                    Some(wait) => db.execute(
                        "UPDATE emails SET attempts = ?2, next_at = ?3, last_error = ?4, updated_at = ?5
                         WHERE id = ?1 AND status = 'pending'",
                        params![id, attempts, now + wait, error, now],
                    )?,
                    None => db.execute(
                        "UPDATE emails SET status = 'failed', body = '', items = '', attempts = ?2, last_error = ?3,
                                           updated_at = ?4
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
        let key = keys::create(&db, Mode::Live, "shop", &[], &Settings::default())
            .unwrap()
            .key;
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
        signup(&db, &key, "bea@example.com", NOW + 1000);
        assert!(
            claim(&db, NOW + DIGEST_MS - 1, 60_000, 10).unwrap().is_empty(),
            "gathering"
        );
        let at = NOW + DIGEST_MS;
        let due = claim(&db, at, 60_000, 10).unwrap();
        assert_eq!(due.len(), 1, "one digest");
        assert_eq!(due[0].recipient, "alice@partners.example");
        assert_eq!(due[0].subject, "2 new signups through your Shop link");
        assert!(
            due[0].body.contains("- a•••@example.com\n- b•••@example.com\n"),
            "{}",
            due[0].body
        );
        signup(&db, &key, "cid@example.com", at + 1);
        assert_eq!(
            claim(&db, at + 1, 60_000, 10).unwrap().len(),
            0,
            "leased, and a new digest gathers"
        );
        record(&db, &[(due[0].id, Sent::Retry("421 busy".into()))], at + 10).unwrap();
        assert!(claim(&db, at + 5_009, 60_000, 10).unwrap().is_empty());
        let again = claim(&db, at + 5_010, 60_000, 10).unwrap();
        assert_eq!(again.len(), 1, "due 5 s after the first failure");
        assert_eq!(
            again[0].subject, "2 new signups through your Shop link",
            "the claimed digest took no more"
        );
        record(
            &db,
            &[(again[0].id, Sent::Refused("550 no such mailbox".into()))],
            at + 6_000,
        )
        .unwrap();
        let (status, body, error): (String, String, String) = db
            .query_row(
                "SELECT status, body, last_error FROM emails ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), body.as_str()), ("failed", ""));
        assert!(error.contains("550"));

        assert!(
            claim(&db, at + EXPIRE_MS + 2, 60_000, 10).unwrap().is_empty(),
            "cid's expired"
        );
        let expired: String = db
            .query_row("SELECT last_error FROM emails ORDER BY id DESC LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(expired.starts_with("expired"), "{expired}");
    }

    #[test]
    fn a_sent_email_keeps_no_body_and_is_deleted_after_30_days() {
        let (conn, key) = setup(&["signup"]);
        let db = Db::from(&conn);
        signup(&db, &key, "ann@example.com", NOW);
        let due = claim(&db, NOW + DIGEST_MS, 60_000, 10).unwrap();
        record(&db, &[(due[0].id, Sent::Ok)], NOW + DIGEST_MS + 1).unwrap();
        let (status, body): (String, String) = db
            .query_row("SELECT status, body FROM emails", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((status.as_str(), body.as_str()), ("sent", ""));
        assert_eq!(prune(&db, NOW + KEEP_MS - 1).unwrap(), 0);
        assert_eq!(prune(&db, NOW + KEEP_MS + 1).unwrap(), 1);
    }
}
