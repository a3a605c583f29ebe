//! A QEMU guest agent client (QGA: JSON lines over the VM's virtio-serial port
//! `org.qemu.guest_agent.0`, which QEMU exposes as a unix socket in the VM's run directory).
//!
//! Flow: [`Qga::connect`] connects and synchronizes ([`Qga::sync`]): it writes a raw 0xFF byte
//! (so the agent drops a half-read command an earlier client left) and
//! `guest-sync-delimited {id}` with a random id, then skips everything up to the agent's 0xFF
//! sentinel followed by `{"return": id}`. What comes before it is noise to drop: replies to an
//! earlier client's commands (the socket outlives connections) and the parse error the 0xFF byte
//! itself causes — both seen on a real qemu-ga 7.2 (`tests/fixtures/qga/`). After that, each
//! command gets exactly one reply line, in order ([`Qga::execute`]); a command that times out
//! leaves its reply in flight, so the next call synchronizes again first.
//!
//! [`Qga::exec`] runs a program with `guest-exec` (output captured, optional stdin) and polls
//! `guest-exec-status` until it exited; past its deadline it kills the process (`kill -9` of
//! it and its children, through another `guest-exec`) and fails. [`Qga::write_file`] writes
//! through `guest-file-open`/`-write`/`-close` in chunks. Every read is bounded: a line may
//! not exceed [`MAX_LINE`], and every wait has a deadline.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::Instant;

/// Time a command other than the program `guest-exec` runs may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply accepted: qemu-ga captures at most 16 MiB per stream, base64 in the reply.
pub const MAX_LINE: usize = 48 << 20;
/// Bytes per `guest-file-write`.
const WRITE_CHUNK: usize = 48 * 1024;
/// The agent's sentinel before a `guest-sync-delimited` reply.
const SENTINEL: u8 = 0xff;

#[derive(Debug, thiserror::Error)]
pub enum QgaError {
    #[error("cannot connect to the guest agent at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("guest agent protocol error: {0}")]
    Protocol(String),
    /// The agent answered with an error (`class` e.g. `GenericError`, `CommandNotFound`).
    #[error("the guest agent refused {command}: {desc} ({class})")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("the guest agent did not answer {0} in time (is qemu-ga running in the guest?)")]
    Timeout(String),
    #[error("the guest agent connection closed (the VM stopped?)")]
    Closed,
    #[error("guest agent I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What a program run with [`Qga::exec`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The agent cut stdout or stderr (it keeps 16 MiB of each).
    pub truncated: bool,
}

/// The `guest-exec-status` reply, parsed; `None` while the program runs.
pub fn parse_exec_status(v: &Value) -> Result<Option<ExecOutput>, QgaError> {
    if !v["exited"]
        .as_bool()
        .ok_or_else(|| QgaError::Protocol(format!("no `exited` in {v:.200}")))?
    {
        return Ok(None);
    }
    let data = |k: &str| -> Result<Vec<u8>, QgaError> {
        match v.get(k).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| QgaError::Protocol(format!("{k} is not base64: {e}"))),
        }
    };
    let int = |k: &str| v.get(k).and_then(Value::as_i64).map(|n| n as i32);
    Ok(Some(ExecOutput {
        exit_code: int("exitcode"),
        signal: int("signal"),
        stdout: data("out-data")?,
        stderr: data("err-data")?,
        truncated: v["out-truncated"].as_bool().unwrap_or(false)
            || v["err-truncated"].as_bool().unwrap_or(false),
    }))
}

/// One reply line: `Ok(return value)` or the agent's error.
pub fn parse_reply(command: &str, line: &[u8]) -> Result<Value, QgaError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        QgaError::Protocol(format!(
            "not JSON ({e}): {:.200}",
            String::from_utf8_lossy(line)
        ))
    })?;
    if let Some(r) = v.get("return") {
        return Ok(r.clone());
    }
    if let Some(e) = v.get("error") {
        return Err(QgaError::Command {
            command: command.to_string(),
            class: e["class"].as_str().unwrap_or("").to_string(),
            desc: e["desc"].as_str().unwrap_or("").to_string(),
        });
    }
    Err(QgaError::Protocol(format!(
        "neither return nor error: {:.200}",
        String::from_utf8_lossy(line)
    )))
}

/// A connection to one VM's guest agent.
pub struct Qga<S = UnixStream> {
    io: BufReader<S>,
    /// A reply may still be in flight (a timeout): synchronize before the next command.
    dirty: bool,
}

