//! Who uses a network link (a managed bridge): the registry the network area asks before a
//! bridge goes away, without naming the areas that attach to it.
//!
//! Flow: each consumer area's `init` hook adds its [`LinkUser`] to `Services::link_users`
//! (VMs today: a NIC in bridge mode names its bridge; containers next). Before deleting a
//! bridge the network area calls [`LinkUsers::refuse`]: when anything names the bridge the
//! answer is 409 `bridge_in_use`, naming every user.

use std::sync::{Arc, RwLock};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One object attached to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkUse {
    /// `vm`, `container`, `dhcp-server`, …
    pub kind: String,
    pub name: String,
    pub href: String,
}

/// An area whose objects attach to links by name.
pub trait LinkUser: Send + Sync {
    /// This area's objects that name `link`.
    fn uses(&self, state: &AppState, link: &str) -> ApiResult<Vec<LinkUse>>;
}

/// The registered users (platform state: `Services::link_users`).
#[derive(Default)]
pub struct LinkUsers(RwLock<Vec<Arc<dyn LinkUser>>>);

impl LinkUsers {
    /// Called from an area's `init` hook.
    pub fn register(&self, user: Arc<dyn LinkUser>) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).push(user);
    }

    /// Everything that names `link`, of every area.
    pub fn uses(&self, state: &AppState, link: &str) -> ApiResult<Vec<LinkUse>> {
        let all = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        for u in all {
            out.extend(u.uses(state, link)?);
        }
        Ok(out)
    }

    /// 409 `bridge_in_use` naming the users of `link`, or Ok when nothing uses it.
    pub fn refuse(&self, state: &AppState, link: &str) -> ApiResult<()> {
        refusal(link, self.uses(state, link)?)
    }
}

/// The answer to deleting `link` given what uses it.
pub fn refusal(link: &str, uses: Vec<LinkUse>) -> ApiResult<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = uses
        .iter()
        .map(|u| format!("{} {} ({})", u.kind, u.name, u.href))
        .collect();
    Err(ApiError::conflict(
        "bridge_in_use",
        format!(
            "bridge {link:?} is used by {}; detach or delete them first",
            names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_user() {
        assert!(refusal("br0", vec![]).is_ok());
        let e = refusal(
            "br0",
            vec![LinkUse {
                kind: "vm".into(),
                name: "web".into(),
                href: "/api/v1/vms/1".into(),
            }],
        )
        .unwrap_err();
        assert_eq!(e.code(), "bridge_in_use");
        assert!(e.to_string().contains("vm web (/api/v1/vms/1)"), "{e}");
    }
}
