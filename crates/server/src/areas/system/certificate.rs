//! `/api/v1/system/certificate`: the TLS certificate the HTTPS listener serves, replaced at run
//! time without a restart.
//!
//! Flow: `PUT` → [`validate`] (PEM parsing, the key matches the certificate, the chain is in
//! order and signed, nothing expired; 422 naming the field otherwise) → a `system.certificate`
//! job (lock `system.certificate`) that validates again, writes the key (0600) and the
//! certificate + chain atomically to the files `tls::paths` names, and swaps them into the live
//! rustls config (`tls::reload`): new connections get the new certificate, open ones keep
//! theirs. If the swap fails the old files are put back. With `--http` the pair is stored and
//! the job says the listener is plain HTTP. `GET` reads the installed file, live.
//! The Jidoteki `/admin/certs` routes (areas/admin/certs.rs) call [`start_install`].

use std::sync::Arc;

use ::time::OffsetDateTime;
use axum::extract::State;
use axum::response::Response;
use hostplane_types::jobs::Job;
use hostplane_types::system::certificate::{Certificate, CertificateSummary, CertificateUpload};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::http::answer::accepted;
use crate::platform::state_files::STATE_FILES;
use crate::error::{ApiError, ApiResult};
use crate::fsutil::write_atomic;
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::platform::time as ptime;
use crate::state::AppState;

pub const HREF: &str = "/api/v1/system/certificate";
pub const JOB_KIND: &str = "system.certificate";
/// Certificates valid from a little in the future are accepted (clock skew).
const SKEW_SECS: i64 = 300;
/// Largest PEM input accepted per field.
const MAX_PEM: usize = 256 << 10;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_certificate, put_certificate))
}

/// The certificate the HTTPS listener serves (read from its file now).
#[utoipa::path(get, path = "/api/v1/system/certificate",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "The installed certificate", body = Certificate)))]
async fn get_certificate(State(state): State<AppState>) -> ApiResult<axum::Json<Certificate>> {
    Ok(axum::Json(current(&state)?))
}

/// Replace the TLS certificate (admin). Validated now (422 naming the field); installed and
/// swapped into the running listener by a `system.certificate` job, with no restart.
#[utoipa::path(put, path = "/api/v1/system/certificate",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system", request_body = CertificateUpload,
    responses((status = 202, description = "Validated; the job installs it", body = Job)))]
async fn put_certificate(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<CertificateUpload>,
) -> ApiResult<Response> {
    let job = start_install(
        &state,
        &p.user,
        req.certificate.as_bytes(),
        req.private_key.as_bytes(),
        req.ca.as_deref().map(str::as_bytes),
    )?;
    Ok(accepted(&job))
}

/// Which input a validation error concerns (native field names; the Jidoteki layer maps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Certificate,
    PrivateKey,
    Ca,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Certificate => "certificate",
            Field::PrivateKey => "private_key",
            Field::Ca => "ca",
        }
    }
}

/// A certificate problem: the stable code, the field, the message.
#[derive(Debug, Clone)]
pub struct CertError {
    pub code: &'static str,
    pub field: Field,
    pub message: String,
}

impl From<CertError> for ApiError {
    fn from(e: CertError) -> Self {
        ApiError::invalid_field(e.code, e.field.name(), e.message)
    }
}

fn cert_err(code: &'static str, field: Field, message: impl Into<String>) -> CertError {
    CertError {
        code,
        field,
        message: message.into(),
    }
}

/// A certificate and key that passed every check, ready to install.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Leaf then chain, PEM.
    pub cert_pem: String,
    /// The key, PEM, as its type's usual label.
    pub key_pem: String,
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub chain_len: usize,
}

fn pem_blocks(data: &[u8], field: Field) -> Result<Vec<pem::Pem>, CertError> {
    if data.len() > MAX_PEM {
        return Err(cert_err(
            "invalid_pem",
            field,
            format!("larger than {} KiB", MAX_PEM >> 10),
        ));
    }
    pem::parse_many(data).map_err(|e| cert_err("invalid_pem", field, format!("not valid PEM: {e}")))
}

