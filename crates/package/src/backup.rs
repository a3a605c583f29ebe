//! Backup archives of the appliance state: the format, making one, and unpacking and checking
//! one. Pure file and tar code (no HTTP, no daemon state); described for people in
//! `docs/certificates-storage-backup.md`. The daemon's `areas/system/backup.rs` is the HTTP and
//! job layer: it picks the files ([`Source`]s: the store's online backup, the role files its
//! config names, the state files under [`DATA_PATHS`]), calls [`pack`], and on restore calls
//! [`unpack`], then checks what only it can (the SQLite schema, the TLS pair, the config) and
//! swaps the files in with [`install`] and the modes of [`restored_mode`].
//!
//! Layout of the tar (uncompressed; [`unpack`] also reads it gzip- or zstd-compressed):
//!
//! | entry | what |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: format [`FORMAT`] [`FORMAT_VERSION`], who made it when and where, the store's schema version, and every other entry's path, size, mode and SHA-256 |
//! | `store/hostplane.sqlite` | the store ([`STORE_ENTRY`]) |
//! | `roles/<name>` | files the config names, by role ([`ROLE_NAMES`]) |
//! | `data/<path>` | state files under the data dir, below one of [`DATA_PATHS`] |

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `format` of the manifest.
pub const FORMAT: &str = "hostplane-backup";
/// `version` of the manifest this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
/// The store's entry.
pub const STORE_ENTRY: &str = "store/hostplane.sqlite";
/// Largest manifest (and largest certificate, key or config file, [`read_small`]).
pub const MAX_MANIFEST: u64 = 16 << 20;
/// Most entries an archive may have.
pub const MAX_ENTRIES: usize = 100_000;
/// State files under the data dir that backups carry (a file or a directory). An area that
/// keeps state in files there adds its path here; everything else in the data dir (logs,
/// temp files, the backups themselves) is not state.
///
/// `secrets.key` (the key the secret store seals with) and `secrets/` (template registries'
/// tokens) go with the store that holds what they open: a backup restored on another host must
/// still open its secrets. A backup is therefore as sensitive as the host (it already carries
/// the TLS key and the appliance identity); restored, they are 0600 like every non-public file.
pub const DATA_PATHS: &[&str] = &[
    "bootstrap-token",
    "keys",
    "tls",
    "license",
    "licence",
    "secrets.key",
    "secrets",
];
/// Files the config names, by role: `roles/<name>` entries.
pub const ROLE_NAMES: &[&str] = &[
    "tls-cert.pem",
    "tls-key.pem",
    "config.toml",
    "appliance-identity",
];

/// What an archive says about itself and every other entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub hostplane_version: String,
    pub created_at: String,
    pub created_by: String,
    pub hostname: String,
    pub schema_version: i64,
    pub files: Vec<ManifestFile>,
}

/// One entry of the archive besides the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub mode: u32,
}

/// Who made an archive, when and where: the manifest's header.
#[derive(Debug, Clone)]
pub struct Origin {
    pub hostplane_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub created_by: String,
    pub hostname: String,
    pub schema_version: i64,
}

/// A file to put into an archive.
#[derive(Debug, Clone)]
pub struct Source {
    /// The entry name (`store/…`, `roles/…`, `data/…`).
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
    /// The mode the manifest records (a restore uses [`restored_mode`] instead).
    pub mode: u32,
}

/// Size and SHA-256 (hex) of a file, read in 64 KiB pieces.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Permission bits of a file (0600 when unreadable).
pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600)
}

// ---- making an archive ----

/// Reads a state file into the archive: counts and hashes what passes, and stops with an
/// error as soon as the backup is cancelled. Nothing is buffered beyond one read.
struct Checked<'a, R> {
    inner: R,
    hash: Sha256,
    n: u64,
    cancelled: &'a AtomicBool,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled"));
        }
        let k = self.inner.read(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: &mut dyn Read,
    size: u64,
    mode: u32,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, name, data)
}

