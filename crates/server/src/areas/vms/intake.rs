//! Images entering hostplane: uploads and box downloads are streamed through decompression and
//! unpacking on a blocking thread, with every limit counted on the bytes as they go:
//!
//! * the bytes as sent: at most `[vms] max_upload_bytes`;
//! * the bytes out of a decompressor (also of tar entries that are skipped): a cap per intake;
//! * the bytes written to each image: at most `[vms] max_disk_bytes`;
//! * the free space of the images file system: checked before writing and every 64 MiB while
//!   writing (a reserve is kept).
//!
//! A limit aborts the stream at once; the partial output is removed by its [`TempPath`], which
//! deletes its file or directory when dropped unless kept, on every path (error, panic, a
//! client that goes away mid-upload: the request future is dropped, the blocking thread sees the
//! stream end without its end marker and fails). Scratch space left by a crash is swept at start
//! ([`sweep_stale`]). Then each image is checked with `qemu-img info` ([`check_image`]): the
//! claimed format, no reference to any other file, a virtual size within `max_disk_bytes`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use hostplane_host::qemu::img;
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::platform::jobs::JobFailure;

/// Free space kept on the images file system while writing.
pub use crate::fsutil::SPACE_RESERVE_BYTES as RESERVE_BYTES;
/// How often (written bytes) the free space is looked at again.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// A scratch file or directory, removed when dropped unless [`keep`](TempPath::keep) was called.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub fn new(path: PathBuf) -> TempPath {
        TempPath { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file stays (it was moved into place, or is now someone else's).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.keep || self.path.as_os_str().is_empty() {
            return;
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&self.path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&self.path);
            }
            Err(_) => {}
        }
    }
}

/// Removes what earlier runs left in the scratch directory (`images_dir/.tmp`: uploads,
/// unpacked boxes and archives, export conversions) and half-written templates
/// (`templates/.<name>.partial`). Called at start, before anything uses them.
pub fn sweep_stale(tmp_dir: &Path, templates_dir: &Path) {
    let mut n = 0;
    for e in std::fs::read_dir(tmp_dir).into_iter().flatten().flatten() {
        let p = e.path();
        let gone = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        n += usize::from(gone.is_ok());
    }
    for e in std::fs::read_dir(templates_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".partial") {
            n += usize::from(std::fs::remove_file(e.path()).is_ok());
        }
    }
    if n > 0 {
        tracing::info!(removed = n, dir = %tmp_dir.display(), "removed stale VM scratch files");
    }
}

pub use crate::fsutil::ensure_space;

/// The first limit an intake ran into; read after the blocking side failed, whatever error
/// type its libraries wrapped the I/O error in.
#[derive(Debug, Clone, Default)]
pub struct Trip(Arc<OnceLock<Tripped>>);

#[derive(Debug, Clone)]
enum Tripped {
    TooLarge(String),
    NoSpace(String),
    Cut(String),
}

impl Trip {
    fn set(&self, t: Tripped) -> std::io::Error {
        let (kind, msg) = match &t {
            Tripped::TooLarge(m) => (std::io::ErrorKind::FileTooLarge, m.clone()),
            Tripped::NoSpace(m) => (std::io::ErrorKind::StorageFull, m.clone()),
            Tripped::Cut(m) => (std::io::ErrorKind::UnexpectedEof, m.clone()),
        };
        let _ = self.0.set(t);
        std::io::Error::new(kind, msg)
    }

    /// The error for the caller when a limit was hit.
    pub fn error(&self) -> Option<ApiError> {
        self.0.get().map(|t| match t {
            Tripped::TooLarge(m) => ApiError::PayloadTooLarge(m.clone()),
            Tripped::NoSpace(m) => ApiError::insufficient_space(m.clone()),
            Tripped::Cut(m) => ApiError::invalid("upload_failed", m.clone()),
        })
    }
}

/// A reader that fails once more than `limit` bytes came through it.
pub struct CappedReader<R> {
    inner: R,
    n: u64,
    limit: u64,
    what: &'static str,
    trip: Trip,
}

impl<R: Read> CappedReader<R> {
    pub fn new(inner: R, limit: u64, what: &'static str, trip: &Trip) -> Self {
        CappedReader {
            inner,
            n: 0,
            limit,
            what,
            trip: trip.clone(),
        }
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        if self.n > self.limit {
            return Err(self.trip.set(Tripped::TooLarge(format!(
                "{} is larger than {} bytes",
                self.what, self.limit
            ))));
        }
        Ok(n)
    }
}

