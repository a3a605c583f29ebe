//! `/api/v1/system`: what this host can do, and the self-test job.
//!
//! `GET /system/capabilities` probes live (tools on PATH, KVM usability decided from CPU flags
//! and PVM, not from `/dev/kvm` alone). `POST /system/selftest` starts a job that checks the
//! store, the data dir's free space and writability, and the host tools, step by step with
//! progress; `step_delay_ms` paces the steps so a caller can watch (or a test can interrupt).


use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use hostplane_types::system::{Capabilities, SelftestRequest, SelftestResult, SelftestStep};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::accepted;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::areas::{Area, AnyState};
use crate::state::{AppState, Services};

pub mod backup;
pub mod certificate;
pub mod health;
pub mod license;
pub mod power;
pub mod storage;
pub mod support;
pub mod update;
pub mod uploads;

const MAX_STEP_DELAY_MS: u64 = 60_000;

pub const AREA: Area = Area {
    init: Some(init),
    ..Area::new("system", "Host capabilities and self-test", router)
};

/// Update and backup work dirs left by an interrupted run, the appliance's age identity.
fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    update::at_start(&services.config);
    backup::at_start(&services.config);
    Ok(None)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(capabilities))
        .routes(routes!(selftest))
        .merge(certificate::router())
        .merge(storage::router())
        .merge(backup::router())
        .merge(health::router())
        .merge(support::router())
        .merge(power::router())
        .merge(update::router())
        .merge(license::router())
}

/// What this host has: tools per area, virtualization, init system, cgroups.
#[utoipa::path(get, path = "/api/v1/system/capabilities",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "Capabilities, probed now", body = Capabilities)))]
async fn capabilities(State(state): State<AppState>) -> axum::Json<Capabilities> {
    let mut caps = hostplane_host::capabilities::probe().await;
    caps.host_actions = host_actions(&state.config);
    axum::Json(caps)
}

/// The settings that decide how far this daemon acts on its host.
pub fn host_actions(config: &crate::config::Config) -> hostplane_types::system::HostActions {
    hostplane_types::system::HostActions {
        sandbox: config.sandbox(),
        system_root: config.system_root().display().to_string(),
        reboot: power::reboot_mode(config).into(),
        change_units: config.change_units(),
    }
}

/// Start the self-test job. Only one runs at a time (lock `system.selftest`).
#[utoipa::path(post, path = "/api/v1/system/selftest",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("system:write"))),
    tag = "system", request_body = SelftestRequest,
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn selftest(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<SelftestRequest>,
) -> ApiResult<Response> {
    let delay = req.step_delay_ms.unwrap_or(0);
    if delay > MAX_STEP_DELAY_MS {
        return Err(ApiError::invalid_field(
            "invalid_step_delay",
            "step_delay_ms",
            format!("step_delay_ms is 0 .. {MAX_STEP_DELAY_MS}"),
        ));
    }
    let st = state.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "system.selftest",
            target: Some("/api/v1/system/health".into()),
            lock_key: Some("system/selftest".into()),
            actor: p.user.clone(),
        },
        move |ctx| async move { run_selftest(st, ctx, Duration::from_millis(delay)).await },
    )?;
    Ok(accepted(&job))
}

async fn pace(ctx: &JobCtx, delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let _ = ctx;
}

