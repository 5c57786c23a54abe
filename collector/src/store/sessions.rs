//! Dashboard sessions: a random token in the browser's cookie, only its
//! SHA-256 in the database, a CSRF token for the session's forms, and an
//! expiry. Signing out deletes the row.

use super::{keys, Key};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// How long a session lasts: 12 hours.
pub const LIFETIME_MS: i64 = 12 * 3_600_000;

pub struct Session {
    pub key: Key,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
}

/// Starts a session for `key_id`; returns its token (for the cookie).
pub fn create(conn: &Connection, key_id: i64, now: i64) -> Result<String> {
    let token = keys::random_token(40)?;
    let csrf = keys::random_token(32)?;
    conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO sessions (token_hash, key_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            Sha256::digest(token.as_bytes()).as_slice(),
            key_id,
            csrf,
            now,
            now + LIFETIME_MS
        ],
    )?;
    Ok(token)
}

/// The live session with this token, if its key is still active.
pub fn find(conn: &Connection, token: &str, now: i64) -> Result<Option<Session>> {
    let found: Option<(String, String)> = conn
        .query_row(
            "SELECT k.public_key, s.csrf FROM sessions s JOIN keys k ON k.id = s.key_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND k.revoked_at IS NULL",
            params![Sha256::digest(token.as_bytes()).as_slice(), now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((public_key, csrf)) = found else {
        return Ok(None);
    };
    Ok(keys::find(conn, &public_key)?.map(|key| Session { key, csrf }))
}

pub fn delete(conn: &Connection, token: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [Sha256::digest(token.as_bytes()).as_slice()],
    )?;
    Ok(())
}
