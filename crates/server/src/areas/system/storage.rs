//! `/api/v1/system/storage`: where the appliance's persistent storage lives (local disk, NFS,
//! AoE, iSCSI, NBD), applied at the next boot.
//!
//! Flow: `PUT` → `hostplane_host::persistent_storage::validate` (every field, and the type
//! must be one of `[admin] storage_options`; 422 naming the field) → `If-Match` checked against
//! the current ETag (412) → `plan` renders the units (a tool the units need at boot that is
//! missing is 503 `tool_missing`) → `systemd-analyze verify` on a scratch copy → `install`
//! replaces the previously generated set under the system root (`Config::system_root`, so
//! tests and fuzzing keep it in a sandbox) atomically → the settings are stored (SQLite
//! `settings`, so backups carry them) → `resource.updated`. Fast (tens of ms), so no job;
//! one apply at a time. The Jidoteki `/admin/storage` routes call [`apply`] and [`view`].

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_host::persistent_storage::{self as ps, StorageError};
use hostplane_types::system::storage::{Storage, StorageSettings};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::platform::state_files::STATE_FILES;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::etag::{check_if_match, etag_of, with_etag};
use crate::http::extract::Json;
use crate::platform::time;
use crate::state::AppState;

pub const HREF: &str = "/api/v1/system/storage";
/// The settings key the stored settings live under.
const SETTING: &str = "system.storage";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_storage, put_storage))
}

/// What the store keeps (the password included; it is never shown).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    settings: StorageSettings,
    updated_at: String,
    updated_by: String,
}

fn stored(state: &AppState) -> ApiResult<Option<Stored>> {
    match state.store.get_setting(SETTING)? {
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("stored storage settings: {e}"))),
        None => Ok(None),
    }
}

/// The stored settings (local when never set), password included.
pub fn settings(state: &AppState) -> ApiResult<StorageSettings> {
    Ok(stored(state)?
        .map(|s| s.settings)
        .unwrap_or(StorageSettings::Local {}))
}

/// The resource as shown.
pub fn view(state: &AppState) -> ApiResult<Storage> {
    let s = stored(state)?;
    let root = state.config.system_root();
    let settings = s
        .as_ref()
        .map(|s| s.settings.clone())
        .unwrap_or(StorageSettings::Local {});
    let mut files: Vec<String> = ps::installed(&root)
        .into_iter()
        .map(|rel| root.join(rel).display().to_string())
        .collect();
    files.sort();
    Ok(Storage {
        href: HREF.into(),
        password_set: matches!(
            &settings,
            StorageSettings::Iscsi {
                password: Some(_),
                ..
            }
        ),
        settings: settings.redacted(),
        options: state.config.admin.storage_options.clone(),
        mount_point: state.config.admin.storage_mount_point.display().to_string(),
        files,
        updated_at: s.as_ref().map(|s| s.updated_at.clone()),
        updated_by: s.map(|s| s.updated_by),
    })
}

/// The persistent storage settings, the options offered and the generated boot units.
#[utoipa::path(get, path = "/api/v1/system/storage",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "Settings; ETag for If-Match", body = Storage,
        headers(("etag" = String, description = "Send as If-Match to update safely")))))]
async fn get_storage(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(with_etag(&view(&state)?))
}

