//! `/api/v1/jobs`: the jobs the engine (`platform::jobs`) runs. List/get, the log (plain text,
//! `?follow=true` streams until the job ends), `wait?timeout=`, and `DELETE` to cancel.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hostplane_types::jobs::Job;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::http::access;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams, Table};
use crate::http::extract::Query;
use crate::platform::auth::Principal;
use crate::platform::jobs::Jobs;
use crate::platform::store::Store;
use crate::areas::Area;
use crate::state::AppState;

pub const AREA: Area = Area::new("jobs", "Asynchronous jobs", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job, cancel_job))
        .routes(routes!(job_log))
        .routes(routes!(wait_job))
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("jobs:read"))),
    tag = "jobs", params(CollectionParams),
    responses((status = 200, description = "Jobs, newest first", body = [Job],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_jobs(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Callers who may not see every job get the visible ones, filtered before paging.
    if !access::sees_everything(&p) {
        let jobs = state
            .jobs
            .list()?
            .into_iter()
            .filter(|j| visible(&p, j))
            .collect();
        return collection::respond(jobs, &params, &headers);
    }
    let table = JobTable {
        jobs: state.jobs.clone(),
        store: state.store.clone(),
        with_result: true,
    };
    collection::respond_table(table, &params, &headers)
}

/// The jobs table, for the collection layer (paged and streamed by id, newest first).
struct JobTable {
    jobs: Jobs,
    store: Arc<Store>,
    /// False when `fields` leaves `result` out: its JSON is then not read at all.
    with_result: bool,
}

impl Table for JobTable {
    type Item = Job;
    fn all(&self) -> ApiResult<Vec<Job>> {
        Ok(self.jobs.list()?)
    }
    fn page(&self, offset: usize, limit: usize) -> ApiResult<(Vec<Job>, usize)> {
        Ok(self.jobs.page(offset, Some(limit), self.with_result)?)
    }
    fn after(&self, last: &Job, n: usize) -> ApiResult<Vec<Job>> {
        Ok(self.jobs.older_than(&last.id, n, self.with_result)?)
    }
    fn only_fields(&mut self, fields: &[String]) {
        self.with_result = fields.iter().any(|f| f == "result");
    }
    fn kept_in(&self) -> Option<(Arc<Store>, &'static str)> {
        Some((self.store.clone(), "jobs"))
    }
}

/// Get one job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("jobs:read"))),
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = Job)))]
async fn get_job(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Job>> {
    get_visible(&state, &p, &id).map(axum::Json)
}

/// Whether `p` may see job `j`: its own, or one whose target it may read.
fn visible(p: &Principal, j: &Job) -> bool {
    access::table().may_see_job(p, &j.created_by, j.target.as_deref())
}

/// The job, or 404 when it does not exist or the caller may not see it (not 403: a job's
/// existence says what an admin is doing).
fn get_visible(state: &AppState, p: &Principal, id: &str) -> ApiResult<Job> {
    let job = state.jobs.get(id)?;
    if visible(p, &job) {
        Ok(job)
    } else {
        Err(ApiError::not_found(format!("no job {id:?}")))
    }
}

/// Cancel a running job. The job ends as `cancelled` shortly after.
#[utoipa::path(delete, path = "/api/v1/jobs/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("jobs:write"))),
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, description = "Cancellation requested", body = Job)))]
async fn cancel_job(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    get_visible(&state, &p, &id)?;
    let job = state.jobs.cancel(&id)?;
    tracing::info!(job = id, by = p.user, "job cancel requested");
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(job)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogParams {
    /// Keep the response open and stream new lines until the job ends.
    #[serde(default)]
    follow: Option<bool>,
}

fn render(lines: &[(i64, String, String)]) -> String {
    let mut out = String::new();
    for (_, time, line) in lines {
        out.push_str(time);
        out.push(' ');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The job log as plain text, one `<time> <line>` per line.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/log",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("jobs:read"))),
    tag = "jobs",
    params(("id" = String, Path, description = "Job id"), LogParams),
    responses((status = 200, description = "The log", content_type = "text/plain", body = String)))]
async fn job_log(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
) -> ApiResult<Response> {
    get_visible(&state, &p, &id)?;
    let lines = state.jobs.log_lines(&id, 0)?;
    let body = if params.follow.unwrap_or(false) {
        let after = lines.last().map(|l| l.0).unwrap_or(0);
        let first =
            futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(render(&lines))));
        Body::from_stream(futures_util::StreamExt::chain(
            first,
            follow(state.jobs.clone(), id, after),
        ))
    } else {
        Body::from(render(&lines))
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

/// New log lines after `after` until the job is over.
fn follow(
    jobs: Jobs,
    id: String,
    after: i64,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(Some(after), move |after| {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            let after = after?;
            loop {
                let rx = jobs.watch(&id);
                let lines = jobs.log_lines(&id, after).ok()?;
                if !lines.is_empty() {
                    let next = lines.last().map(|l| l.0).unwrap_or(after);
                    return Some((Ok(render(&lines)), Some(next)));
                }
                let done = jobs
                    .get(&id)
                    .map(|j| j.status.is_terminal())
                    .unwrap_or(true);
                match rx {
                    Some(mut rx) if !done => {
                        let _ = tokio::time::timeout(Duration::from_secs(15), rx.changed()).await;
                    }
                    // Ended: one last read above found nothing new.
                    _ => return None,
                }
            }
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WaitParams {
    /// Seconds to wait at most (0–300, default 30).
    #[param(minimum = 0, maximum = 300)]
    #[serde(default)]
    timeout: Option<u64>,
}

/// Wait until the job ends or the timeout passes; answers the job as it then is.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/wait",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("jobs:read"))),
    tag = "jobs",
    params(("id" = String, Path, description = "Job id"), WaitParams),
    responses((status = 200, description = "The job (check `status`: it may still run)", body = Job)))]
async fn wait_job(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Query(params): Query<WaitParams>,
) -> ApiResult<axum::Json<Job>> {
    get_visible(&state, &p, &id)?;
    let secs = params.timeout.unwrap_or(30);
    if secs > 300 {
        return Err(ApiError::invalid_field(
            "invalid_timeout",
            "timeout",
            "timeout is 0 .. 300 seconds",
        ));
    }
    state
        .jobs
        .wait(&id, Duration::from_secs(secs))
        .await
        .map(axum::Json)
}
