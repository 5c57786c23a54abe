//! Leads and deals: what a partner brings before there is a customer.
//!
//! - A lead is a prospect a partner submits (through the merchant's API, or
//!   a form the merchant forwards). The merchant approves or declines it.
//!   When the merchant creates a customer with an approved lead's email and
//!   names no partner, or approves the lead of a customer credited to
//!   nobody, the customer is credited to the lead's partner (source `lead`)
//!   and the lead becomes `converted`, naming the customer. A browser signup
//!   alone (anyone with the public key can claim an email) does neither.
//! - A deal is a sales opportunity a partner brings (often from a lead): an
//!   account, a stage and an amount, moved along by the merchant's CRM.
//!
//! Both belong to a partnership that is not archived, and are archived,
//! never deleted: a list with `include_archived` shows them.

use super::db::Value;
use super::db::{params, Db, OptionalExtension, Row};
use super::merchant::{self, CustomerRef};
use super::page::{self, List, Page};
use super::{Key, Refusal};
use anyhow::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub key: String,
    pub partner_key: String,
    pub group_key: Option<String>,
    pub email: String,
    pub name: String,
    pub company: String,
    /// `open`, `approved`, `declined` or `converted`.
    pub status: String,
    pub amount: Option<i64>,
    pub external_key: Option<String>,
    /// The customer it became.
    pub customer_key: Option<String>,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A lead's fields, as a create or update gives them.
#[derive(Debug, Default)]
pub struct LeadFields {
    pub email: Option<String>,
    pub name: Option<String>,
    pub company: Option<String>,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub external_key: Option<String>,
}

const LEAD_SELECT: &str =
    "SELECT l.lead_key, l.partner_key, g.group_key, l.email, l.name, l.company, l.status, l.amount,
            l.external_key, l.customer_key, l.archived_at, l.created_at, l.updated_at
     FROM leads l LEFT JOIN partners p ON p.key_id = l.key_id AND p.partner_key = l.partner_key
          LEFT JOIN groups g ON g.id = p.group_id
     WHERE l.key_id = ?1";

