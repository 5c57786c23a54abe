//! The merchant API's records, shaped as PartnerStack's v2 API returns them
//! (field names and types are PartnerStack's; our own extras sit beside
//! them), and the request bodies each write accepts. These types are the
//! OpenAPI document's schemas (see `openapi`): what is served is what is
//! documented.
//!
//! Where PartnerStack has a field we have nothing for, it is present and
//! `null` (marked `required` so the document says so), never left out.
//! Item keys: a partnership's `key` is its `partner_key`, a customer's its
//! `customer_key` (PartnerStack keeps a second, internal key for each; we
//! have one, and both fields carry it).

use crate::store::actions::Action;
use crate::store::groups::Group;
use crate::store::leads::{Deal, Lead};
use crate::store::merchant::{Customer, Partner};
use crate::store::money::{Offer, Reward, Transaction};
use crate::store::outbox::{Attempt, Delivery, Endpoint};
use crate::store::{Key, Mode};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Every answer: the record or list in `data`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    #[schema(inline)]
    pub data: T,
    pub message: String,
    pub status: u16,
}

/// A page of a list.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// More items lie beyond this page, in the direction it was read.
    pub has_more: bool,
}

/// A refused request.
#[derive(Serialize, ToSchema)]
pub struct Error {
    /// `field: what is wrong`.
    pub message: String,
    pub status: u16,
    /// The field, parameter or header at fault.
    pub field: String,
}

