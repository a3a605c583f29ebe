//! `GET /api/v1/admin/health` (Jidoteki section 7): disk, memory and CPU in exactly the
//! spec's shape, derived from the native `GET /api/v1/system/health` (read live from `/proc`
//! and `statvfs`).
//!
//! * `disk`: the filesystem holding the data dir, `df -h` style sizes (`3.4G`), `percentage`
//!   as `df`'s Use% (rounded up).
//! * `memory`: used (total − available) and total in MiB (`260M`, as `free -m`), `percentage`
//!   rounded down.
//! * `cpu`: `num` online CPUs, `load` the three load averages (`0.66, 0.28, 0.14`),
//!   `cpu5min` the 5-minute load average rounded down — the Jidoteki UI flags the CPU when
//!   `cpu5min >= num`.

use axum::extract::State;
use hostplane_host::health::human_size;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::health::read_health;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JidotekiHealth {
    pub disk: SizeUsage,
    pub memory: SizeUsage,
    pub cpu: CpuHealth,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SizeUsage {
    /// e.g. `3.4G` (disk) or `260M` (memory).
    pub used: String,
    pub total: String,
    /// 0–100.
    pub percentage: u8,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CpuHealth {
    /// Online CPUs.
    pub num: u32,
    /// `1min, 5min, 15min` load averages, two decimals.
    pub load: String,
    /// The 5-minute load average, rounded down.
    pub cpu5min: u64,
}

/// Disk, memory and CPU health (Jidoteki `GET /health`).
#[utoipa::path(get, path = "/api/v1/admin/health",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Health, read now", body = JidotekiHealth)))]
async fn health(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiHealth>> {
    let h = read_health(&state).await?;
    // The data dir's filesystem: listed second when it is not the root filesystem.
    let fs =
        h.filesystems
            .last()
            .cloned()
            .unwrap_or_else(|| hostplane_types::health::FilesystemUsage {
                path: "/".into(),
                total_bytes: 0,
                used_bytes: 0,
                available_bytes: 0,
                used_percent: 0,
            });
    const MIB: u64 = 1024 * 1024;
    let m = &h.memory;
    let mem_pct = if m.total_bytes == 0 {
        0
    } else {
        (m.used_bytes as u128 * 100 / m.total_bytes as u128).min(100) as u8
    };
    Ok(axum::Json(JidotekiHealth {
        disk: SizeUsage {
            used: human_size(fs.used_bytes),
            total: human_size(fs.total_bytes),
            percentage: fs.used_percent,
        },
        memory: SizeUsage {
            used: format!("{}M", m.used_bytes / MIB),
            total: format!("{}M", m.total_bytes / MIB),
            percentage: mem_pct,
        },
        cpu: CpuHealth {
            num: h.cpu_count,
            load: format!(
                "{:.2}, {:.2}, {:.2}",
                h.load.one, h.load.five, h.load.fifteen
            ),
            cpu5min: h.load.five.max(0.0).floor() as u64,
        },
    }))
}
