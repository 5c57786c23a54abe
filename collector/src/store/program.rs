//! Running a partner program on a key: its settings (the name partners
//! see, where the merchant hears of applications, which emails go out,
//! whether anyone may apply) and partners' applications, which the
//! merchant approves (a partnership in the program's group, and an email
//! with a sign-in link) or declines.
//!
//! Applications come from a public page, so they are bounded: at most
//! `PENDING_MAX` wait at once per key, at most `AUTO_PER_DAY` are approved
//! automatically a day (the rest wait for the merchant), and an email that
//! already applied or is a partner adds nothing (a partner is sent a
//! sign-in link instead; the page answers the same either way, so it tells
//! no one who is a partner). The applicant's request names no address for
//! links: emails it causes link only to the program's `portal_url`.

use super::db::{params, Db, OptionalExtension, Row};
use super::merchant::{self, PartnerFields};
use super::{keys, mail, Key, Refusal};
use anyhow::Result;

/// Who may join through the public application page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applications {
    /// No page.
    Closed,
    /// Anyone may apply; the merchant approves or declines.
    Review,
    /// Anyone may apply and is approved at once.
    Auto,
}

impl Applications {
    pub fn as_str(self) -> &'static str {
        match self {
            Applications::Closed => "closed",
            Applications::Review => "review",
            Applications::Auto => "auto",
        }
    }

    pub fn parse(text: &str) -> Option<Applications> {
        match text {
            "closed" => Some(Applications::Closed),
            "review" => Some(Applications::Review),
            "auto" => Some(Applications::Auto),
            _ => None,
        }
    }
}

/// A key's program settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The name partners see in pages and emails (the key's name when empty).
    pub name: String,
    /// Where new applications are announced ("" for nowhere).
    pub merchant_email: String,
    /// The portal's base URL for links in emails sent outside a request
    /// (e.g. `https://partners.shop.example`); "" to leave links out.
    pub portal_url: String,
    pub applications: Applications,
    /// The group approved applicants join (the default group when `None`).
    pub group_key: Option<String>,
    /// The kinds of email the program sends (see `mail::KINDS`).
    pub emails: Vec<String>,
}

/// A key's program: its settings, or the defaults (closed, no email).
pub fn get(db: &Db, key: &Key) -> Result<Program> {
    let found = db
        .query_row(
            "SELECT name, merchant_email, portal_url, applications, group_key, emails FROM programs WHERE key_id = ?1",
            [key.id],
            |r| {
                Ok(Program {
                    name: r.get(0)?,
                    merchant_email: r.get(1)?,
                    portal_url: r.get(2)?,
                    applications: Applications::parse(&r.get::<_, String>(3)?).unwrap_or(Applications::Closed),
                    group_key: r.get(4)?,
                    emails: r.get::<_, String>(5)?.split_whitespace().map(String::from).collect(),
                })
            },
        )
        .optional()?;
    let mut program = found.unwrap_or(Program {
        name: String::new(),
        merchant_email: String::new(),
        portal_url: String::new(),
        applications: Applications::Closed,
        group_key: None,
        emails: Vec::new(),
    });
    if program.name.is_empty() {
        program.name = key.name.clone();
    }
    Ok(program)
}

/// Replaces a key's program settings, checking them first.
pub fn set(db: &Db, key: &Key, program: &Program, now: i64) -> Result<()> {
    let name = &program.name;
    if name.chars().count() > NAME_CHARS || name.chars().any(char::is_control) {
        let message = format!("at most {NAME_CHARS} characters, none a control character");
        return Err(Refusal::invalid("name", message).into());
    }
    if let Some(kind) = program.emails.iter().find(|k| !mail::KINDS.contains(&k.as_str())) {
        return Err(Refusal::invalid("emails", format!("{kind:?} is not one of {}", mail::KINDS.join(", "))).into());
    }
    if !program.merchant_email.is_empty() && !crate::http::decode::is_email(&program.merchant_email) {
        return Err(Refusal::invalid("merchant_email", "not an email address").into());
    }
    let url = program.portal_url.trim_end_matches('/');
    // host[:port]: letters, digits, dots and dashes, then digits.
    let origin_only = url.split_once("://").is_some_and(|(_, rest)| {
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1"));
        let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
        host_ok && !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())
    });
    if !(url.is_empty() || crate::http::decode::is_web_url(url) && origin_only) {
        return Err(Refusal::invalid(
            "portal_url",
            "the collector's public address, https://host[:port] with no path",
        )
        .into());
    }
    if let Some(group) = &program.group_key {
        super::groups::joinable(db, key.id, group)?;
    }
    db.execute(
        "INSERT INTO programs (key_id, name, merchant_email, portal_url, applications, group_key, emails, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key_id) DO UPDATE SET name = ?2, merchant_email = ?3, portal_url = ?4, applications = ?5,
             group_key = ?6, emails = ?7, updated_at = ?8",
        params![
            key.id,
            program.name,
            program.merchant_email,
            url,
            program.applications.as_str(),
            program.group_key,
            program.emails.join(" "),
            now
        ],
    )?;
    Ok(())
}