/// A partnership's group, as partnerships and groups show it.
#[derive(Serialize, ToSchema)]
pub struct GroupRecord {
    pub key: String,
    pub name: String,
    pub slug: String,
    /// New partnerships join the default group.
    pub default: bool,
    pub archived: bool,
    /// PartnerStack's per-group portal features: none here.
    #[schema(required, value_type = Option<Object>)]
    pub features: Option<Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Group> for GroupRecord {
    fn from(g: Group) -> GroupRecord {
        GroupRecord {
            key: g.key,
            name: g.name,
            slug: g.slug,
            default: g.is_default,
            archived: g.archived_at.is_some(),
            features: None,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Partnership {
    /// The partner key (the item key for `starting_after`).
    pub key: String,
    pub partner_key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub group: GroupRecord,
    /// When the partnership was created.
    pub joined_at: i64,
    /// Archived partnerships earn no new rewards.
    pub archived: bool,
    #[schema(required, value_type = Option<Object>)]
    pub m_data: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub manager: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub stats: Option<Value>,
    pub tags: Vec<String>,
    #[schema(required, value_type = Option<Object>)]
    pub team: Option<Value>,
    /// The referral link's query parameter (`ps_partner_key=…`).
    pub link_parameter: String,
    /// The referral link on the key's first allowed origin.
    #[schema(required)]
    pub link: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Partnership {
    pub fn new(p: Partner, key: &Key) -> Partnership {
        let (link_parameter, link) = crate::store::merchant::referral_link(key, &p.key);
        Partnership {
            partner_key: p.key.clone(),
            key: p.key,
            email: p.email,
            first_name: p.first_name,
            last_name: p.last_name,
            group: p.group.into(),
            joined_at: p.created_at,
            archived: p.archived_at.is_some(),
            m_data: None,
            manager: None,
            stats: None,
            tags: Vec::new(),
            team: None,
            link_parameter,
            link,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CustomerRecord {
    /// The customer key (the item key for `starting_after`).
    pub key: String,
    pub customer_key: String,
    pub email: String,
    pub name: String,
    /// The partner credited; null when none is.
    #[schema(required)]
    pub partner_key: Option<String>,
    /// The partnership credited (its key is the partner key).
    #[schema(required)]
    pub partnership_key: Option<String>,
    /// The payment provider's customer id (Stripe `cus_…`).
    #[schema(required)]
    pub provider_key: Option<String>,
    /// How the partner was decided: `xid`, `partner_key`, `server_cookie`,
    /// `fingerprint`, `api`, `lead` or a payment provider.
    #[schema(required)]
    pub source_type: Option<String>,
    #[schema(required)]
    pub source_key: Option<String>,
    /// Made with a test key: earns no rewards.
    pub test: bool,
    /// The merchant's own data about the customer.
    #[schema(required, value_type = Option<Object>)]
    pub meta: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub field_data: Option<Value>,
    #[schema(required, value_type = Option<Vec<Object>>)]
    pub fields: Option<Value>,
    /// `merchant`, `high`, `medium` or `low`: how much the evidence weighs.
    #[schema(required)]
    pub confidence: Option<String>,
    /// Why the customer waits for the merchant's review, earning nothing:
    /// `unknown_partner`, `self_referral` or `fingerprint`.
    #[schema(required)]
    pub review: Option<String>,
    /// The partner a fingerprint match suggests (not credited).
    #[schema(required)]
    pub suggested_partner_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CustomerRecord {
    pub fn new(c: Customer, key: &Key) -> CustomerRecord {
        CustomerRecord {
            customer_key: c.key.clone(),
            key: c.key,
            email: c.email,
            name: c.name,
            partnership_key: c.partner_key.clone(),
            partner_key: c.partner_key,
            provider_key: c.provider_key,
            source_type: c.source,
            source_key: None,
            test: key.mode == Mode::Test,
            meta: c.meta,
            field_data: None,
            fields: None,
            confidence: c.confidence,
            review: c.review,
            suggested_partner_key: c.suggested_partner_key,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A customer, as a transaction or reward names it.
#[derive(Serialize, ToSchema)]
pub struct CustomerSummary {
    pub key: String,
    pub customer_key: String,
    pub email: String,
    pub name: String,
    #[schema(required)]
    pub partner_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TransactionRecord {
    /// The merchant's key for it (the item key for `starting_after`).
    pub key: String,
    /// Integer cents (the currency's minor unit).
    pub amount: i64,
    /// The amount in US cents: known only for USD transactions.
    #[schema(required)]
    pub amount_usd: Option<i64>,
    pub currency: String,
    /// Counts for rewards: false once refunded or deleted.
    pub approved: bool,
    /// Refunded or deleted (its rewards reversed).
    pub archived: bool,
    #[schema(required)]
    pub category_key: Option<String>,
    #[schema(required)]
    pub product_key: Option<String>,
    pub customer_key: String,
    pub customer: CustomerSummary,
    #[schema(required, value_type = Option<Object>)]
    pub company: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub extension: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub test: bool,
    /// Where it came from: `api`, `stripe`, `chargebee`, `recurly`.
    pub origin: String,
    /// When it was refunded or deleted.
    #[schema(required)]
    pub reversed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TransactionRecord {
    pub fn new(t: Transaction, key: &Key) -> TransactionRecord {
        TransactionRecord {
            amount_usd: (t.currency == "USD").then_some(t.amount),
            approved: t.reversed_at.is_none(),
            archived: t.reversed_at.is_some(),
            customer: CustomerSummary {
                key: t.customer_key.clone(),
                customer_key: t.customer_key.clone(),
                email: t.customer_email,
                name: t.customer_name,
                partner_key: t.partner_key,
            },
            key: t.key,
            amount: t.amount,
            currency: t.currency,
            category_key: t.category_key,
            product_key: t.product_key,
            customer_key: t.customer_key,
            company: None,
            extension: None,
            metadata: None,
            test: key.mode == Mode::Test,
            origin: t.origin,
            reversed_at: t.reversed_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A partnership, as a reward names it.
#[derive(Serialize, ToSchema)]
pub struct PartnershipSummary {
    pub key: String,
    pub partner_key: String,
    #[schema(required)]
    pub email: Option<String>,
    #[schema(required)]
    pub first_name: Option<String>,
    #[schema(required)]
    pub last_name: Option<String>,
}

/// A transaction, as a reward names it.
#[derive(Serialize, ToSchema)]
pub struct TransactionSummary {
    pub key: String,
    pub amount: i64,
    pub currency: String,
    pub created_at: i64,
}

/// An offer, as a reward names it.
#[derive(Serialize, ToSchema)]
pub struct OfferSummary {
    pub key: String,
}

/// A customer's action, as a reward names it.
#[derive(Serialize, ToSchema)]
pub struct ActionSummary {
    /// `act_<n>`.
    pub key: String,
    /// What the customer did (`activated`).
    pub action_key: String,
    pub created_at: i64,
}

/// A customer's conversion event (PartnerStack's actions).
#[derive(Serialize, ToSchema)]
pub struct ActionRecord {
    /// `act_<n>` (the item key for `starting_after`).
    pub key: String,
    /// What the customer did (`activated`): the action `action` offers pay for.
    pub action_key: String,
    pub customer_key: String,
    pub customer: CustomerSummary,
    /// A number the merchant attached.
    #[schema(required)]
    pub value: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Action> for ActionRecord {
    fn from(a: Action) -> ActionRecord {
        ActionRecord {
            key: a.key,
            action_key: a.action_key,
            customer: CustomerSummary {
                key: a.customer_key.clone(),
                customer_key: a.customer_key.clone(),
                email: a.customer_email,
                name: a.customer_name,
                partner_key: a.partner_key,
            },
            customer_key: a.customer_key,
            value: a.value,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RewardRecord {
    /// `rwd_<n>` (the item key for `starting_after`).
    pub key: String,
    /// Integer cents; negative for a clawback.
    pub amount: i64,
    pub currency: String,
    /// `new`, `approved`, `declined` or `paid`.
    pub reward_status: String,
    /// What earned it, in words.
    pub description: String,
    pub partnership: PartnershipSummary,
    pub customer: CustomerSummary,
    /// The payment that earned it (null: an action did).
    #[schema(required)]
    pub transaction: Option<TransactionSummary>,
    pub offer: OfferSummary,
    /// The customer action that earned it (null: a payment did).
    #[schema(required)]
    pub action: Option<ActionSummary>,
    #[schema(required, value_type = Option<Object>)]
    pub invoice: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub trigger: Option<Value>,
    /// For a clawback: the paid reward it takes back.
    #[schema(required)]
    pub reverses: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Reward> for RewardRecord {
    fn from(r: Reward) -> RewardRecord {
        RewardRecord {
            key: r.key,
            amount: r.amount,
            currency: r.currency,
            reward_status: r.status,
            description: r.description,
            partnership: PartnershipSummary {
                key: r.partner_key.clone(),
                partner_key: r.partner_key,
                email: r.partner_email,
                first_name: r.partner_first_name,
                last_name: r.partner_last_name,
            },
            customer: CustomerSummary {
                key: r.customer_key.clone(),
                customer_key: r.customer_key,
                email: r.customer_email,
                name: r.customer_name,
                partner_key: r.customer_partner_key,
            },
            transaction: r.transaction.map(|t| TransactionSummary {
                key: t.key,
                amount: t.amount,
                currency: t.currency,
                created_at: t.created_at,
            }),
            offer: OfferSummary { key: r.offer_key },
            action: r.action.map(|a| ActionSummary {
                key: a.key,
                action_key: a.action_key,
                created_at: a.created_at,
            }),
            invoice: None,
            trigger: None,
            reverses: r.reverses,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OfferRecord {
    pub key: String,
    /// `new_customer` (a flat amount per currency, once per customer),
    /// `percent` (a share of each transaction) or `action` (a flat amount,
    /// once per customer, for its action `action_key`).
    pub kind: String,
    /// Percent offers: the share of each transaction, in percent.
    #[schema(required)]
    pub percent: Option<f64>,
    /// New-customer offers: the flat amount per currency, in cents.
    pub amounts: BTreeMap<String, i64>,
    /// Percent offers: how many months they pay; null: forever.
    #[schema(required)]
    pub months: Option<u32>,
    /// The group whose partnerships it pays; null: every group.
    #[schema(required)]
    pub group_key: Option<String>,
    /// Action offers: the action they pay for.
    #[schema(required)]
    pub action_key: Option<String>,
    pub archived: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Offer> for OfferRecord {
    fn from(o: Offer) -> OfferRecord {
        OfferRecord {
            key: o.key,
            kind: o.kind.as_str().into(),
            percent: o.percent,
            amounts: o.amounts,
            months: o.months,
            group_key: o.group_key,
            action_key: o.action_key,
            archived: o.archived,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LeadRecord {
    pub key: String,
    pub partner_key: String,
    /// The partner's group.
    #[schema(required)]
    pub group_key: Option<String>,
    pub email: String,
    pub name: String,
    pub company: String,
    /// `open`, `approved`, `declined` or `converted` (it became a customer).
    pub status: String,
    /// Approved by the merchant (or converted).
    pub approved: bool,
    /// Expected value, in cents.
    #[schema(required)]
    pub amount: Option<i64>,
    #[schema(required)]
    pub external_key: Option<String>,
    /// The customer it became.
    #[schema(required)]
    pub customer_key: Option<String>,
    pub archived: bool,
    #[schema(required, value_type = Option<Object>)]
    pub field_data: Option<Value>,
    #[schema(required, value_type = Option<Vec<Object>>)]
    pub fields: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub meta: Option<Value>,
    #[schema(required)]
    pub mold_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Lead> for LeadRecord {
    fn from(l: Lead) -> LeadRecord {
        LeadRecord {
            approved: matches!(l.status.as_str(), "approved" | "converted"),
            key: l.key,
            partner_key: l.partner_key,
            group_key: l.group_key,
            email: l.email,
            name: l.name,
            company: l.company,
            status: l.status,
            amount: l.amount,
            external_key: l.external_key,
            customer_key: l.customer_key,
            archived: l.archived_at.is_some(),
            field_data: None,
            fields: None,
            meta: None,
            mold_key: None,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DealRecord {
    pub key: String,
    pub partner_key: String,
    #[schema(required)]
    pub group_key: Option<String>,
    /// The lead it grew from.
    #[schema(required)]
    pub lead_key: Option<String>,
    pub account_name: String,
    pub contact_first_name: String,
    pub contact_last_name: String,
    /// In cents of `currency`.
    #[schema(required)]
    pub amount: Option<i64>,
    #[schema(required)]
    pub currency: Option<String>,
    /// The sales stage (`open` when created without one).
    pub stage: String,
    /// `YYYY-MM-DD`.
    #[schema(required)]
    pub close_date: Option<String>,
    #[schema(required)]
    pub lost_reason: Option<String>,
    #[schema(required)]
    pub external_key: Option<String>,
    pub archived: bool,
    #[schema(required)]
    pub source: Option<String>,
    #[schema(required, value_type = Option<Object>)]
    pub team: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub team_member: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub field_data: Option<Value>,
    #[schema(required, value_type = Option<Vec<Object>>)]
    pub fields: Option<Value>,
    #[schema(required, value_type = Option<Object>)]
    pub meta: Option<Value>,
    #[schema(required)]
    pub mold_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Deal> for DealRecord {
    fn from(d: Deal) -> DealRecord {
        DealRecord {
            key: d.key,
            partner_key: d.partner_key,
            group_key: d.group_key,
            lead_key: d.lead_key,
            account_name: d.account_name,
            contact_first_name: d.contact_first_name,
            contact_last_name: d.contact_last_name,
            amount: d.amount,
            currency: d.currency,
            stage: d.stage,
            close_date: d.close_date,
            lost_reason: d.lost_reason,
            external_key: d.external_key,
            archived: d.archived_at.is_some(),
            source: None,
            team: None,
            team_member: None,
            field_data: None,
            fields: None,
            meta: None,
            mold_key: None,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// An outgoing webhook endpoint: where the merchant's other systems hear
/// of changes (see `store::outbox`).
#[derive(Serialize, ToSchema)]
pub struct WebhookRecord {
    /// `ep_…` (the item key).
    pub key: String,
    /// The same key: what Zapier's REST hooks keep to unsubscribe.
    pub id: String,
    pub url: String,
    /// The event types sent; `*` is every one.
    pub events: Vec<String>,
    pub description: String,
    /// `whsec_<base64>`: verify each message's `webhook-signature` with it
    /// (Standard Webhooks).
    pub secret: String,
    /// Until when secrets rotated out in the last 24 hours still sign too
    /// (the latest of their times).
    #[schema(required)]
    pub previous_secret_expires_at: Option<i64>,
    /// Nothing is sent to a disabled endpoint.
    pub disabled: bool,
    /// `by the merchant`, or `failing since …` (disabled after 5 days of failures).
    #[schema(required)]
    pub disabled_reason: Option<String>,
    /// The first failure since the last success, while the newest attempt failed.
    #[schema(required)]
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Endpoint> for WebhookRecord {
    fn from(e: Endpoint) -> WebhookRecord {
        WebhookRecord {
            id: e.key.clone(),
            key: e.key,
            url: e.url,
            events: e.events,
            description: e.description,
            secret: e.secret,
            previous_secret_expires_at: e.previous.iter().map(|(_, until)| *until).max(),
            disabled: e.disabled_at.is_some(),
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A message's delivery to one endpoint, with its attempts, newest first.
#[derive(Serialize, ToSchema)]
pub struct DeliveryRecord {
    /// `dlv_<n>` (the item key; resend it with POST /webhook-deliveries/{key}/resend).
    pub key: String,
    /// `msg_…`: the `webhook-id` header, the same at every attempt.
    pub message_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// When a pending delivery is attempted next.
    #[schema(required)]
    pub next_attempt_at: Option<i64>,
    /// The body sent: `{"type", "timestamp", "data"}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub attempts: Vec<Attempt>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Delivery> for DeliveryRecord {
    fn from(d: Delivery) -> DeliveryRecord {
        DeliveryRecord {
            key: format!("dlv_{}", d.id),
            message_id: d.message_key,
            event_type: d.event,
            next_attempt_at: (d.status == "pending").then_some(d.next_at),
            status: d.status,
            payload: serde_json::from_str(&d.body).unwrap_or(Value::Null),
            attempts: d.attempts,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// Request bodies: the fields each write accepts. The router refuses any
/// other field, naming it (see `openapi::body_fields`).
pub mod bodies {
    use super::*;

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read through its schema only
    pub struct CreatePartnership {
        /// Generated when not given.
        partner_key: Option<String>,
        email: String,
        first_name: Option<String>,
        last_name: Option<String>,
        /// The group to join; the default group when not given.
        group_key: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdatePartnership {
        email: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        group_key: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateGroup {
        /// Generated from the name when not given.
        key: Option<String>,
        name: String,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdateGroup {
        name: Option<String>,
        /// true: new partnerships join this group.
        default: Option<bool>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateCustomer {
        /// The email when not given.
        customer_key: Option<String>,
        email: String,
        name: Option<String>,
        provider_key: Option<String>,
        /// The partner to credit: the merchant's word (a server-side or
        /// mobile signup that carried `ps_partner_key`).
        partner_key: Option<String>,
        #[schema(value_type = Option<Object>)]
        meta: Option<Map<String, Value>>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdateCustomer {
        email: Option<String>,
        name: Option<String>,
        provider_key: Option<String>,
        /// Re-attributes the customer (null: to nobody), logged with `reason`.
        partner_key: Option<String>,
        reason: Option<String>,
        #[schema(value_type = Option<Object>)]
        meta: Option<Map<String, Value>>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateTransaction {
        /// Idempotency: the same key again returns the first transaction.
        key: Option<String>,
        /// Exactly one of customer_key, customer_external_key,
        /// customer_email, provider_key names the customer (signing one up:
        /// customer_email, and customer_key if it has one).
        customer_key: Option<String>,
        /// The same as customer_key here (PartnerStack's name for the
        /// merchant's own key).
        customer_external_key: Option<String>,
        customer_email: Option<String>,
        provider_key: Option<String>,
        /// Integer cents, 0 or more (a refund: delete the transaction).
        amount: i64,
        currency: String,
        product_key: Option<String>,
        category_key: Option<String>,
        /// true: sign the customer up when none matches (credited to
        /// `partner_key`, named `customer_name`); one that exists keeps its
        /// partner (another `partner_key` is a 409).
        create_customer: Option<bool>,
        partner_key: Option<String>,
        customer_name: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdateReward {
        /// `approved`, `declined` or `paid`.
        status: String,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct SaveOffer {
        key: String,
        /// `new_customer`, `percent` or `action`.
        kind: String,
        percent: Option<f64>,
        /// CURRENCY: cents (an action offer: exactly one).
        amounts: Option<BTreeMap<String, i64>>,
        months: Option<u32>,
        /// Pays only this group's partnerships.
        group_key: Option<String>,
        /// Action offers: the action they pay for.
        action_key: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateAction {
        /// What the customer did (`activated`).
        key: String,
        /// Exactly one of customer_key, customer_external_key,
        /// customer_email names the customer.
        customer_key: Option<String>,
        customer_external_key: Option<String>,
        customer_email: Option<String>,
        value: Option<i64>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateLead {
        key: Option<String>,
        partner_key: String,
        email: String,
        name: Option<String>,
        company: Option<String>,
        /// `open` (the default), `approved` or `declined`.
        status: Option<String>,
        amount: Option<i64>,
        external_key: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdateLead {
        email: Option<String>,
        name: Option<String>,
        company: Option<String>,
        status: Option<String>,
        amount: Option<i64>,
        external_key: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateDeal {
        key: Option<String>,
        partner_key: String,
        lead_key: Option<String>,
        account_name: String,
        contact_first_name: Option<String>,
        contact_last_name: Option<String>,
        amount: Option<i64>,
        currency: Option<String>,
        stage: Option<String>,
        close_date: Option<String>,
        lost_reason: Option<String>,
        external_key: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdateDeal {
        account_name: Option<String>,
        contact_first_name: Option<String>,
        contact_last_name: Option<String>,
        amount: Option<i64>,
        currency: Option<String>,
        stage: Option<String>,
        close_date: Option<String>,
        lost_reason: Option<String>,
        external_key: Option<String>,
    }

    /// Zapier's REST hooks send `target_url` and `event`; both forms work.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct CreateWebhook {
        /// An https URL (plain http and private addresses only when the
        /// operator allows them).
        url: Option<String>,
        /// Zapier's name for `url`.
        target_url: Option<String>,
        /// Event types; every one (`*`) when not given.
        events: Option<Vec<String>>,
        /// Zapier's form: one event type.
        event: Option<String>,
        description: Option<String>,
        disabled: Option<bool>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct UpdateWebhook {
        url: Option<String>,
        events: Option<Vec<String>>,
        description: Option<String>,
        /// false: enable again (its failure streak forgotten).
        disabled: Option<bool>,
    }
}
