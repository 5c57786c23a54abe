//! The attribution engine: which partner a browser signup is credited to,
//! and why. (The merchant's own word, through the API, the dashboard or a
//! payment webhook, outranks all of this: see `credit`.)
//!
//! Evidence is tried in this order, strongest first; the first that applies wins:
//! 1. **xid**: the click id the signup carries, if a click with that id
//!    *and the signup's partner key* was recorded within the window. Click
//!    ids come from links partners write and publish, so one alone proves
//!    nothing: a click id is bound to each partner it was recorded with,
//!    and another partner's click with the same id (a squatter posting it
//!    first, or two partners using `ps_xid=newsletter`) never credits the
//!    one that did not click. A signup with a click id and no partner key
//!    is credited through it only when the id names one partner. A recorded
//!    click outside the window means the browser's referral has expired:
//!    its partner key is not used either.
//! 2. **partner_key**: the partner key the signup carries, when it came with
//!    no click id or one the collector never recorded (the click was lost, or
//!    the link carried no id). The browser's own 90-day storage bounds it.
//! 3. **server_cookie**: the click named by the collector's `HttpOnly` cookie
//!    (server-cookie mode), within the window. A signup whose click id the
//!    snippet restored from that cookie is credited here too, since the cookie
//!    is what kept it.
//! 4. **fingerprint**: probabilistic, so it credits nobody: it only
//!    *suggests* a partner for the merchant's review (see `credit`), and only
//!    when it corroborates a recorded click: same fingerprint, same client
//!    network (IPv4 /24, IPv6 /48, as the collector saw it through trusted
//!    proxies), within the key's fingerprint window (24 h by default, 0:
//!    off), and unambiguous (the fingerprint's clicks in the window name one
//!    partner, from at most `MAX_FINGERPRINT_NETWORKS` networks: more means a
//!    common device, not one visitor). Fingerprints come only from recorded
//!    clicks, never from the signup's own claim of a partner.
//!
//! Otherwise nobody. Last click wins by construction: the browser keeps only
//! its latest referral, the server cookie names the latest click. Every
//! lookup is scoped to the signup's key, so test and live data never mix.
//! The decision is stored with the customer once (see `writer`).

use super::db::{params, Db, OptionalExtension, Row};
use super::NewEvent;

/// How a partner was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Xid,
    PartnerKey,
    ServerCookie,
    Fingerprint,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Xid => "xid",
            Source::PartnerKey => "partner_key",
            Source::ServerCookie => "server_cookie",
            Source::Fingerprint => "fingerprint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub partner_key: String,
    pub xid: Option<String>,
    pub source: Source,
}

/// The server cookie a request carried: the click it names, and whether the
/// snippet has restored its storage from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerClick {
    pub event_id: String,
    pub restored: bool,
}

impl ServerClick {
    /// Parses the cookie's value (`<event id>` or `<event id>.r`).
    pub fn parse(value: &str) -> Option<ServerClick> {
        let (event_id, restored) = match value.strip_suffix(wire::SERVER_COOKIE_RESTORED) {
            Some(id) => (id, true),
            None => (value, false),
        };
        let valid = !event_id.is_empty()
            && event_id.len() <= wire::limit::ID
            && event_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| ServerClick {
            event_id: event_id.to_owned(),
            restored,
        })
    }

    /// The cookie's value.
    pub fn value(&self) -> String {
        let suffix = if self.restored {
            wire::SERVER_COOKIE_RESTORED
        } else {
            ""
        };
        format!("{}{suffix}", self.event_id)
    }
}

/// What the engine needs besides the signup: whose data, when, and the
/// server cookie and client network of the request that carried it.
#[derive(Debug, Clone)]
pub struct Context {
    pub key_id: i64,
    pub now_ms: i64,
    pub window_ms: i64,
    /// How far back a fingerprint may corroborate a click; 0: never.
    pub fingerprint_ms: i64,
    pub server_click: Option<ServerClick>,
    /// The request's client network (`network`).
    pub network: String,
    /// Only events stored before this one (by `seq`) count: the signup's
    /// own, stored with the rest of its writer group, is this; the events
    /// received after it in the group are not seen, as when each event was
    /// stored and decided on its own.
    pub before_seq: i64,
}

