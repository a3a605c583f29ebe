//! Update checks: `POST /container-updates/check` (a job) and `GET /container-updates`.
//!
//! Check flow (job `containers.update_check`, one at a time): for each engine that answers,
//! each container: parse its image reference → the digest the engine pulled for that
//! repository (the image's `RepoDigests`) → the registry's manifest digest for the tag now
//! (`hostplane_host::containers::registry`: HEAD/GET of the v2 manifest, `Docker-Content-Digest`,
//! no redirect to another host) → `update_available`: `true` when they differ, `false` when
//! they match, `"unknown"` when either is missing (a local import, a reference pinned by digest,
//! a registry that does not answer), with the reason. Each registry answer is asked once per
//! reference per check. The statuses are kept in the store (`settings`, keys
//! `container-update:<engine>/<name>`), replacing an engine's previous ones; an engine that is
//! down keeps its last statuses.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_host::containers::Engine;
use hostplane_host::containers::registry::{Reference, Registry, digest_for};
use hostplane_types::containers::Container;
use hostplane_types::containers_ops::{
    ContainerUpdateStatus, UpdateAvailable, UpdateCheckResult, UpdateUnknown,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::ContainersState;
use super::limits::job_failure;
use crate::error::ApiResult;
use crate::http::answer::accepted;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::platform::store::Store;
use crate::platform::time;
use crate::state::AppState;

const PREFIX: &str = "container-update:";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_updates))
        .routes(routes!(list_updates))
}

/// Check every container's image against its registry (a job; its result counts them; the
/// statuses are `GET /container-updates`).
#[utoipa::path(post, path = "/api/v1/container-updates/check",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn check_updates(State(state): State<AppState>, Caller(p): Caller) -> ApiResult<Response> {
    let st = state.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "containers.update_check",
            target: Some("/api/v1/container-updates".into()),
            lock_key: Some("containers/updates".into()),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let registry = Registry::new(Duration::from_secs(20))
                .map_err(|e| JobFailure::new("internal", e))?;
            let mut res = UpdateCheckResult {
                checked: 0,
                updates_available: 0,
                unknown: 0,
                unreachable_engines: Vec::new(),
            };
            let mut cache: HashMap<String, Result<String, String>> = HashMap::new();
            let engines = st.engines().all().to_vec();
            for (i, e) in engines.iter().enumerate() {
                let list = match e.list_containers().await {
                    Ok(l) => l,
                    Err(err) => {
                        ctx.log(format!("{}: {err}", e.name()));
                        res.unreachable_engines.push(e.name().to_string());
                        continue;
                    }
                };
                let mut statuses = Vec::new();
                for c in &list {
                    let s = check_one(e, c, &registry, &mut cache).await;
                    ctx.log(format!(
                        "{}/{}: {} ({})",
                        e.name(),
                        c.name,
                        serde_json::to_string(&s.update_available).unwrap_or_default(),
                        s.reason.as_deref().unwrap_or("compared digests")
                    ));
                    res.checked += 1;
                    match s.update_available {
                        UpdateAvailable::Known(true) => res.updates_available += 1,
                        UpdateAvailable::Unknown(_) => res.unknown += 1,
                        UpdateAvailable::Known(false) => {}
                    }
                    statuses.push(s);
                }
                save(&st.store, e.name(), &statuses)
                    .map_err(|err| JobFailure::new("internal", err.to_string()))?;
                ctx.progress((((i + 1) * 100) / engines.len().max(1)) as u8);
            }
            if res.checked == 0 && !res.unreachable_engines.is_empty() {
                return Err(job_failure(hostplane_host::containers::EngineError::Unavailable {
                    engine: res.unreachable_engines.join(","),
                    detail: "no engine answered".into(),
                }));
            }
            Ok(res)
        },
    )?;
    Ok(accepted(&job))
}

/// One container's status now.
async fn check_one(
    e: &Engine,
    c: &Container,
    registry: &Registry,
    cache: &mut HashMap<String, Result<String, String>>,
) -> ContainerUpdateStatus {
    let mut s = ContainerUpdateStatus {
        href: c.href.clone(),
        engine: e.name().to_string(),
        name: c.name.clone(),
        image: c.image.clone(),
        local_digest: None,
        registry_digest: None,
        update_available: UpdateAvailable::Unknown(UpdateUnknown::Unknown),
        checked_at: time::now_string(),
        reason: None,
    };
    let Some(r) = Reference::parse(&c.image) else {
        s.reason = Some("the image reference cannot be parsed".into());
        return s;
    };
    if r.digest.is_some() {
        s.reason = Some("pinned by digest".into());
        return s;
    }
    match e.repo_digests(&c.image_id).await {
        Ok(d) => s.local_digest = digest_for(&r, &d),
        Err(err) => {
            s.reason = Some(format!("the engine has no image {}: {err}", c.image_id));
            return s;
        }
    }
    if s.local_digest.is_none() {
        s.reason = Some("a local image (no registry digest)".into());
        return s;
    }
    let key = format!(
        "{}/{}:{}",
        r.registry,
        r.repository,
        r.tag.as_deref().unwrap_or("latest")
    );
    let remote = match cache.get(&key) {
        Some(v) => v.clone(),
        None => {
            let v = registry.digest(&r).await;
            cache.insert(key, v.clone());
            v
        }
    };
    match remote {
        Ok(d) => {
            s.update_available = UpdateAvailable::Known(s.local_digest.as_deref() != Some(&d));
            s.registry_digest = Some(d);
        }
        Err(err) => s.reason = Some(err),
    }
    s
}

/// Replaces the statuses of `engine`.
fn save(store: &Store, engine: &str, statuses: &[ContainerUpdateStatus]) -> rusqlite::Result<()> {
    let lo = format!("{PREFIX}{engine}/");
    let hi = format!("{PREFIX}{engine}0");
    store.write(|tx| {
        tx.execute(
            "DELETE FROM settings WHERE key >= ?1 AND key < ?2",
            [&lo, &hi],
        )?;
        for s in statuses {
            tx.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [
                    format!("{lo}{}", s.name),
                    serde_json::to_string(s).unwrap_or_default(),
                ],
            )?;
        }
        Ok(())
    })
}

fn load(store: &Store) -> rusqlite::Result<Vec<ContainerUpdateStatus>> {
    let rows: Vec<String> = store.read(|c| {
        let mut st = c.prepare(
            "SELECT value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )?;
        st.query_map(["container-update:", "container-update;"], |r| r.get(0))?
            .collect()
    })?;
    Ok(rows
        .iter()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect())
}

/// The last update check's status of each container (`update_available`: true, false or
/// `"unknown"` with a `reason`).
#[utoipa::path(get, path = "/api/v1/container-updates",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers", params(CollectionParams),
    responses((status = 200, description = "Statuses", body = [ContainerUpdateStatus],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_updates(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let all = load(&state.store).map_err(crate::error::ApiError::internal)?;
    collection::respond(all, &params, &headers)
}