fn certificates(data: &[u8], field: Field) -> Result<Vec<Vec<u8>>, CertError> {
    let mut out = Vec::new();
    for block in pem_blocks(data, field)? {
        if block.tag() != "CERTIFICATE" {
            return Err(cert_err(
                "invalid_pem",
                field,
                format!(
                    "a PEM {:?} block where only CERTIFICATE blocks belong",
                    block.tag()
                ),
            ));
        }
        out.push(block.into_contents());
    }
    Ok(out)
}

fn private_key(data: &[u8]) -> Result<(PrivateKeyDer<'static>, pem::Pem), CertError> {
    let f = Field::PrivateKey;
    let mut found = None;
    for block in pem_blocks(data, f)? {
        let encrypted = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        let der = match block.tag() {
            // openssl ecparam -genkey writes the curve first; it is implied by the key.
            "EC PARAMETERS" => continue,
            "ENCRYPTED PRIVATE KEY" => None,
            _ if encrypted => None,
            "RSA PRIVATE KEY" => Some(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(
                block.contents().to_vec(),
            ))),
            "PRIVATE KEY" => Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                block.contents().to_vec(),
            ))),
            "EC PRIVATE KEY" => Some(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(
                block.contents().to_vec(),
            ))),
            other => {
                return Err(cert_err(
                    "invalid_key",
                    f,
                    format!("a PEM {other:?} block, not a private key"),
                ));
            }
        };
        let Some(der) = der else {
            return Err(cert_err(
                "encrypted_key",
                f,
                "the private key is encrypted; upload it unencrypted (openssl rsa -in key.pem -out plain.pem)",
            ));
        };
        if found.is_some() {
            return Err(cert_err("invalid_key", f, "more than one private key"));
        }
        found = Some((der, block));
    }
    found.ok_or_else(|| cert_err("invalid_key", f, "no PEM private key found"))
}

fn fmt_time(t: OffsetDateTime) -> String {
    ptime::format(t)
}

fn parse_cert(der: &[u8], field: Field) -> Result<X509Certificate<'_>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], c)) => Ok(c),
        Ok(_) => Err(cert_err(
            "invalid_certificate",
            field,
            "trailing data after the certificate",
        )),
        Err(e) => Err(cert_err(
            "invalid_certificate",
            field,
            format!("not an X.509 certificate: {e}"),
        )),
    }
}

