//! The merchant API, `/api/v2/…`, shaped like PartnerStack's v2 so a
//! merchant's server code moves by changing its base URL.
//!
//! - Authentication: HTTP Basic, public key as user, secret key as password
//!   (compared in constant time); anything else is 401.
//! - Answers: `{"data": …, "message": …, "status": …}`; errors
//!   `{"message": …, "status": 4xx, "field": …}` naming the field.
//! - Lists: newest first, `limit` 1-250 (default 10), `starting_after` /
//!   `ending_before` (an item's key); `data.items` and `data.has_more`.
//! - Timestamps: epoch milliseconds. Amounts: integer cents.
//!
//! Every write runs in one database transaction: a refused request writes
//! nothing.

use super::decode::{is_email, optional, required, FieldError};
use super::read_body;
use super::reply::{self, Reply};
use crate::app::App;
use crate::store::merchant::{self, CustomerFields, CustomerRef, PartnerFields};
use crate::store::money::{self, NewTransaction, OfferKind, OfferSpec, RewardFilter};
use crate::store::page::{Cursor, Page};
use crate::store::{credit, keys, Key, Refusal, RefusalKind};
use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use wire::limit;

/// Largest amount accepted, in cents: 100 million in the currency's units.
/// The largest amount of one payment, in cents, on every money path (API
/// and webhooks): rewards computed from it cannot overflow.
pub const MAX_AMOUNT: i64 = 10_000_000_000;
const KEY_CHARS: usize = 255;

/// A refusal, as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            field: field.into(),
            message: message.into(),
        }
    }

    fn reply(self) -> Reply {
        let mut reply = reply::json(
            self.status,
            &json!({"message": format!("{}: {}", self.field, self.message), "status": self.status.as_u16(), "field": self.field}),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            reply
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"growsumo\""));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            reply
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        reply
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, &e.field, e.message)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        match e.downcast::<Refusal>() {
            Ok(refusal) => {
                let status = match refusal.kind {
                    RefusalKind::NotFound => StatusCode::NOT_FOUND,
                    RefusalKind::Conflict => StatusCode::CONFLICT,
                    RefusalKind::Invalid => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, refusal.field, refusal.message)
            }
            // Not the request's fault: the store could not answer (busy,
            // full, or its file gone). The client retries after a while.
            Err(e) => {
                tracing::error!(error = %e, "merchant API request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "request",
                    "could not be stored or read; retry later",
                )
            }
        }
    }
}

type Answer = Result<(StatusCode, Value, &'static str), ApiError>;

fn ok(data: impl Serialize, message: &'static str) -> Answer {
    Ok((
        StatusCode::OK,
        serde_json::to_value(data).unwrap_or(Value::Null),
        message,
    ))
}

pub async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    match route(app, req).await {
        Ok((status, data, message)) => reply::json(
            status,
            &json!({"data": data, "message": message, "status": status.as_u16()}),
        ),
        Err(e) => e.reply(),
    }
}

/// The key whose pair the request's Basic credentials are.
async fn authenticate(app: &App, req: &Request<Incoming>) -> Result<Key, ApiError> {
    let refused = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "authorization", message);
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let encoded = header
        .and_then(|h| h.strip_prefix("Basic "))
        .ok_or_else(|| refused("send HTTP Basic credentials: the public key as user, the secret key as password"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| refused("is not valid Basic credentials"))?;
    let (pk, sk) = decoded
        .split_once(':')
        .ok_or_else(|| refused("is not valid Basic credentials"))?;
    let (pk, sk) = (pk.to_owned(), sk.to_owned());
    let found = db(app, move |conn| keys::authenticate(conn, &pk, &sk)).await?;
    found.ok_or_else(|| refused("the public key and secret key do not match an active key pair"))
}

/// Runs `f` on a read connection, off the async threads.
async fn db<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    let result = tokio::task::spawn_blocking(move || store.read(f)).await;
    Ok(result.map_err(|e| anyhow::anyhow!("{e}"))??)
}

/// Runs `f` in one write transaction, off the async threads.
async fn write<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Connection, i64) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    let now = store.clock().now_ms();
    let result = tokio::task::spawn_blocking(move || store.write(|tx| f(tx, now))).await;
    Ok(result.map_err(|e| anyhow::anyhow!("{e}"))??)
}