/// Writes the archive of `sources` to `partial` (created 0600, synced) and returns its
/// manifest. Blocking. Every file is streamed (hashed once for the manifest, then copied into
/// the tar through a hashing reader that must see the same bytes): memory use does not grow
/// with the file sizes, and a file that changes meanwhile fails the archive. Stops with
/// `cancelled` between files and between reads. The caller checks free space first and
/// removes `partial` on failure.
pub fn pack(
    sources: &[Source],
    origin: Origin,
    partial: &Path,
    cancelled: &AtomicBool,
) -> Result<Manifest, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let stop = || {
        if cancelled.load(Ordering::Relaxed) {
            Err("cancelled".to_string())
        } else {
            Ok(())
        }
    };
    let mut files = Vec::new();
    for s in sources {
        stop()?;
        let (size, sha256) =
            sha256_file(&s.path).map_err(|e| format!("{}: {e}", s.path.display()))?;
        files.push(ManifestFile {
            path: s.name.clone(),
            size,
            sha256,
            mode: s.mode,
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        hostplane_version: origin.hostplane_version,
        created_at: origin.created_at,
        created_by: origin.created_by,
        hostname: origin.hostname,
        schema_version: origin.schema_version,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, out));
    let io = |e: io::Error| format!("writing the archive: {e}");
    append(
        &mut builder,
        MANIFEST,
        &mut json.as_slice(),
        json.len() as u64,
        0o600,
    )
    .map_err(io)?;
    for (s, listed) in sources.iter().zip(&manifest.files) {
        stop()?;
        // Streamed from the file; what went in must be what the manifest says.
        let f = std::fs::File::open(&s.path).map_err(|e| format!("{}: {e}", s.path.display()))?;
        let mut reader = Checked {
            inner: f.take(listed.size),
            hash: Sha256::new(),
            n: 0,
            cancelled,
        };
        let written = append(&mut builder, &s.name, &mut reader, listed.size, s.mode);
        stop()?;
        written.map_err(|e| format!("{}: {e}", s.path.display()))?;
        if reader.n != listed.size || hex::encode(reader.hash.finalize()) != listed.sha256 {
            return Err(format!(
                "{} changed while the backup was made; try again",
                s.path.display()
            ));
        }
    }
    let buffered = builder.into_inner().map_err(io)?;
    let f = buffered.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    Ok(manifest)
}

// ---- unpacking and checking an archive ----

fn safe_rel(path: &Path) -> Option<String> {
    let s = path.to_str()?;
    let ok = !s.is_empty()
        && s.len() <= 4096
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| s.to_string())
}

/// Whether `name` may be in an archive (besides the manifest).
pub fn allowed_entry(name: &str) -> bool {
    if name == STORE_ENTRY {
        return true;
    }
    if let Some(role) = name.strip_prefix("roles/") {
        return ROLE_NAMES.contains(&role);
    }
    if let Some(rel) = name.strip_prefix("data/") {
        let top = rel.split('/').next().unwrap_or("");
        return DATA_PATHS.contains(&top) && !rel.split('/').any(|c| c.starts_with('.'));
    }
    false
}

/// Why an archive was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Not a sound hostplane backup.
    Invalid(String),
    /// It unpacks to more than the limit.
    TooLarge(String),
    /// The filesystem has no room for it.
    NoSpace(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Invalid(m) | Refusal::TooLarge(m) | Refusal::NoSpace(m) => m,
        }
    }
}

impl From<String> for Refusal {
    fn from(m: String) -> Self {
        Refusal::Invalid(m)
    }
}

impl From<&str> for Refusal {
    fn from(m: &str) -> Self {
        Refusal::Invalid(m.to_string())
    }
}

/// A local write failed: ENOSPC/EDQUOT is [`Refusal::NoSpace`], anything else is reported
/// as it is.
fn local(path: &Path, e: io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            Refusal::NoSpace(format!("{}: the filesystem is full", path.display()))
        }
        _ => Refusal::Invalid(format!("{}: {e}", path.display())),
    }
}

/// The unpacked stream of an archive: counts every byte after decompression and fails once
/// more than `limit` went through (`over` says so, whatever error the tar reader makes of
/// it); optionally copies what it reads to `tee` (the plain tar of a compressed upload).
struct Unpacked<R> {
    inner: R,
    n: u64,
    limit: u64,
    tee: Option<io::BufWriter<std::fs::File>>,
    /// Why reading stopped, seen by the caller whatever the tar reader made of the error.
    stopped: Rc<RefCell<Option<Stopped>>>,
}

