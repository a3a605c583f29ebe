//! Support downloads: `GET /api/v1/system/logs/archive` (the daemon's logs and the configured
//! log paths as `logs.tar.gz`) and `GET /api/v1/system/debug-bundle` (logs, system facts,
//! redacted config and recent jobs, encrypted to the vendor's age recipient). The Jidoteki
//! `GET /admin/logs` and `GET /admin/debug` serve the same archives.
//!
//! Flow: auth layer → handler (logs: operator; debug bundle: admin) → [`logs_archive`] /
//! [`debug_bundle`], which build the archive on a blocking thread into an unlinked temp file in
//! the data dir (nothing stays on disk, memory stays flat however big the logs are) → the file
//! is streamed back with its length.
//!
//! Log sources: `DATA_DIR/logs/` (the daemon's own, size-rotated `hostplane.log*`, see
//! `crate::logfile`) and `admin.log_paths` (files, or directories walked without following
//! symlinks). A file that grows while it is archived is cut at the size it had when it was
//! opened. `MANIFEST.txt` in the archive lists what was included and what was skipped, and why.
//!
//! The debug bundle is `debug-bundle.tar` holding one member, `debug.tar.gz.age`: a gzipped tar
//! encrypted with age to `admin.vendor_recipient` (one or more `age1…` recipients, separated by
//! commas or spaces). The vendor opens it with
//! `tar -xf debug-bundle.tar && age -d -i vendor.key debug.tar.gz.age | tar -xz`.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hostplane_host::support::{self, HostFact};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Jobs the debug bundle includes (newest first).
const RECENT_JOBS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logs_archive_route))
        .routes(routes!(debug_bundle_route))
}

/// A finished archive in an unlinked temp file, rewound.
pub struct Archive {
    pub file: File,
    pub len: u64,
}

impl Archive {
    /// The archive as a download: `content_type`, `Content-Disposition: attachment`, length.
    /// `jidoteki` adds the spec's literal `Filename:` header too.
    pub fn into_response(
        self,
        content_type: &'static str,
        filename: &str,
        jidoteki: bool,
    ) -> Response {
        let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(self.file));
        let mut resp = Body::from_stream(stream).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(self.len));
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        if jidoteki && let Ok(v) = HeaderValue::from_str(filename) {
            h.insert("filename", v);
        }
        resp
    }
}

/// Why an archive could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// `admin.vendor_recipient` is empty or not an age recipient.
    #[error("{0}")]
    NoRecipient(String),
    #[error("{0}")]
    Io(String),
}

impl From<io::Error> for ArchiveError {
    fn from(e: io::Error) -> Self {
        ArchiveError::Io(e.to_string())
    }
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::NoRecipient(detail) => ApiError::Unavailable {
                code: "vendor_recipient_missing",
                detail,
            },
            ArchiveError::Io(m) => ApiError::internal(format!("building the archive: {m}")),
        }
    }
}

/// The daemon's logs and the configured log paths as `logs.tar.gz`.
#[utoipa::path(get, path = "/api/v1/system/logs/archive",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "logs.tar.gz", content_type = "application/gzip",
        body = Vec<u8>)))]
async fn logs_archive_route(State(state): State<AppState>) -> ApiResult<Response> {
    let a = logs_archive(&state).await?;
    Ok(a.into_response("application/gzip", "logs.tar.gz", false))
}

/// A debug bundle for the vendor, encrypted to `admin.vendor_recipient` (503
/// `vendor_recipient_missing` when none is configured).
#[utoipa::path(get, path = "/api/v1/system/debug-bundle",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "debug-bundle.tar (holds debug.tar.gz.age)",
        content_type = "application/x-tar", body = Vec<u8>)))]
async fn debug_bundle_route(State(state): State<AppState>) -> ApiResult<Response> {
    let a = debug_bundle(&state).await?;
    Ok(a.into_response("application/x-tar", "debug-bundle.tar", false))
}

