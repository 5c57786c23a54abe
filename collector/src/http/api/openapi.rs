//! The merchant API's routes, in one table, and the OpenAPI 3.1 document
//! built from it (`GET /api/v2/openapi.json`).
//!
//! The table is what the router matches requests against (`find`), and each
//! route's request body schema is what the router lets a body hold
//! (`Route::fields`): the document cannot list a route or a field the
//! server does not take. Answers are the `records` types; the end-to-end
//! tests validate every answer they receive against this document.

use super::records::{self, bodies, *};
use crate::store::credit::Change;
use crate::store::outbox::Attempt;
use crate::store::page::Order;
use serde_json::{json, Value};
use std::sync::OnceLock;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
    ResponseBuilder, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

/// What a route does, for the router's dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListGroups,
    CreateGroup,
    GetGroup,
    UpdateGroup,
    ArchiveGroup,
    ListPartnerships,
    CreatePartnership,
    InvitePartnership,
    GetPartnership,
    UpdatePartnership,
    ArchivePartnership,
    ListCustomers,
    CreateCustomer,
    GetCustomer,
    UpdateCustomer,
    DeleteCustomer,
    ApproveCustomer,
    CustomerChanges,
    ListTransactions,
    CreateTransaction,
    GetTransaction,
    DeleteTransaction,
    ListRewards,
    GetReward,
    UpdateReward,
    ListOffers,
    SaveOffer,
    ArchiveOffer,
    ListActions,
    CreateAction,
    GetAction,
    ListLeads,
    CreateLead,
    GetLead,
    UpdateLead,
    ArchiveLead,
    ListDeals,
    CreateDeal,
    GetDeal,
    UpdateDeal,
    ArchiveDeal,
    ListWebhooks,
    CreateWebhook,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    ListWebhookDeliveries,
    ResendWebhookDelivery,
}

type SchemaFn = fn() -> RefOr<Schema>;
/// Adds the schemas a type refers to, by name, for the components.
type SchemasFn = fn(&mut Vec<(String, RefOr<Schema>)>);

pub struct Route {
    pub op: Op,
    pub method: &'static str,
    /// Under `/api/v2`; `{key}` is the item.
    pub path: &'static str,
    summary: &'static str,
    /// A list: takes the paging, range and order parameters.
    list: bool,
    /// Further query parameters (filters).
    filters: &'static [Filter],
    body: Option<SchemaFn>,
    answer: SchemaFn,
    referred: SchemasFn,
}

fn schema<T: PartialSchema>() -> RefOr<Schema> {
    T::schema()
}

macro_rules! route {
    ($op:ident, $method:literal, $path:literal, $summary:literal, list: $list:literal, filters: $filters:expr, body: $body:ty, answer: $answer:ty) => {
        Route {
            op: Op::$op,
            method: $method,
            path: $path,
            summary: $summary,
            list: $list,
            filters: $filters,
            body: Some(schema::<$body>),
            answer: schema::<Envelope<$answer>>,
            referred: <Envelope<$answer> as ToSchema>::schemas,
        }
    };
    ($op:ident, $method:literal, $path:literal, $summary:literal, list: $list:literal, filters: $filters:expr, answer: $answer:ty) => {
        Route {
            op: Op::$op,
            method: $method,
            path: $path,
            summary: $summary,
            list: $list,
            filters: $filters,
            body: None,
            answer: schema::<Envelope<$answer>>,
            referred: <Envelope<$answer> as ToSchema>::schemas,
        }
    };
}

/// A query parameter a route takes beyond paging: its name, what it does,
/// and its values when they are a fixed set.
pub struct Filter {
    name: &'static str,
    about: &'static str,
    values: &'static [&'static str],
}

const fn by(name: &'static str, about: &'static str) -> Filter {
    Filter {
        name,
        about,
        values: &[],
    }
}

const fn flag(name: &'static str, about: &'static str) -> Filter {
    Filter {
        name,
        about,
        values: &["true", "false"],
    }
}

