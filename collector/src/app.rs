//! The state every request shares: the store, the event writer, the demo key,
//! and a short-lived cache of public keys (every event request looks one up).

use crate::metrics::Metrics;
use crate::store::{keys, Key, Store, Writer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a looked-up key (or its absence) is trusted before the database
/// is asked again, so a revocation takes effect within this time. (On
/// PostgreSQL the cache is also emptied whenever a key changes: see
/// `Store::on_key_change`.)
const KEY_TTL: Duration = Duration::from_secs(30);
/// Cached keys before the cache is emptied (bounds memory under a flood of
/// made-up keys).
const KEY_CACHE_CAP: usize = 10_000;

pub struct App {
    pub store: Store,
    pub writer: Writer,
    /// Public key of the demo site's pages, when the demo is served.
    pub demo_key: Option<String>,
    /// How long a client may take to send its headers, and its body.
    pub client_timeout: Duration,
    pub metrics: Metrics,
    /// Reverse proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Connections served at once, in all and from one client address.
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// How long an answer may wait for the client to read it.
    pub write_timeout: Duration,
    /// How long a keep-alive connection is kept.
    pub connection_max_age: Duration,
    /// The bearer token `/metrics` wants from clients other than direct
    /// loopback ones; none: loopback only.
    pub metrics_token: Option<String>,
    /// Refuses events when the database's disk runs low.
    pub disk: crate::disk::DiskGuard,
    /// Requests per client and events per key.
    pub limits: crate::http::limits::Limits,
    /// Outgoing webhooks may go to private addresses and plain http (see
    /// `dispatch::target`).
    pub allow_private_webhook_targets: bool,
    /// The config file names an SMTP server (`[smtp]`): programs' emails go out.
    pub smtp: bool,
    /// The last readiness probe write: when, and how it went.
    pub probe: Mutex<Option<(Instant, Result<(), String>)>>,
    /// Looked-up keys, by public key.
    key_cache: Mutex<HashMap<String, CachedKey>>,
    /// Moves on whenever a key may have changed; older cached keys are stale.
    key_generation: Arc<AtomicU64>,
}

impl App {
    pub fn new(
        store: Store,
        writer: Writer,
        demo_key: Option<String>,
        client_timeout: Duration,
    ) -> anyhow::Result<App> {
        let key_generation = Arc::new(AtomicU64::new(0));
        let generation = key_generation.clone();
        store.on_key_change(move || {
            generation.fetch_add(1, Ordering::Relaxed);
        })?;
        Ok(App {
            store,
            writer,
            demo_key,
            client_timeout,
            metrics: Metrics::default(),
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            max_connections_per_client: 256,
            write_timeout: Duration::from_secs(10),
            connection_max_age: Duration::from_secs(300),
            metrics_token: None,
            disk: crate::disk::DiskGuard::new(std::path::Path::new("."), 0),
            limits: crate::http::limits::Limits::new(0, 0),
            allow_private_webhook_targets: false,
            smtp: false,
            probe: Mutex::default(),
            key_cache: Mutex::default(),
            key_generation,
        })
    }

    /// Who sent a request that reached us from `peer`: the client's address,
    /// and whether it came over https. Forwarding headers count only when
    /// `peer` is a trusted proxy: anyone else could write them.
    pub fn client(&self, peer: std::net::SocketAddr, headers: &hyper::HeaderMap) -> Client {
        // `[::]` listeners see IPv4 peers as `::ffff:a.b.c.d`.
        let peer_ip = peer.ip().to_canonical();
        // A request carrying forwarding headers came through a proxy, even
        // one not configured as trusted (then its headers are not believed,
        // but it is no local client either).
        let via_proxy = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
        let direct = Client {
            ip: peer_ip,
            https: false,
            forwarded: via_proxy,
        };
        if !self.trusted_proxies.contains(&peer_ip) {
            return direct;
        }
        // The rightmost address no trusted proxy added is the client's, over
        // every `X-Forwarded-For` line (a proxy may add its own line after a
        // client's forged one).
        let lines: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = lines
            .iter()
            .rev()
            .flat_map(|line| line.rsplit(','))
            .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_canonical()))
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer_ip);
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .eq_ignore_ascii_case("https");
        Client {
            ip,
            https,
            forwarded: true,
        }
    }

    /// The key with this public key, from the cache or the database; Err
    /// when the database could not answer (never cached: a storage error is
    /// not "no such key", and the snippet drops events refused as unknown).
    pub async fn public_key(&self, public_key: &str) -> Result<Option<Key>, ()> {
        // Read before the lookup: a change committed during it moves the
        // generation on, and the copy it stores is stale at once.
        let generation = self.key_generation.load(Ordering::Relaxed);
        if let Some((at, cached_in, key)) = self.key_cache.lock().expect("key cache").get(public_key) {
            if at.elapsed() < KEY_TTL && *cached_in == generation {
                return Ok(key.clone());
            }
        }
        let store = self.store.clone();
        let pk = public_key.to_owned();
        let found = match tokio::task::spawn_blocking(move || store.read(|conn| keys::find(conn, &pk))).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "key lookup failed");
                return Err(());
            }
            Err(_) => return Err(()),
        };
        let mut cache = self.key_cache.lock().expect("key cache");
        if cache.len() >= KEY_CACHE_CAP {
            cache.clear();
        }
        cache.insert(public_key.to_owned(), (Instant::now(), generation, found.clone()));
        Ok(found)
    }
}

/// A looked-up key: when, in which key generation, and what was found.
type CachedKey = (Instant, u64, Option<Key>);

/// The client behind a request (see `App::client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: std::net::IpAddr,
    pub https: bool,
    /// The request came through a trusted proxy (its peer was one).
    pub forwarded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let store = crate::store::Store::open(&crate::store::Location::File(
            std::env::temp_dir().join(format!("app-{}.db", std::process::id())),
        ))
        .unwrap();
        let mut app = App::new(store, Writer::discard(), None, Duration::from_secs(1)).unwrap();
        app.trusted_proxies = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let via_proxy = app.client("10.0.0.1:5000".parse().unwrap(), &headers);
        assert_eq!(
            via_proxy,
            Client {
                ip: "203.0.113.9".parse().unwrap(),
                https: true,
                forwarded: true,
            }
        );
        // Headers from a peer that is no trusted proxy are not believed, but
        // it is no local client either.
        let direct = app.client("198.51.100.7:5000".parse().unwrap(), &headers);
        assert_eq!(
            direct,
            Client {
                ip: "198.51.100.7".parse().unwrap(),
                https: false,
                forwarded: true,
            }
        );
        // A proxy that adds its own line after a client's forged one: the
        // rightmost untrusted address over every line.
        let mut lines = hyper::HeaderMap::new();
        lines.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        lines.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(
            app.client("10.0.0.1:5000".parse().unwrap(), &lines).ip,
            "203.0.113.9".parse::<std::net::IpAddr>().unwrap()
        );
        // A `[::]` listener's view of an IPv4 proxy is still that proxy.
        assert!(app.client("[::ffff:10.0.0.1]:5000".parse().unwrap(), &lines).forwarded);
        assert_eq!(
            app.client("[::ffff:10.0.0.1]:5000".parse().unwrap(), &lines).ip,
            "203.0.113.9".parse::<std::net::IpAddr>().unwrap()
        );
    }
}
