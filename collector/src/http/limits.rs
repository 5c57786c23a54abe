//! Rate limits, so one client or one key cannot crowd out the rest: requests
//! per second per client address (as seen through trusted proxies), and
//! browser events per second per key. Over a limit the answer is 429 with
//! `Retry-After`, which the snippet retries after. Token buckets from
//! `governor`, keyed; idle entries are dropped every minute so a stream of
//! new addresses cannot grow them without bound.

use super::reply::{self, Reply};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;
use std::net::IpAddr;
use std::num::NonZeroU32;

pub struct Limits {
    clients: Option<DefaultKeyedRateLimiter<IpAddr>>,
    keys: Option<DefaultKeyedRateLimiter<i64>>,
    /// Public forms that store or send something (a partner application,
    /// a sign-in link by email): `FORMS_PER_HOUR` per client, always on.
    forms: DefaultKeyedRateLimiter<IpAddr>,
}

/// Public forms one client may send per hour (5 at once, then one every 12 minutes).
pub const FORMS_PER_HOUR: u32 = 5;

/// A bucket refilled at `per_second`, holding two seconds' worth; None: off.
fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

impl Limits {
    /// `client_requests` per second per client address, `key_events` per
    /// second per key; 0 turns a limit off.
    pub fn new(client_requests: u32, key_events: u32) -> Limits {
        let per_hour = NonZeroU32::new(FORMS_PER_HOUR).expect("not zero");
        Limits {
            clients: limiter(client_requests),
            keys: limiter(key_events),
            forms: RateLimiter::keyed(Quota::per_hour(per_hour)),
        }
    }

    /// None when `ip` may make another request; else the 429 to answer.
    pub fn client(&self, ip: IpAddr) -> Option<Reply> {
        let limiter = self.clients.as_ref()?;
        let wait = limiter
            .check_key(&client_bucket(ip))
            .err()?
            .wait_time_from(DefaultClock::default().now());
        Some(too_many("client", "sends requests too fast", wait.as_secs() + 1))
    }

    /// None when key `key_id` may store `events` more events; else the 429.
    pub fn key_events(&self, key_id: i64, events: usize) -> Option<Reply> {
        let limiter = self.keys.as_ref()?;
        let n = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX))?;
        let wait = match limiter.check_key_n(&key_id, n) {
            Ok(Ok(())) => return None,
            Ok(Err(not_until)) => not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1,
            Err(_) => 1,
        };
        Some(too_many("pk", "this key receives events faster than its limit", wait))
    }

    /// Whether `ip` may send another public form now.
    pub fn form(&self, ip: IpAddr) -> bool {
        self.forms.check_key(&client_bucket(ip)).is_ok()
    }

    /// Drops the buckets of clients and keys idle long enough to be full.
    pub fn forget_idle(&self) {
        self.forms.retain_recent();
        if let Some(clients) = &self.clients {
            clients.retain_recent();
            clients.shrink_to_fit();
        }
        if let Some(keys) = &self.keys {
            keys.retain_recent();
        }
    }
}

/// The address limits count a client by: IPv4 as is, IPv6 by its /64 (one
/// subscriber's whole allocation, which holds more addresses than anyone
/// could exhaust).
pub fn client_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn too_many(field: &str, message: &str, retry_after: u64) -> Reply {
    let mut reply = reply::error(StatusCode::TOO_MANY_REQUESTS, field, message);
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        reply.headers_mut().insert(RETRY_AFTER, value);
    }
    reply
}
