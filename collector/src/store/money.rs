//! Money: transactions (payments the merchant reports by API or a payment
//! provider's webhook), the offers a program pays partners by, and the
//! rewards a transaction earns.
//!
//! A transaction creates its rewards in the same database transaction as
//! itself, so neither exists without the other. A reversal (refund, deleted
//! transaction) declines the rewards not yet paid and claws back the paid ones
//! with a negative reward. Test-mode keys never create rewards.
//!
//! Offers (each for every group, or one group's partnerships; archived
//! offers and archived partnerships earn nothing new):
//! - `new_customer`: a flat amount, per currency, once per customer (its
//!   first paying transaction in a currency the offer names).
//! - `percent`: a percentage of each transaction, for `months` months after
//!   the customer's first transaction (a month is 1/12 of 365.25 days), or
//!   forever without `months`.
//! - `action`: a flat amount (one currency), once per customer, for the
//!   customer's action `action_key` (PartnerStack's actions: `activated`,
//!   `upgraded`; see `actions`).

use super::db::Value;
use super::db::{params, Db, OptionalExtension, Row};
use super::merchant::{self, Customer, CustomerRef};
use super::outbox::{self, Subject};
use super::page::{self, List, Page};
use super::{Key, Mode, Refusal};
use anyhow::Result;
use std::collections::BTreeMap;

const MONTH_MS: i64 = 2_629_800_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OfferKind {
    NewCustomer,
    Percent,
    Action,
}

impl OfferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::NewCustomer => "new_customer",
            OfferKind::Percent => "percent",
            OfferKind::Action => "action",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub key: String,
    /// The group whose partnerships it pays; none: every group.
    pub group_key: Option<String>,
    /// Archived offers create no new rewards.
    pub archived: bool,
    pub kind: OfferKind,
    /// Percent offers: the share of each transaction, in percent.
    pub percent: Option<f64>,
    /// New-customer offers: the flat amount per currency, in cents.
    pub amounts: BTreeMap<String, i64>,
    /// Percent offers: how many months they pay; none: forever.
    pub months: Option<u32>,
    /// Action offers: the action they pay for.
    pub action_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An offer to create or replace.
#[derive(Debug, Clone)]
pub struct OfferSpec {
    pub key: String,
    pub kind: OfferKind,
    /// Basis points (1/100 of a percent).
    pub percent_bp: Option<u32>,
    pub amounts: BTreeMap<String, i64>,
    pub months: Option<u32>,
    pub group_key: Option<String>,
    pub action_key: Option<String>,
}

struct OfferRow {
    id: i64,
    kind: OfferKind,
    percent_bp: Option<i64>,
    amounts: BTreeMap<String, i64>,
    months: Option<i64>,
    action_key: Option<String>,
}

fn kind_of(text: &str) -> OfferKind {
    match text {
        "percent" => OfferKind::Percent,
        "action" => OfferKind::Action,
        _ => OfferKind::NewCustomer,
    }
}

/// Creates or replaces the offer `spec.key`.
pub fn set_offer(conn: &Db, key_id: i64, spec: &OfferSpec, now: i64) -> Result<Offer> {
    match spec.kind {
        OfferKind::Percent if spec.percent_bp.is_none_or(|bp| bp == 0 || bp > 10_000) => {
            return Err(Refusal::invalid("percent", "a percent offer needs a percent above 0, at most 100").into())
        }
        OfferKind::NewCustomer if spec.amounts.is_empty() => {
            return Err(Refusal::invalid("amounts", "a new-customer offer needs an amount per currency").into())
        }
        OfferKind::Action if spec.action_key.is_none() => {
            return Err(Refusal::invalid("action_key", "an action offer needs the action it pays for").into())
        }
        OfferKind::Action if spec.amounts.len() != 1 => {
            return Err(Refusal::invalid("amounts", "an action offer pays one amount, in one currency").into())
        }
        _ => {}
    }
    let group_id = match &spec.group_key {
        Some(group_key) => Some(super::groups::joinable(conn, key_id, group_key)?.id),
        None => None,
    };
    // Saving an archived offer again brings it back.
    conn.execute(
        "INSERT INTO offers (key_id, offer_key, kind, percent_bp, amounts, months, group_id, action_key,
                             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT (key_id, offer_key) DO UPDATE SET kind = ?3, percent_bp = ?4, amounts = ?5,
             months = ?6, group_id = ?7, action_key = ?8, archived_at = NULL, updated_at = ?9",
        params![
            key_id,
            spec.key,
            spec.kind.as_str(),
            spec.percent_bp,
            serde_json::to_string(&spec.amounts)?,
            spec.months,
            group_id,
            spec.action_key,
            now
        ],
    )?;
    offer(conn, key_id, &spec.key)
}

const OFFER_SELECT: &str = "SELECT o.offer_key, o.kind, o.percent_bp, o.amounts, o.months, o.created_at, o.updated_at,
            g.group_key, o.archived_at IS NOT NULL, o.action_key
     FROM offers o LEFT JOIN groups g ON g.id = o.group_id WHERE o.key_id = ?1";

fn offer_row(row: &Row) -> anyhow::Result<Offer> {
    let amounts: String = row.get(3)?;
    Ok(Offer {
        key: row.get(0)?,
        kind: kind_of(&row.get::<_, String>(1)?),
        percent: row.get::<_, Option<i64>>(2)?.map(|bp| bp as f64 / 100.0),
        amounts: serde_json::from_str(&amounts).unwrap_or_default(),
        months: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        group_key: row.get(7)?,
        archived: row.get(8)?,
        action_key: row.get(9)?,
    })
}

