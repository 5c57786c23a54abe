//! The key's settings, as the collector's `GET /v1/config` answers them:
//! extra partner-key parameters and the consent rules; and, when this
//! browser's own storage was empty, the referral the collector's server
//! cookie still holds. The loader makes the request (with credentials, so the
//! server cookie travels) and hands the answer over; `null` when the collector
//! did not answer in time, and then the defaults apply.

use crate::js::{get, get_num, get_str, items};
use crate::params::{Alias, Referral};
use alloc::vec::Vec;
use wasm_bindgen::JsValue;

pub struct Config {
    pub aliases: Vec<Alias>,
    pub require_consent: bool,
    pub honor_gpc: bool,
    /// The server cookie's referral, and the seconds it has left.
    pub referral: Option<(Referral, u32)>,
}

/// Reads the collector's answer (the defaults for `null`).
pub fn parse(body: &JsValue) -> Config {
    let params = get(body, "params");
    let aliases = items(&params)
        .map(|p| Alias {
            name: get_str(&p, "name"),
            base64: get(&p, "base64").is_truthy(),
        })
        .collect();
    let referral = get(body, "referral");
    let partner_key = get_str(&referral, wire::field::PARTNER_KEY);
    Config {
        aliases,
        require_consent: get(body, "require_consent").is_truthy(),
        // Honoured unless the collector says otherwise.
        honor_gpc: get(body, "honor_gpc").as_bool() != Some(false),
        referral: (!partner_key.is_empty()).then(|| {
            let xid = get_str(&referral, wire::field::XID);
            (Referral { partner_key, xid }, get_num(&referral, "max_age") as u32)
        }),
    }
}