/// Change the persistent storage (admin). Validated, written as systemd units that apply at
/// the next boot, stored. `If-Match` guards against overwriting someone else's change.
#[utoipa::path(put, path = "/api/v1/system/storage",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system", request_body = StorageSettings,
    params(("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the settings changed since")),
    responses((status = 200, description = "Stored; applies at the next boot", body = Storage,
        headers(("etag" = String, description = "The new ETag"))),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn put_storage(
    State(state): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    Json(req): Json<StorageSettings>,
) -> ApiResult<Response> {
    Ok(with_etag(
        &apply(&state, &p.user, req, Some(&headers)).await?,
    ))
}

pub fn map_error(e: StorageError) -> ApiError {
    match e {
        StorageError::Invalid { field, message } => {
            ApiError::invalid_field("invalid_storage", field, message)
        }
        StorageError::ToolMissing { .. } => ApiError::tool_missing(e.to_string()),
        StorageError::Verify(_) => ApiError::invalid("invalid_storage_units", e.to_string()),
        StorageError::Io(_) | StorageError::Command(_) => ApiError::internal(e),
    }
}

/// Validates, writes the boot units and stores `settings`; answers the new resource.
pub async fn apply(
    state: &AppState,
    actor: &str,
    settings: StorageSettings,
    if_match: Option<&HeaderMap>,
) -> ApiResult<Storage> {
    ps::validate(&settings, &state.config.admin.storage_options).map_err(map_error)?;
    let _guard = STATE_FILES.lock().await;
    if let Some(h) = if_match {
        check_if_match(h, &etag_of(&view(state)?))?;
    }
    write_units(state, &settings).await?;
    let s = Stored {
        settings,
        updated_at: time::now_string(),
        updated_by: actor.to_string(),
    };
    let json = serde_json::to_string(&s).map_err(ApiError::internal)?;
    state.store.set_setting(SETTING, &json)?;
    let v = view(state)?;
    state.events.publish(
        "resource.updated",
        HREF,
        actor,
        serde_json::to_value(&v).unwrap_or_default(),
    );
    Ok(v)
}

/// Renders, verifies and installs the boot units for `settings` (the caller holds
/// `STATE_FILES`). Returns the files written.
pub(crate) async fn write_units(
    state: &AppState,
    settings: &StorageSettings,
) -> ApiResult<Vec<std::path::PathBuf>> {
    let mount_point = state.config.admin.storage_mount_point.display().to_string();
    let plan = ps::plan(settings, &mount_point).map_err(map_error)?;
    let scratch = state
        .config
        .data_dir
        .join(format!(".storage-verify-{}", uuid::Uuid::now_v7().simple()));
    let verified = ps::verify(&plan, &scratch).await.map_err(map_error)?;
    if !verified {
        tracing::warn!("systemd-analyze not found: storage units checked by hostplane only");
    }
    let root = state.config.system_root();
    tokio::task::spawn_blocking(move || ps::install(&root, &plan))
        .await
        .map_err(ApiError::internal)?
        .map_err(map_error)
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequest;
    use hostplane_types::system::storage::StorageSettings;

    use crate::http::extract::Json;

    /// The body `PUT /system/storage` would read, through the handler's own extractor.
    async fn put_body(body: &str) -> Result<StorageSettings, crate::error::ApiError> {
        let req = axum::http::Request::put(super::HREF)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        Json::<StorageSettings>::from_request(req, &()).await.map(|j| j.0)
    }

    /// `local` is closed like the other types: an unknown field is 422 `invalid_body` naming
    /// it, and the document's `local` variant says `additionalProperties: false`, so the schema
    /// and serde agree (it was an open unit variant). The JSON of a valid setting is unchanged.
    #[tokio::test]
    async fn local_refuses_unknown_fields_and_its_schema_is_closed() {
        let s = put_body(r#"{"type": "local"}"#).await.unwrap();
        assert_eq!(s, StorageSettings::Local {});
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"type": "local"})
        );
        for body in [
            r#"{"type": "local", "ip": "10.0.0.1"}"#,
            r#"{"type": "local", "unknown_field": 1}"#,
            r#"{"type": "nbd", "export_name": "x", "ip": "10.0.0.1", "extra": true}"#,
        ] {
            let e = put_body(body).await.expect_err(body);
            assert_eq!(e.status(), 422, "{body}");
            assert_eq!(e.code(), "invalid_body", "{body}");
        }

        let (_, doc) = crate::http::openapi_and_router();
        let doc = serde_json::to_value(doc).unwrap();
        let variants = doc["components"]["schemas"]["StorageSettings"]["oneOf"]
            .as_array()
            .expect("StorageSettings is a oneOf");
        let local = variants
            .iter()
            .find(|v| v["properties"]["type"]["enum"] == serde_json::json!(["local"]))
            .expect("a local variant");
        assert_eq!(local["additionalProperties"], serde_json::json!(false), "{local}");
        for v in variants {
            assert_eq!(v["additionalProperties"], serde_json::json!(false), "{v}");
        }
    }
}
