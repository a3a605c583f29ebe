//! DHCP servers on managed bridges: one dnsmasq per bridge (`hostplane_host::network::dnsmasq`),
//! run and supervised by the daemon.
//!
//! Create: check the request completely (the bridge is hostplane's and has an IPv4 address
//! whose subnet holds the range and the router; no other server's range overlaps) → write the
//! files atomically and `dnsmasq --test` them → store → start the supervisor. The supervisor
//! ([`Dhcp`]) restarts a dnsmasq that exits with a growing backoff (1 s … 30 s), stops it at
//! shutdown, and the start hook starts every stored server again. Static hosts are one file in
//! dnsmasq's `dhcp-hostsdir` (an added host is picked up by inotify; a removed one needs a
//! restart); a lease is released by stopping dnsmasq, dropping the line from the lease file
//! and starting it again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use hostplane_host::command::{RestartPolicy, Restarting};
use hostplane_host::network::Netlink;
use hostplane_host::network::dnsmasq::{self, DhcpConfig, Files, StaticHost};
use hostplane_types::network::{DhcpHost, DhcpLease, DhcpServer, DhcpServerCreate};

use super::links::net_err;
use super::model::{
    self, BridgeRec, DhcpHostRec, DhcpRec, KIND_BRIDGE, KIND_DHCP, check_ifname, mask_bits,
    network_of,
};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub fn server_href(interface: &str) -> String {
    format!("/api/v1/network/dhcp-servers/{interface}")
}

const MAX_HOSTS: usize = 1024;

/// The supervisors of the running servers, by interface.
pub struct Dhcp {
    dir: PathBuf,
    running: std::sync::Mutex<HashMap<String, Restarting>>,
}

impl Dhcp {
    /// Servers keep their files under `dir/<interface>/`.
    pub fn new(dir: PathBuf) -> Dhcp {
        Dhcp {
            dir,
            running: Default::default(),
        }
    }

    pub fn files(&self, interface: &str) -> Files {
        Files {
            dir: self.dir.join(interface),
        }
    }

    fn pid(&self, interface: &str) -> Option<u32> {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let pid = r.get(interface)?.pid();
        Some(pid)
    }

    /// Starts supervising the server of `interface` (its files are written).
    pub fn start(&self, interface: &str) {
        let files = self.files(interface);
        kill_stale(&files);
        let child = dnsmasq::command(&files).supervise(files.log(), RestartPolicy::default(), |_| {});
        // A replaced supervisor stops when its handle drops.
        let old = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(interface.to_string(), child);
        drop(old);
    }

    /// Stops the server of `interface` and waits until its dnsmasq is gone.
    pub async fn stop(&self, interface: &str) {
        let r = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(interface);
        if let Some(r) = r {
            r.stop().await;
        }
    }

    /// Stops every server (daemon shutdown).
    pub async fn stop_all(&self) {
        let names: Vec<String> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for n in names {
            self.stop(&n).await;
        }
    }

