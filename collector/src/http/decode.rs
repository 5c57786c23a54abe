//! Decodes and validates a batch of browser events: `{"pk": "...", "events": [...]}`.
//!
//! Pure (bytes in, typed events or errors out), so every rule is unit-tested
//! and the decoder can be fuzzed. Errors name the offending field the way a
//! merchant's developer would look for it (`events[2].email`). A bad event is
//! rejected alone; a bad envelope rejects the whole request.

use crate::store::{EventKind, NewEvent, Signup};
use serde_json::{Map, Value};
use std::fmt::Display;
use wire::{field, limit};

/// A validation failure: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Display, message: impl Display) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

/// A decoded batch: the public key, and each event or the reason it is rejected
/// (with its id when it had a usable one), in the order they were sent.
#[derive(Debug)]
pub struct Batch {
    pub pk: String,
    /// Events the browser's outbox dropped (full) since its last delivery.
    pub dropped: u64,
    pub events: Vec<Result<NewEvent, (Option<String>, FieldError)>>,
}

pub fn decode_batch(body: &[u8]) -> Result<Batch, FieldError> {
    let text = std::str::from_utf8(body).map_err(|e| FieldError::new("body", format!("is not valid UTF-8 ({e})")))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
    let Value::Object(mut envelope) = value else {
        return Err(FieldError::new(
            "body",
            "must be a JSON object {\"pk\": ..., \"events\": [...]}",
        ));
    };
    let pk = match envelope.remove("pk") {
        Some(Value::String(pk)) if !pk.is_empty() && pk.len() <= 64 => pk,
        Some(Value::String(_)) => return Err(FieldError::new("pk", "must be a public key of 1 to 64 characters")),
        None => {
            return Err(FieldError::new(
                "pk",
                "is required: the public key given to growsumo._initialize",
            ))
        }
        Some(_) => return Err(FieldError::new("pk", "must be a string")),
    };
    let events = match envelope.remove("events") {
        Some(Value::Array(events)) => events,
        None => return Err(FieldError::new("events", "is required")),
        Some(_) => return Err(FieldError::new("events", "must be an array")),
    };
    if events.is_empty() {
        return Err(FieldError::new("events", "must hold at least one event"));
    }
    if events.len() > limit::BATCH_EVENTS {
        return Err(FieldError::new(
            "events",
            format!(
                "holds {} events; at most {} are accepted per request",
                events.len(),
                limit::BATCH_EVENTS
            ),
        ));
    }
    let dropped = match envelope.remove("dropped") {
        None => 0,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
        Some(_) => return Err(FieldError::new("dropped", "must be a whole number of events")),
    };
    let events = events.into_iter().map(decode_event).collect();
    Ok(Batch { pk, dropped, events })
}

fn decode_event(value: Value) -> Result<NewEvent, (Option<String>, FieldError)> {
    let Value::Object(obj) = value else {
        return Err((None, FieldError::new("event", "must be an object")));
    };
    let id = required(&obj, field::ID, limit::ID).map_err(|e| (None, e))?;
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err((
            None,
            FieldError::new(field::ID, "may hold only letters, digits, '-' and '_'"),
        ));
    }
    let fail = |e: FieldError| (Some(id.clone()), e);
    let kind = match required(&obj, field::TYPE, 16).map_err(fail)?.as_str() {
        wire::EVENT_CLICK => EventKind::Click,
        wire::EVENT_SIGNUP => EventKind::Signup,
        other => {
            return Err(fail(FieldError::new(
                field::TYPE,
                format!("{other:?} is not an event type (click, signup)"),
            )))
        }
    };
    let client_ts = match obj.get(field::TS) {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|ms| (0.0..=1e15).contains(ms))
            .map(|ms| ms as i64)
            .ok_or_else(|| fail(FieldError::new(field::TS, "must be epoch milliseconds")))?,
        None => 0,
        Some(_) => {
            return Err(fail(FieldError::new(
                field::TS,
                "must be a number (epoch milliseconds)",
            )))
        }
    };
    let partner_key = optional(&obj, field::PARTNER_KEY, limit::PARTNER_KEY).map_err(fail)?;
    let signup = match kind {
        EventKind::Click if partner_key.is_none() => {
            return Err(fail(FieldError::new(field::PARTNER_KEY, "is required for a click")));
        }
        EventKind::Click => None,
        EventKind::Signup => Some(decode_signup(&obj).map_err(fail)?),
    };
    Ok(NewEvent {
        kind,
        client_ts,
        partner_key,
        xid: optional(&obj, field::XID, limit::XID).map_err(fail)?,
        url: optional(&obj, field::URL, limit::URL).map_err(fail)?,
        referrer: optional(&obj, field::REFERRER, limit::URL).map_err(fail)?,
        fingerprint: fingerprint(&obj).map_err(fail)?,
        signup,
        id,
    })
}

