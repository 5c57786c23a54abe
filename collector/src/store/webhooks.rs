//! Payment-provider webhooks, storage side: each key's webhook secrets, the
//! log of received events (one row per provider event id: a replay is
//! answered without being applied twice), and what an event does to
//! customers and transactions.

use super::db::{params, Db, OptionalExtension};
use super::merchant::{self, CustomerFields, CustomerRef};
use super::money::{self, NewTransaction};
use super::{keys, Key, Refusal};
use anyhow::Result;

/// A key's webhook secrets; empty: that provider is off.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Stripe's endpoint signing secret (`whsec_…`).
    pub stripe_secret: String,
    /// Which Stripe event records a payment: `invoice.payment_succeeded`
    /// or `charge.succeeded` (never both: one payment would count twice).
    pub stripe_payment_event: String,
    /// `user:password` Chargebee sends with Basic auth.
    pub chargebee_auth: String,
    /// `user:password` Recurly sends with Basic auth.
    pub recurly_auth: String,
}

/// Every active key with its webhook settings.
pub fn all(conn: &Db) -> Result<Vec<(Key, WebhookSettings)>> {
    let mut found = Vec::new();
    for key in keys::list(conn)?.into_iter().filter(|k| !k.revoked) {
        let settings = conn
            .query_row(
                "SELECT stripe_secret, stripe_payment_event, chargebee_auth, recurly_auth
                 FROM webhook_settings WHERE key_id = ?1",
                [key.id],
                |r| {
                    Ok(WebhookSettings {
                        stripe_secret: r.get(0)?,
                        stripe_payment_event: r.get(1)?,
                        chargebee_auth: r.get(2)?,
                        recurly_auth: r.get(3)?,
                    })
                },
            )
            .optional()?;
        if let Some(settings) = settings {
            found.push((key, settings));
        }
    }
    Ok(found)
}

pub fn set(conn: &Db, key_id: i64, settings: &WebhookSettings) -> Result<()> {
    conn.execute(
        "INSERT INTO webhook_settings (key_id, stripe_secret, stripe_payment_event, chargebee_auth, recurly_auth)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key_id) DO UPDATE SET stripe_secret = ?2, stripe_payment_event = ?3,
             chargebee_auth = ?4, recurly_auth = ?5",
        params![
            key_id,
            settings.stripe_secret,
            settings.stripe_payment_event,
            settings.chargebee_auth,
            settings.recurly_auth
        ],
    )?;
    Ok(())
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A type this collector does not act on.
    Ignored,
    /// No customer or transaction it names is known.
    Unmatched,
    /// Its email (or provider id) names several customers: nothing applied,
    /// since a browser signup may claim any email. The merchant names the
    /// customer by key (customer metadata) instead.
    Ambiguous,
    /// Seen before: not applied again.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Ignored => "ignored",
            Outcome::Unmatched => "unmatched",
            Outcome::Ambiguous => "ambiguous_customer",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// One provider event, as the handlers read it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A provider customer created or changed: link it to ours.
    Customer {
        provider_key: String,
        email: Option<String>,
        name: Option<String>,
        customer_key: Option<String>,
        partner_key: Option<String>,
    },
    /// A successful payment.
    Payment {
        transaction_key: String,
        /// Tried in order.
        customer: Vec<CustomerRef>,
        amount: i64,
        currency: String,
    },
    /// A refund of earlier payments (any of these transaction keys).
    Refund {
        transaction_keys: Vec<String>,
    },
    Other,
}

