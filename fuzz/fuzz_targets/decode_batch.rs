//! Fuzzes the event decoder with arbitrary bytes: it must never panic, and
//! whatever it accepts must satisfy the wire contract's limits.

#![no_main]

use collector::http::decode::{decode_batch, is_email};
use libfuzzer_sys::fuzz_target;
use wire::limit;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = decode_batch(data) else { return };
    assert!(!batch.pk.is_empty() && batch.pk.len() <= 64);
    assert!(!batch.events.is_empty() && batch.events.len() <= limit::BATCH_EVENTS);
    for event in batch.events.into_iter().flatten() {
        assert!(!event.id.is_empty() && event.id.len() <= limit::ID);
        let within = |s: &Option<String>, max: usize| s.as_ref().is_none_or(|s| s.chars().count() <= max);
        assert!(within(&event.partner_key, limit::PARTNER_KEY) && within(&event.xid, limit::XID));
        if let Some(signup) = &event.signup {
            assert!(is_email(&signup.email) && signup.email.chars().count() <= limit::EMAIL);
            assert!(signup.name.chars().count() <= limit::NAME);
            assert!(signup.customer_key.chars().count() <= limit::CUSTOMER_KEY);
        }
    }
});
