//! The saved login: `$XDG_CONFIG_HOME/hostplane/cli.toml` (else `~/.config/hostplane/cli.toml`),
//! mode 0600, replaced atomically (temporary file, fsync, rename).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `hostplane login` remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLogin {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// Where the saved login lives, or None without a home directory.
pub fn default_path() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let base = match nonempty("XDG_CONFIG_HOME") {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(nonempty("HOME")?).join(".config"),
    };
    Some(base.join("hostplane").join("cli.toml"))
}

/// The saved login, or None when the file does not exist.
pub fn load(path: &Path) -> anyhow::Result<Option<SavedLogin>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let saved = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(saved))
}

/// Writes `saved` to `path` atomically with mode 0600 (its directory 0700 when created).
pub fn save(path: &Path, saved: &SavedLogin) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(saved).context("serializing the login")?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("cli.toml");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename durable; failing that is not worth an error.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/hostplane/cli.toml");
        assert_eq!(load(&path).unwrap(), None);
        let saved = SavedLogin {
            url: "https://10.0.0.1:8443".into(),
            token: Some("hp_abc_def".into()),
            user: Some("alice".into()),
            insecure: true,
            ca: Some("/etc/hostplane/ca.pem".into()),
        };
        save(&path, &saved).unwrap();
        assert_eq!(load(&path).unwrap(), Some(saved.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions();
        assert_eq!(dmode.mode() & 0o777, 0o700);

        // Replacing keeps the mode, drops removed keys and leaves no temporary file.
        let less = SavedLogin {
            token: None,
            user: None,
            ..saved
        };
        save(&path, &less).unwrap();
        assert_eq!(load(&path).unwrap(), Some(less));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("token"), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cli.toml")]);
    }

    #[test]
    fn minimal_file_parses_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.toml");
        std::fs::write(&path, "url = \"unix:///run/hostplane/hostplane.sock\"\n").unwrap();
        let s = load(&path).unwrap().unwrap();
        assert_eq!(s.url, "unix:///run/hostplane/hostplane.sock");
        assert!(s.token.is_none() && !s.insecure && s.ca.is_none());
        std::fs::write(&path, "url = [").unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains("cli.toml"), "{e}");
    }
}
