//! The merchant's records: partners (partnerships) and customers, as the
//! merchant API and the webhooks create, read, change and delete them. All of
//! it scoped to one key (`key_id`): test and live data never mix.
//!
//! Inputs are validated by the HTTP layer; what only the database can tell
//! (a missing item, a duplicate key) comes back as a `Refusal`.

use super::db::Value;
use super::db::{params, Db, OptionalExtension, Row};
use super::groups::{self, Group};
use super::outbox::{self, Subject};
use super::page::{self, Cursor, List, Page};
use super::Refusal;
use anyhow::Result;

/// The position of the item whose key is `after` or `before` (the API's
/// `starting_after` / `ending_before`), in `table` by column `column`. A
/// deleted item is found by its tombstone (`tombstone`), so a sync that
/// paged up to it goes on from where it stood.
pub fn cursor(
    conn: &Db,
    table: &str,
    column: &str,
    key_id: i64,
    after: Option<&str>,
    before: Option<&str>,
) -> Result<Cursor> {
    let (field, item, wrap): (&'static str, &str, fn(i64) -> Cursor) = match (after, before) {
        (Some(item), _) => ("starting_after", item, Cursor::After),
        (None, Some(item)) => ("ending_before", item, Cursor::Before),
        (None, None) => return Ok(Cursor::First),
    };
    let tombstone =
        "UNION ALL SELECT row_id FROM deleted_items WHERE key_id = ?1 AND tbl = ?3 AND item_key = ?2 LIMIT 1";
    // A row id (rewards, actions) is a number, compared as one.
    let found = match item.parse::<i64>() {
        Ok(id) if column == "id" => conn.query_row(
            &format!("SELECT id FROM {table} WHERE key_id = ?1 AND id = ?4 {tombstone}"),
            params![key_id, item, table, id],
            |r| r.get(0),
        ),
        _ => conn.query_row(
            &format!("SELECT id FROM {table} WHERE key_id = ?1 AND {column} = ?2 {tombstone}"),
            params![key_id, item, table],
            |r| r.get(0),
        ),
    };
    match found.optional()? {
        Some(id) => Ok(wrap(id)),
        None => Err(Refusal::not_found(field, format!("no item {item:?} to page from")).into()),
    }
}

/// Keeps the position (row id) of a row about to be deleted, for `cursor`.
fn tombstone(conn: &Db, table: &str, key_id: i64, item_key: &str, row_id: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO deleted_items (key_id, tbl, item_key, row_id) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key_id, tbl, item_key) DO UPDATE SET row_id = excluded.row_id",
        params![key_id, table, item_key, row_id],
    )?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// The partner key: the item key for `starting_after`.
    pub key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The group it belongs to (see `groups`).
    pub group: Group,
    /// Archived partnerships earn no new rewards.
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partner's referral link parameter (`ps_partner_key=<base64 key>`), and
/// the whole link on the key's first allowed origin, if it has one.
pub fn referral_link(key: &super::Key, partner_key: &str) -> (String, Option<String>) {
    use base64::Engine;
    let parameter = format!(
        "ps_partner_key={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(partner_key)
    );
    let site = key.origins.iter().find(|o| o.as_str() != "*");
    let link = site.map(|site| format!("{site}/?{parameter}"));
    (parameter, link)
}

pub struct PartnerFields {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The group to join (or move to); the default group when creating
    /// without one.
    pub group_key: Option<String>,
}

const PARTNER_SELECT: &str = "SELECT p.partner_key, p.email, p.first_name, p.last_name, p.archived_at, p.created_at,
            p.updated_at, g.id, g.group_key, g.name, g.slug, g.is_default, g.archived_at, g.created_at, g.updated_at
     FROM partners p JOIN groups g ON g.id = p.group_id WHERE p.key_id = ?1";

fn partner_row(row: &Row) -> anyhow::Result<Partner> {
    Ok(Partner {
        key: row.get(0)?,
        email: row.get(1)?,
        first_name: row.get(2)?,
        last_name: row.get(3)?,
        archived_at: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        group: Group {
            id: row.get(7)?,
            key: row.get(8)?,
            name: row.get(9)?,
            slug: row.get(10)?,
            is_default: row.get(11)?,
            archived_at: row.get(12)?,
            created_at: row.get(13)?,
            updated_at: row.get(14)?,
        },
    })
}

