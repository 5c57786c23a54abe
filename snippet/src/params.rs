//! Reads a referral from a landing URL: the partner key and the click id.
//!
//! Pure functions, so the decoding rules are unit-tested on the host. The base64
//! decoder is hand-written on purpose: the `base64` crate would cost the snippet
//! several KB for the ten lines it needs here.

use alloc::string::String;
use alloc::vec::Vec;
use wire::{limit, PARTNER_KEY_PARAMS, XID_PARAMS};

/// A partner referral: who referred the visitor, and which click brought them.
#[derive(Debug, PartialEq, Eq)]
pub struct Referral {
    pub partner_key: String,
    pub xid: String,
}

/// A partner-key parameter the key's settings add (`via`, `ref`): its name,
/// and whether its value is base64.
pub struct Alias {
    pub name: String,
    pub base64: bool,
}

/// The referral a landing URL carries, if any. `get` looks up one query
/// parameter by name (already percent-decoded). PartnerStack's parameters come
/// first, then the key's `aliases`.
pub fn from_query(get: impl Fn(&str) -> Option<String>, aliases: &[Alias]) -> Option<Referral> {
    let found = |name: &str| get(name).filter(|v| !v.is_empty());
    let partner_key = match PARTNER_KEY_PARAMS.iter().find_map(|name| found(name)) {
        Some(raw) => decode_partner_key(&raw),
        None => aliases.iter().find_map(|alias| {
            let raw = found(&alias.name)?;
            Some(if alias.base64 { decode_partner_key(&raw) } else { raw })
        })?,
    };
    if char_count(&partner_key) > limit::PARTNER_KEY {
        return None;
    }
    let xid = XID_PARAMS
        .iter()
        .find_map(|name| get(name).filter(|v| !v.is_empty()))
        .filter(|v| char_count(v) <= limit::XID)
        .unwrap_or_default();
    Some(Referral { partner_key, xid })
}

/// Partner keys travel base64-encoded (standard or URL-safe, padded or not).
/// A value that does not decode to printable text is taken as the key itself,
/// so hand-written links such as `?gspk=alice` still work.
pub fn decode_partner_key(raw: &str) -> String {
    decode_base64(raw)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|key| !key.is_empty() && !has_control(key.as_bytes()))
        .unwrap_or_else(|| raw.into())
}

// The byte-level helpers below replace `chars().count()`, `char::is_control`
// and `trim_end_matches`: the char-decoding versions cost the wasm about 2 KB.

/// Characters in `s` (bytes that do not continue a UTF-8 sequence).
fn char_count(s: &str) -> usize {
    s.bytes().filter(|b| b & 0xc0 != 0x80).count()
}

/// Whether UTF-8 `bytes` hold a control character (C0, DEL or C1).
fn has_control(bytes: &[u8]) -> bool {
    let c1 = bytes.windows(2).any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]));
    c1 || bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
}

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        // A `+` that was not percent-encoded in a query string arrives as a space.
        b'+' | b'-' | b' ' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decodes standard or URL-safe base64, with or without `=` padding.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut s = s.as_bytes();
    while let [rest @ .., b'='] = s {
        s = rest;
    }
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        acc = ((acc << 6) | sextet(c)?) & 0x3fff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn base64_variants_decode_alike() {
        // "alice?>" encodes to characters that differ between the two alphabets.
        for encoded in ["YWxpY2U/Pg==", "YWxpY2U/Pg", "YWxpY2U_Pg", "YWxpY2U_Pg=="] {
            assert_eq!(decode_base64(encoded).unwrap(), b"alice?>", "{encoded}");
        }
        assert_eq!(decode_base64("YWxpY2U").unwrap(), b"alice");
        assert_eq!(decode_base64("++//").unwrap(), decode_base64("--__").unwrap());
    }

    #[test]
    fn base64_rejects_garbage() {
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("ab$d"), None);
    }

    #[test]
    fn space_is_an_unescaped_plus() {
        assert_eq!(decode_base64("++8="), decode_base64("  8="));
    }

    #[test]
    fn plain_keys_are_kept() {
        assert_eq!(decode_partner_key("YWxpY2U="), "alice");
        assert_eq!(decode_partner_key("alice"), "alice");
        // Decodes, but to bytes that are not text: the raw value is the key.
        assert_eq!(decode_partner_key("bob1"), "bob1");
    }

    #[test]
    fn new_and_legacy_parameters() {
        let new = query(&[("ps_partner_key", "YWxpY2U"), ("ps_xid", "x1")]);
        let legacy = query(&[("gspk", "YWxpY2U="), ("gsxid", "x1")]);
        let want = Referral {
            partner_key: "alice".into(),
            xid: "x1".into(),
        };
        assert_eq!(from_query(new, &[]), Some(want));
        assert_eq!(from_query(legacy, &[]).map(|r| r.partner_key), Some("alice".into()));
        assert_eq!(from_query(query(&[("ps_xid", "x1")]), &[]), None);
        assert_eq!(from_query(query(&[("ps_partner_key", "")]), &[]), None);
    }

    #[test]
    fn aliases_are_read_after_the_standard_parameters() {
        let aliases = [
            Alias {
                name: "via".into(),
                base64: false,
            },
            Alias {
                name: "ref".into(),
                base64: true,
            },
        ];
        let key = |pairs: &[(&str, &str)]| from_query(query(pairs), &aliases).map(|r| r.partner_key);
        // Plain text is kept as is, even when it happens to be valid base64.
        assert_eq!(key(&[("via", "bob1")]), Some("bob1".into()));
        assert_eq!(key(&[("via", "YWxpY2U")]), Some("YWxpY2U".into()));
        assert_eq!(key(&[("ref", "YWxpY2U")]), Some("alice".into()));
        assert_eq!(key(&[("via", "bob1"), ("gspk", "YWxpY2U")]), Some("alice".into()));
        assert_eq!(key(&[("other", "x")]), None);
    }

    #[test]
    fn byte_helpers_match_char_semantics() {
        for s in ["", "abc", "josé", "日本語", "a\u{85}b", "tab\there", "e\u{7f}"] {
            assert_eq!(char_count(s), s.chars().count(), "{s:?}");
            assert_eq!(has_control(s.as_bytes()), s.chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn overlong_keys_are_ignored() {
        let long = "k".repeat(limit::PARTNER_KEY + 1);
        assert_eq!(from_query(query(&[("gspk", &long)]), &[]), None);
    }
}
