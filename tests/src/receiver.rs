//! A merchant's webhook receiver, for the outgoing webhook suites: a real
//! HTTP server on a loopback port that keeps every request it gets
//! (headers and body) and answers as the test says: a status per request
//! in turn (then 200), or holding every request until released. It checks
//! nothing itself: the tests verify signatures with the `standardwebhooks`
//! crate, which shares no code with the collector.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When its body had been read.
    pub at: std::time::Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The `webhook-id` header.
    pub fn id(&self) -> String {
        self.header("webhook-id")
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The body, as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The message's `type`.
    pub fn event(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// An answer the receiver gives: a status, a body, headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `status` with the body `answered <status>`.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: format!("answered {status}").into_bytes(),
            headers: Vec::new(),
        }
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    /// Answers to give, in turn; then 200.
    answers: Mutex<VecDeque<Reply>>,
    arrived: Notify,
}

pub struct Receiver {
    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>`.
    pub url: String,
    pub port: u16,
    state: Arc<State>,
    /// True while requests are held unanswered.
    hold: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// Starts a receiver on `port` (0: a free one).
    pub async fn start_on(port: u16) -> Receiver {
        Self::listen(port, None).await
    }

    /// Starts an https receiver on a free port, its certificate for
    /// `localhost` signed by the CA `certificates` made in `dir`
    /// (`dir/ca.pem`).
    pub async fn start_tls(dir: &std::path::Path) -> Receiver {
        Self::listen(0, Some(tls_acceptor(dir))).await
    }

    async fn listen(port: u16, tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("an address").port();
        let state = Arc::new(State::default());
        let (hold, held) = watch::channel(false);
        let served = state.clone();
        let scheme = if tls.is_some() {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, held, tls) = (served.clone(), held.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(state.clone(), held.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        // A client that refuses the certificate ends here.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let io = hyper_util::rt::TokioIo::new(stream);
                                let _ = http.serve_connection(io, service).await;
                            }
                        }
                        None => {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Receiver {
            url: format!("{scheme}:{port}"),
            port,
            state,
            hold,
            server,
        }
    }

    /// Answers the next requests with these statuses, in turn (then 200).
    pub fn answer_with(&self, statuses: &[u16]) {
        self.reply_with(statuses.iter().map(|s| Reply::status(*s)));
    }

    /// Gives these answers to the next requests, in turn (then 200).
    pub fn reply_with(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.answers.lock().unwrap().extend(replies);
    }

    /// Holds every request unanswered until `release`.
    pub fn hold(&self) {
        self.hold.send_replace(true);
    }

    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds of the requests received, or fails after
    /// `within`; returns them.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            // (Judged on the list itself: cloning it at every arrival would
            // cost a benchmark's burst quadratic time.)
            if done(&self.state.received.lock().unwrap()) {
                return self.received();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let received = self.received();
                assert!(
                    done(&received),
                    "waited {within:?}; received {} requests: {:?}",
                    received.len(),
                    received.iter().map(|r| r.event()).collect::<Vec<_>>()
                );
                return received;
            }
        }
    }

    /// Waits until `n` requests were received (at most 30 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_until(Duration::from_secs(30), |r| r.len() >= n).await
    }

    /// Stops listening (connections are refused).
    pub fn stop(self) {
        self.server.abort();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    state: Arc<State>,
    mut held: watch::Receiver<bool>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let at = std::time::Instant::now();
    state.received.lock().unwrap().push(Received {
        at,
        path,
        headers,
        body,
    });
    state.arrived.notify_waiters();
    let _ = held.wait_for(|hold| !*hold).await;
    let reply = state.answers.lock().unwrap().pop_front().unwrap_or(Reply::status(200));
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    Ok(response.body(Full::new(Bytes::from(reply.body))).expect("a response"))
}

/// Verifies `received`'s signature with the Standard Webhooks reference
/// implementation (the `standardwebhooks` crate) under `secret`; the error
/// says why not.
pub fn verify(secret: &str, received: &Received) -> Result<(), String> {
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| format!("{e:?}"))?;
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = received.header(name);
        headers.insert(name, value.parse().map_err(|e| format!("{name}: {e:?}"))?);
    }
    webhook.verify(&received.body, &headers).map_err(|e| format!("{e:?}"))
}

/// A TLS server side with a certificate for `localhost` signed by the CA
/// `postgres::certificates` makes in `dir` (`dir/ca.pem`).
pub fn tls_acceptor(dir: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::postgres::certificates(dir, None);
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("the certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("the certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("the key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the server's certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