/// A file being written: at most `limit` bytes, and the file system keeps its reserve.
pub struct CappedFile {
    file: std::io::BufWriter<std::fs::File>,
    dir: PathBuf,
    pub n: u64,
    limit: u64,
    next_check: u64,
    what: String,
    trip: Trip,
}

impl CappedFile {
    pub fn create(
        path: &Path,
        limit: u64,
        what: impl Into<String>,
        trip: &Trip,
    ) -> ApiResult<Self> {
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        ensure_space(&dir, 0)?;
        let file = std::fs::File::create(path).map_err(ApiError::internal)?;
        Ok(CappedFile {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            dir,
            n: 0,
            limit,
            next_check: SPACE_CHECK_EVERY,
            what: what.into(),
            trip: trip.clone(),
        })
    }

    /// Flushes and syncs.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        Ok(self.n)
    }
}

impl Write for CappedFile {
    fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
        if self.n + d.len() as u64 > self.limit {
            return Err(self.trip.set(Tripped::TooLarge(format!(
                "{} is larger than vms.max_disk_bytes ({} bytes)",
                self.what, self.limit
            ))));
        }
        if self.n + d.len() as u64 >= self.next_check {
            self.next_check += SPACE_CHECK_EVERY;
            if let Ok((_, avail)) = hostplane_host::disk_free(&self.dir)
                && avail < RESERVE_BYTES
            {
                return Err(self.trip.set(Tripped::NoSpace(format!(
                    "{} is nearly full ({avail} bytes free)",
                    self.dir.display()
                ))));
            }
        }
        let n = self.file.write(d)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

enum Piece {
    Data(Bytes),
    End,
}

/// The body as a blocking reader; a stream that stops without its end marker is an error, so a
/// client that went away never looks like a complete (short) upload.
struct BodyReader {
    rx: mpsc::Receiver<Piece>,
    cur: Bytes,
    ended: bool,
    trip: Trip,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur[..n]);
                self.cur = self.cur.slice(n..);
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => self.cur = b,
                Some(Piece::End) => self.ended = true,
                None => {
                    return Err(self.trip.set(Tripped::Cut("the upload ended early".into())));
                }
            }
        }
    }
}

/// Feeds `stream` (a request body or a download) to `f` on a blocking thread as a reader of at
/// most `limit` bytes. A limit hit anywhere (see [`Trip`]) wins over `f`'s own error.
pub async fn stream_into<S, E, T, F>(mut stream: S, limit: u64, f: F) -> ApiResult<T>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    T: Send + 'static,
    F: FnOnce(&mut dyn Read, &Trip) -> ApiResult<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Piece>(4);
    let trip = Trip::default();
    let t = trip.clone();
    let worker = tokio::task::spawn_blocking(move || {
        let body = BodyReader {
            rx,
            cur: Bytes::new(),
            ended: false,
            trip: t.clone(),
        };
        let mut r = CappedReader::new(body, limit, "the upload", &t);
        f(&mut r, &t)
    });
    let mut failed = None;
    let mut complete = true;
    let mut sent = 0u64;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(b) => {
                sent += b.len() as u64;
                if tx.send(Piece::Data(b)).await.is_err() {
                    complete = false; // the worker stopped; its result says why
                    break;
                }
            }
            Err(e) => {
                failed = Some(ApiError::invalid(
                    "upload_failed",
                    format!("reading the upload: {e}"),
                ));
                break;
            }
        }
    }
    if failed.is_none() && complete {
        let _ = tx.send(Piece::End).await;
    }
    drop(tx);
    let res = worker.await.map_err(ApiError::internal)?;
    if !complete {
        // The worker is done before the body (a tar's end padding, or an error): read the
        // rest, so the client gets the answer instead of a reset. After a success the whole
        // rest within the limit; after an error at most 1 MiB.
        let budget = if res.is_ok() && trip.error().is_none() {
            limit.saturating_sub(sent)
        } else {
            1 << 20
        };
        let mut drained = 0u64;
        while drained <= budget {
            match tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(b))) => drained += b.len() as u64,
                _ => break,
            }
        }
    }
    if let Some(e) = trip.error() {
        return Err(e);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    res
}

/// An I/O error of the blocking side as the caller's error: `bad` for what the data caused.
pub fn io_error(e: std::io::Error, trip: &Trip, bad: impl FnOnce(String) -> ApiError) -> ApiError {
    if let Some(t) = trip.error() {
        return t;
    }
    match e.kind() {
        std::io::ErrorKind::StorageFull => ApiError::insufficient_space(e.to_string()),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound => {
            ApiError::internal(e)
        }
        _ => bad(e.to_string()),
    }
}

