//! `pools …`, `datasets …` and `snapshots …` over `/api/v1/pools`. Datasets are named
//! `POOL/DATASET` and snapshots `POOL/DATASET@SNAPSHOT`, as ZFS does.

use anyhow::bail;
use hostplane_types::pools::{
    BtrfsProfile, CreateDatasetRequest, CreatePoolRequest, CreateSnapshotRequest, Dataset,
    MountRequest, Pool, PoolKind, RollbackRequest, ScrubResult, Size, Snapshot,
    UpdateDatasetRequest, parse_size,
};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, bytes, fields, opt, print_table, table, yes_no};

#[derive(Debug, clap::Subcommand)]
pub enum PoolsCmd {
    /// List pools.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one pool and its members.
    Show {
        /// Pool name.
        name: String,
    },
    /// Create a pool on disks, erasing them (a job).
    Create {
        /// Pool name.
        name: String,
        /// Disks (id, kernel name or /dev path).
        #[arg(required = true, value_name = "DISK")]
        devices: Vec<String>,
        /// btrfs, ext4, xfs or mergerfs.
        #[arg(long, value_parser = parse_kind, default_value = "btrfs")]
        kind: PoolKind,
        /// btrfs data profile (single, dup, raid0, raid1, raid1c3, raid1c4, raid10).
        #[arg(long, value_parser = parse_profile)]
        data_profile: Option<BtrfsProfile>,
        /// btrfs metadata profile.
        #[arg(long, value_parser = parse_profile)]
        metadata_profile: Option<BtrfsProfile>,
        /// btrfs: leave quotas off (datasets then report no usage and take no quota).
        #[arg(long)]
        no_quotas: bool,
        /// mergerfs: filesystem of each member (ext4 or xfs).
        #[arg(long, value_name = "FS")]
        member_filesystem: Option<String>,
        /// mergerfs: a snapraid parity disk (repeat for more parity levels).
        #[arg(long = "parity", value_name = "DISK")]
        parity_devices: Vec<String>,
        /// mergerfs: minimum free space of a branch, e.g. 100M.
        #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
        min_free_space: Option<Size>,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Start a scrub (a job), or show the last one's result with --status.
    Scrub {
        /// Pool name.
        name: String,
        /// Show the last scrub's result instead of starting one.
        #[arg(long, conflicts_with_all = ["wait", "timeout"])]
        status: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Mount a pool (and remount it at daemon start from now on).
    Mount {
        /// Pool name.
        name: String,
        /// btrfs: mount with a member missing.
        #[arg(long)]
        degraded: bool,
    },
    /// Unmount a pool.
    Unmount {
        /// Pool name.
        name: String,
    },
    /// Destroy a pool and erase its disks (a job).
    Destroy {
        /// Pool name.
        name: String,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum DatasetsCmd {
    /// List the datasets of a pool.
    List {
        /// Pool name.
        pool: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one dataset.
    Show {
        /// POOL/DATASET
        dataset: String,
    },
    /// Create a dataset (a btrfs subvolume, or a folder).
    Create {
        /// POOL/DATASET
        dataset: String,
        /// Quota, e.g. 10G (btrfs pools with quotas).
        #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
        quota: Option<Size>,
        /// Keep this many newest snapshots.
        #[arg(long, value_name = "N")]
        retention: Option<u32>,
    },
    /// Rename a dataset or change its quota or snapshot retention.
    Set {
        /// POOL/DATASET
        dataset: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Quota, e.g. 10G; 0 removes it.
        #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
        quota: Option<Size>,
        /// Snapshots to keep; 0 keeps all.
        #[arg(long, value_name = "N")]
        retention: Option<u32>,
    },
    /// Delete a dataset and its files.
    Delete {
        /// POOL/DATASET
        dataset: String,
        /// Delete its snapshots too.
        #[arg(long)]
        recursive: bool,
        #[command(flatten)]
        yes: YesArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotsCmd {
    /// List the snapshots of a pool (POOL) or of one dataset (POOL/DATASET).
    List {
        /// POOL or POOL/DATASET
        of: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one snapshot.
    Show {
        /// POOL/DATASET@SNAPSHOT
        snapshot: String,
    },
    /// Take a read-only snapshot (named after the UTC time unless @NAME is given).
    Create {
        /// POOL/DATASET[@NAME]
        snapshot: String,
    },
    /// Delete a snapshot.
    Delete {
        /// POOL/DATASET@SNAPSHOT
        snapshot: String,
        #[command(flatten)]
        yes: YesArg,
    },
    /// Roll a dataset back to a snapshot, discarding what changed since.
    Rollback {
        /// POOL/DATASET@SNAPSHOT
        snapshot: String,
        /// Keep the current state as a snapshot instead of discarding it.
        #[arg(long)]
        keep_current: bool,
        #[command(flatten)]
        yes: YesArg,
    },
}

fn parse_kind(s: &str) -> Result<PoolKind, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "btrfs" => PoolKind::Btrfs,
        "ext4" => PoolKind::Ext4,
        "xfs" => PoolKind::Xfs,
        "mergerfs" => PoolKind::Mergerfs,
        _ => return Err(format!("{s:?}: kinds are btrfs, ext4, xfs and mergerfs")),
    })
}

fn parse_profile(s: &str) -> Result<BtrfsProfile, String> {
    BtrfsProfile::parse(s).ok_or_else(|| {
        format!("{s:?}: profiles are single, dup, raid0, raid1, raid1c3, raid1c4 and raid10")
    })
}

/// A size as the API takes it, checked here first: bytes, or `100M`, `1.5G`.
fn parse_size_arg(s: &str) -> Result<Size, String> {
    parse_size(s)?;
    Ok(match s.parse::<u64>() {
        Ok(n) => Size::Bytes(n),
        Err(_) => Size::Text(s.to_string()),
    })
}

/// `POOL/DATASET` → (pool, dataset).
pub fn split_dataset(s: &str) -> anyhow::Result<(&str, &str)> {
    match s.split_once('/') {
        Some((p, d)) if !p.is_empty() && !d.is_empty() && !d.contains(['/', '@']) => Ok((p, d)),
        _ => bail!("{s:?}: expected POOL/DATASET"),
    }
}

/// `POOL/DATASET@SNAPSHOT` → (pool, dataset, snapshot); the snapshot may be optional.
fn split_snapshot(s: &str, need_name: bool) -> anyhow::Result<(&str, &str, Option<&str>)> {
    let (ds, snap) = match s.split_once('@') {
        Some((ds, snap)) if !snap.is_empty() => (ds, Some(snap)),
        Some(_) => bail!("{s:?}: the snapshot name after @ is empty"),
        None => (s, None),
    };
    if need_name && snap.is_none() {
        bail!("{s:?}: expected POOL/DATASET@SNAPSHOT");
    }
    let (pool, dataset) = split_dataset(ds)?;
    Ok((pool, dataset, snap))
}

fn pool_path(name: &str) -> String {
    api(&format!("/pools/{}", seg(name)))
}

fn dataset_path(pool: &str, dataset: &str) -> String {
    format!("{}/datasets/{}", pool_path(pool), seg(dataset))
}

fn snapshot_path(pool: &str, dataset: &str, snap: &str) -> String {
    format!("{}/snapshots/{}", dataset_path(pool, dataset), seg(snap))
}

fn usage_cells(p: &Pool) -> [String; 3] {
    match &p.usage {
        Some(u) => [bytes(u.size_bytes), bytes(u.used), bytes(u.available)],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

pub async fn run(ctx: &Ctx, cmd: PoolsCmd) -> anyhow::Result<i32> {
    match cmd {
        PoolsCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/pools")),
                &[
                    "NAME", "KIND", "HEALTH", "MOUNTED", "SIZE", "USED", "AVAIL", "DISKS",
                    "PROFILE",
                ],
                |p: Pool| {
                    let [size, used, avail] = usage_cells(&p);
                    vec![
                        p.name.clone(),
                        p.kind.as_str().into(),
                        output::name(&p.health),
                        yes_no(p.mounted),
                        size,
                        used,
                        avail,
                        p.members.len().to_string(),
                        opt(p.data_profile.map(|d| d.as_str())),
                    ]
                },
            )
            .await
        }
        PoolsCmd::Show { name } => {
            let answer = ctx.client.get(&pool_path(&name)).await?;
            common::print_answer(ctx, &answer, |p: Pool| {
                let [size, used, avail] = usage_cells(&p);
                let health = match &p.health_detail {
                    Some(d) => format!("{} ({d})", output::name(&p.health)),
                    None => output::name(&p.health),
                };
                print_table(fields(vec![
                    ("NAME", p.name.clone()),
                    ("KIND", p.kind.as_str().into()),
                    ("UUID", opt(p.uuid.as_deref())),
                    ("HEALTH", health),
                    ("MOUNTPOINT", p.mountpoint.clone()),
                    ("MOUNTED", yes_no(p.mounted)),
                    ("AUTO-MOUNT", yes_no(p.auto_mount)),
                    ("SIZE", size),
                    ("USED", used),
                    ("AVAILABLE", avail),
                    ("DATA-PROFILE", opt(p.data_profile.map(|d| d.as_str()))),
                    (
                        "METADATA-PROFILE",
                        opt(p.metadata_profile.map(|d| d.as_str())),
                    ),
                    ("QUOTAS", yes_no(p.quotas)),
                    ("SNAPRAID", yes_no(p.snapraid)),
                    ("CREATED", output::time(Some(&p.created_at))),
                ]))?;
                output::println("")?;
                let mut t = table(&["DISK", "PATH", "ROLE", "PRESENT", "SIZE", "ERRORS"]);
                for m in p.members {
                    t.add_row(vec![
                        m.disk,
                        opt(m.path),
                        output::name(&m.role),
                        yes_no(m.present),
                        opt(m.size_bytes.map(bytes)),
                        m.errors.total().to_string(),
                    ]);
                }
                print_table(t)?;
                Ok(())
            })
        }
        PoolsCmd::Create {
            name,
            devices,
            kind,
            data_profile,
            metadata_profile,
            no_quotas,
            member_filesystem,
            parity_devices,
            min_free_space,
            yes,
            wait,
        } => {
            let disks = devices
                .iter()
                .chain(&parity_devices)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            common::confirm(&yes, &format!("erase {disks} to make pool {name}"), &name)?;
            let req = CreatePoolRequest {
                name: name.clone(),
                kind,
                devices,
                data_profile,
                metadata_profile,
                quotas: no_quotas.then_some(false),
                member_filesystem,
                parity_devices,
                min_free_space,
            };
            let started = ctx
                .client
                .call(Method::POST, &api("/pools"), Some(&req))
                .await?;
            Ok(
                common::job(ctx, started, &wait, &format!("creation of pool {name}"))
                    .await?
                    .code,
            )
        }
        PoolsCmd::Scrub { name, status, wait } => {
            let path = format!("{}/scrub", pool_path(&name));
            if status {
                let answer = ctx.client.get(&path).await?;
                return common::print_answer(ctx, &answer, |r: ScrubResult| print_scrub(&r));
            }
            let started = ctx.client.call(Method::POST, &path, None::<&()>).await?;
            let end = common::job(ctx, started, &wait, &format!("scrub of {name}")).await?;
            if !ctx.json {
                let result = end.job.and_then(|j| j.result);
                if let Some(r) = result.and_then(|r| serde_json::from_value(r).ok()) {
                    print_scrub(&r)?;
                }
            }
            Ok(end.code)
        }
        PoolsCmd::Mount { name, degraded } => {
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/mount", pool_path(&name)),
                    Some(&MountRequest { degraded }),
                )
                .await?;
            common::print_answer(ctx, &answer, |p: Pool| {
                Ok(output::println(&format!(
                    "Mounted pool {} at {}",
                    p.name, p.mountpoint
                ))?)
            })
        }
        PoolsCmd::Unmount { name } => {
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/unmount", pool_path(&name)),
                    None::<&()>,
                )
                .await?;
            common::print_answer(ctx, &answer, |p: Pool| {
                Ok(output::println(&format!("Unmounted pool {}", p.name))?)
            })
        }
        PoolsCmd::Destroy { name, yes, wait } => {
            common::confirm(
                &yes,
                &format!("destroy pool {name} and erase its disks"),
                &name,
            )?;
            // The API wants the name repeated: the same confirmation, for API callers.
            let path = with_query(&pool_path(&name), &[("confirm", Some(name.clone()))]);
            let started = ctx.client.call(Method::DELETE, &path, None::<&()>).await?;
            Ok(
                common::job(ctx, started, &wait, &format!("destruction of pool {name}"))
                    .await?
                    .code,
            )
        }
    }
}

fn print_scrub(r: &ScrubResult) -> anyhow::Result<()> {
    print_table(fields(vec![
        ("STATUS", r.status.clone()),
        ("DURATION", format!("{} s", r.duration_secs)),
        (
            "SCRUBBED",
            bytes(r.data_bytes_scrubbed + r.tree_bytes_scrubbed),
        ),
        ("ERRORS", r.errors_found.to_string()),
        ("CORRECTED", r.corrected_errors.to_string()),
        ("UNCORRECTABLE", r.uncorrectable_errors.to_string()),
    ]))?;
    Ok(())
}

fn dataset_rows(d: Dataset) -> Vec<(&'static str, String)> {
    vec![
        ("POOL", d.pool),
        ("NAME", d.name),
        ("KIND", d.kind),
        ("PATH", d.path),
        ("USED", opt(d.usage.as_ref().map(|u| bytes(u.referenced)))),
        (
            "EXCLUSIVE",
            opt(d.usage.as_ref().map(|u| bytes(u.exclusive))),
        ),
        ("QUOTA", opt(d.quota.map(bytes))),
        ("SNAPSHOTS", d.snapshots.to_string()),
        ("RETENTION", opt(d.snapshot_retention)),
        ("CREATED", output::time(d.created_at.as_deref())),
    ]
}

pub async fn datasets(ctx: &Ctx, cmd: DatasetsCmd) -> anyhow::Result<i32> {
    match cmd {
        DatasetsCmd::List { pool, list } => {
            let path = format!("{}/datasets", pool_path(&pool));
            common::list(
                ctx,
                &list.path(&path),
                &["NAME", "KIND", "USED", "QUOTA", "SNAPSHOTS", "PATH"],
                |d: Dataset| {
                    vec![
                        format!("{}/{}", d.pool, d.name),
                        d.kind,
                        opt(d.usage.map(|u| bytes(u.referenced))),
                        opt(d.quota.map(bytes)),
                        d.snapshots.to_string(),
                        d.path,
                    ]
                },
            )
            .await
        }
        DatasetsCmd::Show { dataset } => {
            let (pool, ds) = split_dataset(&dataset)?;
            common::show(ctx, &dataset_path(pool, ds), dataset_rows).await
        }
        DatasetsCmd::Create {
            dataset,
            quota,
            retention,
        } => {
            let (pool, ds) = split_dataset(&dataset)?;
            let req = CreateDatasetRequest {
                name: ds.to_string(),
                quota,
                snapshot_retention: retention,
            };
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/datasets", pool_path(pool)),
                    Some(&req),
                )
                .await?;
            common::print_answer(ctx, &answer, |d: Dataset| {
                Ok(output::println(&format!(
                    "Created dataset {}/{} at {}",
                    d.pool, d.name, d.path
                ))?)
            })
        }
        DatasetsCmd::Set {
            dataset,
            name,
            quota,
            retention,
        } => {
            let (pool, ds) = split_dataset(&dataset)?;
            let req = UpdateDatasetRequest {
                name,
                quota,
                snapshot_retention: retention,
            };
            if req == UpdateDatasetRequest::default() {
                bail!("nothing to change: give --name, --quota or --retention");
            }
            let answer = ctx
                .client
                .call(Method::PATCH, &dataset_path(pool, ds), Some(&req))
                .await?;
            common::print_answer(ctx, &answer, |d: Dataset| {
                Ok(print_table(fields(dataset_rows(d)))?)
            })
        }
        DatasetsCmd::Delete {
            dataset,
            recursive,
            yes,
        } => {
            let (pool, ds) = split_dataset(&dataset)?;
            common::confirm(
                &yes,
                &format!("delete dataset {dataset} and every file in it"),
                &dataset,
            )?;
            let path = with_query(
                &dataset_path(pool, ds),
                &[("recursive", recursive.then(|| "true".into()))],
            );
            common::done(
                ctx,
                Method::DELETE,
                &path,
                &format!("Deleted dataset {dataset}"),
            )
            .await
        }
    }
}

pub async fn snapshots(ctx: &Ctx, cmd: SnapshotsCmd) -> anyhow::Result<i32> {
    match cmd {
        SnapshotsCmd::List { of, list } => {
            let path = match of.split_once('/') {
                None => format!("{}/snapshots", pool_path(&of)),
                Some(_) => {
                    let (pool, ds) = split_dataset(&of)?;
                    format!("{}/snapshots", dataset_path(pool, ds))
                }
            };
            common::list(
                ctx,
                &list.path(&path),
                &["SNAPSHOT", "CREATED", "USED", "READ-ONLY"],
                |s: Snapshot| {
                    vec![
                        format!("{}/{}@{}", s.pool, s.dataset, s.name),
                        output::time(s.created_at.as_deref()),
                        opt(s.usage.map(|u| bytes(u.exclusive))),
                        yes_no(s.read_only),
                    ]
                },
            )
            .await
        }
        SnapshotsCmd::Show { snapshot } => {
            let (pool, ds, snap) = split_snapshot(&snapshot, true)?;
            let path = snapshot_path(pool, ds, snap.unwrap_or_default());
            common::show(ctx, &path, |s: Snapshot| {
                vec![
                    ("SNAPSHOT", format!("{}/{}@{}", s.pool, s.dataset, s.name)),
                    ("PATH", s.path),
                    ("CREATED", output::time(s.created_at.as_deref())),
                    ("READ-ONLY", yes_no(s.read_only)),
                    (
                        "REFERENCED",
                        opt(s.usage.as_ref().map(|u| bytes(u.referenced))),
                    ),
                    (
                        "EXCLUSIVE",
                        opt(s.usage.as_ref().map(|u| bytes(u.exclusive))),
                    ),
                ]
            })
            .await
        }
        SnapshotsCmd::Create { snapshot } => {
            let (pool, ds, snap) = split_snapshot(&snapshot, false)?;
            let req = CreateSnapshotRequest {
                name: snap.map(str::to_string),
            };
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/snapshots", dataset_path(pool, ds)),
                    Some(&req),
                )
                .await?;
            common::print_answer(ctx, &answer, |s: Snapshot| {
                Ok(output::println(&format!(
                    "Created snapshot {}/{}@{}",
                    s.pool, s.dataset, s.name
                ))?)
            })
        }
        SnapshotsCmd::Delete { snapshot, yes } => {
            let (pool, ds, snap) = split_snapshot(&snapshot, true)?;
            common::confirm(&yes, &format!("delete snapshot {snapshot}"), &snapshot)?;
            common::done(
                ctx,
                Method::DELETE,
                &snapshot_path(pool, ds, snap.unwrap_or_default()),
                &format!("Deleted snapshot {snapshot}"),
            )
            .await
        }
        SnapshotsCmd::Rollback {
            snapshot,
            keep_current,
            yes,
        } => {
            let (pool, ds, snap) = split_snapshot(&snapshot, true)?;
            if !keep_current {
                common::confirm(
                    &yes,
                    &format!("roll {pool}/{ds} back to {snapshot}, discarding later changes"),
                    &snapshot,
                )?;
            }
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &format!(
                        "{}/rollback",
                        snapshot_path(pool, ds, snap.unwrap_or_default())
                    ),
                    Some(&RollbackRequest { keep_current }),
                )
                .await?;
            common::print_answer(ctx, &answer, |d: Dataset| {
                Ok(output::println(&format!(
                    "Rolled {}/{} back to {snapshot}",
                    d.pool, d.name
                ))?)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_like_zfs() {
        assert_eq!(split_dataset("tank/media").unwrap(), ("tank", "media"));
        assert!(split_dataset("tank").is_err());
        assert!(split_dataset("tank/a/b").is_err());
        assert!(split_dataset("/media").is_err());
        assert_eq!(
            split_snapshot("tank/media@daily", true).unwrap(),
            ("tank", "media", Some("daily"))
        );
        assert_eq!(
            split_snapshot("tank/media", false).unwrap(),
            ("tank", "media", None)
        );
        assert!(split_snapshot("tank/media", true).is_err());
        assert!(split_snapshot("tank/media@", false).is_err());
    }

    #[test]
    fn sizes_are_checked_here() {
        assert_eq!(parse_size_arg("4096").unwrap(), Size::Bytes(4096));
        assert_eq!(parse_size_arg("1.5G").unwrap(), Size::Text("1.5G".into()));
        assert!(parse_size_arg("lots").is_err());
    }
}
