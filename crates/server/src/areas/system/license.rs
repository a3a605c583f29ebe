//! `/api/v1/system/license`: the vendor-signed licence (format: `docs/license.md`, code:
//! `hostplane_package::license`).
//!
//! Flow: `PUT` (admin) takes the licence file's text → verify it against `[admin]
//! vendor_public_key` (422 `invalid_license` when it is not a licence or not signed by that
//! key; nothing changes then) → store the text in the store's settings with who installed it
//! and when → answer the verified fields. `GET` re-verifies the stored text every time, so a
//! changed vendor key or a tampered store shows as "no valid licence" (404), and `expired` is
//! computed against today. The Jidoteki `/admin/license` calls [`install`] and [`current`].

use axum::extract::State;
use hostplane_package::license as lic;
use hostplane_types::system::license::{JidotekiLicense, License, LicenseRequest};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::update::vendor_key;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::state::AppState;

const K_TEXT: &str = "license.text";
const K_INSTALLED_AT: &str = "license.installed_at";
const K_INSTALLED_BY: &str = "license.installed_by";
pub const HREF: &str = "/api/v1/system/license";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_license, put_license))
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn to_native(l: &lic::License, at: Option<String>, by: Option<String>) -> License {
    License {
        app: l.fields.app.clone(),
        users: l.fields.users,
        expires: l.fields.expires.clone(),
        name: l.fields.name.clone(),
        contact: l.fields.contact.clone(),
        issued: l.fields.issued.clone(),
        expired: l.is_expired(today()),
        installed_at: at,
        installed_by: by,
    }
}

/// The Jidoteki shape: the document's five fields, `expires` as `19 January 2038`.
pub fn to_jidoteki(l: &License) -> JidotekiLicense {
    let expires = lic::parse_date("expires", &l.expires)
        .map(lic::human_date)
        .unwrap_or_else(|_| l.expires.clone());
    JidotekiLicense {
        app: l.app.clone(),
        users: l.users,
        expires,
        name: l.name.clone(),
        contact: l.contact.clone(),
    }
}

/// Why a licence was refused.
pub enum InstallError {
    /// Not configured: no vendor key to verify with.
    NotConfigured(String),
    /// Not a licence, or not signed by the vendor key.
    Invalid(String),
    Store(ApiError),
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> ApiError {
        match e {
            InstallError::NotConfigured(d) => ApiError::Unavailable {
                code: "license_not_configured",
                detail: d,
            },
            InstallError::Invalid(d) => ApiError::invalid_field("invalid_license", "license", d),
            InstallError::Store(e) => e,
        }
    }
}

/// Verifies and installs a licence; the old one stays when this one is refused.
pub fn install(state: &AppState, actor: &str, text: &str) -> Result<License, InstallError> {
    let key = vendor_key(&state.config)
        .map_err(|e| InstallError::NotConfigured(format!("licences cannot be verified: {e}")))?;
    let l = lic::verify(text, &key).map_err(|e| InstallError::Invalid(e.to_string()))?;
    let now = crate::platform::time::now_string();
    state
        .store
        .write(|tx| {
            for (k, v) in [
                (K_TEXT, text),
                (K_INSTALLED_AT, &now),
                (K_INSTALLED_BY, actor),
            ] {
                tx.execute(
                    "INSERT INTO settings(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [k, v],
                )?;
            }
            Ok(())
        })
        .map_err(|e| InstallError::Store(e.into()))?;
    let out = to_native(&l, Some(now), Some(actor.to_string()));
    state.events.publish(
        "resource.updated",
        HREF,
        actor,
        serde_json::to_value(&out).unwrap_or_default(),
    );
    Ok(out)
}

/// The installed licence, verified now. Err(404) when there is none or it no longer verifies.
pub fn current(state: &AppState) -> ApiResult<License> {
    let text = state
        .store
        .get_setting(K_TEXT)?
        .ok_or_else(|| ApiError::not_found("no licence is installed"))?;
    let key = vendor_key(&state.config)
        .map_err(|e| ApiError::not_found(format!("the licence cannot be verified: {e}")))?;
    let l = lic::verify(&text, &key)
        .map_err(|e| ApiError::not_found(format!("the installed licence is not valid: {e}")))?;
    Ok(to_native(
        &l,
        state.store.get_setting(K_INSTALLED_AT)?,
        state.store.get_setting(K_INSTALLED_BY)?,
    ))
}

/// The installed licence, verified against the vendor key now; `expired` tells whether its
/// last day has passed. 404 when none is installed or it does not verify.
#[utoipa::path(get, path = "/api/v1/system/license",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "The licence", body = License)))]
async fn get_license(State(state): State<AppState>) -> ApiResult<axum::Json<License>> {
    Ok(axum::Json(current(&state)?))
}

/// Install a licence file (admin). 422 `invalid_license` when it is not a hostplane licence or
/// not signed by the configured vendor key (the installed one stays); 503
/// `license_not_configured` without a vendor key. An expired licence is installed and reported
/// with `expired: true`.
#[utoipa::path(put, path = "/api/v1/system/license",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system", request_body = LicenseRequest,
    responses((status = 200, description = "Installed", body = License)))]
async fn put_license(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<LicenseRequest>,
) -> ApiResult<axum::Json<License>> {
    Ok(axum::Json(install(&state, &p.user, &req.license)?))
}
