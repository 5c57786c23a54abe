//! The merchant API, `/api/v2/…`: a faithful subset of PartnerStack's v2,
//! so a merchant's server code, scripts and sync pipelines move by changing
//! the base URL and the keys.
//!
//! - Authentication: HTTP Basic, public key as user, secret key as password
//!   (compared in constant time); anything else is 401.
//! - Answers: `{"data": …, "message": …, "status": …}`; errors
//!   `{"message": …, "status": 4xx, "field": …}` naming the field.
//! - Lists: `limit` 1-250 (default 10), `starting_after` / `ending_before`
//!   (an item's key), `min_created`, `max_created`, `min_updated`,
//!   `max_updated` (epoch ms, inclusive), `order_by`; `data.items` and
//!   `data.has_more` (see `store::page`).
//! - Timestamps: epoch milliseconds. Amounts: integer cents.
//! - Routes and request fields: the table in `openapi`, which is also the
//!   OpenAPI document (`GET /api/v2/openapi.json`, no key needed).
//! - Records: `records`, PartnerStack's field names.
//!
//! Every write runs in one database transaction: a refused request writes
//! nothing.

mod openapi;
pub(crate) mod records;
mod webhooks;

use super::decode::{is_email, optional, required, FieldError};
use super::read_body;
use super::reply::{self, Reply};
use crate::app::App;
use crate::store::actions;
use crate::store::db::Db;
use crate::store::leads::{self, DealFields, LeadFields};
use crate::store::merchant::{self, CustomerFields, CustomerRef, PartnerFields, PartnerFilter};
use crate::store::money::{self, NewTransaction, OfferKind, OfferSpec, RewardFilter, SignUp};
use crate::store::page::{List, Order, Page, Range};
use crate::store::{credit, groups, keys, program, Key, Refusal, RefusalKind};
use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use openapi::{Found, Op, Route};
use records::{CustomerRecord, Partnership, TransactionRecord};
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
    /// A 405's `Allow` header: the methods the path takes.
    allow: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            field: field.into(),
            message: message.into(),
            allow: None,
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
        if let Some(allow) = self.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
            reply.headers_mut().insert(hyper::header::ALLOW, allow);
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
    if req.method() == Method::GET && req.uri().path() == "/api/v2/openapi.json" {
        return reply::json(StatusCode::OK, openapi::document());
    }
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
        // The scheme's name is case-insensitive (RFC 9110).
        .and_then(|h| {
            h.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        })
        .map(|(_, credentials)| credentials)
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
    f: impl FnOnce(&Db) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    let result = tokio::task::spawn_blocking(move || store.read(f)).await;
    Ok(result.map_err(|e| anyhow::anyhow!("{e}"))??)
}

/// Runs `f` in one write transaction, off the async threads.
async fn write<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Db, i64) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    let result = tokio::task::spawn_blocking(move || store.write_stamped(|tx, now| f(tx, now))).await;
    Ok(result.map_err(|e| anyhow::anyhow!("{e}"))??)
}

