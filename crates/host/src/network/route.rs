//! Routes of the main table through `ip -j route` (the command runner, argv only): listing,
//! adding and deleting one route. Acts on the caller's network namespace like the rest of
//! this module.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::command::{Cmd, CommandError};

/// One route of the main table.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEntry {
    /// Destination network (host bits clear); `0.0.0.0`/`::` with prefix 0 for the default.
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    pub interface: Option<String>,
    pub metric: u32,
    pub protocol: String,
    /// `unicast` unless the kernel says otherwise (`unreachable`, `blackhole`, …).
    pub kind: String,
}

#[derive(Deserialize)]
struct Raw {
    dst: String,
    gateway: Option<String>,
    dev: Option<String>,
    metric: Option<u32>,
    protocol: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn parse(raw: Raw, v6: bool) -> Option<RouteEntry> {
    let (destination, prefix_len) = if raw.dst == "default" {
        let any: IpAddr = if v6 {
            "::".parse().ok()?
        } else {
            "0.0.0.0".parse().ok()?
        };
        (any, 0)
    } else if let Some((a, l)) = raw.dst.split_once('/') {
        (a.parse().ok()?, l.parse().ok()?)
    } else {
        let a: IpAddr = raw.dst.parse().ok()?;
        (a, if a.is_ipv4() { 32 } else { 128 })
    };
    Some(RouteEntry {
        destination,
        prefix_len,
        gateway: raw.gateway.and_then(|g| g.parse().ok()),
        interface: raw.dev,
        metric: raw.metric.unwrap_or(0),
        protocol: raw.protocol.unwrap_or_else(|| "boot".into()),
        kind: raw.kind.unwrap_or_else(|| "unicast".into()),
    })
}

/// Parses `ip -j -4|-6 route show table main`.
pub fn parse_routes(json: &str, v6: bool) -> Result<Vec<RouteEntry>, String> {
    let raw: Vec<Raw> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(raw.into_iter().filter_map(|r| parse(r, v6)).collect())
}

fn ip() -> Cmd {
    Cmd::new("ip").timeout(Duration::from_secs(10))
}

/// Every IPv4 and IPv6 route of the main table.
pub async fn routes() -> Result<Vec<RouteEntry>, CommandError> {
    let mut out = Vec::new();
    for (flag, v6) in [("-4", false), ("-6", true)] {
        let text = ip()
            .args(["-j", flag, "route", "show", "table", "main"])
            .run_text()
            .await?;
        let text = if text.trim().is_empty() { "[]" } else { &text };
        out.extend(parse_routes(text, v6).map_err(CommandError::invalid)?);
    }
    Ok(out)
}

fn spec(r: &RouteEntry) -> Vec<String> {
    let mut a = vec![format!("{}/{}", r.destination, r.prefix_len)];
    if let Some(g) = r.gateway {
        a.extend(["via".into(), g.to_string()]);
    }
    if let Some(d) = &r.interface {
        a.extend(["dev".into(), d.clone()]);
    }
    a.extend(["metric".into(), r.metric.to_string()]);
    a
}

/// `ip route add DEST [via GW] [dev IF] metric M proto static`.
pub async fn add_route(r: &RouteEntry) -> Result<(), CommandError> {
    let fam = if r.destination.is_ipv4() { "-4" } else { "-6" };
    ip().args([fam, "route", "add"])
        .args(spec(r))
        .args(["proto", "static"])
        .run()
        .await?;
    Ok(())
}

/// `ip route del DEST [via GW] [dev IF] metric M`.
pub async fn delete_route(r: &RouteEntry) -> Result<(), CommandError> {
    let fam = if r.destination.is_ipv4() { "-4" } else { "-6" };
    ip().args([fam, "route", "del"]).args(spec(r)).run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let j = r#"[{"dst":"default","gateway":"10.0.0.1","dev":"eth0","protocol":"static","metric":100,"flags":[]},
            {"dst":"10.0.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.0.0.5","flags":[]},
            {"type":"unreachable","dst":"192.0.2.7","protocol":"boot","flags":[]}]"#;
        let r = parse_routes(j, false).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].prefix_len, 0);
        assert_eq!(r[0].gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r[0].metric, 100);
        assert_eq!(r[1].interface.as_deref(), Some("eth0"));
        assert_eq!(r[1].protocol, "kernel");
        assert_eq!(r[2].prefix_len, 32);
        assert_eq!(r[2].kind, "unreachable");
        let r6 =
            parse_routes(r#"[{"dst":"default","gateway":"fe80::1","dev":"e"}]"#, true).unwrap();
        assert_eq!(r6[0].destination, "::".parse::<IpAddr>().unwrap());
    }
}
