//! snapraid: parity for mergerfs pools. hostplane writes the pool's `snapraid.conf` itself; this
//! runs `snapraid -c <conf> <step>` through the command runner (up to 6 hours a step) and
//! returns what it printed.

use std::path::Path;
use std::time::Duration;

use crate::command::{Cmd, CommandError, validate_path_arg};

pub const SNAPRAID: &str = "snapraid";
/// A sync or scrub reads every data disk.
pub const LONG: Duration = Duration::from_secs(6 * 3600);

/// One snapraid run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `sync`: bring the parity up to date.
    Sync,
    /// `scrub -p 100 -o 0`: check all of the array, however recently it was checked.
    ScrubAll,
}

impl Step {
    /// The arguments after `-c <conf>`.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Step::Sync => &["sync"],
            Step::ScrubAll => &["scrub", "-p", "100", "-o", "0"],
        }
    }

    /// `sync`, `scrub -p 100 -o 0` (for logs).
    pub fn describe(self) -> String {
        self.args().join(" ")
    }
}

/// `snapraid -c <conf> <step>`; returns stdout (lossy UTF-8).
pub async fn run(conf: &Path, step: Step) -> Result<String, CommandError> {
    validate_path_arg("snapraid config path", conf.as_os_str())?;
    let out = Cmd::new(SNAPRAID)
        .arg("-c")
        .arg(conf)
        .args(step.args())
        .timeout(LONG)
        .run()
        .await?;
    Ok(out.stdout_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(Step::Sync.describe(), "sync");
        assert_eq!(Step::ScrubAll.describe(), "scrub -p 100 -o 0");
    }
}