/// The query string's parameters, decoded.
struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn limit(&self) -> Result<u32, ApiError> {
        match self.get("limit") {
            None => Ok(10),
            Some(text) => {
                text.parse().ok().filter(|n| (1..=250).contains(n)).ok_or_else(|| {
                    ApiError::new(StatusCode::BAD_REQUEST, "limit", "must be a whole number from 1 to 250")
                })
            }
        }
    }

    /// The page cursor, resolved against `table` by its key `column`.
    async fn cursor(
        &self,
        app: &App,
        key: &Key,
        table: &'static str,
        column: &'static str,
    ) -> Result<Cursor, ApiError> {
        let (after, before, key_id) = (self.get("starting_after"), self.get("ending_before"), key.id);
        db(app, move |conn| {
            merchant::cursor(conn, table, column, key_id, after.as_deref(), before.as_deref())
        })
        .await
    }
}

async fn json_body(app: &App, req: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            "send the body as application/json",
        ));
    }
    let bytes = match read_body(req.into_body(), app.client_timeout, limit::BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(reply) => {
            let status = reply.status();
            return Err(ApiError::new(
                status,
                "body",
                format!("must arrive in time and be at most {} bytes", limit::BODY_BYTES),
            ));
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "body", "must be a JSON object")),
    }
}

