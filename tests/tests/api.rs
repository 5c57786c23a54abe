//! The merchant API over real HTTP against the collector's SQLite file:
//! authentication, every endpoint, pagination across pages, idempotent
//! transactions, rewards and their reversal, and validation errors that name
//! the field and write nothing.

use e2e::http::{send, Api};
use e2e::Collector;
use serde_json::{json, Value};

/// A collector with a live key pair (live keys earn rewards) and its API client.
fn live() -> (Collector, Api, String) {
    let c = Collector::start();
    let (pk, sk) = c.create_key(&["--mode", "live", "--name", "shop", "--origin", "https://shop.example"]);
    let api = Api::new(&c.url, &pk, &sk);
    (c, api, pk)
}

/// (status, field) of an error answer.
fn refusal(answer: &e2e::http::Answer) -> (u16, Value) {
    (answer.status.as_u16(), answer.json()["field"].clone())
}

#[tokio::test]
async fn only_a_matching_key_pair_may_call() {
    let (c, api, pk) = live();
    let url = format!("{}/api/v2/customers", c.url);
    let none = send("GET", &url, &[], "").await;
    assert_eq!(refusal(&none), (401, json!("authorization")));
    assert_eq!(none.headers["www-authenticate"], "Basic realm=\"growsumo\"");
    let (_, other_secret) = c.create_key(&["--mode", "live"]);
    let wrong = Api::new(&c.url, &pk, &other_secret)
        .call("GET", "customers", Value::Null)
        .await;
    assert_eq!(wrong.status, 401);
    // A public key alone can never read.
    let public_only = Api::new(&c.url, &pk, "").call("GET", "customers", Value::Null).await;
    assert_eq!(public_only.status, 401);
    let ok = api.call("GET", "customers", Value::Null).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json(),
        json!({"data": {"items": [], "has_more": false}, "message": "customers", "status": 200})
    );
    let unknown = api.call("GET", "nothing", Value::Null).await;
    assert_eq!(refusal(&unknown), (404, json!("path")));
    // The scheme's name is case-insensitive; a wrong method says which are right.
    let lower_case = api.authorization().replacen("Basic", "basic", 1);
    let lower = send("GET", &url, &[("authorization", &lower_case)], "").await;
    assert_eq!(lower.status, 200);
    let put = api.call("PUT", "customers", Value::Null).await;
    assert_eq!(
        (refusal(&put), put.headers["allow"].to_str().unwrap()),
        ((405, json!("method")), "GET, POST")
    );
}