async fn run_selftest(
    state: AppState,
    ctx: std::sync::Arc<JobCtx>,
    delay: Duration,
) -> Result<SelftestResult, JobFailure> {
    let mut steps = Vec::new();
    let total = 4u8;
    let mut record = |ctx: &JobCtx, n: u8, step: SelftestStep| {
        ctx.log(format!(
            "[{}/{total}] {}: {} — {}",
            n,
            step.name,
            if step.ok { "ok" } else { "FAILED" },
            step.detail
        ));
        ctx.progress((u16::from(n) * 100 / u16::from(total)) as u8);
        steps.push(step);
    };

    // 1. The store answers and is sound.
    ctx.log("checking the store (PRAGMA integrity_check)");
    let integrity = state.store.integrity_check();
    let (ok, detail) = match integrity {
        Ok(s) if s == "ok" => (true, format!("{} is sound", state.store.path().display())),
        Ok(s) => (false, s),
        Err(e) => (false, e.to_string()),
    };
    record(
        &ctx,
        1,
        SelftestStep {
            name: "store".into(),
            ok,
            detail,
        },
    );
    pace(&ctx, delay).await;

    // 2. Free space in the data dir.
    let data_dir = state.config.data_dir.clone();
    let (ok, detail) = match hostplane_host::capabilities::disk_free(&data_dir) {
        Ok((total_b, avail)) => {
            let pct = if total_b == 0 {
                0.0
            } else {
                avail as f64 * 100.0 / total_b as f64
            };
            (
                avail >= 64 << 20,
                format!(
                    "{} MiB free of {} MiB ({pct:.1} %) in {}",
                    avail >> 20,
                    total_b >> 20,
                    data_dir.display()
                ),
            )
        }
        Err(e) => (false, format!("statvfs {}: {e}", data_dir.display())),
    };
    record(
        &ctx,
        2,
        SelftestStep {
            name: "disk_space".into(),
            ok,
            detail,
        },
    );
    pace(&ctx, delay).await;

    // 3. The data dir takes a durable write.
    let probe = data_dir.join(format!(".selftest-{}", ctx.id()));
    let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&probe)?;
        f.write_all(b"hostplane selftest\n")?;
        f.sync_all()?;
        std::fs::remove_file(&probe)
    })
    .await
    .map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let (ok, detail) = match res {
        Ok(()) => (true, "wrote, synced and removed a probe file".to_string()),
        Err(e) => (false, e.to_string()),
    };
    record(
        &ctx,
        3,
        SelftestStep {
            name: "data_dir_writable".into(),
            ok,
            detail,
        },
    );
    pace(&ctx, delay).await;

    // 4. Host tools, by area.
    let caps = hostplane_host::capabilities::probe().await;
    record(&ctx, 4, host_tools_step(&caps));

    let ok = steps.iter().all(|s| s.ok);
    let result = SelftestResult { steps, ok };
    if !ok {
        let message = result
            .steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("{}: {}", s.name, s.detail))
            .collect::<Vec<_>>()
            .join("; ");
        let failure = JobFailure::new("selftest_failed", message);
        return Err(failure.with_result(&result));
    }
    Ok(result)
}

/// Step 4 of the self-test: the daemon's own tools (area `system`: backups, debug bundles,
/// update packages) must be there; other missing tools only disable their areas.
fn host_tools_step(caps: &Capabilities) -> SelftestStep {
    let names = |f: &dyn Fn(&hostplane_types::system::Tool) -> bool| -> Vec<&str> {
        caps.tools
            .iter()
            .filter(|t| f(t))
            .map(|t| t.name.as_str())
            .collect()
    };
    let found = names(&|t| t.found);
    let missing = names(&|t| !t.found);
    let own_missing = names(&|t| !t.found && t.area == "system");
    SelftestStep {
        name: "host_tools".into(),
        ok: own_missing.is_empty(),
        detail: format!(
            "{}{} found, {} missing ({}); KVM usable: {} ({})",
            if own_missing.is_empty() {
                String::new()
            } else {
                format!(
                    "the daemon's own tools are missing: {}; ",
                    own_missing.join(", ")
                )
            },
            found.len(),
            missing.len(),
            missing.join(", "),
            caps.virtualization.kvm_usable,
            caps.virtualization.reason
        ),
    }
}

#[cfg(test)]
mod host_tools_tests {
    use super::*;
    use hostplane_types::system::{Tool, Virtualization};

    fn caps(tools: &[(&str, &str, bool)]) -> Capabilities {
        Capabilities {
            hostname: "h".into(),
            kernel: "k".into(),
            arch: "x86_64".into(),
            os: None,
            is_root: true,
            init: "systemd".into(),
            cgroup: "v2".into(),
            virtualization: Virtualization {
                kvm_device: false,
                cpu_flags: Vec::new(),
                pvm: false,
                kvm_usable: false,
                reason: "none".into(),
            },
            tools: tools
                .iter()
                .map(|(name, area, found)| Tool {
                    name: (*name).into(),
                    area: (*area).into(),
                    path: None,
                    found: *found,
                    version: None,
                })
                .collect(),
            probed_at: String::new(),
            host_actions: Default::default(),
        }
    }

    #[test]
    fn missing_area_tools_are_ok_missing_own_tools_are_not() {
        let s = host_tools_step(&caps(&[
            ("tar", "system", true),
            ("zstd", "system", true),
            ("dockerd", "containers", false),
        ]));
        assert!(s.ok, "{}", s.detail);
        assert!(
            s.detail.contains("2 found, 1 missing (dockerd)"),
            "{}",
            s.detail
        );
        let s = host_tools_step(&caps(&[
            ("tar", "system", true),
            ("zstd", "system", false),
            ("dockerd", "containers", true),
        ]));
        assert!(!s.ok);
        assert!(
            s.detail
                .starts_with("the daemon's own tools are missing: zstd; "),
            "{}",
            s.detail
        );
    }
}