/// The query string's parameters, decoded.
struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn bad(name: &str, message: &str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, name, message)
    }

    fn limit(&self) -> Result<u32, ApiError> {
        match self.get("limit") {
            None => Ok(10),
            Some(text) => text
                .parse()
                .ok()
                .filter(|n| (1..=250).contains(n))
                .ok_or_else(|| Query::bad("limit", "must be a whole number from 1 to 250")),
        }
    }

    /// `include_archived`: archived (or refunded) records too. A list of what
    /// changed (`min_updated`, `max_updated`) includes them without asking:
    /// an archival is a change a sync must see.
    fn archived_too(&self, list: &List) -> Result<bool, ApiError> {
        let changes = list.range.min_updated.is_some() || list.range.max_updated.is_some();
        Ok(self.flag("include_archived")? || changes)
    }

    /// A true/false parameter; false when absent.
    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Query::bad(name, "must be true or false")),
        }
    }

    fn millis(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .map(Some)
                .ok_or_else(|| Query::bad(name, "must be a time in epoch milliseconds (a whole number, 0 or more)")),
        }
    }

    /// The list request: paging from the item named by `starting_after` or
    /// `ending_before` (looked up in `table` by `column`), range and order.
    async fn list(&self, app: &App, key: &Key, table: &'static str, column: &'static str) -> Result<List, ApiError> {
        let range = Range {
            min_created: self.millis("min_created")?,
            max_created: self.millis("max_created")?,
            min_updated: self.millis("min_updated")?,
            max_updated: self.millis("max_updated")?,
        };
        let order = match self.get("order_by") {
            None => Order::default(),
            Some(text) => Order::parse(&text)
                .ok_or_else(|| Query::bad("order_by", &format!("must be one of {}", Order::NAMES.join(", "))))?,
        };
        let limit = self.limit()?;
        let (mut after, mut before) = (self.get("starting_after"), self.get("ending_before"));
        // Reward and action keys are `rwd_<row id>`, `act_<row id>`: looked up by the id.
        type RowId = fn(&str) -> Option<i64>;
        let row_key: Option<(RowId, &str)> = match table {
            "rewards" => Some((money::reward_id, "a reward key (rwd_…)")),
            "actions" => Some((actions::action_id, "an action key (act_…)")),
            _ => None,
        };
        if let Some((parse, what)) = row_key {
            for (name, item) in [("starting_after", &mut after), ("ending_before", &mut before)] {
                if let Some(text) = item.as_mut() {
                    let id = parse(text).ok_or_else(|| Query::bad(name, &format!("must be {what}")))?;
                    *text = id.to_string();
                }
            }
        }
        let key_id = key.id;
        let cursor = db(app, move |conn| {
            merchant::cursor(conn, table, column, key_id, after.as_deref(), before.as_deref())
        })
        .await?;
        Ok(List {
            cursor,
            limit,
            order,
            range,
        })
    }
}

async fn json_body(app: &App, req: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
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

/// Items mapped into their API records.
fn records<T, R: Serialize>(page: Page<T>, map: impl FnMut(T) -> R) -> records::List<R> {
    records::List {
        items: page.items.into_iter().map(map).collect(),
        has_more: page.has_more,
    }
}

async fn route(app: &App, req: Request<Incoming>) -> Answer {
    let key = authenticate(app, &req).await?;
    // Where links in emails the request writes point (invitations).
    let base = super::dashboard::own_url(&req);
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
    // A control character (a NUL, say) is in no key, name or filter
    // value: refused on either backend, naming where it was.
    if decoded.iter().any(|s| s.chars().any(char::is_control)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "path",
            "holds a control character",
        ));
    }
    if let Some((name, _)) = query.0.iter().find(|(_, v)| v.chars().any(char::is_control)) {
        let message = format!("{name} holds a control character");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "query", message));
    }
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let (route, item) = match openapi::find(method.as_str(), &segments) {
        Found::Route(route, item) => (route, item.unwrap_or_default()),
        Found::WrongMethod(allowed) => {
            let mut refused = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
                format!("{method} is not allowed on /api/v2/{path}"),
            );
            refused.allow = Some(allowed.join(", "));
            return Err(refused);
        }
        Found::Nothing => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "path",
                format!("{method} /api/v2/{path} is not an endpoint"),
            ))
        }
    };
    // A parameter the route does not take is refused, naming it: silently
    // ignoring a filter would answer with what was not asked for.
    if let Some(unknown) = query.0.keys().find(|name| !route.takes(name)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            unknown,
            format!("is not a parameter of {method} /api/v2/{path}"),
        ));
    }
    let fields = route.fields();
    let body = if fields.is_empty() {
        Map::new()
    } else {
        json_body(app, req).await?
    };
    // Anything but the route's fields is refused, naming it, rather than
    // silently ignored.
    if let Some(unknown) = body.keys().find(|name| !fields.contains(name)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            unknown,
            format!("is not a field of {method} /api/v2/{path}"),
        ));
    }
    dispatch(app, route, key, item, &query, &body, &base).await
}

