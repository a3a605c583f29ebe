//! `qemu-img`: create, inspect, convert, resize and snapshot disk images, through the command
//! runner (argv only; paths after `--` where qemu-img reads positional file names). `info`
//! output is JSON and parsed; `convert -p` progress is read line by line for job progress.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::command::{Cmd, CommandError, validate_path_arg, which};

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
    })
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
    let program = which(QEMU_IMG).ok_or_else(|| CommandError::NotFound {
        program: QEMU_IMG.into(),
    })?;
    let mut child = tokio::process::Command::new(program)
        .args(["convert", "-p", "-f", src_format, "-O", dst_format, "--"])
        .arg(src)
        .arg(dst)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Io {
            program: QEMU_IMG.into(),
            source,
        })?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let errs = tokio::spawn(async move {
        let mut s = Vec::new();
        let _ = (&mut err).take(64 * 1024).read_to_end(&mut s).await;
        String::from_utf8_lossy(&s).trim().to_string()
    });
    let mut buf = [0u8; 4096];
    let mut pending = String::new();
    let run = async {
        loop {
            let n = out.read(&mut buf).await?;
            if n == 0 {
                break;
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
        child.wait().await
    };
    let status = tokio::time::timeout(LONG, run)
        .await
        .map_err(|_| CommandError::Timeout {
            program: QEMU_IMG.into(),
            after: LONG,
        })?
        .map_err(|source| CommandError::Io {
            program: QEMU_IMG.into(),
            source,
        })?;
    let stderr = errs.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(CommandError::Failed {
            program: QEMU_IMG.into(),
            status: status.code(),
            stderr,
        })
    }
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
    fn progress_lines() {
        assert_eq!(parse_progress("    (0.00/100%)"), Some(0));
        assert_eq!(parse_progress("    (12.50/100%)"), Some(12));
        assert_eq!(parse_progress("(100.00/100%)"), Some(100));
        assert_eq!(parse_progress("error"), None);
    }
}
