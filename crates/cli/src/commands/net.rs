//! `net interfaces|bridges|addresses|routes|nat|forwards|dhcp|host ...` over `/api/v1/network`
//! (`host` is in [`super::net_host`]).
//!
//! [`NetCmd`] has one variant per resource; each resource has its own small subcommand enum
//! and runner, so another resource (host settings) is one more variant and one more runner.

use hostplane_types::network::{
    Address, Bridge, DhcpLease, DhcpServer, ForwardPort, ForwardProtocol, Interface, NatRule,
    PortForward, Route,
};
use hyper::Method;
use serde_json::json;

use super::common::{self, ListArgs, YesArg};
use super::{Ctx, api};
use crate::client::seg;
use crate::output::{self, opt};

#[derive(Debug, clap::Subcommand)]
pub enum NetCmd {
    /// Links: list, show.
    #[command(subcommand, visible_alias = "interface")]
    Interfaces(InterfacesCmd),
    /// Bridges: list, show, create, delete, add-port, remove-port.
    #[command(subcommand, visible_alias = "bridge")]
    Bridges(BridgesCmd),
    /// IP addresses: list, add, delete.
    #[command(subcommand, visible_alias = "address")]
    Addresses(AddressesCmd),
    /// Routes of the main table: list, add, delete.
    #[command(subcommand, visible_alias = "route")]
    Routes(RoutesCmd),
    /// Masquerade rules: list, add, delete.
    #[command(subcommand)]
    Nat(NatCmd),
    /// Port forwards: list, add, delete.
    #[command(subcommand, visible_alias = "forward")]
    Forwards(ForwardsCmd),
    /// DHCP servers on bridges: list, show, create, delete, host-add, host-remove, leases, release.
    #[command(subcommand)]
    Dhcp(DhcpCmd),
    /// Host management settings with confirm-or-rollback: show, set, confirm, rollback,
    /// status, changes.
    #[command(subcommand)]
    Host(super::net_host::HostCmd),
}

