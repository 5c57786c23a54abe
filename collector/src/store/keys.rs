//! Key pairs. A public key (`pk_test_…`/`pk_live_…`) may only write browser
//! events, from its allowed origins; its secret key (`sk_…`) unlocks reads. Only
//! a SHA-256 of the secret is stored, so the database never holds it.

use super::db::{params, Db, OptionalExtension, Row};
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// Test keys never produce rewards; live keys do. Their data never mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    fn prefix(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

/// A stored key pair, without its secret.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: i64,
    pub public_key: String,
    pub mode: Mode,
    pub name: String,
    /// Origins (`https://shop.example`) whose pages may send events with this
    /// key, besides the collector's own origin; `*` allows any.
    pub origins: Vec<String>,
    pub revoked: bool,
    pub settings: Settings,
}

/// How a key's referrals are captured and attributed (see README, "Attribution").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Server-cookie mode: the registrable domain (`shop.example`) the
    /// collector shares with the merchant's site; the click's answer then sets
    /// the `HttpOnly` attribution cookie there. Empty: off.
    pub cookie_domain: String,
    /// How long after a click a signup is still credited to it.
    pub window_days: u32,
    /// Extra landing-URL parameters that carry the partner key.
    pub params: Vec<Param>,
    /// Store nothing until the page calls `growsumo.consent(true)`.
    pub require_consent: bool,
    /// Treat a browser's Global Privacy Control signal as a refusal.
    pub honor_gpc: bool,
    /// How long after a click a fingerprint match (same fingerprint, same
    /// client network) may credit a signup to it; 0: never.
    pub fingerprint_hours: u32,
    /// Partners named by links but not yet known become partnerships of
    /// their own (open programs); otherwise their signups wait for review.
    pub auto_partners: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cookie_domain: String::new(),
            window_days: 90,
            params: Vec::new(),
            require_consent: false,
            honor_gpc: true,
            fingerprint_hours: 24,
            auto_partners: false,
        }
    }
}

/// A partner-key parameter alias: `via` (plain text) or `via:base64`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Param {
    pub name: String,
    pub base64: bool,
}

impl std::str::FromStr for Param {
    type Err = String;

    fn from_str(spec: &str) -> Result<Param, String> {
        let (name, base64) = match spec.split_once(':') {
            None | Some((_, "text")) => (spec.split(':').next().unwrap_or(spec), false),
            Some((name, "base64")) => (name, true),
            Some((_, other)) => {
                return Err(format!(
                    "{other:?} is not an encoding: use NAME, NAME:text or NAME:base64"
                ))
            }
        };
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "{name:?} is not a parameter name (1 to 32 letters, digits, '_' or '-')"
            ));
        }
        Ok(Param {
            name: name.to_owned(),
            base64,
        })
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, if self.base64 { "base64" } else { "text" })
    }
}

impl Settings {
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_days) * 86_400_000
    }

    /// The fingerprint window, never longer than the attribution window.
    pub fn fingerprint_ms(&self) -> i64 {
        (i64::from(self.fingerprint_hours) * 3_600_000).min(self.window_ms())
    }

    fn check(&self) -> Result<()> {
        if !(1..=3650).contains(&self.window_days) {
            bail!("the attribution window must be 1 to 3650 days");
        }
        if self.fingerprint_hours > 720 {
            bail!("the fingerprint window must be 0 (off) to 720 hours");
        }
        let domain = &self.cookie_domain;
        let valid = domain.is_empty()
            || domain.contains('.')
                && !domain.starts_with('.')
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            bail!(
                "cookie domain {domain:?} must be a lowercase domain such as shop.example (no scheme, no leading dot)"
            );
        }
        Ok(())
    }
}

