//! The HTTP side: the accept loop, graceful shutdown, and the routing table.
//!
//! No framework: one `match` on method and path (see `route`) names every
//! endpoint; handlers live in modules by audience. Shape after mini-redis:
//! a semaphore bounds connections, a header-read timeout stops slow-loris
//! clients, and shutdown stops accepting, lets in-flight requests finish,
//! then returns so the caller can flush the writer.

pub(crate) mod api;
pub use api::{currency_code as currency, MAX_AMOUNT};
pub mod assets;
mod config;
mod dashboard;
pub mod decode;
mod diagnostics;
mod events;
pub mod limits;
mod portal;
mod reply;
mod server_cookie;
mod webhooks;

use crate::app::App;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ETAG, IF_NONE_MATCH};
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use reply::Reply;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests one keep-alive connection may carry; the last answer closes it.
const REQUESTS_PER_CONNECTION: u32 = 1000;
/// Files kept free for the database, logs and accept itself.
const RESERVED_FILES: u64 = 64;

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// now in force (the connection cap stays below it, so `accept` does not
/// run out of descriptors under load).
fn raise_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur
    }
}

/// Connections open per client address, for the per-client cap.
#[derive(Default)]
struct PerClient(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PerClient {
    /// Counts a new connection from `ip`, unless it already has `cap`.
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut open = self.0.lock().expect("per-client counts");
        let count = open.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot(self.clone(), ip))
    }
}

/// One counted connection; uncounted when dropped.
struct ClientSlot(Arc<PerClient>, std::net::IpAddr);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.0 .0.lock().expect("per-client counts");
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
///
/// Limits, so one client cannot hurt the rest: at most `max_connections`
/// at once (below the open-file limit), `max_connections_per_client` from
/// one address (a trusted proxy's are not capped: they are many clients),
/// a header-read timeout (slow-loris), a write timeout (answers never
/// read), `REQUESTS_PER_CONNECTION` and `connection_max_age` per keep-alive
/// connection. A failing
/// `accept` (out of descriptors) backs off instead of spinning, and is
/// logged at most once a second.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    // A file-size limit (RLIMIT_FSIZE) must fail a write (the commit then
    // fails and nothing is acknowledged), not kill the process.
    // SAFETY: setting a signal's disposition to "ignore" has no handler to race.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let graceful = GracefulShutdown::new();
    let files = raise_file_limit();
    let cap = app
        .max_connections
        .min(files.saturating_sub(RESERVED_FILES).max(1) as usize);
    let permits = Arc::new(Semaphore::new(cap));
    // One client never holds more than a quarter of what can be served.
    let per_client_cap = app.max_connections_per_client.min((cap / 4).max(1));
    let per_client = Arc::new(PerClient::default());
    let forgetting = app.clone();
    let forget = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            forgetting.limits.forget_idle();
        }
    });
    let mut last_warning: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        last_warning = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let peer_ip = peer.ip().to_canonical();
        let slot = match app.trusted_proxies.contains(&peer_ip) {
            true => None,
            false => match per_client.enter(limits::client_bucket(peer_ip), per_client_cap) {
                Some(slot) => Some(slot),
                // Over its cap: closed at once, the others are served.
                None => continue,
            },
        };
        let timeout = app.client_timeout;
        let app = app.clone();
        let served = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let opened = std::time::Instant::now();
        let write_timeout = app.write_timeout;
        let service = service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            let client = app.client(peer, req.headers());
            req.extensions_mut().insert(client);
            let nth = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            async move {
                let mut reply = observed(&app, req).await;
                // Past its request count or its age, a keep-alive
                // connection is closed after this answer.
                if nth >= REQUESTS_PER_CONNECTION || opened.elapsed() >= app.connection_max_age {
                    reply
                        .headers_mut()
                        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(reply)
            }
        });
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(write_timeout));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            // Headers beyond 32 KiB are refused (431): hyper's default of
            // about 400 KiB per connection let idle clients hold gigabytes.
            .max_buf_size(32 * 1024)
            .serve_connection(TokioIo::new(Box::pin(stream)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop((permit, slot));
        });
    }
    drop(listener);
    forget.abort();
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
}

/// A request id, for the answer's `x-request-id` and every log line of it:
/// 64 random bits, which say nothing of the process nor of how many
/// requests it served.
fn request_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// Which route a request takes, as `/metrics` labels it: an index into
/// `metrics::ROUTES`.
fn route_label(method: &Method, path: &str) -> usize {
    let label = match path {
        "/v1/events" => "events",
        "/v1/config" => "config",
        "/v1/diagnostics" => "diagnostics",
        "/v1/" | "/v1/growsumo.js" => "loader",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/webhooks/stripe" => "webhooks_stripe",
        "/webhooks/chargebee" => "webhooks_chargebee",
        "/webhooks/recurly" => "webhooks_recurly",
        p if p.starts_with("/v1/") && p.ends_with(".wasm") => "wasm",
        p if p.starts_with("/api/v2/") => "api",
        p if p.starts_with("/dashboard") => "dashboard",
        p if p == "/partners" || p.starts_with("/partners/") => "portal",
        _ if method == Method::GET => "static",
        _ => "other",
    };
    crate::metrics::ROUTES
        .iter()
        .position(|r| *r == label)
        .unwrap_or(crate::metrics::ROUTES.len() - 1)
}