async fn dispatch(
    app: &App,
    route: &Route,
    key: Key,
    item: String,
    query: &Query,
    body: &Map<String, Value>,
    base: &str,
) -> Answer {
    let key_id = key.id;
    match route.op {
        Op::ListGroups => {
            let list = query.list(app, &key, "groups", "group_key").await?;
            let archived = query.archived_too(&list)?;
            let page = db(app, move |c| groups::list(c, key_id, archived, list)).await?;
            ok(records(page, records::GroupRecord::from), "groups")
        }
        Op::CreateGroup => {
            let name = required(body, "name", limit::NAME)?;
            let group_key = match optional(body, "key", KEY_CHARS)? {
                Some(group_key) => group_key,
                None => format!("grp_{}", keys::random_token(12)?),
            };
            let created = write(app, move |c, now| groups::create(c, key_id, &group_key, &name, now)).await?;
            ok(records::GroupRecord::from(created), "group created")
        }
        Op::GetGroup => {
            let found = db(app, move |c| groups::get(c, key_id, &item)).await?;
            ok(records::GroupRecord::from(found), "group")
        }
        Op::UpdateGroup => {
            let name = optional(body, "name", limit::NAME)?;
            let make_default = match body.get("default") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(_) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "default",
                        "must be true or false",
                    ))
                }
            };
            let updated = write(app, move |c, now| {
                groups::update(c, key_id, &item, name, make_default, now)
            })
            .await?;
            ok(records::GroupRecord::from(updated), "group updated")
        }
        Op::ArchiveGroup => {
            let archived = write(app, move |c, now| groups::archive(c, key_id, &item, now)).await?;
            ok(records::GroupRecord::from(archived), "group archived")
        }
        Op::ListPartnerships => {
            let list = query.list(app, &key, "partners", "partner_key").await?;
            let filter = PartnerFilter {
                group_key: query.get("group_key"),
                include_archived: query.archived_too(&list)?,
            };
            let page = db(app, move |c| merchant::partners(c, key_id, &filter, list)).await?;
            ok(records(page, |p| Partnership::new(p, &key)), "partnerships")
        }
        Op::CreatePartnership => {
            let partner_key = optional(body, "partner_key", KEY_CHARS)?;
            let fields = partner_fields(body, true)?;
            let owner = key.clone();
            let created = write(app, move |c, now| {
                merchant::create_partner(c, &owner, partner_key, fields, now)
            })
            .await?;
            ok(Partnership::new(created, &key), "partnership created")
        }
        Op::InvitePartnership => {
            let (owner, base) = (key.clone(), base.to_owned());
            let invited = write(app, move |c, now| {
                program::send_invitation(c, &owner, &item, &base, now)
            })
            .await?;
            ok(Partnership::new(invited, &key), "invitation sent")
        }
        Op::GetPartnership => {
            let found = db(app, move |c| merchant::partner(c, key_id, &item)).await?;
            ok(Partnership::new(found, &key), "partnership")
        }
        Op::UpdatePartnership => {
            let fields = partner_fields(body, false)?;
            let updated = write(app, move |c, now| {
                merchant::update_partner(c, key_id, &item, fields, now)
            })
            .await?;
            ok(Partnership::new(updated, &key), "partnership updated")
        }
        Op::ArchivePartnership => {
            let archived = write(app, move |c, now| merchant::archive_partner(c, key_id, &item, now)).await?;
            ok(Partnership::new(archived, &key), "partnership archived")
        }
        Op::ListCustomers => {
            let list = query.list(app, &key, "customers", "customer_key").await?;
            let partner = query.get("partner_key");
            let in_review = query.flag("review")?;
            let page = db(app, move |c| {
                merchant::customers(c, key_id, partner.as_deref(), in_review, list)
            })
            .await?;
            ok(records(page, |c| CustomerRecord::new(c, &key)), "customers")
        }
        Op::CreateCustomer => {
            let fields = customer_fields(body, true)?;
            let customer_key = optional(body, "customer_key", KEY_CHARS)?
                .or_else(|| fields.email.clone())
                .unwrap_or_default();
            let partner_key = optional(body, "partner_key", KEY_CHARS)?;
            let owner = key.clone();
            let created = write(app, move |c, now| {
                merchant::create_customer(c, &owner, &customer_key, partner_key.as_deref(), fields, "api", now)
            })
            .await?;
            ok(CustomerRecord::new(created, &key), "customer created")
        }
        Op::GetCustomer => {
            let found = db(app, move |c| {
                merchant::find_customer(c, key_id, &CustomerRef::Key(item))
            })
            .await?;
            ok(CustomerRecord::new(found, &key), "customer")
        }
        Op::UpdateCustomer => {
            let fields = customer_fields(body, false)?;
            // `partner_key` (a key, or null for nobody) re-attributes the
            // customer: the merchant's word, logged with `reason`.
            let partner = match body.get("partner_key") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(_) => Some(optional(body, "partner_key", KEY_CHARS)?),
            };
            let reason = optional(body, "reason", 500)?.unwrap_or_else(|| "changed by the merchant".into());
            let owner = key.clone();
            let updated = write(app, move |c, now| {
                if let Some(to) = partner {
                    let current = merchant::find_customer(c, key_id, &CustomerRef::Key(item.clone()))?;
                    if current.partner_key != to || current.review.is_some() {
                        credit::reattribute(c, &owner, &current, to.as_deref(), "api", &reason, now)?;
                    }
                }
                merchant::update_customer(c, key_id, &item, fields, now)
            })
            .await?;
            ok(CustomerRecord::new(updated, &key), "customer updated")
        }
        Op::DeleteCustomer => {
            let deleted = write(app, move |c, _| merchant::delete_customer(c, key_id, &item)).await?;
            ok(CustomerRecord::new(deleted, &key), "customer deleted")
        }
        Op::ApproveCustomer => {
            let owner = key.clone();
            let approved = write(app, move |c, now| credit::approve(c, &owner, &item, "api", now)).await?;
            ok(CustomerRecord::new(approved, &key), "customer approved")
        }
        Op::CustomerChanges => {
            let changes = db(app, move |c| {
                merchant::find_customer(c, key_id, &CustomerRef::Key(item.clone()))?;
                credit::changes(c, key_id, Some(&item), 250)
            })
            .await?;
            ok(
                records::List {
                    items: changes,
                    has_more: false,
                },
                "attribution changes",
            )
        }
        Op::ListTransactions => {
            let list = query.list(app, &key, "transactions", "transaction_key").await?;
            let customer = query.get("customer_key");
            let include_archived = query.archived_too(&list)?;
            let page = db(app, move |c| {
                money::transactions(c, key_id, customer.as_deref(), include_archived, list)
            })
            .await?;
            ok(records(page, |t| TransactionRecord::new(t, &key)), "transactions")
        }
        Op::CreateTransaction => {
            let new = new_transaction(body)?;
            let owner = key.clone();
            let (stored, created) = write(app, move |c, now| money::create_transaction(c, &owner, &new, now)).await?;
            let message = if created {
                "transaction created"
            } else {
                "transaction exists (same key)"
            };
            ok(TransactionRecord::new(stored, &key), message)
        }
        Op::GetTransaction => {
            let found = db(app, move |c| money::transaction(c, key_id, &item)).await?;
            let found = found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "key", "no such transaction"))?;
            ok(TransactionRecord::new(found, &key), "transaction")
        }
        Op::DeleteTransaction => {
            let reversed = write(app, move |c, now| money::reverse_transaction(c, key_id, &item, now)).await?;
            ok(
                TransactionRecord::new(reversed, &key),
                "transaction deleted; its rewards reversed",
            )
        }
        Op::ListRewards => {
            let list = query.list(app, &key, "rewards", "id").await?;
            let status = query.get("status");
            if let Some(status) = &status {
                check_status(status)?;
            }
            let filter = RewardFilter {
                partner_key: query.get("partner_key"),
                customer_key: query.get("customer_key"),
                group_key: query.get("group_key"),
                status,
            };
            let page = db(app, move |c| money::rewards(c, key_id, &filter, list)).await?;
            ok(records(page, records::RewardRecord::from), "rewards")
        }
        Op::GetReward => {
            let found = db(app, move |c| money::reward(c, key_id, &item)).await?;
            ok(records::RewardRecord::from(found), "reward")
        }
        Op::UpdateReward => {
            let status = required(body, "status", 16)?;
            check_status(&status)?;
            let updated = write(app, move |c, now| {
                money::set_reward_status(c, key_id, &item, &status, now)
            })
            .await?;
            ok(records::RewardRecord::from(updated), "reward updated")
        }
        Op::ListOffers => {
            let list = query.list(app, &key, "offers", "offer_key").await?;
            let page = db(app, move |c| money::offers(c, key_id, list)).await?;
            ok(records(page, records::OfferRecord::from), "offers")
        }
        Op::SaveOffer => {
            let spec = offer_spec(body)?;
            let saved = write(app, move |c, now| money::set_offer(c, key_id, &spec, now)).await?;
            ok(records::OfferRecord::from(saved), "offer saved")
        }
        Op::ArchiveOffer => {
            let archived = write(app, move |c, now| money::archive_offer(c, key_id, &item, now)).await?;
            ok(records::OfferRecord::from(archived), "offer archived")
        }
        Op::ListActions => {
            let list = query.list(app, &key, "actions", "id").await?;
            let (customer, action_key) = (query.get("customer_key"), query.get("action_key"));
            let page = db(app, move |c| {
                actions::list(c, key_id, customer.as_deref(), action_key.as_deref(), list)
            })
            .await?;
            ok(records(page, records::ActionRecord::from), "actions")
        }
        Op::CreateAction => {
            let action_key = required(body, "key", 64)?;
            let customer = customer_ref(body, false)?;
            let value = match body.get("value") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_i64()
                        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "value", "must be a whole number"))?,
                ),
            };
            let owner = key.clone();
            let recorded = write(app, move |c, now| {
                actions::record(c, &owner, &customer, &action_key, value, now)
            })
            .await?;
            ok(records::ActionRecord::from(recorded), "action recorded")
        }
        Op::GetAction => {
            let found = db(app, move |c| actions::get(c, key_id, &item)).await?;
            ok(records::ActionRecord::from(found), "action")
        }
        Op::ListLeads => {
            let list = query.list(app, &key, "leads", "lead_key").await?;
            let (partner, archived) = (query.get("partner_key"), query.archived_too(&list)?);
            let page = db(app, move |c| {
                leads::leads(c, key_id, partner.as_deref(), archived, list)
            })
            .await?;
            ok(records(page, records::LeadRecord::from), "leads")
        }
        Op::CreateLead => {
            let lead_key = item_key(body, "lead")?;
            let partner_key = required(body, "partner_key", KEY_CHARS)?;
            let fields = lead_fields(body, true)?;
            let created = write(app, move |c, now| {
                leads::create_lead(c, key_id, &lead_key, &partner_key, fields, now)
            })
            .await?;
            ok(records::LeadRecord::from(created), "lead created")
        }
        Op::GetLead => {
            let found = db(app, move |c| leads::lead(c, key_id, &item)).await?;
            ok(records::LeadRecord::from(found), "lead")
        }
        Op::UpdateLead => {
            let fields = lead_fields(body, false)?;
            let owner = key.clone();
            let updated = write(app, move |c, now| leads::update_lead(c, &owner, &item, fields, now)).await?;
            ok(records::LeadRecord::from(updated), "lead updated")
        }
        Op::ArchiveLead => {
            let archived = write(app, move |c, now| {
                leads::archive(c, "leads", key_id, &item, now)?;
                leads::lead(c, key_id, &item)
            })
            .await?;
            ok(records::LeadRecord::from(archived), "lead archived")
        }
        Op::ListDeals => {
            let list = query.list(app, &key, "deals", "deal_key").await?;
            let (partner, archived) = (query.get("partner_key"), query.archived_too(&list)?);
            let page = db(app, move |c| {
                leads::deals(c, key_id, partner.as_deref(), archived, list)
            })
            .await?;
            ok(records(page, records::DealRecord::from), "deals")
        }
        Op::CreateDeal => {
            let deal_key = item_key(body, "deal")?;
            let partner_key = required(body, "partner_key", KEY_CHARS)?;
            let fields = deal_fields(body, true)?;
            let created = write(app, move |c, now| {
                leads::create_deal(c, key_id, &deal_key, &partner_key, fields, now)
            })
            .await?;
            ok(records::DealRecord::from(created), "deal created")
        }
        Op::GetDeal => {
            let found = db(app, move |c| leads::deal(c, key_id, &item)).await?;
            ok(records::DealRecord::from(found), "deal")
        }
        Op::UpdateDeal => {
            let fields = deal_fields(body, false)?;
            let updated = write(app, move |c, now| leads::update_deal(c, key_id, &item, fields, now)).await?;
            ok(records::DealRecord::from(updated), "deal updated")
        }
        Op::ArchiveDeal => {
            let archived = write(app, move |c, now| {
                leads::archive(c, "deals", key_id, &item, now)?;
                leads::deal(c, key_id, &item)
            })
            .await?;
            ok(records::DealRecord::from(archived), "deal archived")
        }
        Op::ListWebhooks
        | Op::CreateWebhook
        | Op::GetWebhook
        | Op::UpdateWebhook
        | Op::DeleteWebhook
        | Op::RotateWebhookSecret
        | Op::ListWebhookDeliveries
        | Op::ResendWebhookDelivery => webhooks::dispatch(app, route.op, &key, item, query, body).await,
    }
}