#[tokio::test]
async fn partnerships_are_created_read_updated_and_paged() {
    let (_c, api, _) = live();
    let created = api
        .call(
            "POST",
            "partnerships",
            json!({"partner_key": "alice", "email": "alice@partners.example", "first_name": "Alice"}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.json());
    let alice = &created.json()["data"];
    assert_eq!(alice["key"], "alice");
    assert_eq!(alice["link"], "https://shop.example/?ps_partner_key=YWxpY2U");
    let generated = api
        .call("POST", "partnerships", json!({"email": "bob@partners.example"}))
        .await;
    assert_eq!(generated.json()["data"]["key"].as_str().unwrap().len(), 16);
    let taken = api
        .call(
            "POST",
            "partnerships",
            json!({"partner_key": "alice", "email": "x@partners.example"}),
        )
        .await;
    assert_eq!(refusal(&taken), (409, json!("partner_key")));
    let same_email = api
        .call("POST", "partnerships", json!({"email": "alice@partners.example"}))
        .await;
    assert_eq!(refusal(&same_email), (409, json!("email")));
    let bad = api.call("POST", "partnerships", json!({"email": "nope"})).await;
    assert_eq!(refusal(&bad), (400, json!("email")));
    let long = api
        .call(
            "POST",
            "partnerships",
            json!({"email": "c@p.example", "first_name": "n".repeat(101)}),
        )
        .await;
    assert_eq!(refusal(&long), (400, json!("first_name")));

    let patched = api
        .call("PATCH", "partnerships/alice", json!({"last_name": "Liddell"}))
        .await;
    assert_eq!(patched.json()["data"]["last_name"], "Liddell");
    assert_eq!(patched.json()["data"]["first_name"], "Alice");
    assert_eq!(
        api.call("GET", "partnerships/alice", Value::Null).await.json()["data"]["last_name"],
        "Liddell"
    );
    assert_eq!(
        refusal(&api.call("GET", "partnerships/zed", Value::Null).await),
        (404, json!("partner_key"))
    );

    for i in 0..23 {
        let answer = api
            .call(
                "POST",
                "partnerships",
                json!({"partner_key": format!("p{i:02}"), "email": format!("p{i}@partners.example")}),
            )
            .await;
        assert_eq!(answer.status, 200);
    }
    // 25 partners, newest first, in pages of 10: 10 + 10 + 5, each once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(key) => format!("partnerships?limit=10&starting_after={key}"),
            None => "partnerships?limit=10".into(),
        };
        let page = api.call("GET", &query, Value::Null).await.json()["data"].clone();
        let keys: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap().into())
            .collect();
        after = keys.last().cloned();
        seen.extend(keys);
        if page["has_more"] == json!(false) {
            break;
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen[0], "p22");
    assert_eq!(seen.iter().collect::<std::collections::HashSet<_>>().len(), 25);
    // And back: the 10 before the last page's first item.
    let back = api
        .call(
            "GET",
            &format!("partnerships?limit=10&ending_before={}", seen[20]),
            Value::Null,
        )
        .await;
    let back_keys: Vec<String> = back.json()["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().into())
        .collect();
    assert_eq!(back_keys, seen[10..20]);
    assert_eq!(
        refusal(&api.call("GET", "partnerships?limit=251", Value::Null).await),
        (400, json!("limit"))
    );
    assert_eq!(
        refusal(&api.call("GET", "partnerships?limit=0", Value::Null).await),
        (400, json!("limit"))
    );
    let stale = api.call("GET", "partnerships?starting_after=nobody", Value::Null).await;
    assert_eq!(refusal(&stale), (404, json!("starting_after")));
}

