//! Jidoteki section 11, Storage (optional endpoint `storage`): `POST /admin/storage` and
//! `GET /admin/storage`, a thin layer over `areas::system::storage` (native:
//! `GET|PUT /api/v1/system/storage`).
//!
//! `POST` takes the multipart field `settings`, a JSON file `{"storage": {"type": ...}}` as
//! the document shows (`port` a string or a number). The settings are validated, the boot
//! units written and the settings stored before the answer, `202
//! {"Status":"202 Accepted","Location":"/api/v1/admin/storage"}`; they apply at the next boot.
//! Invalid settings, a type not offered or a missing tool answer 400. `GET` answers
//! `{"storage": {...}, "options": [...]}` (an iSCSI password is never shown).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::Response;
use hostplane_types::system::storage::{JidotekiStorage, StorageSettings};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::compat::{self, as_400, bad_request};
use crate::areas::admin::{JidotekiStatus, require_enabled};
use crate::areas::system::storage as svc;
use crate::error::ApiResult;
use crate::http::caller::Caller;
use crate::state::AppState;

const HREF: &str = "/api/v1/admin/storage";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_storage, get_storage))
}

/// `multipart/form-data` body of `POST /admin/storage`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StorageForm {
    /// JSON settings file, e.g. `{"storage": {"type": "nfs", "ip": "192.168.1.100", "share": "/nfs/storage"}}`.
    #[schema(format = Binary, content_media_type = "application/json")]
    settings: String,
}

/// The document's `settings.json` to native settings.
pub fn parse_settings(data: &[u8]) -> Result<StorageSettings, String> {
    let v: Value =
        serde_json::from_slice(data).map_err(|e| format!("settings is not JSON: {e}"))?;
    let mut storage = match v {
        Value::Object(mut o) if o.len() == 1 && o.contains_key("storage") => {
            o.remove("storage").unwrap_or_default()
        }
        _ => return Err(r#"settings must be {"storage": {"type": ...}}"#.into()),
    };
    if let Some(Value::String(port)) = storage.get("port") {
        let n: u16 = port
            .parse()
            .map_err(|_| format!("port {port:?} is not a port number"))?;
        storage["port"] = Value::from(n);
    }
    serde_json::from_value(storage).map_err(|e| format!("storage: {e}"))
}

/// Native settings as the document shows them: `port` a string, no password.
pub fn to_jidoteki(s: &StorageSettings) -> Value {
    let mut v = serde_json::to_value(s.redacted()).unwrap_or_default();
    if let Some(port) = v.get("port").and_then(Value::as_u64) {
        v["port"] = Value::from(port.to_string());
    }
    v
}

/// Change the persistent storage options (Jidoteki `POST /storage`); they apply after a reboot.
#[utoipa::path(post, path = "/api/v1/admin/storage",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = StorageForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Stored; applies at the next boot", body = JidotekiStatus,
        headers(("Location" = String, description = "/api/v1/admin/storage")))))]
async fn post_storage(
    State(state): State<AppState>,
    Caller(p): Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    require_enabled(&state, "storage")?;
    let f = compat::fields(form, &["settings"]).await?;
    let data = f
        .get("settings")
        .ok_or_else(|| bad_request("invalid_storage", "the settings field is required"))?;
    let settings = parse_settings(data).map_err(|e| bad_request("invalid_storage", e))?;
    svc::apply(&state, &p.user, settings, None)
        .await
        .map_err(as_400)?;
    Ok(compat::accepted(HREF))
}

/// The persistent storage settings and the types offered (Jidoteki `GET /storage`).
#[utoipa::path(get, path = "/api/v1/admin/storage",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Settings and options", body = JidotekiStorage)))]
async fn get_storage(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiStorage>> {
    require_enabled(&state, "storage")?;
    let v = svc::view(&state)?;
    Ok(axum::Json(JidotekiStorage {
        storage: to_jidoteki(&v.settings),
        options: v.options,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_examples_parse_and_show_back() {
        let nbd = br#"{"storage": {"type": "nbd", "export_name": "otherexport", "ip": "192.168.1.100", "port": "1043"}}"#;
        let s = parse_settings(nbd).unwrap();
        assert_eq!(
            s,
            StorageSettings::Nbd {
                export_name: "otherexport".into(),
                ip: "192.168.1.100".into(),
                port: 1043
            }
        );
        let back = to_jidoteki(&s);
        assert_eq!(back["port"], "1043");
        assert_eq!(back["type"], "nbd");
        let iscsi = br#"{"storage": {"type": "iscsi", "target": "iqn.2016-01.com.example:storage.lun1", "ip": "192.168.1.100", "username": "user", "password": "pass"}}"#;
        let s = parse_settings(iscsi).unwrap();
        assert!(to_jidoteki(&s).get("password").is_none());
        assert!(parse_settings(br#"{"type": "local"}"#).is_err());
        assert!(parse_settings(br#"{"storage": {"type": "zfs"}}"#).is_err());
    }
}
