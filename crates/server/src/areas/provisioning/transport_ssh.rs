//! The `ssh` transport's set-up: from a logged-in serial console to a pinned ssh connection.
//!
//! Flow ([`connect`], on the run's first use of the transport, normally `wait_ready`): find
//! the loopback port a user-mode NIC of the VM forwards to guest port 22 (the vms area through
//! `platform::serial`; none: the step fails and says so) → make the run's ed25519 key pair
//! (`hostplane_host::ssh::RunKeys`, in `<data_dir>/provisioning/ssh/<run id>`, 0700, removed
//! when the run ends) → over the console, which the recipe logged in on: append the public
//! key to the account's `~/.ssh/authorized_keys` and read the guest's host key (OpenSSH's
//! `/etc/ssh/ssh_host_ed25519_key.pub`, else dropbear's key through `dropbearkey -y`) → pin
//! that key in the run's known_hosts → connect (retried while the guest's sshd is not up yet;
//! a host key mismatch fails at once). The host key is never learnt from the network
//! (no trust on first use): the console is the channel already trusted with the password.
//! [`Session::finish`] takes the run's key out of authorized_keys again at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hostplane_host::ssh::{self, Exec, RunKeys, Ssh, SshError, Stdin};

use super::console::Console;
use crate::state::AppState;

/// The guest port the transport connects to.
pub const GUEST_PORT: u16 = 22;
/// How long the guest's sshd may take to accept a connection once the console answered.
const CONNECT_WITHIN: Duration = Duration::from_secs(120);

/// Reads the guest's host key: OpenSSH's ed25519 key, else dropbear's (the test guest).
pub const HOST_KEY_COMMAND: &str = "if [ -r /etc/ssh/ssh_host_ed25519_key.pub ]; then cat /etc/ssh/ssh_host_ed25519_key.pub; \
     else dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key; fi";

/// The run's ssh connection and its key directory.
pub struct Session {
    pub ssh: Ssh,
    keys: RunKeys,
    comment: String,
    /// Where the remote shell notes its pid (for a kill past the timeout).
    pub pidfile: String,
}

/// The directory of a run's keys.
pub fn run_dir(state: &AppState, run_id: &str) -> PathBuf {
    state
        .config
        .data_dir
        .join("provisioning/ssh")
        .join(run_id)
}

/// The command that authorizes `public_key` for the logged-in account.
pub fn authorize_command(public_key: &str) -> String {
    format!(
        "umask 077 && mkdir -p \"$HOME/.ssh\" && printf '%s\\n' {} >> \"$HOME/.ssh/authorized_keys\" \
         && chmod 700 \"$HOME/.ssh\" && chmod 600 \"$HOME/.ssh/authorized_keys\"",
        ssh::quote(public_key)
    )
}

/// The command that takes the run's key (by its comment) out of authorized_keys.
pub fn revoke_command(comment: &str) -> String {
    format!(
        "sed -i '/ {comment}$/d' \"$HOME/.ssh/authorized_keys\"",
        comment = comment.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
    )
}

/// Sets the transport up over `console` (see the module doc); `log` gets what happened.
pub async fn connect(
    state: &AppState,
    vm: &str,
    run_id: &str,
    user: &str,
    console: &mut Console,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<Session, String> {
    let port = state
        .serial
        .forwarded_port(state, vm, GUEST_PORT)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "the VM has no port forward to guest port {GUEST_PORT} and no other address \
                 hostplane can reach its sshd at: give a user-mode NIC \
                 `port_forwards: [{{\"host_port\": <free port>, \"guest_port\": {GUEST_PORT}}}]`"
            )
        })?;
    let short = run_id.get(..8).unwrap_or(run_id);
    let comment = format!("hostplane-run-{short}");
    let keys = RunKeys::create(&run_dir(state, run_id), &comment)
        .await
        .map_err(|e| format!("making the run's ssh key: {e}"))?;
    let t = Duration::from_secs(60);
    let (code, out) = console
        .command(&authorize_command(keys.public_key()), t)
        .await
        .map_err(|e| e.to_string())?;
    if code != 0 {
        return Err(format!(
            "authorizing the run's key in the guest failed (exit {code}): {out}"
        ));
    }
    log(&format!("authorized the run's key {comment} for {user}"));
    let (code, out) = console
        .command(HOST_KEY_COMMAND, t)
        .await
        .map_err(|e| e.to_string())?;
    let key = ssh::parse_host_key(&out).ok_or_else(|| {
        format!("no ssh host key could be read in the guest over the console (exit {code}): {out}")
    })?;
    let host = std::net::Ipv4Addr::LOCALHOST.into();
    let ssh = keys
        .pin(host, port, user, &key)
        .map_err(|e| e.to_string())?;
    log(&format!(
        "pinned the guest's {} host key {} (read over the console); connecting to 127.0.0.1:{port}",
        key.algorithm, key.blob
    ));
    let s = Session {
        ssh,
        keys,
        comment,
        pidfile: format!("/tmp/.hp-ssh-{short}.pid"),
    };
    let t0 = Instant::now();
    loop {
        match s.ssh.exec("true", Stdin::None, t).await {
            Ok(Exec { exit_code: 0, .. }) => break,
            Ok(e) => {
                return Err(format!(
                    "the first ssh command exited {}: {}",
                    e.exit_code, e.stderr
                ));
            }
            Err(SshError::Connect(_)) if t0.elapsed() < CONNECT_WITHIN => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    log(&format!(
        "ssh answered after {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(s)
}

impl Session {
    /// Best effort at the run's end: the run's key leaves authorized_keys (its private half
    /// goes with the run directory when the session drops), the pid file /tmp.
    pub async fn finish(self) {
        if let Err(e) = self
            .ssh
            .exec(
                &format!(
                    "{}; rm -f {}",
                    revoke_command(&self.comment),
                    ssh::quote(&self.pidfile)
                ),
                Stdin::None,
                Duration::from_secs(30),
            )
            .await
        {
            tracing::debug!("removing the run's key from the guest: {e}");
        }
        drop(self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_commands() {
        let pk = "ssh-ed25519 AAAAC3Nza hostplane-run-0123abcd";
        let c = authorize_command(pk);
        assert!(
            c.contains("printf '%s\\n' 'ssh-ed25519 AAAAC3Nza hostplane-run-0123abcd' >> \"$HOME/.ssh/authorized_keys\""),
            "{c}"
        );
        assert!(c.starts_with("umask 077"));
        assert_eq!(
            revoke_command("hostplane-run-0123abcd"),
            "sed -i '/ hostplane-run-0123abcd$/d' \"$HOME/.ssh/authorized_keys\""
        );
        assert_eq!(
            revoke_command("x'; rm -rf /"),
            "sed -i '/ xrm-rf$/d' \"$HOME/.ssh/authorized_keys\""
        );
    }
}