/// The body's `key`, or a new one (`lead_…`, `deal_…`).
fn item_key(body: &Map<String, Value>, prefix: &str) -> Result<String, ApiError> {
    match optional(body, "key", KEY_CHARS)? {
        Some(key) => Ok(key),
        None => Ok(format!("{prefix}_{}", keys::random_token(16)?)),
    }
}

/// An optional whole number of cents (0 or more).
fn optional_amount(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        value => amount(value, name).map(Some),
    }
}

fn lead_fields(body: &Map<String, Value>, creating: bool) -> Result<LeadFields, ApiError> {
    let status = optional(body, "status", 16)?;
    if let Some(status) = &status {
        if !leads::LEAD_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "status",
                format!("must be one of {}", leads::LEAD_STATUSES.join(", ")),
            ));
        }
    }
    Ok(LeadFields {
        email: email_field(body, "email", creating)?,
        name: optional(body, "name", limit::NAME)?,
        company: optional(body, "company", limit::NAME)?,
        status,
        amount: optional_amount(body, "amount")?,
        external_key: optional(body, "external_key", KEY_CHARS)?,
    })
}

/// A calendar date `YYYY-MM-DD` (Gregorian: 2024-02-29, not 2023-02-29).
fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return false;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    (1..=days).contains(&day)
}