enum Stopped {
    Over,
    Tee(io::Error),
}

impl<R: Read> Read for Unpacked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        if self.n > self.limit {
            *self.stopped.borrow_mut() = Some(Stopped::Over);
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "the archive unpacks to too much data",
            ));
        }
        if let Some(t) = &mut self.tee
            && let Err(e) = t.write_all(&buf[..k])
        {
            let msg = e.to_string();
            *self.stopped.borrow_mut() = Some(Stopped::Tee(e));
            return Err(io::Error::other(msg));
        }
        Ok(k)
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens an archive: a tar, or a gzip- or zstd-compressed tar (by its magic bytes). Returns
/// the decompressed stream and whether it was compressed.
fn open_archive(archive: &Path) -> Result<(Box<dyn Read>, bool), Refusal> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(archive)
        .map_err(|e| Refusal::Invalid(format!("cannot open the archive: {e}")))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => return Err(Refusal::Invalid(format!("reading the archive: {e}"))),
        }
    }
    f.seek(SeekFrom::Start(0))
        .map_err(|e| Refusal::Invalid(format!("reading the archive: {e}")))?;
    if got == 4 && magic == ZSTD_MAGIC {
        let d = zstd::stream::read::Decoder::new(f)
            .map_err(|e| Refusal::Invalid(format!("not a zstd stream: {e}")))?;
        Ok((Box::new(d), true))
    } else if got >= 2 && magic[..2] == GZIP_MAGIC {
        let d = flate2::read::MultiGzDecoder::new(io::BufReader::new(f));
        Ok((Box::new(d), true))
    } else {
        Ok((Box::new(f), false))
    }
}