/// The group a partnership joins: the one named, or the default.
fn group_to_join(conn: &Db, key_id: i64, group_key: Option<&str>) -> Result<Group> {
    match group_key {
        Some(group_key) => groups::joinable(conn, key_id, group_key),
        None => groups::default_group(conn, key_id),
    }
}

/// Adds a partner; the partner key is generated when not given. Customers
/// who waited for review because their partner key had no partnership now
/// earn (`credit::partnership_created`).
pub fn create_partner(
    conn: &Db,
    key: &super::Key,
    partner_key: Option<String>,
    fields: PartnerFields,
    now: i64,
) -> Result<Partner> {
    let key_id = key.id;
    let partner_key = match partner_key {
        Some(key) => key,
        None => super::keys::random_token(16)?,
    };
    let email = fields.email.unwrap_or_default();
    let taken: Option<String> = conn
        .query_row(
            "SELECT CASE WHEN partner_key = ?2 THEN 'key' ELSE 'email' END FROM partners
             WHERE key_id = ?1 AND (partner_key = ?2 OR email = ?3 COLLATE NOCASE)",
            params![key_id, partner_key, email],
            |r| r.get(0),
        )
        .optional()?;
    match taken.as_deref() {
        Some("key") => return Err(Refusal::conflict("partner_key", format!("{partner_key:?} is taken")).into()),
        Some(_) => return Err(Refusal::conflict("email", format!("a partner with {email:?} exists")).into()),
        None => {}
    }
    let group = group_to_join(conn, key_id, fields.group_key.as_deref())?;
    conn.execute(
        "INSERT INTO partners (key_id, partner_key, email, first_name, last_name, group_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            key_id,
            partner_key,
            email,
            fields.first_name.unwrap_or_default(),
            fields.last_name.unwrap_or_default(),
            group.id,
            now
        ],
    )?;
    outbox::emit(
        conn,
        key_id,
        "partnership.created",
        Subject::Partnership(&partner_key),
        now,
    )?;
    super::credit::partnership_created(conn, key, &partner_key, now)?;
    partner(conn, key_id, &partner_key)
}

pub fn partner(conn: &Db, key_id: i64, partner_key: &str) -> Result<Partner> {
    let sql = format!("{PARTNER_SELECT} AND p.partner_key = ?2");
    conn.query_row(&sql, params![key_id, partner_key], partner_row)
        .optional()?
        .ok_or_else(|| Refusal::not_found("partner_key", format!("no partner {partner_key:?}")).into())
}

/// Which partnerships a list shows.
#[derive(Debug, Default)]
pub struct PartnerFilter {
    /// Only those of this group.
    pub group_key: Option<String>,
    /// Archived ones too (PartnerStack's `include_archived`).
    pub include_archived: bool,
}

pub fn partners(conn: &Db, key_id: i64, filter: &PartnerFilter, list: List) -> Result<Page<Partner>> {
    let mut select = String::from(PARTNER_SELECT);
    let mut params = vec![Value::Integer(key_id)];
    if let Some(group_key) = &filter.group_key {
        params.push(Value::Text(group_key.clone()));
        select += " AND g.group_key = ?2";
    }
    if !filter.include_archived {
        select += " AND p.archived_at IS NULL";
    }
    page::fetch(conn, &select, "p.", params, list, partner_row)
}

/// Archives a partnership: it earns no new rewards and leaves the default
/// list; what it earned stays. Archiving twice changes nothing.
pub fn archive_partner(conn: &Db, key_id: i64, partner_key: &str, now: i64) -> Result<Partner> {
    partner(conn, key_id, partner_key)?;
    let archived = conn.execute(
        "UPDATE partners SET archived_at = ?3, updated_at = ?3
         WHERE key_id = ?1 AND partner_key = ?2 AND archived_at IS NULL",
        params![key_id, partner_key, now],
    )?;
    match archived {
        0 => partner(conn, key_id, partner_key),
        _ => updated(conn, key_id, partner_key, now),
    }
}