fn deal_fields(body: &Map<String, Value>, creating: bool) -> Result<DealFields, ApiError> {
    let close_date = optional(body, "close_date", 10)?;
    if let Some(date) = &close_date {
        if !is_date(date) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "close_date",
                format!("{date:?} is not a calendar date, YYYY-MM-DD"),
            ));
        }
    }
    let currency_ = match optional(body, "currency", 3)? {
        Some(code) => Some(currency(&code, "currency")?),
        None => None,
    };
    let amount = optional_amount(body, "amount")?;
    let account_name = match creating {
        true => Some(required(body, "account_name", limit::NAME)?),
        false => optional(body, "account_name", limit::NAME)?,
    };
    Ok(DealFields {
        lead_key: optional(body, "lead_key", KEY_CHARS)?,
        account_name,
        contact_first_name: optional(body, "contact_first_name", limit::NAME)?,
        contact_last_name: optional(body, "contact_last_name", limit::NAME)?,
        amount,
        currency: currency_,
        stage: optional(body, "stage", 64)?,
        close_date,
        lost_reason: optional(body, "lost_reason", 500)?,
        external_key: optional(body, "external_key", KEY_CHARS)?,
    })
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
        group_key: optional(body, "group_key", KEY_CHARS)?,
    })
}

fn customer_fields(body: &Map<String, Value>, creating: bool) -> Result<CustomerFields, ApiError> {
    Ok(CustomerFields {
        email: email_field(body, "email", creating)?,
        name: optional(body, "name", limit::NAME)?,
        provider_key: optional(body, "provider_key", limit::PROVIDER_KEY)?,
        meta: meta(body)?,
    })
}

