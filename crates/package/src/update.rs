//! Update packages: a tar holding a signed manifest, an update script and a payload, encrypted
//! to the appliance with age. See `docs/update-package.md` for the format.
//!
//! Layout of the tar (in this order):
//!
//! | entry | what |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: version, min_version, changelog, build info, and the SHA-256 of every other file |
//! | `manifest.sig` | base64 ed25519 signature by the vendor over `hostplane-update-manifest-v1\n` + the manifest bytes |
//! | `update.sh` | the update script (any interpreter: it is executed directly, so it needs a `#!` line) |
//! | `payload/…` | the payload files |
//!
//! The whole tar is age-encrypted (binary format) to one or more X25519 recipients: the
//! appliances it is meant for. [`open`] reverses it: decrypt, check the signature before any
//! file is written, extract only the files the signed manifest lists, and compare their hashes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys;

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const SCRIPT: &str = "update.sh";
pub const PAYLOAD: &str = "payload";
/// The manifest format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Signed before the manifest bytes, so no other hostplane signature can pass for one.
pub const SIGNATURE_CONTEXT: &[u8] = b"hostplane-update-manifest-v1\n";
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// What an update package says about itself. Signed by the vendor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 1 for now.
    pub format: u32,
    /// The version the appliance reports after this update (semver, e.g. `1.2.0`).
    pub version: String,
    /// The lowest installed version this package may be applied to (semver).
    pub min_version: String,
    /// Changelog text shown by `GET /admin/changelog` after the update.
    pub changelog: String,
    /// Build information shown by `GET /admin/build` after the update (a JSON object).
    pub build: serde_json::Map<String, serde_json::Value>,
    /// When the package was built (RFC 3339, UTC).
    pub created: String,
    /// SHA-256 (hex) of every file of the package except the manifest and its signature:
    /// `update.sh` and each `payload/…` file.
    pub files: BTreeMap<String, String>,
}

/// Parses a version as semver (build metadata ignored when comparing).
pub fn parse_version(what: &str, v: &str) -> Result<semver::Version, String> {
    semver::Version::parse(v.trim())
        .map(|mut v| {
            v.build = semver::BuildMetadata::EMPTY;
            v
        })
        .map_err(|e| format!("{what} {v:?} is not a semantic version (MAJOR.MINOR.PATCH): {e}"))
}

impl Manifest {
    /// Checks what the signature cannot: the format and the version fields.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "manifest format {} is not supported (this appliance reads format {FORMAT})",
                self.format
            ));
        }
        let v = parse_version("version", &self.version)?;
        let min = parse_version("min_version", &self.min_version)?;
        if v < min {
            return Err(format!(
                "version {} is lower than its own min_version {}",
                self.version, self.min_version
            ));
        }
        if !self.files.contains_key(SCRIPT) {
            return Err(format!("the manifest lists no {SCRIPT}"));
        }
        Ok(())
    }

    /// Whether this package may be applied over `installed`: its version must be newer, and
    /// `installed` at least its `min_version`. The error says which rule failed.
    pub fn check_version(&self, installed: &str) -> Result<(), String> {
        let new = parse_version("version", &self.version)?;
        let min = parse_version("min_version", &self.min_version)?;
        let cur = parse_version("installed version", installed)?;
        if new <= cur {
            return Err(format!(
                "version {} is not newer than the installed version {installed}",
                self.version
            ));
        }
        if cur < min {
            return Err(format!(
                "the package needs at least version {} installed; this appliance has {installed}",
                self.min_version
            ));
        }
        Ok(())
    }
}

/// What `hostplane package build` is given.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub version: String,
    pub min_version: String,
    pub changelog: String,
    pub build: serde_json::Map<String, serde_json::Value>,
    /// A directory (its tree becomes `payload/…`) or one file (`payload/<name>`).
    pub payload: PathBuf,
    pub script: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("encrypting the package: {0}")]
    Encrypt(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file going into the package.
struct Source {
    name: String,
    path: PathBuf,
    mode: u32,
}

fn archive_name(path: &Path) -> Result<String, BuildError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| BuildError::Invalid(format!("{} is not a UTF-8 path", path.display())))
}