/// Unpacks `archive` (a tar, or a gzip/zstd-compressed tar) into `staging` and checks the
/// format: only known entries ([`allowed_entry`]), regular files, every checksum and size as
/// the manifest says, nothing unlisted, a manifest of this format and version, a store entry.
/// Blocking. At most `limit` bytes are unpacked (counted after decompression, as they come):
/// past that it stops ([`Refusal::TooLarge`], naming `[admin] backup_unpacked_max_bytes`), and
/// the caller removes `staging`. Only regular files are written, each created new with mode
/// 0600 (the archive's modes, owners and setuid bits are never used); links, devices, FIFOs,
/// absolute names and `..` are refused. A compressed archive's plain tar is written to
/// `plain` when given.
pub fn unpack(
    archive: &Path,
    staging: &Path,
    limit: u64,
    plain: Option<&Path>,
) -> Result<Manifest, Refusal> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let (reader, compressed) = open_archive(archive)?;
    let tee = match plain {
        Some(p) if compressed => Some(io::BufWriter::with_capacity(
            1 << 20,
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .map_err(|e| local(p, e))?,
        )),
        _ => None,
    };
    let stopped = Rc::new(RefCell::new(None));
    let mut ar = tar::Archive::new(Unpacked {
        inner: reader,
        n: 0,
        limit,
        tee,
        stopped: stopped.clone(),
    });
    // A read error caused by the limit or by the tee file, as what it is.
    let why = |fallback: String| -> Refusal {
        match stopped.borrow_mut().take() {
            Some(Stopped::Over) => Refusal::TooLarge(format!(
                "the archive unpacks to more than {limit} bytes (config: [admin] backup_unpacked_max_bytes)"
            )),
            Some(Stopped::Tee(e)) => local(plain.unwrap_or(archive), e),
            None => Refusal::Invalid(fallback),
        }
    };
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let dirs = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| local(d, e))
    };
    dirs(staging)?;
    {
        let entries = ar
            .entries()
            .map_err(|e| Refusal::Invalid(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut e = entry.map_err(|e| why(format!("not a tar archive: {e}")))?;
            let ty = e.header().entry_type();
            let path = e
                .path()
                .map_err(|e| Refusal::Invalid(format!("bad entry name: {e}")))?;
            let Some(name) = safe_rel(&path) else {
                return Err(Refusal::Invalid(format!(
                    "unsafe entry name {:?}",
                    path.display().to_string()
                )));
            };
            if ty.is_dir() {
                // Directories are made as files need them (0700), never from the archive.
                continue;
            }
            if !ty.is_file() {
                return Err(Refusal::Invalid(format!(
                    "{name} is not a regular file (links, devices and FIFOs are refused)"
                )));
            }
            if seen.len() >= MAX_ENTRIES {
                return Err("too many entries".into());
            }
            if seen.contains_key(&name) || (name == MANIFEST && manifest.is_some()) {
                return Err(format!("{name} appears twice").into());
            }
            if name == MANIFEST {
                let mut buf = Vec::new();
                (&mut e)
                    .take(MAX_MANIFEST + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| why(format!("reading the manifest: {e}")))?;
                if buf.len() as u64 > MAX_MANIFEST {
                    return Err("the manifest is too large".into());
                }
                manifest = Some(buf);
                continue;
            }
            if !allowed_entry(&name) {
                return Err(format!("{name} is not part of a hostplane backup").into());
            }
            let dest = staging.join(&name);
            if let Some(dir) = dest.parent() {
                dirs(dir)?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(|e| local(&dest, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 << 10];
            let mut n = 0u64;
            loop {
                let k = e
                    .read(&mut buf)
                    .map_err(|err| why(format!("reading {name}: {err}")))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                out.write_all(&buf[..k]).map_err(|e| local(&dest, e))?;
                n += k as u64;
            }
            out.sync_all().map_err(|e| local(&dest, e))?;
            seen.insert(name, (n, hex::encode(h.finalize())));
        }
    }
    // Read to the end: the whole (decompressed) stream counts, is valid, and is in `plain`.
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| why(format!("the archive is damaged after its last entry: {e}")))?;
    if let Some(mut t) = rest.tee.take() {
        let p = plain.unwrap_or(archive);
        t.flush().map_err(|e| local(p, e))?;
        t.get_ref().sync_all().map_err(|e| local(p, e))?;
    }
    let manifest = manifest.ok_or("the archive has no manifest.json")?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| format!("manifest.json is not a hostplane backup manifest: {e}"))?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(format!(
            "unknown backup format {:?} version {} (this hostplane reads {FORMAT} {FORMAT_VERSION})",
            manifest.format, manifest.version
        )
        .into());
    }
    for f in &manifest.files {
        match seen.get(&f.path) {
            None => return Err(format!("{} is listed but missing", f.path).into()),
            Some((size, sha)) if *size != f.size || *sha != f.sha256 => {
                return Err(format!("{} does not match its checksum", f.path).into());
            }
            _ => {}
        }
    }
    if seen.len() != manifest.files.len() {
        let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let extra = seen
            .keys()
            .find(|k| !listed.contains(&k.as_str()))
            .cloned()
            .unwrap_or_default();
        return Err(format!("{extra} is in the archive but not in its manifest").into());
    }
    if !seen.contains_key(STORE_ENTRY) {
        return Err(format!("the archive has no {STORE_ENTRY}").into());
    }
    Ok(manifest)
}