/// The fingerprint: a hex hash, never raw browser signals.
fn fingerprint(obj: &Map<String, Value>) -> Result<Option<String>, FieldError> {
    let value = optional(obj, field::FINGERPRINT, limit::FINGERPRINT)?;
    if value
        .as_ref()
        .is_some_and(|v| !v.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(FieldError::new(field::FINGERPRINT, "must be a hexadecimal hash"));
    }
    Ok(value)
}

fn decode_signup(obj: &Map<String, Value>) -> Result<Signup, FieldError> {
    let email = required(obj, field::EMAIL, limit::EMAIL)?;
    if !is_email(&email) {
        return Err(FieldError::new(
            field::EMAIL,
            format!("{email:?} is not an email address"),
        ));
    }
    Ok(Signup {
        // PartnerStack's rule: without a customer key, the email is the key.
        customer_key: optional(obj, field::CUSTOMER_KEY, limit::CUSTOMER_KEY)?.unwrap_or_else(|| email.clone()),
        name: optional(obj, field::NAME, limit::NAME)?.unwrap_or_default(),
        provider_key: optional(obj, field::PROVIDER_KEY, limit::PROVIDER_KEY)?,
        email,
    })
}

/// A string field, absent or empty meaning `None`, at most `max` characters,
/// without control characters nor invisible or direction-changing ones (a
/// partner key with a zero-width or right-to-left mark would show as
/// another partner's).
pub fn optional(obj: &Map<String, Value>, name: &str, max: usize) -> Result<Option<String>, FieldError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => text(name, s, max).map(Some),
        Some(_) => Err(FieldError::new(name, "must be a string")),
    }
}

/// `s`, the value of field `name`, if it is at most `max` characters,
/// without control characters nor invisible or direction-changing ones.
pub fn text(name: &str, s: &str, max: usize) -> Result<String, FieldError> {
    let chars = s.chars().count();
    if chars > max {
        Err(FieldError::new(
            name,
            format!("is {chars} characters long; the limit is {max}"),
        ))
    } else if s.chars().any(char::is_control) {
        Err(FieldError::new(name, "must not contain control characters"))
    } else if let Some(c) = s.chars().find(|c| invisible(*c)) {
        Err(FieldError::new(
            name,
            format!(
                "must not contain invisible or direction-changing characters (U+{:04X})",
                c as u32
            ),
        ))
    } else {
        Ok(s.to_owned())
    }
}

/// Characters that show as nothing, or reorder what follows: soft hyphen,
/// combining grapheme joiner, Hangul and Braille blanks, zero-width and
/// joiner characters, line and paragraph separators, bidirectional marks,
/// embeddings, overrides and isolates, invisible operators, variation
/// selectors, the byte-order mark, tag characters.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// `text` from a payment provider (typed by anyone at checkout) made safe
/// to store and show: control and invisible characters removed, at most
/// `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !invisible(*c))
        .take(max)
        .collect()
}

pub fn required(obj: &Map<String, Value>, name: &str, max: usize) -> Result<String, FieldError> {
    optional(obj, name, max)?.ok_or_else(|| FieldError::new(name, "is required"))
}

