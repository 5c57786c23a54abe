//! Server-cookie mode: the collector's own first-party cookie.
//!
//! When the collector is served from the merchant's site (a subdomain such as
//! `t.shop.example`, or a proxied path), a key configured with that cookie
//! domain gets an `HttpOnly` cookie naming the visitor's latest click, set by
//! the click's answer. Script-written cookies and localStorage may be capped
//! or wiped by the browser (Safari's ITP: 7 days, 24 hours after a link with
//! tracking parameters); a cookie set by the server is not. It travels with
//! the snippet's later requests (same site), so the collector can attribute a
//! signup by it and the snippet can restore its storage from it.

use super::reply::Reply;
use crate::app::Client;
use crate::store::{Key, ServerClick};
use hyper::header::{HeaderMap, HeaderValue, COOKIE, HOST, ORIGIN, SET_COOKIE};

/// The server cookie the request carried, if any.
pub fn read(headers: &HeaderMap) -> Option<ServerClick> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(wire::SERVER_COOKIE)?.strip_prefix('='))
        .and_then(ServerClick::parse)
}

/// Where the cookie may be set for this request: the key's cookie domain,
/// when the collector is being reached on that domain or one of its
/// subdomains (a browser refuses any other), with `Secure` when the page is
/// served over https or the request reached a trusted proxy over https.
fn scope(key: &Key, headers: &HeaderMap, proxied_https: bool) -> Option<(String, bool)> {
    let domain = &key.settings.cookie_domain;
    if domain.is_empty() {
        return None;
    }
    let host = headers.get(HOST)?.to_str().ok()?;
    let host = host
        .rsplit_once(':')
        .map_or(host, |(name, _port)| name)
        .to_ascii_lowercase();
    let on_domain = host == *domain || host.strip_suffix(domain.as_str()).is_some_and(|sub| sub.ends_with('.'));
    let https = proxied_https
        || headers
            .get(ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o.starts_with("https://"));
    on_domain.then(|| (domain.clone(), https))
}

/// Sets the cookie to `click` for `max_age_secs` (0 deletes it), if the key
/// is in server-cookie mode and the request came to its domain.
/// `client` is who sent the request (see `App::client`).
pub fn set(
    reply: &mut Reply,
    key: &Key,
    request: &HeaderMap,
    client: Option<&Client>,
    click: Option<&ServerClick>,
    max_age_secs: i64,
) {
    let proxied_https = client.is_some_and(|c| c.https);
    let Some((domain, https)) = scope(key, request, proxied_https) else {
        return;
    };
    let value = click.map(ServerClick::value).unwrap_or_default();
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Domain={domain}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        wire::SERVER_COOKIE,
        max_age_secs.max(0)
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        reply.headers_mut().append(SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mode, Settings};

    fn key(domain: &str) -> Key {
        Key {
            id: 1,
            public_key: "pk".into(),
            mode: Mode::Test,
            name: String::new(),
            origins: vec![],
            revoked: false,
            settings: Settings {
                cookie_domain: domain.into(),
                ..Settings::default()
            },
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_the_cookie() {
        let h = headers(&[("cookie", "a=1; growsumo_click=abc_1.r; b=2")]);
        assert_eq!(
            read(&h),
            Some(ServerClick {
                event_id: "abc_1".into(),
                restored: true
            })
        );
        assert_eq!(read(&headers(&[("cookie", "xgrowsumo_click=abc")])), None);
        assert_eq!(read(&headers(&[("cookie", "growsumo_click=a b")])), None);
    }

    #[test]
    fn sets_it_only_on_the_key_domain() {
        let click = ServerClick {
            event_id: "e1".into(),
            restored: false,
        };
        let set_on = |domain: &str, host: &str, origin: &str| {
            let mut reply = super::super::reply::bytes("text/plain", "no-store", "");
            let h = headers(&[("host", host), ("origin", origin)]);
            set(&mut reply, &key(domain), &h, None, Some(&click), 60);
            reply.headers().get(SET_COOKIE).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            set_on("shop.example", "t.shop.example:8443", "https://www.shop.example").as_deref(),
            Some("growsumo_click=e1; Domain=shop.example; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure")
        );
        assert!(set_on("shop.example", "shop.example", "http://shop.example").is_some_and(|c| !c.contains("Secure")));
        assert_eq!(
            set_on("shop.example", "evilshop.example", "https://evilshop.example"),
            None
        );
        assert_eq!(set_on("", "shop.example", "https://shop.example"), None);
        // Behind a trusted proxy that terminated TLS.
        let mut reply = super::super::reply::bytes("text/plain", "no-store", "");
        let proxied = Client {
            ip: "203.0.113.9".parse().unwrap(),
            https: true,
            forwarded: true,
        };
        let h = headers(&[("host", "t.shop.example")]);
        set(&mut reply, &key("shop.example"), &h, Some(&proxied), Some(&click), 60);
        assert!(reply.headers()[SET_COOKIE].to_str().unwrap().ends_with("; Secure"));
    }
}
