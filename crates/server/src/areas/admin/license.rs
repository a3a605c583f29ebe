//! Jidoteki section 10, License (optional endpoint `license`): `POST /admin/license` and
//! `GET /admin/license`, a thin layer over `areas::system::license` (native:
//! `GET|PUT /api/v1/system/license`).
//!
//! `POST` takes the licence file in multipart field `license`. A missing field, a file that is
//! not a hostplane licence or is not signed by the vendor key answers 400 (updating the licence
//! failed; the installed one stays). `GET` answers 404 when no valid licence is installed, as
//! the document says. Bodies are the document's five fields, `expires` written like
//! `19 January 2038`; an expired licence is still shown (native `expired: true`).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use hostplane_types::system::license::JidotekiLicense;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::require_enabled;
use crate::areas::system::license::{self as svc, InstallError};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_license, get_license))
}

/// `multipart/form-data` body of `POST /admin/license`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LicenseUploadForm {
    /// The licence file (`license.asc`, from `hostplane license issue`).
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    license: String,
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_license",
        detail: detail.into(),
    }
}

/// Change the system licence (Jidoteki `POST /license`); answers the new licence's details.
#[utoipa::path(post, path = "/api/v1/admin/license",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = LicenseUploadForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "Licence installed", body = JidotekiLicense)))]
async fn post_license(
    State(state): State<AppState>,
    Caller(p): Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<axum::Json<JidotekiLicense>> {
    require_enabled(&state, "license")?;
    let mut form = form.map_err(|e| bad(format!("expected multipart/form-data: {e}")))?;
    let mut text = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("unreadable form: {e}")))?
    {
        if field.name() == Some("license") {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| bad(format!("unreadable license field: {e}")))?;
            text = Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad("the licence file is not text"))?,
            );
        }
    }
    let text = text.ok_or_else(|| bad("the license field (the licence file) is required"))?;
    let l = svc::install(&state, &p.user, &text).map_err(|e| match e {
        InstallError::Invalid(d) | InstallError::NotConfigured(d) => bad(d),
        InstallError::Store(e) => e,
    })?;
    Ok(axum::Json(svc::to_jidoteki(&l)))
}

/// The licence details (Jidoteki `GET /license`). 404 when no valid licence is installed.
#[utoipa::path(get, path = "/api/v1/admin/license",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Licence", body = JidotekiLicense)))]
async fn get_license(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiLicense>> {
    require_enabled(&state, "license")?;
    Ok(axum::Json(svc::to_jidoteki(&svc::current(&state)?)))
}
