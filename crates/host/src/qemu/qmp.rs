//! A small QMP client (QEMU Machine Protocol: JSON lines over a unix socket).
//!
//! Flow: [`Qmp::connect`] reads the greeting, sends `qmp_capabilities`, then a reader task
//! dispatches each line: a reply (`return`/`error` with our `id`) to the caller waiting in
//! [`Qmp::execute`], an event to the [`Event`] channel handed back by `connect`. When QEMU
//! exits the socket closes: waiting callers get [`QmpError::Closed`] and the event channel
//! ends, which is how the caller learns the process is gone.
//!
//! [`parse_line`] is the pure part, tested on real transcripts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Time one command may take before the caller gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line accepted from QEMU (a `query-*` answer of a big VM is far below).
const MAX_LINE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered with an error (`class` e.g. `GenericError`, `DeviceNotFound`).
    #[error("QEMU refused {command}: {desc} ({class})")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP connection closed (QEMU exited?)")]
    Closed,
    #[error("QMP command {0} timed out")]
    Timeout(String),
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// An asynchronous QMP event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `SHUTDOWN`, `STOP`, `RESUME`, `RESET`, `POWERDOWN`, `DEVICE_DELETED`, `JOB_STATUS_CHANGE`, …
    pub name: String,
    pub data: Value,
    /// Seconds since the epoch, as QEMU stamped it.
    pub timestamp: f64,
}

/// One line from QEMU, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The first line: `{"QMP": {"version": ..., "capabilities": [...]}}`.
    Greeting {
        version: QemuVersion,
    },
    Return {
        id: Option<String>,
        value: Value,
    },
    Error {
        id: Option<String>,
        class: String,
        desc: String,
    },
    Event(Event),
}

/// QEMU's version from the greeting or `query-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct QemuVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl std::fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses one line QEMU sent.
pub fn parse_line(line: &str) -> Result<Message, QmpError> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| QmpError::Protocol(format!("not JSON ({e}): {line:.200}")))?;
    if let Some(g) = v.get("QMP") {
        let q = &g["version"]["qemu"];
        let n = |k: &str| q[k].as_u64().unwrap_or(0) as u32;
        return Ok(Message::Greeting {
            version: QemuVersion {
                major: n("major"),
                minor: n("minor"),
                micro: n("micro"),
            },
        });
    }
    if let Some(r) = v.get("return") {
        return Ok(Message::Return {
            id: id_of(&v),
            value: r.clone(),
        });
    }
    if let Some(e) = v.get("error") {
        return Ok(Message::Error {
            id: id_of(&v),
            class: e["class"].as_str().unwrap_or("GenericError").to_string(),
            desc: e["desc"].as_str().unwrap_or("").to_string(),
        });
    }
    if let Some(name) = v.get("event").and_then(Value::as_str) {
        let ts = &v["timestamp"];
        let timestamp = ts["seconds"].as_f64().unwrap_or(0.0)
            + ts["microseconds"].as_f64().unwrap_or(0.0) / 1e6;
        return Ok(Message::Event(Event {
            name: name.to_string(),
            data: v.get("data").cloned().unwrap_or(Value::Null),
            timestamp,
        }));
    }
    Err(QmpError::Protocol(format!("unknown message: {line:.200}")))
}

type Pending = Arc<std::sync::Mutex<Option<HashMap<String, oneshot::Sender<Message>>>>>;

/// A connected QMP session. Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub struct Qmp {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    version: QemuVersion,
}