/// Certificates, keys and config files are small; a larger one is not one.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_MANIFEST {
        return Err(io::Error::other(format!(
            "{} is larger than {MAX_MANIFEST} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

/// The mode a restored file gets, from hostplane's own rules (never from the archive):
/// certificates, the licence and the config file 0644, everything else (keys, the bootstrap
/// token, the appliance identity, anything unknown) 0600. Nothing is executable or setuid.
pub fn restored_mode(name: &str) -> u32 {
    let public =
        matches!(
            name,
            "roles/tls-cert.pem" | "roles/config.toml" | "data/license" | "data/licence"
        ) || (name.starts_with("data/tls/") && name.ends_with(".pem") && !name.contains("key"));
    if public { 0o644 } else { 0o600 }
}

/// Puts a staged (checked) file in place atomically with `mode`: the staged file is given the
/// mode and renamed over `live`; across filesystems it is streamed to a temp file next to
/// `live` (created with the mode), synced and renamed. The directory is synced after.
pub fn install(staged: &Path, live: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = live.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(staged, std::fs::Permissions::from_mode(mode))?;
    match std::fs::rename(staged, live) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let name = live.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            let tmp = dir.join(format!(".{name}.restore-{}", std::process::id()));
            let r = (|| {
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(mode)
                    .open(&tmp)?;
                // An existing temp file keeps its mode under O_CREAT: set it.
                out.set_permissions(std::fs::Permissions::from_mode(mode))?;
                io::copy(&mut std::fs::File::open(staged)?, &mut out)?;
                out.sync_all()?;
                std::fs::rename(&tmp, live)
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r?;
        }
        Err(e) => return Err(e),
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_modes_follow_hostplanes_rules() {
        for (name, mode) in [
            ("data/bootstrap-token", 0o600),
            ("data/keys/appliance.key", 0o600),
            ("roles/tls-key.pem", 0o600),
            ("roles/appliance-identity", 0o600),
            ("data/tls/key.pem", 0o600),
            ("data/other", 0o600),
            ("roles/tls-cert.pem", 0o644),
            ("roles/config.toml", 0o644),
            ("data/tls/cert.pem", 0o644),
            ("data/license", 0o644),
            ("data/licence", 0o644),
        ] {
            assert_eq!(restored_mode(name), mode, "{name}");
        }
    }

    /// A tar of `entries` (name, data), optionally compressed.
    fn tar_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacking_stops_at_the_limit_after_decompression() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("manifest.json", b"{}".to_vec()),
            ("data/keys/zeros", vec![0u8; 8 << 20]),
        ]);
        let zst = zstd::stream::encode_all(tar.as_slice(), 3).unwrap();
        let archive = dir.path().join("a.tar.zst");
        std::fs::write(&archive, &zst).unwrap();
        let staging = dir.path().join("staging");
        let plain = dir.path().join("plain.tar");
        let r = unpack(&archive, &staging, 1 << 20, Some(&plain));
        assert!(matches!(r, Err(Refusal::TooLarge(_))), "{r:?}");
        // What was unpacked stays below the limit (the caller removes it).
        let unpacked = std::fs::metadata(staging.join("data/keys/zeros")).map_or(0, |m| m.len());
        assert!(unpacked <= 1 << 20, "{unpacked}");
        assert!(std::fs::metadata(&plain).unwrap().len() <= 1 << 20);
    }

    #[test]
    fn staged_files_are_private_whatever_the_archive_says() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o4777);
        h.set_cksum();
        b.append_data(&mut h, "data/bootstrap-token", &b"x"[..])
            .unwrap();
        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let staging = dir.path().join("staging");
        // Refused later (no manifest), but what was staged is 0600.
        assert!(unpack(&archive, &staging, 1 << 20, None).is_err());
        let m = std::fs::metadata(staging.join("data/bootstrap-token")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn install_replaces_atomically_with_the_given_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, b"new").unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o6777)).unwrap();
        let live = dir.path().join("sub/live");
        std::fs::create_dir_all(live.parent().unwrap()).unwrap();
        std::fs::write(&live, b"old").unwrap();
        install(&staged, &live, 0o600).unwrap();
        assert_eq!(std::fs::read(&live).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&live).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert!(!staged.exists());
    }

    #[test]
    fn only_known_entries_are_allowed() {
        assert!(allowed_entry("store/hostplane.sqlite"));
        assert!(allowed_entry("roles/tls-key.pem"));
        assert!(allowed_entry("data/keys/appliance.key"));
        assert!(!allowed_entry("data/logs/x"));
        assert!(!allowed_entry("data/keys/.hidden"));
        assert!(!allowed_entry("roles/other"));
        assert!(safe_rel(Path::new("../etc/passwd")).is_none());
        assert!(safe_rel(Path::new("/etc/passwd")).is_none());
    }

    fn origin() -> Origin {
        Origin {
            hostplane_version: "0.1.0".into(),
            created_at: "2026-12-06T22:00:00Z".into(),
            created_by: "admin".into(),
            hostname: "box".into(),
            schema_version: 7,
        }
    }

    #[test]
    fn packed_archives_unpack_to_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let mut sources = Vec::new();
        for (name, data) in [
            (STORE_ENTRY, b"sqlite".to_vec()),
            ("roles/tls-cert.pem", b"cert".to_vec()),
            ("data/keys/appliance.key", vec![7u8; 200_000]),
        ] {
            let p = src.join(name.replace('/', "_"));
            std::fs::write(&p, &data).unwrap();
            sources.push(Source {
                name: name.into(),
                path: p,
                mode: 0o640,
            });
        }
        let archive = dir.path().join("b.tar");
        let m = pack(&sources, origin(), &archive, &AtomicBool::new(false)).unwrap();
        assert_eq!((m.format.as_str(), m.version), (FORMAT, FORMAT_VERSION));
        assert_eq!(m.files.len(), 3);
        assert_eq!(m.files[2].size, 200_000);
        assert_eq!(file_mode(&archive), 0o600);

        let staging = dir.path().join("staging");
        let back = unpack(&archive, &staging, 1 << 30, None).unwrap();
        assert_eq!(back.created_by, "admin");
        assert_eq!(back.schema_version, 7);
        for s in &sources {
            assert_eq!(
                std::fs::read(staging.join(&s.name)).unwrap(),
                std::fs::read(&s.path).unwrap()
            );
        }
        // gzip-compressed, the same archive unpacks too (and its plain tar is kept).
        let gz = dir.path().join("b.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&std::fs::read(&archive).unwrap()).unwrap();
        enc.finish().unwrap();
        let plain = dir.path().join("plain.tar");
        unpack(&gz, &dir.path().join("staging2"), 1 << 30, Some(&plain)).unwrap();
        assert_eq!(
            std::fs::read(&plain).unwrap(),
            std::fs::read(&archive).unwrap()
        );
    }

    #[test]
    fn cancelled_packing_stops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let sources = [Source {
            name: STORE_ENTRY.into(),
            path: p,
            mode: 0o600,
        }];
        let e = pack(
            &sources,
            origin(),
            &dir.path().join("a"),
            &AtomicBool::new(true),
        )
        .unwrap_err();
        assert_eq!(e, "cancelled");
    }

    #[test]
    fn tampered_and_incomplete_archives_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = |files: serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({
                "format": FORMAT, "version": FORMAT_VERSION, "hostplane_version": "0.1.0",
                "created_at": "t", "created_by": "a", "hostname": "h", "schema_version": 1,
                "files": files,
            }))
            .unwrap()
        };
        let sha = |d: &[u8]| hex::encode(Sha256::digest(d));
        let entry = |path: &str, d: &[u8]| serde_json::json!({"path": path, "size": d.len(), "sha256": sha(d), "mode": 384});
        type Entries<'a> = Vec<(&'a str, Vec<u8>)>;
        let cases: Vec<(Entries, &str)> = vec![
            (
                vec![
                    (
                        MANIFEST,
                        manifest(serde_json::json!([entry(STORE_ENTRY, b"db")])),
                    ),
                    (STORE_ENTRY, b"dB".to_vec()),
                ],
                "does not match its checksum",
            ),
            (
                vec![
                    (
                        MANIFEST,
                        manifest(serde_json::json!([entry(STORE_ENTRY, b"db")])),
                    ),
                    (STORE_ENTRY, b"db".to_vec()),
                    ("data/license", b"l".to_vec()),
                ],
                "data/license is in the archive but not in its manifest",
            ),
            (
                vec![
                    (
                        MANIFEST,
                        manifest(serde_json::json!([entry("data/license", b"l")])),
                    ),
                    ("data/license", b"l".to_vec()),
                ],
                "the archive has no store/hostplane.sqlite",
            ),
            (
                vec![(STORE_ENTRY, b"db".to_vec())],
                "the archive has no manifest.json",
            ),
            (
                vec![("data/logs/x", b"x".to_vec())],
                "data/logs/x is not part of a hostplane backup",
            ),
        ];
        for (i, (entries, want)) in cases.into_iter().enumerate() {
            let archive = dir.path().join(format!("{i}.tar"));
            std::fs::write(&archive, tar_of(&entries)).unwrap();
            match unpack(&archive, &dir.path().join(format!("s{i}")), 1 << 20, None) {
                Err(Refusal::Invalid(m)) => assert!(m.contains(want), "{i}: {m}"),
                other => panic!("{i}: {other:?}"),
            }
        }
    }
}