/// Applies `event` once: the first time its id is seen for this provider
/// and key, in the caller's transaction.
pub fn apply(
    conn: &Db,
    key: &Key,
    provider: &'static str,
    event_id: &str,
    event_type: &str,
    event: &Event,
    now: i64,
) -> Result<Outcome> {
    let fresh = conn.execute(
        "INSERT INTO webhook_events (provider, event_id, key_id, type, outcome, received_at)
         VALUES (?1, ?2, ?3, ?4, '', ?5) ON CONFLICT DO NOTHING",
        params![provider, event_id, key.id, event_type, now],
    )?;
    if fresh == 0 {
        return Ok(Outcome::Duplicate);
    }
    let outcome = match event {
        Event::Customer {
            provider_key,
            email,
            name,
            customer_key,
            partner_key,
        } => {
            let by_key = customer_key.clone().map(CustomerRef::Key);
            let by_email = email.clone().map(CustomerRef::Email);
            match first_customer(conn, key.id, by_key.into_iter().chain(by_email), false)? {
                Found::Ambiguous => Outcome::Ambiguous,
                Found::One(found) => {
                    // The merchant's metadata names the partner: its word
                    // over a browser signup's.
                    if let Some(partner) = partner_key {
                        merchant::take_over(conn, key, &found, Some(partner), provider, now)?;
                    }
                    let fields = CustomerFields {
                        email: None,
                        name: None,
                        provider_key: Some(provider_key.clone()),
                        meta: None,
                    };
                    merchant::update_customer(conn, key.id, &found.key, fields, now)?;
                    Outcome::Applied
                }
                Found::None => match (partner_key, customer_key.clone().or(email.clone())) {
                    (Some(partner_key), Some(customer_key)) => {
                        let fields = CustomerFields {
                            email: email.clone(),
                            name: name.clone(),
                            provider_key: Some(provider_key.clone()),
                            meta: None,
                        };
                        merchant::create_customer(conn, key, &customer_key, Some(partner_key), fields, provider, now)?;
                        Outcome::Applied
                    }
                    _ => Outcome::Unmatched,
                },
            }
        }
        Event::Payment {
            transaction_key,
            customer,
            amount,
            currency,
        } => match first_customer(conn, key.id, customer.iter().cloned(), true)? {
            Found::Ambiguous => Outcome::Ambiguous,
            Found::One(found) => {
                let new = NewTransaction {
                    key: transaction_key.clone(),
                    customer: CustomerRef::Key(found.key),
                    sign_up: None,
                    amount: *amount,
                    currency: currency.clone(),
                    product_key: None,
                    category_key: None,
                    origin: provider,
                };
                money::create_transaction(conn, key, &new, now)?;
                Outcome::Applied
            }
            Found::None => Outcome::Unmatched,
        },
        Event::Refund { transaction_keys } => {
            let mut outcome = Outcome::Unmatched;
            for transaction_key in transaction_keys {
                if money::transaction(conn, key.id, transaction_key)?.is_some() {
                    money::reverse_transaction(conn, key.id, transaction_key, now)?;
                    outcome = Outcome::Applied;
                }
            }
            outcome
        }
        Event::Other => Outcome::Ignored,
    };
    conn.execute(
        "UPDATE webhook_events SET outcome = ?4 WHERE provider = ?1 AND event_id = ?2 AND key_id = ?3",
        params![provider, event_id, key.id, outcome.as_str()],
    )?;
    Ok(outcome)
}

/// What the references of an event name.
enum Found {
    One(Box<merchant::Customer>),
    None,
    /// One reference names several customers.
    Ambiguous,
}

/// The first customer any of `refs` names, in order. With `agree`, every
/// ref that names a customer must name the same one (a payment's provider
/// id and email naming two customers is ambiguous, not the first's).
fn first_customer(conn: &Db, key_id: i64, refs: impl Iterator<Item = CustomerRef>, agree: bool) -> Result<Found> {
    let mut first: Option<merchant::Customer> = None;
    for by in refs {
        match merchant::find_customer(conn, key_id, &by) {
            Ok(found) => match &first {
                None if !agree => return Ok(Found::One(Box::new(found))),
                None => first = Some(found),
                Some(earlier) if earlier.id != found.id => return Ok(Found::Ambiguous),
                Some(_) => {}
            },
            Err(e) => match e.downcast_ref::<Refusal>().map(|r| r.kind) {
                Some(crate::store::RefusalKind::NotFound) => continue,
                Some(_) => return Ok(Found::Ambiguous),
                None => return Err(e),
            },
        }
    }
    Ok(first.map_or(Found::None, |c| Found::One(Box::new(c))))
}
