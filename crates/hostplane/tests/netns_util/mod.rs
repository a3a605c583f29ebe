//! Throwaway network namespaces for tests: `ip netns add` on creation, `ip netns del` on drop
//! (also on panic). Every link, address and nftables rule a network test makes lives inside
//! one of these; nothing here ever names the host's own namespace.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct NetNs {
    pub name: String,
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (package iproute2/nftables) must be installed: {e}"))
}

impl NetNs {
    /// A new namespace with its loopback up (the daemon listens on 127.0.0.1 inside it).
    pub fn new() -> NetNs {
        let name = format!(
            "hpt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = run("ip", &["netns", "add", &name]);
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`; panics when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_ip(args);
        assert!(ok, "ip -n {} {args:?}: {out}", self.name);
        out
    }

    /// `ip -n NS ARGS...`: (success, stdout or stderr).
    pub fn try_ip(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        let out = run("ip", &a);
        let text = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        (out.status.success(), text)
    }

    /// `ip -n NS -j ARGS...` parsed.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ip(&a)).unwrap()
    }

    /// `nft ARGS...` inside the namespace: (success, stdout or stderr).
    pub fn nft(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["netns", "exec", self.name.as_str(), "nft"];
        a.extend_from_slice(args);
        let out = run("ip", &a);
        let text = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        (out.status.success(), text)
    }

    /// Link names in the namespace.
    pub fn links(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ip_json(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// `ADDRESS/PREFIX` of every address in the namespace.
    pub fn addresses(&self) -> Vec<String> {
        let mut v = Vec::new();
        for l in self.ip_json(&["addr", "show"]).as_array().unwrap() {
            for a in l["addr_info"].as_array().into_iter().flatten() {
                v.push(format!(
                    "{}/{}",
                    a["local"].as_str().unwrap(),
                    a["prefixlen"]
                ));
            }
        }
        v.sort();
        v
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// The real daemon started inside `ns` (`ip netns exec NS hostplane serve ...`, sandboxed, on
/// the namespace's loopback); the test talks to it over its unix socket, which the namespace
/// does not fence. Killed when the guard drops, also on panic.
pub fn daemon_in(ns: &NetNs) -> crate::common::Daemon {
    daemon_in_with(ns, &[])
}

/// [`daemon_in`] with extra `serve` arguments (e.g. `--listen 0.0.0.0:PORT` to be reachable
/// from another namespace over TCP).
pub fn daemon_in_with(ns: &NetNs, extra_args: &[&str]) -> crate::common::Daemon {
    crate::common::Daemon::start_with(crate::common::Opts {
        netns: Some(ns.name.clone()),
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..crate::common::Opts::default()
    })
}
