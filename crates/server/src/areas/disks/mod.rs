//! `/api/v1/disks`: block devices, SMART, power, and the destructive jobs.
//!
//! Request flow of `GET /disks`: [`inventory`] scans kernel memory in a blocking task
//! (`hostplane_host::disks::scan`: sysfs, mountinfo, the udev database, btrfs' sysfs; no
//! device is opened), marks pool membership (the pool registry) and `disks.allow`, asks each
//! physical ATA/SCSI disk its power state (`hdparm -C`, which does not spin a disk up), then,
//! unless `skipStandby=true`, probes filesystems with `blkid` (no cache) on every non-root disk that is
//! not in standby and reads SMART with `smartctl -n standby`. `performance=true` samples
//! `/proc/diskstats` over [`PERF_INTERVAL`] after the scan (so its reads are not counted). The list goes through the collection
//! layer.
//!
//! `skipStandby=true` guarantee: no `blkid`, no SMART (except on disks the drive itself just
//! reported active), nothing that opens a disk for reading. Filesystem details of unmounted
//! devices then come from the udev database only. The disks bench proves it with
//! `/sys/block/*/stat` counters (docs/benchmarks.md).
//!
//! Destructive jobs (wipe, partition, format) pass [`check_destructive`] (root disk, allow-list,
//! mounted, pool member, held), then [`claim`] the disk's kernel names so no other job of this
//! daemon touches them until the job ends.

pub mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::future::join_all;
use hostplane_host::command::CommandError;
use hostplane_host::disks::{self as hd, ScannedDisk, SysPaths};
use hostplane_host::smart::{self, SmartOutcome};
use hostplane_types::disks::{
    Disk, FormatRequest, FormatType, PartitionRequest, PowerState, PowerStateResult, SmartReport,
    WipeRequest,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::accepted;
use crate::areas::pools::registry::{self, PoolRecord};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::areas::{Area, HookFuture};
use crate::state::AppState;

/// How long `performance=true` samples `/proc/diskstats`.
pub const PERF_INTERVAL: Duration = Duration::from_millis(250);

pub const AREA: Area = Area {
    start: Some(start),
    ..Area::new("disks", "Block devices: inventory, SMART, power, wipe/partition/format jobs", router)
};

/// Subscribes to disk uevents before the daemon is ready, then follows them in the background.
fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        let watcher = watch::open().await;
        watch::spawn(state, watcher);
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_disks))
        .routes(routes!(get_disk))
        .routes(routes!(get_smart))
        .routes(routes!(standby))
        .routes(routes!(wake))
        .routes(routes!(wipe))
        .routes(routes!(partition))
        .routes(routes!(format))
}

pub fn href(id: &str) -> String {
    format!("/api/v1/disks/{id}")
}

// ---------------------------------------------------------------------------------------------
// inventory

/// What a listing may do.
#[derive(Debug, Clone, Copy)]
pub struct ScanOpts {
    /// Probe filesystems (`blkid`) and read SMART: I/O to non-standby disks.
    pub io: bool,
    /// Ask drives their power state (`hdparm -C`; never wakes a drive).
    pub power: bool,
}

fn sys_paths() -> SysPaths {
    SysPaths::default()
}

/// Transports on which `hdparm -C/-y` work.
fn ata_like(d: &ScannedDisk) -> bool {
    d.physical
        && matches!(
            d.disk.transport.as_deref(),
            Some("sata" | "ata" | "sas" | "scsi" | "usb")
        )
}

/// Transports smartctl can talk to.
fn smart_capable(d: &ScannedDisk) -> bool {
    d.physical
        && matches!(
            d.disk.transport.as_deref(),
            Some("sata" | "ata" | "sas" | "scsi" | "usb" | "nvme")
        )
}

/// The pools each disk belongs to, by disk id and by filesystem UUID.
pub fn pool_of(d: &Disk, pools: &[PoolRecord]) -> Option<String> {
    let uuids: Vec<&str> = d
        .filesystem
        .iter()
        .chain(d.partitions.iter().filter_map(|p| p.filesystem.as_ref()))
        .filter_map(|f| f.uuid.as_deref())
        .collect();
    pools
        .iter()
        .find(|p| {
            p.members.iter().any(|m| m.disk == d.id)
                || p.uuid.as_deref().is_some_and(|u| uuids.contains(&u))
                || p.members
                    .iter()
                    .any(|m| m.uuid.as_deref().is_some_and(|u| uuids.contains(&u)))
        })
        .map(|p| p.name.clone())
}

