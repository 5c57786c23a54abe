//! First-party storage of the referral: cookies on the site's registrable
//! domain (what merchant back ends read, shared by `www.` and `app.`),
//! mirrored to localStorage (what survives when cookies are cleared or capped),
//! read back from whichever survives. The mirror keeps when the referral was
//! made, so cookies restored from it keep the referral's own expiry.
//!
//! Every browser call here can fail (blocked storage, sandboxed frames): each
//! failure is treated as "nothing stored", never raised into the page.

use crate::js::{cookies, decode_uri, encode_uri, hostname, https, now, number, parse_float, set_cookie};
use crate::js::{storage_get, storage_remove, storage_set};
use crate::params::Referral;
use alloc::string::String;
use alloc::vec::Vec;
use wire::{CONSENT_KEY, PARTNER_KEY_COOKIE, REFERRAL_MAX_AGE_SECS, REFERRAL_TS_KEY, XID_COOKIE};

/// The value of cookie `name` in a `document.cookie` string, still URI-encoded.
/// Splits with a closure on purpose: `split(';')` and `trim` pull char-searching
/// code into the wasm (measured: 380 B gzip).
#[allow(clippy::manual_pattern_char_comparison)]
pub fn cookie_value<'a>(cookies: &'a str, name: &str) -> Option<&'a str> {
    cookies.split(|c| c == ';').find_map(|pair| {
        let pair = pair.strip_prefix(' ').unwrap_or(pair);
        let value = pair.strip_prefix(name)?.strip_prefix('=')?;
        Some(value)
    })
}

fn read_cookie(name: &str) -> Option<String> {
    let cookies = cookies();
    Some(decode_uri(cookie_value(&cookies, name)?)).filter(|v| !v.is_empty())
}

/// Writes a first-party cookie for the whole site: on `domain` when given,
/// else for this host only. An empty value with `max_age` 0 deletes it.
fn write_cookie(name: &str, value: &str, max_age: u32, domain: Option<&str>) {
    let mut cookie = String::from(name);
    cookie.push('=');
    cookie.push_str(&encode_uri(value));
    cookie.push_str("; Max-Age=");
    cookie.push_str(&number(max_age as f64));
    cookie.push_str("; Path=/; SameSite=Lax");
    if let Some(domain) = domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    if https() {
        cookie.push_str("; Secure");
    }
    set_cookie(&cookie);
}

/// `host` and its parent domains, shortest first: `com`, `shop.com`, `www.shop.com`.
fn parent_domains(host: &str) -> impl Iterator<Item = &str> {
    let dots = host.bytes().enumerate().filter(|(_, b)| *b == b'.').map(|(i, _)| i + 1);
    let starts: Vec<usize> = core::iter::once(0).chain(dots).collect();
    // `get`, not indexing: a slicing panic would pull formatting code into the wasm.
    starts.into_iter().rev().filter_map(move |start| host.get(start..))
}

/// The registrable domain of this page (`shop.co.uk` for `www.shop.co.uk`),
/// so a referral made on `www.` is still known on `app.`. No public-suffix
/// list ships in the snippet: the browser has one and refuses a cookie on a
/// public suffix, so the shortest parent domain that accepts a probe cookie is
/// the registrable domain (the technique analytics tags use). `None` for a
/// bare host such as `localhost` or an IP address: cookies stay host-only.
fn site_domain() -> Option<String> {
    const PROBE: &str = "growsumo_probe";
    let host = hostname();
    let is_ip = host.bytes().all(|b| b.is_ascii_digit() || b == b'.') || host.contains(':');
    if is_ip {
        return None;
    }
    // The top-level domain alone never takes a cookie.
    for domain in parent_domains(&host).skip(1) {
        write_cookie(PROBE, "1", 10, Some(domain));
        if read_cookie(PROBE).is_some() {
            write_cookie(PROBE, "", 0, Some(domain));
            return Some(domain.into());
        }
    }
    None
}

fn mirror(name: &str) -> Option<String> {
    storage_get(name).filter(|v| !v.is_empty())
}

/// The referral an earlier landing stored: from the cookies, or else from the
/// localStorage mirror while it is within the referral window. The second
/// value is the seconds it has left when its cookies must be restored
/// (they were cleared or capped), else `None`.
pub fn load() -> Option<(Referral, Option<u32>)> {
    let xid = || {
        read_cookie(XID_COOKIE)
            .or_else(|| mirror(XID_COOKIE))
            .unwrap_or_default()
    };
    if let Some(partner_key) = read_cookie(PARTNER_KEY_COOKIE) {
        return Some((
            Referral {
                partner_key,
                xid: xid(),
            },
            None,
        ));
    }
    let partner_key = mirror(PARTNER_KEY_COOKIE)?;
    let made = mirror(REFERRAL_TS_KEY).map_or(0.0, |ts| parse_float(&ts));
    let left = REFERRAL_MAX_AGE_SECS as f64 - (now() - made) / 1000.0;
    // An unreadable time (NaN) drops the referral too.
    if left.is_nan() || left < 1.0 {
        clear();
        return None;
    }
    Some((
        Referral {
            partner_key,
            xid: xid(),
        },
        Some(left as u32),
    ))
}

/// Stores `referral` in the site's cookies and the localStorage mirror, with
/// `max_age` seconds left (a new referral: the whole window).
pub fn save(referral: &Referral, max_age: u32) {
    let domain = site_domain();
    for (name, value) in [(PARTNER_KEY_COOKIE, &referral.partner_key), (XID_COOKIE, &referral.xid)] {
        write_cookie(name, value, max_age, domain.as_deref());
        if domain.is_some() {
            // A host-only copy (older snippets wrote one) would shadow it.
            write_cookie(name, "", 0, None);
        }
        storage_set(name, value);
    }
    let made = now() - (REFERRAL_MAX_AGE_SECS - max_age) as f64 * 1000.0;
    storage_set(REFERRAL_TS_KEY, &number(made));
}

/// Removes the referral, its mirror and the consent grant. Deletes the
/// cookies on every parent domain without probing, so it writes nothing.
pub fn clear() {
    let host = hostname();
    for name in [PARTNER_KEY_COOKIE, XID_COOKIE] {
        write_cookie(name, "", 0, None);
        for domain in parent_domains(&host) {
            write_cookie(name, "", 0, Some(domain));
        }
    }
    for name in [PARTNER_KEY_COOKIE, XID_COOKIE, REFERRAL_TS_KEY, CONSENT_KEY] {
        storage_remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::{cookie_value, parent_domains};

    #[test]
    fn parent_domains_run_from_the_shortest() {
        let all: Vec<&str> = parent_domains("www.shop.co.uk").collect();
        assert_eq!(all, ["uk", "co.uk", "shop.co.uk", "www.shop.co.uk"]);
        assert_eq!(parent_domains("localhost").collect::<Vec<_>>(), ["localhost"]);
    }

    #[test]
    fn finds_exact_cookie_names() {
        let jar = "xgrowSumoPartnerKey=no; growSumoPartnerKey=alice%20b; gsxid=x=1";
        assert_eq!(cookie_value(jar, "growSumoPartnerKey"), Some("alice%20b"));
        assert_eq!(cookie_value(jar, "gsxid"), Some("x=1"));
        assert_eq!(cookie_value(jar, "missing"), None);
        assert_eq!(cookie_value("", "gsxid"), None);
    }
}
