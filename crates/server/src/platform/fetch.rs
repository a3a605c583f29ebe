//! Fetching from a URL a caller gave (a Vagrant box, a registry's catalog, a provisioning
//! artifact) without becoming a port scanner for the caller. Shared by the `vms` area (and its
//! template registries) and `provisioning`, each with its own `url_allow` setting.
//!
//! A URL may only reach public addresses: loopback, private (RFC 1918, ULA), CGNAT,
//! link-local, unspecified, multicast, broadcast, documentation and other special ranges are
//! refused unless the area's `url_allow` names them (IP addresses or CIDRs). A host name is resolved
//! here and every address it resolves to must pass; the connection then goes to exactly those
//! checked addresses (reqwest's resolver is overridden for that name, no proxy is used), so a
//! second DNS answer cannot switch it (DNS rebinding). Redirects are not followed by reqwest:
//! each `Location` is checked the same way, at most [`MAX_REDIRECTS`] hops.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

use crate::error::ApiError;

pub const MAX_REDIRECTS: usize = 5;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An allow-list entry: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

/// `10.0.0.0/8`, `127.0.0.1`, `fd00::/8`, `::1`.
pub fn parse_net(s: &str) -> Result<Net, String> {
    let bad = || format!("{s:?} is not an IP address or CIDR (e.g. \"10.0.0.0/8\")");
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(bad)?,
    };
    Ok(Net {
        addr: canonical(addr),
        prefix: if addr.is_ipv6() && canonical(addr).is_ipv4() {
            prefix.saturating_sub(96)
        } else {
            prefix
        },
    })
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn v4_public(a: Ipv4Addr) -> bool {
    let o = a.octets();
    let n = u32::from(a);
    let in_net = |base: [u8; 4], prefix: u32| {
        let mask = u32::MAX << (32 - prefix);
        n & mask == u32::from(Ipv4Addr::from(base)) & mask
    };
    !(o[0] == 0                              // "this network", unspecified
        || o[0] == 10                        // RFC 1918
        || o[0] == 127                       // loopback
        || in_net([100, 64, 0, 0], 10)       // CGNAT
        || in_net([169, 254, 0, 0], 16)      // link-local
        || in_net([172, 16, 0, 0], 12)       // RFC 1918
        || in_net([192, 0, 0, 0], 24)        // IETF protocol assignments
        || in_net([192, 0, 2, 0], 24)        // documentation
        || in_net([192, 88, 99, 0], 24)      // 6to4 relay anycast
        || in_net([192, 168, 0, 0], 16)      // RFC 1918
        || in_net([198, 18, 0, 0], 15)       // benchmarking
        || in_net([198, 51, 100, 0], 24)     // documentation
        || in_net([203, 0, 113, 0], 24)      // documentation
        || o[0] >= 224) // multicast, reserved, broadcast
}

fn v6_public(a: Ipv6Addr) -> bool {
    let s = a.segments();
    let n = u128::from(a);
    let in_net = |base: u128, prefix: u32| {
        let mask = u128::MAX << (128 - prefix);
        n & mask == base & mask
    };
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_public(v4);
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address that may be private.
    if in_net(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        return v4_public(Ipv4Addr::from(n as u32));
    }
    if s[0] == 0x2002 {
        return v4_public(Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32));
    }
    !(in_net(0, 96)                                                 // ::, ::1, IPv4-compatible
        || in_net(0x0100_0000_0000_0000_0000_0000_0000_0000, 64)    // discard
        || in_net(0x2001_0db8_0000_0000_0000_0000_0000_0000, 32)    // documentation
        || in_net(0x2001_0000_0000_0000_0000_0000_0000_0000, 32)    // Teredo (embeds IPv4)
        || in_net(0xfc00_0000_0000_0000_0000_0000_0000_0000, 7)     // ULA
        || in_net(0xfe80_0000_0000_0000_0000_0000_0000_0000, 10)    // link-local
        || in_net(0xfec0_0000_0000_0000_0000_0000_0000_0000, 10)    // site-local
        || in_net(0xff00_0000_0000_0000_0000_0000_0000_0000, 8)) // multicast
}

/// A globally reachable unicast address (not loopback, private, link-local, …).
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => v4_public(a),
        IpAddr::V6(a) => v6_public(a),
    }
}

/// Public, or named by the area's `url_allow`.
pub fn allowed(ip: IpAddr, allow: &[Net]) -> bool {
    is_public(ip) || allow.iter().any(|n| n.contains(ip))
}

enum Host {
    Ip(IpAddr),
    Name(String),
}

/// The URL's host: an address literal (the URL parser already turned `2130706433` and the like
/// into dotted form) or a name.
fn host_of(url: &Url) -> Option<Host> {
    let h = url.host_str()?;
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(h.to_string()),
    })
}

fn not_allowed(detail: String) -> ApiError {
    ApiError::invalid_field("url_not_allowed", "url", detail)
}

