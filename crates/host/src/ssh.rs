//! An OpenSSH client for hostplane's provisioning `ssh` transport: argv only, a pinned host
//! key, a per-run key pair.
//!
//! Flow: [`RunKeys::create`] makes a per-run ed25519 key pair with `ssh-keygen` in a private
//! (0700) directory, removed again when the [`RunKeys`] drops. The caller installs
//! [`RunKeys::public_key`] in the guest and reads the guest's host key over a channel it
//! already trusts (the serial console it logged in on), parses it with [`parse_host_key`] and
//! pins it with [`RunKeys::pin`]: a known_hosts file holding that one key. [`Ssh::run`] then
//! runs `ssh` through [`Cmd`] (argv, bounded output, a timeout) with options that trust nothing
//! else ([`Ssh::args`]): no config file (`-F /dev/null`), `StrictHostKeyChecking=yes` against
//! that file only (no global one), that identity only, batch mode (never a password prompt),
//! no agent and no forwarding. A guest that shows another host key is refused
//! ([`SshError::HostKey`]), which is the point: the forwarded loopback port may be taken by
//! some other program once the VM stops.
//!
//! The remote side runs in the guest's shell: [`wrap_remote`] records that shell's pid in a
//! file first, reads the command (base64, one line) from stdin and `exec`s `sh -c` with it —
//! a command may carry a secret, and ssh's argv is world-readable on the host
//! (`/proc/<pid>/cmdline`) and logged at debug level, stdin is neither. Bytes for the
//! command's own stdin follow that line. A file streamed on stdin (an artifact, fed by the
//! kernel, never read into memory) cannot follow it: that command — hostplane's own `cat >
//! path` with a path, a checksum and a mode, no secret — goes quoted ([`quote`]) on the
//! command line instead ([`wrap_remote_argv`]). Past the timeout the local ssh is killed and a
//! second connection kills the remote process and its children ([`kill_remote`]): closing the
//! channel does not end a command that has no tty.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::command::{Cmd, CommandError};

/// Host key algorithms accepted from a guest, in order of preference.
pub const HOST_KEY_ALGORITHMS: [&str; 3] = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512"];
/// Longest remote stdout kept (beyond it the run fails: the step log keeps far less anyway).
pub const MAX_OUTPUT: usize = 4 << 20;
/// Time a connection may take to be set up.
const CONNECT_TIMEOUT_SECS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The server's host key is not the pinned one (or there is none pinned).
    #[error("ssh: the guest's host key does not match the pinned one: {0}")]
    HostKey(String),
    /// The run's key was refused.
    #[error("ssh: authentication failed: {0}")]
    Auth(String),
    /// No connection (refused, reset before the banner, timed out).
    #[error("ssh: cannot connect: {0}")]
    Connect(String),
    /// The remote command ran past its timeout and was killed (ssh locally, the command and
    /// its children in the guest).
    #[error("the command did not finish within {0} s; killed")]
    Timeout(u64),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("ssh run directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A public host key: algorithm and base64 blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub algorithm: String,
    pub blob: String,
}

/// The first host key of a preferred algorithm in `text` (e.g. a `.pub` file, or the output of
/// `dropbearkey -y`: `Public key portion is:` / `ssh-ed25519 AAAA… root@host` / fingerprint).
/// A token counts only when its base64 blob decodes and names the same algorithm inside, so
/// echoed command lines and other noise never match.
pub fn parse_host_key(text: &str) -> Option<HostKey> {
    let mut found: Vec<HostKey> = Vec::new();
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        for w in toks.windows(2) {
            if let Some(k) = key_of(w[0], w[1]) {
                found.push(k);
            }
        }
    }
    HOST_KEY_ALGORITHMS.iter().find_map(|a| {
        let want = if *a == "rsa-sha2-512" { "ssh-rsa" } else { a };
        found.iter().find(|k| k.algorithm == want).cloned()
    })
}

fn key_of(alg: &str, blob: &str) -> Option<HostKey> {
    if !matches!(alg, "ssh-ed25519" | "ecdsa-sha2-nistp256" | "ssh-rsa") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let n = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    (raw.get(4..4 + n)? == alg.as_bytes()).then(|| HostKey {
        algorithm: alg.to_string(),
        blob: blob.to_string(),
    })
}

/// The known_hosts line pinning `key` for `host:port` (`[host]:port` unless the port is 22).
pub fn known_hosts_line(host: IpAddr, port: u16, key: &HostKey) -> String {
    let h = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    format!("{h} {} {}\n", key.algorithm, key.blob)
}

