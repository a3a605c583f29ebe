//! An engine's named volumes: list, create, delete, and their contents as tar through a helper
//! container (for backups and restores).
//!
//! Why a helper container and not the volume's `Mountpoint`: the engine owns that directory
//! (podman's and rootless engines' may not even be in this mount namespace, a volume driver
//! may keep data elsewhere, and the engine's own archive code handles ownership, xattrs and
//! special files). The helper is created, never started: both engines serve the archive of a
//! stopped container with its volumes mounted. Its image is a tiny one hostplane imports once
//! per engine from an in-memory tarball ([`HELPER_IMAGE`]), so no registry is needed.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use hostplane_types::container_io::ContainerVolume;

use super::{Engine, EngineError, EngineResult};

/// The helper image (an empty root with `/volume`): never run, only mounted.
pub const HELPER_IMAGE: &str = "localhost/hostplane-volume-helper:1";
/// Where the helper mounts the volume; archives hold its contents under `volume/`.
pub const HELPER_MOUNT: &str = "/volume";
/// Label on helper containers (a crash may leave one; they are safe to remove).
pub const HELPER_LABEL: &str = "org.hostplane.volume-helper";

fn volume_of(engine: &str, v: bollard::models::Volume) -> ContainerVolume {
    ContainerVolume {
        href: format!(
            "{}/container-engines/{engine}/volumes/{}",
            hostplane_types::API_BASE,
            v.name
        ),
        engine: engine.to_string(),
        name: v.name,
        driver: v.driver,
        mountpoint: v.mountpoint,
        created_at: v.created_at,
        labels: v.labels.into_iter().collect(),
    }
}

/// A helper container; removed by [`Engine::remove_helper`].
pub struct Helper {
    pub id: String,
}

impl Engine {
    pub async fn list_volumes(&self) -> EngineResult<Vec<ContainerVolume>> {
        let docker = self.client().await?;
        let resp = self
            .bounded(docker.list_volumes(None::<ListVolumesOptions>))
            .await?;
        let mut out: Vec<ContainerVolume> = resp
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| volume_of(self.name(), v))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn inspect_volume(&self, name: &str) -> EngineResult<ContainerVolume> {
        let docker = self.client().await?;
        let v = self.bounded(docker.inspect_volume(name)).await?;
        Ok(volume_of(self.name(), v))
    }

    pub async fn create_volume(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> EngineResult<ContainerVolume> {
        let docker = self.client().await?;
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some("local".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let v = self.bounded(docker.create_volume(req)).await?;
        Ok(volume_of(self.name(), v))
    }

    /// Deletes a volume; one a container uses is [`EngineError::Conflict`] on both engines.
    pub async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        let docker = self.client().await?;
        let r = self
            .bounded(docker.remove_volume(name, Some(RemoveVolumeOptions { force: false })))
            .await;
        match r {
            // podman 4.3 says 500 "volume is being used" where dockerd says 409.
            Err(EngineError::Failed(m)) if m.contains("being used") || m.contains("in use") => {
                Err(EngineError::Conflict(m))
            }
            other => other,
        }
    }

    /// Imports the helper image when the engine lacks it.
    async fn ensure_helper_image(&self) -> EngineResult<()> {
        let docker = self.client().await?;
        if self
            .bounded(docker.inspect_image(HELPER_IMAGE))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let tar = helper_rootfs();
        let opts = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(HELPER_IMAGE.into()),
            ..Default::default()
        };
        let body =
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(tar)) });
        let fut = docker
            .create_image(Some(opts), Some(bollard::body_try_stream(body)), None)
            .try_collect::<Vec<_>>();
        self.bounded(fut).await.map(|_| ())
    }

    /// A created (never started) helper container with volume `volume` at [`HELPER_MOUNT`].
    /// The engine creates the volume when it does not exist.
    pub async fn create_helper(&self, volume: &str, read_only: bool) -> EngineResult<Helper> {
        self.ensure_helper_image().await?;
        let docker = self.client().await?;
        let mut raw = [0u8; 6];
        getrandom_fill(&mut raw);
        let name = format!("hostplane-volume-helper-{}", hex(&raw));
        let body = ContainerCreateBody {
            image: Some(HELPER_IMAGE.into()),
            cmd: Some(vec!["/never-run".into()]),
            labels: Some(HashMap::from([(
                HELPER_LABEL.to_string(),
                volume.to_string(),
            )])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some(HELPER_MOUNT.into()),
                    source: Some(volume.into()),
                    typ: Some(MountType::VOLUME),
                    read_only: Some(read_only),
                    ..Default::default()
                }]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let c = self
            .bounded(docker.create_container(Some(opts), body))
            .await?;
        Ok(Helper { id: c.id })
    }

    pub async fn remove_helper(&self, h: &Helper) -> EngineResult<()> {
        let docker = self.client().await?;
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        self.bounded(docker.remove_container(&h.id, Some(opts)))
            .await
    }

    /// The helper's volume as the engine's tar: dockerd names entries `volume/...`, podman 4.3
    /// `/...` (see [`volume_entry`]).
    pub async fn volume_tar(
        &self,
        h: &Helper,
    ) -> EngineResult<impl Stream<Item = Result<Bytes, EngineError>> + Send + 'static> {
        self.download(&h.id, HELPER_MOUNT).await
    }

    /// Extracts a tar with entries relative to the volume's root into the helper's volume.
    pub async fn volume_untar(
        &self,
        h: &Helper,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> EngineResult<()> {
        self.upload(&h.id, HELPER_MOUNT, body).await
    }
}

/// An entry of the engine's tar of [`HELPER_MOUNT`] as a path relative to the volume's root
/// ("" for the root itself): podman's names start with `/`, dockerd's with `volume/`.
pub fn volume_entry(name: &str) -> &str {
    match name.strip_prefix('/') {
        Some(rest) => rest,
        None => {
            let rest = name.strip_prefix("volume").unwrap_or(name);
            if rest.is_empty() {
                ""
            } else {
                rest.strip_prefix('/').unwrap_or(name)
            }
        }
    }
}

/// An empty root filesystem with the mount point: a tar built in memory.
fn helper_rootfs() -> Vec<u8> {
    // One directory entry, `volume/`, in ustar form: 512-byte header + two zero blocks.
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    put(&mut h, 0, b"volume/");
    put(&mut h, 100, b"0000755\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, b"00000000000\0");
    put(&mut h, 136, b"00000000000\0");
    put(&mut h, 156, b"5");
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let cks = format!("{sum:06o}\0 ");
    put(&mut h, 148, cks.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn getrandom_fill(buf: &mut [u8]) {
    // Uniqueness, not secrecy: time and pid are enough for a helper's name.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ ((std::process::id() as u128) << 64);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (t >> (i * 8)) as u8;
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_of_both_engines_become_relative() {
        use super::volume_entry as v;
        assert_eq!(v("volume/"), "");
        assert_eq!(v("volume"), "");
        assert_eq!(v("volume/a/b"), "a/b");
        assert_eq!(v("/"), "");
        assert_eq!(v("/a/b"), "a/b");
        assert_eq!(v("volumes/x"), "volumes/x");
    }

    #[test]
    fn the_helper_rootfs_is_a_tar_with_one_directory() {
        let t = super::helper_rootfs();
        assert_eq!(t.len(), 1536);
        assert_eq!(&t[257..262], b"ustar");
        let sum: u32 = t[..512]
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u32
                }
            })
            .sum();
        let stored = u32::from_str_radix(std::str::from_utf8(&t[148..154]).unwrap(), 8).unwrap();
        assert_eq!(sum, stored);
    }
}
