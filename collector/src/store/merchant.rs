//! The merchant's records: partners (partnerships) and customers, as the
//! merchant API and the webhooks create, read, change and delete them. All of
//! it scoped to one key (`key_id`): test and live data never mix.
//!
//! Inputs are validated by the HTTP layer; what only the database can tell
//! (a missing item, a duplicate key) comes back as a `Refusal`.

use super::page::{self, Cursor, Page};
use super::Refusal;
use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// The row id of the item whose key is `after` or `before` (the API's
/// `starting_after` / `ending_before`), in `table` by column `column`.
pub fn cursor(
    conn: &Connection,
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
    let sql = format!("SELECT id FROM {table} WHERE key_id = ?1 AND {column} = ?2");
    let id: Option<i64> = conn.query_row(&sql, params![key_id, item], |r| r.get(0)).optional()?;
    match id {
        Some(id) => Ok(wrap(id)),
        None => Err(Refusal::not_found(field, format!("no item {item:?} to page from")).into()),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Partner {
    /// The partner key: the item key for `starting_after`.
    pub key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
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
}

const PARTNER_COLUMNS: &str = "partner_key, email, first_name, last_name, created_at, updated_at";

fn partner_row(row: &Row) -> rusqlite::Result<Partner> {
    Ok(Partner {
        key: row.get(0)?,
        email: row.get(1)?,
        first_name: row.get(2)?,
        last_name: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

/// Adds a partner; the partner key is generated when not given. Customers
/// who waited for review because their partner key had no partnership now
/// earn (`credit::partnership_created`).
pub fn create_partner(
    conn: &Connection,
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
             WHERE key_id = ?1 AND (partner_key = ?2 OR email = ?3)",
            params![key_id, partner_key, email],
            |r| r.get(0),
        )
        .optional()?;
    match taken.as_deref() {
        Some("key") => return Err(Refusal::conflict("partner_key", format!("{partner_key:?} is taken")).into()),
        Some(_) => return Err(Refusal::conflict("email", format!("a partner with {email:?} exists")).into()),
        None => {}
    }
    conn.execute(
        "INSERT INTO partners (key_id, partner_key, email, first_name, last_name, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            key_id,
            partner_key,
            email,
            fields.first_name.unwrap_or_default(),
            fields.last_name.unwrap_or_default(),
            now
        ],
    )?;
    super::credit::partnership_created(conn, key, &partner_key, now)?;
    partner(conn, key_id, &partner_key)
}

pub fn partner(conn: &Connection, key_id: i64, partner_key: &str) -> Result<Partner> {
    let sql = format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE key_id = ?1 AND partner_key = ?2");
    conn.query_row(&sql, params![key_id, partner_key], partner_row)
        .optional()?
        .ok_or_else(|| Refusal::not_found("partner_key", format!("no partner {partner_key:?}")).into())
}

pub fn partners(conn: &Connection, key_id: i64, cursor: Cursor, limit: u32) -> Result<Page<Partner>> {
    let select = format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE key_id = ?1");
    page::fetch(
        conn,
        &select,
        "id",
        vec![Value::Integer(key_id)],
        cursor,
        limit,
        partner_row,
    )
}

pub fn update_partner(
    conn: &Connection,
    key_id: i64,
    partner_key: &str,
    fields: PartnerFields,
    now: i64,
) -> Result<Partner> {
    let current = partner(conn, key_id, partner_key)?;
    let email = fields.email.unwrap_or(current.email);
    let clash: bool = conn.query_row(
        "SELECT count(*) > 0 FROM partners WHERE key_id = ?1 AND email = ?2 AND partner_key != ?3",
        params![key_id, email, partner_key],
        |r| r.get(0),
    )?;
    if clash {
        return Err(Refusal::conflict("email", format!("a partner with {email:?} exists")).into());
    }
    conn.execute(
        "UPDATE partners SET email = ?3, first_name = ?4, last_name = ?5, updated_at = ?6
         WHERE key_id = ?1 AND partner_key = ?2",
        params![
            key_id,
            partner_key,
            email,
            fields.first_name.unwrap_or(current.first_name),
            fields.last_name.unwrap_or(current.last_name),
            now
        ],
    )?;
    partner(conn, key_id, partner_key)
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Customer {
    #[serde(skip)]
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
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct CustomerFields {
    pub email: Option<String>,
    pub name: Option<String>,
    pub provider_key: Option<String>,
}

const CUSTOMER_COLUMNS: &str = "id, customer_key, email, name, partner_key, provider_key, source, created_at,
     updated_at, confidence, review, suggested_partner";

fn customer_row(row: &Row) -> rusqlite::Result<Customer> {
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
    conn: &Connection,
    key: &super::Key,
    customer_key: &str,
    partner_key: Option<&str>,
    fields: CustomerFields,
    origin: &str,
    now: i64,
) -> Result<Customer> {
    let by_key = CustomerRef::Key(customer_key.into());
    if let Ok(existing) = find_customer(conn, key.id, &by_key) {
        if !take_over(conn, key, &existing, partner_key, origin, now)? {
            return Err(Refusal::conflict("customer_key", format!("customer {customer_key:?} exists")).into());
        }
        return update_customer(conn, key.id, customer_key, fields, now);
    }
    // The merchant's word: only a partner key no partnership has waits.
    let review = match partner_key {
        Some(partner) => super::credit::review_for(conn, key, partner, "", now)?,
        None => None,
    };
    conn.execute(
        "INSERT INTO customers (key_id, customer_key, email, name, provider_key, partner_key, source,
                                confidence, review, event_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '', ?10, ?10)",
        params![
            key.id,
            customer_key,
            fields.email.unwrap_or_default(),
            fields.name.unwrap_or_default(),
            fields.provider_key,
            partner_key,
            partner_key.map(|_| origin),
            partner_key.map(|_| "merchant"),
            review.map(|r| r.as_str()),
            now
        ],
    )?;
    super::daily::add(conn, key.id, partner_key, now, 0, 1)?;
    find_customer(conn, key.id, &by_key)
}

/// Takes over `existing`, a customer a browser signup created (anyone with
/// the public key can post one), for the merchant (`origin`: the API or a
/// payment provider): its partner becomes `partner_key`, logged. False,
/// and nothing changed, when the merchant created it.
pub fn take_over(
    conn: &Connection,
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
    Ok(true)
}

/// The customer a reference names. An email or provider id that several
/// customers share names none of them: it is refused as ambiguous (a
/// browser signup may claim any email), so the merchant names the customer
/// by its key instead.
pub fn find_customer(conn: &Connection, key_id: i64, by: &CustomerRef) -> Result<Customer> {
    let (column, value) = match by {
        CustomerRef::Key(v) => ("customer_key", v),
        CustomerRef::Email(v) => ("email", v),
        CustomerRef::Provider(v) => ("provider_key", v),
    };
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1 AND {column} = ?2 LIMIT 2");
    let mut found: Vec<Customer> = conn
        .prepare_cached(&sql)?
        .query_map(params![key_id, value], customer_row)?
        .collect::<rusqlite::Result<_>>()?;
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

/// A key's customers, newest first: of one partner, or only those waiting
/// for the merchant's review (see `credit`), when asked.
pub fn customers(
    conn: &Connection,
    key_id: i64,
    partner_key: Option<&str>,
    in_review: bool,
    cursor: Cursor,
    limit: u32,
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
    page::fetch(conn, &select, "id", params, cursor, limit, customer_row)
}

/// Customers whose email starts with `prefix`, or whose key is `prefix`
/// (the dashboard's search; a range on the email index, never a scan).
pub fn search_customers(conn: &Connection, key_id: i64, prefix: &str, limit: u32) -> Result<Vec<Customer>> {
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1 AND email >= ?2 AND email < ?2 || x'f48fbfbf'
         UNION SELECT {CUSTOMER_COLUMNS} FROM customers WHERE key_id = ?1 AND customer_key = ?2
         ORDER BY id DESC LIMIT ?3"
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(params![key_id, prefix, limit], customer_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// A customer's lifetime revenue: its transactions not reversed, per currency.
pub fn revenue(conn: &Connection, customer_id: i64) -> Result<String> {
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
    conn: &Connection,
    key_id: i64,
    customer_key: &str,
    fields: CustomerFields,
    now: i64,
) -> Result<Customer> {
    let current = find_customer(conn, key_id, &CustomerRef::Key(customer_key.into()))?;
    conn.execute(
        "UPDATE customers SET email = ?2, name = ?3, provider_key = ?4, updated_at = ?5 WHERE id = ?1",
        params![
            current.id,
            fields.email.unwrap_or(current.email),
            fields.name.unwrap_or(current.name),
            fields.provider_key.or(current.provider_key),
            now
        ],
    )?;
    find_customer(conn, key_id, &CustomerRef::Key(customer_key.into()))
}

/// Deletes a customer without transactions (those carry rewards: delete
/// the transactions first, which reverses them).
pub fn delete_customer(conn: &Connection, key_id: i64, customer_key: &str) -> Result<Customer> {
    let customer = find_customer(conn, key_id, &CustomerRef::Key(customer_key.into()))?;
    let transactions: i64 = conn.query_row(
        "SELECT count(*) FROM transactions WHERE customer_id = ?1",
        [customer.id],
        |r| r.get(0),
    )?;
    if transactions > 0 {
        return Err(Refusal::conflict(
            "customer_key",
            format!("customer {customer_key:?} has {transactions} transactions; delete them first"),
        )
        .into());
    }
    conn.execute("DELETE FROM customers WHERE id = ?1", [customer.id])?;
    Ok(customer)
}