fn walk(dir: &Path, prefix: &Path, out: &mut Vec<Source>) -> Result<(), BuildError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let name = prefix.join(e.file_name());
        if meta.is_dir() {
            walk(&path, &name, out)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            out.push(Source {
                name: archive_name(&name)?,
                path,
                mode: if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                },
            });
        } else {
            return Err(BuildError::Invalid(format!(
                "{}: only regular files and directories can go into a payload (no symlinks, devices, sockets)",
                path.display()
            )));
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut HashWriter(&mut h)).map_err(io_err(path))?;
    Ok(hex::encode(h.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes through it.
struct HashReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn tar_header(size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Builds, signs and encrypts a package into `out`. Returns its manifest.
pub fn build<W: Write>(
    spec: &BuildSpec,
    key: &SigningKey,
    recipients: &[age::x25519::Recipient],
    out: W,
) -> Result<Manifest, BuildError> {
    if recipients.is_empty() {
        return Err(BuildError::Invalid(
            "at least one recipient (age1…) is needed".into(),
        ));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut sources = vec![Source {
        name: SCRIPT.into(),
        path: spec.script.clone(),
        mode: 0o755,
    }];
    let meta = std::fs::metadata(&spec.script).map_err(io_err(&spec.script))?;
    if !meta.is_file() {
        return Err(BuildError::Invalid(format!(
            "the script {} is not a file",
            spec.script.display()
        )));
    }
    let pmeta = std::fs::metadata(&spec.payload).map_err(io_err(&spec.payload))?;
    if pmeta.is_dir() {
        walk(&spec.payload, Path::new(PAYLOAD), &mut sources)?;
    } else if pmeta.is_file() {
        let name = spec.payload.file_name().ok_or_else(|| {
            BuildError::Invalid(format!("{} has no file name", spec.payload.display()))
        })?;
        sources.push(Source {
            name: archive_name(&Path::new(PAYLOAD).join(name))?,
            path: spec.payload.clone(),
            mode: 0o644,
        });
    } else {
        return Err(BuildError::Invalid(format!(
            "the payload {} is neither a file nor a directory",
            spec.payload.display()
        )));
    }
    let mut files = BTreeMap::new();
    for s in &sources {
        files.insert(s.name.clone(), sha256_file(&s.path)?);
    }
    let manifest = Manifest {
        format: FORMAT,
        version: spec.version.trim().to_string(),
        min_version: spec.min_version.trim().to_string(),
        changelog: spec.changelog.clone(),
        build: spec.build.clone(),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        files,
    };
    manifest.validate().map_err(BuildError::Invalid)?;
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let signature = keys::sign(key, SIGNATURE_CONTEXT, &manifest_bytes);

    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| BuildError::Encrypt(e.to_string()))?;
    let writer = encryptor
        .wrap_output(out)
        .map_err(|e| BuildError::Encrypt(e.to_string()))?;
    let mtime = now.unix_timestamp().max(0) as u64;
    let mut tar = tar::Builder::new(writer);
    let out_err = |e: io::Error| BuildError::Encrypt(format!("writing the package: {e}"));
    let mut h = tar_header(manifest_bytes.len() as u64, 0o644, mtime);
    tar.append_data(&mut h, MANIFEST, manifest_bytes.as_slice())
        .map_err(out_err)?;
    let mut h = tar_header(signature.len() as u64, 0o644, mtime);
    tar.append_data(&mut h, SIGNATURE, signature.as_bytes())
        .map_err(out_err)?;
    for s in &sources {
        let f = File::open(&s.path).map_err(io_err(&s.path))?;
        let size = f.metadata().map_err(io_err(&s.path))?.len();
        let mut reader = HashReader {
            inner: f.take(size),
            hash: Sha256::new(),
        };
        let mut h = tar_header(size, s.mode, mtime);
        tar.append_data(&mut h, &s.name, &mut reader)
            .map_err(out_err)?;
        // The file must not change between hashing and packing, or the appliance would
        // refuse the package; better to fail here.
        if hex::encode(reader.hash.finalize()) != manifest.files[&s.name] {
            return Err(BuildError::Invalid(format!(
                "{} changed while the package was being built",
                s.path.display()
            )));
        }
    }
    let writer = tar.into_inner().map_err(out_err)?;
    writer.finish().map_err(out_err)?;
    Ok(manifest)
}

/// Why a package was refused. Every variant but [`OpenError::Local`] is the package's fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not an age file, not encrypted to this appliance, or its ciphertext is damaged.
    #[error("the package cannot be decrypted: {0}")]
    Decrypt(String),
    /// The decrypted content is not a well-formed package tar.
    #[error("the package cannot be extracted: {0}")]
    Extract(String),
    /// The manifest is missing, not signed by the vendor key, or not valid.
    #[error("the package is not signed by the vendor: {0}")]
    Signature(String),
    /// A file is missing, unlisted or differs from the signed manifest.
    #[error("the package contents do not match its signed manifest: {0}")]
    Integrity(String),
    /// Writing the extracted files failed on this machine (disk full, permissions).
    #[error("extracting the package failed on this machine: {0}")]
    Local(String),
}

/// A relative path made only of normal components, as UTF-8.
fn safe_name(path: &Path) -> Result<String, OpenError> {
    let ok = !path.as_os_str().is_empty()
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    match path.to_str() {
        Some(s) if ok => Ok(s.to_string()),
        _ => Err(OpenError::Extract(format!(
            "unsafe entry name {:?} (absolute, `..`, `.` or not UTF-8)",
            path.display()
        ))),
    }
}

fn read_small<R: Read>(r: R, limit: u64, what: &str) -> Result<Vec<u8>, OpenError> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| OpenError::Extract(format!("reading {what}: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(OpenError::Extract(format!(
            "{what} is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

/// Decrypts `input` with `identities`, verifies it against the vendor key and extracts the
/// script and payload into `dest` (an existing, empty directory). Nothing but the manifest and
/// its signature is read before the signature is checked, and only files the signed manifest
/// lists are written. Returns the manifest (already [`Manifest::validate`]d).
pub fn open<R: Read>(
    input: R,
    identities: &[age::x25519::Identity],
    vendor: &VerifyingKey,
    dest: &Path,
) -> Result<Manifest, OpenError> {
    let decryptor = age::Decryptor::new_buffered(BufReader::new(input))
        .map_err(|e| OpenError::Decrypt(format!("not an age-encrypted package ({e})")))?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => OpenError::Decrypt(
                "it is not encrypted to this appliance's key (no matching recipient)".into(),
            ),
            other => OpenError::Decrypt(other.to_string()),
        })?;
    let mut archive = tar::Archive::new(reader);
    let extract = |e: io::Error| OpenError::Extract(e.to_string());
    let mut manifest: Option<Manifest> = None;
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for (index, entry) in archive.entries().map_err(extract)?.enumerate() {
        let entry = entry.map_err(extract)?;
        let name = safe_name(&entry.path().map_err(extract)?)?;
        let kind = entry.header().entry_type();
        match index {
            0 => {
                if name != MANIFEST || !kind.is_file() {
                    return Err(OpenError::Signature(format!(
                        "the first entry must be {MANIFEST}, found {name:?}"
                    )));
                }
                manifest_bytes = Some(read_small(entry, MAX_MANIFEST_BYTES, MANIFEST)?);
                continue;
            }
            1 => {
                if name != SIGNATURE || !kind.is_file() {
                    return Err(OpenError::Signature(format!(
                        "the second entry must be {SIGNATURE}, found {name:?}"
                    )));
                }
                let sig = read_small(entry, MAX_SIGNATURE_BYTES, SIGNATURE)?;
                let bytes = manifest_bytes.take().unwrap_or_default();
                keys::verify(
                    vendor,
                    SIGNATURE_CONTEXT,
                    &bytes,
                    &String::from_utf8_lossy(&sig),
                )
                .map_err(|e| OpenError::Signature(e.0))?;
                let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    OpenError::Signature(format!("the signed manifest does not parse: {e}"))
                })?;
                m.validate().map_err(OpenError::Signature)?;
                manifest = Some(m);
                continue;
            }
            _ => {}
        }
        let m = manifest.as_ref().expect("set at entry 1");
        let Some(expected) = m.files.get(&name) else {
            return Err(OpenError::Integrity(format!(
                "{name:?} is not listed in the manifest"
            )));
        };
        if !kind.is_file() {
            return Err(OpenError::Extract(format!(
                "{name:?}: entry type {kind:?} is not allowed (regular files only)"
            )));
        }
        if written.contains_key(&name) {
            return Err(OpenError::Integrity(format!("{name:?} appears twice")));
        }
        let target = dest.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| OpenError::Local(format!("{}: {e}", parent.display())))?;
        }
        let mode = if name == SCRIPT {
            0o700
        } else if entry.header().mode().unwrap_or(0o644) & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(|e| OpenError::Local(format!("{}: {e}", target.display())))?;
        let mut reader = HashReader {
            inner: entry,
            hash: Sha256::new(),
        };
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| OpenError::Extract(format!("reading {name:?}: {e}")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(|e| OpenError::Local(format!("{}: {e}", target.display())))?;
        }
        file.sync_all()
            .map_err(|e| OpenError::Local(format!("{}: {e}", target.display())))?;
        let got = hex::encode(reader.hash.finalize());
        if &got != expected {
            return Err(OpenError::Integrity(format!(
                "{name:?} has SHA-256 {got}, the manifest says {expected}"
            )));
        }
        written.insert(name, got);
    }
    // Read to the end so damage after the tar's end marker is noticed too.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| OpenError::Decrypt(format!("the ciphertext is damaged: {e}")))?;
    let m = manifest.ok_or_else(|| {
        OpenError::Signature(format!("the package has no {MANIFEST} and {SIGNATURE}"))
    })?;
    if let Some(missing) = m.files.keys().find(|k| !written.contains_key(*k)) {
        return Err(OpenError::Integrity(format!(
            "{missing:?} is listed in the manifest but missing"
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        key: SigningKey,
        id: age::x25519::Identity,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("payload/sub")).unwrap();
        std::fs::write(dir.path().join("payload/app.txt"), "app v2\n").unwrap();
        std::fs::write(dir.path().join("payload/sub/data.bin"), [0u8, 1, 2, 3]).unwrap();
        std::fs::write(dir.path().join("update.sh"), "#!/bin/sh\necho ok\n").unwrap();
        Fixture {
            dir,
            key: keys::generate_signing_key(),
            id: keys::generate_identity(),
        }
    }

    fn spec(f: &Fixture, version: &str, min: &str) -> BuildSpec {
        BuildSpec {
            version: version.into(),
            min_version: min.into(),
            changelog: "# Changelog\n".into(),
            build: serde_json::json!({"builddate": "123456789"})
                .as_object()
                .unwrap()
                .clone(),
            payload: f.dir.path().join("payload"),
            script: f.dir.path().join("update.sh"),
        }
    }

    fn build_bytes(f: &Fixture, version: &str, min: &str) -> Vec<u8> {
        let mut out = Vec::new();
        build(
            &spec(f, version, min),
            &f.key,
            &[f.id.to_public()],
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn roundtrip() {
        let f = fixture();
        let bytes = build_bytes(&f, "1.2.0", "1.0.0");
        let dest = tempfile::tempdir().unwrap();
        let m = open(
            bytes.as_slice(),
            std::slice::from_ref(&f.id),
            &f.key.verifying_key(),
            dest.path(),
        )
        .unwrap();
        assert_eq!(m.version, "1.2.0");
        assert_eq!(m.build["builddate"], "123456789");
        assert_eq!(
            std::fs::read_to_string(dest.path().join("payload/app.txt")).unwrap(),
            "app v2\n"
        );
        assert_eq!(
            std::fs::read(dest.path().join("payload/sub/data.bin")).unwrap(),
            [0u8, 1, 2, 3]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dest.path().join(SCRIPT))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn wrong_recipient_wrong_key_and_damage_are_refused() {
        let f = fixture();
        let bytes = build_bytes(&f, "1.2.0", "1.0.0");
        let other_id = keys::generate_identity();
        let dest = tempfile::tempdir().unwrap();
        let e = open(
            bytes.as_slice(),
            &[other_id],
            &f.key.verifying_key(),
            dest.path(),
        )
        .unwrap_err();
        assert!(matches!(e, OpenError::Decrypt(_)), "{e}");

        let other_key = keys::generate_signing_key();
        let dest = tempfile::tempdir().unwrap();
        let e = open(
            bytes.as_slice(),
            std::slice::from_ref(&f.id),
            &other_key.verifying_key(),
            dest.path(),
        )
        .unwrap_err();
        assert!(matches!(e, OpenError::Signature(_)), "{e}");
        // Nothing but the manifest was read: no file was written.
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);

        for pos in [bytes.len() / 2, bytes.len() - 5, 40] {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x55;
            let dest = tempfile::tempdir().unwrap();
            let e = open(
                bad.as_slice(),
                std::slice::from_ref(&f.id),
                &f.key.verifying_key(),
                dest.path(),
            )
            .unwrap_err();
            assert!(
                matches!(e, OpenError::Decrypt(_) | OpenError::Extract(_)),
                "byte {pos}: {e}"
            );
        }
        let e = open(
            &b"not a package"[..],
            std::slice::from_ref(&f.id),
            &f.key.verifying_key(),
            tempfile::tempdir().unwrap().path(),
        )
        .unwrap_err();
        assert!(matches!(e, OpenError::Decrypt(_)), "{e}");
    }

    #[test]
    fn versions() {
        let f = fixture();
        let mut out = Vec::new();
        let e = build(
            &spec(&f, "1.0", "1.0.0"),
            &f.key,
            &[f.id.to_public()],
            &mut out,
        )
        .unwrap_err();
        assert!(e.to_string().contains("semantic version"), "{e}");
        let e = build(
            &spec(&f, "1.0.0", "2.0.0"),
            &f.key,
            &[f.id.to_public()],
            &mut out,
        )
        .unwrap_err();
        assert!(e.to_string().contains("lower than"), "{e}");

        let m = Manifest {
            format: 1,
            version: "1.2.0".into(),
            min_version: "1.1.0".into(),
            changelog: String::new(),
            build: Default::default(),
            created: String::new(),
            files: [(SCRIPT.to_string(), String::new())].into(),
        };
        m.check_version("1.1.0").unwrap();
        m.check_version("1.1.9+build.7").unwrap();
        assert!(m.check_version("1.2.0").unwrap_err().contains("not newer"));
        assert!(m.check_version("1.3.0").unwrap_err().contains("not newer"));
        assert!(m.check_version("1.0.9").unwrap_err().contains("at least"));
        assert!(m.check_version("garbage").is_err());
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(safe_name(Path::new("payload/a")).is_ok());
        for bad in ["/etc/passwd", "../x", "payload/../../x", "./x", ""] {
            assert!(safe_name(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