impl Key {
    /// Whether a browser page at `origin` may send events with this key.
    /// `same_origin` is true when the page is served by the collector itself.
    pub fn allows_origin(&self, origin: &str, same_origin: bool) -> bool {
        same_origin || self.origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// A newly created key pair: the only time the secret is shown.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub key: Key,
    pub secret_key: String,
}

const COLUMNS: &str = "id, public_key, live, name, origins, revoked_at IS NOT NULL,
                       cookie_domain, window_days, params, require_consent, honor_gpc,
                       fingerprint_hours, auto_partners";

fn from_row(row: &Row) -> anyhow::Result<Key> {
    let origins: String = row.get(4)?;
    let params: String = row.get(8)?;
    Ok(Key {
        id: row.get(0)?,
        public_key: row.get(1)?,
        mode: if row.get(2)? { Mode::Live } else { Mode::Test },
        name: row.get(3)?,
        origins: origins.split_whitespace().map(String::from).collect(),
        revoked: row.get(5)?,
        settings: Settings {
            cookie_domain: row.get(6)?,
            window_days: row.get(7)?,
            // Written by `Param`'s Display, so every stored spec parses.
            params: params.split_whitespace().filter_map(|p| p.parse().ok()).collect(),
            require_consent: row.get(9)?,
            honor_gpc: row.get(10)?,
            fingerprint_hours: row.get(11)?,
            auto_partners: row.get(12)?,
        },
    })
}

fn check_origins(origins: &[String]) -> Result<()> {
    for origin in origins {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/')
        {
            bail!("origin {origin:?} must look like https://shop.example (scheme and host, no path), or be *");
        }
    }
    Ok(())
}

fn params_column(settings: &Settings) -> String {
    settings
        .params
        .iter()
        .map(Param::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates a key pair named `name`, allowed to send events from `origins`.
pub fn create(conn: &Db, mode: Mode, name: &str, origins: &[String], settings: &Settings) -> Result<KeyPair> {
    let public_key = format!("pk_{}_{}", mode.prefix(), random_token(24)?);
    let secret_key = format!("sk_{}_{}", mode.prefix(), random_token(32)?);
    let id = conn.insert(
        "INSERT INTO keys (public_key, secret_hash, live, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            public_key,
            Sha256::digest(secret_key.as_bytes()).as_slice(),
            mode == Mode::Live,
            name,
            super::now_ms(),
        ],
    )?;

    super::groups::create_default(conn, id, super::now_ms())?;
    update(conn, &public_key, origins, settings)?;
    Ok(KeyPair {
        key: Key {
            id,
            public_key,
            mode,
            name: name.into(),
            origins: origins.to_vec(),
            revoked: false,
            settings: settings.clone(),
        },
        secret_key,
    })
}

/// Replaces the allowed origins and settings of the key `public_key`.
/// A running collector applies them within its key cache's lifetime (30 s
/// on SQLite; at once on PostgreSQL, see `tell_collectors`).
pub fn update(conn: &Db, public_key: &str, origins: &[String], settings: &Settings) -> Result<()> {
    check_origins(origins)?;
    settings.check()?;
    let changed = conn.execute(
        "UPDATE keys SET origins = ?2, cookie_domain = ?3, window_days = ?4, params = ?5,
                         require_consent = ?6, honor_gpc = ?7, fingerprint_hours = ?8, auto_partners = ?9
         WHERE public_key = ?1",
        params![
            public_key,
            origins.join(" "),
            settings.cookie_domain,
            settings.window_days,
            params_column(settings),
            settings.require_consent,
            settings.honor_gpc,
            settings.fingerprint_hours,
            settings.auto_partners,
        ],
    )?;
    if changed == 0 {
        bail!("no key {public_key:?}: `collector keys list` shows the keys");
    }
    tell_collectors(conn)
}

/// The channel on which PostgreSQL tells every collector that a key changed.
pub const CHANGES: &str = "growsumo_keys";

/// Tells every collector sharing the PostgreSQL database, once the
/// transaction commits, to forget the keys it cached (see
/// `Store::on_key_change`). SQLite has one collector, which finds the
/// change when its cached copy expires.
fn tell_collectors(conn: &Db) -> Result<()> {
    if conn.is_postgres() {
        conn.execute(&format!("SELECT pg_notify('{CHANGES}', '')"), [])?;
    }
    Ok(())
}

/// The key with public key `public_key`, revoked or not.
pub fn find(conn: &Db, public_key: &str) -> Result<Option<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys WHERE public_key = ?1");
    conn.query_row(&sql, [public_key], from_row).optional()
}

/// The active key `public_key` if `secret_key` is its secret. The hashes
/// are compared in constant time, so timing tells nothing of the secret.
pub fn authenticate(conn: &Db, public_key: &str, secret_key: &str) -> Result<Option<Key>> {
    use subtle::ConstantTimeEq;
    let sql = format!("SELECT {COLUMNS}, secret_hash FROM keys WHERE public_key = ?1 AND revoked_at IS NULL");
    let found = conn
        .query_row(&sql, [public_key], |row| {
            Ok((from_row(row)?, row.get::<_, Vec<u8>>(13)?))
        })
        .optional()?;
    let given = Sha256::digest(secret_key.as_bytes());
    Ok(found.and_then(|(key, stored)| bool::from(given.as_slice().ct_eq(&stored)).then_some(key)))
}

/// The test key paired with live key `key`: active, of the same non-empty
/// name. `None` for a test key: a test secret never opens live data.
pub fn test_sibling(conn: &Db, key: &Key) -> Result<Option<Key>> {
    if key.mode != Mode::Live {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM keys
         WHERE id = (SELECT pair_id FROM keys WHERE id = ?1) AND live = 0 AND revoked_at IS NULL"
    );
    conn.query_row(&sql, [key.id], from_row).optional()
}

/// Pairs live key `live` with test key `test`: the dashboard, signed in with
/// the live secret, may then switch to the test key's data. Only this makes
/// a pair (`keys create --pair` calls it): a name says nothing, since
/// anyone who can create a key can reuse a name.
pub fn pair(conn: &Db, live: &str, test: &str) -> Result<()> {
    let (Some(live_key), Some(test_key)) = (find(conn, live)?, find(conn, test)?) else {
        bail!("no key {live:?} or {test:?}: `collector keys list` shows the keys");
    };
    if live_key.mode != Mode::Live || test_key.mode != Mode::Test {
        bail!("a pair is a live key and a test key, in that order");
    }
    conn.execute(
        "UPDATE keys SET pair_id = ?2 WHERE id = ?1",
        params![live_key.id, test_key.id],
    )?;
    Ok(())
}

/// The active key whose secret is `secret_key` (the dashboard's sign-in).
/// Looked up by the secret's SHA-256: timing can tell at most about the
/// hash, from which the secret cannot be found.
pub fn by_secret(conn: &Db, secret_key: &str) -> Result<Option<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys WHERE secret_hash = ?1 AND revoked_at IS NULL");
    let hash = Sha256::digest(secret_key.as_bytes());
    conn.query_row(&sql, [hash.as_slice()], from_row).optional()
}

