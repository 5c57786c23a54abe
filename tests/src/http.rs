//! A plain HTTP/1.1 client over loopback for the collector's endpoints.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `method url` with `headers` and `body`; returns the whole answer.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Answer {
    send_from(None, method, url, headers, body).await
}

/// Like `send`, from the local address `from` (loopback has a whole /8:
/// 127.0.3.1 is another client network than 127.0.0.1).
pub async fn send_from(
    from: Option<std::net::IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    request(from, method, url, headers, body.into())
        .await
        .expect("HTTP request")
}

/// Like `send`, but `None` when no whole answer came (the server was down,
/// or closed the connection), as a client retrying elsewhere sees it.
pub async fn try_send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Option<Answer> {
    request(None, method, url, headers, body.into()).await.ok()
}

async fn request(
    from: Option<std::net::IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Answer, Box<dyn std::error::Error + Send + Sync>> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(from);
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = client.request(req.body(Full::new(body))?).await?;
    let (parts, body) = res.into_parts();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

pub async fn get(url: &str) -> Answer {
    send("GET", url, &[], Bytes::new()).await
}

/// POSTs a batch as the snippet does (`text/plain`).
pub async fn post_events(base: &str, body: impl Into<Bytes>) -> Answer {
    send(
        "POST",
        &format!("{base}/v1/events"),
        &[("content-type", "text/plain;charset=UTF-8")],
        body,
    )
    .await
}

/// A merchant API client: HTTP Basic with a key pair, JSON bodies. Every
/// answer it receives is checked against the collector's OpenAPI document
/// (see `contract`).
pub struct Api {
    pub base: String,
    auth: String,
    contract: tokio::sync::OnceCell<crate::contract::Contract>,
}

impl Api {
    pub fn new(base: &str, public_key: &str, secret_key: &str) -> Api {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{public_key}:{secret_key}"));
        Api {
            base: base.to_owned(),
            auth: format!("Basic {auth}"),
            contract: tokio::sync::OnceCell::new(),
        }
    }

    /// The `Authorization` header value it sends.
    pub fn authorization(&self) -> &str {
        &self.auth
    }

    /// `method /api/v2/{path}` with `body` (JSON, or nothing when null).
    pub async fn call(&self, method: &str, path: &str, body: serde_json::Value) -> Answer {
        let url = format!("{}/api/v2/{path}", self.base);
        let mut headers = vec![("authorization", self.auth.as_str())];
        let body = if body.is_null() {
            String::new()
        } else {
            headers.push(("content-type", "application/json"));
            body.to_string()
        };
        let answer = send(method, &url, &headers, body).await;
        let contract = self
            .contract
            .get_or_init(|| async {
                let document = get(&format!("{}/api/v2/openapi.json", self.base)).await;
                assert_eq!(document.status, 200, "the OpenAPI document is served");
                crate::contract::Contract::new(document.json())
            })
            .await;
        let path = path.split('?').next().unwrap_or_default();
        contract.check(method, path, answer.status.as_u16(), &answer.json());
        answer
    }
}

/// Stripe's `v1` signature of `body` at time `t` under an endpoint `secret`:
/// hex HMAC-SHA256 of `"{t}.{body}"`.
pub fn stripe_v1(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A Stripe `invoice.payment_succeeded` event (live mode): `email` paid
/// `cents` USD; `id` names the event, invoice and Stripe customer.
pub fn stripe_invoice(id: &str, email: &str, cents: i64) -> serde_json::Value {
    serde_json::json!({
        "id": format!("evt_{id}"), "object": "event", "type": "invoice.payment_succeeded", "livemode": true,
        "data": {"object": {"id": format!("in_{id}"), "object": "invoice", "customer": format!("cus_{id}"),
                            "customer_email": email, "amount_paid": cents, "currency": "usd"}}
    })
}

/// POSTs a Stripe event to `/webhooks/stripe`, signed now with `secret`.
pub async fn stripe_webhook(base: &str, secret: &str, event: &serde_json::Value) -> Answer {
    let body = event.to_string();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let signature = format!("t={t},v1={}", stripe_v1(secret, t, &body));
    let headers = [
        ("content-type", "application/json"),
        ("stripe-signature", signature.as_str()),
    ];
    send("POST", &format!("{base}/webhooks/stripe"), &headers, body).await
}

/// The CSRF token of a dashboard or portal page's first form.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_owned()
}