/// Routes the request inside a span carrying its request id (every log line
/// of it says which request), counts it for `/metrics`, and answers with
/// the id in `x-request-id`.
async fn observed(app: &App, req: Request<Incoming>) -> Reply {
    use tracing::Instrument;
    let id = request_id();
    let label = route_label(req.method(), req.uri().path());
    let ip = req
        .extensions()
        .get::<crate::app::Client>()
        .map(|c| c.ip.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id, client = %ip, method = %req.method(), path = %req.uri().path());
    // Health and metrics are never rate limited: monitors must see in.
    let limited = match (req.uri().path(), req.extensions().get::<crate::app::Client>()) {
        ("/healthz" | "/readyz" | "/metrics", _) | (_, None) => None,
        (_, Some(client)) => app.limits.client(client.ip),
    };
    let mut reply = match limited {
        Some(reply) => reply,
        None => route(app, req).instrument(span).await,
    };
    app.metrics.request(label, reply.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&id) {
        reply.headers_mut().insert("x-request-id", value);
    }
    reply
}

/// `GET /readyz`: ready when the database takes writes, the last commit
/// succeeded, the database file is the one opened, and the writer runs.
///
/// The probe write runs at most once per `PROBE_EVERY`; callers in between
/// share its result, so anyone calling `/readyz` cannot make the server
/// write (or fight the writer for its lock) as fast as they can ask.
async fn readyz(app: &App) -> Reply {
    const PROBE_EVERY: Duration = Duration::from_secs(5);
    let cached = {
        let last = app.probe.lock().expect("probe");
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < PROBE_EVERY)
            .map(|(_, result)| result.clone())
    };
    let writable = match cached {
        Some(result) => result,
        None => {
            let store = app.store.clone();
            let result = match tokio::task::spawn_blocking(move || store.check_writable()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            *app.probe.lock().expect("probe") = Some((std::time::Instant::now(), result.clone()));
            result
        }
    };
    if writable.is_ok() {
        app.writer.recovered();
    }
    if let Some(trouble) = app.disk.low().or_else(|| app.writer.trouble()) {
        tracing::error!(trouble, "not ready");
        let mut reply = reply::error(StatusCode::SERVICE_UNAVAILABLE, "database", &trouble);
        reply
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("5"));
        return reply;
    }
    match writable {
        Ok(()) if app.writer.is_running() => reply::json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        Err(e) => {
            tracing::error!(error = %e, "not ready: the database does not take writes");
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "database", "does not take writes")
        }
        Ok(()) => reply::error(StatusCode::SERVICE_UNAVAILABLE, "writer", "has stopped"),
    }
}

/// The routing table.
async fn route(app: &App, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/events") => events::post(app, req).await,
        (&Method::OPTIONS, "/v1/events") => events::preflight(&req),
        // The config answer may carry the visitor's referral (restored from
        // the server cookie): credentialed CORS only when the key allowed
        // the page's origin, which a success means.
        (&Method::GET, "/v1/config") => {
            let origin = req.headers().get(hyper::header::ORIGIN).cloned();
            let mut reply = config::get(app, req).await;
            if let Some(origin) = origin.filter(|_| reply.status().is_success()) {
                events::allow_origin(&mut reply, origin);
            }
            reply
        }
        (&Method::POST, "/v1/diagnostics") => {
            let origin = req.headers().get(hyper::header::ORIGIN).cloned();
            let mut reply = diagnostics::post(app, req).await;
            if let Some(origin) = origin {
                events::allow_origin(&mut reply, origin);
            }
            reply
        }
        // HEAD too (monitors, CDNs): hyper sends the headers only.
        (&Method::GET | &Method::HEAD, "/v1/" | "/v1/growsumo.js") => loader(&req),
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/v1/growsumo-") => immutable(&req, &p[4..]),
        (_, p) if p.starts_with("/api/v2/") => api::handle(app, req).await,
        (_, p) if p == "/dashboard" || p.starts_with("/dashboard/") => dashboard::handle(app, req).await,
        (_, p) if p == "/partners" || p.starts_with("/partners/") => portal::handle(app, req).await,
        (&Method::POST, "/webhooks/stripe") => webhooks::stripe(app, req).await,
        (&Method::POST, "/webhooks/chargebee") => webhooks::chargebee(app, req).await,
        (&Method::POST, "/webhooks/recurly") => webhooks::recurly(app, req).await,
        (&Method::GET, "/healthz") => reply::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        (&Method::GET, "/readyz") => readyz(app).await,
        (&Method::GET, "/metrics") => metrics(app, &req),
        (&Method::GET, p) if app.demo_key.is_some() => demo(app, p),
        (_, p) => reply::not_found(p),
    }
}