/// More networks than this sharing one fingerprint in the window make it a
/// common device profile, which identifies nobody.
pub const MAX_FINGERPRINT_NETWORKS: i64 = 2;

/// The client network of `ip`: its IPv4 /24 or IPv6 /48 (an IPv4-mapped
/// IPv6 address counts as IPv4). A household or office keeps its network
/// across a visit; a fingerprint from elsewhere is another device.
pub fn network(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => network_v4(v4),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_v4(v4),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

fn network_v4(ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, _] = ip.octets();
    format!("{a}.{b}.{c}.0/24")
}

/// A recorded click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub event_id: String,
    pub partner_key: String,
    pub xid: Option<String>,
    /// When the collector received it (epoch ms).
    pub at: i64,
}

impl Click {
    fn from_row(row: &Row) -> anyhow::Result<Click> {
        Ok(Click {
            event_id: row.get(0)?,
            partner_key: row.get(1)?,
            xid: row.get(2)?,
            at: row.get(3)?,
        })
    }

    fn credit(self, source: Source) -> Option<Attribution> {
        Some(Attribution {
            partner_key: self.partner_key,
            xid: self.xid,
            source,
        })
    }
}

const CLICK_COLUMNS: &str = "event_id, partner_key, xid, received_at";

/// The click with event id `event_id`, if it is within the window.
pub fn click_by_id(conn: &Db, ctx: &Context, event_id: &str) -> anyhow::Result<Option<Click>> {
    conn.prepare_cached(&format!(
        "SELECT {CLICK_COLUMNS} FROM events WHERE key_id = ?1 AND event_id = ?2 AND type = 'click' AND seq < ?3"
    ))?
    .query_row(params![ctx.key_id, event_id, ctx.before_seq], Click::from_row)
    .optional()
    .map(|click| click.filter(|c| ctx.now_ms - c.at <= ctx.window_ms))
}

/// A lookup (for `writer`'s batched reads): the click id `$A` and partner
/// `$B` when the id was recorded for key `?1` with another partner than
/// `$B` (counted: a squatter, or two partners sharing an id); stops at the
/// first such click.
pub const CLICK_ID_TAKEN: &str = "SELECT 'x', $A, $B WHERE EXISTS (SELECT 1 FROM events
     WHERE key_id = ?1 AND type = 'click' AND xid = $A AND partner_key <> $B)";