pub fn offer(conn: &Db, key_id: i64, offer_key: &str) -> Result<Offer> {
    let sql = format!("{OFFER_SELECT} AND o.offer_key = ?2");
    conn.query_row(&sql, params![key_id, offer_key], offer_row)
        .optional()?
        .ok_or_else(|| Refusal::not_found("key", format!("no offer {offer_key:?}")).into())
}

/// A key's offers, archived ones too (marked).
pub fn offers(conn: &Db, key_id: i64, list: List) -> Result<Page<Offer>> {
    page::fetch(conn, OFFER_SELECT, "o.", vec![Value::Integer(key_id)], list, offer_row)
}

/// Archives an offer: it creates no new rewards; those it created stay.
pub fn archive_offer(conn: &Db, key_id: i64, offer_key: &str, now: i64) -> Result<Offer> {
    conn.execute(
        "UPDATE offers SET archived_at = ?3, updated_at = ?3
         WHERE key_id = ?1 AND offer_key = ?2 AND archived_at IS NULL",
        params![key_id, offer_key, now],
    )?;
    offer(conn, key_id, offer_key)
}

/// Sums per currency as text: "USD 1,120.00, JPY 4,900, EUR -5.50"; ""
/// for none.
pub fn amounts_text(sums: &[(String, i64)]) -> String {
    let text: Vec<String> = sums
        .iter()
        .map(|(currency, amount)| amount_text(*amount, currency))
        .collect();
    text.join(", ")
}

/// `amount`, in `currency`'s minor unit, as people read it: the code, then
/// the amount with the currency's own number of decimals (JPY has none:
/// 4900 is "JPY 4,900"; KWD has three) and thousands separators.
pub fn amount_text(amount: i64, currency: &str) -> String {
    let decimals = minor_digits(currency);
    let unit = 10u64.pow(decimals);
    let (whole, fraction) = (amount.unsigned_abs() / unit, amount.unsigned_abs() % unit);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if amount < 0 { "-" } else { "" };
    match decimals {
        0 => format!("{currency} {sign}{grouped}"),
        d => format!("{currency} {sign}{grouped}.{fraction:0width$}", width = d as usize),
    }
}

/// `amount` as a plain decimal in `currency`'s unit, for files payout
/// providers read: "1234.50", "4900" (JPY), "-0.05".
pub fn decimal(amount: i64, currency: &str) -> String {
    let decimals = minor_digits(currency);
    let unit = 10u64.pow(decimals);
    let sign = if amount < 0 { "-" } else { "" };
    let (whole, fraction) = (amount.unsigned_abs() / unit, amount.unsigned_abs() % unit);
    match decimals {
        0 => format!("{sign}{whole}"),
        d => format!("{sign}{whole}.{fraction:0width$}", width = d as usize),
    }
}

/// Digits after the decimal point in `currency`'s minor unit (ISO 4217):
/// 2 but for the currencies listed.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// `sql` (rows of currency, sum) with `params`, as text (see `amounts_text`).
pub fn sums_text(conn: &Db, sql: &str, params: impl super::db::Params) -> Result<String> {
    let sums: Vec<(String, i64)> = conn
        .prepare_cached(sql)?
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<anyhow::Result<_>>()?;
    Ok(amounts_text(&sums))
}

/// A partner's figures for the dashboard.
#[derive(Debug, Clone, Default)]
pub struct PartnerFigures {
    pub clicks: i64,
    pub signups: i64,
    pub revenue: String,
    /// Rewards new or approved.
    pub owed: String,
    pub paid: String,
}

