//! TLS: the certificate files, a self-signed pair made at first start, and the live rustls
//! config that `reload` swaps without a restart (new connections get the new certificate).

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;

use crate::config::Config;
use crate::fsutil::write_atomic;

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn configured(cfg: &Config) -> Option<TlsFiles> {
    cfg.tls
        .cert
        .clone()
        .zip(cfg.tls.key.clone())
        .filter(|(c, k)| !c.as_os_str().is_empty() && !k.as_os_str().is_empty())
        .map(|(cert, key)| TlsFiles { cert, key })
}

/// Where the certificate and key are: the configured pair, or DATA_DIR/tls/{cert,key}.pem.
pub fn paths(cfg: &Config) -> TlsFiles {
    configured(cfg).unwrap_or_else(|| {
        let dir = cfg.data_dir.join("tls");
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    })
}

/// The configured pair, or DATA_DIR/tls/{cert,key}.pem, generated self-signed when missing.
pub fn ensure_files(cfg: &Config) -> anyhow::Result<TlsFiles> {
    if let Some(files) = configured(cfg) {
        return Ok(files);
    }
    let files = paths(cfg);
    let dir = cfg.data_dir.join("tls");
    if !files.cert.exists() || !files.key.exists() {
        generate_self_signed(&dir, &files)?;
        tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate");
    }
    Ok(files)
}

fn generate_self_signed(dir: &Path, files: &TlsFiles) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_string());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names)?;
    write_atomic(&files.key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&files.cert, ck.cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

pub async fn load(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load TLS certificate {} / key {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })
}

/// Replaces the live certificate from PEM; the old one stays if the new one is bad. New
/// connections get the new certificate; open ones keep theirs.
pub async fn reload(
    config: &RustlsConfig,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
) -> std::io::Result<()> {
    config.reload_from_pem(cert_pem, key_pem).await
}

pub async fn reload_from_files(config: &RustlsConfig, files: &TlsFiles) -> std::io::Result<()> {
    let cert = tokio::fs::read(&files.cert).await?;
    let key = tokio::fs::read(&files.key).await?;
    reload(config, cert, key).await
}
