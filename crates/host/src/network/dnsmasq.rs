//! dnsmasq (from `dnsmasq-base`) as a DHCP server on one bridge: its configuration and static
//! hosts rendered from checked values, written atomically, checked with `dnsmasq --test`
//! before it goes live; its lease file parsed. Starting and supervising the process is the
//! caller's ([`command`] gives the argv for `Cmd::spawn`).
//!
//! DNS is off (`port=0`); dnsmasq binds the bridge only (`bind-interfaces`) and reads no
//! system file (`--conf-file` names ours, `no-resolv`, `no-hosts`). It keeps running as root
//! (`user=root`): its files live under the daemon's private data dir.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{Cmd, CommandError};

/// A checked DHCP server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpConfig {
    /// A checked interface name.
    pub interface: String,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_time_s: u32,
}

/// A checked static host (MAC lower-case `aa:bb:…`, hostname of letters, digits and `-`).
#[derive(Debug, Clone, PartialEq)]
pub struct StaticHost {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

/// One line of the lease file: `expiry mac ip hostname clientid`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub expires_unix: u64,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
}

/// The files of one server, all under `dir`.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    pub fn conf(&self) -> PathBuf {
        self.dir.join("dnsmasq.conf")
    }
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn hosts(&self) -> PathBuf {
        self.hosts_dir().join("hosts")
    }
    pub fn leases(&self) -> PathBuf {
        self.dir.join("leases")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("dnsmasq.pid")
    }
}

/// The configuration file's text.
pub fn render_conf(c: &DhcpConfig, f: &Files) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line("# Written by hostplane; changes here are overwritten.".into());
    line("port=0".into());
    line(format!("interface={}", c.interface));
    line("bind-interfaces".into());
    line("no-resolv".into());
    line("no-hosts".into());
    line("dhcp-authoritative".into());
    line("user=root".into());
    line(format!("pid-file={}", f.pid_file().display()));
    line(format!(
        "dhcp-range={},{},{},{}s",
        c.range_start, c.range_end, c.netmask, c.lease_time_s
    ));
    match c.router {
        Some(r) => line(format!("dhcp-option=option:router,{r}")),
        None => line("dhcp-option=option:router".into()),
    }
    if !c.dns.is_empty() {
        let d: Vec<String> = c.dns.iter().map(|d| d.to_string()).collect();
        line(format!("dhcp-option=option:dns-server,{}", d.join(",")));
    }
    line(format!("dhcp-hostsdir={}", f.hosts_dir().display()));
    line(format!("dhcp-leasefile={}", f.leases().display()));
    s
}

/// The static hosts file's text (`dhcp-host` lines).
pub fn render_hosts(hosts: &[StaticHost]) -> String {
    hosts
        .iter()
        .map(|h| match &h.hostname {
            Some(n) => format!("{},{},{}\n", h.mac, h.ip, n),
            None => format!("{},{}\n", h.mac, h.ip),
        })
        .collect()
}

/// Parses the lease file; lines that do not parse (the `duid` line of DHCPv6) are skipped.
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            let opt = |s: &str| (s != "*").then(|| s.to_string());
            Some(Lease {
                expires_unix: f[0].parse().ok()?,
                mac: f[1].to_ascii_lowercase(),
                ip: f[2].parse().ok()?,
                hostname: opt(f[3]),
                client_id: f.get(4).and_then(|c| opt(c)),
            })
        })
        .collect()
}

/// Removes the leases of `mac` or `ip` from the file's text; `None` when none matched.
pub fn without_lease(text: &str, key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    let mut hit = false;
    let kept: String = text
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let m = f.len() >= 3 && (f[1].eq_ignore_ascii_case(&key) || f[2] == key);
            hit |= m;
            !m
        })
        .map(|l| format!("{l}\n"))
        .collect();
    hit.then_some(kept)
}

/// Writes the configuration and hosts files (atomically) and checks them with
/// `dnsmasq --test`; on a failed check the files written are the caller's to restore.
pub async fn write_and_check(
    c: &DhcpConfig,
    hosts: &[StaticHost],
    f: &Files,
) -> Result<(), CommandError> {
    let io = |e: std::io::Error| CommandError::invalid(format!("writing dnsmasq files: {e}"));
    std::fs::create_dir_all(f.hosts_dir()).map_err(io)?;
    write_hosts(hosts, f).map_err(io)?;
    let conf = f.conf();
    let tmp = f.dir.join("dnsmasq.conf.check");
    std::fs::write(&tmp, render_conf(c, f)).map_err(io)?;
    let checked = check(&tmp).await;
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &conf).map_err(io)?;
    Ok(())
}

/// Writes the hosts file atomically (dnsmasq picks up the new file by inotify).
pub fn write_hosts(hosts: &[StaticHost], f: &Files) -> std::io::Result<()> {
    std::fs::create_dir_all(f.hosts_dir())?;
    crate::fsutil::write_atomic(&f.hosts(), render_hosts(hosts).as_bytes(), 0o600)
}

/// `dnsmasq --test --conf-file=PATH`.
pub async fn check(conf: &Path) -> Result<(), CommandError> {
    Cmd::new("dnsmasq")
        .arg("--test")
        .arg(format!("--conf-file={}", conf.display()))
        .timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok(())
}

/// The long-running server: `dnsmasq --keep-in-foreground --conf-file=PATH`.
pub fn command(f: &Files) -> Cmd {
    Cmd::new("dnsmasq")
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", f.conf().display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_and_hosts() {
        let f = Files { dir: "/d".into() };
        let c = DhcpConfig {
            interface: "br0".into(),
            range_start: "10.0.0.100".parse().unwrap(),
            range_end: "10.0.0.200".parse().unwrap(),
            netmask: "255.255.255.0".parse().unwrap(),
            router: Some("10.0.0.1".parse().unwrap()),
            dns: vec!["1.1.1.1".parse().unwrap(), "9.9.9.9".parse().unwrap()],
            lease_time_s: 3600,
        };
        let s = render_conf(&c, &f);
        assert!(s.contains("\nport=0\n"));
        assert!(s.contains("dhcp-range=10.0.0.100,10.0.0.200,255.255.255.0,3600s\n"));
        assert!(s.contains("dhcp-option=option:dns-server,1.1.1.1,9.9.9.9\n"));
        assert!(s.contains("dhcp-hostsdir=/d/hosts\n"));
        let h = render_hosts(&[
            StaticHost {
                mac: "02:00:00:00:00:01".into(),
                ip: "10.0.0.5".parse().unwrap(),
                hostname: Some("a".into()),
            },
            StaticHost {
                mac: "02:00:00:00:00:02".into(),
                ip: "10.0.0.6".parse().unwrap(),
                hostname: None,
            },
        ]);
        assert_eq!(
            h,
            "02:00:00:00:00:01,10.0.0.5,a\n02:00:00:00:00:02,10.0.0.6\n"
        );
    }

    #[test]
    fn leases() {
        let t = "1765000000 02:aa:00:00:00:01 10.0.0.150 client1 01:02:aa:00:00:00:01\n\
                 0 02:AA:00:00:00:02 10.0.0.5 * *\nduid 00:01\n";
        let l = parse_leases(t);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].hostname.as_deref(), Some("client1"));
        assert_eq!(l[1].mac, "02:aa:00:00:00:02");
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[1].client_id, None);
        let rest = without_lease(t, "10.0.0.150").unwrap();
        assert!(!rest.contains("10.0.0.150") && rest.contains("10.0.0.5"));
        assert!(without_lease(t, "02:aa:00:00:00:02").is_some());
        assert!(without_lease(t, "10.9.9.9").is_none());
    }
}