/// Builds `logs.tar.gz`.
pub async fn logs_archive(state: &AppState) -> Result<Archive, ArchiveError> {
    let data_dir = state.config.data_dir.clone();
    let extra = state.config.admin.log_paths.clone();
    tokio::task::spawn_blocking(move || -> Result<Archive, ArchiveError> {
        let mut gz = flate2::write::GzEncoder::new(
            tempfile::tempfile_in(&data_dir)?,
            flate2::Compression::default(),
        );
        {
            let mut tar = tar::Builder::new(&mut gz);
            add_logs(&mut tar, &data_dir, &extra, "")?;
            tar.finish()?;
        }
        finish(gz.finish()?)
    })
    .await
    .map_err(|e| ArchiveError::Io(e.to_string()))?
}

/// Builds the encrypted debug bundle.
pub async fn debug_bundle(state: &AppState) -> Result<Archive, ArchiveError> {
    let recipients = parse_recipients(&state.config.admin.vendor_recipient)?;
    let facts = gather_facts(state).await;
    let data_dir = state.config.data_dir.clone();
    let extra = state.config.admin.log_paths.clone();
    tokio::task::spawn_blocking(move || -> Result<Archive, ArchiveError> {
        // 1. The plain tar.gz.
        let mut gz = flate2::write::GzEncoder::new(
            tempfile::tempfile_in(&data_dir)?,
            flate2::Compression::default(),
        );
        {
            let mut tar = tar::Builder::new(&mut gz);
            for (name, body) in &facts {
                add_bytes(&mut tar, name, body.as_bytes())?;
            }
            add_logs(&mut tar, &data_dir, &extra, "logs/")?;
            tar.finish()?;
        }
        let mut plain = gz.finish()?;
        plain.rewind()?;
        // 2. Encrypted to the vendor.
        let enc =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| ArchiveError::Io(format!("age: {e}")))?;
        let mut w = enc.wrap_output(tempfile::tempfile_in(&data_dir)?)?;
        io::copy(&mut plain, &mut w)?;
        let mut sealed = w.finish()?;
        let sealed_len = sealed.stream_position()?;
        sealed.rewind()?;
        // 3. In the tar the name promises.
        let mut outer = tar::Builder::new(tempfile::tempfile_in(&data_dir)?);
        let mut h = tar_header(sealed_len);
        outer.append_data(&mut h, "debug.tar.gz.age", &mut sealed)?;
        finish(outer.into_inner()?)
    })
    .await
    .map_err(|e| ArchiveError::Io(e.to_string()))?
}

fn finish(mut f: File) -> Result<Archive, ArchiveError> {
    f.flush()?;
    let len = f.stream_position()?;
    f.rewind()?;
    Ok(Archive { file: f, len })
}

/// `admin.vendor_recipient`: one or more `age1…` recipients.
pub fn parse_recipients(s: &str) -> Result<Vec<age::x25519::Recipient>, ArchiveError> {
    let parts: Vec<&str> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(ArchiveError::NoRecipient(
            "debug bundles are encrypted to the vendor: set admin.vendor_recipient (an age \
             recipient, age1…) in the configuration"
                .into(),
        ));
    }
    parts
        .iter()
        .map(|p| {
            age::x25519::Recipient::from_str(p).map_err(|e| {
                ArchiveError::NoRecipient(format!(
                    "admin.vendor_recipient {p:?} is not an age recipient: {e}"
                ))
            })
        })
        .collect()
}

fn tar_header(len: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o640);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, body: &[u8]) -> io::Result<()> {
    let mut h = tar_header(body.len() as u64);
    tar.append_data(&mut h, name, body)
}

/// Appends one regular file, cut (or zero-padded) to the size it had when opened, so a log
/// that grows or shrinks meanwhile cannot corrupt the archive.
fn add_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, path: &Path) -> io::Result<u64> {
    let f = File::open(path)?;
    let meta = f.metadata()?;
    let len = meta.len();
    let mut h = tar_header(len);
    {
        use std::os::unix::fs::MetadataExt;
        h.set_mtime(meta.mtime().max(0) as u64);
    }
    let body = f.take(len).chain(io::repeat(0)).take(len);
    tar.append_data(&mut h, name, body)?;
    Ok(len)
}