/// Scans the disks (see the module doc for what each option costs).
pub async fn inventory(state: &AppState, opts: ScanOpts) -> ApiResult<Vec<ScannedDisk>> {
    let paths = sys_paths();
    let mut disks = tokio::task::spawn_blocking(move || hd::scan(&paths))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("scanning /sys/block: {e}")))?;
    let pools = registry::load_all(&state.store)?;
    for d in &mut disks {
        d.disk.href = href(&d.disk.id);
        d.disk.allowed = hd::allowed(&state.config.disks.allow, &d.disk.path, &d.disk.by_id);
        d.disk.pool = pool_of(&d.disk, &pools);
    }
    if opts.power {
        let states = join_all(disks.iter().map(|d| async move {
            if ata_like(d) {
                smart::power_state(&d.disk.path).await
            } else if d.physical && d.disk.transport.as_deref() == Some("nvme") {
                // NVMe power states are autonomous and any command wakes the drive: there
                // is no standby to protect.
                PowerState::Active
            } else {
                PowerState::Unknown
            }
        }))
        .await;
        for (d, s) in disks.iter_mut().zip(states) {
            d.disk.power_state = s;
        }
    }
    let asleep = |d: &ScannedDisk| {
        matches!(
            d.disk.power_state,
            PowerState::Standby | PowerState::Sleeping
        )
    };
    if opts.io {
        // Probe only what udev did not already describe, never the root disk, never a
        // sleeping disk.
        let mut devs = Vec::new();
        for d in disks.iter().filter(|d| !d.disk.holds_root && !asleep(d)) {
            if d.disk.filesystem.is_none() && d.disk.partition_table.is_none() {
                devs.push(d.disk.path.clone());
            }
            for p in &d.disk.partitions {
                if p.filesystem.is_none() || p.part_uuid.is_none() {
                    devs.push(p.path.clone());
                }
            }
        }
        match hd::probe_blkid(&devs).await {
            Ok(found) => {
                let map: HashMap<String, hd::BlkidInfo> =
                    found.into_iter().map(|i| (i.devname.clone(), i)).collect();
                for d in &mut disks {
                    hd::apply_blkid(&mut d.disk, &map);
                    d.disk.pool = pool_of(&d.disk, &pools);
                }
            }
            Err(e) => tracing::warn!(error = %e, "blkid probe failed; listing without it"),
        }
    }
    // SMART: only where smartctl can work; `-n standby` leaves sleeping drives alone. Without
    // I/O permission only drives that just said they are active are asked.
    let smart_ok = |d: &ScannedDisk| {
        smart_capable(d) && !asleep(d) && (opts.io || d.disk.power_state == PowerState::Active)
    };
    let reports = join_all(disks.iter().map(|d| async move {
        if smart_ok(d) {
            smart::smartctl(&d.disk.path, false, false).await.ok()
        } else {
            None
        }
    }))
    .await;
    for (d, r) in disks.iter_mut().zip(reports) {
        match r {
            Some(SmartOutcome::Report(rep)) => {
                d.disk.temperature_celsius = rep.temperature_celsius;
                d.disk.smart_health = rep.health;
            }
            Some(SmartOutcome::Standby) => d.disk.power_state = PowerState::Standby,
            _ => {}
        }
    }
    Ok(disks)
}

/// Finds a disk by stable id, kernel name or /dev path among `disks`.
pub fn find<'a>(disks: &'a [ScannedDisk], spec: &str) -> Option<&'a ScannedDisk> {
    if let Some(d) = disks
        .iter()
        .find(|d| d.disk.id == spec || d.disk.name == spec)
    {
        return Some(d);
    }
    let k = hd::resolve_kname(spec)?;
    disks.iter().find(|d| d.disk.name == k)
}

/// Scans without I/O and finds one disk (404 otherwise).
pub async fn resolve(state: &AppState, spec: &str) -> ApiResult<ScannedDisk> {
    let disks = inventory(
        state,
        ScanOpts {
            io: false,
            power: false,
        },
    )
    .await?;
    find(&disks, spec)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("disk {spec:?}")))
}