/// The merchant's `meta`: a JSON object of at most 4 KB.
fn meta(body: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    const META_BYTES: usize = 4096;
    match body.get("meta") {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) if value.to_string().len() <= META_BYTES => Ok(Some(value.clone())),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "meta",
            format!("must be a JSON object of at most {META_BYTES} bytes"),
        )),
    }
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

/// The customer a body names: by exactly one of `customer_key`,
/// `customer_external_key` (PartnerStack's name for the merchant's own key:
/// our `customer_key`), `customer_email`, and `provider_key` where allowed.
fn customer_ref(body: &Map<String, Value>, by_provider: bool) -> Result<CustomerRef, ApiError> {
    let refs = [
        optional(body, "customer_key", KEY_CHARS)?.map(CustomerRef::Key),
        optional(body, "customer_external_key", KEY_CHARS)?.map(CustomerRef::Key),
        email_field(body, "customer_email", false)?.map(CustomerRef::Email),
        match by_provider {
            true => optional(body, "provider_key", limit::PROVIDER_KEY)?.map(CustomerRef::Provider),
            false => None,
        },
    ];
    let mut given = refs.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "customer_key",
            if by_provider {
                "give exactly one of customer_key, customer_external_key, customer_email, provider_key"
            } else {
                "give exactly one of customer_key, customer_external_key, customer_email"
            },
        )),
    }
}