/// Checks an image that enters hostplane: readable as `format`, referencing no other file
/// (backing file, qcow2 data file, vmdk extents: 422 `invalid_image`), a virtual size within
/// `max_disk_bytes` (409 `exceeds_host`). `field` names the input in the problem.
pub async fn check_image(
    path: &Path,
    format: Option<&str>,
    max_disk_bytes: u64,
    field: Option<&str>,
) -> ApiResult<img::ImageInfo> {
    let invalid = |detail: String| match field {
        Some(f) => ApiError::invalid_field("invalid_image", f, detail),
        None => ApiError::invalid("invalid_image", detail),
    };
    let info = img::info_standalone(path, format)
        .await
        .map_err(|e| match e {
            img::ImageCheckError::Unreadable(
                c @ hostplane_host::CommandError::NotFound { .. },
            ) => ApiError::from(c),
            img::ImageCheckError::Unreadable(c) => invalid(match format {
                Some(f) => format!("not a {f} image: {c}"),
                None => format!("not a disk image: {c}"),
            }),
            refs @ img::ImageCheckError::References(_) => invalid(refs.to_string()),
        })?;
    if info.virtual_size > max_disk_bytes {
        return Err(ApiError::conflict(
            "exceeds_host",
            format!(
                "the image's virtual size {} exceeds vms.max_disk_bytes ({max_disk_bytes})",
                info.virtual_size
            ),
        ));
    }
    Ok(info)
}

/// An image used in place (named in a definition, not created by hostplane) may have been
/// replaced since it was checked: before QEMU opens it or an export reads it, it must still
/// stand alone (422 `invalid_image`). Disks hostplane created are not looked at (a guest
/// writes their contents, never their headers).
pub async fn recheck_in_place(disk: &hostplane_types::vms::VmDisk) -> ApiResult<()> {
    if disk.owned {
        return Ok(());
    }
    match img::info_standalone(Path::new(&disk.path), Some(disk.format.as_str())).await {
        Ok(_) => Ok(()),
        Err(img::ImageCheckError::References(r)) => Err(ApiError::invalid(
            "invalid_image",
            format!(
                "disk {} ({}) now references other files ({}); only standalone images are used",
                disk.index,
                disk.path,
                r.join(", ")
            ),
        )),
        Err(img::ImageCheckError::Unreadable(e)) => Err(ApiError::invalid(
            "invalid_image",
            format!("disk {} ({}): {e}", disk.index, disk.path),
        )),
    }
}

/// An [`ApiError`] as a job's failure (same code).
pub fn job_failure(e: ApiError) -> JobFailure {
    JobFailure::new(e.code(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_path_removes_unless_kept() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        drop(TempPath::new(f.clone()));
        assert!(!f.exists());
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), b"x").unwrap();
        drop(TempPath::new(sub.clone()));
        assert!(!sub.exists());
        std::fs::write(&f, b"x").unwrap();
        let kept = TempPath::new(f.clone()).keep();
        assert!(kept.exists());
    }

    #[tokio::test]
    async fn limits_trip_while_streaming() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..10).map(|_| Ok(Bytes::from(vec![0u8; 1000]))).collect();
        let dst = dest.clone();
        let e = stream_into(
            futures_util::stream::iter(chunks),
            1 << 20,
            move |r, trip| {
                let mut out = CappedFile::create(&dst, 5000, "the image", trip)?;
                std::io::copy(r, &mut out).map_err(|e| io_error(e, trip, ApiError::internal))?;
                Ok(())
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "payload_too_large", "{e}");
        // The input limit, as sent.
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..10).map(|_| Ok(Bytes::from(vec![0u8; 1000]))).collect();
        let e = stream_into(futures_util::stream::iter(chunks), 3000, |r, trip| {
            std::io::copy(r, &mut std::io::sink())
                .map_err(|e| io_error(e, trip, ApiError::internal))?;
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), "payload_too_large", "{e}");
        // A stream that fails midway is not a short, complete upload.
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("connection reset")),
        ];
        let e = stream_into(futures_util::stream::iter(chunks), 3000, |r, trip| {
            let mut v = Vec::new();
            r.read_to_end(&mut v)
                .map_err(|e| io_error(e, trip, ApiError::internal))?;
            Ok(v)
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), "upload_failed", "{e}");
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(b"abc"))];
        let v = stream_into(futures_util::stream::iter(chunks), 3000, |r, _| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map_err(ApiError::internal)?;
            Ok(v)
        })
        .await
        .unwrap();
        assert_eq!(v, b"abc");
    }
}