/// The refusal rules for anything that writes to a disk, in this order: root disk, outside
/// `disks.allow`, mounted, member of a pool (other than `pool_ok`), held by md/dm or swap.
pub fn check_destructive(d: &ScannedDisk, pool_ok: Option<&str>) -> ApiResult<()> {
    let disk = &d.disk;
    if disk.holds_root {
        return Err(ApiError::conflict(
            "disk_holds_root",
            format!("{} holds the root filesystem", disk.path),
        ));
    }
    if !disk.allowed {
        return Err(ApiError::conflict(
            "disk_not_allowed",
            format!(
                "{} is not in disks.allow; add a glob matching it to the [disks] allow list to let hostplane change it",
                disk.path
            ),
        ));
    }
    if !disk.mountpoints.is_empty() {
        return Err(ApiError::conflict(
            "disk_mounted",
            format!(
                "{} is mounted at {}",
                disk.path,
                disk.mountpoints.join(", ")
            ),
        ));
    }
    if let Some(p) = &disk.pool
        && Some(p.as_str()) != pool_ok
    {
        return Err(ApiError::conflict(
            "disk_in_pool",
            format!("{} belongs to pool {p:?}", disk.path),
        ));
    }
    if d.held {
        return Err(ApiError::conflict(
            "disk_busy",
            format!(
                "{} is in use (swap, or held by another block device)",
                disk.path
            ),
        ));
    }
    Ok(())
}

static CLAIMS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();

/// Kernel names a running job has claimed; released on drop.
pub struct Claim(Vec<String>);

impl Drop for Claim {
    fn drop(&mut self) {
        let mut c = CLAIMS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for k in &self.0 {
            c.remove(k);
        }
    }
}

/// Claims the disks (and their partitions) for one job: 409 `disk_busy` when another job of
/// this daemon has one.
pub fn claim(disks: &[&ScannedDisk]) -> ApiResult<Claim> {
    let mut c = CLAIMS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let names: Vec<String> = disks.iter().flat_map(|d| d.knames.clone()).collect();
    if let Some(busy) = names.iter().find(|k| c.contains(*k)) {
        return Err(ApiError::conflict(
            "disk_busy",
            format!("/dev/{busy} is being changed by another job"),
        ));
    }
    for n in &names {
        c.insert(n.clone());
    }
    Ok(Claim(names))
}

/// Erases every signature on a disk: partitions first, then the disk, then drops the
/// kernel's partitions.
pub async fn wipe_disk(d: &Disk) -> Result<Vec<String>, CommandError> {
    let mut wiped = Vec::new();
    for p in d.partitions.iter().rev() {
        hostplane_host::blockdev::wipefs(&p.path).await?;
        wiped.push(p.path.clone());
    }
    hostplane_host::blockdev::wipefs(&d.path).await?;
    wiped.push(d.path.clone());
    if !d.partitions.is_empty() {
        hostplane_host::blockdev::partx_update(&d.path, false).await?;
    }
    Ok(wiped)
}

// ---------------------------------------------------------------------------------------------
// handlers

/// `GET /disks` options (MOS-compatible names).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiskListParams {
    /// Add live throughput (`/proc/diskstats` sampled over 250 ms).
    pub performance: Option<bool>,
    /// Never wake a disk in standby: no filesystem probe, no SMART except on drives that
    /// report themselves active. Nothing is read from any disk (see docs/storage.md).
    #[serde(rename = "skipStandby")]
    #[param(rename = "skipStandby")]
    pub skip_standby: Option<bool>,
}

async fn listing(state: &AppState, p: &DiskListParams) -> ApiResult<Vec<Disk>> {
    let opts = ScanOpts {
        io: !p.skip_standby.unwrap_or(false),
        power: true,
    };
    let perf = p.performance.unwrap_or(false);
    // The scan first, then the sample: the scan's own reads (blkid, SMART) must not fall into
    // the window, or every idle disk shows the listing's probe as its throughput.
    let mut disks = inventory(state, opts).await?;
    let stats = if perf {
        let paths = sys_paths();
        async {
            let a = hd::read_diskstats(&paths).ok()?;
            let t0 = std::time::Instant::now();
            tokio::time::sleep(PERF_INTERVAL).await;
            let b = hd::read_diskstats(&paths).ok()?;
            Some((a, b, t0.elapsed().as_millis() as u64))
        }
        .await
    } else {
        None
    };
    if let Some((a, b, ms)) = stats {
        for d in &mut disks {
            if let (Some(x), Some(y)) = (a.get(&d.disk.name), b.get(&d.disk.name)) {
                d.disk.performance = Some(hd::rates(x, y, ms));
            }
        }
    }
    Ok(disks.into_iter().map(|d| d.disk).collect())
}

