//! One attempt of one outgoing webhook: signed as the Standard Webhooks 1.0
//! specification says, posted over a connection made to a checked address
//! (see `target`), HTTPS verified against Mozilla's roots and the
//! operator's own CA, if any (`crate::tls`), everything within `TIMEOUT`.
//!
//! The request is made with hyper's connection-level client over our own
//! connection, because the address must be chosen (and checked) by us, not
//! by a pooling client's resolver.

use super::target::{self, Target};
use crate::store::outbox::{Due, Tried};
use base64::Engine;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most time an attempt takes, from resolving the name to the answer's
/// last byte read.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Most bytes of an answer read (its excerpt is kept with the attempt).
const ANSWER_BYTES: usize = 4096;

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of
/// "{id}.{timestamp}.{body}">` for each secret (`whsec_<base64 key>`),
/// space-separated.
pub fn signature(secrets: &[String], id: &str, timestamp: i64, body: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    secrets
        .iter()
        .filter_map(|secret| b64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok())
        .map(|key| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body.as_bytes());
            format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What sends attempts: the TLS settings, and whether private targets are allowed.
#[derive(Clone)]
pub struct Sender {
    tls: tokio_rustls::TlsConnector,
    allow_private: bool,
}

impl Sender {
    /// `ca_file`: a PEM file of certificates trusted besides Mozilla's
    /// roots (an intranet's CA).
    pub fn new(allow_private: bool, ca_file: Option<&str>) -> anyhow::Result<Sender> {
        let roots = crate::tls::roots(ca_file)?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Sender {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            allow_private,
        })
    }

    /// Posts `due` once; `sent_at` (Unix seconds) is its `webhook-timestamp`.
    pub async fn attempt(&self, due: &Due, sent_at: i64) -> Tried {
        let started = Instant::now();
        let answer = tokio::time::timeout(TIMEOUT, self.post(due, sent_at)).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, response, retry_after_ms) = match answer {
            Ok(Ok(answer)) => (Some(answer.status), answer.excerpt, answer.retry_after_ms),
            Ok(Err(error)) => (None, error, None),
            Err(_) => (None, format!("no answer within {} s", TIMEOUT.as_secs()), None),
        };
        Tried {
            status,
            duration_ms,
            response,
            retry_after_ms,
        }
    }

    async fn post(&self, due: &Due, sent_at: i64) -> Result<Answer, String> {
        let target = target::parse(&due.url, self.allow_private)?;
        let stream = self.connect(&target).await?;
        let request = hyper::Request::post(target.path.as_str())
            .header(hyper::header::HOST, host_header(&target))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("growsumo-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", &due.message_key)
            .header("webhook-timestamp", sent_at.to_string())
            .header(
                "webhook-signature",
                signature(&due.secrets, &due.message_key, sent_at, &due.body),
            )
            .body(Full::new(Bytes::from(due.body.clone())))
            .map_err(|e| format!("cannot make the request: {e}"))?;
        match stream {
            Stream::Plain(tcp) => exchange(tcp, request).await,
            Stream::Tls(tls) => exchange(*tls, request).await,
        }
    }

    /// A connection to the first of the name's addresses that is allowed
    /// and answers (the address connected to is the one checked).
    async fn connect(&self, target: &Target) -> Result<Stream, String> {
        let addresses = resolve(&target.host, target.port).await?;
        let allowed: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|a| self.allow_private || target::is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            let shown: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            return Err(format!(
                "refused: {} resolves to private addresses only ({}); the operator can allow them with \
                 --allow-private-webhook-targets",
                target.host,
                shown.join(", ")
            ));
        }
        let mut last_error = String::new();
        for address in allowed {
            match tokio::net::TcpStream::connect(address).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    if !target.https {
                        return Ok(Stream::Plain(tcp));
                    }
                    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                        .map_err(|e| format!("{}: {e}", target.host))?;
                    return match self.tls.connect(name, tcp).await {
                        Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
                        Err(e) => Err(format!("TLS with {} failed: {e}", target.host)),
                    };
                }
                Err(e) => last_error = format!("cannot connect to {address}: {e}"),
            }
        }
        Err(last_error)
    }
}

/// Most name lookups running at once. The system's resolver blocks a
/// thread until it answers, however long: the collector's API, dashboard
/// and health checks share those threads, so endpoints whose DNS never
/// answers may hold only this many (the permit is released when the
/// lookup ends, not when the attempt gives up waiting).
const LOOKUPS: usize = 16;

/// The addresses of `host`, from the system's resolver, at most `LOOKUPS`
/// at a time.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    static RUNNING: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let running = RUNNING.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(LOOKUPS)));
    let permit = running.clone().acquire_owned().await.map_err(|e| e.to_string())?;
    let name = host.to_owned();
    let looked_up = tokio::task::spawn_blocking(move || {
        let _running = permit;
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(Iterator::collect::<Vec<_>>)
    })
    .await
    .map_err(|e| e.to_string())?;
    looked_up.map_err(|e| format!("cannot resolve {host}: {e}"))
}

enum Stream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

fn host_header(target: &Target) -> String {
    let host = match target.host.contains(':') {
        true => format!("[{}]", target.host),
        false => target.host.clone(),
    };
    match (target.https, target.port) {
        (true, 443) | (false, 80) => host,
        (_, port) => format!("{host}:{port}"),
    }
}

/// What a receiver answered.
struct Answer {
    status: u16,
    /// At most `ANSWER_BYTES` of the body, as text.
    excerpt: String,
    /// `Retry-After` (delay-seconds), with a 429 or 503.
    retry_after_ms: Option<i64>,
}

/// Sends `request` on `io` (HTTP/1.1) and reads the status, `Retry-After`
/// and at most `ANSWER_BYTES` of the answer.
async fn exchange<T>(io: T, request: hyper::Request<Full<Bytes>>) -> Result<Answer, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = answer.status().as_u16();
    let retry_after_ms = answer
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|_| status == 429 || status == 503)
        .map(|seconds| seconds.saturating_mul(1000));
    let mut body = answer.into_body();
    let mut read = Vec::new();
    while read.len() < ANSWER_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read.extend_from_slice(data);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    read.truncate(ANSWER_BYTES);
    driver.abort();
    Ok(Answer {
        status,
        excerpt: String::from_utf8_lossy(&read).into_owned(),
        retry_after_ms,
    })
}

#[cfg(test)]
mod tests {
    /// The Standard Webhooks specification's own example.
    #[test]
    fn signs_as_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            super::signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
