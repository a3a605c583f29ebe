//! `/api/v1/services`: systemd service units over D-Bus — list, read, start/stop/restart
//! (jobs), enable/disable. The Jidoteki `GET /admin/services` reads the same units.
//!
//! Flow: auth layer (reads: any role; actions are POSTs: operator) → handler → the adapter
//! `hostplane_host::systemd` on a fresh connection to the system bus (`[services]
//! dbus_address`, else `$DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket). Every read is
//! live. A host without systemd answers 503 `systemd_unavailable` with the reason; an unknown
//! unit 404; a bad name 422.
//!
//! start/stop/restart check the name and that the unit exists, then answer 202 with a job
//! (lock `services:<unit>`, so two actions on one unit never overlap) that asks systemd
//! (mode `replace`) and waits for systemd's own job to finish (`JobRemoved`), up to
//! `[services] job_timeout_secs`. A result other than `done` fails the job with
//! `unit_job_failed`; the job's result holds the unit's state either way. enable/disable are
//! quick (`EnableUnitFiles`/`DisableUnitFiles` + `Reload`) and answer 200 with the unit.
//!
//! Safety: units are changed only with `[services] change_units` (absent: on unless `sandbox`);
//! tests and fuzzing run with `sandbox = true` and set `change_units = true` only with a bus of
//! their own in `dbus_address`. Otherwise actions answer 503 `systemd_not_configured` and the
//! host's own services are left alone.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_host::systemd::{Systemd, SystemdError, UnitAction};
use hostplane_types::jobs::Job;
use hostplane_types::services::{Service, ServiceActionResult};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::accepted;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::areas::Area;
use crate::state::AppState;

pub const AREA: Area = Area::new("services", "systemd service units over D-Bus", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services))
        .routes(routes!(get_service))
        .routes(routes!(start_service))
        .routes(routes!(stop_service))
        .routes(routes!(restart_service))
        .routes(routes!(enable_service))
        .routes(routes!(disable_service))
}

impl From<SystemdError> for ApiError {
    fn from(e: SystemdError) -> Self {
        match e {
            SystemdError::Unavailable(detail) => ApiError::Unavailable {
                code: "systemd_unavailable",
                detail,
            },
            SystemdError::NoSuchUnit(u) => ApiError::not_found(format!("no unit {u:?}")),
            SystemdError::InvalidName(m) => ApiError::invalid_field("invalid_name", "name", m),
            SystemdError::Failed { name, message } => ApiError::Conflict {
                code: "systemd_refused",
                detail: format!("systemd refused: {message} ({name})"),
            },
            e @ SystemdError::Timeout(_) => ApiError::Unavailable {
                code: "systemd_timeout",
                detail: e.to_string(),
            },
        }
    }
}

/// Changes go to systemd only with `[services] change_units` (absent: not in a sandbox), so a
/// daemon started for tests or fuzzing never stops the host's services, whatever bus its
/// environment names. Reads are always allowed.
fn check_may_change(state: &AppState) -> Result<(), ApiError> {
    if state.config.change_units() {
        Ok(())
    } else {
        Err(ApiError::Unavailable {
            code: "systemd_not_configured",
            detail: "unit changes are off: this daemon runs with sandbox on and without \
                     [services] change_units = true"
                .into(),
        })
    }
}

/// A connection to systemd at the configured bus (shared with `GET /admin/services`).
pub async fn connect(state: &AppState) -> Result<Systemd, SystemdError> {
    Systemd::connect(Some(&state.config.services.dbus_address)).await
}

/// Service units: loaded ones and installed unit files, with their states, read now.
#[utoipa::path(get, path = "/api/v1/services",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("services:read"))),
    tag = "services", params(CollectionParams),
    responses((status = 200, description = "Service units", body = [Service],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_services(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Bad collection parameters are 422 whether or not systemd is there.
    params.parse::<Service>()?;
    let sd = connect(&state).await?;
    collection::respond(sd.list_services().await?, &params, &headers)
}

/// One unit (a name without a suffix means `.service`).
#[utoipa::path(get, path = "/api/v1/services/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("services:read"))),
    tag = "services",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$", max_length = 240, description = "Unit name, e.g. `ssh` or `ssh.service`: 1–240 of A-Z a-z 0-9 : _ . \\ @ -, not starting with - or ., without `..`")),
    responses((status = 200, description = "The unit, read now", body = Service)))]
async fn get_service(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Service>> {
    hostplane_host::systemd::unit_name(&name)?;
    let sd = connect(&state).await?;
    Ok(axum::Json(sd.unit(&name).await?))
}

/// Start the unit: a job that waits for systemd's result (operator).
#[utoipa::path(post, path = "/api/v1/services/{name}/start",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("services:write"))),
    tag = "services",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$", max_length = 240, description = "Unit name (as for `GET /services/{name}`)")),
    responses((status = 202, description = "Started; follow the job at Location", body = Job)))]
async fn start_service(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let job = spawn_action(&state, &p.user, &name, UnitAction::Start).await?;
    Ok(accepted(&job))
}

/// Stop the unit: a job that waits for systemd's result (operator).
#[utoipa::path(post, path = "/api/v1/services/{name}/stop",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("services:write"))),
    tag = "services",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$", max_length = 240, description = "Unit name (as for `GET /services/{name}`)")),
    responses((status = 202, description = "Started; follow the job at Location", body = Job)))]
async fn stop_service(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let job = spawn_action(&state, &p.user, &name, UnitAction::Stop).await?;
    Ok(accepted(&job))
}

