//! The host terminal's shell (`/api/v1/system/terminals`): a login-like shell on its own
//! pseudo-terminal with a clean environment (TERM, HOME, PATH, LANG, USER and nothing from the
//! daemon), started in the user's home when it exists.

use std::path::Path;

use crate::command::{Cmd, CommandError, PtyChild};

/// The PATH the shell starts with.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts `shell` (an absolute path from the allow-list) on a `cols`×`rows` terminal as the
/// daemon's own account `user` with home `home`.
pub fn spawn_shell(
    shell: &Path,
    user: &str,
    home: &Path,
    cols: u16,
    rows: u16,
) -> Result<PtyChild, CommandError> {
    let cwd = if home.is_dir() { home } else { Path::new("/") };
    Cmd::new(&shell.to_string_lossy())
        .env("TERM", "xterm-256color")
        .env("HOME", home)
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .env("USER", user)
        .cwd(cwd)
        .spawn_pty(cols, rows)
}
