//! `/api/v1/system/certificate`: the TLS certificate the HTTPS listener serves.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `PUT /api/v1/system/certificate`: a new certificate and its key, in PEM.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// The server certificate (PEM `CERTIFICATE`), optionally followed by its chain.
    pub certificate: String,
    /// Its unencrypted private key (PEM): RSA (`RSA PRIVATE KEY`, at least 2048 bits), PKCS#8
    /// (`PRIVATE KEY`) or EC (`EC PRIVATE KEY`, P-256/P-384).
    pub private_key: String,
    /// Intermediate and root certificates (PEM), the certificate's issuer first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// One certificate of the served chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateSummary {
    /// Distinguished name, e.g. `CN=example.com, O=Example`.
    pub subject: String,
    pub issuer: String,
    /// Start of validity (RFC 3339, UTC).
    pub not_before: String,
    /// End of validity (RFC 3339, UTC).
    pub not_after: String,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub sha256: String,
}

/// The certificate the HTTPS listener serves now, read from its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    pub href: String,
    /// `https`, or `http` when the daemon runs with `--http` (the certificate is stored and is
    /// served once HTTPS is enabled).
    pub listener: String,
    pub subject: String,
    pub issuer: String,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses of the subjectAltName extension.
    pub ip_addresses: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub sha256: String,
    /// Public key, e.g. `RSA 2048`, `ECDSA P-256`, `Ed25519`.
    pub key_type: String,
    /// Issuer and subject are the same.
    pub self_signed: bool,
    /// The certificates sent after it (intermediates, root), issuer first.
    pub chain: Vec<CertificateSummary>,
    /// Certificate file (leaf + chain, PEM).
    pub cert_file: String,
    /// Private key file (mode 0600).
    pub key_file: String,
    /// The last certificate update job, if any.
    pub last_update: Option<String>,
}

/// Jidoteki `GET /admin/certs`: the last certificates update and the end of its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiCertsStatus {
    /// `running`, `success` or `failed`.
    pub status: String,
    /// The last 10 lines of the update log, `[unixtime][SYSTEM] message`, newline-separated.
    pub log: String,
}