/// The addresses `url` may be fetched from: every address its host resolves to, all checked.
pub async fn resolve_checked(url: &Url, allow: &[Net]) -> Result<Vec<SocketAddr>, ApiError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(not_allowed(format!("{url}: only http and https URLs")));
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| not_allowed(format!("{url}: no port")))?;
    let addrs: Vec<SocketAddr> = match host_of(url) {
        Some(Host::Ip(a)) => vec![SocketAddr::new(a, port)],
        Some(Host::Name(d)) => {
            let found =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((d.as_str(), port)))
                    .await
                    .map_err(|_| not_allowed(format!("{d}: name resolution timed out")))?
                    .map_err(|e| not_allowed(format!("{d}: cannot resolve: {e}")))?;
            found.collect()
        }
        None => return Err(not_allowed(format!("{url}: no host"))),
    };
    if addrs.is_empty() {
        return Err(not_allowed(format!("{url}: the name has no address")));
    }
    if let Some(bad) = addrs.iter().find(|a| !allowed(a.ip(), allow)) {
        return Err(not_allowed(format!(
            "{url} reaches {} (loopback, private, link-local or another non-public address); \
             url_allow ([vms] for boxes and registries, [provisioning] for artifacts) must name it",
            bad.ip()
        )));
    }
    Ok(addrs)
}

/// GET `url`, following at most [`MAX_REDIRECTS`] redirects, each hop checked and pinned to its
/// checked addresses. Errors: `url_not_allowed` (422 in a request, the job's code in a job) or
/// `download_failed`.
pub async fn get(url: &str, allow: &[Net]) -> Result<reqwest::Response, ApiError> {
    get_with(url, allow, None).await
}

/// Credentials for one origin: sent only on hops to exactly that scheme, host and port (a
/// registry's token never reaches the CDN its downloads redirect to).
#[derive(Clone)]
pub struct OriginAuth {
    pub origin: reqwest::Url,
    pub headers: reqwest::header::HeaderMap,
}

impl OriginAuth {
    fn applies_to(&self, url: &Url) -> bool {
        url.scheme() == self.origin.scheme()
            && url.host_str() == self.origin.host_str()
            && url.port_or_known_default() == self.origin.port_or_known_default()
    }
}

/// [`get`], with `auth`'s headers on the hops to its origin.
pub async fn get_with(
    url: &str,
    allow: &[Net],
    auth: Option<&OriginAuth>,
) -> Result<reqwest::Response, ApiError> {
    let failed = |e: String| ApiError::invalid("download_failed", e);
    let mut url = Url::parse(url).map_err(|e| not_allowed(format!("{url}: {e}")))?;
    for _ in 0..=MAX_REDIRECTS {
        let addrs = resolve_checked(&url, allow).await?;
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(Host::Name(d)) = host_of(&url) {
            b = b.resolve_to_addrs(&d, &addrs);
        }
        let mut req = b
            .build()
            .map_err(|e| failed(e.to_string()))?
            .get(url.clone());
        if let Some(a) = auth.filter(|a| a.applies_to(&url)) {
            req = req.headers(a.headers.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| failed(format!("{url}: {e}")))?;
        if !resp.status().is_redirection() {
            return Ok(resp);
        }
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| failed(format!("{url}: HTTP {} without a Location", resp.status())))?;
        url = url
            .join(loc)
            .map_err(|e| not_allowed(format!("redirect to {loc:?}: {e}")))?;
    }
    Err(failed(format!(
        "more than {MAX_REDIRECTS} redirects; the last went to {url}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip(a)), "{a}");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::",
        ] {
            assert!(is_public(ip(a)), "{a}");
        }
    }

    #[test]
    fn allow_list() {
        let allow = [
            parse_net("127.0.0.1").unwrap(),
            parse_net("10.0.0.0/8").unwrap(),
            parse_net("fd00::/8").unwrap(),
        ];
        assert!(allowed(ip("127.0.0.1"), &allow));
        assert!(allowed(ip("::ffff:127.0.0.1"), &allow));
        assert!(!allowed(ip("127.0.0.2"), &allow));
        assert!(allowed(ip("10.200.0.1"), &allow));
        assert!(!allowed(ip("11.0.0.0"), &allow) || is_public(ip("11.0.0.0")));
        assert!(allowed(ip("fd12::1"), &allow));
        assert!(!allowed(ip("::1"), &allow));
        assert!(!allowed(ip("192.168.0.1"), &allow));
        for bad in ["", "x", "10.0.0.0/33", "::/129", "1.2.3.4/", "localhost"] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
        assert!(
            parse_net("::ffff:10.0.0.0/104")
                .unwrap()
                .contains(ip("10.9.9.9"))
        );
        assert!(parse_net("0.0.0.0/0").unwrap().contains(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn urls_are_resolved_and_checked() {
        let none: [Net; 0] = [];
        for u in [
            "http://127.0.0.1:9/x",
            "http://localhost:9/x",
            "http://[::1]:9/",
            "http://2130706433/",
            "ftp://1.1.1.1/",
        ] {
            let e = resolve_checked(&Url::parse(u).unwrap(), &none)
                .await
                .unwrap_err();
            assert_eq!(e.code(), "url_not_allowed", "{u}");
        }
        let allow = [parse_net("127.0.0.1").unwrap()];
        let a = resolve_checked(&Url::parse("http://127.0.0.1:9/x").unwrap(), &allow)
            .await
            .unwrap();
        assert_eq!(a, [SocketAddr::from(([127, 0, 0, 1], 9))]);
    }
}