/// Most characters of a program's name.
pub const NAME_CHARS: usize = 100;

/// Applications waiting at once, per key: past it, the page refuses new
/// ones until the merchant decides some.
pub const PENDING_MAX: i64 = 500;

/// Applications approved automatically per key and day; past it (or
/// without a `portal_url` to link the welcome to), they wait for the
/// merchant as in `review`.
pub const AUTO_PER_DAY: i64 = 100;

/// What an applicant sends.
#[derive(Debug, Clone, Default)]
pub struct NewApplication {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub website: String,
    pub promotion: String,
}

/// An application.
#[derive(Debug, Clone)]
pub struct Application {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub website: String,
    pub promotion: String,
    pub status: String,
    pub partner_key: Option<String>,
    pub created_at: i64,
}

fn application_row(r: &Row) -> anyhow::Result<Application> {
    Ok(Application {
        id: r.get(0)?,
        email: r.get(1)?,
        first_name: r.get(2)?,
        last_name: r.get(3)?,
        website: r.get(4)?,
        promotion: r.get(5)?,
        status: r.get(6)?,
        partner_key: r.get(7)?,
        created_at: r.get(8)?,
    })
}

const APPLICATION_SELECT: &str =
    "SELECT id, email, first_name, last_name, website, promotion, status, partner_key, created_at FROM applications";

/// What came of an application.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Stored, waiting for the merchant.
    Waiting,
    /// Approved at once: the new partnership's key.
    Approved(String),
    /// Nothing new: the email applied already, or is a partner.
    Known,
    /// Too many wait already.
    Full,
}

/// Takes an application to `key`'s program (open for it: the caller
/// checked), from the public page.
pub fn apply(db: &Db, key: &Key, new: &NewApplication, now: i64) -> Result<Applied> {
    let program = get(db, key)?;
    // Full: the same answer for everyone (partners included).
    let waiting: i64 = db.query_row(
        "SELECT count(*) FROM applications WHERE key_id = ?1 AND status = 'pending'",
        [key.id],
        |r| r.get(0),
    )?;
    if waiting >= PENDING_MAX {
        return Ok(Applied::Full);
    }
    let partner: Option<String> = db
        .query_row(
            "SELECT partner_key FROM partners WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE AND archived_at IS NULL",
            params![key.id, new.email],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(partner_key) = partner {
        // A partner applying again has lost its way in: a sign-in link.
        let partner = merchant::partner(db, key.id, &partner_key)?;
        mail::sign_in(db, key, &program, &partner, now)?;
        return Ok(Applied::Known);
    }
    let known: bool = db.query_row(
        "SELECT EXISTS (SELECT 1 FROM applications WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE AND status != 'declined')
             OR EXISTS (SELECT 1 FROM partners WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE)",
        params![key.id, new.email],
        |r| r.get(0),
    )?;
    if known {
        return Ok(Applied::Known);
    }
    let id: i64 = db.query_row(
        "INSERT INTO applications (key_id, email, first_name, last_name, website, promotion, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            key.id,
            new.email,
            new.first_name,
            new.last_name,
            new.website,
            new.promotion,
            now
        ],
        |r| r.get(0),
    )?;
    // Automatic approvals (decided as they came) in the last day.
    let approved_today: i64 = db.query_row(
        "SELECT count(*) FROM applications
         WHERE key_id = ?1 AND status = 'approved' AND decided_at = created_at AND decided_at > ?2",
        params![key.id, now - 86_400_000],
        |r| r.get(0),
    )?;
    // Approved at once only when the welcome can reach the applicant: a
    // link needs the portal's address (see `mail::welcome`).
    let automatic =
        program.applications == Applications::Auto && !program.portal_url.is_empty() && approved_today < AUTO_PER_DAY;
    if automatic {
        let partner_key = approve(db, key, id, "", now)?;
        return Ok(Applied::Approved(partner_key));
    }
    mail::application(db, key, &program, new, "", now)?;
    Ok(Applied::Waiting)
}

