//! The browser → collector contract, written once for both sides.
//!
//! The snippet (wasm) and the collector both depend on this crate, so a name
//! or a limit cannot drift between them. It has no dependencies and holds only
//! constants and tiny pure functions: everything here ends up in the snippet's
//! bytes only if the snippet uses it. `no_std`, because the snippet is.

#![no_std]

/// Query parameters that carry the partner key on a landing URL, newest first.
/// Values are base64 (standard or URL-safe, padding optional).
pub const PARTNER_KEY_PARAMS: [&str; 2] = ["ps_partner_key", "gspk"];
/// Query parameters that carry the click id, newest first. Values are plain text.
pub const XID_PARAMS: [&str; 2] = ["ps_xid", "gsxid"];

/// First-party cookie (and localStorage key) holding the decoded partner key,
/// named as PartnerStack names it so merchant back ends keep reading it.
pub const PARTNER_KEY_COOKIE: &str = "growSumoPartnerKey";
/// First-party cookie (and localStorage key) holding the click id.
pub const XID_COOKIE: &str = "gsxid";
/// How long a referral is remembered: 90 days, in seconds.
pub const REFERRAL_MAX_AGE_SECS: u32 = 90 * 24 * 60 * 60;
/// localStorage key holding when the stored referral was made (epoch ms), so a
/// cookie restored from the mirror keeps the referral's own expiry.
pub const REFERRAL_TS_KEY: &str = "growsumo_ts";
/// localStorage key recording that the visitor granted consent (`1`).
pub const CONSENT_KEY: &str = "growsumo_consent";

/// The collector's own cookie (server-cookie mode): `HttpOnly`, set on the
/// merchant's registrable domain by the click's answer. Its value is the
/// click's event id, with `.r` appended once the snippet restored its storage
/// from it. Script-written storage may be capped or wiped (Safari ITP); this
/// cookie is not.
pub const SERVER_COOKIE: &str = "growsumo_click";
/// Suffix of the server cookie's value after a restore.
pub const SERVER_COOKIE_RESTORED: &str = ".r";

/// Path of the batch endpoint, relative to the collector's `/v1/` base.
pub const EVENTS_PATH: &str = "events";
/// Path of the per-key configuration (and server-cookie restore) endpoint,
/// relative to `/v1/`: `config?pk=…[&restore=1|&forget=1]`.
pub const CONFIG_PATH: &str = "config";

/// Event types.
pub const EVENT_CLICK: &str = "click";
pub const EVENT_SIGNUP: &str = "signup";

/// Field names of an event object in a batch `{"pk": .., "events": [..]}`.
pub mod field {
    pub const ID: &str = "id";
    pub const TYPE: &str = "type";
    pub const TS: &str = "ts";
    pub const PARTNER_KEY: &str = "partner_key";
    pub const XID: &str = "xid";
    pub const EMAIL: &str = "email";
    pub const NAME: &str = "name";
    pub const CUSTOMER_KEY: &str = "customer_key";
    pub const PROVIDER_KEY: &str = "provider_key";
    pub const URL: &str = "url";
    pub const REFERRER: &str = "referrer";
    /// The visitor's fingerprint: a hash computed in the browser (hex).
    pub const FINGERPRINT: &str = "fingerprint";
}

/// Field limits, in characters, following PartnerStack's.
pub mod limit {
    pub const ID: usize = 64;
    pub const PARTNER_KEY: usize = 255;
    pub const XID: usize = 255;
    pub const EMAIL: usize = 255;
    pub const NAME: usize = 100;
    pub const CUSTOMER_KEY: usize = 255;
    pub const PROVIDER_KEY: usize = 255;
    pub const URL: usize = 2048;
    pub const FINGERPRINT: usize = 64;
    /// Events in one batch.
    pub const BATCH_EVENTS: usize = 100;
    /// Bytes of one request body.
    pub const BODY_BYTES: usize = 64 * 1024;
}

/// Per-event outcomes in the collector's answer.
pub mod status {
    pub const ACCEPTED: &str = "accepted";
    pub const DUPLICATE: &str = "duplicate";
    /// A signup for a customer who exists: stored, credit unchanged.
    pub const ALREADY_ATTRIBUTED: &str = "already_attributed";
    pub const REJECTED: &str = "rejected";
}