async fn route(app: &App, req: Request<Incoming>) -> Answer {
    let key = authenticate(app, &req).await?;
    let method = req.method().clone();
    let path = req
        .uri()
        .path()
        .trim_start_matches("/api/v2/")
        .trim_end_matches('/')
        .to_owned();
    let query = Query(
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    );
    // Path parameters are percent-decoded: a customer key `john doe` or
    // `josé@exämple.de` is read, changed and deleted as created.
    let decoded: Vec<String> = path
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map(String::from)
        })
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "path", "is not percent-encoded UTF-8"))?;
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let body = match method {
        // An action on one customer (`…/approve`) takes no body.
        Method::POST | Method::PATCH if segments.len() < 3 => json_body(app, req).await?,
        _ => Map::new(),
    };
    // Every field a body may hold: anything else is refused, naming it,
    // rather than silently ignored.
    let fields: &[&str] = match (&method, segments.first().copied(), segments.len()) {
        (&Method::POST, Some("partnerships"), 1) => &["partner_key", "email", "first_name", "last_name"],
        (&Method::PATCH, Some("partnerships"), 2) => &["email", "first_name", "last_name"],
        (&Method::POST, Some("customers"), 1) => &["customer_key", "email", "name", "provider_key", "partner_key"],
        (&Method::PATCH, Some("customers"), 2) => &["email", "name", "provider_key", "partner_key", "reason"],
        (&Method::POST, Some("transactions"), 1) => &[
            "key",
            "customer_key",
            "customer_email",
            "provider_key",
            "amount",
            "currency",
            "product_key",
            "category_key",
        ],
        (&Method::PATCH, Some("rewards"), 2) => &["status"],
        (&Method::POST, Some("offers"), 1) => &["key", "kind", "percent", "amounts", "months"],
        _ => &[],
    };
    if let Some(unknown) = body.keys().find(|name| !fields.contains(&name.as_str())) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            unknown,
            format!("is not a field of {method} /api/v2/{path}"),
        ));
    }
    let item = segments.get(1).map(|s| s.to_string());
    // A third segment is an action on one customer; anything else is no route.
    let action = segments.get(2).copied().unwrap_or("");
    let known_action = matches!(
        (&method, segments.first().copied(), action),
        (_, _, "") | (&Method::POST, Some("customers"), "approve") | (&Method::GET, Some("customers"), "changes")
    );
    if segments.len() > 3 || !known_action {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "path",
            format!("nothing is served at {method} /api/v2/{path}"),
        ));
    }
    match (&method, segments.first().copied(), item) {
        (&Method::POST, Some("customers"), Some(customer_key)) if action == "approve" => {
            let approved = write(app, move |c, now| credit::approve(c, &key, &customer_key, "api", now)).await?;
            ok(approved, "customer approved")
        }
        (&Method::GET, Some("customers"), Some(customer_key)) if action == "changes" => {
            let changes = db(app, move |c| {
                merchant::find_customer(c, key.id, &CustomerRef::Key(customer_key.clone()))?;
                credit::changes(c, key.id, Some(&customer_key), 250)
            })
            .await?;
            ok(json!({"items": changes, "has_more": false}), "attribution changes")
        }
        (&Method::GET, Some("partnerships"), None) => {
            let (cursor, limit) = (
                query.cursor(app, &key, "partners", "partner_key").await?,
                query.limit()?,
            );
            let page = db(app, move |c| merchant::partners(c, key.id, cursor, limit)).await?;
            ok(partner_page(page, &key), "partnerships")
        }
        (&Method::POST, Some("partnerships"), None) => {
            let partner_key = optional(&body, "partner_key", KEY_CHARS)?;
            let fields = partner_fields(&body, true)?;
            let owner = key.clone();
            let created = write(app, move |c, now| {
                merchant::create_partner(c, &owner, partner_key, fields, now)
            })
            .await?;
            ok(with_link(created, &key), "partnership created")
        }
        (&Method::GET, Some("partnerships"), Some(partner_key)) => {
            let found = db(app, move |c| merchant::partner(c, key.id, &partner_key)).await?;
            ok(with_link(found, &key), "partnership")
        }
        (&Method::PATCH, Some("partnerships"), Some(partner_key)) => {
            let fields = partner_fields(&body, false)?;
            let updated = write(app, move |c, now| {
                merchant::update_partner(c, key.id, &partner_key, fields, now)
            })
            .await?;
            ok(with_link(updated, &key), "partnership updated")
        }
        (&Method::GET, Some("customers"), None) => {
            let (cursor, limit) = (
                query.cursor(app, &key, "customers", "customer_key").await?,
                query.limit()?,
            );
            let partner = query.get("partner_key");
            let in_review = match query.get("review").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "review",
                        "must be true or false",
                    ))
                }
            };
            let page = db(app, move |c| {
                merchant::customers(c, key.id, partner.as_deref(), in_review, cursor, limit)
            })
            .await?;
            ok(page, "customers")
        }
        (&Method::POST, Some("customers"), None) => {
            let fields = customer_fields(&body, true)?;
            let customer_key = optional(&body, "customer_key", KEY_CHARS)?
                .or_else(|| fields.email.clone())
                .unwrap_or_default();
            let partner_key = optional(&body, "partner_key", KEY_CHARS)?;
            let created = write(app, move |c, now| {
                merchant::create_customer(c, &key, &customer_key, partner_key.as_deref(), fields, "api", now)
            })
            .await?;
            ok(created, "customer created")
        }
        (&Method::GET, Some("customers"), Some(customer_key)) => {
            let found = db(app, move |c| {
                merchant::find_customer(c, key.id, &CustomerRef::Key(customer_key))
            })
            .await?;
            ok(found, "customer")
        }
        (&Method::PATCH, Some("customers"), Some(customer_key)) => {
            let fields = customer_fields(&body, false)?;
            // `partner_key` (a key, or null for nobody) re-attributes the
            // customer: the merchant's word, logged with `reason`.
            let partner = match body.get("partner_key") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(_) => Some(optional(&body, "partner_key", KEY_CHARS)?),
            };
            let reason = optional(&body, "reason", 500)?.unwrap_or_else(|| "changed by the merchant".into());
            let updated = write(app, move |c, now| {
                if let Some(to) = partner {
                    let current = merchant::find_customer(c, key.id, &CustomerRef::Key(customer_key.clone()))?;
                    if current.partner_key != to || current.review.is_some() {
                        credit::reattribute(c, &key, &current, to.as_deref(), "api", &reason, now)?;
                    }
                }
                merchant::update_customer(c, key.id, &customer_key, fields, now)
            })
            .await?;
            ok(updated, "customer updated")
        }
        (&Method::DELETE, Some("customers"), Some(customer_key)) => {
            let deleted = write(app, move |c, _| merchant::delete_customer(c, key.id, &customer_key)).await?;
            ok(deleted, "customer deleted")
        }
        (&Method::GET, Some("transactions"), None) => {
            let (cursor, limit) = (
                query.cursor(app, &key, "transactions", "transaction_key").await?,
                query.limit()?,
            );
            let customer = query.get("customer_key");
            let page = db(app, move |c| {
                money::transactions(c, key.id, customer.as_deref(), cursor, limit)
            })
            .await?;
            ok(page, "transactions")
        }
        (&Method::POST, Some("transactions"), None) => {
            let new = new_transaction(&body)?;
            let (stored, created) = write(app, move |c, now| money::create_transaction(c, &key, &new, now)).await?;
            ok(
                stored,
                if created {
                    "transaction created"
                } else {
                    "transaction exists (same key)"
                },
            )
        }
        (&Method::GET, Some("transactions"), Some(transaction_key)) => {
            let found = db(app, move |c| money::transaction(c, key.id, &transaction_key)).await?;
            let found = found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "key", "no such transaction"))?;
            ok(found, "transaction")
        }
        (&Method::DELETE, Some("transactions"), Some(transaction_key)) => {
            let reversed = write(app, move |c, now| {
                money::reverse_transaction(c, key.id, &transaction_key, now)
            })
            .await?;
            ok(reversed, "transaction deleted; its rewards reversed")
        }
        (&Method::GET, Some("rewards"), None) => {
            let (cursor, limit) = (reward_cursor(&query)?, query.limit()?);
            let status = query.get("status");
            if let Some(status) = &status {
                check_status(status)?;
            }
            let filter = RewardFilter {
                partner_key: query.get("partner_key"),
                customer_key: query.get("customer_key"),
                status,
            };
            let page = db(app, move |c| money::rewards(c, key.id, &filter, cursor, limit)).await?;
            ok(page, "rewards")
        }
        (&Method::GET, Some("rewards"), Some(reward_key)) => {
            ok(db(app, move |c| money::reward(c, key.id, &reward_key)).await?, "reward")
        }
        (&Method::PATCH, Some("rewards"), Some(reward_key)) => {
            let status = required(&body, "status", 16)?;
            check_status(&status)?;
            let updated = write(app, move |c, now| {
                money::set_reward_status(c, key.id, &reward_key, &status, now)
            })
            .await?;
            ok(updated, "reward updated")
        }
        (&Method::GET, Some("offers"), None) => {
            let offers = db(app, move |c| money::offers(c, key.id)).await?;
            ok(
                Page {
                    items: offers,
                    has_more: false,
                },
                "offers",
            )
        }
        (&Method::POST, Some("offers"), None) => {
            let spec = offer_spec(&body)?;
            ok(
                write(app, move |c, now| money::set_offer(c, key.id, &spec, now)).await?,
                "offer saved",
            )
        }
        (_, Some("partnerships" | "customers" | "transactions" | "rewards" | "offers"), _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!("{method} is not allowed on /api/v2/{path}"),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "path",
            format!("{method} /api/v2/{path} is not an endpoint"),
        )),
    }
}