#[derive(Debug, clap::Subcommand)]
pub enum InterfacesCmd {
    /// List every link.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one link.
    Show { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum BridgesCmd {
    /// List bridges.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one bridge.
    Show { name: String },
    /// Create a bridge (no ports: an etherstub).
    Create {
        name: String,
        /// A link to attach (repeatable).
        #[arg(long = "port", value_name = "IF")]
        ports: Vec<String>,
        /// Spanning tree on.
        #[arg(long)]
        stp: bool,
        /// STP forward delay in seconds (2–30; default: the kernel's 15).
        #[arg(long, value_name = "SECONDS")]
        forward_delay: Option<u8>,
    },
    /// Delete a bridge hostplane manages.
    Delete {
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
    /// Attach a link to a bridge.
    AddPort { bridge: String, interface: String },
    /// Release a port from a bridge.
    RemovePort { bridge: String, interface: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum AddressesCmd {
    /// List every address.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Add an address, e.g. `add br0 10.0.0.1/24`.
    Add { interface: String, cidr: String },
    /// Remove an address hostplane added (by its id from `list`).
    Delete { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum RoutesCmd {
    /// List the routes of the main table.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Add a route, e.g. `add 10.20.0.0/16 --via 192.0.2.1`.
    Add {
        /// Destination CIDR (`0.0.0.0/0` for a default route).
        destination: String,
        /// Gateway.
        #[arg(long, value_name = "IP")]
        via: Option<String>,
        /// Interface.
        #[arg(long, value_name = "IF")]
        dev: Option<String>,
        #[arg(long, default_value_t = 0)]
        metric: u32,
    },
    /// Remove a route hostplane added (by its id from `list`).
    Delete { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum NatCmd {
    /// List masquerade rules.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Masquerade a source network out of an interface.
    Add {
        /// IPv4 CIDR, e.g. 10.10.0.0/24.
        #[arg(long)]
        source: String,
        /// The interface traffic leaves through.
        #[arg(long = "out", value_name = "IF")]
        out_interface: String,
    },
    /// Remove a rule.
    Delete { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum ForwardsCmd {
    /// List port forwards.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Forward ports, e.g. `add 192.0.2.10 tcp:8080:10.0.0.5:80 udp:53:10.0.0.5`.
    Add {
        /// The IPv4 address the ports are reached on.
        listen_address: String,
        /// PROTO:LISTEN_PORT:TARGET_ADDRESS[:TARGET_PORT], one or more.
        #[arg(required = true, value_parser = parse_port)]
        ports: Vec<ForwardPort>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a port forward.
    Delete { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum DhcpCmd {
    /// List DHCP servers.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show the server on a bridge.
    Show { interface: String },
    /// Start a DHCP server on a managed bridge, e.g. `create br0 10.0.0.100 10.0.0.200`.
    Create {
        interface: String,
        range_start: String,
        range_end: String,
        /// Gateway handed out.
        #[arg(long, value_name = "IP")]
        router: Option<String>,
        /// DNS server handed out (repeatable).
        #[arg(long, value_name = "IP")]
        dns: Vec<String>,
        /// Lease time in seconds (120–31536000; default 3600).
        #[arg(long, value_name = "SECS")]
        lease_time: Option<u32>,
    },
    /// Stop and remove the server on a bridge.
    Delete {
        interface: String,
        #[command(flatten)]
        yes: YesArg,
    },
    /// Add a static host: this MAC always gets this address.
    HostAdd {
        interface: String,
        mac: String,
        ip: String,
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Remove a static host.
    HostRemove { interface: String, mac: String },
    /// List the leases.
    Leases { interface: String },
    /// Release the lease of a MAC or an address.
    Release { interface: String, key: String },
}

fn parse_port(s: &str) -> Result<ForwardPort, String> {
    let f: Vec<&str> = s.split(':').collect();
    let bad = || format!("{s:?}: expected PROTO:LISTEN_PORT:TARGET_ADDRESS[:TARGET_PORT]");
    if !(3..=4).contains(&f.len()) {
        return Err(bad());
    }
    let protocol = match f[0] {
        "tcp" => ForwardProtocol::Tcp,
        "udp" => ForwardProtocol::Udp,
        _ => return Err(bad()),
    };
    Ok(ForwardPort {
        protocol,
        listen_port: f[1].parse().map_err(|_| bad())?,
        target_address: f[2].to_string(),
        target_port: match f.get(3) {
            Some(p) => Some(p.parse().map_err(|_| bad())?),
            None => None,
        },
    })
}

fn net(rest: &str) -> String {
    api(&format!("/network{rest}"))
}

/// POSTs `body` and prints the created object as KEY VALUE rows.
async fn post<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    path: &str,
    body: serde_json::Value,
    rows: impl FnOnce(T) -> Vec<(&'static str, String)>,
) -> anyhow::Result<i32> {
    let answer = ctx.client.call(Method::POST, path, Some(&body)).await?;
    common::print_answer(ctx, &answer, |v: T| {
        Ok(output::print_table(output::fields(rows(v)))?)
    })
}

pub async fn run(ctx: &Ctx, cmd: NetCmd) -> anyhow::Result<i32> {
    match cmd {
        NetCmd::Interfaces(c) => interfaces(ctx, c).await,
        NetCmd::Bridges(c) => bridges(ctx, c).await,
        NetCmd::Addresses(c) => addresses(ctx, c).await,
        NetCmd::Routes(c) => routes(ctx, c).await,
        NetCmd::Nat(c) => nat(ctx, c).await,
        NetCmd::Forwards(c) => forwards(ctx, c).await,
        NetCmd::Dhcp(c) => dhcp(ctx, c).await,
        NetCmd::Host(c) => super::net_host::run(ctx, c).await,
    }
}

fn interface_rows(i: Interface) -> Vec<(&'static str, String)> {
    vec![
        ("NAME", i.name),
        ("KIND", i.kind),
        ("STATE", i.state),
        ("MTU", i.mtu.to_string()),
        ("MAC", opt(i.mac)),
        (
            "ADDRESSES",
            i.addresses
                .into_iter()
                .map(|a| a.address)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("MASTER", opt(i.master)),
        ("PORTS", i.ports.join(" ")),
        ("MANAGED-BY", format!("{:?}", i.managed_by).to_lowercase()),
        ("DESCRIPTION", opt(i.description)),
    ]
}

async fn interfaces(ctx: &Ctx, c: InterfacesCmd) -> anyhow::Result<i32> {
    match c {
        InterfacesCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/interfaces")),
                &[
                    "NAME",
                    "KIND",
                    "STATE",
                    "MTU",
                    "ADDRESSES",
                    "MASTER",
                    "MANAGED-BY",
                ],
                |i: Interface| {
                    vec![
                        i.name,
                        i.kind,
                        i.state,
                        i.mtu.to_string(),
                        i.addresses
                            .into_iter()
                            .map(|a| a.address)
                            .collect::<Vec<_>>()
                            .join(" "),
                        opt(i.master),
                        format!("{:?}", i.managed_by).to_lowercase(),
                    ]
                },
            )
            .await
        }
        InterfacesCmd::Show { name } => {
            common::show(
                ctx,
                &net(&format!("/interfaces/{}", seg(&name))),
                interface_rows,
            )
            .await
        }
    }
}

fn bridge_rows(b: Bridge) -> Vec<(&'static str, String)> {
    vec![
        ("NAME", b.name),
        ("STATE", b.state),
        ("STP", b.stp.to_string()),
        (
            "Forward delay",
            b.forward_delay_s
                .map(|s| format!("{s} s"))
                .unwrap_or_else(|| "-".into()),
        ),
        ("MTU", b.mtu.to_string()),
        ("PORTS", b.ports.join(" ")),
        ("MISSING-PORTS", b.missing_ports.join(" ")),
        ("MANAGED-BY", format!("{:?}", b.managed_by).to_lowercase()),
    ]
}

async fn bridges(ctx: &Ctx, c: BridgesCmd) -> anyhow::Result<i32> {
    let path = |n: &str| net(&format!("/bridges/{}", seg(n)));
    match c {
        BridgesCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/bridges")),
                &["NAME", "STATE", "STP", "PORTS", "MANAGED-BY"],
                |b: Bridge| {
                    vec![
                        b.name,
                        b.state,
                        b.stp.to_string(),
                        b.ports.join(" "),
                        format!("{:?}", b.managed_by).to_lowercase(),
                    ]
                },
            )
            .await
        }
        BridgesCmd::Show { name } => common::show(ctx, &path(&name), bridge_rows).await,
        BridgesCmd::Create {
            name,
            ports,
            stp,
            forward_delay,
        } => {
            let body =
                json!({"name": name, "ports": ports, "stp": stp, "forward_delay_s": forward_delay});
            post(ctx, &net("/bridges"), body, bridge_rows).await
        }
        BridgesCmd::Delete { name, yes } => {
            common::confirm(&yes, &format!("delete bridge {name}"), &name)?;
            common::done(
                ctx,
                Method::DELETE,
                &path(&name),
                &format!("bridge {name} deleted"),
            )
            .await
        }
        BridgesCmd::AddPort { bridge, interface } => {
            let body = json!({"interface": interface});
            post(ctx, &format!("{}/ports", path(&bridge)), body, bridge_rows).await
        }
        BridgesCmd::RemovePort { bridge, interface } => {
            let p = format!("{}/ports/{}", path(&bridge), seg(&interface));
            common::done(
                ctx,
                Method::DELETE,
                &p,
                &format!("{interface} released from {bridge}"),
            )
            .await
        }
    }
}

async fn addresses(ctx: &Ctx, c: AddressesCmd) -> anyhow::Result<i32> {
    let rows = |a: Address| {
        vec![
            ("ID", a.id),
            ("INTERFACE", a.interface),
            ("ADDRESS", a.address),
            ("MANAGED-BY", format!("{:?}", a.managed_by).to_lowercase()),
        ]
    };
    match c {
        AddressesCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/addresses")),
                &["ID", "INTERFACE", "ADDRESS", "MANAGED-BY"],
                |a: Address| rows(a).into_iter().map(|(_, v)| v).collect(),
            )
            .await
        }
        AddressesCmd::Add { interface, cidr } => {
            post(
                ctx,
                &net("/addresses"),
                json!({"interface": interface, "address": cidr}),
                rows,
            )
            .await
        }
        AddressesCmd::Delete { id } => {
            let p = net(&format!("/addresses/{}", seg(&id)));
            common::done(ctx, Method::DELETE, &p, &format!("address {id} removed")).await
        }
    }
}

async fn routes(ctx: &Ctx, c: RoutesCmd) -> anyhow::Result<i32> {
    let rows = |r: Route| {
        vec![
            ("ID", r.id),
            ("DESTINATION", r.destination),
            ("GATEWAY", opt(r.gateway)),
            ("INTERFACE", opt(r.interface)),
            ("METRIC", r.metric.to_string()),
            ("PROTOCOL", r.protocol),
            ("MANAGED-BY", format!("{:?}", r.managed_by).to_lowercase()),
        ]
    };
    match c {
        RoutesCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/routes")),
                &[
                    "ID",
                    "DESTINATION",
                    "GATEWAY",
                    "INTERFACE",
                    "METRIC",
                    "PROTOCOL",
                    "MANAGED-BY",
                ],
                |r: Route| rows(r).into_iter().map(|(_, v)| v).collect(),
            )
            .await
        }
        RoutesCmd::Add {
            destination,
            via,
            dev,
            metric,
        } => {
            let body = json!({"destination": destination, "gateway": via, "interface": dev, "metric": metric});
            post(ctx, &net("/routes"), body, rows).await
        }
        RoutesCmd::Delete { id } => {
            let p = net(&format!("/routes/{}", seg(&id)));
            common::done(ctx, Method::DELETE, &p, &format!("route {id} removed")).await
        }
    }
}

async fn nat(ctx: &Ctx, c: NatCmd) -> anyhow::Result<i32> {
    let rows = |n: NatRule| {
        vec![
            ("ID", n.id),
            ("SOURCE", n.source),
            ("OUT-INTERFACE", n.out_interface),
        ]
    };
    match c {
        NatCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/nat-rules")),
                &["ID", "SOURCE", "OUT-INTERFACE"],
                |n: NatRule| rows(n).into_iter().map(|(_, v)| v).collect(),
            )
            .await
        }
        NatCmd::Add {
            source,
            out_interface,
        } => {
            let body =
                json!({"type": "masquerade", "source": source, "out_interface": out_interface});
            post(ctx, &net("/nat-rules"), body, rows).await
        }
        NatCmd::Delete { id } => {
            let p = net(&format!("/nat-rules/{}", seg(&id)));
            common::done(ctx, Method::DELETE, &p, &format!("NAT rule {id} removed")).await
        }
    }
}

fn ports_text(ports: &[ForwardPort]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}→{}:{}",
                if p.protocol == ForwardProtocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                },
                p.listen_port,
                p.target_address,
                p.target_port.unwrap_or(p.listen_port)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn forwards(ctx: &Ctx, c: ForwardsCmd) -> anyhow::Result<i32> {
    let rows = |f: PortForward| {
        vec![
            ("ID", f.id),
            ("LISTEN", f.listen_address),
            ("PORTS", ports_text(&f.ports)),
            ("DESCRIPTION", opt(f.description)),
        ]
    };
    match c {
        ForwardsCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/port-forwards")),
                &["ID", "LISTEN", "PORTS", "DESCRIPTION"],
                |f: PortForward| rows(f).into_iter().map(|(_, v)| v).collect(),
            )
            .await
        }
        ForwardsCmd::Add {
            listen_address,
            ports,
            description,
        } => {
            let body = json!({"listen_address": listen_address, "ports": ports, "description": description});
            post(ctx, &net("/port-forwards"), body, rows).await
        }
        ForwardsCmd::Delete { id } => {
            let p = net(&format!("/port-forwards/{}", seg(&id)));
            common::done(
                ctx,
                Method::DELETE,
                &p,
                &format!("port forward {id} removed"),
            )
            .await
        }
    }
}

fn dhcp_rows(s: DhcpServer) -> Vec<(&'static str, String)> {
    vec![
        ("INTERFACE", s.interface),
        ("RANGE", format!("{}–{}", s.range_start, s.range_end)),
        ("ROUTER", opt(s.router)),
        ("DNS", s.dns.join(" ")),
        ("LEASE-TIME", format!("{} s", s.lease_time_s)),
        ("STATE", s.state),
        ("PID", opt(s.pid)),
        (
            "HOSTS",
            s.hosts
                .iter()
                .map(|h| format!("{}={}", h.mac, h.ip))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

async fn dhcp(ctx: &Ctx, c: DhcpCmd) -> anyhow::Result<i32> {
    let path = |i: &str| net(&format!("/dhcp-servers/{}", seg(i)));
    match c {
        DhcpCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&net("/dhcp-servers")),
                &["INTERFACE", "RANGE", "ROUTER", "STATE", "HOSTS"],
                |s: DhcpServer| {
                    vec![
                        s.interface,
                        format!("{}–{}", s.range_start, s.range_end),
                        opt(s.router),
                        s.state,
                        s.hosts.len().to_string(),
                    ]
                },
            )
            .await
        }
        DhcpCmd::Show { interface } => common::show(ctx, &path(&interface), dhcp_rows).await,
        DhcpCmd::Create {
            interface,
            range_start,
            range_end,
            router,
            dns,
            lease_time,
        } => {
            let body = json!({"interface": interface, "range_start": range_start,
                "range_end": range_end, "router": router, "dns": dns, "lease_time_s": lease_time});
            post(ctx, &net("/dhcp-servers"), body, dhcp_rows).await
        }
        DhcpCmd::Delete { interface, yes } => {
            common::confirm(
                &yes,
                &format!("remove the DHCP server on {interface} and its leases"),
                &interface,
            )?;
            let line = format!("DHCP server on {interface} removed");
            common::done(ctx, Method::DELETE, &path(&interface), &line).await
        }
        DhcpCmd::HostAdd {
            interface,
            mac,
            ip,
            hostname,
        } => {
            let body = json!({"mac": mac, "ip": ip, "hostname": hostname});
            post(ctx, &format!("{}/hosts", path(&interface)), body, dhcp_rows).await
        }
        DhcpCmd::HostRemove { interface, mac } => {
            let p = format!("{}/hosts/{}", path(&interface), seg(&mac));
            common::done(
                ctx,
                Method::DELETE,
                &p,
                &format!("static host {mac} removed"),
            )
            .await
        }
        DhcpCmd::Leases { interface } => {
            common::list(
                ctx,
                &format!("{}/leases", path(&interface)),
                &["IP", "MAC", "HOSTNAME", "EXPIRES", "STATIC"],
                |l: DhcpLease| {
                    vec![
                        l.ip,
                        l.mac,
                        opt(l.hostname),
                        l.expires_unix.to_string(),
                        l.is_static.to_string(),
                    ]
                },
            )
            .await
        }
        DhcpCmd::Release { interface, key } => {
            let p = format!("{}/leases/{}", path(&interface), seg(&key));
            common::done(ctx, Method::DELETE, &p, &format!("lease {key} released")).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_ports_parse() {
        let p = parse_port("tcp:8080:10.0.0.5:80").unwrap();
        assert_eq!(p.listen_port, 8080);
        assert_eq!(p.target_port, Some(80));
        assert_eq!(parse_port("udp:53:10.0.0.5").unwrap().target_port, None);
        for bad in [
            "tcp:8080",
            "icmp:1:10.0.0.1",
            "tcp:x:10.0.0.1",
            "tcp:1:a:b:c",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