/// `GET /metrics`: business volume and sign-in failures are not public. A
/// direct loopback client (a local agent) may read it; any other needs
/// `Authorization: Bearer <--metrics-token>`, compared in constant time.
fn metrics(app: &App, req: &Request<Incoming>) -> Reply {
    use subtle::ConstantTimeEq;
    let direct_loopback = req
        .extensions()
        .get::<crate::app::Client>()
        .is_some_and(|c| c.ip.is_loopback() && !c.forwarded);
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = match (&app.metrics_token, bearer) {
        (Some(token), Some(given)) => bool::from(token.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if !direct_loopback && !token_ok {
        let mut reply = reply::error(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "send the metrics token (--metrics-token) as a Bearer token",
        );
        reply
            .headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return reply;
    }
    reply::bytes(
        "text/plain; version=0.0.4; charset=utf-8",
        "no-store",
        app.metrics.render(&app.writer.metrics),
    )
}

fn missing_snippet() -> Reply {
    reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "snippet",
        "this collector was built without the snippet: run `cargo xtask build`",
    )
}

/// `GET /v1/`: stage 1, on every page view of every merchant page. Its URL
/// never changes, so it is revalidated on every use (ETag: a 304 of no
/// body): a stage 1 kept past a release would name a stage 2 the collector
/// no longer serves.
fn loader(req: &Request<Incoming>) -> Reply {
    let Some(snippet) = &assets::SNIPPET else {
        return missing_snippet();
    };
    shipped(
        req,
        &snippet.loader,
        "application/javascript; charset=utf-8",
        "no-cache",
        snippet.loader_etag,
    )
}

/// `GET /v1/growsumo-<hash>.{js,wasm}`: stage 2 and the wasm, cached
/// forever: their names change with their content.
fn immutable(req: &Request<Incoming>, name: &str) -> Reply {
    let Some(snippet) = &assets::SNIPPET else {
        return missing_snippet();
    };
    match snippet.immutable.iter().find(|(file, _, _)| *file == name) {
        Some((file, content_type, bytes)) => {
            shipped(req, bytes, content_type, "public, max-age=31536000, immutable", file)
        }
        None => reply::not_found(name),
    }
}

/// A snippet file, in the smallest encoding the client accepts. Merchant
/// pages on other origins fetch it (the wasm in CORS mode), and pages with
/// `Cross-Origin-Embedder-Policy` need it marked cross-origin: it holds no
/// data, so every origin may read it, without credentials. `tag` names the
/// file's content; the ETag adds the encoding, since each is its own
/// representation.
fn shipped(
    req: &Request<Incoming>,
    file: &assets::Encoded,
    content_type: &'static str,
    cache: &'static str,
    tag: &str,
) -> Reply {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body, encoding) = file.pick(accept);
    let etag = format!("\"{}-{}\"", tag.trim_matches('"'), encoding.unwrap_or("identity"));
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"snippet\""));
    // `If-None-Match` may list tags, weak ones (`W/"…"`, as CDNs send), or `*`.
    let fresh = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.as_bytes() == etag.as_bytes())
        });
    let mut reply = reply::bytes(
        content_type,
        cache,
        if fresh { bytes::Bytes::new() } else { body.into() },
    );
    if fresh {
        *reply.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = reply.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(hyper::header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    // The merchant's own page-speed measurements may see what it costs.
    headers.insert("timing-allow-origin", HeaderValue::from_static("*"));
    if let (Some(encoding), false) = (encoding, fresh) {
        headers.insert(hyper::header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    reply
}

/// The demo merchant site; `{{PUBLIC_KEY}}` in its pages becomes the demo key,
/// `{{COLLECTOR}}` (the collector's URL, for pages on another origin) this
/// origin: nothing.
fn demo(app: &App, path: &str) -> Reply {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        name => name,
    };
    match (assets::demo_file(name), &app.demo_key) {
        (Some((content_type, body)), Some(key)) if content_type.starts_with("text/html") => {
            let page = String::from_utf8_lossy(body)
                .replace("{{PUBLIC_KEY}}", key)
                .replace("{{COLLECTOR}}", "");
            reply::bytes(content_type, "no-cache", page)
        }
        (Some((content_type, body)), _) => reply::bytes(content_type, "no-cache", body),
        (None, _) => reply::not_found(path),
    }
}

/// Reads a request body of at most `max_bytes`, within `timeout`; else the
/// JSON error to answer (413, 400 cut short, 408 too slow).
pub async fn read_body(body: Incoming, timeout: Duration, max_bytes: usize) -> Result<bytes::Bytes, Reply> {
    use http_body_util::{BodyExt, Limited};
    match tokio::time::timeout(timeout, Limited::new(body, max_bytes).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            &format!("is larger than {max_bytes} bytes"),
        )),
        Ok(Err(_)) => Err(reply::error(StatusCode::BAD_REQUEST, "body", "was cut short")),
        Err(_) => Err(reply::error(
            StatusCode::REQUEST_TIMEOUT,
            "body",
            "took too long to arrive",
        )),
    }
}