const NONE: &[Filter] = &[];
const ARCHIVED: Filter = flag(
    "include_archived",
    "true: archived ones too (a list filtered by min_updated or max_updated has them anyway)",
);

pub static ROUTES: &[Route] = &[
    route!(ListGroups, "GET", "/groups", "List groups", list: true, filters: &[ARCHIVED], answer: List<GroupRecord>),
    route!(CreateGroup, "POST", "/groups", "Create a group", list: false, filters: NONE, body: bodies::CreateGroup, answer: GroupRecord),
    route!(GetGroup, "GET", "/groups/{key}", "Retrieve a group", list: false, filters: NONE, answer: GroupRecord),
    route!(UpdateGroup, "PATCH", "/groups/{key}", "Rename a group or make it the default", list: false, filters: NONE, body: bodies::UpdateGroup, answer: GroupRecord),
    route!(ArchiveGroup, "DELETE", "/groups/{key}", "Archive a group", list: false, filters: NONE, answer: GroupRecord),
    route!(ListPartnerships, "GET", "/partnerships", "List partnerships", list: true,
        filters: &[by("group_key", "only this group's"), ARCHIVED], answer: List<Partnership>),
    route!(CreatePartnership, "POST", "/partnerships", "Create a partnership", list: false, filters: NONE, body: bodies::CreatePartnership, answer: Partnership),
    route!(InvitePartnership, "POST", "/partnerships/{key}/invite", "Email the partner an invitation to the program with a one-time sign-in link to the partner portal", list: false, filters: NONE, answer: Partnership),
    route!(GetPartnership, "GET", "/partnerships/{key}", "Retrieve a partnership", list: false, filters: NONE, answer: Partnership),
    route!(UpdatePartnership, "PATCH", "/partnerships/{key}", "Update a partnership or move it to another group", list: false, filters: NONE, body: bodies::UpdatePartnership, answer: Partnership),
    route!(ArchivePartnership, "DELETE", "/partnerships/{key}", "Archive a partnership: it earns no new rewards", list: false, filters: NONE, answer: Partnership),
    route!(ListCustomers, "GET", "/customers", "List customers", list: true,
        filters: &[by("partner_key", "only this partner's"), flag("review", "true: only those waiting for review")], answer: List<CustomerRecord>),
    route!(CreateCustomer, "POST", "/customers", "Create a customer, credited to partner_key", list: false, filters: NONE, body: bodies::CreateCustomer, answer: CustomerRecord),
    route!(GetCustomer, "GET", "/customers/{key}", "Retrieve a customer", list: false, filters: NONE, answer: CustomerRecord),
    route!(UpdateCustomer, "PATCH", "/customers/{key}", "Update or re-attribute a customer", list: false, filters: NONE, body: bodies::UpdateCustomer, answer: CustomerRecord),
    route!(DeleteCustomer, "DELETE", "/customers/{key}", "Delete a customer without transactions", list: false, filters: NONE, answer: CustomerRecord),
    route!(ApproveCustomer, "POST", "/customers/{key}/approve", "Approve a customer held for review", list: false, filters: NONE, answer: CustomerRecord),
    route!(CustomerChanges, "GET", "/customers/{key}/changes", "A customer's changes of credit", list: false, filters: NONE, answer: List<Change>),
    route!(ListTransactions, "GET", "/transactions", "List transactions", list: true,
        filters: &[by("customer_key", "only this customer's"), flag("include_archived", "true: refunded and deleted ones too (a list filtered by min_updated or max_updated has them anyway)")], answer: List<TransactionRecord>),
    route!(CreateTransaction, "POST", "/transactions", "Record a payment (or a refund) and its rewards", list: false, filters: NONE, body: bodies::CreateTransaction, answer: TransactionRecord),
    route!(GetTransaction, "GET", "/transactions/{key}", "Retrieve a transaction", list: false, filters: NONE, answer: TransactionRecord),
    route!(DeleteTransaction, "DELETE", "/transactions/{key}", "Reverse a transaction: its rewards are declined or clawed back", list: false, filters: NONE, answer: TransactionRecord),
    route!(ListRewards, "GET", "/rewards", "List rewards", list: true,
        filters: &[by("partner_key", "only this partner's"), by("customer_key", "only this customer's"), by("group_key", "only this group's partners'"),
            Filter { name: "status", about: "only rewards in this status", values: &["new", "approved", "declined", "paid"] }],
        answer: List<RewardRecord>),
    route!(GetReward, "GET", "/rewards/{key}", "Retrieve a reward", list: false, filters: NONE, answer: RewardRecord),
    route!(UpdateReward, "PATCH", "/rewards/{key}", "Approve, decline or pay a reward", list: false, filters: NONE, body: bodies::UpdateReward, answer: RewardRecord),
    route!(ListOffers, "GET", "/offers", "List offers", list: true, filters: NONE, answer: List<OfferRecord>),
    route!(SaveOffer, "POST", "/offers", "Create or replace an offer", list: false, filters: NONE, body: bodies::SaveOffer, answer: OfferRecord),
    route!(ArchiveOffer, "DELETE", "/offers/{key}", "Archive an offer: it creates no new rewards", list: false, filters: NONE, answer: OfferRecord),
    route!(ListActions, "GET", "/actions", "List customers' actions", list: true,
        filters: &[by("customer_key", "only this customer's"), by("action_key", "only this action's")], answer: List<ActionRecord>),
    route!(CreateAction, "POST", "/actions", "Record a customer's action and the rewards it earns", list: false, filters: NONE, body: bodies::CreateAction, answer: ActionRecord),
    route!(GetAction, "GET", "/actions/{key}", "Retrieve an action", list: false, filters: NONE, answer: ActionRecord),
    route!(ListLeads, "GET", "/leads", "List leads", list: true, filters: &[by("partner_key", "only this partner's"), ARCHIVED], answer: List<LeadRecord>),
    route!(CreateLead, "POST", "/leads", "Submit a partner's lead", list: false, filters: NONE, body: bodies::CreateLead, answer: LeadRecord),
    route!(GetLead, "GET", "/leads/{key}", "Retrieve a lead", list: false, filters: NONE, answer: LeadRecord),
    route!(UpdateLead, "PATCH", "/leads/{key}", "Update, approve or decline a lead", list: false, filters: NONE, body: bodies::UpdateLead, answer: LeadRecord),
    route!(ArchiveLead, "DELETE", "/leads/{key}", "Archive a lead", list: false, filters: NONE, answer: LeadRecord),
    route!(ListDeals, "GET", "/deals", "List deals", list: true, filters: &[by("partner_key", "only this partner's"), ARCHIVED], answer: List<DealRecord>),
    route!(CreateDeal, "POST", "/deals", "Create a partner's deal", list: false, filters: NONE, body: bodies::CreateDeal, answer: DealRecord),
    route!(GetDeal, "GET", "/deals/{key}", "Retrieve a deal", list: false, filters: NONE, answer: DealRecord),
    route!(UpdateDeal, "PATCH", "/deals/{key}", "Move a deal along", list: false, filters: NONE, body: bodies::UpdateDeal, answer: DealRecord),
    route!(ArchiveDeal, "DELETE", "/deals/{key}", "Archive a deal", list: false, filters: NONE, answer: DealRecord),
    route!(ListWebhooks, "GET", "/webhooks", "List outgoing webhook endpoints", list: false, filters: NONE, answer: List<WebhookRecord>),
    route!(CreateWebhook, "POST", "/webhooks", "Register an outgoing webhook endpoint (Zapier's REST hook subscribe)", list: false, filters: NONE, body: bodies::CreateWebhook, answer: WebhookRecord),
    route!(GetWebhook, "GET", "/webhooks/{key}", "Retrieve a webhook endpoint", list: false, filters: NONE, answer: WebhookRecord),
    route!(UpdateWebhook, "PATCH", "/webhooks/{key}", "Change, disable or enable a webhook endpoint", list: false, filters: NONE, body: bodies::UpdateWebhook, answer: WebhookRecord),
    route!(DeleteWebhook, "DELETE", "/webhooks/{key}", "Delete a webhook endpoint (Zapier's unsubscribe)", list: false, filters: NONE, answer: WebhookRecord),
    route!(RotateWebhookSecret, "POST", "/webhooks/{key}/rotate", "Give an endpoint a new secret; the old one signs too for 24 hours", list: false, filters: NONE, answer: WebhookRecord),
    route!(ListWebhookDeliveries, "GET", "/webhooks/{key}/deliveries", "An endpoint's deliveries and their attempts, newest first", list: false,
        filters: &[by("limit", "deliveries per page, 1-100 (default 20)"), by("starting_after", "the delivery key (dlv_…) the page follows")],
        answer: List<DeliveryRecord>),
    route!(ResendWebhookDelivery, "POST", "/webhook-deliveries/{key}/resend", "Send a delivery again, at once, with the same webhook-id", list: false, filters: NONE, answer: DeliveryRecord),
];