#[tokio::test]
async fn customers_are_created_read_updated_filtered_and_deleted() {
    let (c, api, _) = live();
    for (key, partner) in [("ann", "alice"), ("ben", "bob"), ("cat", "alice")] {
        let body = json!({"customer_key": key, "email": format!("{key}@example.com"), "partner_key": partner});
        assert_eq!(api.call("POST", "customers", body).await.status, 200);
    }
    let dup = api
        .call(
            "POST",
            "customers",
            json!({"customer_key": "ann", "email": "ann@example.com"}),
        )
        .await;
    assert_eq!(refusal(&dup), (409, json!("customer_key")));
    assert_eq!(
        refusal(&api.call("POST", "customers", json!({"customer_key": "x"})).await),
        (400, json!("email"))
    );
    let wrong_type = api
        .call("POST", "customers", json!({"email": "d@example.com", "name": 7}))
        .await;
    assert_eq!(refusal(&wrong_type), (400, json!("name")));
    let not_json = send(
        "POST",
        &format!("{}/api/v2/customers", c.url),
        &[("content-type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(not_json.status, 401, "authentication comes first");

    let ann = api.call("GET", "customers/ann", Value::Null).await.json()["data"].clone();
    assert_eq!(
        (ann["partner_key"].clone(), ann["source_type"].clone()),
        (json!("alice"), json!("api"))
    );
    let alices = api.call("GET", "customers?partner_key=alice", Value::Null).await.json()["data"]["items"].clone();
    assert_eq!(
        alices
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].clone())
            .collect::<Vec<_>>(),
        [json!("cat"), json!("ann")]
    );
    let renamed = api
        .call(
            "PATCH",
            "customers/ann",
            json!({"name": "Ann Example", "provider_key": "cus_1"}),
        )
        .await;
    assert_eq!(renamed.json()["data"]["name"], "Ann Example");
    assert_eq!(renamed.json()["data"]["provider_key"], "cus_1");
    assert_eq!(api.call("DELETE", "customers/ben", Value::Null).await.status, 200);
    assert_eq!(
        refusal(&api.call("GET", "customers/ben", Value::Null).await),
        (404, json!("customer_key"))
    );
    // A customer with transactions keeps them: it cannot be deleted.
    let paid = api
        .call(
            "POST",
            "transactions",
            json!({"customer_key": "ann", "amount": 100, "currency": "usd"}),
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.json());
    assert_eq!(
        refusal(&api.call("DELETE", "customers/ann", Value::Null).await),
        (409, json!("customer_key"))
    );
}

#[tokio::test]
async fn transactions_earn_rewards_once_and_reversals_take_them_back() {
    let (c, api, pk) = live();
    // A partnership: credit to a partner key no partnership has waits for review.
    c.cli(&[
        "partners",
        "add",
        &pk,
        "--email",
        "alice@partners.example",
        "--partner-key",
        "alice",
    ]);
    api.call(
        "POST",
        "customers",
        json!({"customer_key": "ann", "email": "ann@example.com", "partner_key": "alice"}),
    )
    .await;
    let welcome = api
        .call(
            "POST",
            "offers",
            json!({"key": "welcome", "kind": "new_customer", "amounts": {"USD": 5000, "eur": 4500}}),
        )
        .await;
    assert_eq!(welcome.status, 200, "{}", welcome.json());
    let share = api
        .call(
            "POST",
            "offers",
            json!({"key": "share", "kind": "percent", "percent": 20, "months": 12}),
        )
        .await;
    assert_eq!(share.status, 200);
    assert_eq!(
        api.call("GET", "offers", Value::Null).await.json()["data"]["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        refusal(
            &api.call("POST", "offers", json!({"key": "x", "kind": "percent", "percent": 150}))
                .await
        ),
        (400, json!("percent"))
    );

    let body = json!({"key": "t1", "customer_key": "ann", "amount": 10000, "currency": "USD", "product_key": "pro"});
    let first = api.call("POST", "transactions", body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.json());
    assert_eq!(first.json()["message"], "transaction created");
    let again = api.call("POST", "transactions", body).await;
    assert_eq!(again.json()["message"], "transaction exists (same key)");
    assert_eq!(again.json()["data"], first.json()["data"]);
    assert_eq!(c.count("SELECT count(*) FROM transactions"), 1);

    let listed = api
        .call("GET", "transactions?customer_key=ann", Value::Null)
        .await
        .json()["data"]
        .clone();
    assert_eq!(listed["items"][0]["key"], "t1");
    assert_eq!(
        api.call("GET", "transactions/t1", Value::Null).await.json()["data"]["amount"],
        10000
    );
    assert_eq!(
        refusal(&api.call("GET", "transactions/t9", Value::Null).await),
        (404, json!("key"))
    );
    let rewards = api.call("GET", "rewards?partner_key=alice", Value::Null).await.json()["data"]["items"].clone();
    let mut amounts: Vec<i64> = rewards
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    amounts.sort();
    assert_eq!(amounts, [2000, 5000]);
    let flat = rewards
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["amount"] == 5000)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for status in ["approved", "paid"] {
        let moved = api
            .call("PATCH", &format!("rewards/{flat}"), json!({"status": status}))
            .await;
        assert_eq!(moved.json()["data"]["reward_status"], status);
    }
    let backwards = api
        .call("PATCH", &format!("rewards/{flat}"), json!({"status": "new"}))
        .await;
    assert_eq!(refusal(&backwards), (409, json!("status")));
    assert_eq!(
        refusal(&api.call("GET", "rewards?status=lost", Value::Null).await),
        (400, json!("status"))
    );

    // Deleting the transaction reverses its rewards: the paid one is clawed back.
    let deleted = api.call("DELETE", "transactions/t1", Value::Null).await;
    assert!(deleted.json()["data"]["reversed_at"].is_i64());
    let after = api.call("GET", "rewards", Value::Null).await.json()["data"]["items"].clone();
    let mut states: Vec<(i64, String)> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["amount"].as_i64().unwrap(),
                r["reward_status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [(-5000, "new".into()), (2000, "declined".into()), (5000, "paid".into())]
    );
    let clawback = after.as_array().unwrap().iter().find(|r| r["amount"] == -5000).unwrap();
    assert_eq!(clawback["reverses"], json!(flat));
}

