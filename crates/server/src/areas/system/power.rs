//! `POST /api/v1/system/reboot`: back up, then reboot, as a job (lock `system.reboot`; admin
//! only). The Jidoteki `GET /admin/reboot` starts the same job.
//!
//! Flow: auth layer (mutation: operator) → handler (admin) → [`start_reboot`] spawns the job →
//! 202 + `Location: /api/v1/jobs/<id>`. The job:
//! 1. takes a backup with the backup service (`areas::system::backup::take_backup`, a
//!    `system.backup` job it waits for); a failed backup stops the job (`backup_failed`) and
//!    the host is not rebooted;
//! 2. runs the reboot action: `admin.reboot_command` (argv, no shell) when set; otherwise
//!    systemd over D-Bus (`StartUnit reboot.target replace-irreversibly`, what
//!    `systemctl reboot` does), else the `reboot` program when systemd is not reachable (the
//!    programs through the host adapter `hostplane_host::power`).
//!
//! Safety: with no `reboot_command`, a daemon with `sandbox` on (tests and fuzzing set it; it is
//! on by default when not root) refuses to reboot the machine (`reboot_not_configured`)
//! instead of rebooting whatever host it runs on.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use hostplane_host::power::RebootCommand;
use hostplane_types::jobs::Job;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::accepted;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::state::AppState;

pub const REBOOT_LOCK: &str = "system/reboot";
/// Pause before the reboot action, so the 202 and the job's last state reach clients.
const GRACE: Duration = Duration::from_millis(300);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reboot))
}

/// Back up, then reboot the host (a job; admin). A second request while one runs gets 409.
#[utoipa::path(post, path = "/api/v1/system/reboot",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system",
    responses((status = 202, description = "Started; follow the job at Location", body = Job)))]
async fn reboot(State(state): State<AppState>, Caller(p): Caller) -> ApiResult<Response> {
    let job = start_reboot(&state, &p.user)?;
    Ok(accepted(&job))
}

/// Spawns the reboot job (shared with `GET /admin/reboot`).
pub fn start_reboot(state: &AppState, actor: &str) -> Result<Job, ApiError> {
    let st = state.clone();
    let by = actor.to_string();
    state.jobs.spawn(
        JobSpec {
            kind: "system.reboot",
            target: Some("/api/v1/system".into()),
            lock_key: Some(REBOOT_LOCK.into()),
            actor: actor.to_string(),
        },
        move |ctx| async move { run_reboot(st, ctx, by).await },
    )
}

async fn run_reboot(
    state: AppState,
    ctx: Arc<JobCtx>,
    actor: String,
) -> Result<hostplane_types::jobs::RebootResult, JobFailure> {
    ctx.log("step 1/2: backup before the reboot");
    let backup = backup_first(&state, &ctx, &actor).await?;
    ctx.progress(50);
    ctx.log("step 2/2: reboot");
    tokio::time::sleep(GRACE).await;
    let action = reboot_action(&state, &ctx).await?;
    ctx.log(format!("reboot requested ({action})"));
    Ok(hostplane_types::jobs::RebootResult { backup, action })
}

/// Takes the pre-reboot backup with the backup service (a `system.backup` job; when one is
/// already running, waits for it) and returns it, for the job result.
async fn backup_first(
    state: &AppState,
    ctx: &JobCtx,
    actor: &str,
) -> Result<hostplane_types::system::backup::Backup, JobFailure> {
    ctx.log("taking a backup (system.backup job)");
    let b = crate::areas::system::backup::take_backup(state, actor)
        .await
        .map_err(|e| JobFailure::new("backup_failed", format!("no reboot: {e}")))?;
    ctx.log(format!("backup done: {}", b.href));
    Ok(b)
}

/// How the reboot action would act: `command`, `systemd` or `refused` (GET /system/capabilities).
pub fn reboot_mode(config: &crate::config::Config) -> &'static str {
    if !config.admin.reboot_command.is_empty() {
        "command"
    } else if config.sandbox() {
        "refused"
    } else {
        "systemd"
    }
}

async fn reboot_action(state: &AppState, ctx: &JobCtx) -> Result<String, JobFailure> {
    if let Some(cmd) = RebootCommand::from_argv(&state.config.admin.reboot_command) {
        let shown = cmd.shown();
        ctx.log(format!("running admin.reboot_command: {shown}"));
        cmd.run()
            .await
            .map_err(|e| JobFailure::command("reboot_failed", e))?;
        return Ok(format!("command: {shown}"));
    }
    if state.config.sandbox() {
        return Err(JobFailure::new(
            "reboot_not_configured",
            "refusing to reboot this machine: the daemon runs with sandbox on (the default when \
             not root); set admin.reboot_command, or sandbox = false on the installed service"
                .to_string(),
        ));
    }
    let bus = &state.config.services.dbus_address;
    match hostplane_host::systemd::Systemd::connect(Some(bus)).await {
        Ok(sd) => {
            ctx.log(format!(
                "asking systemd at {} to start reboot.target",
                sd.address()
            ));
            sd.reboot()
                .await
                .map_err(|e| JobFailure::new("reboot_failed", e.to_string()))?;
            Ok("systemd: reboot.target".into())
        }
        Err(e) => {
            ctx.log(format!("{e}; running `reboot`"));
            hostplane_host::power::reboot_program()
                .await
                .map_err(|e| JobFailure::command("reboot_failed", e))?;
            Ok("command: reboot".into())
        }
    }
}