impl Qga<UnixStream> {
    /// Connects to the agent socket and synchronizes within `timeout` (an agent that is not
    /// running yet, or a guest still booting, never answers: [`QgaError::Timeout`]).
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Self, QgaError> {
        let s = UnixStream::connect(path)
            .await
            .map_err(|source| QgaError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let mut q = Qga::new(s);
        q.sync(random_id(), timeout).await?;
        Ok(q)
    }
}

fn random_id() -> u64 {
    // Unique enough per connection: a stale sync reply from another client never matches.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ ((std::process::id() as u64) << 32)) & 0x7fff_ffff_ffff
}

impl<S: AsyncRead + AsyncWrite + Unpin> Qga<S> {
    /// Wraps a stream that is not synchronized yet.
    pub fn new(stream: S) -> Self {
        Qga {
            io: BufReader::new(stream),
            dirty: true,
        }
    }

    /// Reads one line (without `\n`) by `deadline`, at most [`MAX_LINE`] bytes.
    async fn line(&mut self, deadline: Instant, what: &str) -> Result<Vec<u8>, QgaError> {
        let mut out = Vec::new();
        loop {
            let buf = match tokio::time::timeout_at(deadline, self.io.fill_buf()).await {
                Err(_) => {
                    self.dirty = true;
                    return Err(QgaError::Timeout(what.to_string()));
                }
                Ok(r) => r?,
            };
            if buf.is_empty() {
                return Err(QgaError::Closed);
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if out.len() + take > MAX_LINE {
                self.dirty = true;
                return Err(QgaError::Protocol(format!(
                    "a reply to {what} is longer than {MAX_LINE} bytes"
                )));
            }
            out.extend_from_slice(&buf[..take]);
            self.io.consume(take);
            if done {
                out.pop();
                return Ok(out);
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), QgaError> {
        let w = self.io.get_mut();
        w.write_all(bytes).await?;
        w.flush().await?;
        Ok(())
    }

    /// `guest-sync-delimited`: drops everything before the sentinel and the reply with `id`.
    pub async fn sync(&mut self, id: u64, timeout: Duration) -> Result<(), QgaError> {
        let deadline = Instant::now() + timeout;
        let mut msg = vec![SENTINEL];
        msg.extend_from_slice(
            json!({"execute": "guest-sync-delimited", "arguments": {"id": id}})
                .to_string()
                .as_bytes(),
        );
        msg.push(b'\n');
        self.send(&msg).await?;
        loop {
            let line = self.line(deadline, "guest-sync-delimited").await?;
            let Some(i) = line.iter().rposition(|&b| b == SENTINEL) else {
                continue; // an earlier client's reply, or the error the 0xFF byte caused
            };
            if let Ok(v) = parse_reply("guest-sync-delimited", &line[i + 1..])
                && v.as_u64() == Some(id)
            {
                self.dirty = false;
                return Ok(());
            }
        }
    }

    /// Runs one agent command and returns its `return` value.
    pub async fn execute(
        &mut self,
        command: &str,
        args: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QgaError> {
        if self.dirty {
            self.sync(random_id(), timeout).await?;
        }
        let mut msg = json!({"execute": command});
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        self.send(&bytes).await?;
        let line = self.line(Instant::now() + timeout, command).await?;
        parse_reply(command, &line)
    }

    /// Runs `path` with `args` in the guest (no shell), `input` on its stdin, until it exits or
    /// `timeout` passes (then it is killed and this fails with [`QgaError::Timeout`]).
    pub async fn exec(
        &mut self,
        path: &str,
        args: &[&str],
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, QgaError> {
        let deadline = Instant::now() + timeout;
        let mut a = json!({"path": path, "arg": args, "capture-output": true});
        if let Some(i) = input {
            a["input-data"] = json!(base64::engine::general_purpose::STANDARD.encode(i));
        }
        let r = self.execute("guest-exec", Some(a), COMMAND_TIMEOUT).await?;
        let pid = r["pid"]
            .as_i64()
            .ok_or_else(|| QgaError::Protocol(format!("guest-exec gave no pid: {r}")))?;
        // Short programs are the common case: poll fast first, then back off.
        let mut every = Duration::from_millis(50);
        loop {
            let st = self
                .execute(
                    "guest-exec-status",
                    Some(json!({"pid": pid})),
                    COMMAND_TIMEOUT,
                )
                .await?;
            if let Some(out) = parse_exec_status(&st)? {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                self.kill(pid).await;
                return Err(QgaError::Timeout(format!(
                    "{path} (pid {pid}) to finish within {} s; killed",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
            every = (every * 2).min(Duration::from_millis(500));
        }
    }

    /// Best effort: kills `pid` and its children, and reaps the status the agent keeps.
    async fn kill(&mut self, pid: i64) {
        let script = format!("pkill -9 -P {pid}; kill -9 {pid}");
        let a = json!({"path": "/bin/sh", "arg": ["-c", script]});
        if let Err(e) = self.execute("guest-exec", Some(a), COMMAND_TIMEOUT).await {
            tracing::debug!(pid, "killing a guest program through the agent: {e}");
        }
        let _ = self
            .execute(
                "guest-exec-status",
                Some(json!({"pid": pid})),
                COMMAND_TIMEOUT,
            )
            .await;
    }

    /// Writes `content` to `path` in the guest (created or truncated; the agent creates it
    /// with mode 0600).
    pub async fn write_file(&mut self, path: &str, content: &[u8]) -> Result<(), QgaError> {
        let h = self
            .execute(
                "guest-file-open",
                Some(json!({"path": path, "mode": "w"})),
                COMMAND_TIMEOUT,
            )
            .await?;
        let handle = h
            .as_i64()
            .ok_or_else(|| QgaError::Protocol(format!("guest-file-open gave no handle: {h}")))?;
        let res = self.write_chunks(handle, content).await;
        let closed = self
            .execute(
                "guest-file-close",
                Some(json!({"handle": handle})),
                COMMAND_TIMEOUT,
            )
            .await;
        res.and(closed.map(|_| ()))
    }

    async fn write_chunks(&mut self, handle: i64, content: &[u8]) -> Result<(), QgaError> {
        for chunk in content.chunks(WRITE_CHUNK) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let b64 = base64::engine::general_purpose::STANDARD.encode(rest);
                let r = self
                    .execute(
                        "guest-file-write",
                        Some(json!({"handle": handle, "buf-b64": b64})),
                        COMMAND_TIMEOUT,
                    )
                    .await?;
                let n = r["count"].as_u64().unwrap_or(0) as usize;
                if n == 0 || n > rest.len() {
                    return Err(QgaError::Protocol(format!(
                        "guest-file-write wrote {n} of {} bytes",
                        rest.len()
                    )));
                }
                rest = &rest[n..];
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// Saved from real sessions with qemu-ga 7.2 in the test guest (scripts/guest-kit) over
    /// QEMU's virtio-serial socket: `> ` what the client sent, `< ` what the agent answered,
    /// `<FF>` the raw 0xFF byte, `# stale` lines the agent sent before the first command (a
    /// reply to the previous connection's command).
    const TRANSCRIPT: &str = include_str!("../../tests/fixtures/qga/session.txt");

    fn bytes(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, part) in s.split("<FF>").enumerate() {
            if i > 0 {
                out.push(SENTINEL);
            }
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    /// Request (as JSON, the 0xFF byte kept apart) → the agent's reply lines.
    struct Script {
        stale: Vec<Vec<u8>>,
        replies: Vec<(bool, Value, VecDeque<Vec<u8>>)>,
    }

    fn script() -> Script {
        let mut s = Script {
            stale: Vec::new(),
            replies: Vec::new(),
        };
        let mut stale = false;
        for l in TRANSCRIPT.lines() {
            if l == "# stale" {
                stale = true;
            } else if let Some(req) = l.strip_prefix("> ") {
                stale = false;
                let ff = req.starts_with("<FF>");
                let v: Value = serde_json::from_str(req.trim_start_matches("<FF>")).unwrap();
                match s.replies.iter().position(|(f, r, _)| *f == ff && *r == v) {
                    Some(_) => {}
                    None => s.replies.push((ff, v, VecDeque::new())),
                }
            } else if let Some(rep) = l.strip_prefix("< ") {
                if stale {
                    s.stale.push(bytes(rep));
                } else {
                    s.replies.last_mut().unwrap().2.push_back(bytes(rep));
                }
            }
        }
        s
    }

    type Seen = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

    /// A fake agent answering from the transcript: the same request gets the next of its
    /// replies (the last one repeats: a `guest-exec-status` polled more often than when
    /// captured); a request the transcript does not hold gets an error reply. Every request
    /// is recorded in `seen`.
    async fn agent(mut s: DuplexStream, mut script: Script, seen: Seen) {
        let mut buf = Vec::new();
        for l in script.stale.drain(..) {
            s.write_all(&l).await.unwrap();
            s.write_all(b"\n").await.unwrap();
        }
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let line = &line[..line.len() - 1];
                let ff = line.first() == Some(&SENTINEL);
                let v: Value = serde_json::from_slice(if ff { &line[1..] } else { line })
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
                seen.lock().unwrap().push(v.clone());
                let Some((_, _, q)) = script
                    .replies
                    .iter_mut()
                    .find(|(f, r, _)| *f == ff && *r == v)
                else {
                    let e = br#"{"error": {"class": "NotInTranscript", "desc": "test"}}"#;
                    s.write_all(e).await.unwrap();
                    s.write_all(b"\n").await.unwrap();
                    continue;
                };
                let n = q.len();
                let reps: Vec<Vec<u8>> = if ff {
                    q.iter().cloned().collect()
                } else if n > 1 {
                    vec![q.pop_front().unwrap()]
                } else {
                    vec![q[0].clone()]
                };
                for r in reps {
                    s.write_all(&r).await.unwrap();
                    s.write_all(b"\n").await.unwrap();
                }
            }
            let n = s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn connected() -> (Qga<DuplexStream>, Seen) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let seen = Seen::default();
        tokio::spawn(agent(b, script(), seen.clone()));
        (Qga::new(a), seen)
    }

    fn unknown(seen: &Seen) -> Vec<Value> {
        let s = script();
        seen.lock()
            .unwrap()
            .iter()
            .filter(|v| !s.replies.iter().any(|(_, r, _)| r == *v))
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn sync_skips_stale_replies_and_the_parse_error() {
        let (mut q, seen) = connected();
        q.sync(4242, Duration::from_secs(5)).await.unwrap();
        assert!(!q.dirty);
        assert!(unknown(&seen).is_empty());
    }

    #[tokio::test]
    async fn exec_reads_exit_code_and_both_streams() {
        let (mut q, seen) = connected();
        q.sync(4242, Duration::from_secs(5)).await.unwrap();
        let out = q
            .exec(
                "/bin/sh",
                &["-c", "echo out; echo err >&2; exit 3"],
                None,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.truncated);
        // stdin, and a program ended by a signal.
        let out = q
            .exec(
                "/bin/sh",
                &["-c", "cat; echo done"],
                Some(b"in\n"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(
            (out.exit_code, out.stdout),
            (Some(0), b"in\ndone\n".to_vec())
        );
        let out = q
            .exec(
                "/bin/sh",
                &["-c", "cat /tmp/x; kill -9 $$"],
                None,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!((out.exit_code, out.signal), (None, Some(9)));
        assert_eq!(out.stdout, b"hello\n");
        assert!(unknown(&seen).is_empty(), "{:?}", unknown(&seen));
    }

    #[tokio::test]
    async fn errors_keep_the_connection_usable() {
        let (mut q, seen) = connected();
        q.sync(4242, Duration::from_secs(5)).await.unwrap();
        let e = q
            .exec("/no/such", &[], None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, QgaError::Command { class, desc, .. }
                if class == "GenericError" && desc.contains("No such file")),
            "{e}"
        );
        let e = q
            .execute("no-such-command", None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, QgaError::Command { class, .. } if class == "CommandNotFound"),
            "{e}"
        );
        q.write_file("/tmp/x", b"hello\n").await.unwrap();
        let e = q
            .write_file("/nonexistent/dir/x", b"hello\n")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("No such file or directory"), "{e}");
        assert!(unknown(&seen).is_empty(), "{:?}", unknown(&seen));
    }

    #[tokio::test]
    async fn a_program_past_its_deadline_is_killed() {
        let (mut q, seen) = connected();
        q.sync(4242, Duration::from_secs(5)).await.unwrap();
        let e = q
            .exec(
                "/bin/sh",
                &["-c", "sleep 30"],
                None,
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, QgaError::Timeout(_)), "{e}");
        assert!(e.to_string().contains("killed"), "{e}");
        assert!(unknown(&seen).is_empty(), "{:?}", unknown(&seen));
        let kill = seen.lock().unwrap().iter().any(|v| {
            v["execute"] == "guest-exec"
                && v["arguments"]["arg"][1]
                    .as_str()
                    .is_some_and(|s| s.contains("kill -9"))
        });
        assert!(kill, "the program was killed through the agent");
    }

    #[tokio::test]
    async fn silence_times_out_and_a_long_line_is_refused() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut q = Qga::new(a);
        let e = q.sync(1, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(e, QgaError::Timeout(_)), "{e}");
        assert!(q.dirty);
        // A line without end past MAX_LINE.
        let w = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 16];
            let mut sent = 0;
            while sent <= MAX_LINE {
                if b.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len();
            }
        });
        let e = q
            .line(Instant::now() + Duration::from_secs(60), "test")
            .await
            .unwrap_err();
        assert!(matches!(e, QgaError::Protocol(_)), "{e}");
        w.abort();
    }

    #[test]
    fn exec_status_and_replies() {
        assert_eq!(parse_exec_status(&json!({"exited": false})).unwrap(), None);
        assert!(parse_exec_status(&json!({})).is_err());
        assert!(parse_exec_status(&json!({"exited": true, "out-data": "%%"})).is_err());
        let o = parse_exec_status(&json!({"exited": true, "exitcode": 0, "out-truncated": true}))
            .unwrap()
            .unwrap();
        assert!(o.truncated && o.stdout.is_empty());
        assert!(matches!(
            parse_reply("x", b"{\"what\": 1}"),
            Err(QgaError::Protocol(_))
        ));
        assert!(parse_reply("x", b"\xff{").is_err());
    }
}
