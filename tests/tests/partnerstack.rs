//! The merchant API as a PartnerStack v2 client sees it, over real HTTP
//! against a real collector and SQLite file: the resources a sync reads
//! (the connection check is `GET /groups`, as a real client's is), every
//! PartnerStack field with its type, the time-range filters and `order_by`
//! with paging, an incremental sync, groups and group-scoped offers, the
//! server-side signup, leads and deals. Every answer is also checked
//! against the collector's OpenAPI document (`e2e::http::Api`).

use e2e::http::Api;
use e2e::Collector;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// PartnerStack's fields of a record, with their JSON type; `?` where
/// PartnerStack may send null (and we do, where we have nothing to fill).
type Fields = &'static [(&'static str, &'static str)];

const GROUP: Fields = &[
    ("key", "string"),
    ("name", "string"),
    ("slug", "string"),
    ("default", "boolean"),
    ("archived", "boolean"),
    ("features", "object?"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const PARTNERSHIP: Fields = &[
    ("key", "string"),
    ("partner_key", "string"),
    ("email", "string"),
    ("first_name", "string"),
    ("last_name", "string"),
    ("group", "object"),
    ("joined_at", "integer"),
    ("m_data", "object?"),
    ("manager", "object?"),
    ("stats", "object?"),
    ("tags", "array"),
    ("team", "object?"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const CUSTOMER: Fields = &[
    ("key", "string"),
    ("customer_key", "string"),
    ("email", "string"),
    ("name", "string"),
    ("partner_key", "string?"),
    ("partnership_key", "string?"),
    ("provider_key", "string?"),
    ("source_key", "string?"),
    ("source_type", "string?"),
    ("test", "boolean"),
    ("meta", "object?"),
    ("field_data", "object?"),
    ("fields", "array?"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const TRANSACTION: Fields = &[
    ("key", "string"),
    ("amount", "integer"),
    ("amount_usd", "integer?"),
    ("approved", "boolean"),
    ("archived", "boolean"),
    ("category_key", "string?"),
    ("product_key", "string?"),
    ("company", "object?"),
    ("currency", "string"),
    ("customer", "object"),
    ("customer_key", "string"),
    ("extension", "object?"),
    ("metadata", "object?"),
    ("test", "boolean"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const REWARD: Fields = &[
    ("key", "string"),
    ("amount", "integer"),
    ("description", "string"),
    ("reward_status", "string"),
    ("action", "object?"),
    ("customer", "object"),
    ("invoice", "object?"),
    ("offer", "object"),
    ("partnership", "object"),
    ("transaction", "object?"),
    ("trigger", "object?"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const LEAD: Fields = &[
    ("key", "string"),
    ("amount", "integer?"),
    ("approved", "boolean"),
    ("external_key", "string?"),
    ("field_data", "object?"),
    ("fields", "array?"),
    ("group_key", "string?"),
    ("meta", "object?"),
    ("mold_key", "string?"),
    ("partner_key", "string"),
    ("status", "string"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const ACTION: Fields = &[
    ("key", "string"),
    ("action_key", "string"),
    ("customer_key", "string"),
    ("customer", "object"),
    ("value", "integer?"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];
const DEAL: Fields = &[
    ("key", "string"),
    ("amount", "integer?"),
    ("close_date", "string?"),
    ("contact_first_name", "string"),
    ("contact_last_name", "string"),
    ("external_key", "string?"),
    ("field_data", "object?"),
    ("fields", "array?"),
    ("group_key", "string?"),
    ("lost_reason", "string?"),
    ("meta", "object?"),
    ("mold_key", "string?"),
    ("partner_key", "string"),
    ("source", "string?"),
    ("stage", "string"),
    ("team", "object?"),
    ("team_member", "object?"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];

/// Panics naming the field unless `record` has each of `fields` with its type.
fn assert_fields(resource: &str, record: &Value, fields: Fields) {
    for (name, kind) in fields {
        let value = record
            .get(*name)
            .unwrap_or_else(|| panic!("{resource}: no field {name:?} in {record}"));
        let (kind, nullable) = match kind.strip_suffix('?') {
            Some(kind) => (kind, true),
            None => (*kind, false),
        };
        let typed = match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => unreachable!("a JSON type"),
        };
        assert!(
            typed || (nullable && value.is_null()),
            "{resource}.{name} is {value}, not {kind}"
        );
    }
}

/// A collector with a live key pair, its API client, and partnerships alice
/// (default group) and bob (group `gold`).
async fn program() -> (Collector, Api) {
    let c = Collector::start();
    let (pk, sk) = c.create_key(&["--mode", "live", "--name", "shop", "--origin", "https://shop.example"]);
    let api = Api::new(&c.url, &pk, &sk);
    let gold = api
        .call("POST", "groups", json!({"key": "gold", "name": "Gold Partners"}))
        .await;
    assert_eq!(gold.status, 200, "{}", gold.json());
    for (partner, group) in [("alice", None), ("bob", Some("gold"))] {
        let body = json!({"partner_key": partner, "email": format!("{partner}@partners.example"), "group_key": group});
        let created = api.call("POST", "partnerships", body).await;
        assert_eq!(created.status, 200, "{}", created.json());
    }
    (c, api)
}

async fn data(api: &Api, method: &str, path: &str, body: Value) -> Value {
    let answer = api.call(method, path, body).await;
    assert_eq!(answer.status, 200, "{method} {path}: {}", answer.json());
    answer.json()["data"].clone()
}

/// Every item of a list, page by page as a sync reads it: `limit` per page,
/// continuing `starting_after` the last item's key until `has_more` is false.
async fn read_all(api: &Api, path: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut next = format!("{path}{separator}limit={limit}");
    loop {
        let page = data(api, "GET", &next, Value::Null).await;
        let batch = page["items"].as_array().expect("items").clone();
        let last = batch.last().map(|item| item["key"].as_str().expect("a key").to_owned());
        items.extend(batch);
        match (page["has_more"].as_bool(), last) {
            (Some(true), Some(last)) => next = format!("{path}{separator}limit={limit}&starting_after={last}"),
            _ => return items,
        }
    }
}

fn keys(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["key"].as_str().expect("a key").to_owned())
        .collect()
}

#[tokio::test]
async fn a_partnerstack_client_connects_and_reads_every_resource_with_its_fields() {
    let (c, api) = program().await;
    data(
        &api,
        "POST",
        "offers",
        json!({"key": "share", "kind": "percent", "percent": 20}),
    )
    .await;
    let customer = json!({"email": "ann@example.com", "partner_key": "alice", "meta": {"plan": "pro"}});
    data(&api, "POST", "customers", customer).await;
    let payment = json!({"key": "t1", "customer_key": "ann@example.com", "amount": 10_000, "currency": "usd"});
    data(&api, "POST", "transactions", payment).await;
    let lead = json!({"key": "lead-1", "partner_key": "bob", "email": "cy@example.com", "name": "Cy"});
    data(&api, "POST", "leads", lead).await;
    let deal = json!({"key": "deal-1", "partner_key": "bob", "lead_key": "lead-1", "account_name": "Cy Corp",
                      "amount": 500_000, "currency": "usd", "stage": "qualified", "close_date": "2027-01-31"});
    data(&api, "POST", "deals", deal).await;
    let activated = json!({"key": "activated", "customer_external_key": "ann@example.com", "value": 3});
    data(&api, "POST", "actions", activated).await;
    c.advance_days(1);

    // The client's connection check, then each stream as it reads it.
    let groups = read_all(&api, "groups?min_updated=0", 250).await;
    assert_eq!(keys(&groups), ["gold", "default"]);
    assert_eq!(
        (groups[1]["default"].clone(), groups[0]["default"].clone()),
        (json!(true), json!(false))
    );
    let streams: [(&str, Fields, usize); 8] = [
        ("groups", GROUP, 2),
        ("partnerships", PARTNERSHIP, 2),
        ("customers", CUSTOMER, 1),
        ("transactions", TRANSACTION, 1),
        ("rewards", REWARD, 1),
        ("leads", LEAD, 1),
        ("deals", DEAL, 1),
        ("actions", ACTION, 1),
    ];
    for (stream, fields, count) in streams {
        let since = if matches!(stream, "transactions" | "rewards") {
            "min_created"
        } else {
            "min_updated"
        };
        let items = read_all(&api, &format!("{stream}?{since}=1500000000000"), 250).await;
        assert_eq!(items.len(), count, "{stream}: {items:?}");
        for item in &items {
            assert_fields(stream, item, fields);
        }
    }
    let partnerships = read_all(&api, "partnerships", 250).await;
    let bob = partnerships.iter().find(|p| p["partner_key"] == "bob").expect("bob");
    assert_eq!(
        (bob["key"].clone(), bob["group"]["key"].clone()),
        (json!("bob"), json!("gold"))
    );
    let ann = data(&api, "GET", "customers/ann@example.com", Value::Null).await;
    assert_eq!(
        (
            ann["customer_key"].clone(),
            ann["partnership_key"].clone(),
            ann["test"].clone(),
            ann["meta"].clone()
        ),
        (
            json!("ann@example.com"),
            json!("alice"),
            json!(false),
            json!({"plan": "pro"})
        )
    );
    let t1 = data(&api, "GET", "transactions/t1", Value::Null).await;
    assert_eq!(
        (
            t1["customer"]["email"].clone(),
            t1["amount_usd"].clone(),
            t1["approved"].clone()
        ),
        (json!("ann@example.com"), json!(10_000), json!(true))
    );
    let reward = &read_all(&api, "rewards", 250).await[0];
    assert_eq!(
        (
            reward["partnership"]["partner_key"].clone(),
            reward["customer"]["customer_key"].clone(),
            reward["transaction"]["key"].clone(),
            reward["offer"]["key"].clone(),
            reward["amount"].clone(),
        ),
        (
            json!("alice"),
            json!("ann@example.com"),
            json!("t1"),
            json!("share"),
            json!(2000)
        )
    );
    assert!(reward["description"].as_str().unwrap().contains("20%"), "{reward}");
}

#[tokio::test]
async fn every_list_filters_by_inclusive_time_ranges_with_paging_and_order() {
    let (c, api) = program().await;
    // Three of each resource, one per day, so each has its own times.
    let resources = [
        "customers",
        "transactions",
        "leads",
        "deals",
        "partnerships",
        "groups",
        "offers",
        "actions",
    ];
    let mut created: HashMap<&str, Vec<i64>> = HashMap::new();
    for day in 0..3 {
        c.advance_days(day);
        let n = day + 1;
        let bodies = [
            json!({"customer_key": format!("c{n}"), "email": format!("c{n}@example.com")}),
            json!({"key": format!("t{n}"), "customer_key": format!("c{n}"), "amount": 100, "currency": "EUR"}),
            json!({"key": format!("l{n}"), "partner_key": "alice", "email": format!("l{n}@example.com")}),
            json!({"key": format!("d{n}"), "partner_key": "alice", "account_name": format!("D{n}")}),
            json!({"partner_key": format!("p{n}"), "email": format!("p{n}@partners.example")}),
            json!({"key": format!("g{n}"), "name": format!("Group {n}")}),
            json!({"key": format!("o{n}"), "kind": "percent", "percent": n}),
            json!({"key": "activated", "customer_key": format!("c{n}")}),
        ];
        for (resource, body) in resources.iter().zip(bodies) {
            let record = data(&api, "POST", resource, body).await;
            created
                .entry(resource)
                .or_default()
                .push(record["created_at"].as_i64().unwrap());
        }
    }
    for (resource, prefix) in resources.iter().zip(["c", "t", "l", "d", "p", "g", "o", "act_"]) {
        let (t1, t2) = (created[resource][0], created[resource][1]);
        let ours = |items: Vec<Value>| -> Vec<String> {
            keys(&items)
                .into_iter()
                .filter(|k| k.starts_with(prefix) && k.len() == prefix.len() + 1)
                .collect()
        };
        let name = |n: u32| format!("{prefix}{n}");
        // Inclusive bounds, alone and together, newest first by default.
        let from = ours(read_all(&api, &format!("{resource}?min_created={t2}"), 250).await);
        assert_eq!(from, [name(3), name(2)], "{resource} min_created");
        let until = ours(read_all(&api, &format!("{resource}?max_created={t2}&min_created={t1}"), 250).await);
        assert_eq!(until, [name(2), name(1)], "{resource} max_created");
        let updated = ours(read_all(&api, &format!("{resource}?min_updated={t2}&max_updated={t2}"), 250).await);
        assert_eq!(updated, [name(2)], "{resource} updated range");
        // Paged one or two at a time, in either order, every item exactly once.
        let paged = ours(read_all(&api, &format!("{resource}?min_created={t1}&order_by=created_at"), 1).await);
        assert_eq!(paged, [name(1), name(2), name(3)], "{resource} paged oldest first");
        let newest = ours(read_all(&api, &format!("{resource}?min_created={t1}&order_by=-created_at"), 2).await);
        assert_eq!(newest, [name(3), name(2), name(1)], "{resource} paged newest first");
        // Back from the last item with ending_before.
        let back = data(
            &api,
            "GET",
            &format!(
                "{resource}?min_created={t1}&order_by=created_at&ending_before={}&limit=1",
                name(3)
            ),
            Value::Null,
        )
        .await;
        assert_eq!(
            ours(back["items"].as_array().unwrap().clone()),
            [name(2)],
            "{resource} ending_before"
        );
        // Malformed filters name themselves.
        for (filter, value) in [
            ("min_updated", "abc"),
            ("max_created", "-5"),
            ("min_created", "1.5"),
            ("order_by", "sideways"),
            ("order_by", "updated_at"),
            ("partnr_key", "a-typo"),
        ] {
            let refused = api
                .call("GET", &format!("{resource}?{filter}={value}"), Value::Null)
                .await;
            assert_eq!(
                (refused.status.as_u16(), refused.json()["field"].clone()),
                (400, json!(filter)),
                "{resource}?{filter}={value}"
            );
        }
    }
    // Rewards too (created by transactions): 20% offer for the program.
    data(
        &api,
        "POST",
        "offers",
        json!({"key": "share", "kind": "percent", "percent": 20}),
    )
    .await;
    data(
        &api,
        "POST",
        "customers",
        json!({"customer_key": "rc", "email": "rc@example.com", "partner_key": "alice"}),
    )
    .await;
    let mut reward_times = Vec::new();
    for day in 3..6 {
        c.advance_days(day);
        let paid = data(
            &api,
            "POST",
            "transactions",
            json!({"key": format!("rt{day}"), "customer_key": "rc", "amount": 1000, "currency": "EUR"}),
        )
        .await;
        reward_times.push(paid["created_at"].as_i64().unwrap());
    }
    let from = read_all(
        &api,
        &format!(
            "rewards?min_created={}&max_created={}",
            reward_times[1], reward_times[2]
        ),
        1,
    )
    .await;
    // Each payment earns under four offers (o1-o3 and share), newest first.
    let mut transactions: Vec<Value> = from.iter().map(|r| r["transaction"]["key"].clone()).collect();
    assert_eq!(transactions.len(), 8);
    transactions.dedup();
    assert_eq!(transactions, [json!("rt5"), json!("rt4")]);
    let refused = api.call("GET", "rewards?min_created=yesterday", Value::Null).await;
    assert_eq!(refused.json()["field"], "min_created");
}

#[tokio::test]
async fn an_incremental_sync_reads_exactly_what_changed_since() {
    let (c, api) = program().await;
    for n in 1..=5 {
        data(
            &api,
            "POST",
            "customers",
            json!({"customer_key": format!("c{n}"), "email": format!("c{n}@example.com")}),
        )
        .await;
        data(
            &api,
            "POST",
            "transactions",
            json!({"key": format!("t{n}"), "customer_key": format!("c{n}"), "amount": 100, "currency": "USD"}),
        )
        .await;
    }
    // Read everything and note the newest change.
    let all = read_all(&api, "customers", 2).await;
    assert_eq!(all.len(), 5);
    let noted = all.iter().map(|c| c["updated_at"].as_i64().unwrap()).max().unwrap();
    let mut since = noted + 1;
    for resource in ["partnerships", "transactions"] {
        for item in read_all(&api, resource, 250).await {
            since = since.max(item["updated_at"].as_i64().unwrap() + 1);
        }
    }
    c.advance_days(1);
    // Change one of each: a customer renamed, a partnership moved to gold,
    // a transaction refunded (a change: listed, as archived).
    data(&api, "PATCH", "customers/c3", json!({"name": "Renamed"})).await;
    data(&api, "PATCH", "partnerships/alice", json!({"group_key": "gold"})).await;
    data(&api, "DELETE", "transactions/t4", Value::Null).await;
    let changed = read_all(&api, &format!("customers?min_updated={since}"), 250).await;
    assert_eq!(
        (keys(&changed), changed[0]["name"].clone()),
        (vec!["c3".to_string()], json!("Renamed"))
    );
    let moved = read_all(&api, &format!("partnerships?min_updated={since}"), 250).await;
    assert_eq!(
        (keys(&moved), moved[0]["group"]["key"].clone()),
        (vec!["alice".to_string()], json!("gold"))
    );
    let refunded = read_all(&api, &format!("transactions?min_updated={since}"), 250).await;
    assert_eq!(
        (
            keys(&refunded),
            refunded[0]["archived"].clone(),
            refunded[0]["approved"].clone()
        ),
        (vec!["t4".to_string()], json!(true), json!(false))
    );
    let live = keys(&read_all(&api, "transactions", 250).await);
    assert!(
        !live.contains(&"t4".to_string()),
        "a reversed transaction is not listed as live: {live:?}"
    );
    // An archived partnership is a change too.
    data(&api, "DELETE", "partnerships/bob", Value::Null).await;
    let archived = read_all(&api, &format!("partnerships?min_updated={since}"), 250).await;
    let states: Vec<(Value, Value)> = archived
        .iter()
        .map(|p| (p["key"].clone(), p["archived"].clone()))
        .collect();
    assert_eq!(states, [(json!("bob"), json!(true)), (json!("alice"), json!(false))]);
}

/// Rows are stamped once the write lock is held: concurrent writers commit
/// in the order of their times, so a sync that reads `min_updated` from the
/// newest time it saw never misses a row.
#[tokio::test]
async fn concurrent_writes_commit_in_time_order() {
    let (_c, api) = program().await;
    let api = std::sync::Arc::new(api);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let body = json!({"customer_key": format!("w{w}-{n}"), "email": format!("w{w}-{n}@example.com")});
                    assert_eq!(api.call("POST", "customers", body).await.status, 200);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let oldest_first = read_all(&api, "customers?order_by=created_at", 250).await;
    let times: Vec<i64> = oldest_first.iter().map(|c| c["created_at"].as_i64().unwrap()).collect();
    assert_eq!(times.len(), 100);
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "commit order is time order: {times:?}"
    );
}

#[tokio::test]
async fn paging_survives_inserts_and_a_deleted_cursor() {
    let (_c, api) = program().await;
    for n in 0..30 {
        data(
            &api,
            "POST",
            "customers",
            json!({"customer_key": format!("c{n:02}"), "email": format!("c{n:02}@example.com")}),
        )
        .await;
    }
    // Page by 7 while new customers keep arriving: each customer that was
    // there when the sync started is read exactly once, and nothing twice.
    let mut seen = Vec::new();
    let mut next = "customers?limit=7".to_string();
    let mut inserted = 0;
    loop {
        let page = data(&api, "GET", &next, Value::Null).await;
        let batch = keys(page["items"].as_array().unwrap());
        data(
            &api,
            "POST",
            "customers",
            json!({"customer_key": format!("new{inserted}"), "email": format!("new{inserted}@example.com")}),
        )
        .await;
        inserted += 1;
        seen.extend(batch.clone());
        match page["has_more"].as_bool() {
            Some(true) => next = format!("customers?limit=7&starting_after={}", batch.last().unwrap()),
            _ => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nothing read twice: {seen:?}");
    let originals: Vec<String> = (0..30).rev().map(|n| format!("c{n:02}")).collect();
    assert_eq!(seen, originals, "every customer there at the start, once, newest first");

    // A cursor whose item was deleted keeps paging from where it stood.
    let first = data(&api, "GET", "customers?order_by=created_at&limit=3", Value::Null).await;
    assert_eq!(keys(first["items"].as_array().unwrap()), ["c00", "c01", "c02"]);
    data(&api, "DELETE", "customers/c02", Value::Null).await;
    let after = data(
        &api,
        "GET",
        "customers?order_by=created_at&limit=3&starting_after=c02",
        Value::Null,
    )
    .await;
    assert_eq!(keys(after["items"].as_array().unwrap()), ["c03", "c04", "c05"]);
    let unknown = api.call("GET", "customers?starting_after=never-was", Value::Null).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.json()["field"].clone()),
        (404, json!("starting_after"))
    );
}

/// The amounts and partners of the rewards `transaction` earned.
async fn earned(api: &Api, transaction: &str) -> Vec<(i64, String)> {
    let rewards = read_all(api, "rewards", 250).await;
    let mut earned: Vec<(i64, String)> = rewards
        .iter()
        .filter(|r| r["transaction"]["key"] == transaction)
        .map(|r| {
            (
                r["amount"].as_i64().unwrap(),
                r["partnership"]["partner_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    earned.sort();
    earned
}

#[tokio::test]
async fn group_scoped_offers_pay_their_groups_and_archives_stop_new_rewards() {
    let (_c, api) = program().await;
    data(
        &api,
        "POST",
        "offers",
        json!({"key": "standard", "kind": "percent", "percent": 10, "group_key": "default"}),
    )
    .await;
    let gold = data(
        &api,
        "POST",
        "offers",
        json!({"key": "gold", "kind": "percent", "percent": 30, "group_key": "gold"}),
    )
    .await;
    assert_eq!(gold["group_key"], "gold");
    for (customer, partner) in [("ann", "alice"), ("ben", "bob")] {
        data(
            &api,
            "POST",
            "customers",
            json!({"customer_key": customer, "email": format!("{customer}@example.com"), "partner_key": partner}),
        )
        .await;
    }
    let pay = |key: &'static str, customer: &'static str| json!({"key": key, "customer_key": customer, "amount": 10_000, "currency": "USD"});
    data(&api, "POST", "transactions", pay("a1", "ann")).await;
    data(&api, "POST", "transactions", pay("b1", "ben")).await;
    assert_eq!(
        earned(&api, "a1").await,
        [(1000, "alice".to_string())],
        "the default group's 10%"
    );
    assert_eq!(earned(&api, "b1").await, [(3000, "bob".to_string())], "gold's 30%");
    let gold_rewards = read_all(&api, "rewards?group_key=gold", 250).await;
    assert_eq!(gold_rewards.len(), 1);

    // Alice moves up to gold: her next customer payment earns gold's rate.
    data(&api, "PATCH", "partnerships/alice", json!({"group_key": "gold"})).await;
    data(&api, "POST", "transactions", pay("a2", "ann")).await;
    assert_eq!(earned(&api, "a2").await, [(3000, "alice".to_string())]);

    // An archived offer pays nothing new; an archived partnership earns nothing new.
    let archived = data(&api, "DELETE", "offers/gold", Value::Null).await;
    assert_eq!(archived["archived"], true);
    data(&api, "POST", "transactions", pay("b2", "ben")).await;
    assert_eq!(earned(&api, "b2").await, []);
    data(&api, "DELETE", "partnerships/bob", Value::Null).await;
    data(
        &api,
        "POST",
        "offers",
        json!({"key": "gold", "kind": "percent", "percent": 30, "group_key": "gold"}),
    )
    .await;
    data(&api, "POST", "transactions", pay("b3", "ben")).await;
    assert_eq!(earned(&api, "b3").await, [], "bob is archived");
    data(&api, "POST", "transactions", pay("a3", "ann")).await;
    assert_eq!(
        earned(&api, "a3").await,
        [(3000, "alice".to_string())],
        "the offer is back for alice"
    );
    let listed = keys(&read_all(&api, "partnerships", 250).await);
    assert_eq!(listed, ["alice"], "archived partnerships leave the default list");
    let all = keys(&read_all(&api, "partnerships?include_archived=true", 250).await);
    assert_eq!(all, ["bob", "alice"]);
    // A group that does not exist, or is archived, cannot be joined.
    let missing = api
        .call("PATCH", "partnerships/alice", json!({"group_key": "platinum"}))
        .await;
    assert_eq!(
        (missing.status.as_u16(), missing.json()["field"].clone()),
        (404, json!("group_key"))
    );
    let default = api.call("DELETE", "groups/default", Value::Null).await;
    assert_eq!(default.status, 409, "the default group stays");
    // A rename keeps a group what it was; gold made the default takes it over.
    let renamed = data(&api, "PATCH", "groups/default", json!({"name": "Everyone"})).await;
    assert_eq!(
        (renamed["name"].clone(), renamed["default"].clone()),
        (json!("Everyone"), json!(true))
    );
    let gold = data(&api, "PATCH", "groups/gold", json!({"default": true})).await;
    assert_eq!(
        (gold["name"].clone(), gold["default"].clone()),
        (json!("Gold Partners"), json!(true))
    );
    let groups = read_all(&api, "groups", 250).await;
    let defaults: Vec<_> = groups
        .iter()
        .filter(|g| g["default"] == json!(true))
        .map(|g| g["key"].clone())
        .collect();
    assert_eq!(defaults, [json!("gold")], "one default group");
}

#[tokio::test]
async fn a_server_side_signup_with_a_partner_key_and_a_transaction_that_signs_a_customer_up() {
    let (_c, api) = program().await;
    data(
        &api,
        "POST",
        "offers",
        json!({"key": "welcome", "kind": "new_customer", "amounts": {"USD": 5000}}),
    )
    .await;
    // A mobile app got `ps_partner_key` from a deep link and creates the
    // customer itself: credited as the merchant's word.
    let dee = data(
        &api,
        "POST",
        "customers",
        json!({"email": "dee@example.com", "partner_key": "alice", "customer_key": "u-17"}),
    )
    .await;
    assert_eq!(
        (
            dee["partner_key"].clone(),
            dee["source_type"].clone(),
            dee["confidence"].clone()
        ),
        (json!("alice"), json!("api"), json!("merchant"))
    );
    // A transaction for an email with no customer: refused, unless it signs the customer up.
    let unknown = api
        .call(
            "POST",
            "transactions",
            json!({"customer_email": "eve@example.com", "amount": 2900, "currency": "USD"}),
        )
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.json()["field"].clone()),
        (404, json!("customer_email"))
    );
    let stray = api
        .call(
            "POST",
            "transactions",
            json!({"customer_email": "eve@example.com", "amount": 2900, "currency": "USD", "partner_key": "bob"}),
        )
        .await;
    assert_eq!(
        (stray.status.as_u16(), stray.json()["field"].clone()),
        (400, json!("partner_key"))
    );
    let signed_up = data(
        &api,
        "POST",
        "transactions",
        json!({"key": "e1", "customer_email": "eve@example.com", "amount": 2900, "currency": "USD",
               "create_customer": true, "partner_key": "bob", "customer_name": "Eve"}),
    )
    .await;
    assert_eq!(signed_up["customer"]["partner_key"], "bob");
    let eve = data(&api, "GET", "customers/eve@example.com", Value::Null).await;
    assert_eq!(
        (eve["name"].clone(), eve["partner_key"].clone()),
        (json!("Eve"), json!("bob"))
    );
    assert_eq!(earned(&api, "e1").await, [(5000, "bob".to_string())]);
    // PartnerStack's customer_external_key names the merchant's key.
    let by_external = data(
        &api,
        "POST",
        "transactions",
        json!({"key": "d1", "customer_external_key": "u-17", "amount": 100, "currency": "USD"}),
    )
    .await;
    assert_eq!(by_external["customer_key"], "u-17");
    // The same key again: the same payment, or a conflict if its figures differ.
    let retry = json!({"key": "d1", "customer_key": "u-17", "amount": 100, "currency": "USD"});
    assert_eq!(api.call("POST", "transactions", retry).await.status, 200);
    let changed = json!({"key": "d1", "customer_key": "u-17", "amount": 999, "currency": "USD"});
    let conflict = api.call("POST", "transactions", changed).await;
    assert_eq!(
        (conflict.status.as_u16(), conflict.json()["field"].clone()),
        (409, json!("key"))
    );
    // Emails match whatever their case.
    let shouted = json!({"key": "d2", "customer_email": "DEE@Example.COM", "amount": 100, "currency": "USD"});
    assert_eq!(
        data(&api, "POST", "transactions", shouted).await["customer_key"],
        "u-17"
    );
    // Signing up with the merchant's own key and the email; a customer that
    // exists keeps its partner.
    let keyed = json!({"key": "f1", "customer_key": "u-18", "customer_email": "fred@example.com", "amount": 100,
                       "currency": "USD", "create_customer": true, "partner_key": "alice"});
    let fred = data(&api, "POST", "transactions", keyed).await;
    assert_eq!(
        (fred["customer"]["key"].clone(), fred["customer"]["email"].clone()),
        (json!("u-18"), json!("fred@example.com"))
    );
    let steal = json!({"key": "f2", "customer_key": "u-18", "customer_email": "fred@example.com", "amount": 100,
                       "currency": "USD", "create_customer": true, "partner_key": "bob"});
    let refused = api.call("POST", "transactions", steal).await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["field"].clone()),
        (409, json!("partner_key"))
    );
    let no_email = json!({"customer_key": "u-19", "amount": 100, "currency": "USD", "create_customer": true});
    assert_eq!(
        api.call("POST", "transactions", no_email).await.json()["field"],
        "customer_email"
    );
    // A reward names the customer with its partner.
    let reward = &read_all(&api, "rewards?customer_key=u-18", 250).await[0];
    assert_eq!(reward["customer"]["partner_key"], "alice");
}

#[tokio::test]
async fn an_approved_lead_credits_the_customer_it_becomes_and_deals_move_along() {
    let (_c, api) = program().await;
    let lead = data(
        &api,
        "POST",
        "leads",
        json!({"key": "l1", "partner_key": "bob", "email": "fay@example.com", "company": "Fay Ltd"}),
    )
    .await;
    assert_eq!(
        (
            lead["status"].clone(),
            lead["approved"].clone(),
            lead["group_key"].clone()
        ),
        (json!("open"), json!(false), json!("gold"))
    );
    // An open lead credits nobody; an approved one does.
    let gus = data(
        &api,
        "POST",
        "leads",
        json!({"key": "l2", "partner_key": "alice", "email": "gus@example.com"}),
    )
    .await;
    assert_eq!(gus["status"], "open");
    data(&api, "PATCH", "leads/l1", json!({"status": "approved"})).await;
    let fay = data(&api, "POST", "customers", json!({"email": "fay@example.com"})).await;
    assert_eq!(
        (fay["partner_key"].clone(), fay["source_type"].clone()),
        (json!("bob"), json!("lead"))
    );
    let converted = data(&api, "GET", "leads/l1", Value::Null).await;
    assert_eq!(
        (converted["status"].clone(), converted["customer_key"].clone()),
        (json!("converted"), json!("fay@example.com"))
    );
    // Two partners' approved leads for one prospect: the customer is the
    // newest one's, and only that lead converts.
    for (key, partner) in [("l5", "alice"), ("l6", "bob")] {
        let lead = json!({"key": key, "partner_key": partner, "email": "Ida@Example.com", "status": "approved"});
        data(&api, "POST", "leads", lead).await;
    }
    let ida = data(&api, "POST", "customers", json!({"email": "ida@example.com"})).await;
    assert_eq!(ida["partner_key"], "bob", "emails match whatever their case");
    let l5 = data(&api, "GET", "leads/l5", Value::Null).await;
    let l6 = data(&api, "GET", "leads/l6", Value::Null).await;
    assert_eq!(
        (l5["status"].clone(), l6["status"].clone()),
        (json!("approved"), json!("converted"))
    );
    let gus = data(&api, "POST", "customers", json!({"email": "gus@example.com"})).await;
    assert_eq!(
        gus["partner_key"],
        Value::Null,
        "an open lead is not the merchant's word"
    );
    // A prospect who became a customer before the lead was approved is
    // credited when it is, and the change is logged.
    data(&api, "POST", "customers", json!({"email": "hal@example.com"})).await;
    data(
        &api,
        "POST",
        "leads",
        json!({"key": "l3", "partner_key": "alice", "email": "hal@example.com"}),
    )
    .await;
    let approved = data(&api, "PATCH", "leads/l3", json!({"status": "approved"})).await;
    assert_eq!(
        (approved["status"].clone(), approved["customer_key"].clone()),
        (json!("converted"), json!("hal@example.com"))
    );
    let hal = data(&api, "GET", "customers/hal@example.com", Value::Null).await;
    assert_eq!(
        (hal["partner_key"].clone(), hal["source_type"].clone()),
        (json!("alice"), json!("lead"))
    );
    let changes = data(&api, "GET", "customers/hal@example.com/changes", Value::Null).await;
    assert_eq!(changes["items"][0]["to_partner_key"], "alice");
    let bad = api.call("PATCH", "leads/l2", json!({"status": "converted"})).await;
    assert_eq!(
        (bad.status.as_u16(), bad.json()["field"].clone()),
        (400, json!("status"))
    );
    let archived_partner_lead = {
        data(
            &api,
            "POST",
            "partnerships",
            json!({"partner_key": "old", "email": "old@partners.example"}),
        )
        .await;
        data(&api, "DELETE", "partnerships/old", Value::Null).await;
        api.call("POST", "leads", json!({"partner_key": "old", "email": "x@example.com"}))
            .await
    };
    assert_eq!(archived_partner_lead.status, 409);

    // A deal from the lead, moved through its stages, then archived.
    let deal = data(
        &api,
        "POST",
        "deals",
        json!({"key": "d1", "partner_key": "bob", "lead_key": "l1", "account_name": "Fay Ltd"}),
    )
    .await;
    assert_eq!(
        (deal["stage"].clone(), deal["lead_key"].clone()),
        (json!("open"), json!("l1"))
    );
    let won = data(
        &api,
        "PATCH",
        "deals/d1",
        json!({"stage": "closed_won", "amount": 1_200_000, "currency": "eur", "close_date": "2027-03-01"}),
    )
    .await;
    assert_eq!(
        (won["stage"].clone(), won["amount"].clone(), won["currency"].clone()),
        (json!("closed_won"), json!(1_200_000), json!("EUR"))
    );
    let bad_date = api.call("PATCH", "deals/d1", json!({"close_date": "March"})).await;
    assert_eq!(bad_date.json()["field"], "close_date");
    let unknown_lead = api
        .call(
            "POST",
            "deals",
            json!({"partner_key": "bob", "lead_key": "nope", "account_name": "X"}),
        )
        .await;
    assert_eq!(
        (unknown_lead.status.as_u16(), unknown_lead.json()["field"].clone()),
        (404, json!("lead_key"))
    );
    for (body, field) in [
        (json!({"close_date": "2027-02-29"}), "close_date"),
        (json!({"close_date": "2027-13-01"}), "close_date"),
        (json!({"amount": 5, "currency": null}), "currency"),
    ] {
        let deal = json!({"partner_key": "bob", "account_name": "Y"});
        let mut deal = deal.as_object().unwrap().clone();
        deal.extend(body.as_object().unwrap().clone());
        let refused = api.call("POST", "deals", Value::Object(deal)).await;
        assert_eq!(
            (refused.status.as_u16(), refused.json()["field"].clone()),
            (400, json!(field))
        );
    }
    let foreign = api
        .call(
            "POST",
            "deals",
            json!({"partner_key": "alice", "lead_key": "l1", "account_name": "X"}),
        )
        .await;
    assert_eq!(
        (foreign.status.as_u16(), foreign.json()["field"].clone()),
        (400, json!("lead_key"))
    );
    data(&api, "DELETE", "deals/d1", Value::Null).await;
    assert!(read_all(&api, "deals", 250).await.is_empty());
    assert_eq!(keys(&read_all(&api, "deals?include_archived=true", 250).await), ["d1"]);
}

#[tokio::test]
async fn actions_earn_what_action_offers_pay_once_per_customer_and_follow_its_partner() {
    let (_c, api) = program().await;
    let offer = json!({"key": "activation", "kind": "action", "action_key": "activated", "amounts": {"USD": 1500}});
    assert_eq!(data(&api, "POST", "offers", offer).await["action_key"], "activated");
    let gold_only = json!({"key": "gold-upgrade", "kind": "action", "action_key": "upgraded", "amounts": {"USD": 4000}, "group_key": "gold"});
    data(&api, "POST", "offers", gold_only).await;
    for (customer, partner) in [("ann", "alice"), ("ben", "bob")] {
        data(
            &api,
            "POST",
            "customers",
            json!({"customer_key": customer, "email": format!("{customer}@example.com"), "partner_key": partner}),
        )
        .await;
    }
    let action = |customer: &str, key: &str| json!({"customer_key": customer, "key": key});
    let first = data(&api, "POST", "actions", action("ann", "activated")).await;
    assert_eq!(
        (first["action_key"].clone(), first["customer"]["partner_key"].clone()),
        (json!("activated"), json!("alice"))
    );
    data(&api, "POST", "actions", action("ann", "activated")).await;
    data(&api, "POST", "actions", action("ann", "upgraded")).await;
    data(
        &api,
        "POST",
        "actions",
        json!({"customer_email": "ben@example.com", "key": "upgraded", "value": 3}),
    )
    .await;
    let rewards = read_all(&api, "rewards", 250).await;
    let mut earned: Vec<(String, String, i64)> = rewards
        .iter()
        .map(|r| {
            (
                r["partnership"]["partner_key"].as_str().unwrap().to_owned(),
                r["action"]["action_key"].as_str().unwrap().to_owned(),
                r["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    earned.sort();
    assert_eq!(
        earned,
        [
            ("alice".into(), "activated".into(), 1500),
            ("bob".into(), "upgraded".into(), 4000)
        ],
        "once per customer; the gold offer pays only gold's partnerships"
    );
    assert!(rewards.iter().all(|r| r["transaction"].is_null()));
    let listed = read_all(&api, "actions?customer_key=ann", 1).await;
    assert_eq!(listed.len(), 3);
    let activated = read_all(&api, "actions?action_key=activated", 250).await;
    assert_eq!(activated.len(), 2);
    // The customer moves to bob: alice's action reward is declined, bob earns it.
    data(
        &api,
        "PATCH",
        "customers/ann",
        json!({"partner_key": "bob", "reason": "bob closed the deal"}),
    )
    .await;
    let after = read_all(&api, "rewards?customer_key=ann", 250).await;
    let mut states: Vec<(String, String)> = after
        .iter()
        .map(|r| {
            (
                r["partnership"]["partner_key"].as_str().unwrap().to_owned(),
                r["reward_status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("alice".into(), "declined".into()),
            ("bob".into(), "new".into()),
            ("bob".into(), "new".into())
        ],
        "bob now earns activation, and gold's upgrade too"
    );
    // Bad actions name their field; a customer with actions stays.
    let nobody = api.call("POST", "actions", action("nobody", "activated")).await;
    assert_eq!(
        (nobody.status.as_u16(), nobody.json()["field"].clone()),
        (404, json!("customer_key"))
    );
    let two = api
        .call(
            "POST",
            "actions",
            json!({"customer_key": "ann", "customer_email": "ann@example.com", "key": "x"}),
        )
        .await;
    assert_eq!(two.json()["field"], "customer_key");
    let no_currency = api
        .call(
            "POST",
            "offers",
            json!({"key": "x", "kind": "action", "action_key": "y", "amounts": {}}),
        )
        .await;
    assert_eq!(no_currency.json()["field"], "amounts");
    let kept = api.call("DELETE", "customers/ann", Value::Null).await;
    assert_eq!(kept.status, 409);
}
