//! Key pairs. A public key (`pk_test_…`/`pk_live_…`) may only write browser
//! events, from its allowed origins; its secret key (`sk_…`) unlocks reads. Only
//! a SHA-256 of the secret is stored, so the database never holds it.

use anyhow::{bail, Result};
use rusqlite::{params, Connection, OptionalExtension, Row};
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

const COLUMNS: &str = "id, public_key, live, name, origins, revoked_at IS NOT NULL";

fn from_row(row: &Row) -> rusqlite::Result<Key> {
    let origins: String = row.get(4)?;
    Ok(Key {
        id: row.get(0)?,
        public_key: row.get(1)?,
        mode: if row.get(2)? { Mode::Live } else { Mode::Test },
        name: row.get(3)?,
        origins: origins.split_whitespace().map(String::from).collect(),
        revoked: row.get(5)?,
    })
}

/// Creates a key pair named `name`, allowed to send events from `origins`.
pub fn create(conn: &Connection, mode: Mode, name: &str, origins: &[String]) -> Result<KeyPair> {
    for origin in origins {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/')
        {
            bail!("origin {origin:?} must look like https://shop.example (scheme and host, no path), or be *");
        }
    }
    let public_key = format!("pk_{}_{}", mode.prefix(), random_token(24)?);
    let secret_key = format!("sk_{}_{}", mode.prefix(), random_token(32)?);
    conn.execute(
        "INSERT INTO keys (public_key, secret_hash, live, name, origins, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            public_key,
            Sha256::digest(secret_key.as_bytes()).as_slice(),
            mode == Mode::Live,
            name,
            origins.join(" "),
            super::now_ms(),
        ],
    )?;
    Ok(KeyPair {
        key: Key {
            id: conn.last_insert_rowid(),
            public_key,
            mode,
            name: name.into(),
            origins: origins.to_vec(),
            revoked: false,
        },
        secret_key,
    })
}

/// The key with public key `public_key`, revoked or not.
pub fn find(conn: &Connection, public_key: &str) -> Result<Option<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys WHERE public_key = ?1");
    Ok(conn.query_row(&sql, [public_key], from_row).optional()?)
}

/// The first live (not revoked) key named `name`.
pub fn find_by_name(conn: &Connection, name: &str) -> Result<Option<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys WHERE name = ?1 AND revoked_at IS NULL ORDER BY id LIMIT 1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Key>> {
    let sql = format!("SELECT {COLUMNS} FROM keys ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let keys = stmt.query_map([], from_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(keys)
}

/// `len` characters from [0-9A-Za-z], from the OS's random source.
fn random_token(len: usize) -> Result<String> {
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
        };
        assert!(key.allows_origin("https://shop.example", false));
        assert!(!key.allows_origin("https://evil.example", false));
        assert!(key.allows_origin("https://evil.example", true));
    }
}