/// A plausible deliverable address: `local@domain.tld`, no spaces, a dotted
/// domain of letters, digits and hyphens. Deliberately stricter than RFC 5322
/// (no quoted locals, no IP literals): those are not signups worth crediting.
/// Whether `s` is an http or https URL (a website, a base address).
pub fn is_web_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(event: &str) -> Result<NewEvent, (Option<String>, FieldError)> {
        let body = format!(r#"{{"pk":"pk_test_x","events":[{event}]}}"#);
        decode_batch(body.as_bytes()).unwrap().events.remove(0)
    }

    fn field_of(event: &str) -> String {
        one(event).unwrap_err().1.field
    }

    #[test]
    fn decodes_a_signup() {
        let e = one(r#"{"id":"a1","type":"signup","ts":1700000000000,"email":"a@b.co","name":"Ann","partner_key":"alice","xid":"x1"}"#)
            .unwrap();
        assert_eq!(e.kind, EventKind::Signup);
        assert_eq!(e.client_ts, 1_700_000_000_000);
        assert_eq!(e.partner_key.as_deref(), Some("alice"));
        let s = e.signup.unwrap();
        assert_eq!((s.customer_key.as_str(), s.name.as_str()), ("a@b.co", "Ann"));
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field_of(r#"{"id":"a","type":"signup","email":"nope"}"#), "email");
        assert_eq!(field_of(r#"{"id":"a","type":"signup"}"#), "email");
        assert_eq!(
            field_of(r#"{"id":"a","type":"signup","email":"a@b.co","name":7}"#),
            "name"
        );
        let long = "n".repeat(limit::NAME + 1);
        assert_eq!(
            field_of(&format!(
                r#"{{"id":"a","type":"signup","email":"a@b.co","name":"{long}"}}"#
            )),
            "name"
        );
        assert_eq!(field_of(r#"{"id":"a","type":"click"}"#), "partner_key");
        assert_eq!(field_of(r#"{"id":"a","type":"purchase"}"#), "type");
        assert_eq!(field_of(r#"{"type":"click"}"#), "id");
        assert_eq!(field_of(r#"{"id":"a b","type":"click"}"#), "id");
        assert_eq!(
            field_of(r#"{"id":"a","type":"click","partner_key":"p","ts":"now"}"#),
            "ts"
        );
        assert_eq!(
            field_of(r#"{"id":"a","type":"click","partner_key":"p\u0000"}"#),
            "partner_key"
        );
    }

    #[test]
    fn rejects_bad_envelopes() {
        let err = |body: &[u8]| decode_batch(body).unwrap_err().field;
        assert_eq!(err(b"{\"pk\":"), "body");
        assert_eq!(err(b"\xff\xfe"), "body");
        assert_eq!(err(b"[]"), "body");
        assert_eq!(err(br#"{"events":[]}"#), "pk");
        assert_eq!(err(br#"{"pk":1,"events":[]}"#), "pk");
        assert_eq!(err(br#"{"pk":"p","events":{}}"#), "events");
        assert_eq!(err(br#"{"pk":"p","events":[]}"#), "events");
        let many = format!(
            r#"{{"pk":"p","events":[{}]}}"#,
            vec!["{}"; limit::BATCH_EVENTS + 1].join(",")
        );
        assert_eq!(err(many.as_bytes()), "events");
        let deep = "[".repeat(10_000);
        assert_eq!(err(deep.as_bytes()), "body");
    }

    #[test]
    fn provider_text_is_cleaned() {
        assert_eq!(super::clean("\u{202e}evil\u{200b}\r=1+1", 255), "evil=1+1");
        assert_eq!(super::clean("alice\u{E0041}\u{FE0F}", 255), "alice");
        assert_eq!(super::clean(&"x".repeat(300), 255).len(), 255);
    }

    #[test]
    fn emails() {
        for good in [
            "a@b.co",
            "first.last+tag@mail.example.com",
            "o'neil@x.io",
            "josé@exämple.de",
        ] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b..co", "a b@c.co", "a@b.co ", ".a@b.co", "a@-b.co", "a@b_c.co",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
