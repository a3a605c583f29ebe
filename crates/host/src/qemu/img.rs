//! `qemu-img`: create, inspect, convert, resize and snapshot disk images, through the command
//! runner (argv only; paths after `--` where qemu-img reads positional file names). `info`
//! output is JSON and parsed; `convert -p` runs as a supervised child whose progress is read
//! line by line for job progress.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::command::{ChildOutput, Cmd, CommandError, OnDrop, validate_path_arg};

pub const QEMU_IMG: &str = "qemu-img";
/// Long operations (convert, copy of big images).
const LONG: Duration = Duration::from_secs(6 * 3600);

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// `qcow2`, `raw`, `vpc`, `vmdk`, …
    pub format: String,
    pub virtual_size: u64,
    pub actual_size: u64,
    pub backing: Option<String>,
    pub snapshots: Vec<ImageSnapshot>,
    /// Every file other than the image itself that opening it makes QEMU open (backing file,
    /// qcow2 external data file, vmdk extents, `json:`/protocol file names): see
    /// [`external_files`]. Empty for a standalone image.
    pub external: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageSnapshot {
    pub name: String,
    /// Seconds since the epoch.
    pub date_sec: u64,
    pub vm_state_size: u64,
}

/// Parses `qemu-img info --output=json`.
pub fn parse_info(v: &Value) -> Option<ImageInfo> {
    let snapshots = v["snapshots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| ImageSnapshot {
            name: s["name"].as_str().unwrap_or("").to_string(),
            date_sec: s["date-sec"].as_u64().unwrap_or(0),
            vm_state_size: s["vm-state-size"].as_u64().unwrap_or(0),
        })
        .collect();
    Some(ImageInfo {
        format: v["format"].as_str()?.to_string(),
        virtual_size: v["virtual-size"].as_u64()?,
        actual_size: v["actual-size"].as_u64().unwrap_or(0),
        backing: v["full-backing-filename"]
            .as_str()
            .or(v["backing-filename"].as_str())
            .map(str::to_string),
        snapshots,
        external: external_files(v),
    })
}

