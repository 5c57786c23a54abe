//! The state every request shares: the store, the event writer, the demo key,
//! and a short-lived cache of public keys (every event request looks one up).

use crate::store::{keys, Key, Store, Writer};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a looked-up key (or its absence) is trusted before the database
/// is asked again, so a revocation takes effect within this time.
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
    /// Webhook requests refused (bad signature or credentials, malformed).
    pub webhooks_refused: AtomicU64,
    key_cache: Mutex<HashMap<String, (Instant, Option<Key>)>>,
}

impl App {
    pub fn new(store: Store, writer: Writer, demo_key: Option<String>, client_timeout: Duration) -> App {
        App {
            store,
            writer,
            demo_key,
            client_timeout,
            webhooks_refused: AtomicU64::new(0),
            key_cache: Mutex::default(),
        }
    }

    /// The key with this public key, from the cache or the database.
    pub async fn public_key(&self, public_key: &str) -> Option<Key> {
        if let Some((at, key)) = self.key_cache.lock().expect("key cache").get(public_key) {
            if at.elapsed() < KEY_TTL {
                return key.clone();
            }
        }
        let store = self.store.clone();
        let pk = public_key.to_owned();
        let found = tokio::task::spawn_blocking(move || store.read(|conn| keys::find(conn, &pk)))
            .await
            .ok()
            .and_then(|r| r.map_err(|e| tracing::error!(error = %e, "key lookup failed")).ok())
            .flatten();
        let mut cache = self.key_cache.lock().expect("key cache");
        if cache.len() >= KEY_CACHE_CAP {
            cache.clear();
        }
        cache.insert(public_key.to_owned(), (Instant::now(), found.clone()));
        found
    }
}