/// List block devices.
#[utoipa::path(get, path = "/api/v1/disks",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("disks:read"))),
    tag = "disks", params(CollectionParams, DiskListParams),
    responses((status = 200, description = "Disks", body = [Disk],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_disks(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    Query(opts): Query<DiskListParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let disks = listing(&state, &opts).await?;
    collection::respond(disks, &params, &headers)
}

/// One disk, by stable id or kernel name.
#[utoipa::path(get, path = "/api/v1/disks/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("disks:read"))),
    tag = "disks",
    params(("id" = String, Path, description = "Stable disk id or kernel name (sda)"), DiskListParams),
    responses((status = 200, description = "The disk", body = Disk)))]
async fn get_disk(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(opts): Query<DiskListParams>,
) -> ApiResult<axum::Json<Disk>> {
    let disks = listing(&state, &opts).await?;
    disks
        .into_iter()
        .find(|d| d.id == id || d.name == id)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("disk {id:?}")))
}

/// `GET /disks/{id}/smart` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SmartParams {
    /// Read SMART even if the drive is in standby (spins it up). Default false: a drive in
    /// standby answers 409 `disk_in_standby`.
    pub wake: Option<bool>,
}

/// SMART report (`smartctl -j -a`).
#[utoipa::path(get, path = "/api/v1/disks/{id}/smart",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("disks:read"))),
    tag = "disks",
    params(("id" = String, Path, description = "Stable disk id or kernel name"), SmartParams),
    responses((status = 200, description = "SMART data", body = SmartReport),
        (status = 501, description = "The device has no SMART (loop, virtio, …)", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn get_smart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SmartParams>,
) -> ApiResult<axum::Json<SmartReport>> {
    let d = resolve(&state, &id).await?;
    if !smart_capable(&d) {
        return Err(ApiError::NotSupported {
            code: "smart_unsupported",
            detail: format!(
                "{} is a {} device without SMART",
                d.disk.path,
                d.disk.transport.as_deref().unwrap_or(&d.disk.kind)
            ),
        });
    }
    match smart::smartctl(&d.disk.path, true, q.wake.unwrap_or(false))
        .await
        .map_err(ApiError::from)?
    {
        SmartOutcome::Report(r) => Ok(axum::Json(*r)),
        SmartOutcome::Standby => Err(ApiError::conflict(
            "disk_in_standby",
            format!(
                "{} is in standby; pass wake=true to spin it up",
                d.disk.path
            ),
        )),
        SmartOutcome::Unsupported(why) => Err(ApiError::NotSupported {
            code: "smart_unsupported",
            detail: why,
        }),
    }
}

fn power_target(d: &ScannedDisk, what: &str) -> ApiResult<()> {
    if d.disk.holds_root {
        return Err(ApiError::conflict(
            "disk_holds_root",
            format!("{} holds the root filesystem", d.disk.path),
        ));
    }
    if !ata_like(d) {
        return Err(ApiError::NotSupported {
            code: "power_management_unsupported",
            detail: format!(
                "{} ({}) has no {what} hostplane can control",
                d.disk.path,
                d.disk.transport.as_deref().unwrap_or(&d.disk.kind)
            ),
        });
    }
    Ok(())
}

/// Spin a disk down now (`hdparm -y`).
#[utoipa::path(post, path = "/api/v1/disks/{id}/standby",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("disks:write"))),
    tag = "disks",
    params(("id" = String, Path, description = "Stable disk id or kernel name")),
    responses((status = 200, description = "New power state", body = PowerStateResult),
        (status = 501, description = "No power management (loop, NVMe, virtio)", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn standby(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PowerStateResult>> {
    let d = resolve(&state, &id).await?;
    power_target(&d, "standby")?;
    smart::standby(&d.disk.path).await.map_err(ApiError::from)?;
    Ok(axum::Json(PowerStateResult {
        disk: d.disk.href.clone(),
        power_state: smart::power_state(&d.disk.path).await,
    }))
}

/// Wake a disk (reads 4 KiB with O_DIRECT).
#[utoipa::path(post, path = "/api/v1/disks/{id}/wake",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("disks:write"))),
    tag = "disks",
    params(("id" = String, Path, description = "Stable disk id or kernel name")),
    responses((status = 200, description = "New power state", body = PowerStateResult),
        (status = 501, description = "No power management (loop, NVMe, virtio)", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn wake(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PowerStateResult>> {
    let d = resolve(&state, &id).await?;
    power_target(&d, "standby to wake from")?;
    let (path, size) = (d.disk.path.clone(), d.disk.size_bytes);
    tokio::task::spawn_blocking(move || hd::wake_read(std::path::Path::new(&path), size))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::conflict("wake_failed", format!("reading {}: {e}", d.disk.path)))?;
    Ok(axum::Json(PowerStateResult {
        disk: d.disk.href.clone(),
        power_state: smart::power_state(&d.disk.path).await,
    }))
}

fn publish_disk(state: &AppState, actor: &str, d: &Disk) {
    state.events.publish(
        "resource.updated",
        &d.href,
        actor,
        serde_json::to_value(d).unwrap_or_default(),
    );
}

/// Erase every signature (filesystems, RAID, partition tables) on a disk and its partitions.
#[utoipa::path(post, path = "/api/v1/disks/{id}/wipe",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("disks:write"))),
    tag = "disks", request_body = WipeRequest,
    params(("id" = String, Path, description = "Stable disk id or kernel name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn wipe(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Json(_req): Json<WipeRequest>,
) -> ApiResult<Response> {
    let d = resolve(&state, &id).await?;
    check_destructive(&d, None)?;
    let claim = claim(&[&d])?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "disks.wipe",
            target: Some(d.disk.href.clone()),
            lock_key: Some(format!("disks/{}", d.disk.id)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _claim = claim;
            ctx.log(format!("wiping signatures on {}", d.disk.path));
            let wiped = wipe_disk(&d.disk)
                .await
                .map_err(|e| JobFailure::command("wipe_failed", e))?;
            publish_disk(&st, &actor, &d.disk);
            Ok(hostplane_types::jobs::DiskWipeResult {
                disk: d.disk.href,
                wiped,
            })
        },
    )?;
    Ok(accepted(&job))
}

fn valid_part_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 36
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Write a new GPT partition table (replacing whatever is there).
#[utoipa::path(post, path = "/api/v1/disks/{id}/partition",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("disks:write"))),
    tag = "disks", request_body = PartitionRequest,
    params(("id" = String, Path, description = "Stable disk id or kernel name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn partition(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Json(req): Json<PartitionRequest>,
) -> ApiResult<Response> {
    let mut specs = req.partitions;
    if specs.is_empty() {
        specs.push(Default::default());
    }
    if specs.len() > 16 {
        return Err(ApiError::invalid_field(
            "invalid_partitions",
            "partitions",
            "at most 16 partitions",
        ));
    }
    let mut total_mib = 0u64;
    let mut parts = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let field = format!("partitions[{i}]");
        if let Some(n) = &s.name
            && !valid_part_name(n)
        {
            return Err(ApiError::invalid_field(
                "invalid_name",
                format!("{field}.name"),
                "1 to 36 of A-Z a-z 0-9 _ . -",
            ));
        }
        let size_mib = match s.size_bytes {
            Some(b) if b < 1 << 20 => {
                return Err(ApiError::invalid_field(
                    "invalid_size",
                    format!("{field}.size_bytes"),
                    "at least 1 MiB",
                ));
            }
            Some(b) => Some(b >> 20),
            None if i + 1 < specs.len() => {
                return Err(ApiError::invalid_field(
                    "invalid_size",
                    format!("{field}.size_bytes"),
                    "only the last partition may omit its size",
                ));
            }
            None => None,
        };
        total_mib += size_mib.unwrap_or(1);
        parts.push(hostplane_host::blockdev::NewPartition {
            size_mib,
            name: s.name.clone(),
            kind: s.r#type,
        });
    }
    let d = resolve(&state, &id).await?;
    // Whether the disk may be touched comes before whether the layout fits it.
    check_destructive(&d, None)?;
    // 1 MiB at the start for alignment, 1 MiB at the end for the backup GPT.
    if (total_mib + 2) << 20 > d.disk.size_bytes {
        return Err(ApiError::invalid_field(
            "invalid_size",
            "partitions",
            format!(
                "the partitions need more than the disk's {} bytes",
                d.disk.size_bytes
            ),
        ));
    }
    let claim = claim(&[&d])?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "disks.partition",
            target: Some(d.disk.href.clone()),
            lock_key: Some(format!("disks/{}", d.disk.id)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _claim = claim;
            ctx.log(format!("erasing old signatures on {}", d.disk.path));
            wipe_disk(&d.disk)
                .await
                .map_err(|e| JobFailure::command("wipe_failed", e))?;
            ctx.progress(30);
            ctx.log(format!("writing a GPT with {} partition(s)", parts.len()));
            hostplane_host::blockdev::partition_gpt(&d.disk.path, &parts)
                .await
                .map_err(|e| JobFailure::command("partition_failed", e))?;
            ctx.progress(70);
            // Old filesystems may start where a new partition starts: erase them too.
            let now = resolve(&st, &d.disk.name)
                .await
                .map_err(|e| JobFailure::new("partition_failed", e.to_string()))?;
            for part in &now.disk.partitions {
                hostplane_host::blockdev::wipefs(&part.path)
                    .await
                    .map_err(|e| JobFailure::command("wipe_failed", e))?;
            }
            publish_disk(&st, &actor, &now.disk);
            let paths: Vec<&str> = now
                .disk
                .partitions
                .iter()
                .map(|p| p.path.as_str())
                .collect();
            Ok(hostplane_types::jobs::DiskPartitionResult {
                disk: now.disk.href,
                partitions: paths.into_iter().map(String::from).collect(),
            })
        },
    )?;
    Ok(accepted(&job))
}

/// Checks a filesystem label: A-Z a-z 0-9 _ . - and the filesystem's length limit.
pub fn check_label(fs: FormatType, label: &str, field: &str) -> ApiResult<()> {
    let max = match fs {
        FormatType::Ext4 => 16,
        FormatType::Xfs => 12,
        FormatType::Btrfs => 255,
    };
    let ok = !label.is_empty()
        && label.len() <= max
        && !label.starts_with('-')
        && label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_label",
            field,
            format!(
                "a {} label is 1 to {max} of A-Z a-z 0-9 _ . -, not starting with -",
                fs.as_str()
            ),
        ))
    }
}

/// Make a filesystem (ext4, xfs, btrfs) on a disk or one of its partitions.
#[utoipa::path(post, path = "/api/v1/disks/{id}/format",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("disks:write"))),
    tag = "disks", request_body = FormatRequest,
    params(("id" = String, Path, description = "Stable disk id or kernel name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn format(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Json(req): Json<FormatRequest>,
) -> ApiResult<Response> {
    let d = resolve(&state, &id).await?;
    // Whether the disk may be touched comes first: the label limit depends on the filesystem
    // and the partition on the disk, which the schema cannot say.
    check_destructive(&d, None)?;
    if let Some(l) = &req.label {
        check_label(req.filesystem, l, "label")?;
    }
    let target = match req.partition {
        None => None,
        Some(n) => Some(
            d.disk
                .partitions
                .iter()
                .find(|p| p.number == n)
                .map(|p| p.path.clone())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "invalid_partition",
                        "partition",
                        format!("{} has no partition {n}", d.disk.path),
                    )
                })?,
        ),
    };
    if req.filesystem == FormatType::Xfs {
        let size = match &target {
            Some(t) => d
                .disk
                .partitions
                .iter()
                .find(|p| &p.path == t)
                .map_or(0, |p| p.size_bytes),
            None => d.disk.size_bytes,
        };
        if size < 300_000_000 {
            return Err(ApiError::invalid_field(
                "device_too_small",
                "filesystem",
                "XFS needs at least 300 MB",
            ));
        }
    }
    let claim = claim(&[&d])?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "disks.format",
            target: Some(d.disk.href.clone()),
            lock_key: Some(format!("disks/{}", d.disk.id)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _claim = claim;
            let dev = match &target {
                Some(t) => {
                    hostplane_host::blockdev::wipefs(t)
                        .await
                        .map_err(|e| JobFailure::command("wipe_failed", e))?;
                    t.clone()
                }
                None => {
                    wipe_disk(&d.disk)
                        .await
                        .map_err(|e| JobFailure::command("wipe_failed", e))?;
                    d.disk.path.clone()
                }
            };
            ctx.progress(20);
            ctx.log(format!("mkfs.{} on {dev}", req.filesystem.as_str()));
            hostplane_host::blockdev::mkfs(req.filesystem, &dev, req.label.as_deref())
                .await
                .map_err(|e| JobFailure::command("mkfs_failed", e))?;
            let uuid = hd::probe_blkid(std::slice::from_ref(&dev))
                .await
                .ok()
                .and_then(|v| v.into_iter().next())
                .and_then(|i| i.get("UUID"));
            publish_disk(&st, &actor, &d.disk);
            Ok(hostplane_types::jobs::DiskFormatResult {
                disk: d.disk.href,
                device: dev,
                filesystem: req.filesystem.as_str().to_string(),
                label: req.label,
                uuid,
            })
        },
    )?;
    Ok(accepted(&job))
}