/// The key's applications with `status`, oldest first.
pub fn applications(db: &Db, key_id: i64, status: &str, limit: u32) -> Result<Vec<Application>> {
    let sql = format!("{APPLICATION_SELECT} WHERE key_id = ?1 AND status = ?2 ORDER BY id LIMIT ?3");
    let mut stmt = db.prepare(&sql)?;
    let rows = stmt.query_map(params![key_id, status, limit], application_row)?;
    rows.collect()
}

fn pending(db: &Db, key_id: i64, id: i64) -> Result<Application> {
    let sql = format!("{APPLICATION_SELECT} WHERE key_id = ?1 AND id = ?2");
    let found = db.query_row(&sql, params![key_id, id], application_row).optional()?;
    match found {
        Some(a) if a.status == "pending" => Ok(a),
        Some(a) => Err(Refusal::conflict("application", format!("already {}", a.status)).into()),
        None => Err(Refusal::not_found("application", format!("no application {id}")).into()),
    }
}

/// Approves application `id`: a partnership in the program's group, and
/// the approval email with a sign-in link (to `base_url`, the merchant's
/// request's address, or "" for the program's portal address). Returns
/// the partner key.
pub fn approve(db: &Db, key: &Key, id: i64, base_url: &str, now: i64) -> Result<String> {
    let application = pending(db, key.id, id)?;
    let program = get(db, key)?;
    let fields = PartnerFields {
        email: Some(application.email.clone()),
        first_name: Some(application.first_name.clone()),
        last_name: Some(application.last_name.clone()),
        group_key: program.group_key.clone(),
    };
    let partner = merchant::create_partner(db, key, None, fields, now)?;
    db.execute(
        "UPDATE applications SET status = 'approved', partner_key = ?2, decided_at = ?3 WHERE id = ?1",
        params![id, partner.key, now],
    )?;
    mail::welcome(db, key, &program, &partner, "approved", base_url, now)?;
    Ok(partner.key)
}

/// Declines application `id` (no email: the applicant is not told).
pub fn decline(db: &Db, key_id: i64, id: i64, now: i64) -> Result<()> {
    pending(db, key_id, id)?;
    db.execute(
        "UPDATE applications SET status = 'declined', decided_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Invites a partner: the partnership, and an email with a sign-in link.
pub fn invite(db: &Db, key: &Key, fields: PartnerFields, base_url: &str, now: i64) -> Result<merchant::Partner> {
    let program = get(db, key)?;
    let partner = merchant::create_partner(db, key, None, fields, now)?;
    mail::welcome(db, key, &program, &partner, "invited", base_url, now)?;
    Ok(partner)
}

/// Emails partnership `partner_key` an invitation with a sign-in link;
/// refused when the program sends no invitations (nothing would go out).
pub fn send_invitation(db: &Db, key: &Key, partner_key: &str, base_url: &str, now: i64) -> Result<merchant::Partner> {
    let partner = merchant::partner(db, key.id, partner_key)?;
    let program = get(db, key)?;
    if !mail::welcome(db, key, &program, &partner, "invited", base_url, now)? {
        let message =
            "this program sends no invitation emails (see its settings); pass the partner a sign-in link instead";
        return Err(Refusal::conflict("emails", message).into());
    }
    Ok(partner)
}

/// The key whose program's application page is `public_key`'s, if open.
pub fn open_for_applications(db: &Db, public_key: &str) -> Result<Option<(Key, Program)>> {
    let Some(key) = keys::find(db, public_key)?.filter(|k| !k.revoked) else {
        return Ok(None);
    };
    let program = get(db, &key)?;
    Ok((program.applications != Applications::Closed).then_some((key, program)))
}