    /// Waits (up to 5 s) until the server of `interface` runs.
    pub async fn wait_running(&self, interface: &str) {
        for _ in 0..50 {
            if self.pid(interface).unwrap_or(0) != 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A dnsmasq of ours left by a daemon that died (its pid file names it, its command line our
/// configuration) holds the DHCP port: it goes before a new one starts.
fn kill_stale(files: &Files) {
    let conf = files.conf();
    let Ok(pid) = std::fs::read_to_string(files.pid_file()) else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<u32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = format!("--conf-file={}", conf.display());
    if cmdline
        .split(|b| *b == 0)
        .any(|a| a == needle.as_bytes())
    {
        tracing::warn!(pid, "stopping a dnsmasq left by an earlier run");
        hostplane_host::qemu::process::signal(pid, libc::SIGKILL);
        for _ in 0..50 {
            if !hostplane_host::qemu::process::is_alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn view(d: &Dhcp, r: &DhcpRec) -> DhcpServer {
    let pid = d.pid(&r.interface);
    DhcpServer {
        href: server_href(&r.interface),
        interface: r.interface.clone(),
        range_start: r.range_start.to_string(),
        range_end: r.range_end.to_string(),
        router: r.router.map(|x| x.to_string()),
        dns: r.dns.iter().map(|x| x.to_string()).collect(),
        lease_time_s: r.lease_time_s,
        hosts: r.hosts.iter().map(host_view).collect(),
        state: match pid {
            None => "stopped",
            Some(0) => "starting",
            Some(_) => "running",
        }
        .into(),
        pid: pid.filter(|p| *p != 0),
    }
}

fn host_view(h: &DhcpHostRec) -> DhcpHost {
    DhcpHost {
        mac: h.mac.clone(),
        ip: h.ip.to_string(),
        hostname: h.hostname.clone(),
    }
}

fn config(r: &DhcpRec) -> DhcpConfig {
    DhcpConfig {
        interface: r.interface.clone(),
        range_start: r.range_start,
        range_end: r.range_end,
        netmask: Ipv4Addr::from(mask_bits(r.prefix_len)),
        router: r.router,
        dns: r.dns.clone(),
        lease_time_s: r.lease_time_s,
    }
}

fn hosts(r: &DhcpRec) -> Vec<StaticHost> {
    r.hosts
        .iter()
        .map(|h| StaticHost {
            mac: h.mac.clone(),
            ip: h.ip,
            hostname: h.hostname.clone(),
        })
        .collect()
}

pub fn servers(d: &Dhcp, store: &Store) -> ApiResult<Vec<DhcpServer>> {
    Ok(model::load::<DhcpRec>(store, KIND_DHCP)?
        .iter()
        .map(|r| view(d, r))
        .collect())
}

fn rec(store: &Store, interface: &str) -> ApiResult<DhcpRec> {
    model::load::<DhcpRec>(store, KIND_DHCP)?
        .into_iter()
        .find(|r| r.interface == interface)
        .ok_or_else(|| ApiError::not_found(format!("no DHCP server on {interface:?}")))
}

pub fn server(d: &Dhcp, store: &Store, interface: &str) -> ApiResult<DhcpServer> {
    Ok(view(d, &rec(store, interface)?))
}

fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    network_of(ip, len) == net
}

/// Checks a server request against the bridge's addresses and the other servers; the record.
pub fn check_server(
    req: &DhcpServerCreate,
    bridge_addrs: &[(Ipv4Addr, u8)],
    others: &[DhcpRec],
) -> ApiResult<DhcpRec> {
    let start = model::parse_ipv4("range_start", &req.range_start)?;
    let end = model::parse_ipv4("range_end", &req.range_end)?;
    if u32::from(end) < u32::from(start) {
        return Err(ApiError::invalid_field("invalid_dhcp_range", "range_end", "the range ends before it starts"));
    }
    let Some(&(addr, len)) = bridge_addrs
        .iter()
        .find(|(a, l)| in_subnet(start, network_of(*a, *l), *l))
    else {
        return Err(ApiError::invalid_field(
            "dhcp_range_outside_subnet",
            "range_start",
            format!("{start} is in no IPv4 subnet of {:?} (give the bridge an address first)", req.interface),
        ));
    };
    let net = network_of(addr, len);
    if len > 30 || !in_subnet(end, net, len) {
        return Err(ApiError::invalid_field(
            "dhcp_range_outside_subnet",
            "range_end",
            format!("{end} is outside {net}/{len}"),
        ));
    }
    let bcast = Ipv4Addr::from(u32::from(net) | !mask_bits(len));
    if start == net || end == bcast {
        return Err(ApiError::invalid_field(
            "dhcp_range_outside_subnet",
            "range_start",
            "the range holds the network or broadcast address",
        ));
    }
    let router = match &req.router {
        Some(r) => {
            let r = model::parse_ipv4("router", r)?;
            if !in_subnet(r, net, len) {
                return Err(ApiError::invalid_field("dhcp_router_outside_subnet", "router", format!("{r} is outside {net}/{len}")));
            }
            Some(r)
        }
        None => None,
    };
    if req.dns.len() > 8 {
        return Err(ApiError::invalid_field("invalid_address", "dns", "at most 8 servers"));
    }
    let dns = req
        .dns
        .iter()
        .enumerate()
        .map(|(i, s)| model::parse_ipv4(&format!("dns[{i}]"), s))
        .collect::<ApiResult<Vec<_>>>()?;
    let lease_time_s = req.lease_time_s.unwrap_or(3600);
    if !(120..=31_536_000).contains(&lease_time_s) {
        return Err(ApiError::invalid_field("invalid_lease_time", "lease_time_s", "120–31536000 seconds"));
    }
    for o in others {
        if o.interface == req.interface {
            return Err(ApiError::conflict(
                "dhcp_server_exists",
                format!("{:?} has a DHCP server", req.interface),
            ));
        }
        if u32::from(start) <= u32::from(o.range_end) && u32::from(o.range_start) <= u32::from(end) {
            return Err(ApiError::conflict(
                "dhcp_range_overlap",
                format!(
                    "{start}–{end} overlaps the range {}–{} of the server on {:?}",
                    o.range_start, o.range_end, o.interface
                ),
            ));
        }
    }
    Ok(DhcpRec {
        interface: req.interface.clone(),
        range_start: start,
        range_end: end,
        prefix_len: len,
        router,
        dns,
        lease_time_s,
        hosts: Vec::new(),
    })
}

/// The IPv4 addresses (with prefixes) on `interface`.
async fn ipv4_addresses(interface: &str) -> ApiResult<Vec<(Ipv4Addr, u8)>> {
    let nl = Netlink::open().map_err(|e| net_err("netlink", e))?;
    let Some(link) = nl.link(interface).await.map_err(|e| net_err("reading links", e))? else {
        return Err(ApiError::invalid_field(
            "interface_not_found",
            "interface",
            format!("no interface named {interface:?}"),
        ));
    };
    Ok(nl
        .addresses()
        .await
        .map_err(|e| net_err("listing addresses", e))?
        .into_iter()
        .filter(|a| a.index == link.index)
        .filter_map(|a| match a.address {
            IpAddr::V4(v4) => Some((v4, a.prefix_len)),
            IpAddr::V6(_) => None,
        })
        .collect())
}

fn cmd_failed(e: hostplane_host::command::CommandError) -> ApiError {
    match e {
        hostplane_host::command::CommandError::NotFound { .. } => {
            ApiError::tool_missing("dnsmasq is not installed (package dnsmasq-base)")
        }
        other => ApiError::invalid("dhcp_config_rejected", format!("dnsmasq refused the configuration: {other}")),
    }
}

pub async fn create(d: &Dhcp, store: &Store, req: &DhcpServerCreate) -> ApiResult<DhcpServer> {
    check_ifname("interface", &req.interface)?;
    if !model::load::<BridgeRec>(store, KIND_BRIDGE)?
        .iter()
        .any(|b| b.name == req.interface)
    {
        return Err(ApiError::invalid_field(
            "bridge_not_managed",
            "interface",
            format!("{:?} is not a bridge hostplane manages", req.interface),
        ));
    }
    let others = model::load::<DhcpRec>(store, KIND_DHCP)?;
    if others.iter().any(|o| o.interface == req.interface) {
        return Err(ApiError::conflict(
            "dhcp_server_exists",
            format!("{:?} has a DHCP server", req.interface),
        ));
    }
    let addrs = ipv4_addresses(&req.interface).await?;
    let rec = check_server(req, &addrs, &others)?;
    let files = d.files(&rec.interface);
    if let Err(e) = dnsmasq::write_and_check(&config(&rec), &hosts(&rec), &files).await {
        let _ = std::fs::remove_dir_all(&files.dir);
        return Err(cmd_failed(e));
    }
    if let Err(e) = model::put(store, KIND_DHCP, &rec.interface, &rec) {
        let _ = std::fs::remove_dir_all(&files.dir);
        return Err(e);
    }
    d.start(&rec.interface);
    d.wait_running(&rec.interface).await;
    Ok(view(d, &rec))
}

/// Stops the server and removes its files (its leases go with them).
pub async fn delete(d: &Dhcp, store: &Store, interface: &str) -> ApiResult<()> {
    let r = rec(store, interface)?;
    d.stop(&r.interface).await;
    model::remove(store, KIND_DHCP, &r.interface)?;
    let _ = std::fs::remove_dir_all(d.files(&r.interface).dir);
    Ok(())
}

pub async fn add_host(d: &Dhcp, store: &Store, interface: &str, req: &DhcpHost) -> ApiResult<DhcpServer> {
    let mut r = rec(store, interface)?;
    let mac = model::parse_mac("mac", &req.mac)?;
    let ip = model::parse_ipv4("ip", &req.ip)?;
    if let Some(h) = &req.hostname {
        model::check_hostname("hostname", h)?;
    }
    let net = network_of(r.range_start, r.prefix_len);
    let bcast = Ipv4Addr::from(u32::from(net) | !mask_bits(r.prefix_len));
    if !in_subnet(ip, net, r.prefix_len) || ip == net || ip == bcast {
        return Err(ApiError::invalid_field(
            "dhcp_host_outside_subnet",
            "ip",
            format!("{ip} is not a host address of {net}/{}", r.prefix_len),
        ));
    }
    if r.hosts.len() >= MAX_HOSTS {
        return Err(ApiError::invalid("too_many_hosts", format!("at most {MAX_HOSTS} static hosts")));
    }
    if let Some(h) = r.hosts.iter().find(|h| h.mac == mac || h.ip == ip) {
        return Err(ApiError::conflict(
            "dhcp_host_exists",
            format!("a static host has this MAC or address ({} → {})", h.mac, h.ip),
        ));
    }
    r.hosts.push(DhcpHostRec {
        mac,
        ip,
        hostname: req.hostname.clone(),
    });
    let files = d.files(interface);
    dnsmasq::write_hosts(&hosts(&r), &files).map_err(ApiError::internal)?;
    model::put(store, KIND_DHCP, interface, &r)?;
    Ok(view(d, &r))
}

pub async fn delete_host(d: &Dhcp, store: &Store, interface: &str, mac: &str) -> ApiResult<()> {
    let mut r = rec(store, interface)?;
    let mac = model::parse_mac("mac", mac).map_err(|_| ApiError::not_found(format!("no static host {mac:?}")))?;
    let before = r.hosts.len();
    r.hosts.retain(|h| h.mac != mac);
    if r.hosts.len() == before {
        return Err(ApiError::not_found(format!("no static host {mac:?} on {interface:?}")));
    }
    dnsmasq::write_hosts(&hosts(&r), &d.files(interface)).map_err(ApiError::internal)?;
    model::put(store, KIND_DHCP, interface, &r)?;
    // dnsmasq forgets a removed host only when it starts again.
    d.stop(interface).await;
    d.start(interface);
    Ok(())
}

pub fn leases(d: &Dhcp, store: &Store, interface: &str) -> ApiResult<Vec<DhcpLease>> {
    let r = rec(store, interface)?;
    let text = std::fs::read_to_string(d.files(interface).leases()).unwrap_or_default();
    Ok(dnsmasq::parse_leases(&text)
        .into_iter()
        .map(|l| DhcpLease {
            is_static: r.hosts.iter().any(|h| h.mac == l.mac),
            mac: l.mac,
            ip: l.ip.to_string(),
            hostname: l.hostname,
            expires_unix: l.expires_unix,
            client_id: l.client_id,
        })
        .collect())
}

/// Releases the leases of a MAC or an address: dnsmasq stops, the lines go, it starts again.
pub async fn release(d: &Dhcp, store: &Store, interface: &str, key: &str) -> ApiResult<()> {
    rec(store, interface)?;
    if key.parse::<Ipv4Addr>().is_err() && model::parse_mac("key", key).is_err() {
        return Err(ApiError::not_found(format!("no lease {key:?}")));
    }
    let files = d.files(interface);
    let text = std::fs::read_to_string(files.leases()).unwrap_or_default();
    if dnsmasq::without_lease(&text, key).is_none() {
        return Err(ApiError::not_found(format!("no lease {key:?} on {interface:?}")));
    }
    d.stop(interface).await;
    // Read again: dnsmasq may have written the file until it stopped.
    let text = std::fs::read_to_string(files.leases()).unwrap_or_default();
    let result = match dnsmasq::without_lease(&text, key) {
        Some(rest) => hostplane_host::fsutil::write_atomic(&files.leases(), rest.as_bytes(), 0o600)
            .map_err(ApiError::internal),
        None => Ok(()),
    };
    d.start(interface);
    d.wait_running(interface).await;
    result
}

/// Names of the bridges that have a DHCP server (they are in use).
pub fn interfaces(store: &Store) -> ApiResult<Vec<String>> {
    Ok(model::load::<DhcpRec>(store, KIND_DHCP)?
        .into_iter()
        .map(|r| r.interface)
        .collect())
}

/// Writes every stored server's files again and starts it (daemon start).
pub async fn reconcile(d: &Dhcp, store: &Store) -> ApiResult<()> {
    for r in model::load::<DhcpRec>(store, KIND_DHCP)? {
        let files = d.files(&r.interface);
        if let Err(e) = dnsmasq::write_and_check(&config(&r), &hosts(&r), &files).await {
            tracing::warn!(interface = %r.interface, error = %e, "DHCP server not started");
            continue;
        }
        d.start(&r.interface);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: &str, end: &str) -> DhcpServerCreate {
        DhcpServerCreate {
            interface: "br0".into(),
            range_start: start.into(),
            range_end: end.into(),
            router: Some("10.0.0.1".into()),
            dns: vec![],
            lease_time_s: None,
        }
    }

    #[test]
    fn ranges_are_checked_against_the_subnet_and_each_other() {
        let addrs = [("10.0.0.1".parse().unwrap(), 24)];
        let r = check_server(&req("10.0.0.100", "10.0.0.200"), &addrs, &[]).unwrap();
        assert_eq!(r.prefix_len, 24);
        assert_eq!(r.lease_time_s, 3600);
        let code = |q, others: &[DhcpRec]| check_server(&q, &addrs, others).unwrap_err().code();
        assert_eq!(code(req("10.0.1.100", "10.0.1.200"), &[]), "dhcp_range_outside_subnet");
        assert_eq!(code(req("10.0.0.100", "10.0.1.2"), &[]), "dhcp_range_outside_subnet");
        assert_eq!(code(req("10.0.0.200", "10.0.0.100"), &[]), "invalid_dhcp_range");
        assert_eq!(code(req("10.0.0.100", "10.0.0.255"), &[]), "dhcp_range_outside_subnet");
        assert_eq!(code(req("10.0.0.x", "10.0.0.2"), &[]), "invalid_address");
        let mut other = r.clone();
        other.interface = "br1".into();
        assert_eq!(code(req("10.0.0.150", "10.0.0.250"), &[other.clone()]), "dhcp_range_overlap");
        assert!(check_server(&req("10.0.0.201", "10.0.0.250"), &addrs, &[other]).is_ok());
        let mut q = req("10.0.0.100", "10.0.0.200");
        q.router = Some("192.0.2.1".into());
        assert_eq!(code(q, &[]), "dhcp_router_outside_subnet");
        let mut q = req("10.0.0.100", "10.0.0.200");
        q.lease_time_s = Some(5);
        assert_eq!(code(q, &[]), "invalid_lease_time");
    }
}
