//! `/api/v1/system/license`: the vendor-signed licence installed on this appliance, and its
//! Jidoteki view (`/api/v1/admin/license`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The installed licence, verified against the vendor key now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct License {
    /// Application or edition licensed.
    pub app: String,
    /// Number of users licensed.
    pub users: u64,
    /// Last valid day (`YYYY-MM-DD`, UTC).
    pub expires: String,
    /// Licensee.
    pub name: String,
    /// Licensee's contact.
    pub contact: String,
    /// Day it was issued, when the licence says.
    pub issued: Option<String>,
    /// The expiry day has passed.
    pub expired: bool,
    /// When it was installed on this appliance.
    pub installed_at: Option<String>,
    /// Who installed it.
    pub installed_by: Option<String>,
}

/// `PUT /api/v1/system/license`: a licence file's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseRequest {
    /// The whole licence file (`license.asc`) as issued by `hostplane license issue`.
    pub license: String,
}

/// Jidoteki `GET|POST /admin/license`: exactly the document's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiLicense {
    pub app: String,
    pub users: u64,
    /// The last valid day, written like `19 January 2038`.
    pub expires: String,
    pub name: String,
    pub contact: String,
}