pub fn update_partner(conn: &Db, key_id: i64, partner_key: &str, fields: PartnerFields, now: i64) -> Result<Partner> {
    let current = partner(conn, key_id, partner_key)?;
    let email = fields.email.unwrap_or(current.email);
    let clash: bool = conn.query_row(
        "SELECT count(*) > 0 FROM partners WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE AND partner_key != ?3",
        params![key_id, email, partner_key],
        |r| r.get(0),
    )?;
    if clash {
        return Err(Refusal::conflict("email", format!("a partner with {email:?} exists")).into());
    }
    let group = match fields.group_key.as_deref() {
        Some(group_key) if group_key != current.group.key => groups::joinable(conn, key_id, group_key)?,
        _ => current.group,
    };
    conn.execute(
        "UPDATE partners SET email = ?3, first_name = ?4, last_name = ?5, group_id = ?6, updated_at = ?7
         WHERE key_id = ?1 AND partner_key = ?2",
        params![
            key_id,
            partner_key,
            email,
            fields.first_name.unwrap_or(current.first_name),
            fields.last_name.unwrap_or(current.last_name),
            group.id,
            now
        ],
    )?;
    updated(conn, key_id, partner_key, now)
}

/// The partnership just changed, told to the merchant's endpoints.
fn updated(conn: &Db, key_id: i64, partner_key: &str, now: i64) -> Result<Partner> {
    let event = "partnership.updated";
    outbox::emit(conn, key_id, event, Subject::Partnership(partner_key), now)?;
    partner(conn, key_id, partner_key)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: i64,
    /// The customer key: the item key for `starting_after`.
    pub key: String,
    pub email: String,
    pub name: String,
    pub partner_key: Option<String>,
    pub provider_key: Option<String>,
    /// How the partner was decided (`xid`, `partner_key`, `server_cookie`,
    /// `fingerprint`, `api`, `stripe`), none when unattributed.
    pub source: Option<String>,
    /// How much the evidence weighs: `merchant` (the merchant's API or a
    /// payment webhook), `high` (a recorded click), `medium` (a partner key
    /// the browser kept), `low` (a fingerprint match the merchant approved).
    pub confidence: Option<String>,
    /// Why the customer waits for the merchant's review, earning nothing
    /// meanwhile: `unknown_partner`, `self_referral`, `fingerprint`.
    pub review: Option<String>,
    /// The partner a fingerprint match suggests (review `fingerprint`): not
    /// credited unless the merchant approves.
    pub suggested_partner_key: Option<String>,
    /// The merchant's own data about the customer (a JSON object).
    pub meta: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CustomerFields {
    pub email: Option<String>,
    pub name: Option<String>,
    pub provider_key: Option<String>,
    pub meta: Option<serde_json::Value>,
}

const CUSTOMER_COLUMNS: &str = "id, customer_key, email, name, partner_key, provider_key, source, created_at,
     updated_at, confidence, review, suggested_partner, meta";

fn customer_row(row: &Row) -> anyhow::Result<Customer> {
    Ok(Customer {
        id: row.get(0)?,
        key: row.get(1)?,
        email: row.get(2)?,
        name: row.get(3)?,
        partner_key: row.get(4)?,
        provider_key: row.get(5)?,
        source: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        confidence: row.get(9)?,
        review: row.get(10)?,
        suggested_partner_key: row.get(11)?,
        meta: row
            .get::<_, Option<String>>(12)?
            .and_then(|text| serde_json::from_str(&text).ok()),
    })
}

/// How a payment names its customer.
#[derive(Debug, Clone)]
pub enum CustomerRef {
    Key(String),
    Email(String),
    /// The payment provider's customer id (Stripe `cus_…`).
    Provider(String),
}

impl CustomerRef {
    fn field(&self) -> &'static str {
        match self {
            CustomerRef::Key(_) => "customer_key",
            CustomerRef::Email(_) => "customer_email",
            CustomerRef::Provider(_) => "provider_key",
        }
    }
}

