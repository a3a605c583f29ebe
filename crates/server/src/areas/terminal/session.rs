//! Terminal sessions without HTTP: open a shell on a PTY, keep its recent output, end it on
//! exit, on request, when idle, when too old, or when nobody reattached within the grace period.
//!
//! Flow: [`Terminals::open`] checks the shell against `terminal.shells`, spawns it through
//! `hostplane_host::command::Cmd::spawn_pty` with a clean environment (TERM, HOME, PATH, LANG,
//! USER) and starts two tasks: the reader (PTY output → bounded replay ring + broadcast) and the
//! supervisor (waits for the exit, a `DELETE`, or a limit; kills the session's process group;
//! publishes the exit to attached clients; drops the session and audits its end). A WebSocket
//! [`Session::attach`]es: it gets the ring first, then live output; a second attach replaces
//! the first (its socket is told and closed).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hostplane_host::command::PtyIo;
use hostplane_types::terminal::TerminalSession;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::TerminalConfig;
use crate::error::{ApiError, ApiResult};
use crate::platform::time;

/// Where the sessions live under `/api/v1`.
pub const BASE: &str = "/api/v1/system/terminals";

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The shell's exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// `exited`, `deleted`, `idle`, `max_session`, `detached`, `shutdown`.
    pub reason: &'static str,
}

/// Why the supervisor ends a session.
fn limit_reached(cfg: &TerminalConfig, s: &Session, now: Instant) -> Option<&'static str> {
    if now.duration_since(s.started) >= Duration::from_secs(cfg.max_session_secs) {
        return Some("max_session");
    }
    if now.duration_since(*lock(&s.last_activity)) >= Duration::from_secs(cfg.idle_timeout_secs) {
        return Some("idle");
    }
    if let Some(since) = *lock(&s.detached_since)
        && now.duration_since(since) >= Duration::from_secs(cfg.detach_grace_secs)
    {
        return Some("detached");
    }
    None
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Session {
    pub id: String,
    pub user: String,
    pub shell: String,
    pub pid: u32,
    pub created_at: String,
    started: Instant,
    io: PtyIo,
    size: Mutex<(u16, u16)>,
    ring: Mutex<VecDeque<u8>>,
    ring_cap: usize,
    tx: broadcast::Sender<Bytes>,
    last_activity: Mutex<Instant>,
    last_activity_wall: Mutex<String>,
    /// The attached socket (its number and token; the token is cancelled when another
    /// attaches).
    attached: Mutex<Option<(u64, CancellationToken)>>,
    attaches: std::sync::atomic::AtomicU64,
    /// Since when nobody is attached (None while someone is).
    detached_since: Mutex<Option<Instant>>,
    /// Cancelled by `DELETE` or shutdown; the supervisor then kills the shell.
    end: CancellationToken,
    end_reason: Mutex<&'static str>,
    ended: watch::Sender<Option<Ended>>,
}

/// One attachment: the replay, live output, the end, and a token cancelled when replaced.
pub struct Attachment {
    pub replay: Vec<u8>,
    pub output: broadcast::Receiver<Bytes>,
    pub ended: watch::Receiver<Option<Ended>>,
    pub replaced: CancellationToken,
    number: u64,
}

impl Session {
    pub fn view(&self) -> TerminalSession {
        let (cols, rows) = *lock(&self.size);
        TerminalSession {
            id: self.id.clone(),
            href: format!("{BASE}/{}", self.id),
            user: self.user.clone(),
            shell: self.shell.clone(),
            cols,
            rows,
            pid: self.pid,
            attached: lock(&self.attached).is_some(),
            created_at: self.created_at.clone(),
            last_activity_at: lock(&self.last_activity_wall).clone(),
        }
    }

    fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
        *lock(&self.last_activity_wall) = time::now_string();
    }

    fn push(&self, data: Bytes) {
        let mut ring = lock(&self.ring);
        ring.extend(data.iter().copied());
        let excess = ring.len().saturating_sub(self.ring_cap);
        ring.drain(..excess);
        // Under the ring's lock, so an attach never misses or doubles a chunk.
        let _ = self.tx.send(data);
    }

    /// Attaches a client: the output so far, then what follows. Replaces any other client.
    pub fn attach(&self) -> Attachment {
        let replaced = CancellationToken::new();
        let number = self
            .attaches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((_, old)) = lock(&self.attached).replace((number, replaced.clone())) {
            old.cancel();
        }
        *lock(&self.detached_since) = None;
        let ring = lock(&self.ring);
        Attachment {
            replay: ring.iter().copied().collect(),
            output: self.tx.subscribe(),
            ended: self.ended.subscribe(),
            replaced,
            number,
        }
    }

    /// The client of `a` went away: the grace period starts (unless another client took over).
    pub fn detach(&self, a: &Attachment) {
        let mut cur = lock(&self.attached);
        if cur.as_ref().is_some_and(|(n, _)| *n == a.number) {
            *cur = None;
            *lock(&self.detached_since) = Some(Instant::now());
        }
    }

    pub async fn input(&self, data: &[u8]) -> std::io::Result<()> {
        self.touch();
        self.io.write_all(data).await
    }

    pub fn resize(&self, cols: u16, rows: u16) -> ApiResult<()> {
        check_size(cols, rows)?;
        self.io.resize(cols, rows).map_err(ApiError::internal)?;
        *lock(&self.size) = (cols, rows);
        Ok(())
    }

    /// Asks the supervisor to end the session (`DELETE`).
    pub fn end(&self, reason: &'static str) {
        *lock(&self.end_reason) = reason;
        self.end.cancel();
    }
}