fn lead_row(row: &Row) -> anyhow::Result<Lead> {
    Ok(Lead {
        key: row.get(0)?,
        partner_key: row.get(1)?,
        group_key: row.get(2)?,
        email: row.get(3)?,
        name: row.get(4)?,
        company: row.get(5)?,
        status: row.get(6)?,
        amount: row.get(7)?,
        external_key: row.get(8)?,
        customer_key: row.get(9)?,
        archived_at: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

/// A partnership that may bring leads and deals: one that exists and is
/// not archived.
fn active_partner(conn: &Db, key_id: i64, partner_key: &str) -> Result<()> {
    let partner = merchant::partner(conn, key_id, partner_key)?;
    if partner.archived_at.is_some() {
        return Err(Refusal::conflict("partner_key", format!("partnership {partner_key:?} is archived")).into());
    }
    Ok(())
}

/// The statuses a merchant may set; `converted` comes only from a customer.
pub const LEAD_STATUSES: [&str; 3] = ["open", "approved", "declined"];

pub fn create_lead(
    conn: &Db,
    key_id: i64,
    lead_key: &str,
    partner_key: &str,
    fields: LeadFields,
    now: i64,
) -> Result<Lead> {
    active_partner(conn, key_id, partner_key)?;
    if find_lead(conn, key_id, lead_key)?.is_some() {
        return Err(Refusal::conflict("key", format!("lead {lead_key:?} exists")).into());
    }
    conn.execute(
        "INSERT INTO leads (key_id, lead_key, partner_key, email, name, company, status, amount, external_key,
                            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            key_id,
            lead_key,
            partner_key,
            fields.email.unwrap_or_default(),
            fields.name.unwrap_or_default(),
            fields.company.unwrap_or_default(),
            fields.status.unwrap_or_else(|| "open".into()),
            fields.amount,
            fields.external_key,
            now
        ],
    )?;
    lead(conn, key_id, lead_key)
}

fn find_lead(conn: &Db, key_id: i64, lead_key: &str) -> Result<Option<Lead>> {
    let sql = format!("{LEAD_SELECT} AND l.lead_key = ?2");
    conn.query_row(&sql, params![key_id, lead_key], lead_row).optional()
}

pub fn lead(conn: &Db, key_id: i64, lead_key: &str) -> Result<Lead> {
    find_lead(conn, key_id, lead_key)?.ok_or_else(|| Refusal::not_found("key", format!("no lead {lead_key:?}")).into())
}

pub fn leads(
    conn: &Db,
    key_id: i64,
    partner_key: Option<&str>,
    include_archived: bool,
    list: List,
) -> Result<Page<Lead>> {
    let mut select = String::from(LEAD_SELECT);
    if !include_archived {
        select += " AND l.archived_at IS NULL";
    }
    let mut params = vec![Value::Integer(key_id)];
    if let Some(partner_key) = partner_key {
        params.push(Value::Text(partner_key.into()));
        select += " AND l.partner_key = ?2";
    }
    page::fetch(conn, &select, "l.", params, list, lead_row)
}

/// Changes a lead. A converted lead keeps its status. Approving a lead
/// whose prospect is already a customer credited to nobody credits it to
/// the lead's partner (logged as a change of credit), and converts it.
pub fn update_lead(conn: &Db, key: &Key, lead_key: &str, fields: LeadFields, now: i64) -> Result<Lead> {
    let key_id = key.id;
    let current = lead(conn, key_id, lead_key)?;
    let approving = fields.status.as_deref() == Some("approved") && current.status != "approved";
    if current.status == "converted" && fields.status.is_some() {
        return Err(Refusal::conflict("status", "the lead became a customer; its status stays converted").into());
    }
    conn.execute(
        "UPDATE leads SET email = ?3, name = ?4, company = ?5, status = ?6, amount = ?7, external_key = ?8,
                          updated_at = ?9
         WHERE key_id = ?1 AND lead_key = ?2",
        params![
            key_id,
            lead_key,
            fields.email.unwrap_or(current.email),
            fields.name.unwrap_or(current.name),
            fields.company.unwrap_or(current.company),
            fields.status.unwrap_or(current.status),
            fields.amount.or(current.amount),
            fields.external_key.or(current.external_key),
            now
        ],
    )?;
    let updated = lead(conn, key_id, lead_key)?;
    if approving && current.archived_at.is_none() {
        let by_email = CustomerRef::Email(updated.email.clone());
        if let Ok(customer) = merchant::find_customer(conn, key_id, &by_email) {
            if customer.partner_key.is_none() {
                let reason = format!("lead {lead_key:?} approved");
                super::credit::reattribute(conn, key, &customer, Some(&updated.partner_key), "lead", &reason, now)?;
            }
            let credited = merchant::find_customer(conn, key_id, &CustomerRef::Key(customer.key.clone()))?;
            convert(
                conn,
                key_id,
                &updated.email,
                &credited.key,
                credited.partner_key.as_deref(),
                now,
            )?;
        }
    }
    lead(conn, key_id, lead_key)
}

/// The partner of the newest approved lead with `email`, if any.
pub fn partner_of_approved_lead(conn: &Db, key_id: i64, email: &str) -> Result<Option<String>> {
    if email.is_empty() {
        return Ok(None);
    }
    conn.query_row(
        "SELECT partner_key FROM leads
             WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE AND status = 'approved' AND archived_at IS NULL
             ORDER BY id DESC LIMIT 1",
        params![key_id, email],
        |r| r.get(0),
    )
    .optional()
}

/// Marks converted into `customer_key` the approved leads with `email` of
/// `partner`, the partner the customer is credited to: another partner's
/// lead for the same prospect stays approved, claiming nothing.
pub fn convert(conn: &Db, key_id: i64, email: &str, customer_key: &str, partner: Option<&str>, now: i64) -> Result<()> {
    let (false, Some(partner)) = (email.is_empty(), partner) else {
        return Ok(());
    };
    conn.execute(
        "UPDATE leads SET status = 'converted', customer_key = ?3, updated_at = ?4
         WHERE key_id = ?1 AND email = ?2 COLLATE NOCASE AND partner_key = ?5 AND status = 'approved'
           AND archived_at IS NULL",
        params![key_id, email, customer_key, now, partner],
    )?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deal {
    pub key: String,
    pub partner_key: String,
    pub group_key: Option<String>,
    pub lead_key: Option<String>,
    pub account_name: String,
    pub contact_first_name: String,
    pub contact_last_name: String,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub stage: String,
    pub close_date: Option<String>,
    pub lost_reason: Option<String>,
    pub external_key: Option<String>,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A deal's fields, as a create or update gives them.
#[derive(Debug, Default)]
pub struct DealFields {
    pub lead_key: Option<String>,
    pub account_name: Option<String>,
    pub contact_first_name: Option<String>,
    pub contact_last_name: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub stage: Option<String>,
    pub close_date: Option<String>,
    pub lost_reason: Option<String>,
    pub external_key: Option<String>,
}

const DEAL_SELECT: &str = "SELECT d.deal_key, d.partner_key, g.group_key, d.lead_key, d.account_name,
            d.contact_first_name, d.contact_last_name, d.amount, d.currency, d.stage, d.close_date, d.lost_reason,
            d.external_key, d.archived_at, d.created_at, d.updated_at
     FROM deals d LEFT JOIN partners p ON p.key_id = d.key_id AND p.partner_key = d.partner_key
          LEFT JOIN groups g ON g.id = p.group_id
     WHERE d.key_id = ?1";

fn deal_row(row: &Row) -> anyhow::Result<Deal> {
    Ok(Deal {
        key: row.get(0)?,
        partner_key: row.get(1)?,
        group_key: row.get(2)?,
        lead_key: row.get(3)?,
        account_name: row.get(4)?,
        contact_first_name: row.get(5)?,
        contact_last_name: row.get(6)?,
        amount: row.get(7)?,
        currency: row.get(8)?,
        stage: row.get(9)?,
        close_date: row.get(10)?,
        lost_reason: row.get(11)?,
        external_key: row.get(12)?,
        archived_at: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
    })
}

/// An amount means nothing without its currency.
fn priced(amount: Option<i64>, currency: &Option<String>) -> Result<()> {
    match (amount, currency) {
        (Some(_), None) => Err(Refusal::invalid("currency", "is required with an amount").into()),
        _ => Ok(()),
    }
}

pub fn create_deal(
    conn: &Db,
    key_id: i64,
    deal_key: &str,
    partner_key: &str,
    fields: DealFields,
    now: i64,
) -> Result<Deal> {
    active_partner(conn, key_id, partner_key)?;
    priced(fields.amount, &fields.currency)?;
    if find_deal(conn, key_id, deal_key)?.is_some() {
        return Err(Refusal::conflict("key", format!("deal {deal_key:?} exists")).into());
    }
    if let Some(lead_key) = &fields.lead_key {
        let Some(lead) = find_lead(conn, key_id, lead_key)? else {
            return Err(Refusal::not_found("lead_key", format!("no lead {lead_key:?}")).into());
        };
        if lead.partner_key != partner_key {
            return Err(Refusal::invalid("lead_key", format!("lead {lead_key:?} is another partner's")).into());
        }
    }
    conn.execute(
        "INSERT INTO deals (key_id, deal_key, partner_key, lead_key, account_name, contact_first_name,
                            contact_last_name, amount, currency, stage, close_date, lost_reason, external_key,
                            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
        params![
            key_id,
            deal_key,
            partner_key,
            fields.lead_key,
            fields.account_name.unwrap_or_default(),
            fields.contact_first_name.unwrap_or_default(),
            fields.contact_last_name.unwrap_or_default(),
            fields.amount,
            fields.currency,
            fields.stage.unwrap_or_else(|| "open".into()),
            fields.close_date,
            fields.lost_reason,
            fields.external_key,
            now
        ],
    )?;
    deal(conn, key_id, deal_key)
}

fn find_deal(conn: &Db, key_id: i64, deal_key: &str) -> Result<Option<Deal>> {
    let sql = format!("{DEAL_SELECT} AND d.deal_key = ?2");
    conn.query_row(&sql, params![key_id, deal_key], deal_row).optional()
}

pub fn deal(conn: &Db, key_id: i64, deal_key: &str) -> Result<Deal> {
    find_deal(conn, key_id, deal_key)?.ok_or_else(|| Refusal::not_found("key", format!("no deal {deal_key:?}")).into())
}

pub fn deals(
    conn: &Db,
    key_id: i64,
    partner_key: Option<&str>,
    include_archived: bool,
    list: List,
) -> Result<Page<Deal>> {
    let mut select = String::from(DEAL_SELECT);
    if !include_archived {
        select += " AND d.archived_at IS NULL";
    }
    let mut params = vec![Value::Integer(key_id)];
    if let Some(partner_key) = partner_key {
        params.push(Value::Text(partner_key.into()));
        select += " AND d.partner_key = ?2";
    }
    page::fetch(conn, &select, "d.", params, list, deal_row)
}

pub fn update_deal(conn: &Db, key_id: i64, deal_key: &str, fields: DealFields, now: i64) -> Result<Deal> {
    let current = deal(conn, key_id, deal_key)?;
    let (amount, currency) = (fields.amount.or(current.amount), fields.currency.or(current.currency));
    priced(amount, &currency)?;
    conn.execute(
        "UPDATE deals SET account_name = ?3, contact_first_name = ?4, contact_last_name = ?5, amount = ?6,
                          currency = ?7, stage = ?8, close_date = ?9, lost_reason = ?10, external_key = ?11,
                          updated_at = ?12
         WHERE key_id = ?1 AND deal_key = ?2",
        params![
            key_id,
            deal_key,
            fields.account_name.unwrap_or(current.account_name),
            fields.contact_first_name.unwrap_or(current.contact_first_name),
            fields.contact_last_name.unwrap_or(current.contact_last_name),
            amount,
            currency,
            fields.stage.unwrap_or(current.stage),
            fields.close_date.or(current.close_date),
            fields.lost_reason.or(current.lost_reason),
            fields.external_key.or(current.external_key),
            now
        ],
    )?;
    deal(conn, key_id, deal_key)
}

/// Archives a lead (`table` leads) or a deal (deals): it leaves the lists.
pub fn archive(conn: &Db, table: &str, key_id: i64, item_key: &str, now: i64) -> Result<()> {
    let column = if table == "leads" { "lead_key" } else { "deal_key" };
    let sql = format!(
        "UPDATE {table} SET archived_at = coalesce(archived_at, ?3), updated_at = ?3
         WHERE key_id = ?1 AND {column} = ?2"
    );
    match conn.execute(&sql, params![key_id, item_key, now])? {
        0 => Err(Refusal::not_found("key", format!("no {} {item_key:?}", &table[..4])).into()),
        _ => Ok(()),
    }
}