impl Qmp {
    /// Connects, negotiates capabilities and starts the reader. Events arrive on the receiver;
    /// it ends when the connection closes.
    pub async fn connect(path: &Path) -> Result<(Qmp, mpsc::UnboundedReceiver<Event>), QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut line = String::new();
        let greeting = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout("greeting".into()))??;
        if greeting == 0 {
            return Err(QmpError::Closed);
        }
        let version = match parse_line(line.trim())? {
            Message::Greeting { version } => version,
            other => {
                return Err(QmpError::Protocol(format!(
                    "expected the greeting, got {other:?}"
                )));
            }
        };
        let pending: Pending = Arc::new(std::sync::Mutex::new(Some(HashMap::new())));
        let (tx, rx) = mpsc::unbounded_channel();
        let p = pending.clone();
        tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_line(&mut line)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let msg = match parse_line(line.trim()) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "QMP: ignoring a line");
                        continue;
                    }
                };
                match msg {
                    Message::Event(ev) => {
                        let _ = tx.send(ev);
                    }
                    Message::Return { ref id, .. } | Message::Error { ref id, .. } => {
                        let waiter = id.as_ref().and_then(|id| {
                            p.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .as_mut()
                                .and_then(|m| m.remove(id))
                        });
                        if let Some(w) = waiter {
                            let _ = w.send(msg);
                        }
                    }
                    Message::Greeting { .. } => {}
                }
            }
            // Closed: fail everyone still waiting, refuse new commands.
            p.lock().unwrap_or_else(|e| e.into_inner()).take();
        });
        let qmp = Qmp {
            writer: Arc::new(Mutex::new(write)),
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            version,
        };
        qmp.execute("qmp_capabilities", None).await?;
        Ok((qmp, rx))
    }

    /// QEMU's version from the greeting.
    pub fn version(&self) -> QemuVersion {
        self.version
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Runs one command and returns its `return` value.
    pub async fn execute(&self, command: &str, args: Option<Value>) -> Result<Value, QmpError> {
        self.execute_timeout(command, args, DEFAULT_TIMEOUT).await
    }

    pub async fn execute_timeout(
        &self,
        command: &str,
        args: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let id = format!("hp-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match p.as_mut() {
                Some(m) => m.insert(id.clone(), tx),
                None => return Err(QmpError::Closed),
            };
        }
        let mut msg = json!({"execute": command, "id": id});
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        {
            let mut w = self.writer.lock().await;
            if let Err(e) = w.write_all(line.as_bytes()).await {
                self.forget(&id);
                return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
                    QmpError::Closed
                } else {
                    QmpError::Io(e)
                });
            }
        }
        let reply = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => return Err(QmpError::Closed),
            Err(_) => {
                self.forget(&id);
                return Err(QmpError::Timeout(command.to_string()));
            }
        };
        match reply {
            Message::Return { value, .. } => Ok(value),
            Message::Error { class, desc, .. } => Err(QmpError::Command {
                command: command.to_string(),
                class,
                desc,
            }),
            other => Err(QmpError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// `human-monitor-command`: HMP text in, text out (e.g. `savevm`, `info network`).
    pub async fn hmp(&self, command_line: &str, timeout: Duration) -> Result<String, QmpError> {
        let v = self
            .execute_timeout(
                "human-monitor-command",
                Some(json!({"command-line": command_line})),
                timeout,
            )
            .await?;
        Ok(v.as_str().unwrap_or("").to_string())
    }

    fn forget(&self, id: &str) {
        if let Some(m) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            m.remove(id);
        }
    }
}

/// The run state from `query-status` (`running`, `paused`, `shutdown`, `inmigrate`, …).
pub fn status_of(query_status: &Value) -> (String, bool) {
    (
        query_status["status"].as_str().unwrap_or("").to_string(),
        query_status["running"].as_bool().unwrap_or(false),
    )
}

/// One device's counters from `query-blockstats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStat {
    /// The qdev id (our `<disk>-dev`) or the node name.
    pub device: String,
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
}

