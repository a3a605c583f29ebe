//! Update checks: `POST /container-updates/check` (a job) and `GET /container-updates`.
//!
//! Check flow (job `containers.update_check`, one at a time): for each engine that answers,
//! each container: parse its image reference → the digest the engine pulled for that
//! repository (the image's `RepoDigests`) → the registry's manifest digest for the tag now
//! (`hostplane_host::containers::registry`: HEAD/GET of the v2 manifest, `Docker-Content-Digest`,
//! no redirect to another host) → `update_available`: `true` when they differ, `false` when
//! they match, `"unknown"` when either is missing (a local import, a reference pinned by digest,
//! a registry that does not answer), with the reason. Then each compose stack
//! (`platform::stack_images`: the stacks area resolves each compose file with `docker-compose
//! config`) → per service: the image its container runs (by the compose labels) or, before
//! `up`, the engine's image of the reference → the same comparison → the stack has an update
//! when a service has one (`updated_services`). Each registry answer is asked once per
//! reference per check. The statuses are kept in the store (`settings`, keys
//! `container-update:<engine>/<name>` and `stack-update:<stack>`), replacing the previous
//! ones; an engine that is down keeps its containers' and stacks' last statuses.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_host::containers::Engine;
use hostplane_host::containers::registry::{Reference, Registry, digest_for};
use hostplane_types::containers::Container;
use hostplane_host::compose::{PROJECT_LABEL, SERVICE_LABEL};
use hostplane_types::containers_ops::{
    ContainerUpdateStatus, ServiceUpdateStatus, UpdateAvailable, UpdateCheckResult,
    UpdateUnknown,
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
use crate::platform::stack_images::StackServices;
use crate::platform::store::Store;
use crate::platform::time;
use crate::state::AppState;

const PREFIX: &str = "container-update:";
/// A stack's status: `stack-update:<stack>`.
const STACK_PREFIX: &str = "stack-update:";
const STACK_END: &str = "stack-update;";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_updates))
        .routes(routes!(list_updates))
}

/// Check every container's and every compose stack's images against their registries (a job;
/// its result counts them; the statuses are `GET /container-updates`).
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
                stacks_checked: 0,
                stack_updates_available: 0,
            };
            let mut cache = Cache::new();
            let engines = st.engines().all().to_vec();
            // Each reachable engine's containers (the stacks' services are among them).
            let mut listed: HashMap<String, Vec<Container>> = HashMap::new();
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
                listed.insert(e.name().to_string(), list);
                ctx.progress((((i + 1) * 90) / engines.len().max(1)) as u8);
            }
            if res.checked == 0 && !res.unreachable_engines.is_empty() {
                return Err(job_failure(hostplane_host::containers::EngineError::Unavailable {
                    engine: res.unreachable_engines.join(","),
                    detail: "no engine answered".into(),
                }));
            }
            // The stacks: each service's image as its compose file resolves it.
            let mut stack_statuses = Vec::new();
            let mut keep = Vec::new();
            for s in st.stack_images.list(&st).await {
                if res.unreachable_engines.contains(&s.engine) {
                    keep.push(s.name.clone());
                    continue;
                }
                let e = engines.iter().find(|e| e.name() == s.engine);
                let containers = listed.get(&s.engine).map(Vec::as_slice).unwrap_or(&[]);
                let status = check_stack(e, &s, containers, &registry, &mut cache).await;
                ctx.log(format!(
                    "stack {}: {} ({})",
                    s.name,
                    serde_json::to_string(&status.update_available).unwrap_or_default(),
                    status.reason.as_deref().unwrap_or("compared digests")
                ));
                res.stacks_checked += 1;
                if status.update_available == UpdateAvailable::Known(true) {
                    res.stack_updates_available += 1;
                }
                stack_statuses.push(status);
            }
            save_stacks(&st.store, &stack_statuses, &keep)
                .map_err(|err| JobFailure::new("internal", err.to_string()))?;
            ctx.progress(100);
            Ok(res)
        },
    )?;
    Ok(accepted(&job))
}

/// The registry's answers of one check, asked once per repository and tag.
type Cache = HashMap<String, Result<String, String>>;

/// One image compared with its registry.
struct Compared {
    local_digest: Option<String>,
    registry_digest: Option<String>,
    update_available: UpdateAvailable,
    reason: Option<String>,
}

/// Compares `image` (the reference) as the engine has it (`image_id`: the image a container
/// runs, or the reference itself) with the registry's manifest for the reference's tag now.
async fn compare(
    e: &Engine,
    image: &str,
    image_id: &str,
    registry: &Registry,
    cache: &mut Cache,
) -> Compared {
    let mut c = Compared {
        local_digest: None,
        registry_digest: None,
        update_available: UpdateAvailable::Unknown(UpdateUnknown::Unknown),
        reason: None,
    };
    let Some(r) = Reference::parse(image) else {
        c.reason = Some("the image reference cannot be parsed".into());
        return c;
    };
    if r.digest.is_some() {
        c.reason = Some("pinned by digest".into());
        return c;
    }
    if r.registry == "localhost" {
        // podman's name for local images (imports, builds): no registry behind it.
        c.reason = Some("a local image (localhost/…: no registry)".into());
        return c;
    }
    match e.repo_digests(image_id).await {
        Ok(d) => c.local_digest = digest_for(&r, &d),
        Err(err) => {
            c.reason = Some(format!("the engine has no image {image_id}: {err}"));
            return c;
        }
    }
    // An image the tag no longer names may have lost its repo digest (podman drops it): the
    // one the tag names now stands in, and that it is another image is itself news.
    let mut superseded = false;
    if c.local_digest.is_none()
        && image_id != image
        && let Ok((id, d)) = e.image_digests(image).await
        && id != image_id
        && let Some(now) = digest_for(&r, &d)
    {
        superseded = true;
        c.reason = Some(format!(
            "runs an older image than {image} names on the engine now ({now})"
        ));
    }
    if c.local_digest.is_none() && !superseded {
        c.reason = Some("a local image (no registry digest)".into());
        return c;
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
            c.update_available =
                UpdateAvailable::Known(superseded || c.local_digest.as_deref() != Some(&d));
            c.registry_digest = Some(d);
        }
        Err(err) => {
            c.update_available = UpdateAvailable::Unknown(UpdateUnknown::Unknown);
            c.reason = Some(err);
        }
    }
    c
}