pub fn partner_figures(conn: &Db, key_id: i64, partner_key: &str) -> Result<PartnerFigures> {
    let count = |sql: &str| -> Result<i64> { conn.query_row(sql, params![key_id, partner_key], |r| r.get(0)) };
    let rewards = |statuses: &str| {
        sums_text(
            conn,
            &format!(
                "SELECT currency, sum(amount) FROM rewards WHERE key_id = ?1 AND partner_key = ?2
                 AND status IN ({statuses}) GROUP BY currency ORDER BY currency"
            ),
            params![key_id, partner_key],
        )
    };
    Ok(PartnerFigures {
        // From the per-day counts: counting events would need an index the
        // ingest path pays for on every click.
        clicks: count("SELECT coalesce(sum(clicks), 0) FROM daily WHERE key_id = ?1 AND partner_key = ?2")?,
        signups: count("SELECT coalesce(sum(signups), 0) FROM daily WHERE key_id = ?1 AND partner_key = ?2")?,
        revenue: sums_text(
            conn,
            "SELECT currency, amount FROM partner_revenue WHERE key_id = ?1 AND partner_key = ?2 ORDER BY currency",
            params![key_id, partner_key],
        )?,
        owed: rewards("'new', 'approved'")?,
        paid: rewards("'paid'")?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: i64,
    /// The merchant's idempotency key: the item key for `starting_after`.
    pub key: String,
    pub customer_key: String,
    pub customer_email: String,
    pub customer_name: String,
    /// The partner the customer is credited to.
    pub partner_key: Option<String>,
    /// Integer cents (the currency's minor unit).
    pub amount: i64,
    pub currency: String,
    pub product_key: Option<String>,
    pub category_key: Option<String>,
    /// Where it came from: `api`, `stripe`, `chargebee`, `recurly`.
    pub origin: String,
    pub created_at: i64,
    /// When it was refunded or deleted (its rewards reversed).
    pub reversed_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub key: String,
    pub customer: CustomerRef,
    /// Signs the customer up when none matches `customer` (PartnerStack's
    /// "use a transaction to sign up a customer").
    pub sign_up: Option<SignUp>,
    pub amount: i64,
    pub currency: String,
    pub product_key: Option<String>,
    pub category_key: Option<String>,
    pub origin: &'static str,
}

/// The customer a transaction creates when its customer does not exist yet.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub partner_key: Option<String>,
    pub fields: merchant::CustomerFields,
}

const TRANSACTION_COLUMNS: &str = "t.id, t.transaction_key, c.customer_key, t.amount, t.currency, t.product_key,
     t.category_key, t.origin, t.created_at, t.reversed_at, t.updated_at, c.email, c.name, c.partner_key";

fn transaction_row(row: &Row) -> anyhow::Result<Transaction> {
    Ok(Transaction {
        id: row.get(0)?,
        key: row.get(1)?,
        customer_key: row.get(2)?,
        amount: row.get(3)?,
        currency: row.get(4)?,
        product_key: row.get(5)?,
        category_key: row.get(6)?,
        origin: row.get(7)?,
        created_at: row.get(8)?,
        reversed_at: row.get(9)?,
        updated_at: row.get(10)?,
        customer_email: row.get(11)?,
        customer_name: row.get(12)?,
        partner_key: row.get(13)?,
    })
}

pub fn transaction(conn: &Db, key_id: i64, transaction_key: &str) -> Result<Option<Transaction>> {
    let sql = format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions t JOIN customers c ON c.id = t.customer_id
         WHERE t.key_id = ?1 AND t.transaction_key = ?2"
    );
    conn.query_row(&sql, params![key_id, transaction_key], transaction_row)
        .optional()
}

/// A key's transactions: of one customer if asked; reversed ones (PartnerStack's
/// archived transactions) only with `include_archived`.
pub fn transactions(
    conn: &Db,
    key_id: i64,
    customer_key: Option<&str>,
    include_archived: bool,
    list: List,
) -> Result<Page<Transaction>> {
    let mut select = format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions t JOIN customers c ON c.id = t.customer_id
         WHERE t.key_id = ?1"
    );
    let mut params = vec![Value::Integer(key_id)];
    if let Some(customer_key) = customer_key {
        params.push(Value::Text(customer_key.into()));
        select += " AND c.customer_key = ?2";
    }
    if !include_archived {
        select += " AND t.reversed_at IS NULL";
    }
    page::fetch(conn, &select, "t.", params, list, transaction_row)
}

/// Records a payment and creates its rewards. The same key again returns
/// the transaction stored first (`false`: nothing new was written).
pub fn create_transaction(conn: &Db, key: &Key, new: &NewTransaction, now: i64) -> Result<(Transaction, bool)> {
    if let Some(existing) = transaction(conn, key.id, &new.key)? {
        // The same key again is the same payment (a retry); other figures
        // under it are a mistake, not a second payment.
        if (existing.amount, existing.currency.as_str()) != (new.amount, new.currency.as_str()) {
            return Err(Refusal::conflict(
                "key",
                format!("transaction {:?} exists with another amount or currency", new.key),
            )
            .into());
        }
        return Ok((existing, false));
    }
    let customer = match (&new.sign_up, merchant::find_customer(conn, key.id, &new.customer)) {
        (Some(sign_up), Ok(found)) if sign_up.partner_key.is_some() && found.partner_key != sign_up.partner_key => {
            return Err(Refusal::conflict(
                "partner_key",
                format!("the customer exists, credited to {:?}", found.partner_key),
            )
            .into())
        }
        (Some(sign_up), Err(e)) if Refusal::is_not_found(&e) => {
            let customer_key = match &new.customer {
                CustomerRef::Key(key) | CustomerRef::Email(key) | CustomerRef::Provider(key) => key.clone(),
            };
            let fields = sign_up.fields.clone();
            merchant::create_customer(
                conn,
                key,
                &customer_key,
                sign_up.partner_key.as_deref(),
                fields,
                new.origin,
                now,
            )?
        }
        (_, found) => found?,
    };
    let transaction_id = conn.insert(
        "INSERT INTO transactions (key_id, transaction_key, customer_id, amount, currency, product_key,
                                   category_key, origin, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            key.id,
            new.key,
            customer.id,
            new.amount,
            new.currency,
            new.product_key,
            new.category_key,
            new.origin,
            now
        ],
    )?;
    add_revenue(conn, key.id, customer.partner_key.as_deref(), &new.currency, new.amount)?;
    if key.mode == Mode::Live {
        create_rewards(
            conn,
            key.id,
            &customer,
            transaction_id,
            (new.amount, &new.currency, now),
            now,
        )?;
    }
    outbox::emit(conn, key.id, "transaction.created", Subject::Transaction(&new.key), now)?;
    let stored = transaction(conn, key.id, &new.key)?.expect("just written");
    Ok((stored, true))
}

