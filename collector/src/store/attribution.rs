//! Attribution: which partner a signup is credited to, and why.
//!
//! Order: the click id sent with the signup (if a click with that id was
//! recorded, its partner) → the partner key sent with the signup → nobody.
//! The decision and its source are stored with the customer, once: a customer
//! is attributed by its first signup and never moved by a later one.

use super::NewEvent;
use rusqlite::{params, Connection, OptionalExtension};

/// How a partner was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A recorded click with the click id the signup carried.
    Xid,
    /// The partner key the browser stored from its landing.
    PartnerKey,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Xid => "xid",
            Source::PartnerKey => "partner_key",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub partner_key: String,
    pub xid: Option<String>,
    pub source: Source,
}

/// Decides the partner for a signup event of key `key_id`, or `None`.
pub fn decide(conn: &Connection, key_id: i64, signup: &NewEvent) -> rusqlite::Result<Option<Attribution>> {
    if let Some(xid) = &signup.xid {
        let clicked: Option<String> = conn
            .prepare_cached(
                "SELECT partner_key FROM events
                 WHERE key_id = ?1 AND type = 'click' AND xid = ?2
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![key_id, xid], |row| row.get(0))
            .optional()?;
        if let Some(partner_key) = clicked {
            return Ok(Some(Attribution {
                partner_key,
                xid: Some(xid.clone()),
                source: Source::Xid,
            }));
        }
    }
    Ok(signup.partner_key.clone().map(|partner_key| Attribution {
        partner_key,
        xid: signup.xid.clone(),
        source: Source::PartnerKey,
    }))
}