/// `s` as one single-quoted word of a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The remote command line: record the shell's pid in `pidfile`, read the command from the
/// first line of stdin ([`stdin_line`]), then become `sh -c <command>` (same pid), so
/// [`kill_remote`] can find it. `read` takes no byte past the newline (a shell must not), so
/// what follows on stdin is the command's.
pub fn wrap_remote(pidfile: &str) -> String {
    format!(
        "echo $$ > {pf} && IFS= read -r c && c=$(printf '%s' \"$c\" | base64 -d) && exec /bin/sh -c \"$c\"",
        pf = quote(pidfile)
    )
}

/// The first line of stdin for [`wrap_remote`]: the command in base64.
pub fn stdin_line(cmd: &str) -> Vec<u8> {
    let mut v = base64::engine::general_purpose::STANDARD
        .encode(cmd)
        .into_bytes();
    v.push(b'\n');
    v
}

/// [`wrap_remote`] with the command on the command line (when stdin is a file): for
/// hostplane's own commands only, never one that may hold a secret.
pub fn wrap_remote_argv(cmd: &str, pidfile: &str) -> String {
    format!(
        "echo $$ > {pf} && exec /bin/sh -c {}",
        quote(cmd),
        pf = quote(pidfile)
    )
}

/// Kills what [`wrap_remote`] started: the process in `pidfile` and its children.
pub fn kill_remote(pidfile: &str) -> String {
    let pf = quote(pidfile);
    format!(
        "p=$(cat {pf} 2>/dev/null); if [ -n \"$p\" ]; then pkill -9 -P \"$p\"; kill -9 \"$p\"; fi; rm -f {pf}"
    )
}

/// A path that may go into an `ssh -o Key=value` option unchanged: ssh splits option values
/// at whitespace and quotes and expands `%` tokens and a leading `~`.
fn plain_path(p: &Path) -> Result<String, SshError> {
    let s = p
        .to_str()
        .ok_or_else(|| SshError::Invalid(format!("{} is not UTF-8", p.display())))?;
    if !s.starts_with('/')
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '%' | '\\' | '='))
    {
        return Err(SshError::Invalid(format!(
            "{s:?}: ssh needs an absolute path without whitespace, quotes, % or ="
        )));
    }
    Ok(s.to_string())
}

/// A per-run key pair and known_hosts file in their own 0700 directory; removed on drop.
#[derive(Debug)]
pub struct RunKeys {
    dir: PathBuf,
    public_key: String,
}

impl RunKeys {
    /// Makes `dir` (removing what an earlier run of the same id left) and an ed25519 key pair
    /// in it with `ssh-keygen`; `comment` ends the public key line (letters, digits, `-`).
    pub async fn create(dir: &Path, comment: &str) -> Result<RunKeys, SshError> {
        use std::os::unix::fs::DirBuilderExt;
        if comment.is_empty()
            || !comment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(SshError::Invalid(format!("key comment {comment:?}")));
        }
        plain_path(dir)?;
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        // From here on the directory goes when this value drops, also on an error below.
        let mut keys = RunKeys {
            dir: dir.to_path_buf(),
            public_key: String::new(),
        };
        let id = keys.identity();
        Cmd::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&id)
            .timeout(Duration::from_secs(30))
            .run()
            .await?;
        let public = std::fs::read_to_string(id.with_extension("pub"))?;
        let public = public.trim().to_string();
        if key_of(
            "ssh-ed25519",
            public.split_whitespace().nth(1).unwrap_or_default(),
        )
        .is_none()
            || public.contains('\'')
        {
            return Err(SshError::Invalid(format!(
                "ssh-keygen wrote an unexpected public key: {public:.80}"
            )));
        }
        keys.public_key = public;
        Ok(keys)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The private key's path.
    pub fn identity(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The public key line (`ssh-ed25519 AAAA… comment`): no quotes, one line.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Pins `key` as the only host key of `host:port` and gives the client for it.
    pub fn pin(&self, host: IpAddr, port: u16, user: &str, key: &HostKey) -> Result<Ssh, SshError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        if user.is_empty()
            || user.len() > 32
            || user.starts_with('-')
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(SshError::Invalid(format!("{user:?} is not a user name")));
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.known_hosts())?;
        f.write_all(known_hosts_line(host, port, key).as_bytes())?;
        Ok(Ssh {
            host,
            port,
            user: user.to_string(),
            identity: plain_path(&self.identity())?,
            known_hosts: plain_path(&self.known_hosts())?,
            algorithm: key.algorithm.clone(),
        })
    }
}