/// The paging, range and order parameters every list takes.
const LIST_PARAMETERS: [&str; 8] = [
    "limit",
    "starting_after",
    "ending_before",
    "min_created",
    "max_created",
    "min_updated",
    "max_updated",
    "order_by",
];

impl Route {
    /// Whether it takes query parameter `name`.
    pub fn takes(&self, name: &str) -> bool {
        (self.list && LIST_PARAMETERS.contains(&name)) || self.filters.iter().any(|f| f.name == name)
    }

    /// The fields its body may hold: its body schema's properties, read
    /// from the document (built once).
    pub fn fields(&self) -> Vec<String> {
        let method = self.method.to_ascii_lowercase();
        let schema =
            &document()["paths"][self.path][method.as_str()]["requestBody"]["content"]["application/json"]["schema"];
        schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// How a path matched a route.
pub enum Found {
    Route(&'static Route, Option<String>),
    /// The path exists with these methods, not with the one asked.
    WrongMethod(Vec<&'static str>),
    Nothing,
}

/// The route for `method` and `segments` (the path under `/api/v2/`,
/// percent-decoded), and the item key it names.
pub fn find(method: &str, segments: &[&str]) -> Found {
    let mut allowed = Vec::new();
    for route in ROUTES {
        let pattern: Vec<&str> = route.path.trim_start_matches('/').split('/').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut item = None;
        let matched = pattern.iter().zip(segments).all(|(p, s)| match *p {
            "{key}" => {
                item = Some(s.to_string());
                !s.is_empty()
            }
            literal => literal == *s,
        });
        if !matched {
            continue;
        }
        if route.method == method {
            return Found::Route(route, item);
        }
        allowed.push(route.method);
    }
    if allowed.is_empty() {
        Found::Nothing
    } else {
        Found::WrongMethod(allowed)
    }
}

fn query(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
}

fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The paging, range and order parameters every list takes.
fn list_parameters() -> Vec<utoipa::openapi::path::Parameter> {
    let order_names: Vec<Value> = Order::NAMES.iter().map(|n| json!(n)).collect();
    let time = || integer().minimum(Some(0));
    vec![
        query(
            "limit",
            "items per page, 1-250 (default 10)",
            integer().minimum(Some(1)).maximum(Some(250)),
        ),
        query("starting_after", "the key of the item the page follows", text()),
        query("ending_before", "the key of the item the page precedes", text()),
        query("min_created", "created at or after (epoch ms)", time()),
        query("max_created", "created at or before (epoch ms)", time()),
        query("min_updated", "updated at or after (epoch ms)", time()),
        query("max_updated", "updated at or before (epoch ms)", time()),
        query(
            "order_by",
            "-created_at (newest first, the default) or created_at",
            text().enum_values(Some(order_names)),
        ),
    ]
}

fn build() -> OpenApi {
    let mut paths = PathsBuilder::new().build();
    let error = || {
        ResponseBuilder::new()
            .description("refused: `field` names what is wrong")
            .content(
                "application/json",
                json_content(RefOr::Ref(Ref::from_schema_name("Error"))),
            )
            .build()
    };
    for route in ROUTES {
        let method = match route.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PATCH" => HttpMethod::Patch,
            _ => HttpMethod::Delete,
        };
        let mut parameters = Vec::new();
        if route.path.contains("{key}") {
            parameters.push(
                ParameterBuilder::new()
                    .name("key")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(text()))
                    .build(),
            );
        }
        if route.list {
            parameters.extend(list_parameters());
        }
        for filter in route.filters {
            let mut schema = text();
            if !filter.values.is_empty() {
                schema = schema.enum_values(Some(filter.values.iter().copied()));
            }
            parameters.push(query(filter.name, filter.about, schema));
        }
        let mut operation = OperationBuilder::new()
            .operation_id(Some(format!("{:?}", route.op)))
            .summary(Some(route.summary))
            .parameters(Some(parameters))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("the record, or a page of them, in `data`")
                    .content("application/json", json_content((route.answer)()))
                    .build(),
            )
            .response("4XX", error())
            .response("503", error());
        if let Some(body) = route.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json_content(body()))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        paths.add_path_operation(route.path, vec![method], operation.build());
    }
    let mut components = utoipa::openapi::ComponentsBuilder::new()
        .schema("Error", records::Error::schema())
        .security_scheme(
            "basic",
            utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
                utoipa::openapi::security::HttpAuthScheme::Basic,
            )),
        );
    // The records answers list or hold, and what they refer to.
    let mut referred = vec![
        (GroupRecord::name().into(), GroupRecord::schema()),
        (Partnership::name().into(), Partnership::schema()),
        (CustomerRecord::name().into(), CustomerRecord::schema()),
        (TransactionRecord::name().into(), TransactionRecord::schema()),
        (RewardRecord::name().into(), RewardRecord::schema()),
        (OfferRecord::name().into(), OfferRecord::schema()),
        (LeadRecord::name().into(), LeadRecord::schema()),
        (DealRecord::name().into(), DealRecord::schema()),
        (ActionRecord::name().into(), ActionRecord::schema()),
        (Change::name().into(), Change::schema()),
        (WebhookRecord::name().into(), WebhookRecord::schema()),
        (DeliveryRecord::name().into(), DeliveryRecord::schema()),
        (Attempt::name().into(), Attempt::schema()),
    ];
    for route in ROUTES {
        (route.referred)(&mut referred);
    }
    for (name, schema) in referred {
        components = components.schema(name, schema);
    }
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("growsumo merchant API (PartnerStack v2 compatible)")
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build();
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new::<
        &str,
        [&str; 0],
        &str,
    >("basic", [])]);
    doc.servers = Some(vec![utoipa::openapi::server::Server::new("/api/v2")]);
    doc
}

/// The document, as JSON, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_value(build()).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{target} is not defined"
            );
        }
    }

    #[test]
    fn each_write_takes_its_body_schema_fields_and_reads_take_none() {
        let create = ROUTES.iter().find(|r| r.op == Op::CreateCustomer).unwrap();
        assert!(create.fields().contains(&"partner_key".to_string()));
        assert!(create.fields().contains(&"meta".to_string()));
        let list = ROUTES.iter().find(|r| r.op == Op::ListCustomers).unwrap();
        assert!(list.fields().is_empty());
    }

    #[test]
    fn paths_match_strictly() {
        assert!(
            matches!(find("GET", &["customers", "ann"]), Found::Route(r, Some(k)) if r.op == Op::GetCustomer && k == "ann")
        );
        assert!(matches!(find("PUT", &["customers", "ann"]), Found::WrongMethod(m) if m == ["GET", "PATCH", "DELETE"]));
        assert!(matches!(find("GET", &["customers", "ann", "x"]), Found::Nothing));
        assert!(matches!(find("GET", &["customers", ""]), Found::Nothing));
    }
}