/// Adds a customer created by the merchant's server (or a webhook), credited
/// to `partner_key` with source `origin`: the merchant's word. A customer a
/// browser signup created first (anyone with the public key can post one)
/// is taken over: its partner becomes the merchant's, and the change is
/// logged (`credit::reattribute`). One the merchant created is a conflict.
pub fn create_customer(
    conn: &Db,
    key: &super::Key,
    customer_key: &str,
    partner_key: Option<&str>,
    fields: CustomerFields,
    origin: &str,
    now: i64,
) -> Result<Customer> {
    let email = fields.email.clone().unwrap_or_default();
    // A customer the merchant names no partner for is the partner's whose
    // approved lead it was (see `leads`).
    let lead_partner = match partner_key {
        None => super::leads::partner_of_approved_lead(conn, key.id, &email)?,
        Some(_) => None,
    };
    let (partner_key, origin) = match &lead_partner {
        Some(partner) => (Some(partner.as_str()), "lead"),
        None => (partner_key, origin),
    };
    let by_key = CustomerRef::Key(customer_key.into());
    if let Ok(existing) = find_customer(conn, key.id, &by_key) {
        if !take_over(conn, key, &existing, partner_key, origin, now)? {
            return Err(Refusal::conflict("customer_key", format!("customer {customer_key:?} exists")).into());
        }
        super::leads::convert(conn, key.id, &email, customer_key, partner_key, now)?;
        return update_customer(conn, key.id, customer_key, fields, now);
    }
    // The merchant's word: only a partner key no partnership has waits.
    let review = match partner_key {
        Some(partner) => super::credit::review_for(conn, key, partner, "", now)?,
        None => None,
    };
    conn.execute(
        "INSERT INTO customers (key_id, customer_key, email, name, provider_key, partner_key, source,
                                confidence, review, event_id, meta, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '', ?10, ?11, ?11)",
        params![
            key.id,
            customer_key,
            email,
            fields.name.unwrap_or_default(),
            fields.provider_key,
            partner_key,
            partner_key.map(|_| origin),
            partner_key.map(|_| "merchant"),
            review.map(|r| r.as_str()),
            fields.meta.map(|m| m.to_string()),
            now
        ],
    )?;
    super::daily::add(conn, key.id, partner_key, now, 0, 1)?;
    outbox::emit(conn, key.id, "customer.created", Subject::Customer(customer_key), now)?;
    super::leads::convert(conn, key.id, &email, customer_key, partner_key, now)?;
    find_customer(conn, key.id, &by_key)
}

/// Takes over `existing`, a customer a browser signup created (anyone with
/// the public key can post one), for the merchant (`origin`: the API or a
/// payment provider): its partner becomes `partner_key`, logged. False,
/// and nothing changed, when the merchant created it.
pub fn take_over(
    conn: &Db,
    key: &super::Key,
    existing: &Customer,
    partner_key: Option<&str>,
    origin: &str,
    now: i64,
) -> Result<bool> {
    let from_browser: bool = conn.query_row(
        "SELECT event_id != '' FROM customers WHERE id = ?1",
        [existing.id],
        |r| r.get(0),
    )?;
    if !from_browser {
        return Ok(false);
    }
    let reason = format!("created by the merchant ({origin}) over a browser signup");
    super::credit::reattribute(conn, key, existing, partner_key, origin, &reason, now)?;
    conn.execute(
        "UPDATE customers SET source = ?2, confidence = 'merchant', event_id = '' WHERE id = ?1",
        params![existing.id, partner_key.map(|_| origin)],
    )?;
    outbox::emit(conn, key.id, "customer.updated", Subject::Customer(&existing.key), now)?;
    Ok(true)
}

/// The customer a reference names. An email or provider id that several
/// customers share names none of them: it is refused as ambiguous (a
/// browser signup may claim any email), so the merchant names the customer
/// by its key instead.
pub fn find_customer(conn: &Db, key_id: i64, by: &CustomerRef) -> Result<Customer> {
    // Emails match whatever their case (`Ann@Example.com` is ann@example.com).
    let (column, value, collation) = match by {
        CustomerRef::Key(v) => ("customer_key", v, ""),
        CustomerRef::Email(v) => ("email", v, " COLLATE NOCASE"),
        CustomerRef::Provider(v) => ("provider_key", v, ""),
    };
    let sql =
        format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1 AND {column} = ?2{collation} LIMIT 2");
    let mut found: Vec<Customer> = conn
        .prepare_cached(&sql)?
        .query_map(params![key_id, value], customer_row)?
        .collect::<anyhow::Result<_>>()?;
    match found.len() {
        0 => Err(Refusal::not_found(by.field(), format!("no customer with {column} {value:?}")).into()),
        1 => Ok(found.remove(0)),
        _ => Err(Refusal::conflict(
            by.field(),
            format!("{value:?} names more than one customer; name the customer by customer_key"),
        )
        .into()),
    }
}

