//! Running the `update.sh` of a verified update package (format and checks:
//! `hostplane_package::update`): executed directly (its `#!` line picks the interpreter, no
//! shell in between) through the command runner, in the extracted package directory, with the
//! `HOSTPLANE_*` variables of `docs/update-package.md`, a timeout, and its output captured.

use std::path::Path;
use std::time::Duration;

use crate::command::{Cmd, CommandError};

/// Cap on the script's captured stdout.
pub const MAX_SCRIPT_OUTPUT: usize = 16 << 20;

/// One run of an update script.
#[derive(Debug, Clone)]
pub struct UpdateScript<'a> {
    /// The script (an absolute path, executable).
    pub script: &'a Path,
    /// The extracted package: the working directory (`HOSTPLANE_UPDATE_DIR`).
    pub dir: &'a Path,
    /// Its payload directory (`HOSTPLANE_UPDATE_PAYLOAD`).
    pub payload: &'a Path,
    /// The version the package installs (`HOSTPLANE_UPDATE_VERSION`).
    pub version: &'a str,
    /// The version installed now (`HOSTPLANE_INSTALLED_VERSION`).
    pub installed_version: &'a str,
    /// The daemon's data directory (`HOSTPLANE_DATA_DIR`).
    pub data_dir: &'a Path,
    /// Killed (with everything it started) after this long.
    pub timeout: Duration,
}

/// How the script ended: any exit status (the caller judges it) and its output.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the script. Any exit status is a [`ScriptRun`]; killed by a signal is
/// [`CommandError::Failed`] with no status, running too long [`CommandError::Timeout`].
pub async fn run_script(s: &UpdateScript<'_>) -> Result<ScriptRun, CommandError> {
    let all_codes: Vec<i32> = (0..=255).collect();
    let out = Cmd::new(&s.script.to_string_lossy())
        .cwd(s.dir)
        .env("HOSTPLANE_UPDATE_VERSION", s.version)
        .env("HOSTPLANE_INSTALLED_VERSION", s.installed_version)
        .env("HOSTPLANE_UPDATE_DIR", s.dir)
        .env("HOSTPLANE_UPDATE_PAYLOAD", s.payload)
        .env("HOSTPLANE_DATA_DIR", s.data_dir)
        .timeout(s.timeout)
        .ok_codes(&all_codes)
        .max_stdout(MAX_SCRIPT_OUTPUT)
        .run()
        .await?;
    Ok(ScriptRun {
        status: out.status,
        stdout: out.stdout_lossy().into_owned(),
        stderr: out.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn script_gets_its_variables_and_any_status() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("update.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"$HOSTPLANE_UPDATE_VERSION from $HOSTPLANE_INSTALLED_VERSION in $(pwd)\"\necho oops >&2\nexit 7\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = run_script(&UpdateScript {
            script: &script,
            dir: dir.path(),
            payload: &dir.path().join("payload"),
            version: "1.2.0",
            installed_version: "1.1.0",
            data_dir: dir.path(),
            timeout: Duration::from_secs(10),
        })
        .await
        .unwrap();
        assert_eq!(r.status, 7);
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(r.stdout, format!("1.2.0 from 1.1.0 in {}\n", cwd.display()));
        assert_eq!(r.stderr, "oops\n");
    }
}