/// A partner, with its referral link (see `merchant::referral_link`).
fn with_link(partner: merchant::Partner, key: &Key) -> Value {
    let (parameter, link) = merchant::referral_link(key, &partner.key);
    let mut value = serde_json::to_value(&partner).unwrap_or(Value::Null);
    value["link_parameter"] = json!(parameter);
    value["link"] = json!(link);
    value
}

fn partner_page(page: Page<merchant::Partner>, key: &Key) -> Value {
    let items: Vec<Value> = page.items.into_iter().map(|p| with_link(p, key)).collect();
    json!({"items": items, "has_more": page.has_more})
}

fn email_field(body: &Map<String, Value>, name: &str, required_: bool) -> Result<Option<String>, ApiError> {
    let email = match required_ {
        true => Some(required(body, name, limit::EMAIL)?),
        false => optional(body, name, limit::EMAIL)?,
    };
    match email {
        Some(e) if !is_email(&e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            name,
            format!("{e:?} is not an email address"),
        )),
        email => Ok(email),
    }
}

fn partner_fields(body: &Map<String, Value>, creating: bool) -> Result<PartnerFields, ApiError> {
    Ok(PartnerFields {
        email: email_field(body, "email", creating)?,
        first_name: optional(body, "first_name", limit::NAME)?,
        last_name: optional(body, "last_name", limit::NAME)?,
    })
}

fn customer_fields(body: &Map<String, Value>, creating: bool) -> Result<CustomerFields, ApiError> {
    Ok(CustomerFields {
        email: email_field(body, "email", creating)?,
        name: optional(body, "name", limit::NAME)?,
        provider_key: optional(body, "provider_key", limit::PROVIDER_KEY)?,
    })
}