/// Checks a certificate (+ chain) and its key as uploaded: PEM, X.509, the chain in issuing
/// order with valid signatures and CA flags, every certificate valid at `now`, the leaf usable
/// for a TLS server, and the key the leaf's.
pub fn validate(
    public: &[u8],
    private: &[u8],
    ca: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<Validated, CertError> {
    let leaf_certs = certificates(public, Field::Certificate)?;
    if leaf_certs.is_empty() {
        return Err(cert_err(
            "invalid_certificate",
            Field::Certificate,
            "no PEM CERTIFICATE block found",
        ));
    }
    let mut chain: Vec<(Vec<u8>, Field)> = leaf_certs
        .into_iter()
        .map(|d| (d, Field::Certificate))
        .collect();
    if let Some(ca) = ca.filter(|c| !c.iter().all(u8::is_ascii_whitespace)) {
        let extra = certificates(ca, Field::Ca)?;
        if extra.is_empty() {
            return Err(cert_err(
                "invalid_certificate",
                Field::Ca,
                "no PEM CERTIFICATE block found",
            ));
        }
        for d in extra {
            // The same intermediate in both fields is common; send it once.
            if !chain.iter().any(|(c, _)| *c == d) {
                chain.push((d, Field::Ca));
            }
        }
    }
    let parsed: Vec<(X509Certificate<'_>, Field)> = chain
        .iter()
        .map(|(d, f)| parse_cert(d, *f).map(|c| (c, *f)))
        .collect::<Result<_, _>>()?;

    for (c, f) in &parsed {
        let v = c.validity();
        if v.not_after.to_datetime() < now {
            return Err(cert_err(
                "certificate_expired",
                *f,
                format!(
                    "{} expired on {}",
                    c.subject(),
                    fmt_time(v.not_after.to_datetime())
                ),
            ));
        }
        if v.not_before.to_datetime() > now + ::time::Duration::seconds(SKEW_SECS) {
            return Err(cert_err(
                "certificate_not_yet_valid",
                *f,
                format!(
                    "{} is not valid before {}",
                    c.subject(),
                    fmt_time(v.not_before.to_datetime())
                ),
            ));
        }
    }
    for w in parsed.windows(2) {
        let ((child, _), (issuer, f)) = (&w[0], &w[1]);
        if child.issuer() != issuer.subject() {
            return Err(cert_err(
                "invalid_chain",
                *f,
                format!(
                    "the chain is out of order or incomplete: {} is issued by {}, but the next certificate is {}",
                    child.subject(),
                    child.issuer(),
                    issuer.subject()
                ),
            ));
        }
        if !issuer.is_ca() {
            return Err(cert_err(
                "invalid_chain",
                *f,
                format!(
                    "{} is not a CA certificate (basicConstraints CA:TRUE)",
                    issuer.subject()
                ),
            ));
        }
        if child.verify_signature(Some(issuer.public_key())).is_err() {
            return Err(cert_err(
                "invalid_chain",
                *f,
                format!(
                    "the signature on {} does not verify with the key of {}",
                    child.subject(),
                    issuer.subject()
                ),
            ));
        }
    }
    if let Some((top, f)) = parsed.last()
        && top.subject() == top.issuer()
        && top.verify_signature(None).is_err()
    {
        return Err(cert_err(
            "invalid_chain",
            *f,
            format!("the self-signature of {} does not verify", top.subject()),
        ));
    }
    let (leaf, _) = &parsed[0];
    if let Ok(Some(eku)) = leaf.extended_key_usage()
        && !(eku.value.any || eku.value.server_auth)
    {
        return Err(cert_err(
            "invalid_certificate",
            Field::Certificate,
            "the certificate's extended key usage does not allow TLS servers (serverAuth)",
        ));
    }

    let (key_der, key_block) = private_key(private)?;
    let provider = rustls::crypto::ring::default_provider();
    let ders: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|(d, _)| CertificateDer::from(d.clone()))
        .collect();
    rustls::sign::CertifiedKey::from_der(ders, key_der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => cert_err(
            "key_mismatch",
            Field::PrivateKey,
            "the private key does not match the certificate",
        ),
        other => cert_err(
            "invalid_key",
            Field::PrivateKey,
            format!(
                "the private key cannot be used ({other}); RSA of at least 2048 bits, ECDSA P-256/P-384 and Ed25519 are supported"
            ),
        ),
    })?;

    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let cert_pem = pem::encode_many_config(
        &chain
            .iter()
            .map(|(d, _)| pem::Pem::new("CERTIFICATE", d.clone()))
            .collect::<Vec<_>>(),
        lf,
    );
    let key_pem = pem::encode_config(
        &pem::Pem::new(key_block.tag(), key_block.contents().to_vec()),
        lf,
    );
    Ok(Validated {
        cert_pem,
        key_pem,
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        not_after: fmt_time(leaf.validity().not_after.to_datetime()),
        chain_len: parsed.len(),
    })
}

/// Checks that an installed pair goes together (PEM, X.509, the key the leaf's), without the
/// upload rules on chain and expiry: used for pairs restored from a backup.
pub fn check_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
    let ders = certificates(cert_pem, Field::Certificate).map_err(|e| e.message)?;
    let first = ders.first().ok_or("no certificate")?;
    parse_cert(first, Field::Certificate).map_err(|e| e.message)?;
    let (key, _) = private_key(key_pem).map_err(|e| e.message)?;
    let chain = ders.into_iter().map(CertificateDer::from).collect();
    rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".to_string()
            }
            other => other.to_string(),
        })
}

fn summary(c: &X509Certificate<'_>, der: &[u8]) -> CertificateSummary {
    CertificateSummary {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        not_before: fmt_time(c.validity().not_before.to_datetime()),
        not_after: fmt_time(c.validity().not_after.to_datetime()),
        sha256: hex::encode(Sha256::digest(der)),
    }
}

