//! Dashboard sessions: a random token in the browser's cookie, only its
//! SHA-256 in the database, a CSRF token for the session's forms, and an
//! expiry. Signing out deletes the row.
//!
//! Test and live data never mix in one view: a session shows one key's data.
//! Signed in with a live key, it may switch to that key's test sibling (a
//! test key of the same name) and back; a test key's secret never opens live
//! data.

use super::db::{params, Db, OptionalExtension};
use super::{keys, Key};
use anyhow::Result;
use sha2::{Digest, Sha256};

/// How long a session lasts: 12 hours.
pub const LIFETIME_MS: i64 = 12 * 3_600_000;

pub struct Session {
    /// The key whose data the session shows.
    pub key: Key,
    /// The key a switch would show (the other of a live/test pair), if any.
    pub other: Option<Key>,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
}

/// Starts a session for `key_id`; returns its token (for the cookie).
pub fn create(conn: &Db, key_id: i64, now: i64) -> Result<String> {
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

/// What a token is stored as: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The live session with this token, if its key is still active.
pub fn find(conn: &Db, token: &str, now: i64) -> Result<Option<Session>> {
    let found: Option<(String, String, Option<i64>)> = conn
        .query_row(
            "SELECT k.public_key, s.csrf, s.view_key_id FROM sessions s JOIN keys k ON k.id = s.key_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND k.revoked_at IS NULL",
            params![token_hash(token), now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((public_key, csrf, view)) = found else {
        return Ok(None);
    };
    let Some(signed_in) = keys::find(conn, &public_key)? else {
        return Ok(None);
    };
    let sibling = keys::test_sibling(conn, &signed_in)?;
    let viewing_sibling = sibling.as_ref().is_some_and(|s| Some(s.id) == view);
    let (key, other) = match (viewing_sibling, sibling) {
        (true, Some(sibling)) => (sibling, Some(signed_in)),
        (_, sibling) => (signed_in, sibling),
    };
    Ok(Some(Session { key, other, csrf }))
}

/// Shows `key_id`'s data in this session from now on (the caller checked it
/// is the signed-in key or its test sibling).
pub fn view(conn: &Db, token: &str, key_id: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET view_key_id = ?2 WHERE token_hash = ?1",
        params![token_hash(token), key_id],
    )?;
    Ok(())
}

pub fn delete(conn: &Db, token: &str) -> Result<()> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash(token)])?;
    Ok(())
}
