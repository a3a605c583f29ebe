//! Jidoteki section 9, TLS (optional endpoint `certs`): `POST /admin/certs` and
//! `GET /admin/certs`, a thin layer over `areas::system::certificate` (native:
//! `GET|PUT /api/v1/system/certificate`, the same job and lock).
//!
//! `POST` takes the multipart fields `public` (certificate PEM), `private` (unencrypted key:
//! RSA as the document says, PKCS#8 and EC too) and optional `ca`. The pair is validated
//! before answering: a bad or mismatched one answers 400 and the served certificate stays.
//! Then `202 {"Status":"202 Accepted","Location":"/api/v1/admin/certs"}`; the job installs
//! it and swaps it into the running listener. `GET` answers the last update's status
//! (`running|success|failed`) and the last 10 lines of its log; 404 before any update.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::Response;
use hostplane_types::system::certificate::JidotekiCertsStatus;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::compat::{self, as_400, bad_request};
use crate::areas::admin::{JidotekiStatus, require_enabled};
use crate::areas::system::certificate::{self as svc, Field};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::state::AppState;

const HREF: &str = "/api/v1/admin/certs";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_certs, get_certs))
}

/// `multipart/form-data` body of `POST /admin/certs`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CertsForm {
    /// Public TLS certificate (PEM).
    #[schema(format = Binary, content_media_type = "application/x-pem-file")]
    public: String,
    /// Private TLS certificate key (unencrypted; RSA, PKCS#8 or EC PEM).
    #[schema(format = Binary, content_media_type = "application/x-pem-file")]
    private: String,
    /// Intermediate or root TLS certificate (PEM).
    #[schema(format = Binary, content_media_type = "application/x-pem-file")]
    ca: Option<String>,
}

/// The document's field names for a validation error.
fn jidoteki_field(f: Field) -> &'static str {
    match f {
        Field::Certificate => "public",
        Field::PrivateKey => "private",
        Field::Ca => "ca",
    }
}

/// Update the TLS certificates (Jidoteki `POST /certs`). Asynchronous: poll `GET /admin/certs`.
#[utoipa::path(post, path = "/api/v1/admin/certs",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = CertsForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Validated; the update runs", body = JidotekiStatus,
        headers(("Location" = String, description = "/api/v1/admin/certs")))))]
async fn post_certs(
    State(state): State<AppState>,
    Caller(p): Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    require_enabled(&state, "certs")?;
    let f = compat::fields(form, &["public", "private", "ca"]).await?;
    let public = f
        .get("public")
        .ok_or_else(|| bad_request("invalid_certificate", "the public field is required"))?;
    let private = f
        .get("private")
        .ok_or_else(|| bad_request("invalid_key", "the private field is required"))?;
    svc::validate(
        public,
        private,
        f.get("ca").map(Vec::as_slice),
        crate::platform::time::now(),
    )
    .map_err(|e| {
        bad_request(
            e.code,
            format!("{}: {}", jidoteki_field(e.field), e.message),
        )
    })?;
    svc::start_install(
        &state,
        &p.user,
        public,
        private,
        f.get("ca").map(Vec::as_slice),
    )
    .map_err(as_400)?;
    Ok(compat::accepted(HREF))
}

/// The status of the last certificates update and the last 10 lines of its log (Jidoteki
/// `GET /certs`). 404 when no update has run.
#[utoipa::path(get, path = "/api/v1/admin/certs",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Update status", body = JidotekiCertsStatus)))]
async fn get_certs(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiCertsStatus>> {
    require_enabled(&state, "certs")?;
    let job = state.jobs.latest_of_kind(svc::JOB_KIND)?
        .ok_or_else(|| ApiError::not_found("no certificates update has run"))?;
    Ok(axum::Json(JidotekiCertsStatus {
        status: compat::status_word(job.status).into(),
        log: compat::tail(&compat::job_log(&state, &job)?, 10),
    }))
}