impl Drop for RunKeys {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), "removing the ssh run directory: {e}");
        }
    }
}

/// What goes to the remote command's stdin.
pub enum Stdin<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

enum StdinBuf<'a> {
    File(&'a Path),
    Bytes(Vec<u8>),
}

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// A client for one guest, its host key pinned ([`RunKeys::pin`]).
#[derive(Debug, Clone)]
pub struct Ssh {
    host: IpAddr,
    port: u16,
    user: String,
    identity: String,
    known_hosts: String,
    algorithm: String,
}

impl Ssh {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh`'s arguments for running `remote` in the guest.
    pub fn args(&self, remote: &str) -> Vec<String> {
        let mut a: Vec<String> = ["-F", "/dev/null", "-T", "-x", "-a", "-i"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(self.identity.clone());
        for o in [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            format!("HostKeyAlgorithms={}", self.algorithm_names()),
            "CheckHostIP=no".to_string(),
            "UpdateHostKeys=no".to_string(),
            "IdentitiesOnly=yes".to_string(),
            "IdentityAgent=none".to_string(),
            "PubkeyAuthentication=yes".to_string(),
            "PasswordAuthentication=no".to_string(),
            "KbdInteractiveAuthentication=no".to_string(),
            "ClearAllForwardings=yes".to_string(),
            "ControlMaster=no".to_string(),
            "ControlPath=none".to_string(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"),
            "ServerAliveInterval=15".to_string(),
            "ServerAliveCountMax=4".to_string(),
            "LogLevel=ERROR".to_string(),
        ] {
            a.push("-o".into());
            a.push(o);
        }
        a.extend([
            "-p".into(),
            self.port.to_string(),
            "-l".into(),
            self.user.clone(),
            "--".into(),
            self.host.to_string(),
            remote.to_string(),
        ]);
        a
    }

    /// The host key algorithm names that fit the pinned key (an RSA key signs with SHA-2).
    fn algorithm_names(&self) -> String {
        if self.algorithm == "ssh-rsa" {
            "rsa-sha2-512,rsa-sha2-256".into()
        } else {
            self.algorithm.clone()
        }
    }

    /// Runs `remote` as it is (see [`Ssh::run`] for a command that is killed at its timeout):
    /// its exit code and output; ssh's own failures (exit 255 with ssh's message) are errors.
    pub async fn exec(
        &self,
        remote: &str,
        stdin: Stdin<'_>,
        timeout: Duration,
    ) -> Result<Exec, SshError> {
        let codes: Vec<i32> = (0..=255).collect();
        let mut cmd = Cmd::new("ssh")
            .args(self.args(remote))
            .ok_codes(&codes)
            .timeout(timeout)
            .max_stdout(MAX_OUTPUT);
        cmd = match stdin {
            Stdin::None => cmd,
            Stdin::Bytes(b) => cmd.stdin(b),
            Stdin::File(f) => cmd.stdin_file(f),
        };
        let out = match cmd.run().await {
            Ok(o) => o,
            Err(CommandError::Timeout { after, .. }) => {
                return Err(SshError::Timeout(after.as_secs()));
            }
            Err(e) => return Err(e.into()),
        };
        if out.status == 255
            && let Some(e) = classify(&out.stderr)
        {
            return Err(e);
        }
        Ok(Exec {
            exit_code: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs `cmd` with `sh -c` in the guest, `stdin` its input ([`wrap_remote`]: the command
    /// goes on stdin; with [`Stdin::File`] on the command line, see the module doc); past
    /// `timeout` it is killed there too ([`kill_remote`], through a second connection) and
    /// this fails with [`SshError::Timeout`].
    pub async fn run(
        &self,
        cmd: &str,
        stdin: Stdin<'_>,
        timeout: Duration,
        pidfile: &str,
    ) -> Result<Exec, SshError> {
        let (remote, input) = match stdin {
            Stdin::File(f) => (wrap_remote_argv(cmd, pidfile), StdinBuf::File(f)),
            Stdin::None => (wrap_remote(pidfile), StdinBuf::Bytes(stdin_line(cmd))),
            Stdin::Bytes(b) => {
                let mut v = stdin_line(cmd);
                v.extend_from_slice(b);
                (wrap_remote(pidfile), StdinBuf::Bytes(v))
            }
        };
        let input = match &input {
            StdinBuf::File(f) => Stdin::File(f),
            StdinBuf::Bytes(b) => Stdin::Bytes(b),
        };
        match self.exec(&remote, input, timeout).await {
            Err(SshError::Timeout(s)) => {
                if let Err(e) = self
                    .exec(&kill_remote(pidfile), Stdin::None, Duration::from_secs(30))
                    .await
                {
                    tracing::warn!("killing a remote command past its timeout: {e}");
                }
                Err(SshError::Timeout(s))
            }
            other => other,
        }
    }
}

/// ssh's own failure behind an exit status 255, from its stderr; `None` when the message is
/// not ssh's (the remote command itself exited 255).
pub fn classify(stderr: &str) -> Option<SshError> {
    let msg = stderr.trim();
    let short = msg.lines().last().unwrap_or("").to_string();
    if msg.contains("Host key verification failed")
        || msg.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || msg.contains("No ") && msg.contains("host key is known")
    {
        return Some(SshError::HostKey(short));
    }
    if msg.contains("Permission denied") || msg.contains("Too many authentication failures") {
        return Some(SshError::Auth(short));
    }
    let connect = [
        "Connection refused",
        "Connection reset",
        "Connection closed",
        "Connection timed out",
        "kex_exchange_identification",
        "No route to host",
        "Network is unreachable",
        "Broken pipe",
        "ssh: connect to host",
    ];
    if connect.iter().any(|c| msg.contains(c)) {
        return Some(SshError::Connect(short));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBHGVuDPSBqU6vSrpUoDPkMFU5cfXOXzb45I4LQRMzg5";

    fn ed_key() -> HostKey {
        HostKey {
            algorithm: "ssh-ed25519".into(),
            blob: ED.into(),
        }
    }

    #[test]
    fn host_key_from_dropbearkey_output_and_noise() {
        let out = format!(
            "# dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key\r\n\
             Public key portion is:\r\nssh-ed25519 {ED} root@hpguest\r\n\
             Fingerprint: SHA256:abc\r\n"
        );
        assert_eq!(parse_host_key(&out), Some(ed_key()));
        // A token whose blob names another algorithm, or is not base64, is noise.
        assert_eq!(parse_host_key("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBHG"), None);
        assert_eq!(parse_host_key("echo ssh-ed25519 notbase64!"), None);
        assert_eq!(parse_host_key(""), None);
    }

    #[test]
    fn known_hosts_pins_host_and_port() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            known_hosts_line(ip, 2222, &ed_key()),
            format!("[127.0.0.1]:2222 ssh-ed25519 {ED}\n")
        );
        assert_eq!(
            known_hosts_line(ip, 22, &ed_key()),
            format!("127.0.0.1 ssh-ed25519 {ED}\n")
        );
    }

    #[test]
    fn quoting_and_remote_wrapping() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        let w = wrap_remote_argv("echo 'a b' >&2; exit 3", "/tmp/.hp-ssh-x.pid");
        assert_eq!(
            w,
            r"echo $$ > '/tmp/.hp-ssh-x.pid' && exec /bin/sh -c 'echo '\''a b'\'' >&2; exit 3'"
        );
        // The command itself is not on the command line: it comes as stdin's first line.
        let w = wrap_remote("/tmp/.hp-ssh-x.pid");
        assert!(
            w.starts_with("echo $$ > '/tmp/.hp-ssh-x.pid' && IFS= read -r c"),
            "{w}"
        );
        assert_eq!(stdin_line("echo hi\nexit 3"), b"ZWNobyBoaQpleGl0IDM=\n");
        assert!(kill_remote("/tmp/p").contains("pkill -9 -P \"$p\"; kill -9 \"$p\""));
    }

    #[test]
    fn ssh_errors_are_told_from_a_remote_exit_255() {
        assert!(matches!(
            classify(
                "@@@@\r\n@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\r\nHost key verification failed.\r\n"
            ),
            Some(SshError::HostKey(_))
        ));
        assert!(matches!(
            classify("root@127.0.0.1: Permission denied (publickey)."),
            Some(SshError::Auth(_))
        ));
        assert!(matches!(
            classify("kex_exchange_identification: read: Connection reset by peer"),
            Some(SshError::Connect(_))
        ));
        assert!(matches!(
            classify("ssh: connect to host 127.0.0.1 port 2222: Connection refused"),
            Some(SshError::Connect(_))
        ));
        assert!(classify("my script failed").is_none());
    }

    /// The argv trusts nothing but the run's files: no config, strict checking against the
    /// pinned file only, the run's key only, no prompts, no forwarding.
    #[tokio::test]
    async fn argv_and_run_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run-1");
        let keys = RunKeys::create(&dir, "hostplane-run-1").await.unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(keys.public_key().starts_with("ssh-ed25519 "));
        assert!(keys.public_key().ends_with(" hostplane-run-1"));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ssh = keys.pin(ip, 2222, "root", &ed_key()).unwrap();
        let kh = std::fs::read_to_string(keys.known_hosts()).unwrap();
        assert_eq!(kh, format!("[127.0.0.1]:2222 ssh-ed25519 {ED}\n"));
        let a = ssh.args("true");
        let has = |o: &str| a.windows(2).any(|w| w[0] == "-o" && w[1] == o);
        assert_eq!(&a[..2], ["-F", "/dev/null"]);
        assert!(has("StrictHostKeyChecking=yes"));
        assert!(has("BatchMode=yes"));
        assert!(has("IdentitiesOnly=yes"));
        assert!(has("GlobalKnownHostsFile=/dev/null"));
        assert!(has("HostKeyAlgorithms=ssh-ed25519"));
        assert!(has(&format!(
            "UserKnownHostsFile={}",
            keys.known_hosts().display()
        )));
        assert_eq!(
            &a[a.len() - 7..],
            ["-p", "2222", "-l", "root", "--", "127.0.0.1", "true"]
        );
        assert!(keys.pin(ip, 2222, "-oProxyCommand=x", &ed_key()).is_err());
        // A path ssh would split or expand is refused.
        assert!(RunKeys::create(&tmp.path().join("a b"), "c").await.is_err());
        drop(keys);
        assert!(!dir.exists(), "the run directory goes with the keys");
    }

    /// A port nobody listens on: bound, noted, closed.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Pinning against a real sshd (the host's dropbear, package dropbear-bin, on a loopback
    /// port with a host key made here; nothing of the host's own ssh setup is touched): the
    /// key it really has gets past the host key check (and is then refused at authentication,
    /// since the run's key is authorized nowhere), a tampered pin fails with
    /// [`SshError::HostKey`] before anything is sent, and nothing listening is a connection
    /// error, not a remote exit code.
    #[tokio::test]
    async fn pinned_host_key_against_a_real_dropbear() {
        // hp-test-XXXXXX: scripts/cleanup-tests kills a dropbear naming it after a crash.
        let tmp = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let hk = tmp.path().join("host_key");
        for tool in ["/usr/sbin/dropbear", "/usr/bin/dropbearkey"] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: apt-get install dropbear-bin"
            );
        }
        Cmd::new("dropbearkey")
            .args(["-t", "ed25519", "-f"])
            .arg(&hk)
            .run()
            .await
            .unwrap();
        let shown = Cmd::new("dropbearkey")
            .args(["-y", "-f"])
            .arg(&hk)
            .run()
            .await
            .unwrap();
        let real = parse_host_key(&shown.stdout_lossy()).expect("dropbearkey -y shows the key");
        let port = free_port();
        let mut server = Cmd::new("/usr/sbin/dropbear")
            .args(["-F", "-E", "-s", "-j", "-k", "-r"])
            .arg(&hk)
            .args(["-p", &format!("127.0.0.1:{port}"), "-P"])
            .arg(tmp.path().join("dropbear.pid"))
            .spawn(
                crate::command::ChildOutput::Piped,
                crate::command::OnDrop::Kill,
            )
            .unwrap();
        let keys = RunKeys::create(&tmp.path().join("r"), "t").await.unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = std::time::Instant::now();
        let ssh = keys.pin(ip, port, "root", &real).unwrap();
        let e = loop {
            let e = ssh
                .exec("true", Stdin::None, Duration::from_secs(20))
                .await
                .unwrap_err();
            if matches!(e, SshError::Connect(_)) && t0.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            break e;
        };
        assert!(
            matches!(e, SshError::Auth(_)),
            "the real key passes the check: {e}"
        );
        // Another ed25519 key pinned: refused at the host key check.
        let wrong = keys.pin(ip, port, "root", &ed_key()).unwrap();
        let e = wrong
            .exec("true", Stdin::None, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::HostKey(_)), "{e}");
        // The pinned file tampered with (another host's line): refused too.
        std::fs::write(
            keys.known_hosts(),
            format!("[127.0.0.1]:{} ssh-ed25519 {}\n", port + 1, real.blob),
        )
        .unwrap();
        let e = ssh
            .exec("true", Stdin::None, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::HostKey(_)), "{e}");
        server.kill().await.ok();
        let e = keys
            .pin(ip, free_port(), "root", &real)
            .unwrap()
            .exec("true", Stdin::None, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(e, SshError::Connect(_)), "{e}");
    }
}