/// The files other than itself that an image described by `qemu-img info --output=json`
/// references, each once: `backing-filename`/`full-backing-filename` (any format: qcow2, qed,
/// qcow, vmdk parents), the qcow2 external data file (`format-specific.data.data-file`), vmdk
/// extents other than the image file itself (`format-specific.data.extents[].filename`:
/// descriptor-style vmdk), any child node except the image's own `file` node (e.g. `extents.0`,
/// `data-file`, `backing`), and any file name that is a `json:` or protocol (`nbd://`…) name.
/// Nested `backing-image` and child infos are walked too.
pub fn external_files(v: &Value) -> Vec<String> {
    fn is_pseudo(name: &str) -> bool {
        name.starts_with("json:") || name.contains("://")
    }
    fn add(out: &mut Vec<String>, s: &str) {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    fn walk(v: &Value, own: Option<&str>, out: &mut Vec<String>) {
        let me = v["filename"].as_str().or(own);
        if let Some(f) = v["filename"].as_str()
            && is_pseudo(f)
        {
            add(out, f);
        }
        for key in ["backing-filename", "full-backing-filename"] {
            if let Some(b) = v[key].as_str() {
                add(out, b);
            }
        }
        let data = &v["format-specific"]["data"];
        match &data["data-file"] {
            Value::Null => {}
            Value::String(d) => add(out, d),
            other => add(out, &other.to_string()),
        }
        for e in data["extents"].as_array().into_iter().flatten() {
            match e["filename"].as_str() {
                Some(f) if Some(f) == me && !is_pseudo(f) => {}
                Some(f) => add(out, f),
                None => add(out, "(vmdk extent without a file name)"),
            }
        }
        for c in v["children"].as_array().into_iter().flatten() {
            let info = &c["info"];
            let file = info["filename"].as_str();
            let own_file = c["name"].as_str() == Some("file") && (file.is_none() || file == me);
            if !own_file {
                add(out, file.unwrap_or("(a child node without a file name)"));
            }
            walk(info, file, out);
        }
        if v["backing-image"].is_object() {
            walk(&v["backing-image"], None, out);
        }
    }
    let mut out = Vec::new();
    walk(v, None, &mut out);
    out
}

/// Why an image is not acceptable as a standalone disk.
#[derive(Debug, thiserror::Error)]
pub enum ImageCheckError {
    /// qemu-img could not read it as the given format.
    #[error("{0}")]
    Unreadable(CommandError),
    /// It references other files (backing file, data file, extents): QEMU would open them.
    #[error("the image references other files ({}); only standalone images are accepted", .0.join(", "))]
    References(Vec<String>),
}

/// `qemu-img info` of an image that must stand alone: refused when it references any other
/// file ([`ImageInfo::external`]). Every place an image enters hostplane (uploads, archives,
/// templates, existing files named in a definition, clone sources) calls this.
pub async fn info_standalone(
    path: &Path,
    format: Option<&str>,
) -> Result<ImageInfo, ImageCheckError> {
    let info = info(path, format)
        .await
        .map_err(ImageCheckError::Unreadable)?;
    if !info.external.is_empty() {
        return Err(ImageCheckError::References(info.external.clone()));
    }
    Ok(info)
}

fn check(path: &Path) -> Result<(), CommandError> {
    validate_path_arg("image path", path.as_os_str())
}

/// `qemu-img info` (`-U`: also readable while a running QEMU holds the image lock).
/// `format` pins the format (never probe a raw image that may hold anything).
pub async fn info(path: &Path, format: Option<&str>) -> Result<ImageInfo, CommandError> {
    check(path)?;
    let mut cmd = Cmd::new(QEMU_IMG).args(["info", "--output=json", "-U"]);
    if let Some(f) = format {
        cmd = cmd.args(["-f", f]);
    }
    let v: Value = cmd.arg("--").arg(path).run_json().await?;
    parse_info(&v).ok_or_else(|| CommandError::Parse {
        program: QEMU_IMG.into(),
        message: "info without format or virtual-size".into(),
    })
}

/// A new empty image, or (`backing`) a qcow2 overlay on a backing image of format
/// `backing_format`.
pub async fn create(
    path: &Path,
    format: &str,
    size: Option<u64>,
    backing: Option<(&Path, &str)>,
) -> Result<(), CommandError> {
    check(path)?;
    let mut cmd = Cmd::new(QEMU_IMG).args(["create", "-q", "-f", format]);
    if let Some((b, bf)) = backing {
        check(b)?;
        cmd = cmd.args(["-F", bf, "-b"]).arg(b);
    }
    cmd = cmd.arg("--").arg(path);
    if let Some(s) = size {
        cmd = cmd.arg(s.to_string());
    }
    cmd.run().await.map(|_| ())
}

/// `qemu-img convert` to a new file (sparse output). `progress` gets 0..=100.
pub async fn convert(
    src: &Path,
    src_format: &str,
    dst: &Path,
    dst_format: &str,
    mut progress: impl FnMut(u8) + Send,
) -> Result<(), CommandError> {
    check(src)?;
    check(dst)?;
    let mut child = Cmd::new(QEMU_IMG)
        .args(["convert", "-p", "-f", src_format, "-O", dst_format, "--"])
        .arg(src)
        .arg(dst)
        .timeout(LONG)
        .spawn(ChildOutput::Piped, OnDrop::Kill)?;
    let mut out = child.take_stdout().expect("piped");
    let mut buf = [0u8; 4096];
    let mut pending = String::new();
    let read = async {
        loop {
            let n = out.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            // Progress lines end with \r: "    (12.34/100%)\r".
            while let Some(i) = pending.find(['\r', '\n']) {
                if let Some(p) = parse_progress(&pending[..i]) {
                    progress(p);
                }
                pending.drain(..=i);
            }
        }
    };
    // Dropping `child` (timeout, read error) kills qemu-img.
    tokio::time::timeout(LONG, read)
        .await
        .map_err(|_| CommandError::Timeout {
            program: QEMU_IMG.into(),
            after: LONG,
        })?
        .map_err(|source: std::io::Error| CommandError::Io {
            program: QEMU_IMG.into(),
            source,
        })?;
    child.finish().await.map(|_| ())
}

/// `(12.34/100%)` → 12.
pub fn parse_progress(s: &str) -> Option<u8> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix("/100%)")?;
    let v: f64 = inner.parse().ok()?;
    Some(v.clamp(0.0, 100.0) as u8)
}

pub async fn resize(path: &Path, format: &str, size: u64) -> Result<(), CommandError> {
    check(path)?;
    Cmd::new(QEMU_IMG)
        .args(["resize", "-q", "-f", format, "--"])
        .arg(path)
        .arg(size.to_string())
        .run()
        .await
        .map(|_| ())
}