/// Revokes a key pair: its public key stops taking events (a running
/// collector notices within its 30 s key cache on SQLite, at once on
/// PostgreSQL), its secret stops opening the API and dashboard at once.
pub fn revoke(conn: &Db, public_key: &str, now: i64) -> Result<()> {
    let changed = conn.execute(
        "UPDATE keys SET revoked_at = ?2 WHERE public_key = ?1 AND revoked_at IS NULL",
        params![public_key, now],
    )?;
    if changed == 0 {
        bail!("no active key {public_key:?}: `collector keys list` shows the keys");
    }
    tell_collectors(conn)
}

/// The key whose row id is `id`, revoked or not.
pub fn by_id(conn: &Db, id: i64) -> Result<Key> {
    let sql = format!("SELECT {COLUMNS} FROM keys WHERE id = ?1");
    conn.query_row(&sql, [id], from_row)
}

/// The first live (not revoked) key named `name`.
pub fn find_by_name(conn: &Db, name: &str) -> Result<Option<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys WHERE name = ?1 AND revoked_at IS NULL ORDER BY id LIMIT 1");
    conn.query_row(&sql, [name], from_row).optional()
}

pub fn list(conn: &Db) -> Result<Vec<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let keys = stmt.query_map([], from_row)?.collect::<anyhow::Result<_>>()?;
    Ok(keys)
}

/// `len` characters from [0-9A-Za-z], from the OS's random source.
pub fn random_token(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    // 248 = 4 × 62: rejecting bytes above it keeps every character equally likely.
    let mut token = String::with_capacity(len);
    while token.len() < len {
        for &b in &bytes {
            if b < 248 && token.len() < len {
                token.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn tokens_are_base62_and_differ() {
        let a = random_token(32).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_token(32).unwrap());
    }

    #[test]
    fn origins_are_checked() {
        let key = Key {
            id: 1,
            public_key: "pk".into(),
            mode: Mode::Test,
            name: String::new(),
            origins: vec!["https://shop.example".into()],
            revoked: false,
            settings: Settings::default(),
        };
        assert!(key.allows_origin("https://shop.example", false));
        assert!(!key.allows_origin("https://evil.example", false));
        assert!(key.allows_origin("https://evil.example", true));
    }

    #[test]
    fn secrets_authenticate_their_own_key_only() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let db = Db::from(&conn);
        let conn = &db;
        let a = create(conn, Mode::Live, "a", &[], &Settings::default()).unwrap();
        let b = create(conn, Mode::Live, "b", &[], &Settings::default()).unwrap();
        let pk = &a.key.public_key;
        assert_eq!(
            authenticate(conn, pk, &a.secret_key).unwrap().map(|k| k.id),
            Some(a.key.id)
        );
        assert!(authenticate(conn, pk, &b.secret_key).unwrap().is_none());
        assert!(authenticate(conn, pk, "").unwrap().is_none());
        assert!(authenticate(conn, "pk_nope", &a.secret_key).unwrap().is_none());
    }

    #[test]
    fn params_parse_and_round_trip() {
        let via: Param = "via".parse().unwrap();
        assert_eq!((via.name.as_str(), via.base64), ("via", false));
        let r: Param = "ref:base64".parse().unwrap();
        assert!(r.base64);
        assert_eq!(r.to_string().parse::<Param>().unwrap(), r);
        assert_eq!(via.to_string().parse::<Param>().unwrap(), via);
        for bad in ["", "a b", "via:hex", "x=1", &"n".repeat(33)] {
            assert!(bad.parse::<Param>().is_err(), "{bad}");
        }
    }
}
