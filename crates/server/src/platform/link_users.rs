//! Who uses a network link (a managed bridge): the registry the network area asks before a
//! bridge goes away, without naming the areas that attach to it.
//!
//! Flow: each consumer area's `init` hook adds its [`LinkUser`] to `Services::link_users`
//! (VMs: a NIC in bridge mode names its bridge; containers: an engine network bound to the
//! bridge and the containers attached to it). Before deleting a bridge the network area calls
//! [`LinkUsers::refuse`] (or [`LinkUsers::uses`] then [`refusal`]): when anything names the
//! bridge the answer is 409 `bridge_in_use`, naming every user. Asking is async: the
//! containers' answer comes from the engines over their sockets.

use std::future::Future;
use std::pin::Pin;
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

/// The future of one area's answer (boxed: the registry holds `dyn LinkUser`).
pub type Uses<'a> = Pin<Box<dyn Future<Output = ApiResult<Vec<LinkUse>>> + Send + 'a>>;

/// An area whose objects attach to links by name.
pub trait LinkUser: Send + Sync {
    /// This area's objects that name `link`.
    fn uses<'a>(&'a self, state: &'a AppState, link: &'a str) -> Uses<'a>;
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
    /// The areas are asked concurrently (the engines answer in parallel with the store).
    pub async fn uses(&self, state: &AppState, link: &str) -> ApiResult<Vec<LinkUse>> {
        let all = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        let answers = futures_util::future::join_all(all.iter().map(|u| u.uses(state, link))).await;
        let mut out = Vec::new();
        for a in answers {
            out.extend(a?);
        }
        Ok(out)
    }

    /// 409 `bridge_in_use` naming the users of `link`, or Ok when nothing uses it.
    pub async fn refuse(&self, state: &AppState, link: &str) -> ApiResult<()> {
        refusal(link, self.uses(state, link).await?)
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
