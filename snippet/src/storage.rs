//! First-party storage of the referral: a cookie (what merchant back ends read)
//! mirrored to localStorage (what survives when cookies are cleared or capped),
//! read back from whichever survives, and each restored from the other.
//!
//! Every browser call here can fail (blocked storage, sandboxed frames): each
//! failure is treated as "nothing stored", never raised into the page.

use alloc::string::String;
use wasm_bindgen::JsCast;
use web_sys::{HtmlDocument, Storage, Window};

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

fn document(window: &Window) -> Option<HtmlDocument> {
    window.document()?.dyn_into().ok()
}

/// The site's localStorage, if the browser lets this page use it.
pub fn local_storage() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn read_cookie(window: &Window, name: &str) -> Option<String> {
    let cookies = document(window)?.cookie().ok()?;
    let raw = cookie_value(&cookies, name)?;
    js_sys::decode_uri_component(raw).ok().map(String::from)
}

/// Writes a first-party cookie for the whole site; an empty value with
/// `max_age` 0 deletes it.
fn write_cookie(window: &Window, name: &str, value: &str, max_age: u32) {
    let Some(doc) = document(window) else { return };
    let secure = window.location().protocol().is_ok_and(|p| p == "https:");
    let mut cookie = String::from(name);
    cookie.push('=');
    cookie.push_str(&String::from(js_sys::encode_uri_component(value)));
    cookie.push_str("; Max-Age=");
    // Number formatting through JS: Rust's integer formatting costs the wasm bytes.
    if let Ok(age) = js_sys::Number::from(max_age).to_string_with_radix(10) {
        cookie.push_str(&String::from(age));
    }
    cookie.push_str("; Path=/; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    let _ = doc.set_cookie(&cookie);
}

/// The stored value of `name`, from the cookie or else the localStorage
/// mirror; whichever was missing is restored from the other.
pub fn read(window: &Window, name: &str) -> Option<String> {
    let cookie = read_cookie(window, name).filter(|v| !v.is_empty());
    let mirror = local_storage().and_then(|s| s.get_item(name).ok().flatten());
    let value = cookie.clone().or(mirror.clone()).filter(|v| !v.is_empty())?;
    if cookie.is_none() || mirror.is_none() {
        write(window, name, &value);
    }
    Some(value)
}

/// Stores `value` under `name` in both places, for the referral window;
/// an empty value removes it from both.
pub fn write(window: &Window, name: &str, value: &str) {
    let max_age = if value.is_empty() {
        0
    } else {
        wire::REFERRAL_MAX_AGE_SECS
    };
    write_cookie(window, name, value, max_age);
    if let Some(storage) = local_storage() {
        let _ = if value.is_empty() {
            storage.remove_item(name)
        } else {
            storage.set_item(name, value)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::cookie_value;

    #[test]
    fn finds_exact_cookie_names() {
        let jar = "xgrowSumoPartnerKey=no; growSumoPartnerKey=alice%20b; gsxid=x=1";
        assert_eq!(cookie_value(jar, "growSumoPartnerKey"), Some("alice%20b"));
        assert_eq!(cookie_value(jar, "gsxid"), Some("x=1"));
        assert_eq!(cookie_value(jar, "missing"), None);
        assert_eq!(cookie_value("", "gsxid"), None);
    }
}