/// Credits the customer's partner with every live transaction and action
/// of the customer, oldest first: its revenue, and (live keys) the rewards
/// each earns now. Used when a customer's partner changes or its review is
/// approved; `withdraw` undid the previous partner's share.
pub fn credit_transactions(conn: &Db, key: &Key, customer: &Customer, now: i64) -> Result<()> {
    let live: Vec<(i64, i64, String, i64)> = conn
        .prepare(
            "SELECT id, amount, currency, created_at FROM transactions
             WHERE customer_id = ?1 AND reversed_at IS NULL ORDER BY created_at, id",
        )?
        .query_map([customer.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<anyhow::Result<_>>()?;
    for (id, amount, currency, at) in live {
        add_revenue(conn, key.id, customer.partner_key.as_deref(), &currency, amount)?;
        if key.mode == Mode::Live {
            create_rewards(conn, key.id, customer, id, (amount, &currency, at), now)?;
        }
    }
    let actions: Vec<(i64, String)> = conn
        .prepare("SELECT id, action_key FROM actions WHERE customer_id = ?1 ORDER BY id")?
        .query_map([customer.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<anyhow::Result<_>>()?;
    for (id, action_key) in actions {
        reward_action(conn, key, customer, id, &action_key, now)?;
    }
    Ok(())
}

/// Takes back what the customer's partner `customer.partner_key` earned
/// from its transactions and actions: unpaid rewards declined, paid ones
/// clawed back, its revenue share removed. The transactions stay.
pub fn withdraw(conn: &Db, key_id: i64, customer: &Customer, now: i64) -> Result<()> {
    let live: Vec<(i64, i64, String)> = conn
        .prepare("SELECT id, amount, currency FROM transactions WHERE customer_id = ?1 AND reversed_at IS NULL")?
        .query_map([customer.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<anyhow::Result<_>>()?;
    for (id, amount, currency) in live {
        withdraw_rewards(conn, key_id, Source::Transaction(id), now)?;
        add_revenue(conn, key_id, customer.partner_key.as_deref(), &currency, -amount)?;
    }
    let actions: Vec<i64> = conn
        .prepare("SELECT id FROM actions WHERE customer_id = ?1")?
        .query_map([customer.id], |r| r.get(0))?
        .collect::<anyhow::Result<_>>()?;
    for id in actions {
        withdraw_rewards(conn, key_id, Source::Action(id), now)?;
    }
    Ok(())
}

/// What earned a reward.
#[derive(Debug, Clone, Copy)]
enum Source {
    Transaction(i64),
    Action(i64),
}

impl Source {
    /// The rewards column naming it, and its row id.
    fn column(self) -> (&'static str, i64) {
        match self {
            Source::Transaction(id) => ("transaction_id", id),
            Source::Action(id) => ("action_id", id),
        }
    }
}

/// Declines the unpaid rewards `source` earned and claws back its paid
/// ones (a negative reward), never editing a paid one.
fn withdraw_rewards(conn: &Db, key_id: i64, source: Source, now: i64) -> Result<()> {
    let (column, id) = source.column();
    let declined: Vec<i64> = conn.query_all(
        &format!(
            "SELECT id FROM rewards WHERE {column} = ?1 AND reverses IS NULL AND status IN ('new', 'approved')
               AND payout_id IS NULL"
        ),
        [id],
        |r| r.get(0),
    )?;
    conn.execute(
        &format!(
            "UPDATE rewards SET status = 'declined', updated_at = ?2
             WHERE {column} = ?1 AND reverses IS NULL AND status IN ('new', 'approved') AND payout_id IS NULL"
        ),
        params![id, now],
    )?;
    conn.execute(
        &format!(
            "INSERT INTO rewards (key_id, partner_key, customer_id, transaction_id, action_id, offer_id, amount,
                                  currency, status, reverses, created_at, updated_at)
             SELECT key_id, partner_key, customer_id, transaction_id, action_id, offer_id, -amount, currency, 'new',
                    id, ?2, ?2
             FROM rewards r WHERE {column} = ?1 AND reverses IS NULL
               AND (status = 'paid' OR (status = 'approved' AND payout_id IS NOT NULL))
               AND NOT EXISTS (SELECT 1 FROM rewards c WHERE c.reverses = r.id)"
        ),
        params![id, now],
    )?;
    let clawbacks: Vec<i64> = conn.query_all(
        &format!("SELECT id FROM rewards WHERE {column} = ?1 AND reverses IS NOT NULL AND created_at = ?2"),
        params![id, now],
        |r| r.get(0),
    )?;
    for reward in declined {
        outbox::emit(conn, key_id, "reward.updated", Subject::Reward(reward), now)?;
    }
    for reward in clawbacks {
        outbox::emit(conn, key_id, "reward.created", Subject::Reward(reward), now)?;
    }
    Ok(())
}

/// Adds `amount` to a partner's revenue in `currency` (negative: a reversal).
fn add_revenue(conn: &Db, key_id: i64, partner_key: Option<&str>, currency: &str, amount: i64) -> Result<()> {
    if let Some(partner_key) = partner_key {
        conn.prepare_cached(
            "INSERT INTO partner_revenue (key_id, partner_key, currency, amount) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key_id, partner_key, currency) DO UPDATE SET amount = partner_revenue.amount + ?4",
        )?
        .execute(params![key_id, partner_key, currency, amount])?;
    }
    Ok(())
}

/// The partner a customer's payments and actions earn for now, and the
/// offers that pay it: none while the customer waits for the merchant's
/// review or its partnership is archived; the live offers of its group and
/// of every group otherwise.
fn paying_offers(conn: &Db, key_id: i64, customer: &Customer) -> Result<Option<(String, Vec<OfferRow>)>> {
    let (Some(partner_key), None) = (&customer.partner_key, &customer.review) else {
        return Ok(None);
    };
    let partnership: Option<(Option<i64>, bool)> = conn
        .query_row(
            "SELECT group_id, archived_at IS NOT NULL FROM partners WHERE key_id = ?1 AND partner_key = ?2",
            params![key_id, partner_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let group_id = match partnership {
        Some((_, true)) => return Ok(None),
        Some((group_id, false)) => group_id,
        None => None,
    };
    let offers = conn
        .prepare(
            "SELECT id, kind, percent_bp, amounts, months, action_key FROM offers
             WHERE key_id = ?1 AND archived_at IS NULL AND (group_id IS NULL OR group_id = ?2) ORDER BY id",
        )?
        .query_map(params![key_id, group_id], |row| {
            let amounts: String = row.get(3)?;
            Ok(OfferRow {
                id: row.get(0)?,
                kind: kind_of(&row.get::<_, String>(1)?),
                percent_bp: row.get(2)?,
                amounts: serde_json::from_str(&amounts).unwrap_or_default(),
                months: row.get(4)?,
                action_key: row.get(5)?,
            })
        })?
        .collect::<anyhow::Result<_>>()?;
    Ok(Some((partner_key.clone(), offers)))
}

/// What the customer earned under `offer` so far, net of declines and
/// clawbacks (a refunded first payment leaves the customer still to be won).
fn earned_under(conn: &Db, customer: &Customer, offer: &OfferRow) -> Result<i64> {
    conn.query_row(
        "SELECT coalesce(sum(amount), 0) FROM rewards WHERE customer_id = ?1 AND offer_id = ?2 AND status != 'declined'",
        params![customer.id, offer.id],
        |r| r.get(0),
    )
}

/// Who earns a reward, under which offer, for what.
struct Earning<'a> {
    key_id: i64,
    partner_key: &'a str,
    customer: &'a Customer,
    offer: &'a OfferRow,
    source: Source,
}

fn insert_reward(conn: &Db, earning: Earning, (amount, currency): (i64, &str), now: i64) -> Result<()> {
    let Earning {
        key_id,
        partner_key,
        customer,
        offer,
        source,
    } = earning;
    let (transaction_id, action_id) = match source {
        Source::Transaction(id) => (Some(id), None),
        Source::Action(id) => (None, Some(id)),
    };
    let reward = conn.insert(
        "INSERT INTO rewards (key_id, partner_key, customer_id, transaction_id, action_id, offer_id, amount, currency,
                              status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'new', ?9, ?9)",
        params![
            key_id,
            partner_key,
            customer.id,
            transaction_id,
            action_id,
            offer.id,
            amount,
            currency,
            now
        ],
    )?;
    outbox::emit(conn, key_id, "reward.created", Subject::Reward(reward), now)?;
    Ok(())
}

/// The rewards a payment (`amount` cents in `currency`, paid at `paid_at`)
/// earns its customer's partner under each offer.
fn create_rewards(
    conn: &Db,
    key_id: i64,
    customer: &Customer,
    transaction_id: i64,
    (amount, currency, paid_at): (i64, &str, i64),
    now: i64,
) -> Result<()> {
    let Some((partner_key, offers)) = paying_offers(conn, key_id, customer)? else {
        return Ok(());
    };
    let first_paid: i64 = conn.query_row(
        "SELECT min(created_at) FROM transactions WHERE customer_id = ?1 AND reversed_at IS NULL",
        [customer.id],
        |r| r.get(0),
    )?;
    for offer in offers {
        let reward = match offer.kind {
            OfferKind::NewCustomer => {
                // A free payment (a trial's $0 invoice) wins no one.
                match offer.amounts.get(currency) {
                    Some(&flat) if amount > 0 && earned_under(conn, customer, &offer)? <= 0 => flat,
                    _ => continue,
                }
            }
            OfferKind::Percent => {
                let within = offer
                    .months
                    .is_none_or(|months| paid_at < first_paid + months * MONTH_MS);
                let bp = offer.percent_bp.unwrap_or(0);
                if !within {
                    continue;
                }
                // Rounded half up, in integer cents.
                (amount * bp + 5_000) / 10_000
            }
            OfferKind::Action => continue,
        };
        if reward == 0 {
            continue;
        }
        let earning = Earning {
            key_id,
            partner_key: &partner_key,
            customer,
            offer: &offer,
            source: Source::Transaction(transaction_id),
        };
        insert_reward(conn, earning, (reward, currency), now)?;
    }
    Ok(())
}

/// The rewards the customer's action `action_key` (row `action_id`) earns
/// its partner: each action offer for it pays once per customer. Test keys
/// earn nothing.
pub fn reward_action(
    conn: &Db,
    key: &Key,
    customer: &Customer,
    action_id: i64,
    action_key: &str,
    now: i64,
) -> Result<()> {
    if key.mode != Mode::Live {
        return Ok(());
    }
    let Some((partner_key, offers)) = paying_offers(conn, key.id, customer)? else {
        return Ok(());
    };
    for offer in offers {
        if offer.kind != OfferKind::Action || offer.action_key.as_deref() != Some(action_key) {
            continue;
        }
        let Some((currency, &flat)) = offer.amounts.iter().next() else {
            continue;
        };
        if flat > 0 && earned_under(conn, customer, &offer)? <= 0 {
            let earning = Earning {
                key_id: key.id,
                partner_key: &partner_key,
                customer,
                offer: &offer,
                source: Source::Action(action_id),
            };
            insert_reward(conn, earning, (flat, currency), now)?;
        }
    }
    Ok(())
}

/// Reverses a transaction (refunded, or deleted through the API): its
/// unpaid rewards are declined, its paid ones (and those a payout batch
/// is paying) clawed back. Reversing twice changes nothing.
pub fn reverse_transaction(conn: &Db, key_id: i64, transaction_key: &str, now: i64) -> Result<Transaction> {
    let Some(found) = transaction(conn, key_id, transaction_key)? else {
        return Err(Refusal::not_found("key", format!("no transaction {transaction_key:?}")).into());
    };
    if found.reversed_at.is_some() {
        return Ok(found);
    }
    withdraw_rewards(conn, key_id, Source::Transaction(found.id), now)?;
    conn.execute(
        "UPDATE transactions SET reversed_at = ?2, updated_at = ?2 WHERE id = ?1",
        params![found.id, now],
    )?;
    outbox::emit(
        conn,
        key_id,
        "transaction.reversed",
        Subject::Transaction(transaction_key),
        now,
    )?;
    let partner: Option<String> = conn.query_row(
        "SELECT c.partner_key FROM transactions t JOIN customers c ON c.id = t.customer_id WHERE t.id = ?1",
        [found.id],
        |r| r.get(0),
    )?;
    add_revenue(conn, key_id, partner.as_deref(), &found.currency, -found.amount)?;
    Ok(transaction(conn, key_id, transaction_key)?.expect("still there"))
}

/// The payment a reward was earned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidBy {
    pub key: String,
    pub amount: i64,
    pub currency: String,
    pub created_at: i64,
}

/// The customer action a reward was earned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneBy {
    pub key: String,
    pub action_key: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reward {
    /// `rwd_<n>`: the item key for `starting_after`.
    pub key: String,
    pub partner_key: String,
    pub partner_email: Option<String>,
    pub partner_first_name: Option<String>,
    pub partner_last_name: Option<String>,
    pub customer_key: String,
    pub customer_email: String,
    pub customer_name: String,
    /// The partner the customer is credited to now.
    pub customer_partner_key: Option<String>,
    /// What earned it: a transaction or an action.
    pub transaction: Option<PaidBy>,
    pub action: Option<DoneBy>,
    pub offer_key: String,
    /// Integer cents; negative for a clawback.
    pub amount: i64,
    pub currency: String,
    /// new, approved, declined or paid.
    pub status: String,
    /// For a clawback: the paid reward it takes back.
    pub reverses: Option<String>,
    /// What earned it, in words.
    pub description: String,
    /// The payout batch holding it (`po_<n>`), if one does.
    pub payout: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Default)]
pub struct RewardFilter {
    pub partner_key: Option<String>,
    pub customer_key: Option<String>,
    pub status: Option<String>,
    pub group_key: Option<String>,
}

const REWARD_SELECT: &str = "SELECT 'rwd_' || r.id, r.partner_key, c.customer_key, t.transaction_key, o.offer_key,
            r.amount, r.currency, r.status, CASE WHEN r.reverses IS NULL THEN NULL ELSE 'rwd_' || r.reverses END,
            r.created_at, r.updated_at, p.email, p.first_name, p.last_name, c.email, c.name, t.amount, t.currency,
            t.created_at, o.kind, o.percent_bp, 'act_' || a.id, a.action_key, a.created_at, c.partner_key,
            CASE WHEN r.payout_id IS NULL THEN NULL ELSE 'po_' || r.payout_id END
     FROM rewards r JOIN customers c ON c.id = r.customer_id JOIN offers o ON o.id = r.offer_id
          LEFT JOIN transactions t ON t.id = r.transaction_id
          LEFT JOIN actions a ON a.id = r.action_id
          LEFT JOIN partners p ON p.key_id = r.key_id AND p.partner_key = r.partner_key
          LEFT JOIN groups g ON g.id = p.group_id
     WHERE r.key_id = ?1";

fn reward_row(row: &Row) -> anyhow::Result<Reward> {
    let offer_key: String = row.get(4)?;
    let transaction = match row.get::<_, Option<String>>(3)? {
        Some(key) => Some(PaidBy {
            key,
            amount: row.get(16)?,
            currency: row.get(17)?,
            created_at: row.get(18)?,
        }),
        None => None,
    };
    let action = match row.get::<_, Option<String>>(21)? {
        Some(key) => Some(DoneBy {
            key,
            action_key: row.get(22)?,
            created_at: row.get(23)?,
        }),
        None => None,
    };
    let reverses: Option<String> = row.get(8)?;
    let (amount, currency): (i64, String) = (row.get(5)?, row.get(6)?);
    let description = match (&reverses, &transaction, &action) {
        (Some(reversed), Some(t), _) => format!("clawback of {reversed} (transaction {:?} reversed)", t.key),
        (Some(reversed), _, _) => format!("clawback of {reversed} (its partner changed)"),
        (None, Some(t), _) => {
            let paid = amounts_text(&[(t.currency.clone(), t.amount)]);
            match kind_of(&row.get::<_, String>(19)?) {
                OfferKind::Percent => {
                    let bp: i64 = row.get::<_, Option<i64>>(20)?.unwrap_or(0);
                    let percent = format!("{}.{:02}", bp / 100, bp % 100);
                    let percent = percent.trim_end_matches('0').trim_end_matches('.');
                    format!("offer {offer_key:?}: {percent}% of transaction {:?} ({paid})", t.key)
                }
                _ => format!("offer {offer_key:?}: a new customer's first payment ({paid})"),
            }
        }
        (None, None, Some(a)) => format!("offer {offer_key:?}: the customer's action {:?}", a.action_key),
        (None, None, None) => format!("offer {offer_key:?}"),
    };
    Ok(Reward {
        key: row.get(0)?,
        partner_key: row.get(1)?,
        customer_key: row.get(2)?,
        transaction,
        action,
        offer_key,
        amount,
        currency,
        status: row.get(7)?,
        reverses,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
        partner_email: row.get(11)?,
        partner_first_name: row.get(12)?,
        partner_last_name: row.get(13)?,
        customer_email: row.get(14)?,
        customer_name: row.get(15)?,
        customer_partner_key: row.get(24)?,
        payout: row.get(25)?,
        description,
    })
}

/// The row id in a reward key (`rwd_12` → 12).
pub fn reward_id(reward_key: &str) -> Option<i64> {
    reward_key.strip_prefix("rwd_")?.parse().ok()
}

pub fn rewards(conn: &Db, key_id: i64, filter: &RewardFilter, list: List) -> Result<Page<Reward>> {
    let mut select = String::from(REWARD_SELECT);
    let mut params = vec![Value::Integer(key_id)];
    for (column, value) in [
        ("r.partner_key", &filter.partner_key),
        ("c.customer_key", &filter.customer_key),
        ("r.status", &filter.status),
        ("g.group_key", &filter.group_key),
    ] {
        if let Some(value) = value {
            params.push(Value::Text(value.clone()));
            select += &format!(" AND {column} = ?{}", params.len());
        }
    }
    page::fetch(conn, &select, "r.", params, list, reward_row)
}

pub fn reward(conn: &Db, key_id: i64, reward_key: &str) -> Result<Reward> {
    let missing = || Refusal::not_found("key", format!("no reward {reward_key:?}"));
    let id = reward_id(reward_key).ok_or_else(missing)?;
    let sql = format!("{REWARD_SELECT} AND r.id = ?2");
    conn.query_row(&sql, params![key_id, id], reward_row)
        .optional()?
        .ok_or_else(|| missing().into())
}

/// Moves a reward along new → approved → paid, or to declined (from new or
/// approved). Paid and declined are final. A reward in a payout batch not
/// paid yet is locked: the batch pays it (`pay_batched`), or is cancelled.
pub fn set_reward_status(conn: &Db, key_id: i64, reward_key: &str, status: &str, now: i64) -> Result<Reward> {
    let batched: Option<i64> = conn
        .query_row(
            "SELECT r.payout_id FROM rewards r JOIN payouts po ON po.id = r.payout_id
             WHERE r.id = ?1 AND r.key_id = ?2 AND po.paid_at IS NULL",
            params![reward_id(reward_key), key_id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(payout) = batched {
        return Err(Refusal::conflict(
            "status",
            format!("the reward is in payout batch po_{payout}: mark the batch paid, or cancel it first"),
        )
        .into());
    }
    change_status(conn, key_id, reward_key, status, now)
}

/// Pays reward `id` as its payout batch is marked paid (see `payouts`).
pub fn pay_batched(conn: &Db, key_id: i64, id: i64, now: i64) -> Result<Reward> {
    change_status(conn, key_id, &format!("rwd_{id}"), "paid", now)
}

fn change_status(conn: &Db, key_id: i64, reward_key: &str, status: &str, now: i64) -> Result<Reward> {
    let current = reward(conn, key_id, reward_key)?;
    let allowed = matches!(
        (current.status.as_str(), status),
        ("new", "approved" | "declined") | ("approved", "paid" | "declined")
    ) || current.status == status;
    if !allowed {
        return Err(Refusal::conflict(
            "status",
            format!("a reward that is {} cannot become {status}", current.status),
        )
        .into());
    }
    let changed = conn.execute(
        "UPDATE rewards SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status != ?2",
        params![reward_id(reward_key), status, now],
    )?;
    if let Some(id) = reward_id(reward_key).filter(|_| changed > 0) {
        outbox::emit(conn, key_id, "reward.updated", Subject::Reward(id), now)?;
    }
    reward(conn, key_id, reward_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::merchant::{create_customer, create_partner, CustomerFields, PartnerFields};
    use crate::store::{keys, Settings};
    use rusqlite::Connection;

    #[test]
    fn amounts_read_in_each_currency_s_own_minor_unit() {
        assert_eq!(amount_text(4900, "JPY"), "JPY 4,900");
        assert_eq!(amount_text(123_456_789, "USD"), "USD 1,234,567.89");
        assert_eq!(amount_text(-1050, "EUR"), "EUR -10.50");
        assert_eq!(amount_text(1234, "KWD"), "KWD 1.234");
        assert_eq!(amount_text(5, "USD"), "USD 0.05");
        assert_eq!(amount_text(-1_000_000, "KRW"), "KRW -1,000,000");
        assert_eq!(amount_text(100, "CLF"), "CLF 0.0100");
        assert_eq!(decimal(123_456, "USD"), "1234.56");
        assert_eq!(decimal(4900, "JPY"), "4900");
        assert_eq!(decimal(-5, "EUR"), "-0.05");
        assert_eq!(decimal(1234, "KWD"), "1.234");
        assert_eq!(
            amounts_text(&[("JPY".into(), 999), ("USD".into(), 100_000)]),
            "JPY 999, USD 1,000.00"
        );
    }

    const NOW: i64 = 1_800_000_000_000;

    fn setup(mode: Mode) -> (Connection, Key) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let db = Db::from(&conn);
        let key = keys::create(&db, mode, "shop", &[], &Settings::default()).unwrap().key;
        let partner = PartnerFields {
            email: Some("alice@partners.example".into()),
            first_name: None,
            last_name: None,
            group_key: None,
        };
        create_partner(&db, &key, Some("alice".into()), partner, NOW).unwrap();
        let fields = CustomerFields {
            email: Some("ann@example.com".into()),
            name: None,
            provider_key: None,
            meta: None,
        };
        create_customer(&db, &key, "ann", Some("alice"), fields, "api", NOW).unwrap();
        let offer = |key: &str, kind, percent_bp, amounts: &[(&str, i64)], months| OfferSpec {
            key: key.into(),
            kind,
            percent_bp,
            amounts: amounts.iter().map(|(c, a)| (c.to_string(), *a)).collect(),
            months,
            group_key: None,
            action_key: None,
        };
        set_offer(
            &db,
            key.id,
            &offer("welcome", OfferKind::NewCustomer, None, &[("USD", 5000)], None),
            NOW,
        )
        .unwrap();
        set_offer(
            &db,
            key.id,
            &offer("share", OfferKind::Percent, Some(2000), &[], Some(12)),
            NOW,
        )
        .unwrap();
        (conn, key)
    }

    fn payment(id: &str, amount: i64, currency: &str) -> NewTransaction {
        NewTransaction {
            key: id.into(),
            customer: CustomerRef::Key("ann".into()),
            sign_up: None,
            amount,
            currency: currency.into(),
            product_key: None,
            category_key: None,
            origin: "api",
        }
    }

    fn pay(conn: &Db, key: &Key, id: &str, amount: i64, currency: &str, at: i64) -> (Transaction, bool) {
        create_transaction(conn, key, &payment(id, amount, currency), at).unwrap()
    }

    fn amounts(conn: &Db, key: &Key) -> Vec<(i64, String)> {
        let page = rewards(conn, key.id, &RewardFilter::default(), List::first(250)).unwrap();
        page.items.into_iter().rev().map(|r| (r.amount, r.status)).collect()
    }

    #[test]
    fn offers_pay_once_per_customer_and_for_their_months() {
        let (conn, key) = setup(Mode::Live);
        let conn = Db::from(&conn);
        pay(&conn, &key, "t1", 10_000, "USD", NOW);
        pay(&conn, &key, "t2", 10_001, "USD", NOW + 5 * MONTH_MS);
        // The same key again: the first transaction, nothing new; with
        // other figures, refused.
        let (again, created) = pay(&conn, &key, "t2", 10_001, "USD", NOW + 6 * MONTH_MS);
        assert!(!created);
        assert_eq!(again.created_at, NOW + 5 * MONTH_MS);
        assert!(create_transaction(&conn, &key, &payment("t2", 99, "USD"), NOW).is_err());
        // Past the percent offer's 12 months, and a currency without a flat amount.
        pay(&conn, &key, "t3", 10_000, "USD", NOW + 13 * MONTH_MS);
        assert_eq!(
            amounts(&conn, &key),
            [(5000, "new".into()), (2000, "new".into()), (2000, "new".into())]
        );
    }

    #[test]
    fn a_reversal_declines_unpaid_rewards_and_claws_back_paid_ones() {
        let (conn, key) = setup(Mode::Live);
        let conn = Db::from(&conn);
        pay(&conn, &key, "t1", 10_000, "USD", NOW);
        assert_eq!(partner_figures(&conn, key.id, "alice").unwrap().revenue, "USD 100.00");
        let page = rewards(&conn, key.id, &RewardFilter::default(), List::first(10)).unwrap();
        let flat = page.items.iter().find(|r| r.amount == 5000).unwrap().key.clone();
        set_reward_status(&conn, key.id, &flat, "approved", NOW).unwrap();
        set_reward_status(&conn, key.id, &flat, "paid", NOW).unwrap();
        assert!(set_reward_status(&conn, key.id, &flat, "declined", NOW).is_err());
        let reversed = reverse_transaction(&conn, key.id, "t1", NOW + 1).unwrap();
        assert_eq!(reversed.reversed_at, Some(NOW + 1));
        reverse_transaction(&conn, key.id, "t1", NOW + 2).unwrap();
        assert_eq!(partner_figures(&conn, key.id, "alice").unwrap().revenue, "USD 0.00");
        assert_eq!(
            amounts(&conn, &key),
            [(5000, "paid".into()), (2000, "declined".into()), (-5000, "new".into())]
        );
        // The customer is still to be won: the next payment earns the flat amount again.
        pay(&conn, &key, "t2", 100, "USD", NOW + 3);
        assert_eq!(amounts(&conn, &key).len(), 5);
    }

    #[test]
    fn a_free_first_payment_earns_no_flat_reward() {
        let (conn, key) = setup(Mode::Live);
        let conn = Db::from(&conn);
        pay(&conn, &key, "trial", 0, "USD", NOW);
        assert!(amounts(&conn, &key).is_empty());
        pay(&conn, &key, "first", 1000, "USD", NOW + 1);
        assert_eq!(amounts(&conn, &key), [(5000, "new".into()), (200, "new".into())]);
    }

    #[test]
    fn test_mode_never_creates_rewards() {
        let (conn, key) = setup(Mode::Test);
        let conn = Db::from(&conn);
        pay(&conn, &key, "t1", 10_000, "USD", NOW);
        assert!(amounts(&conn, &key).is_empty());
    }
}