pub fn check_size(cols: u16, rows: u16) -> ApiResult<()> {
    if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
        return Err(ApiError::invalid(
            "invalid_terminal_size",
            format!("{cols}x{rows}: columns and rows are 1 .. 1000"),
        ));
    }
    Ok(())
}

/// Called once a session has ended (after it left the table): the area audits it.
pub type OnEnd = Arc<dyn Fn(&Session, &Ended) + Send + Sync>;

/// Every open session of this daemon.
pub struct Terminals {
    cfg: TerminalConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    on_end: OnEnd,
}

/// The daemon user's name and home (from /etc/passwd), for USER and HOME.
fn own_account() -> (String, PathBuf) {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid))
                .then(|| (f[0].to_string(), PathBuf::from(f[5])))
        })
        .next()
        .unwrap_or_else(|| (uid.to_string(), PathBuf::from("/")))
}

impl Terminals {
    pub fn new(cfg: TerminalConfig, on_end: OnEnd) -> Terminals {
        Terminals {
            cfg,
            sessions: Mutex::new(HashMap::new()),
            on_end,
        }
    }

    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = lock(&self.sessions).values().cloned().collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    pub fn get(&self, id: &str) -> ApiResult<Arc<Session>> {
        lock(&self.sessions)
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no terminal session {id:?}")))
    }

    /// The shell to run: `wanted` when the allow-list has it, else the first listed shell
    /// that exists.
    fn shell(&self, wanted: Option<&str>) -> ApiResult<PathBuf> {
        match wanted {
            Some(w) => {
                let p = Path::new(w);
                if !self.cfg.shells.iter().any(|s| s == p) {
                    return Err(ApiError::invalid_field(
                        "shell_not_allowed",
                        "shell",
                        format!(
                            "{w:?} is not in terminal.shells ({})",
                            self.cfg
                                .shells
                                .iter()
                                .map(|s| s.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                if !p.is_file() {
                    return Err(ApiError::Unavailable {
                        code: "shell_missing",
                        detail: format!("{w} does not exist on this host"),
                    });
                }
                Ok(p.to_path_buf())
            }
            None => self
                .cfg
                .shells
                .iter()
                .find(|s| s.is_file())
                .cloned()
                .ok_or_else(|| ApiError::Unavailable {
                    code: "shell_missing",
                    detail: "none of terminal.shells exists on this host".into(),
                }),
        }
    }

    /// Opens a session for `user`: the shell runs at once.
    pub fn open(
        self: &Arc<Self>,
        user: &str,
        cols: u16,
        rows: u16,
        shell: Option<&str>,
    ) -> ApiResult<Arc<Session>> {
        check_size(cols, rows)?;
        let shell = self.shell(shell)?;
        if lock(&self.sessions).len() >= self.cfg.max_sessions {
            return Err(ApiError::conflict(
                "terminal_limit",
                format!(
                    "{} terminal sessions are open (terminal.max_sessions); end one first",
                    self.cfg.max_sessions
                ),
            ));
        }
        let (name, home) = own_account();
        let mut child = hostplane_host::terminal::spawn_shell(&shell, &name, &home, cols, rows)
            .map_err(|e| ApiError::internal(format!("starting the shell: {e}")))?;
        let id = uuid::Uuid::now_v7().to_string();
        let (tx, _) = broadcast::channel(1024);
        let session = Arc::new(Session {
            id: id.clone(),
            user: user.to_string(),
            shell: shell.display().to_string(),
            pid: child.pid(),
            created_at: time::now_string(),
            started: Instant::now(),
            io: child.io(),
            size: Mutex::new((cols, rows)),
            ring: Mutex::new(VecDeque::new()),
            ring_cap: self.cfg.replay_bytes,
            tx,
            last_activity: Mutex::new(Instant::now()),
            last_activity_wall: Mutex::new(time::now_string()),
            attached: Mutex::new(None),
            attaches: Default::default(),
            detached_since: Mutex::new(Some(Instant::now())),
            end: CancellationToken::new(),
            end_reason: Mutex::new("deleted"),
            ended: watch::channel(None).0,
        });
        lock(&self.sessions).insert(id, session.clone());

        let reader = {
            let s = session.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = s.io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    s.touch();
                    s.push(Bytes::copy_from_slice(&buf[..n]));
                }
            })
        };
        let me = self.clone();
        let s = session.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let reason: &'static str = loop {
                tokio::select! {
                    r = child.wait() => {
                        let code = r.ok().and_then(|st| st.code());
                        break if code.is_some() { "exited" } else { "killed" };
                    }
                    _ = s.end.cancelled() => break *lock(&s.end_reason),
                    _ = tick.tick() => {
                        if let Some(r) = limit_reached(&me.cfg, &s, Instant::now()) {
                            break r;
                        }
                    }
                }
            };
            let status = if reason == "exited" || reason == "killed" {
                child.wait().await.ok()
            } else {
                child.kill().await.ok()
            };
            // The last output reaches the ring before the end is announced.
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            let ended = Ended {
                code: status.and_then(|st| st.code()),
                reason,
            };
            lock(&me.sessions).remove(&s.id);
            let _ = s.ended.send(Some(ended.clone()));
            (me.on_end)(&s, &ended);
        });
        Ok(session)
    }

    /// Ends every session (daemon shutdown).
    pub fn end_all(&self) {
        for s in self.list() {
            s.end("shutdown");
        }
    }
}