fn new_transaction(body: &Map<String, Value>) -> Result<NewTransaction, ApiError> {
    let signing_up = match body.get("create_customer") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "create_customer",
                "must be true or false",
            ))
        }
    };
    let (customer, sign_up) = if signing_up {
        // The customer to sign up: its email (required), and its key if the
        // merchant has one (else the email is the key).
        if body.contains_key("provider_key") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "provider_key",
                "a customer signed up by a transaction is named by customer_key and customer_email",
            ));
        }
        let email = email_field(body, "customer_email", true)?;
        let by_key = match (
            optional(body, "customer_key", KEY_CHARS)?,
            optional(body, "customer_external_key", KEY_CHARS)?,
        ) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "customer_key",
                    "give customer_key or customer_external_key, not both",
                ))
            }
            (key, external) => key.or(external),
        };
        let customer = match by_key {
            Some(key) => CustomerRef::Key(key),
            None => CustomerRef::Email(email.clone().unwrap_or_default()),
        };
        let sign_up = SignUp {
            partner_key: optional(body, "partner_key", KEY_CHARS)?,
            fields: CustomerFields {
                email,
                name: optional(body, "customer_name", limit::NAME)?,
                ..CustomerFields::default()
            },
        };
        (customer, Some(sign_up))
    } else {
        for name in ["partner_key", "customer_name"] {
            if body.contains_key(name) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    name,
                    "is for signing a customer up: send it with create_customer: true",
                ));
            }
        }
        (customer_ref(body, true)?, None)
    };
    let key = match optional(body, "key", KEY_CHARS)? {
        Some(key) => key,
        None => format!("txn_{}", keys::random_token(20)?),
    };
    Ok(NewTransaction {
        key,
        customer,
        sign_up,
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

fn offer_spec(body: &Map<String, Value>) -> Result<OfferSpec, ApiError> {
    let bad = |field: &str, message: &str| ApiError::new(StatusCode::BAD_REQUEST, field, message);
    let kind = match required(body, "kind", 16)?.as_str() {
        "new_customer" => OfferKind::NewCustomer,
        "percent" => OfferKind::Percent,
        "action" => OfferKind::Action,
        _ => return Err(bad("kind", "must be new_customer, percent or action")),
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
        group_key: optional(body, "group_key", KEY_CHARS)?,
        action_key: optional(body, "action_key", 64)?,
    })
}
