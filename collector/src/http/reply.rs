//! Response builders. Every error is JSON `{"status", "field", "message"}`,
//! naming the field at fault so the caller knows what to fix.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub type Reply = Response<Full<Bytes>>;

pub fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    field: &'a str,
    message: &'a str,
}

pub fn error(status: StatusCode, field: &str, message: &str) -> Reply {
    json(
        status,
        &ErrorBody {
            status: status.as_u16(),
            field,
            message,
        },
    )
}

pub fn bytes(content_type: &'static str, cache_control: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    reply
}

pub fn not_found(path: &str) -> Reply {
    error(StatusCode::NOT_FOUND, "path", &format!("nothing is served at {path}"))
}