/// A key's customers: of one partner, or only those waiting for the
/// merchant's review (see `credit`), when asked.
pub fn customers(
    conn: &Db,
    key_id: i64,
    partner_key: Option<&str>,
    in_review: bool,
    list: List,
) -> Result<Page<Customer>> {
    let mut select = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1");
    let mut params = vec![Value::Integer(key_id)];
    if let Some(partner_key) = partner_key {
        params.push(Value::Text(partner_key.into()));
        select += " AND partner_key = ?2";
    }
    if in_review {
        select += " AND review IS NOT NULL";
    }
    page::fetch(conn, &select, "", params, list, customer_row)
}

/// Customers whose email starts with `prefix`, or whose key is `prefix`
/// (the dashboard's search; a range on the email index, never a scan).
pub fn search_customers(conn: &Db, key_id: i64, prefix: &str, limit: u32) -> Result<Vec<Customer>> {
    // The largest character, U+10FFFF: every email starting with `prefix`
    // sorts before `prefix` followed by it (text compares bytewise on both).
    let last = if conn.is_postgres() {
        "chr(1114111)"
    } else {
        "x'f48fbfbf'"
    };
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1 AND email >= ?2 AND email < ?2 || {last}
         UNION SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1 AND customer_key = ?2
         ORDER BY id DESC LIMIT ?3"
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(params![key_id, prefix, limit], customer_row)?
        .collect::<anyhow::Result<_>>()?;
    Ok(rows)
}

/// A customer's lifetime revenue: its transactions not reversed, per currency.
pub fn revenue(conn: &Db, customer_id: i64) -> Result<String> {
    super::money::sums_text(
        conn,
        "SELECT currency, sum(amount) FROM transactions
         WHERE customer_id = ?1 AND reversed_at IS NULL GROUP BY currency ORDER BY currency",
        [customer_id],
    )
}

/// Changes a customer's contact fields. Its partner changes only through
/// `credit::reattribute`, which logs why.
pub fn update_customer(
    conn: &Db,
    key_id: i64,
    customer_key: &str,
    fields: CustomerFields,
    now: i64,
) -> Result<Customer> {
    let current = find_customer(conn, key_id, &CustomerRef::Key(customer_key.into()))?;
    conn.execute(
        "UPDATE customers SET email = ?2, name = ?3, provider_key = ?4, meta = ?5, updated_at = ?6 WHERE id = ?1",
        params![
            current.id,
            fields.email.unwrap_or(current.email),
            fields.name.unwrap_or(current.name),
            fields.provider_key.or(current.provider_key),
            fields.meta.or(current.meta).map(|m| m.to_string()),
            now
        ],
    )?;
    outbox::emit(conn, key_id, "customer.updated", Subject::Customer(customer_key), now)?;
    find_customer(conn, key_id, &CustomerRef::Key(customer_key.into()))
}

/// Deletes a customer without transactions or actions: those carry rewards
/// and revenue, so a customer with any (refunded ones too) stays.
pub fn delete_customer(conn: &Db, key_id: i64, customer_key: &str) -> Result<Customer> {
    let customer = find_customer(conn, key_id, &CustomerRef::Key(customer_key.into()))?;
    let transactions: i64 = conn.query_row(
        "SELECT count(*) FROM transactions WHERE customer_id = ?1",
        [customer.id],
        |r| r.get(0),
    )?;
    if transactions > 0 {
        return Err(Refusal::conflict(
            "customer_key",
            format!(
                "customer {customer_key:?} has {transactions} transactions (refunded ones too), which its \
                 partner's rewards refer to; it stays"
            ),
        )
        .into());
    }
    let actions: i64 = conn.query_row(
        "SELECT count(*) FROM actions WHERE customer_id = ?1",
        [customer.id],
        |r| r.get(0),
    )?;
    if actions > 0 {
        return Err(Refusal::conflict(
            "customer_key",
            format!("customer {customer_key:?} has {actions} actions, which earned rewards; it stays"),
        )
        .into());
    }
    tombstone(conn, "customers", key_id, customer_key, customer.id)?;
    conn.execute("DELETE FROM customers WHERE id = ?1", [customer.id])?;
    Ok(customer)
}