/// `qemu-img snapshot -c|-a|-d NAME` (offline: the image must not be in use).
pub async fn snapshot(path: &Path, op: SnapshotOp, name: &str) -> Result<(), CommandError> {
    check(path)?;
    crate::command::validate_name("snapshot", name)?;
    let flag = match op {
        SnapshotOp::Create => "-c",
        SnapshotOp::Apply => "-a",
        SnapshotOp::Delete => "-d",
    };
    Cmd::new(QEMU_IMG)
        .args(["snapshot", "-q", "-f", "qcow2", flag, name, "--"])
        .arg(path)
        .timeout(Duration::from_secs(600))
        .run()
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOp {
    Create,
    Apply,
    Delete,
}

/// Makes a standalone copy in `dst_format` (flattening any backing chain).
pub async fn copy_flat(
    src: &Path,
    src_format: &str,
    dst: &Path,
    dst_format: &str,
) -> Result<(), CommandError> {
    convert(src, src_format, dst, dst_format, |_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/qemu-img")
            .join(name);
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn info_of_real_images() {
        let i = parse_info(&fixture("info-qcow2-snapshot.json")).unwrap();
        assert_eq!(i.format, "qcow2");
        assert_eq!(i.virtual_size, 64 << 20);
        assert!(i.backing.is_none());
        assert_eq!(i.snapshots.len(), 1);
        assert_eq!(i.snapshots[0].name, "s1");
        assert!(i.snapshots[0].date_sec > 1_700_000_000);
        let b = parse_info(&fixture("info-qcow2-backing.json")).unwrap();
        assert_eq!(b.backing.as_deref(), Some("/tmp/qi/a.qcow2"));
        assert!(b.snapshots.is_empty());
        let r = parse_info(&fixture("info-raw.json")).unwrap();
        assert_eq!(r.format, "raw");
        assert_eq!(r.virtual_size, 64 << 20);
    }

    #[test]
    fn external_files_of_real_images() {
        // Standalone: qcow2 with an internal snapshot, raw, single-file (monolithicSparse) vmdk.
        for f in [
            "info-qcow2-snapshot.json",
            "info-raw.json",
            "info-vmdk-sparse.json",
        ] {
            let i = parse_info(&fixture(f)).unwrap();
            assert!(i.external.is_empty(), "{f}: {:?}", i.external);
        }
        // `qemu-img create -f qcow2 -o data_file=/tmp/qi/target.raw,data_file_raw=on`.
        let d = parse_info(&fixture("info-qcow2-data-file.json")).unwrap();
        assert!(d.backing.is_none());
        assert_eq!(d.external, ["/tmp/qi/target.raw"]);
        // A backing file, by path and as a json: pseudo-protocol name.
        let b = parse_info(&fixture("info-qcow2-backing.json")).unwrap();
        assert_eq!(b.external, ["/tmp/qi/a.qcow2"]);
        let j = parse_info(&fixture("info-qcow2-json-backing.json")).unwrap();
        assert_eq!(j.external.len(), 1);
        assert!(j.external[0].starts_with("json:{"), "{:?}", j.external);
        // Descriptor vmdk (monolithicFlat): its extent is another file.
        let v = parse_info(&fixture("info-vmdk-flat.json")).unwrap();
        assert_eq!(v.format, "vmdk");
        assert_eq!(v.external, ["flat-flat.vmdk"]);
    }

    #[test]
    fn external_files_of_odd_documents() {
        let v: Value = serde_json::json!({
            "format": "qcow2", "virtual-size": 1, "filename": "/x/a.qcow2",
            "format-specific": {"type": "qcow2", "data": {"data-file": {"driver": "nbd"}}},
            "children": [
                {"name": "file", "info": {"filename": "/x/a.qcow2", "format": "file"}},
                {"name": "data-file", "info": {"filename": "nbd://127.0.0.1/x", "format": "raw"}}
            ],
            "backing-image": {"filename": "json:{}", "format": "raw"}
        });
        let e = external_files(&v);
        assert!(e.iter().any(|x| x.contains("nbd")), "{e:?}");
        assert!(e.contains(&"nbd://127.0.0.1/x".to_string()), "{e:?}");
        assert!(e.contains(&"json:{}".to_string()), "{e:?}");
        // The image's own `file` child under another name is still its own file.
        let ok: Value = serde_json::json!({"format": "raw", "virtual-size": 1,
            "filename": "/x/a.raw", "children": [{"name": "file", "info": {"filename": "/x/a.raw"}}]});
        assert!(external_files(&ok).is_empty());
        let evil: Value = serde_json::json!({"format": "qcow2", "virtual-size": 1,
            "filename": "/x/a.qcow2", "children": [{"name": "file", "info": {"filename": "/etc/shadow"}}]});
        assert_eq!(external_files(&evil), ["/etc/shadow"]);
    }

    #[test]
    fn progress_lines() {
        assert_eq!(parse_progress("    (0.00/100%)"), Some(0));
        assert_eq!(parse_progress("    (12.50/100%)"), Some(12));
        assert_eq!(parse_progress("(100.00/100%)"), Some(100));
        assert_eq!(parse_progress("error"), None);
    }
}