/// Restart the unit: a job that waits for systemd's result (operator).
#[utoipa::path(post, path = "/api/v1/services/{name}/restart",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("services:write"))),
    tag = "services",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$", max_length = 240, description = "Unit name (as for `GET /services/{name}`)")),
    responses((status = 202, description = "Started; follow the job at Location", body = Job)))]
async fn restart_service(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let job = spawn_action(&state, &p.user, &name, UnitAction::Restart).await?;
    Ok(accepted(&job))
}

/// Enable the unit file (start at boot), then reload systemd (operator).
#[utoipa::path(post, path = "/api/v1/services/{name}/enable",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("services:write"))),
    tag = "services",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$", max_length = 240, description = "Unit name (as for `GET /services/{name}`)")),
    responses((status = 200, description = "The unit afterwards", body = Service)))]
async fn enable_service(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Service>> {
    set_enabled(&state, &p.user, &name, true).await
}

/// Disable the unit file, then reload systemd (operator).
#[utoipa::path(post, path = "/api/v1/services/{name}/disable",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("services:write"))),
    tag = "services",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$", max_length = 240, description = "Unit name (as for `GET /services/{name}`)")),
    responses((status = 200, description = "The unit afterwards", body = Service)))]
async fn disable_service(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Service>> {
    set_enabled(&state, &p.user, &name, false).await
}

async fn set_enabled(
    state: &AppState,
    actor: &str,
    name: &str,
    enabled: bool,
) -> ApiResult<axum::Json<Service>> {
    let name = hostplane_host::systemd::unit_name(name)?;
    check_may_change(state)?;
    let sd = connect(state).await?;
    sd.set_enabled(&name, enabled).await?;
    let svc = sd.unit(&name).await?;
    state.events.publish(
        "resource.updated",
        &svc.href,
        actor,
        serde_json::to_value(&svc).unwrap_or_default(),
    );
    Ok(axum::Json(svc))
}

async fn spawn_action(
    state: &AppState,
    actor: &str,
    name: &str,
    action: UnitAction,
) -> Result<Job, ApiError> {
    let name = hostplane_host::systemd::unit_name(name)?;
    check_may_change(state)?;
    // Errors a caller can fix come now, not as a failed job.
    connect(state).await?.unit(&name).await?;
    let st = state.clone();
    let href = format!("/api/v1/services/{name}");
    let timeout = Duration::from_secs(state.config.services.job_timeout_secs);
    let kind = match action {
        UnitAction::Start => "services.start",
        UnitAction::Stop => "services.stop",
        UnitAction::Restart => "services.restart",
    };
    let actor_owned = actor.to_string();
    state.jobs.spawn(
        JobSpec {
            kind,
            target: Some(href),
            lock_key: Some(format!("services/{name}")),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            let fail =
                |code: &'static str| move |e: SystemdError| JobFailure::new(code, e.to_string());
            ctx.log(format!("asking systemd to {} {name}", action.as_str()));
            let sd = connect(&st).await.map_err(fail("systemd_unavailable"))?;
            let result = sd
                .run_action(action, &name, timeout)
                .await
                .map_err(|e| match e {
                    SystemdError::Timeout(_) => JobFailure::new("systemd_timeout", e.to_string()),
                    e => JobFailure::new("systemd_error", e.to_string()),
                })?;
            let svc = sd.unit(&name).await.map_err(fail("systemd_error"))?;
            ctx.log(format!(
                "systemd job {result}; {name} is {} ({})",
                svc.active_state, svc.sub_state
            ));
            st.events.publish(
                "resource.updated",
                &svc.href,
                &actor_owned,
                serde_json::to_value(&svc).unwrap_or_default(),
            );
            let out = ServiceActionResult {
                action: action.as_str().to_string(),
                result: result.clone(),
                service: svc,
            };
            if result != "done" {
                return Err(JobFailure::new(
                    "unit_job_failed",
                    format!(
                        "{} of {name} ended with {result:?}; the unit is {} ({})",
                        action.as_str(),
                        out.service.active_state,
                        out.service.sub_state
                    ),
                )
                .with_result(&out));
            }
            Ok(out)
        },
    )
}

#[cfg(test)]
mod unit_name_pattern_tests {
    use hostplane_host::systemd::unit_name;
    use hostplane_types::{UNIT_NAME_MAX_LEN, UNIT_NAME_PATTERN};

    /// The `{name}` pattern accepts exactly what `unit_name` accepts.
    #[test]
    fn pattern_matches_unit_name() {
        let re = regex::Regex::new(UNIT_NAME_PATTERN).unwrap();
        let schema_ok = |s: &str| re.is_match(s) && s.len() <= UNIT_NAME_MAX_LEN;
        let alphabet = ['a', '0', ':', '_', '.', '\\', '@', '-', ' ', '/', 'é'];
        let mut words = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(last.iter().cloned());
        }
        words.extend(["a".repeat(240), "a".repeat(241)]);
        for w in &words {
            assert_eq!(schema_ok(w), unit_name(w).is_ok(), "{w:?}");
        }
    }

    /// Every `/services/{name}` operation carries the pattern.
    #[test]
    fn operations_carry_the_unit_pattern() {
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v1/services/{name}") {
                continue;
            }
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["name"] == "name" {
                        assert_eq!(p["schema"]["pattern"], UNIT_NAME_PATTERN, "{path}");
                        assert_eq!(p["schema"]["maxLength"], UNIT_NAME_MAX_LEN, "{path}");
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 6);
    }
}
