//! Host facts for the debug bundle: the output of a few read-only programs (`uname -a`,
//! `lsblk -J -O`, `ip -j addr show`, `ip -j route show`), each run through the command runner
//! with a 15-second timeout.

use std::time::Duration;

use crate::command::{Cmd, CommandError};

/// Time each fact-gathering command may take.
pub const FACT_TIMEOUT: Duration = Duration::from_secs(15);

/// A fact the debug bundle collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFact {
    /// `uname -a`
    Uname,
    /// `lsblk -J -O` (JSON)
    Lsblk,
    /// `ip -j addr show` (JSON)
    IpAddr,
    /// `ip -j route show` (JSON)
    IpRoute,
}

impl HostFact {
    /// Program and arguments.
    pub fn argv(self) -> (&'static str, &'static [&'static str]) {
        match self {
            HostFact::Uname => ("uname", &["-a"]),
            HostFact::Lsblk => ("lsblk", &["-J", "-O"]),
            HostFact::IpAddr => ("ip", &["-j", "addr", "show"]),
            HostFact::IpRoute => ("ip", &["-j", "route", "show"]),
        }
    }

    /// `program arg…`, for messages.
    pub fn shown(self) -> String {
        let (program, args) = self.argv();
        format!("{program} {}", args.join(" "))
    }
}

/// Runs the fact's program and returns its stdout.
pub async fn collect(fact: HostFact) -> Result<String, CommandError> {
    let (program, args) = fact.argv();
    Cmd::new(program)
        .args(args)
        .timeout(FACT_TIMEOUT)
        .run_text()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uname_is_collected() {
        assert_eq!(HostFact::IpRoute.shown(), "ip -j route show");
        let out = collect(HostFact::Uname).await.unwrap();
        assert!(out.starts_with("Linux"), "{out}");
    }
}
