//! Image pulls (with layer progress), prunes, and what update checks need of local images.
//!
//! A pull is the engine's `/images/create?fromImage=`: its answer streams one status line per
//! layer step; [`PullProgress`] folds them into a percentage (bytes downloaded of the layers
//! seen so far) and the lines worth logging (a layer's status changed).

use std::collections::HashMap;

use bollard::models::CreateImageInfo;
use bollard::query_parameters::{CreateImageOptions, ListContainersOptions, RemoveImageOptions};
use futures_util::StreamExt;
use hostplane_types::containers::ContainerImage;
use hostplane_types::containers_ops::ImagePruneResult;

use super::registry::Reference;
use super::{Engine, EngineError, EngineResult};

/// Folds a pull's status stream into a percentage and log lines.
#[derive(Default)]
pub struct PullProgress {
    /// Per layer: last status, bytes done, bytes total.
    layers: HashMap<String, (String, i64, i64)>,
    order: Vec<String>,
}

impl PullProgress {
    /// Takes one status; answers the line to log when something changed.
    pub fn feed(&mut self, i: &CreateImageInfo) -> Option<String> {
        let status = i.status.clone().unwrap_or_default();
        let Some(id) = i.id.clone().filter(|id| !id.is_empty()) else {
            return (!status.is_empty()).then_some(status);
        };
        let (cur, tot) = i
            .progress_detail
            .as_ref()
            .map(|p| (p.current.unwrap_or(0), p.total.unwrap_or(0)))
            .unwrap_or((0, 0));
        if !self.layers.contains_key(&id) {
            self.order.push(id.clone());
        }
        let e = self
            .layers
            .entry(id.clone())
            .or_insert_with(|| (String::new(), 0, 0));
        let done = matches!(
            status.as_str(),
            "Pull complete" | "Already exists" | "Download complete" | "Layer already exists"
        );
        if tot > 0 {
            e.1 = cur;
            e.2 = tot;
        } else if done && e.2 > 0 {
            e.1 = e.2;
        }
        let changed = e.0 != status;
        e.0 = status.clone();
        changed.then(|| format!("{id}: {status}"))
    }

    /// Percent of the known bytes; 0 before any layer said its size.
    pub fn percent(&self) -> u8 {
        let (cur, tot) = self
            .layers
            .values()
            .fold((0i64, 0i64), |(c, t), l| (c + l.1.min(l.2), t + l.2));
        if tot <= 0 {
            0
        } else {
            ((cur * 100) / tot).clamp(0, 100) as u8
        }
    }
}

impl Engine {
    /// Whether the engine has `image` (a reference or an id).
    pub async fn has_image(&self, image: &str) -> EngineResult<bool> {
        let docker = self.client().await?;
        match self.bounded(docker.inspect_image(image)).await {
            Ok(_) => Ok(true),
            Err(EngineError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Pulls `image` (a tag defaults to `latest`), reporting each status to `on` with the
    /// percentage so far. Answers the image as listed.
    pub async fn pull(
        &self,
        image: &str,
        on: &mut (dyn FnMut(u8, Option<String>) + Send),
    ) -> EngineResult<ContainerImage> {
        let docker = self.client().await?;
        let r = Reference::parse(image)
            .ok_or_else(|| EngineError::Rejected(format!("invalid image reference {image:?}")))?;
        let full = r.with_default_tag(image);
        let opts = CreateImageOptions {
            from_image: Some(full.clone()),
            ..Default::default()
        };
        let mut s = Box::pin(docker.create_image(Some(opts), None, None));
        let mut p = PullProgress::default();
        // No overall deadline: a large image takes as long as the download. Each status must
        // come within the request timeout times ten (a stalled registry ends the pull).
        let idle = self.timeout() * 10;
        loop {
            let next = tokio::time::timeout(idle, s.next()).await.map_err(|_| {
                EngineError::Unavailable {
                    engine: self.name().to_string(),
                    detail: format!("the pull of {full} stalled"),
                }
            })?;
            let Some(item) = next else { break };
            let info = item.map_err(|e| self.map_err(e))?;
            if let Some(err) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                return Err(EngineError::Failed(err));
            }
            let line = p.feed(&info);
            on(p.percent(), line);
        }
        let inspected = self.bounded(docker.inspect_image(&full)).await?;
        let id = inspected.id.clone().unwrap_or_default();
        let list = self.list_images().await?;
        list.into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| EngineError::NotFound(format!("image {full} is gone after its pull")))
    }

    /// Removes images no container uses (dangling or not). Done here rather than with the
    /// engine's prune: podman 4.3's compat prune refuses `dangling=false` (it adds its own
    /// `dangling=true`), and one way gives one answer on both engines.
    pub async fn prune_images(&self) -> EngineResult<ImagePruneResult> {
        let docker = self.client().await?;
        let used: std::collections::HashSet<String> = self
            .bounded(docker.list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            })))
            .await?
            .into_iter()
            .filter_map(|c| c.image_id)
            .collect();
        let mut out = ImagePruneResult {
            deleted: Vec::new(),
            space_reclaimed_bytes: 0,
        };
        for img in self.list_images().await? {
            if used.contains(&img.id) {
                continue;
            }
            let opts = RemoveImageOptions {
                force: false,
                noprune: false,
                platforms: None,
            };
            match self
                .bounded(docker.remove_image(&img.id, Some(opts), None))
                .await
            {
                Ok(_) => {
                    out.space_reclaimed_bytes += img.size.max(0) as u64;
                    out.deleted.push(img.id);
                }
                // In use after all (a child image, a container made meanwhile), or gone.
                Err(EngineError::Conflict(_) | EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The registry digests (`repo@sha256:…`) the engine keeps for image `id`.
    /// The id and `RepoDigests` of the image `reference` names on this engine now.
    pub async fn image_digests(&self, reference: &str) -> EngineResult<(String, Vec<String>)> {
        let docker = self.client().await?;
        let i = self.bounded(docker.inspect_image(reference)).await?;
        Ok((i.id.unwrap_or_default(), i.repo_digests.unwrap_or_default()))
    }

    pub async fn repo_digests(&self, id: &str) -> EngineResult<Vec<String>> {
        let docker = self.client().await?;
        Ok(self
            .bounded(docker.inspect_image(id))
            .await?
            .repo_digests
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ProgressDetail;

    fn info(id: &str, status: &str, cur: i64, tot: i64) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(id.into()),
            status: Some(status.into()),
            progress_detail: Some(ProgressDetail {
                current: Some(cur),
                total: Some(tot),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn progress_counts_bytes_and_logs_changes_only() {
        let mut p = PullProgress::default();
        assert_eq!(
            p.feed(&info("l1", "Pulling fs layer", 0, 0)).as_deref(),
            Some("l1: Pulling fs layer")
        );
        assert!(p.feed(&info("l1", "Downloading", 10, 100)).is_some());
        assert!(p.feed(&info("l1", "Downloading", 50, 100)).is_none());
        p.feed(&info("l2", "Downloading", 0, 100));
        assert_eq!(p.percent(), 25);
        p.feed(&info("l1", "Pull complete", 0, 0));
        p.feed(&info("l2", "Pull complete", 0, 0));
        assert_eq!(p.percent(), 100);
    }
}