/// The daemon's log dir and the configured paths, under `prefix`, plus `MANIFEST.txt`.
fn add_logs<W: Write>(
    tar: &mut tar::Builder<W>,
    data_dir: &Path,
    extra: &[PathBuf],
    prefix: &str,
) -> io::Result<()> {
    let mut manifest =
        String::from("# what this archive holds (size in bytes), and what was skipped\n");
    let own = crate::logfile::log_dir(data_dir);
    let mut sources: Vec<(PathBuf, String)> = vec![(own, format!("{prefix}hostplane"))];
    for p in extra {
        let rel = p.to_string_lossy().trim_start_matches('/').to_string();
        sources.push((p.clone(), format!("{prefix}paths/{rel}")));
    }
    for (path, name) in sources {
        walk(tar, &path, &name, &mut manifest, 0)?;
    }
    add_bytes(tar, &format!("{prefix}MANIFEST.txt"), manifest.as_bytes())
}

fn walk<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    manifest: &mut String,
    depth: usize,
) -> io::Result<()> {
    use std::fmt::Write as _;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(manifest, "skipped {}: {e}", path.display());
            return Ok(());
        }
    };
    if meta.is_file() {
        match add_file(tar, name, path) {
            Ok(n) => {
                let _ = writeln!(manifest, "{name}\t{n}\t{}", path.display());
            }
            Err(e) => {
                let _ = writeln!(manifest, "skipped {}: {e}", path.display());
            }
        }
    } else if meta.is_dir() {
        if depth > 16 {
            let _ = writeln!(manifest, "skipped {}: nested too deep", path.display());
            return Ok(());
        }
        let mut entries: Vec<_> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
            Err(e) => {
                let _ = writeln!(manifest, "skipped {}: {e}", path.display());
                return Ok(());
            }
        };
        entries.sort();
        for e in entries {
            let child = path.join(&e);
            let child_name = format!("{name}/{}", e.to_string_lossy());
            walk(tar, &child, &child_name, manifest, depth + 1)?;
        }
    } else {
        let _ = writeln!(
            manifest,
            "skipped {}: not a regular file or directory",
            path.display()
        );
    }
    Ok(())
}

/// Runs a fact-gathering command; its error text stands in for the output on failure.
async fn fact_cmd(fact: HostFact) -> String {
    match support::collect(fact).await {
        Ok(out) => out,
        Err(e) => format!("({}: {e})\n", fact.shown()),
    }
}

/// (archive name, content) of everything but the logs.
async fn gather_facts(state: &AppState) -> Vec<(String, String)> {
    let now = crate::platform::time::now_string();
    let mut out = vec![(
        "README.txt".to_string(),
        format!(
            "hostplane debug bundle\ncreated: {now}\nversion: {}\n\nsystem/  host facts (uname, \
             lsblk, ip addr, mounts, capabilities, health)\nconfig/  configuration, secrets \
             redacted\njobs/    the {RECENT_JOBS} most recent jobs\nlogs/    the daemon's logs \
             and admin.log_paths (see logs/MANIFEST.txt)\n",
            env!("CARGO_PKG_VERSION")
        ),
    )];
    out.push(("system/uname.txt".into(), fact_cmd(HostFact::Uname).await));
    out.push((
        "system/lsblk.json".into(),
        fact_cmd(HostFact::Lsblk).await,
    ));
    out.push((
        "system/ip-addr.json".into(),
        fact_cmd(HostFact::IpAddr).await,
    ));
    out.push((
        "system/ip-route.json".into(),
        fact_cmd(HostFact::IpRoute).await,
    ));
    out.push((
        "system/mounts.txt".into(),
        std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_else(|e| format!("({e})\n")),
    ));
    let caps = hostplane_host::capabilities::probe().await;
    out.push((
        "system/capabilities.json".into(),
        serde_json::to_string_pretty(&caps).unwrap_or_default(),
    ));
    let proc_caps: String = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("Uid") || l.starts_with("NoNewPrivs"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push(("system/process-capabilities.txt".into(), proc_caps));
    let health = match hostplane_host::health::health(&state.config.data_dir) {
        Ok(h) => serde_json::to_string_pretty(&h).unwrap_or_default(),
        Err(e) => format!("({e})"),
    };
    out.push(("system/health.json".into(), health));
    out.push((
        "config/effective.txt".into(),
        redact(&format!("{:#?}\n", state.config)),
    ));
    if let Some(path) = &state.config.config_file {
        let text = std::fs::read_to_string(path)
            .map(|t| redact(&t))
            .unwrap_or_else(|e| format!("({}: {e})\n", path.display()));
        out.push(("config/config.toml".into(), text));
    }
    let jobs = match state.jobs.list() {
        Ok(mut j) => {
            j.truncate(RECENT_JOBS);
            serde_json::to_string_pretty(&j).unwrap_or_default()
        }
        Err(e) => format!("({e})"),
    };
    out.push(("jobs/recent.json".into(), jobs));
    out
}

/// Whether a setting's name suggests a secret.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "passphrase",
        "token",
        "private",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
        || (k.ends_with("key") && !k.contains("public"))
}