fn key_type(c: &X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    let spki = c.public_key();
    if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" {
        return "Ed25519".into();
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => match ec.key_size() {
            256 => "ECDSA P-256".into(),
            384 => "ECDSA P-384".into(),
            521 | 528 => "ECDSA P-521".into(),
            n => format!("ECDSA {n}"),
        },
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

/// Describes the certificate file `cert_pem` (leaf first).
pub fn describe(cert_pem: &[u8]) -> Result<(CertificateSummary, Certificate), String> {
    let blocks = pem::parse_many(cert_pem).map_err(|e| e.to_string())?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    let first = ders.first().ok_or("no certificate in the file")?;
    let (_, leaf) = X509Certificate::from_der(first).map_err(|e| e.to_string())?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ip_addresses.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => ip_addresses.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let mut chain = Vec::new();
    for d in &ders[1..] {
        if let Ok((_, c)) = X509Certificate::from_der(d) {
            chain.push(summary(&c, d));
        }
    }
    let s = summary(&leaf, first);
    let cert = Certificate {
        href: HREF.into(),
        listener: String::new(),
        subject: s.subject.clone(),
        issuer: s.issuer.clone(),
        dns_names,
        ip_addresses,
        not_before: s.not_before.clone(),
        not_after: s.not_after.clone(),
        serial: hex::encode(leaf.raw_serial()),
        sha256: s.sha256.clone(),
        key_type: key_type(&leaf),
        self_signed: leaf.subject() == leaf.issuer(),
        chain,
        cert_file: String::new(),
        key_file: String::new(),
        last_update: None,
    };
    Ok((s, cert))
}

/// The installed certificate, read now. 404 when there is none (`--http` and never uploaded).
pub fn current(state: &AppState) -> ApiResult<Certificate> {
    let files = crate::tls::paths(&state.config);
    let pem = match std::fs::read(&files.cert) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
                "no certificate is installed ({} does not exist)",
                files.cert.display()
            )));
        }
        Err(e) => return Err(ApiError::internal(format!("{}: {e}", files.cert.display()))),
    };
    let (_, mut cert) = describe(&pem)
        .map_err(|e| ApiError::internal(format!("{} is unreadable: {e}", files.cert.display())))?;
    cert.listener = if state.tls.is_some() { "https" } else { "http" }.into();
    cert.cert_file = files.cert.display().to_string();
    cert.key_file = files.key.display().to_string();
    cert.last_update = state.jobs.latest_of_kind(JOB_KIND)?.map(|j| j.href);
    Ok(cert)
}

/// Validates the pair now (422 naming the field), then starts the `system.certificate` job
/// that installs it and swaps it into the running listener.
pub fn start_install(
    state: &AppState,
    actor: &str,
    public: &[u8],
    private: &[u8],
    ca: Option<&[u8]>,
) -> ApiResult<Job> {
    validate(public, private, ca, ptime::now())?;
    let (public, private, ca) = (public.to_vec(), private.to_vec(), ca.map(<[u8]>::to_vec));
    let st = state.clone();
    let actor_owned = actor.to_string();
    state.jobs.spawn(
        JobSpec {
            kind: JOB_KIND,
            target: Some(HREF.into()),
            lock_key: Some("system/certificate".into()),
            actor: actor.to_string(),
        },
        move |ctx| install(st, ctx, actor_owned, public, private, ca),
    )
}

