//! The daemon's own log file, `DATA_DIR/logs/hostplane.log`, rotated by size.
//!
//! The tracing subscriber (see `serve::init_logging`) writes every event to stderr (or
//! journald) and, through [`RotatingFile`], here too, so `GET /admin/logs` and the debug bundle
//! have the daemon's logs whatever the service manager does with stderr. When the file passes
//! [`MAX_BYTES`] it is renamed to `hostplane.log.1` (older ones shift up to
//! `hostplane.log.{KEEP}`, the oldest is dropped) and a new file starts.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Size at which the log file is rotated.
pub const MAX_BYTES: u64 = 10 << 20;
/// Rotated files kept besides the live one.
pub const KEEP: usize = 4;
pub const FILE_NAME: &str = "hostplane.log";

/// Directory of the daemon's log files.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

struct Inner {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    keep: usize,
}

/// A size-rotated append-only log file, shared by every writer the subscriber makes.
#[derive(Clone)]
pub struct RotatingFile(Arc<Mutex<Inner>>);

impl RotatingFile {
    pub fn open(dir: &Path) -> io::Result<RotatingFile> {
        Self::open_with(dir, MAX_BYTES, KEEP)
    }

    pub fn open_with(dir: &Path, max: u64, keep: usize) -> io::Result<RotatingFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile(Arc::new(Mutex::new(Inner {
            path,
            file,
            size,
            max,
            keep,
        }))))
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl Inner {
    fn rotate(&mut self) -> io::Result<()> {
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(self.keep));
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, name(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for &RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.size > 0 && g.size + buf.len() as u64 > g.max {
            // A failed rotation keeps writing to the current file rather than losing lines.
            let _ = g.rotate();
        }
        let n = g.file.write(buf)?;
        g.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.file.flush()
    }
}

/// The writer the fmt layer asks for, once per event.
pub struct Writer(RotatingFile);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&self.0).flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = Writer;
    fn make_writer(&'a self) -> Writer {
        Writer(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let f = RotatingFile::open_with(dir.path(), 100, 2).unwrap();
        for i in 0..10 {
            (&f).write_all(format!("line {i:02} {}\n", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        let live = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(live.contains("line 09"), "{live}");
        assert!(live.len() <= 100);
        assert!(dir.path().join("hostplane.log.1").exists());
        assert!(dir.path().join("hostplane.log.2").exists());
        assert!(!dir.path().join("hostplane.log.3").exists());
        // Reopening appends to the live file.
        let before = live.len();
        let f = RotatingFile::open_with(dir.path(), 1000, 2).unwrap();
        (&f).write_all(b"again\n").unwrap();
        let live = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(live.len(), before + 6);
    }
}