/// Replaces the values of secret-looking settings, in TOML (`key = value`) and in Rust debug
/// output (`key: value,`, values possibly spanning several more-indented lines).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skip_deeper_than: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(level) = skip_deeper_than {
            let t = line.trim_start();
            if indent > level || (indent == level && t.starts_with([')', ']', '}'])) {
                continue;
            }
            skip_deeper_than = None;
        }
        let t = line.trim_start();
        let key_len = t
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        let (key, rest) = t.split_at(key_len);
        let rest_trim = rest.trim_start();
        let sep = rest_trim.chars().next();
        let value = rest_trim.get(1..).unwrap_or("").trim();
        // Switches and numbers (`query_token = true`) are settings, not secrets.
        let bare = value
            .trim_end_matches(',')
            .split(" #")
            .next()
            .unwrap_or("")
            .trim();
        let plain = bare == "true" || bare == "false" || bare.parse::<f64>().is_ok();
        if key_len > 0 && matches!(sep, Some('=') | Some(':')) && is_secret_key(key) && !plain {
            let s = sep.unwrap_or('=');
            let multi_line = value.ends_with(['(', '[', '{']);
            let comma = if value.ends_with(',') || (s == ':' && multi_line) {
                ","
            } else {
                ""
            };
            let spacer = if s == '=' { " " } else { "" };
            out.push_str(&format!(
                "{}{key}{spacer}{s} \"<redacted>\"{comma}\n",
                &line[..indent]
            ));
            if multi_line {
                skip_deeper_than = Some(indent);
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_toml_and_debug() {
        let toml = "[auth]\nquery_token = true\napi_token = \"abc\"\n[admin]\nvendor_public_key = \"pub\"\nsigning_key=\"k\"\niscsi_password = \"p\" # x\n";
        let r = redact(toml);
        assert!(r.contains("query_token = true"));
        assert!(r.contains("api_token = \"<redacted>\""), "{r}");
        assert!(r.contains("vendor_public_key = \"pub\""));
        assert!(r.contains("signing_key = \"<redacted>\""), "{r}");
        assert!(!r.contains("\"p\""));
        assert!(!r.contains("abc"));

        let debug = "Config {\n    admin: AdminConfig {\n        secret_key: Some(\n            \"hidden\",\n        ),\n        services: [\n            \"hostplane\",\n        ],\n        token: \"t\",\n    },\n}\n";
        let r = redact(debug);
        assert!(!r.contains("hidden"), "{r}");
        assert!(!r.contains("\"t\""), "{r}");
        assert!(
            r.contains("        secret_key: \"<redacted>\",\n        services: ["),
            "{r}"
        );
        assert!(r.contains("\"hostplane\""));
    }

    #[test]
    fn recipients() {
        assert!(matches!(
            parse_recipients(""),
            Err(ArchiveError::NoRecipient(_))
        ));
        assert!(matches!(
            parse_recipients("nonsense"),
            Err(ArchiveError::NoRecipient(_))
        ));
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(parse_recipients(&format!("{a}, {b}")).unwrap().len(), 2);
    }
}