async fn install(
    state: AppState,
    ctx: Arc<JobCtx>,
    actor: String,
    public: Vec<u8>,
    private: Vec<u8>,
    ca: Option<Vec<u8>>,
) -> Result<Certificate, JobFailure> {
    ctx.log("Validating and adding TLS certificates");
    let v = validate(&public, &private, ca.as_deref(), ptime::now())
        .map_err(|e| JobFailure::new(e.code, e.message))?;
    ctx.log(format!(
        "Certificate {} issued by {}, valid until {}, chain of {}",
        v.subject, v.issuer, v.not_after, v.chain_len
    ));
    ctx.progress(30);
    let files = crate::tls::paths(&state.config);
    let _guard = STATE_FILES.lock().await;
    let old = (
        std::fs::read(&files.cert).ok(),
        std::fs::read(&files.key).ok(),
    );
    let write = |cert: &[u8], key: &[u8]| -> std::io::Result<()> {
        for p in [&files.cert, &files.key] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        write_atomic(&files.key, key, 0o600)?;
        write_atomic(&files.cert, cert, 0o644)
    };
    write(v.cert_pem.as_bytes(), v.key_pem.as_bytes()).map_err(|e| {
        JobFailure::new(
            "write_failed",
            format!("cannot write {}: {e}", files.cert.display()),
        )
    })?;
    ctx.log(format!(
        "Installed {} and {}",
        files.cert.display(),
        files.key.display()
    ));
    ctx.progress(70);
    match &state.tls {
        Some(live) => {
            if let Err(e) = crate::tls::reload(
                live,
                v.cert_pem.clone().into_bytes(),
                v.key_pem.clone().into_bytes(),
            )
            .await
            {
                if let (Some(c), Some(k)) = old {
                    let _ = write(&c, &k);
                }
                return Err(JobFailure::new(
                    "reload_failed",
                    format!("the HTTPS listener refused the certificate ({e}); the previous one stays"),
                ));
            }
            ctx.log("Reloaded the HTTPS listener: new connections get the new certificate");
        }
        None => ctx.log(
            "The listener is plain HTTP (--http): the certificate is stored and is served once HTTPS is enabled",
        ),
    }
    drop(_guard);
    let cert = current(&state).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let data = serde_json::to_value(&cert).unwrap_or_default();
    state.events.publish("resource.updated", HREF, &actor, data);
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        ptime::now()
    }

    fn self_signed(name: &str) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn accepts_a_matching_pair_and_refuses_a_mismatch() {
        let (c1, k1) = self_signed("one.example");
        let (_, k2) = self_signed("two.example");
        let v = validate(c1.as_bytes(), k1.as_bytes(), None, now()).unwrap();
        assert_eq!(v.subject, "CN=rcgen self signed cert");
        assert!(v.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let e = validate(c1.as_bytes(), k2.as_bytes(), None, now()).unwrap_err();
        assert_eq!((e.code, e.field), ("key_mismatch", Field::PrivateKey));
        let e = validate(b"garbage", k1.as_bytes(), None, now()).unwrap_err();
        assert_eq!(e.field, Field::Certificate);
        let e = validate(k1.as_bytes(), k1.as_bytes(), None, now()).unwrap_err();
        assert_eq!((e.code, e.field), ("invalid_pem", Field::Certificate));
        let e = validate(c1.as_bytes(), c1.as_bytes(), None, now()).unwrap_err();
        assert_eq!((e.code, e.field), ("invalid_key", Field::PrivateKey));
    }

    #[test]
    fn checks_the_chain_and_expiry() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["host.example".to_string()]).unwrap();
        leaf_params.not_after = now() + ::time::Duration::days(30);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let v = validate(
            leaf.pem().as_bytes(),
            leaf_key.serialize_pem().as_bytes(),
            Some(ca.pem().as_bytes()),
            now(),
        )
        .unwrap();
        assert_eq!(v.chain_len, 2);
        let (_, desc) = describe(v.cert_pem.as_bytes()).unwrap();
        assert_eq!(desc.dns_names, ["host.example"]);
        assert_eq!(desc.chain.len(), 1);
        assert_eq!(desc.chain[0].subject, "CN=Test CA");
        assert!(!desc.self_signed);
        // A wrong CA: the chain does not link.
        let (other_ca, _) = self_signed("other");
        let e = validate(
            leaf.pem().as_bytes(),
            leaf_key.serialize_pem().as_bytes(),
            Some(other_ca.as_bytes()),
            now(),
        )
        .unwrap_err();
        assert_eq!((e.code, e.field), ("invalid_chain", Field::Ca));
        // Two months on, the leaf has expired.
        let later = now() + ::time::Duration::days(60);
        let e = validate(
            leaf.pem().as_bytes(),
            leaf_key.serialize_pem().as_bytes(),
            Some(ca.pem().as_bytes()),
            later,
        )
        .unwrap_err();
        assert_eq!(e.code, "certificate_expired");
    }

    #[test]
    fn refuses_an_encrypted_key() {
        let (c, _) = self_signed("x");
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let e = validate(c.as_bytes(), enc.as_bytes(), None, now()).unwrap_err();
        assert_eq!(e.code, "encrypted_key");
    }
}