/// Parses `query-blockstats`. `-blockdev` disks have an empty `device` and a `qdev` path
/// (`/machine/peripheral/disk0-dev/virtio-backend`): the device id is taken from that.
pub fn parse_blockstats(v: &Value) -> Vec<BlockStat> {
    let mut out = Vec::new();
    for e in v.as_array().into_iter().flatten() {
        let s = &e["stats"];
        let qdev = e["qdev"].as_str().unwrap_or("");
        let device = match e["device"].as_str().filter(|d| !d.is_empty()) {
            Some(d) => d.to_string(),
            None => qdev
                .strip_prefix("/machine/peripheral/")
                .and_then(|r| r.split('/').next())
                .unwrap_or(qdev)
                .to_string(),
        };
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        out.push(BlockStat {
            device,
            rd_bytes: n("rd_bytes"),
            wr_bytes: n("wr_bytes"),
            rd_operations: n("rd_operations"),
            wr_operations: n("wr_operations"),
        });
    }
    out
}

/// vCPU thread ids from `query-cpus-fast`.
pub fn parse_cpu_threads(v: &Value) -> Vec<u32> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["thread-id"].as_u64().map(|t| t as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saved from a real session (QEMU 10.0.2, TCG, the tiny guest): greeting, commands,
    /// replies, events, in order.
    const TRANSCRIPT: &str = include_str!("../../tests/fixtures/qmp/session.jsonl");

    #[test]
    fn parses_a_real_transcript() {
        let mut greeting = None;
        let mut events = Vec::new();
        let mut returns = 0;
        let mut errors = Vec::new();
        for line in TRANSCRIPT.lines().filter(|l| l.starts_with('{')) {
            if line.contains("\"execute\"") {
                continue; // what we sent
            }
            match parse_line(line).unwrap() {
                Message::Greeting { version } => greeting = Some(version),
                Message::Return { .. } => returns += 1,
                Message::Error { class, desc, .. } => errors.push((class, desc)),
                Message::Event(e) => events.push(e),
            }
        }
        assert_eq!(
            greeting,
            Some(QemuVersion {
                major: 10,
                minor: 0,
                micro: 2
            })
        );
        assert!(returns >= 5);
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert!(names.contains(&"POWERDOWN"), "{names:?}");
        let shutdown = events.iter().find(|e| e.name == "SHUTDOWN").unwrap();
        assert_eq!(shutdown.data["guest"], true);
        assert_eq!(shutdown.data["reason"], "guest-shutdown");
        assert!(shutdown.timestamp > 1.7e9);
        assert!(
            errors.iter().any(|(c, _)| c == "CommandNotFound"),
            "{errors:?}"
        );
    }

    #[test]
    fn reply_ids_and_errors() {
        let m = parse_line(r#"{"return": {}, "id": "hp-3"}"#).unwrap();
        assert_eq!(
            m,
            Message::Return {
                id: Some("hp-3".into()),
                value: json!({})
            }
        );
        let m = parse_line(
            r#"{"id": "hp-4", "error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Message::Error {
                id: Some("hp-4".into()),
                class: "DeviceNotFound".into(),
                desc: "Device 'x' not found".into()
            }
        );
        assert!(parse_line("not json").is_err());
        assert!(parse_line(r#"{"what": 1}"#).is_err());
    }

    #[test]
    fn blockstats_and_cpus_from_real_output() {
        let stats = TRANSCRIPT
            .lines()
            .find(|l| l.contains("\"rd_bytes\""))
            .unwrap();
        let Message::Return { value, .. } = parse_line(stats).unwrap() else {
            panic!()
        };
        let s = parse_blockstats(&value);
        assert!(
            s.iter().any(|b| b.device == "disk0-dev" && b.rd_bytes > 0),
            "{s:?}"
        );
        let cpus = TRANSCRIPT
            .lines()
            .find(|l| l.contains("\"thread-id\""))
            .unwrap();
        let Message::Return { value, .. } = parse_line(cpus).unwrap() else {
            panic!()
        };
        let t = parse_cpu_threads(&value);
        assert_eq!(t.len(), 1);
        assert!(t[0] > 0);
    }
}
