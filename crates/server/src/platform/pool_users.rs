//! Who uses a pool or a dataset: the registry the pools area asks before a pool or dataset
//! goes away or moves, and tells after it moved, without naming the areas that use it.
//!
//! Flow: each consumer area's `init` hook adds its [`PoolUser`] to `Services::pool_users`
//! (shares and vms today; containers and LXC root filesystems next). Before destroying,
//! exporting or unmounting a pool, or deleting, renaming or rolling back a dataset, the pools
//! area calls [`PoolUsers::refuse`]: every user says which of its objects live there
//! ([`UsedBy`]), and when any of them blocks that operation ([`PoolOp::blocked_by`]) the answer
//! is 409 `in_use` with the list in the problem's `users`. After a rename the pools area calls
//! [`PoolUsers::dataset_renamed`] (shares and stopped VMs follow the dataset); after a mount,
//! an unmount or a rollback [`PoolUsers::storage_changed`] (shares render their files again).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

pub use hostplane_types::problem::UsedBy;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A notification's future.
pub type Notified<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What the pools area is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolOp {
    DestroyPool,
    ExportPool,
    UnmountPool,
    DeleteDataset,
    RenameDataset,
    RollbackDataset,
}

impl PoolOp {
    fn describe(self) -> &'static str {
        match self {
            PoolOp::DestroyPool => "destroyed",
            PoolOp::ExportPool => "exported",
            PoolOp::UnmountPool => "unmounted",
            PoolOp::DeleteDataset => "deleted",
            PoolOp::RenameDataset => "renamed",
            PoolOp::RollbackDataset => "rolled back",
        }
    }

    /// Whether `u` stands in the way. Whatever makes the files unreachable is refused for
    /// every user (a stopped VM's disk would be gone, a share would point nowhere); a rename or
    /// rollback only for users holding files open (a running VM keeps writing to the old
    /// files), since the others follow the notification.
    pub fn blocked_by(self, u: &UsedBy) -> bool {
        match self {
            PoolOp::RenameDataset | PoolOp::RollbackDataset => u.busy,
            _ => true,
        }
    }
}

/// An area whose objects live on pool datasets.
pub trait PoolUser: Send + Sync {
    /// This area's objects on `pool` (only those on `dataset`, when given).
    fn uses(&self, state: &AppState, pool: &str, dataset: Option<&str>) -> ApiResult<Vec<UsedBy>>;

    /// Dataset `from` of `pool` is now called `to`: follow it.
    fn dataset_renamed<'a>(
        &'a self,
        state: &'a AppState,
        pool: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> Notified<'a>;

    /// What is under the pools changed place (a pool mounted or unmounted, a dataset rolled
    /// back, the pools remounted at start).
    fn storage_changed<'a>(&'a self, _state: &'a AppState) -> Notified<'a> {
        Box::pin(async {})
    }
}

/// The registered users (platform state: `Services::pool_users`).
#[derive(Default)]
pub struct PoolUsers(RwLock<Vec<Arc<dyn PoolUser>>>);

impl PoolUsers {
    /// Called from an area's `init` hook.
    pub fn register(&self, user: Arc<dyn PoolUser>) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).push(user);
    }

    fn all(&self) -> Vec<Arc<dyn PoolUser>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything on `pool` (or one of its datasets), of every area.
    pub fn uses(
        &self,
        state: &AppState,
        pool: &str,
        dataset: Option<&str>,
    ) -> ApiResult<Vec<UsedBy>> {
        let mut out = Vec::new();
        for u in self.all() {
            out.extend(u.uses(state, pool, dataset)?);
        }
        Ok(out)
    }

    /// 409 `in_use` naming the users that stand in the way of `op`.
    pub fn refuse(
        &self,
        state: &AppState,
        op: PoolOp,
        pool: &str,
        dataset: Option<&str>,
    ) -> ApiResult<()> {
        refusal(op, pool, dataset, self.uses(state, pool, dataset)?)
    }

    pub async fn dataset_renamed(&self, state: &AppState, pool: &str, from: &str, to: &str) {
        for u in self.all() {
            u.dataset_renamed(state, pool, from, to).await;
        }
    }

    pub async fn storage_changed(&self, state: &AppState) {
        for u in self.all() {
            u.storage_changed(state).await;
        }
    }
}

/// The answer to `op` given what uses the pool or dataset.
pub fn refusal(op: PoolOp, pool: &str, dataset: Option<&str>, uses: Vec<UsedBy>) -> ApiResult<()> {
    let users: Vec<UsedBy> = uses.into_iter().filter(|u| op.blocked_by(u)).collect();
    if users.is_empty() {
        return Ok(());
    }
    let what = match dataset {
        Some(d) => format!("dataset {d:?} of pool {pool:?}"),
        None => format!("pool {pool:?}"),
    };
    let names: Vec<String> = users
        .iter()
        .map(|u| format!("{} {} ({})", u.kind, u.name, u.href))
        .collect();
    let hint = if users.iter().any(|u| u.busy) {
        "stop or delete them first"
    } else {
        "delete or move them first"
    };
    Err(ApiError::InUse {
        detail: format!(
            "{what} cannot be {} while used by {}; {hint}",
            op.describe(),
            names.join(", ")
        ),
        users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(kind: &str, busy: bool) -> UsedBy {
        UsedBy {
            kind: kind.into(),
            name: format!("a-{kind}"),
            href: format!("/api/v1/{kind}s/a-{kind}"),
            dataset: "data".into(),
            busy,
        }
    }

    #[test]
    fn going_away_is_refused_for_every_user_moving_only_for_busy_ones() {
        assert!(refusal(PoolOp::DestroyPool, "tank", None, vec![]).is_ok());
        let e = refusal(
            PoolOp::DeleteDataset,
            "tank",
            Some("data"),
            vec![user("share", false)],
        )
        .unwrap_err();
        assert_eq!(e.code(), "in_use");
        assert_eq!(e.status(), axum::http::StatusCode::CONFLICT);
        let p = e.to_problem();
        assert_eq!(p.users, vec![user("share", false)]);
        assert!(p.detail.contains("share a-share"), "{}", p.detail);
        // A share and a stopped VM follow a rename; a running VM does not.
        for op in [PoolOp::RenameDataset, PoolOp::RollbackDataset] {
            assert!(refusal(op, "tank", Some("data"), vec![user("share", false)]).is_ok());
            let e = refusal(
                op,
                "tank",
                Some("data"),
                vec![user("share", false), user("vm", true)],
            )
            .unwrap_err();
            assert_eq!(e.to_problem().users, vec![user("vm", true)]);
        }
        for op in [PoolOp::DestroyPool, PoolOp::ExportPool, PoolOp::UnmountPool] {
            let e = refusal(op, "tank", None, vec![user("vm", false)]).unwrap_err();
            assert!(e.to_string().contains("pool \"tank\""), "{e}");
        }
    }
}
