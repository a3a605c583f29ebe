//! Rebooting the host by a program: the operator's `admin.reboot_command` (an argv, never a
//! shell line) or the `reboot` program when systemd is not reachable over D-Bus (the D-Bus way
//! is [`crate::systemd::Systemd::reboot`]). Both run through the command runner with a
//! one-minute timeout.

use std::time::Duration;

use crate::command::{Cmd, CommandError};

/// Longest a reboot command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A configured reboot command: program (a bare name or an absolute path) and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootCommand {
    program: String,
    args: Vec<String>,
}

impl RebootCommand {
    /// From the configured argv; `None` when it is empty (not configured).
    pub fn from_argv(argv: &[String]) -> Option<RebootCommand> {
        let (program, args) = argv.split_first()?;
        Some(RebootCommand {
            program: program.clone(),
            args: args.to_vec(),
        })
    }

    /// `program arg…` for logs and the job result (not for execution).
    pub fn shown(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it; a non-zero exit is [`CommandError::Failed`].
    pub async fn run(&self) -> Result<(), CommandError> {
        Cmd::new(&self.program)
            .args(&self.args)
            .timeout(COMMAND_TIMEOUT)
            .run()
            .await
            .map(|_| ())
    }
}

/// The `reboot` program (when systemd cannot be asked over D-Bus).
pub async fn reboot_program() -> Result<(), CommandError> {
    Cmd::new("reboot")
        .timeout(COMMAND_TIMEOUT)
        .run()
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_commands() {
        assert_eq!(RebootCommand::from_argv(&[]), None);
        let c =
            RebootCommand::from_argv(&["/bin/echo".into(), "reboot".into(), "now".into()]).unwrap();
        assert_eq!(c.shown(), "/bin/echo reboot now");
    }

    #[tokio::test]
    async fn runs_the_argv_without_a_shell() {
        let ok = RebootCommand::from_argv(&["true".into()]).unwrap();
        ok.run().await.unwrap();
        // A shell line is one program name, which does not exist.
        let sh = RebootCommand::from_argv(&["true; false".into()]).unwrap();
        assert!(matches!(sh.run().await, Err(CommandError::NotFound { .. })));
        let fails = RebootCommand::from_argv(&["false".into()]).unwrap();
        assert!(matches!(
            fails.run().await,
            Err(CommandError::Failed {
                status: Some(1),
                ..
            })
        ));
    }
}
