//! `/api/v1/audit`: the audit log (admin only), newest first.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_types::audit::AuditEntry;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::http::collection::{self, CollectionParams, Table};
use crate::http::extract::Query;
use crate::platform::store::Store;
use crate::areas::Area;
use crate::state::AppState;

pub const AREA: Area = Area::new("audit", "Audit log (admin)", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(get_audit))
}

/// The audit log: every mutating request, who made it, and how it ended.
#[utoipa::path(get, path = "/api/v1/audit",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("audit:read"))),
    tag = "audit", params(CollectionParams),
    responses((status = 200, description = "Audit entries, newest first", body = [AuditEntry],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_audit(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond_table(AuditTable(state.clone()), &params, &headers)
}

/// The audit log, for the collection layer (paged and streamed by id, newest first).
struct AuditTable(AppState);

impl Table for AuditTable {
    type Item = AuditEntry;
    fn all(&self) -> ApiResult<Vec<AuditEntry>> {
        Ok(self.0.audit.list()?)
    }
    fn page(&self, offset: usize, limit: usize) -> ApiResult<(Vec<AuditEntry>, usize)> {
        Ok(self.0.audit.page(offset, Some(limit))?)
    }
    fn after(&self, last: &AuditEntry, n: usize) -> ApiResult<Vec<AuditEntry>> {
        Ok(self.0.audit.older_than(last.id, n)?)
    }
    fn kept_in(&self) -> Option<(Arc<Store>, &'static str)> {
        Some((self.0.store.clone(), "audit"))
    }
}

/// One audit entry.
#[utoipa::path(get, path = "/api/v1/audit/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("audit:read"))),
    tag = "audit",
    params(("id" = i64, Path, description = "Entry id")),
    responses((status = 200, description = "The entry", body = AuditEntry)))]
async fn get_audit(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AuditEntry>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no audit entry {id:?}")))?;
    state
        .audit
        .get(id)?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("no audit entry {id}")))
}
