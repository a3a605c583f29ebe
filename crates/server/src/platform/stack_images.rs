//! The images each compose stack's services resolve to: the registry the containers area's
//! update check asks, without naming the stacks area.
//!
//! Flow: the stacks area's `init` hook adds its [`StackImageSource`] to
//! `Services::stack_images`. `POST /container-updates/check` calls [`StackImages::list`]: each
//! source resolves its stacks' compose files (interpolation and `.env` applied, as `up` would)
//! into one image reference per service; the containers area then compares each with the
//! registry, like a container's.

use std::sync::{Arc, RwLock};

use crate::platform::workloads::WorkFuture;
use crate::state::AppState;

/// One service of a stack and the image its compose file names for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImage {
    pub service: String,
    pub image: String,
}

/// One stack: its engine and its services' images, or why they could not be read.
#[derive(Debug, Clone)]
pub struct StackServices {
    pub name: String,
    pub href: String,
    pub engine: String,
    /// The compose project name (the `com.docker.compose.project` label of its containers).
    pub project: String,
    pub services: Vec<ServiceImage>,
    /// Why the compose file could not be resolved (the services are then empty).
    pub error: Option<String>,
}

/// An area that owns stacks.
pub trait StackImageSource: Send + Sync {
    fn stacks<'a>(&'a self, state: &'a AppState) -> WorkFuture<'a, Vec<StackServices>>;
}

/// The registered sources (platform state: `Services::stack_images`).
#[derive(Default)]
pub struct StackImages(RwLock<Vec<Arc<dyn StackImageSource>>>);

impl StackImages {
    /// Called from an area's `init` hook.
    pub fn register(&self, s: Arc<dyn StackImageSource>) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    /// Every source's stacks; a source that fails is logged and left out.
    pub async fn list(&self, state: &AppState) -> Vec<StackServices> {
        let all = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        for s in all {
            match s.stacks(state).await {
                Ok(v) => out.extend(v),
                Err(e) => tracing::warn!(error = %e, "listing the stacks' images failed"),
            }
        }
        out
    }
}