/// The latest click (in or out of the window) with click id `xid` and, when
/// the signup names one, partner `partner`; without a partner, only when
/// the click id names a single partner.
fn click_by_xid(conn: &Db, ctx: &Context, xid: &str, partner: Option<&str>) -> anyhow::Result<Option<Click>> {
    let partners: i64 = conn
        .prepare_cached(
            "SELECT count(DISTINCT partner_key) FROM events WHERE key_id = ?1 AND type = 'click' AND xid = ?2 AND seq < ?3",
        )?
        .query_row(params![ctx.key_id, xid, ctx.before_seq], |r| r.get(0))?;
    if partner.is_none() && partners > 1 {
        return Ok(None);
    }
    conn.prepare_cached(&format!(
        "SELECT {CLICK_COLUMNS} FROM events
         WHERE key_id = ?1 AND type = 'click' AND xid = ?2 AND (CAST(?3 AS TEXT) IS NULL OR partner_key = ?3)
               AND seq < ?4
         ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row(params![ctx.key_id, xid, partner, ctx.before_seq], Click::from_row)
    .optional()
}

/// The click a fingerprint corroborates, if it does unambiguously: the
/// latest click from the same fingerprint and client network within the
/// fingerprint window, when the fingerprint's clicks in that window name one
/// partner only, from at most `MAX_FINGERPRINT_NETWORKS` networks.
fn click_by_fingerprint(conn: &Db, ctx: &Context, fingerprint: &str) -> anyhow::Result<Option<Click>> {
    if ctx.fingerprint_ms <= 0 {
        return Ok(None);
    }
    let since = ctx.now_ms - ctx.fingerprint_ms;
    let (partners, networks): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(DISTINCT partner_key), count(DISTINCT network) FROM events
             WHERE key_id = ?1 AND type = 'click' AND fingerprint = ?2 AND received_at >= ?3 AND seq < ?4",
        )?
        .query_row(params![ctx.key_id, fingerprint, since, ctx.before_seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if partners != 1 || networks > MAX_FINGERPRINT_NETWORKS {
        return Ok(None);
    }
    conn.prepare_cached(&format!(
        "SELECT {CLICK_COLUMNS} FROM events
         WHERE key_id = ?1 AND type = 'click' AND fingerprint = ?2 AND received_at >= ?3 AND network = ?4
               AND seq < ?5
         ORDER BY received_at DESC LIMIT 1"
    ))?
    .query_row(
        params![ctx.key_id, fingerprint, since, ctx.network, ctx.before_seq],
        Click::from_row,
    )
    .optional()
}

/// Decides the partner for a signup, or `None` (unattributed).
pub fn decide(conn: &Db, ctx: &Context, signup: &NewEvent) -> anyhow::Result<Option<Attribution>> {
    let cookie_click = match &ctx.server_click {
        Some(cookie) => click_by_id(conn, ctx, &cookie.event_id)?,
        None => None,
    };
    let recorded = match &signup.xid {
        Some(xid) => click_by_xid(conn, ctx, xid, signup.partner_key.as_deref())?,
        None => None,
    };
    match (recorded, &signup.partner_key) {
        (Some(click), _) if ctx.now_ms - click.at <= ctx.window_ms => {
            let restored = ctx.server_click.as_ref().is_some_and(|c| c.restored)
                && cookie_click.as_ref().is_some_and(|c| c.event_id == click.event_id);
            return Ok(click.credit(if restored { Source::ServerCookie } else { Source::Xid }));
        }
        (Some(_expired), _) => {}
        (None, Some(partner_key)) => {
            return Ok(Some(Attribution {
                partner_key: partner_key.clone(),
                xid: signup.xid.clone(),
                source: Source::PartnerKey,
            }))
        }
        (None, None) => {}
    }
    if let Some(click) = cookie_click {
        return Ok(click.credit(Source::ServerCookie));
    }
    if let Some(fingerprint) = &signup.fingerprint {
        if let Some(click) = click_by_fingerprint(conn, ctx, fingerprint)? {
            return Ok(click.credit(Source::Fingerprint));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, Signup};
    use rusqlite::Connection;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;
    const TEST_KEY: i64 = 1;
    const LIVE_KEY: i64 = 2;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        for (id, live) in [(TEST_KEY, false), (LIVE_KEY, true)] {
            conn.execute(
                "INSERT INTO keys (id, public_key, secret_hash, live, created_at) VALUES (?1, ?2, x'00', ?3, 0)",
                rusqlite::params![id, format!("pk{id}"), live],
            )
            .unwrap();
        }
        conn
    }

    const HOME: &str = "203.0.113.0/24";
    const HOUR: i64 = 3_600_000;

    /// Records a click `days_ago` days before NOW, from the HOME network.
    fn click(conn: &Db, key: i64, id: &str, partner: &str, xid: &str, fp: &str, days_ago: i64) {
        click_from(conn, key, id, partner, xid, fp, HOME, days_ago * DAY);
    }

    /// Records a click `ms_ago` before NOW from `network`.
    #[allow(clippy::too_many_arguments)]
    fn click_from(conn: &Db, key: i64, id: &str, partner: &str, xid: &str, fp: &str, network: &str, ms_ago: i64) {
        conn.execute(
            "INSERT INTO events (key_id, event_id, type, received_at, client_ts, partner_key, xid, fingerprint, network)
             VALUES (?1, ?2, 'click', ?3, 0, ?4, ?5, ?6, ?7)",
            params![key, id, NOW - ms_ago, partner, xid, fp, network],
        )
        .unwrap();
    }

    fn signup(partner_key: Option<&str>, xid: Option<&str>, fp: Option<&str>) -> NewEvent {
        NewEvent {
            id: "s".into(),
            kind: EventKind::Signup,
            client_ts: 0,
            partner_key: partner_key.map(String::from),
            xid: xid.map(String::from),
            url: None,
            referrer: None,
            fingerprint: fp.map(String::from),
            signup: Some(Signup {
                customer_key: "c".into(),
                email: "c@x.co".into(),
                name: String::new(),
                provider_key: None,
            }),
        }
    }

    fn ctx(key_id: i64, cookie: Option<&str>) -> Context {
        Context {
            key_id,
            now_ms: NOW,
            window_ms: 90 * DAY,
            fingerprint_ms: 24 * HOUR,
            server_click: cookie.and_then(ServerClick::parse),
            network: HOME.into(),
            before_seq: i64::MAX,
        }
    }

    /// (partner, source) decided.
    fn decided(conn: &Db, ctx: &Context, event: &NewEvent) -> Option<(String, &'static str)> {
        decide(conn, ctx, event)
            .unwrap()
            .map(|a| (a.partner_key, a.source.as_str()))
    }

    fn credit(partner: &str, source: &'static str) -> Option<(String, &'static str)> {
        Some((partner.into(), source))
    }

    #[test]
    fn click_id_within_the_window_wins_and_expires_with_its_partner_key() {
        let conn = db();
        let conn = Db::from(&conn);
        click(&conn, TEST_KEY, "c1", "alice", "x1", "f1", 30);
        click(&conn, TEST_KEY, "c2", "bob", "x2", "f2", 91);
        let ctx = ctx(TEST_KEY, None);
        // Another partner's key with alice's click id: the id proves nothing
        // for mallory (no click of his carried it): only his key counts.
        assert_eq!(
            decided(&conn, &ctx, &signup(Some("mallory"), Some("x1"), None)),
            credit("mallory", "partner_key")
        );
        assert_eq!(
            decided(&conn, &ctx, &signup(Some("alice"), Some("x1"), None)),
            credit("alice", "xid")
        );
        // 91 days: the referral expired, and its partner key with it.
        assert_eq!(decided(&conn, &ctx, &signup(Some("bob"), Some("x2"), None)), None);
        // Exactly at the window's end it still counts.
        click(&conn, TEST_KEY, "c3", "carol", "x3", "f3", 90);
        assert_eq!(
            decided(&conn, &ctx, &signup(None, Some("x3"), None)),
            credit("carol", "xid")
        );
    }

    #[test]
    fn a_partner_key_counts_when_its_click_was_never_recorded() {
        let conn = db();
        let conn = Db::from(&conn);
        let ctx = ctx(TEST_KEY, None);
        assert_eq!(
            decided(&conn, &ctx, &signup(Some("alice"), Some("lost"), None)),
            credit("alice", "partner_key")
        );
        assert_eq!(
            decided(&conn, &ctx, &signup(Some("alice"), None, None)),
            credit("alice", "partner_key")
        );
        assert_eq!(decided(&conn, &ctx, &signup(None, None, None)), None);
    }

    #[test]
    fn the_server_cookie_credits_its_click_within_the_window() {
        let conn = db();
        let conn = Db::from(&conn);
        click(&conn, TEST_KEY, "c1", "alice", "x1", "f1", 10);
        click(&conn, TEST_KEY, "c2", "bob", "x2", "f2", 100);
        let empty = signup(None, None, None);
        assert_eq!(
            decided(&conn, &ctx(TEST_KEY, Some("c1")), &empty),
            credit("alice", "server_cookie")
        );
        assert_eq!(decided(&conn, &ctx(TEST_KEY, Some("c2")), &empty), None);
        assert_eq!(decided(&conn, &ctx(TEST_KEY, Some("nope")), &empty), None);
        // Storage restored from the cookie: the click id it sends is the cookie's.
        let restored = signup(Some("alice"), Some("x1"), None);
        assert_eq!(
            decided(&conn, &ctx(TEST_KEY, Some("c1.r")), &restored),
            credit("alice", "server_cookie")
        );
        // Not restored: the browser kept its own storage.
        assert_eq!(
            decided(&conn, &ctx(TEST_KEY, Some("c1")), &restored),
            credit("alice", "xid")
        );
    }

    #[test]
    fn a_fingerprint_corroborates_a_click_from_the_same_network_within_its_window() {
        let conn = db();
        let conn = Db::from(&conn);
        click_from(&conn, TEST_KEY, "c1", "alice", "x1", "f1", HOME, 2 * HOUR);
        click_from(&conn, TEST_KEY, "c2", "alice", "x2", "f2", HOME, 30 * HOUR);
        click_from(&conn, TEST_KEY, "c3", "alice", "x3", "f3", "198.51.100.0/24", HOUR);
        let ctx = ctx(TEST_KEY, None);
        assert_eq!(
            decided(&conn, &ctx, &signup(None, None, Some("f1"))),
            credit("alice", "fingerprint")
        );
        // Past the 24 h fingerprint window; another network; unknown.
        assert_eq!(decided(&conn, &ctx, &signup(None, None, Some("f2"))), None);
        assert_eq!(decided(&conn, &ctx, &signup(None, None, Some("f3"))), None);
        assert_eq!(decided(&conn, &ctx, &signup(None, None, Some("f9"))), None);
        // Off for the key.
        let off = Context {
            fingerprint_ms: 0,
            ..ctx.clone()
        };
        assert_eq!(decided(&conn, &off, &signup(None, None, Some("f1"))), None);
    }

    #[test]
    fn an_ambiguous_fingerprint_decides_nothing() {
        let conn = db();
        let conn = Db::from(&conn);
        // Two partners' clicks on one fingerprint (a squatter's included).
        click_from(&conn, TEST_KEY, "c1", "alice", "x1", "f1", HOME, HOUR);
        click_from(&conn, TEST_KEY, "c2", "mallory", "m1", "f1", "198.51.100.0/24", HOUR);
        // One partner, but from three networks: a common device profile.
        for (i, net) in [HOME, "198.51.100.0/24", "192.0.2.0/24"].iter().enumerate() {
            click_from(
                &conn,
                TEST_KEY,
                &format!("d{i}"),
                "bob",
                &format!("y{i}"),
                "f2",
                net,
                HOUR,
            );
        }
        let ctx = ctx(TEST_KEY, None);
        assert_eq!(decided(&conn, &ctx, &signup(None, None, Some("f1"))), None);
        assert_eq!(decided(&conn, &ctx, &signup(None, None, Some("f2"))), None);
    }

    #[test]
    fn a_click_id_credits_only_a_partner_it_was_recorded_with() {
        let conn = db();
        let conn = Db::from(&conn);
        // A squatter records alice's published click id first.
        click(&conn, TEST_KEY, "c0", "mallory", "x1", "f1", 3);
        click(&conn, TEST_KEY, "c1", "alice", "x1", "f1", 2);
        let ctx = ctx(TEST_KEY, None);
        assert_eq!(
            decided(&conn, &ctx, &signup(Some("alice"), Some("x1"), None)),
            credit("alice", "xid")
        );
        // No partner key and an id two partners share: the id decides nothing.
        assert_eq!(decided(&conn, &ctx, &signup(None, Some("x1"), None)), None);
        // One partner's id decides for a signup without a partner key.
        click(&conn, TEST_KEY, "c2", "bob", "x2", "f2", 1);
        assert_eq!(
            decided(&conn, &ctx, &signup(None, Some("x2"), None)),
            credit("bob", "xid")
        );
    }

    #[test]
    fn networks_are_ipv4_slash_24_and_ipv6_slash_48() {
        let net = |ip: &str| network(ip.parse().unwrap());
        assert_eq!(net("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(net("::ffff:203.0.113.77"), "203.0.113.0/24");
        assert_eq!(net("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
    }

    #[test]
    fn test_and_live_keys_never_mix() {
        let conn = db();
        let conn = Db::from(&conn);
        click(&conn, TEST_KEY, "c1", "alice", "x1", "f1", 1);
        let live = ctx(LIVE_KEY, Some("c1"));
        assert_eq!(decided(&conn, &live, &signup(None, Some("x1"), Some("f1"))), None);
        assert_eq!(
            decided(&conn, &ctx(TEST_KEY, None), &signup(None, Some("x1"), None)),
            credit("alice", "xid")
        );
    }
}