/// One container's status now.
async fn check_one(
    e: &Engine,
    c: &Container,
    registry: &Registry,
    cache: &mut Cache,
) -> ContainerUpdateStatus {
    let r = compare(e, &c.image, &c.image_id, registry, cache).await;
    ContainerUpdateStatus {
        kind: "container".into(),
        href: c.href.clone(),
        engine: e.name().to_string(),
        name: c.name.clone(),
        image: c.image.clone(),
        local_digest: r.local_digest,
        registry_digest: r.registry_digest,
        update_available: r.update_available,
        checked_at: time::now_string(),
        reason: r.reason,
        updated_services: Vec::new(),
        services: Vec::new(),
    }
}

/// One stack's status now: each service's image compared with its registry, as the service's
/// container runs it (or, with no container yet, as the engine has the reference); the stack
/// has an update when any service has one, and is `unknown` when none has and one is unknown.
async fn check_stack(
    e: Option<&std::sync::Arc<Engine>>,
    s: &StackServices,
    containers: &[Container],
    registry: &Registry,
    cache: &mut Cache,
) -> ContainerUpdateStatus {
    let mut images: Vec<&str> = Vec::new();
    for v in &s.services {
        if !images.contains(&v.image.as_str()) {
            images.push(&v.image);
        }
    }
    let mut out = ContainerUpdateStatus {
        kind: "stack".into(),
        href: s.href.clone(),
        engine: s.engine.clone(),
        name: s.name.clone(),
        image: images.join(", "),
        local_digest: None,
        registry_digest: None,
        update_available: UpdateAvailable::Unknown(UpdateUnknown::Unknown),
        checked_at: time::now_string(),
        reason: s.error.clone(),
        updated_services: Vec::new(),
        services: Vec::new(),
    };
    if s.error.is_some() {
        return out;
    }
    let Some(e) = e else {
        out.reason = Some(format!("engine {:?} is not configured", s.engine));
        return out;
    };
    let label = |c: &Container, k: &str| c.labels.get(k).cloned().unwrap_or_default();
    for svc in &s.services {
        let running = containers.iter().find(|c| {
            label(c, PROJECT_LABEL) == s.project && label(c, SERVICE_LABEL) == svc.service
        });
        let image_id = running.map(|c| c.image_id.as_str()).unwrap_or(&svc.image);
        let r = compare(e, &svc.image, image_id, registry, cache).await;
        out.services.push(ServiceUpdateStatus {
            service: svc.service.clone(),
            image: svc.image.clone(),
            local_digest: r.local_digest,
            registry_digest: r.registry_digest,
            update_available: r.update_available,
            reason: r.reason,
        });
    }
    out.updated_services = out
        .services
        .iter()
        .filter(|v| v.update_available == UpdateAvailable::Known(true))
        .map(|v| v.service.clone())
        .collect();
    let unknown: Vec<String> = out
        .services
        .iter()
        .filter(|v| matches!(v.update_available, UpdateAvailable::Unknown(_)))
        .map(|v| {
            format!(
                "service {}: {}",
                v.service,
                v.reason.as_deref().unwrap_or("unknown")
            )
        })
        .collect();
    if !out.updated_services.is_empty() {
        out.update_available = UpdateAvailable::Known(true);
    } else if !unknown.is_empty() {
        out.reason = Some(unknown.join("; "));
    } else if out.services.is_empty() {
        out.reason = Some("no services".into());
    } else {
        out.update_available = UpdateAvailable::Known(false);
    }
    out
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

/// Replaces the stacks' statuses, keeping those named in `keep` (their engine did not answer).
fn save_stacks(
    store: &Store,
    statuses: &[ContainerUpdateStatus],
    keep: &[String],
) -> rusqlite::Result<()> {
    store.write(|tx| {
        let old: Vec<String> = {
            let mut st = tx.prepare("SELECT key FROM settings WHERE key >= ?1 AND key < ?2")?;
            st.query_map([STACK_PREFIX, STACK_END], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for k in old {
            let name = k.strip_prefix(STACK_PREFIX).unwrap_or_default();
            if !keep.iter().any(|n| n == name) {
                tx.execute("DELETE FROM settings WHERE key = ?1", [&k])?;
            }
        }
        for s in statuses {
            tx.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [
                    format!("{STACK_PREFIX}{}", s.name),
                    serde_json::to_string(s).unwrap_or_default(),
                ],
            )?;
        }
        Ok(())
    })
}

fn load(store: &Store) -> rusqlite::Result<Vec<ContainerUpdateStatus>> {
    let mut rows: Vec<String> = Vec::new();
    for (lo, hi) in [("container-update:", "container-update;"), (STACK_PREFIX, STACK_END)] {
        let part: Vec<String> = store.read(|c| {
            let mut st = c.prepare(
                "SELECT value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )?;
            st.query_map([lo, hi], |r| r.get(0))?.collect()
        })?;
        rows.extend(part);
    }
    Ok(rows
        .iter()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect())
}

/// The last update check's status of each container and each compose stack (`kind`;
/// `update_available`: true, false or `"unknown"` with a `reason`; a stack lists its services
/// and which of them have an update).
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