/// An integer amount of cents, 0 to `MAX_AMOUNT`.
pub fn amount(value: Option<&Value>, name: &str) -> Result<i64, ApiError> {
    let amount = value.ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, name, "is required (integer cents)"))?;
    amount.as_i64().filter(|a| (0..=MAX_AMOUNT).contains(a)).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            name,
            format!("must be whole cents from 0 to {MAX_AMOUNT}"),
        )
    })
}

/// ISO 4217 codes in use.
const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP \
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ \
    GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD \
    MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR \
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH \
    UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

/// A 3-letter ISO 4217 currency code, any case in, upper case out.
pub fn currency_code(text: &str) -> Result<String, String> {
    let code = text.to_ascii_uppercase();
    if code.len() == 3 && CURRENCIES.split_whitespace().any(|c| c == code) {
        Ok(code)
    } else {
        Err(format!("{text:?} is not an ISO 4217 currency code"))
    }
}

fn currency(text: &str, name: &str) -> Result<String, ApiError> {
    currency_code(text).map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, name, message))
}

fn new_transaction(body: &Map<String, Value>) -> Result<NewTransaction, ApiError> {
    let refs = [
        optional(body, "customer_key", KEY_CHARS)?.map(CustomerRef::Key),
        email_field(body, "customer_email", false)?.map(CustomerRef::Email),
        optional(body, "provider_key", limit::PROVIDER_KEY)?.map(CustomerRef::Provider),
    ];
    let mut given = refs.into_iter().flatten();
    let customer = match (given.next(), given.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "customer_key",
                "give exactly one of customer_key, customer_email, provider_key",
            ))
        }
    };
    let key = match optional(body, "key", KEY_CHARS)? {
        Some(key) => key,
        None => format!("txn_{}", keys::random_token(20)?),
    };
    Ok(NewTransaction {
        key,
        customer,
        amount: amount(body.get("amount"), "amount")?,
        currency: currency(&required(body, "currency", 3)?, "currency")?,
        product_key: optional(body, "product_key", KEY_CHARS)?,
        category_key: optional(body, "category_key", KEY_CHARS)?,
        origin: "api",
    })
}

fn check_status(status: &str) -> Result<(), ApiError> {
    match status {
        "new" | "approved" | "declined" | "paid" => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "status",
            "must be new, approved, declined or paid",
        )),
    }
}

fn reward_cursor(query: &Query) -> Result<Cursor, ApiError> {
    let parse = |name: &str, wrap: fn(i64) -> Cursor| -> Result<Option<Cursor>, ApiError> {
        match query.get(name) {
            None => Ok(None),
            Some(key) => money::reward_id(&key)
                .map(|id| Some(wrap(id)))
                .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, name, "must be a reward key (rwd_…)")),
        }
    };
    Ok(parse("starting_after", Cursor::After)?
        .or(parse("ending_before", Cursor::Before)?)
        .unwrap_or(Cursor::First))
}

fn offer_spec(body: &Map<String, Value>) -> Result<OfferSpec, ApiError> {
    let bad = |field: &str, message: &str| ApiError::new(StatusCode::BAD_REQUEST, field, message);
    let kind = match required(body, "kind", 16)?.as_str() {
        "new_customer" => OfferKind::NewCustomer,
        "percent" => OfferKind::Percent,
        _ => return Err(bad("kind", "must be new_customer or percent")),
    };
    let percent_bp = match body.get("percent") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .map(|p| (p * 100.0).round() as u32)
                .ok_or_else(|| bad("percent", "must be a number above 0, at most 100"))?,
        ),
    };
    let mut amounts = BTreeMap::new();
    match body.get("amounts") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (code, value) in map {
                let field = format!("amounts.{code}");
                amounts.insert(currency(code, &field)?, amount(Some(value), &field)?);
            }
        }
        Some(_) => return Err(bad("amounts", "must be an object of currency: cents")),
    }
    let months = match body.get("months") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|m| (1..=1200).contains(m))
                .map(|m| m as u32)
                .ok_or_else(|| {
                    bad(
                        "months",
                        "must be a whole number of months from 1 to 1200, or null (forever)",
                    )
                })?,
        ),
    };
    Ok(OfferSpec {
        key: required(body, "key", 64)?,
        kind,
        percent_bp,
        amounts,
        months,
    })
}