#[tokio::test]
async fn transaction_validation_names_the_field_and_writes_nothing() {
    let (c, api, _) = live();
    api.call(
        "POST",
        "customers",
        json!({"customer_key": "ann", "email": "ann@example.com", "partner_key": "alice"}),
    )
    .await;
    let cases = [
        (
            json!({"customer_key": "ann", "amount": -1, "currency": "USD"}),
            400,
            "amount",
        ),
        (
            json!({"customer_key": "ann", "amount": 1.5, "currency": "USD"}),
            400,
            "amount",
        ),
        (
            json!({"customer_key": "ann", "amount": "100", "currency": "USD"}),
            400,
            "amount",
        ),
        (
            json!({"customer_key": "ann", "amount": 10_000_000_001i64, "currency": "USD"}),
            400,
            "amount",
        ),
        (json!({"customer_key": "ann", "currency": "USD"}), 400, "amount"),
        (
            json!({"customer_key": "ann", "amount": 100, "currency": "XYZ"}),
            400,
            "currency",
        ),
        (
            json!({"customer_key": "ann", "amount": 100, "currency": "US"}),
            400,
            "currency",
        ),
        (
            json!({"customer_key": "ann", "customer_email": "ann@example.com", "amount": 100, "currency": "USD"}),
            400,
            "customer_key",
        ),
        (json!({"amount": 100, "currency": "USD"}), 400, "customer_key"),
        (
            json!({"customer_email": "not-an-email", "amount": 100, "currency": "USD"}),
            400,
            "customer_email",
        ),
        (
            json!({"customer_key": "zed", "amount": 100, "currency": "USD"}),
            404,
            "customer_key",
        ),
        (
            json!({"customer_email": "zed@example.com", "amount": 100, "currency": "USD"}),
            404,
            "customer_email",
        ),
        (
            json!({"provider_key": "cus_zed", "amount": 100, "currency": "USD"}),
            404,
            "provider_key",
        ),
    ];
    for (body, status, field) in cases {
        let answer = api.call("POST", "transactions", body.clone()).await;
        assert_eq!(refusal(&answer), (status, json!(field)), "{body}");
        assert!(answer.json()["message"].as_str().unwrap().contains(field));
    }
    let array = api.call("POST", "transactions", json!([1])).await;
    assert_eq!(refusal(&array), (400, json!("body")));
    assert_eq!(
        c.count("SELECT count(*) FROM transactions") + c.count("SELECT count(*) FROM rewards"),
        0
    );
    // Zero is a valid amount.
    let free = api
        .call(
            "POST",
            "transactions",
            json!({"customer_key": "ann", "amount": 0, "currency": "usd"}),
        )
        .await;
    assert_eq!(free.json()["data"]["currency"], "USD");
}

#[tokio::test]
async fn test_keys_never_create_rewards() {
    let c = Collector::start();
    let (pk, sk) = c.create_key(&["--mode", "test"]);
    let api = Api::new(&c.url, &pk, &sk);
    api.call(
        "POST",
        "customers",
        json!({"customer_key": "ann", "email": "ann@example.com", "partner_key": "alice"}),
    )
    .await;
    api.call(
        "POST",
        "offers",
        json!({"key": "share", "kind": "percent", "percent": 20}),
    )
    .await;
    let paid = api
        .call(
            "POST",
            "transactions",
            json!({"customer_key": "ann", "amount": 10000, "currency": "USD"}),
        )
        .await;
    assert_eq!(paid.status, 200);
    assert_eq!(c.count("SELECT count(*) FROM rewards"), 0);
}

/// A NUL byte in an API path or query parameter (PostgreSQL cannot hold
/// one in text) is refused as input on either backend, naming where it
/// was: not a storage error a client would retry for ever.
#[tokio::test]
async fn a_control_character_in_an_api_path_or_filter_is_refused_as_input() {
    let c = Collector::start();
    let api = Api::new(&c.url, &c.public_key, c.secret_key.as_deref().expect("the demo secret"));
    let found = api.call("GET", "customers/a%00b", json!(null)).await;
    assert_eq!(found.status.as_u16(), 400, "{}", String::from_utf8_lossy(&found.body));
    assert_eq!(found.json()["field"], "path");
    let listed = api.call("GET", "customers?partner_key=a%00b", json!(null)).await;
    assert_eq!(listed.status.as_u16(), 400, "{}", String::from_utf8_lossy(&listed.body));
    assert_eq!(listed.json()["field"], "query");
}
