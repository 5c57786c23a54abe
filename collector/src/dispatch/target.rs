//! Which URLs outgoing webhooks may be sent to. A merchant's endpoint URL
//! is a request the collector makes on its behalf, from inside the
//! operator's network: without a check, an API key could point it at the
//! cloud's metadata service or an internal admin page (SSRF). So only
//! `https` URLs whose addresses are public are reached, unless the operator
//! allows private targets (`--allow-private-webhook-targets`: intranets,
//! tests), which allows plain `http` too. The check is made on the
//! addresses the name resolves to when sending, and the connection is made
//! to a checked address itself: a name that resolves to a public address
//! when the endpoint is registered and to 127.0.0.1 later reaches nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most characters in an endpoint's URL.
pub const URL_CHARS: usize = 2048;

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// The host name or address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Parses and checks an endpoint URL; the error says what is wrong.
pub fn parse(url: &str, allow_private: bool) -> Result<Target, String> {
    if url.chars().count() > URL_CHARS {
        return Err(format!("must be at most {URL_CHARS} characters"));
    }
    let uri: hyper::Uri = url.parse().map_err(|_| "is not a URL".to_owned())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if allow_private => false,
        Some("http") => return Err("must be an https URL".into()),
        _ => return Err("must be an https URL".into()),
    };
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not hold a user name or password".into());
    }
    // (One trailing dot is the same name, absolute.)
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return Err("has no host".into());
    }
    // An IPv6 zone (`fe80::1%eth0`) names this host's own link; an empty
    // label (`a..b`, `127.0.0.1..`) no host at all.
    if host.contains('%') || (!host.contains(':') && host.split('.').any(str::is_empty)) {
        return Err(format!("names no valid host ({host})"));
    }
    // The text after the host's last ':' (`Uri::port` hides a number out
    // of range as no port at all).
    let port_text = authority
        .as_str()
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, rest)| rest);
    let port = match port_text.rsplit_once(':') {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        Some((_, port)) => port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("has no valid port (1-65535)")?,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !allow_private && !is_public(ip) {
            return Err(format!("names a private address ({ip})"));
        }
    } else if numeric(&host) {
        // 2130706433, 0x7f000001, 127.1, 0177.0.0.1: resolvers read them
        // as addresses; no DNS name ends in a number.
        return Err(format!("names an address in a form other than a.b.c.d ({host})"));
    } else if !allow_private && is_local_name(&host) {
        return Err(format!("names a local host ({host})"));
    }
    Ok(Target {
        https,
        host,
        port,
        path: uri.path_and_query().map_or("/".into(), |p| p.as_str().to_owned()),
    })
}

/// Whether the last label of `host` is a number (decimal, octal or `0x`
/// hex): an address in a form `IpAddr` does not read, never a DNS name.
fn numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.chars().all(|c| c.is_ascii_digit()))
}

/// Names that only ever mean this host or its network.
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local") || host.ends_with(".internal")
}

/// Whether `ip` is an address on the public internet: not loopback,
/// private, link-local (where clouds' metadata services live), shared
/// (carrier NAT), unspecified, multicast, broadcast or reserved; an IPv6
/// address embedding an IPv4 one is judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let v4 = |high: u16, low: u16| {
                let ([a, b], [c, d]) = (high.to_be_bytes(), low.to_be_bytes());
                Ipv4Addr::new(a, b, c, d)
            };
            // NAT64 (64:ff9b::/96) and IPv4-translated (::ffff:0:0:0/96)
            // carry an IPv4 address in their last 32 bits, 6to4
            // (2002::/16) in the 32 after the prefix.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]) || s[0..6] == [0, 0, 0, 0, 0xffff, 0] {
                return is_public_v4(v4(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public_v4(v4(s[1], s[2]));
            }
            // Teredo (2001::/32) hides its client's address; 64:ff9b:1::/48
            // is a site's own NAT64: either may lead inside.
            if (s[0] == 0x2001 && s[1] == 0) || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
                return false;
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local (AWS's metadata service is fd00:ec2::254).
                || (s[0] & 0xfe00) == 0xfc00
                // fe80::/10 link-local.
                || (s[0] & 0xffc0) == 0xfe80
                // ::/96, the deprecated IPv4-compatible addresses.
                || (s[0..6] == [0, 0, 0, 0, 0, 0])
                || v6 == Ipv6Addr::UNSPECIFIED)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT (Alibaba's metadata: 100.100.100.200).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240.0.0.0/4 reserved.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_targets_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/hook",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://[fd00:ec2::254]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://100.100.100.200/",
            "https://0.0.0.0/",
            "https://localhost/",
            "https://metadata.google.internal/",
            "https://127.0.0.1./",
            "https://169.254.169.254./",
            "https://[::ffff:0:7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "https://[64:ff9b:1::a00:1]/",
        ] {
            assert!(parse(url, false).is_err(), "{url}");
            assert!(parse(url, true).is_ok(), "{url}");
        }
        assert_eq!(
            parse("http://hooks.example/x", false).unwrap_err(),
            "must be an https URL"
        );
        assert!(parse("http://127.0.0.1:9000/x", true).is_ok());
        assert!(parse("https://user:pw@hooks.example/", false).is_err());
        assert!(parse("ftp://hooks.example/", true).is_err());
        assert!(parse("hooks.example", true).is_err());
        for numeric in [
            "2130706433",
            "0x7f000001",
            "127.1",
            "0177.0.0.1",
            "0",
            "hooks.example.1",
        ] {
            assert!(parse(&format!("https://{numeric}/"), true).is_err(), "{numeric}");
        }
        for port in ["99999", "75467", "0"] {
            let refused = parse(&format!("https://hooks.example.com:{port}/"), true).unwrap_err();
            assert!(refused.contains("port"), "{port}: {refused}");
        }
        assert_eq!(
            parse("https://hooks.example.com.:8443/", false).unwrap().host,
            "hooks.example.com"
        );
        for invalid in [
            "https://[fe80::1%25eth0]/",
            "https://127.0.0.1../",
            "https://hooks..example.com/",
        ] {
            assert!(parse(invalid, true).is_err(), "{invalid}");
        }
    }

    #[test]
    fn public_targets_parse() {
        let target = parse("https://Hooks.Zapier.com/hooks/catch/1/abc/?x=1", false).unwrap();
        assert_eq!(
            target,
            Target {
                https: true,
                host: "hooks.zapier.com".into(),
                port: 443,
                path: "/hooks/catch/1/abc/?x=1".into()
            }
        );
        assert!(is_public("93.184.215.14".parse().unwrap()));
        assert!(is_public("2606:4700::6810:84e5".parse().unwrap()));
    }
}
