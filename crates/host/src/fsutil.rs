//! File helpers for files the daemon owns: written atomically (temp file in the same dir,
//! fsync, rename, fsync the dir) with the mode set before any byte is written.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        super::write_atomic(&p, b"one", 0o600).unwrap();
        super::write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

/// `path` with symlinks resolved, when it stays inside `base` (itself resolved); an error
/// saying why otherwise. A path that does not exist yet (a bind source an engine creates) is
/// judged by its deepest existing ancestor. `..` components are refused outright: they make
/// what a reader sees differ from what the kernel resolves.
pub fn resolve_inside(path: &Path, base: &Path) -> Result<std::path::PathBuf, String> {
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("{} contains ..", path.display()));
    }
    let base_real = std::fs::canonicalize(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let mut probe = path.to_path_buf();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&probe).is_err() {
        match probe.file_name() {
            Some(n) => rest.push(n.to_os_string()),
            None => return Err(format!("{} does not exist", path.display())),
        }
        if !probe.pop() {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    let mut real = std::fs::canonicalize(&probe).map_err(|e| format!("{}: {e}", path.display()))?;
    if !real.starts_with(&base_real) {
        return Err(format!(
            "{} leaves {} (a symlink to {})",
            path.display(),
            base.display(),
            real.display()
        ));
    }
    for n in rest.into_iter().rev() {
        real.push(n);
    }
    Ok(real)
}

#[cfg(test)]
mod resolve_tests {
    use super::resolve_inside;

    #[test]
    fn symlinks_out_and_dotdot_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("ds");
        std::fs::create_dir_all(base.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("out")).unwrap();
        std::os::unix::fs::symlink(base.join("sub"), base.join("in")).unwrap();
        assert!(resolve_inside(&base.join("sub"), &base).is_ok());
        assert!(resolve_inside(&base.join("in/new/x"), &base).is_ok());
        assert!(resolve_inside(&base.join("out"), &base).is_err());
        assert!(resolve_inside(&base.join("out/passwd"), &base).is_err());
        assert!(resolve_inside(&base.join("sub/../../x"), &base).is_err());
        assert!(resolve_inside(&d.path().join("other"), &base).is_err());
    }
}
