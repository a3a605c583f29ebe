//! LXC containers through the `lxc-*` tools (LXC 5), never liblxc: every call is one
//! [`Cmd`] run with `-P <lxcpath> -n <name>`, argv only.
//!
//! Flow: the `lxc` area validates a request, then calls an [`Lxc`] method here (one per tool
//! run), and reads state back with [`Lxc::info`] (`lxc-info -H`, parsed by [`parse_info`]) or
//! [`Lxc::list`] (`lxc-ls --fancy`, parsed by [`parse_ls_fancy`]). The container's `config`
//! file is read and edited here ([`Config`]): hostplane's own settings (autostart, limits,
//! mounts) live in one marked block at its end, written atomically.
//!
//! LXC's command socket is an abstract unix socket, scoped to the network namespace: the
//! daemon and every `lxc-*` it runs must share one netns (they do: children inherit it). From
//! another netns a running container looks stopped, and `lxc-destroy` would delete its rootfs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{Cmd, CommandError, PtyChild, validate_name};

/// Runs the `lxc-*` tools on one lxcpath.
#[derive(Debug, Clone)]
pub struct Lxc {
    path: PathBuf,
}

/// A container's state as `lxc-info` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Stopping,
    Aborting,
    Freezing,
    Frozen,
    Thawed,
    Unknown,
}

impl State {
    pub fn parse(s: &str) -> State {
        match s.trim() {
            "STOPPED" => State::Stopped,
            "STARTING" => State::Starting,
            "RUNNING" => State::Running,
            "STOPPING" => State::Stopping,
            "ABORTING" => State::Aborting,
            "FREEZING" => State::Freezing,
            "FROZEN" => State::Frozen,
            "THAWED" => State::Thawed,
            _ => State::Unknown,
        }
    }
}

/// What `lxc-info -H` says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub state: State,
    pub pid: Option<u32>,
    pub ips: Vec<String>,
    pub memory_bytes: Option<u64>,
    pub cpu_ns: Option<u64>,
}

/// Parses `lxc-info -H -n NAME` (`Key:   value` lines; `IP:` repeats).
pub fn parse_info(text: &str) -> Info {
    let mut info = Info {
        name: String::new(),
        state: State::Unknown,
        pid: None,
        ips: Vec::new(),
        memory_bytes: None,
        cpu_ns: None,
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Name" => info.name = v.to_string(),
            "State" => info.state = State::parse(v),
            "PID" => info.pid = v.parse().ok(),
            "IP" => info.ips.push(v.to_string()),
            "Memory use" => info.memory_bytes = v.parse().ok(),
            "CPU use" => info.cpu_ns = v.parse().ok(),
            _ => {}
        }
    }
    info
}

/// One row of `lxc-ls --fancy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsRow {
    pub name: String,
    pub state: State,
    pub autostart: bool,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
}

/// The `-F` columns [`Lxc::list`] asks for.
const LS_COLUMNS: &str = "NAME,STATE,AUTOSTART,IPV4,IPV6";

/// Parses `lxc-ls --fancy`: left-aligned columns whose starts the header gives (a cell can
/// hold spaces: several addresses are `a, b`); `-` is empty.
pub fn parse_ls_fancy(text: &str) -> Vec<LsRow> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let mut cols: Vec<(String, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in header
        .char_indices()
        .chain(std::iter::once((header.len(), ' ')))
    {
        match (c == ' ', start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                cols.push((header[s..i].to_string(), s));
                start = None;
            }
            _ => {}
        }
    }
    let cell = |line: &str, name: &str| -> String {
        let Some(pos) = cols.iter().position(|(n, _)| n == name) else {
            return String::new();
        };
        let from = cols[pos].1.min(line.len());
        let to = cols
            .get(pos + 1)
            .map_or(line.len(), |c| c.1.min(line.len()));
        line.get(from..to).unwrap_or("").trim().to_string()
    };
    let list = |s: String| -> Vec<String> {
        if s == "-" || s.is_empty() {
            Vec::new()
        } else {
            s.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        }
    };
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| LsRow {
            name: cell(l, "NAME"),
            state: State::parse(&cell(l, "STATE")),
            autostart: cell(l, "AUTOSTART") == "1",
            ipv4: list(cell(l, "IPV4")),
            ipv6: list(cell(l, "IPV6")),
        })
        .collect()
}

/// One snapshot from `lxc-snapshot -L`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub name: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`-ish as LXC wrote it (`2026:12:07 00:33:48`, local time).
    pub created: String,
}

/// Parses `lxc-snapshot -L`: `snap0 (/lxcpath/name/snaps) 2026:12:07 00:33:48` per line;
/// `No snapshots` when there are none.
pub fn parse_snapshots(text: &str) -> Vec<SnapshotRow> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" (")?;
            let (_, ts) = rest.rsplit_once(") ")?;
            validate_name("snapshot", name).ok()?;
            Some(SnapshotRow {
                name: name.to_string(),
                created: ts.trim().to_string(),
            })
        })
        .collect()
}

/// Where a new container's root filesystem goes.
#[derive(Debug, Clone)]
pub enum RootfsAt {
    /// `<lxcpath>/<name>/rootfs` (LXC's default).
    Default,
    /// This directory (created by LXC, or an empty btrfs subvolume made before).
    Dir(PathBuf),
}

/// The template of a new container.
#[derive(Debug, Clone)]
pub enum Template {
    /// `lxc-busybox`: the host's static busybox.
    Busybox,
    /// `lxc-local`: a rootfs `.tar.xz` and a meta `.tar.xz` holding the distribution `config`.
    Local { meta: PathBuf, rootfs: PathBuf },
}

impl Lxc {
    pub fn new(path: impl Into<PathBuf>) -> Lxc {
        Lxc { path: path.into() }
    }

    /// The lxcpath.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<lxcpath>/<name>`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `<lxcpath>/<name>/config`.
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.dir(name).join("config")
    }

    /// Whether `<lxcpath>/<name>/config` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.config_path(name).is_file()
    }

    fn cmd(&self, tool: &str, name: &str) -> Result<Cmd, CommandError> {
        validate_name("container", name)?;
        Ok(Cmd::new(tool).arg("-P").arg(&self.path).arg("-n").arg(name))
    }

    /// `lxc-create`: `base` is an LXC config file with what every container gets (network,
    /// AppArmor); `rootfs` where the root filesystem goes.
    pub async fn create(
        &self,
        name: &str,
        base: &Path,
        template: &Template,
        rootfs: &RootfsAt,
    ) -> Result<(), CommandError> {
        let mut c = self.cmd("lxc-create", name)?.arg("-f").arg(base);
        if let RootfsAt::Dir(d) = rootfs {
            c = c.args(["-B", "dir", "--dir"]).arg(d);
        }
        c = match template {
            Template::Busybox => c.args(["-t", "busybox"]),
            Template::Local { meta, rootfs } => c
                .args(["-t", "local", "--", "-m"])
                .arg(meta)
                .arg("-f")
                .arg(rootfs),
        };
        c.timeout(Duration::from_secs(600)).run().await.map(|_| ())
    }

    /// `lxc-start -d`.
    pub async fn start(&self, name: &str) -> Result<(), CommandError> {
        self.cmd("lxc-start", name)?
            .arg("-d")
            .run()
            .await
            .map(|_| ())
    }

    /// `lxc-stop -t SECS` (halt signal, SIGKILL after the timeout).
    pub async fn stop(&self, name: &str, timeout_secs: u32) -> Result<(), CommandError> {
        self.cmd("lxc-stop", name)?
            .arg("-t")
            .arg(timeout_secs.to_string())
            .timeout(Duration::from_secs(u64::from(timeout_secs) + 30))
            .run()
            .await
            .map(|_| ())
    }

    /// `lxc-stop -k` (SIGKILL at once).
    pub async fn kill(&self, name: &str) -> Result<(), CommandError> {
        self.cmd("lxc-stop", name)?
            .arg("-k")
            .run()
            .await
            .map(|_| ())
    }

    pub async fn freeze(&self, name: &str) -> Result<(), CommandError> {
        self.cmd("lxc-freeze", name)?.run().await.map(|_| ())
    }

    pub async fn unfreeze(&self, name: &str) -> Result<(), CommandError> {
        self.cmd("lxc-unfreeze", name)?.run().await.map(|_| ())
    }

    /// `lxc-wait -s STATE -t SECS`.
    pub async fn wait_state(&self, name: &str, state: &str, secs: u32) -> Result<(), CommandError> {
        self.cmd("lxc-wait", name)?
            .args(["-s", state, "-t"])
            .arg(secs.to_string())
            .timeout(Duration::from_secs(u64::from(secs) + 10))
            .run()
            .await
            .map(|_| ())
    }

    /// `lxc-destroy` (the container must be stopped; its snapshots go too).
    pub async fn destroy(&self, name: &str) -> Result<(), CommandError> {
        self.cmd("lxc-destroy", name)?
            .arg("-s")
            .timeout(Duration::from_secs(600))
            .run()
            .await
            .map(|_| ())
    }

    /// `lxc-info -H`: state, pid, addresses, memory.
    pub async fn info(&self, name: &str) -> Result<Info, CommandError> {
        let text = self.cmd("lxc-info", name)?.arg("-H").run_text().await?;
        let mut info = parse_info(&text);
        if info.name.is_empty() {
            info.name = name.to_string();
        }
        Ok(info)
    }

    /// `lxc-ls --fancy`: every container of the lxcpath.
    pub async fn list(&self) -> Result<Vec<LsRow>, CommandError> {
        if !self.path.is_dir() {
            return Ok(Vec::new());
        }
        let text = Cmd::new("lxc-ls")
            .arg("-P")
            .arg(&self.path)
            .args(["--fancy", "-F", LS_COLUMNS])
            .run_text()
            .await?;
        Ok(parse_ls_fancy(&text))
    }

    /// `lxc-snapshot`: a new snapshot (`snapN`) of a stopped container; returns its name.
    pub async fn snapshot_create(&self, name: &str) -> Result<String, CommandError> {
        let before = self.snapshots(name).await?;
        self.cmd("lxc-snapshot", name)?
            .timeout(Duration::from_secs(600))
            .run()
            .await?;
        let after = self.snapshots(name).await?;
        after
            .into_iter()
            .map(|s| s.name)
            .find(|n| !before.iter().any(|b| &b.name == n))
            .ok_or_else(|| CommandError::Parse {
                program: "lxc-snapshot".into(),
                message: "no new snapshot listed after lxc-snapshot".into(),
            })
    }

    /// `lxc-snapshot -L`.
    pub async fn snapshots(&self, name: &str) -> Result<Vec<SnapshotRow>, CommandError> {
        let text = self.cmd("lxc-snapshot", name)?.arg("-L").run_text().await?;
        Ok(parse_snapshots(&text))
    }

    /// `lxc-snapshot -d SNAP`.
    pub async fn snapshot_delete(&self, name: &str, snap: &str) -> Result<(), CommandError> {
        validate_name("snapshot", snap)?;
        self.cmd("lxc-snapshot", name)?
            .arg("-d")
            .arg(snap)
            .run()
            .await
            .map(|_| ())
    }

    /// The root filesystem of snapshot `snap` (`<lxcpath>/<name>/snaps/<snap>/rootfs`).
    pub fn snapshot_rootfs(&self, name: &str, snap: &str) -> PathBuf {
        self.dir(name).join("snaps").join(snap).join("rootfs")
    }

    /// `lxc-copy -N NEW`: a full copy (rootfs in the lxcpath) of a stopped container.
    pub async fn copy(&self, name: &str, new: &str) -> Result<(), CommandError> {
        validate_name("container", new)?;
        self.cmd("lxc-copy", name)?
            .arg("-N")
            .arg(new)
            .timeout(Duration::from_secs(1800))
            .run()
            .await
            .map(|_| ())
    }

    /// `lxc-attach` on a pseudo-terminal: `command` (argv) inside the running container, or
    /// its default shell when empty.
    pub fn attach_pty(
        &self,
        name: &str,
        command: &[String],
        cols: u16,
        rows: u16,
    ) -> Result<PtyChild, CommandError> {
        // The terminal child's environment is only what is set here (`spawn_pty` clears it);
        // lxc-attach hands it on to the container's shell.
        let mut c = self
            .cmd("lxc-attach", name)?
            .env("TERM", "xterm-256color")
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", "/root");
        if !command.is_empty() {
            c = c.arg("--").args(command);
        }
        c.spawn_pty(cols, rows)
    }
}

/// Copies `src/` over `dst/` with `rsync -aHAX --numeric-ids --delete` (a snapshot's rootfs
/// back in place: `lxc-snapshot -r` would re-create the container in the lxcpath and move a
/// rootfs off its pool dataset).
pub async fn rsync_replace(src: &Path, dst: &Path) -> Result<(), CommandError> {
    let slash = |p: &Path| format!("{}/", p.display());
    crate::command::validate_path_arg("source", src)?;
    crate::command::validate_path_arg("destination", dst)?;
    Cmd::new("rsync")
        .args(["-aHAX", "--numeric-ids", "--delete", "--"])
        .arg(slash(src))
        .arg(slash(dst))
        .timeout(Duration::from_secs(3600))
        .run()
        .await
        .map(|_| ())
}

/// Writes a backup: `config` from `dir` and the root filesystem from `rootfs` as `rootfs/`,
/// into `out` (a zstd-compressed tar; ownership and modes kept by number).
pub async fn backup_tar(dir: &Path, rootfs: &Path, out: &Path) -> Result<(), CommandError> {
    for p in [dir, rootfs, out] {
        crate::command::validate_path_arg("path", p)?;
    }
    Cmd::new("tar")
        .args([
            "--create",
            "--zstd",
            "--numeric-owner",
            "--xattrs",
            "--acls",
            "--file",
        ])
        .arg(out)
        .arg("--directory")
        .arg(dir)
        .arg("config")
        // `.` of the rootfs becomes `rootfs`; symlink targets are left alone (S).
        .args(["--transform", r"s,^\.,rootfs,S", "--directory"])
        .arg(rootfs)
        .arg(".")
        .timeout(Duration::from_secs(6 * 3600))
        .run()
        .await
        .map(|_| ())
}

/// Unpacks a backup written by [`backup_tar`]: `config` into `dir`, `rootfs/` into `rootfs`.
pub async fn restore_tar(archive: &Path, dir: &Path, rootfs: &Path) -> Result<(), CommandError> {
    for p in [archive, dir, rootfs] {
        crate::command::validate_path_arg("path", p)?;
    }
    let base = || {
        Cmd::new("tar")
            .args([
                "--extract",
                "--zstd",
                "--numeric-owner",
                "--xattrs",
                "--acls",
            ])
            .args(["--same-permissions", "--file"])
            .arg(archive)
            .timeout(Duration::from_secs(6 * 3600))
    };
    base()
        .arg("--directory")
        .arg(dir)
        .arg("config")
        .run()
        .await?;
    base()
        .args(["--strip-components", "1", "--directory"])
        .arg(rootfs)
        .arg("rootfs")
        .run()
        .await
        .map(|_| ())
}

/// Lists the members of a backup (to check it is one before anything is made).
pub async fn backup_members(archive: &Path, limit: usize) -> Result<Vec<String>, CommandError> {
    crate::command::validate_path_arg("path", archive)?;
    let text = Cmd::new("tar")
        .args(["--list", "--zstd", "--file"])
        .arg(archive)
        .timeout(Duration::from_secs(3600))
        .run_text()
        .await?;
    Ok(text.lines().take(limit).map(str::to_string).collect())
}

/// Makes the meta archive the `local` template wants: a `.tar.xz` holding `config` with
/// `config_text` (the distribution part of the container's config).
pub async fn make_local_meta(work: &Path, config_text: &str) -> Result<PathBuf, CommandError> {
    let dir = work.join("meta");
    std::fs::create_dir_all(&dir).map_err(|e| io_error("mkdir", e))?;
    std::fs::write(dir.join("config"), config_text).map_err(|e| io_error("write", e))?;
    let out = work.join("meta.tar.xz");
    Cmd::new("tar")
        .args(["--create", "--xz", "--file"])
        .arg(&out)
        .arg("--directory")
        .arg(&dir)
        .arg("config")
        .run()
        .await?;
    Ok(out)
}

fn io_error(what: &str, e: std::io::Error) -> CommandError {
    CommandError::Io {
        program: what.to_string(),
        source: e,
    }
}

/// The marker line above hostplane's block in a container's config.
pub const MANAGED_MARKER: &str = "# --- hostplane: managed through the API below this line ---";

/// Keys hostplane sets; removed anywhere in the file before its block is written again.
const MANAGED_KEYS: &[&str] = &[
    "lxc.start.auto",
    "lxc.start.order",
    "lxc.start.delay",
    "lxc.cgroup.memory.limit_in_bytes",
    "lxc.cgroup2.memory.max",
    "lxc.cgroup.cpu.cfs_quota_us",
    "lxc.cgroup.cpu.cfs_period_us",
    "lxc.cgroup2.cpu.max",
];

/// A bind mount hostplane manages (`lxc.mount.entry` in its block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Absolute host path.
    pub source: String,
    /// Path inside the container, relative to its root.
    pub target: String,
    pub read_only: bool,
}

impl MountEntry {
    fn line(&self) -> String {
        format!(
            "{} {} none bind,{}create=dir 0 0",
            self.source,
            self.target,
            if self.read_only { "ro," } else { "" }
        )
    }

    fn parse(v: &str) -> Option<MountEntry> {
        let f: Vec<&str> = v.split_whitespace().collect();
        if f.len() < 4 || f[2] != "none" {
            return None;
        }
        let opts: Vec<&str> = f[3].split(',').collect();
        opts.contains(&"bind").then(|| MountEntry {
            source: f[0].to_string(),
            target: f[1].to_string(),
            read_only: opts.contains(&"ro"),
        })
    }
}

/// hostplane's settings of one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub autostart: bool,
    pub start_order: Option<i64>,
    pub start_delay_secs: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// CPUs (fractional): the CFS quota over a 100 ms period.
    pub cpus: Option<f64>,
    pub mounts: Vec<MountEntry>,
}

/// Which cgroup keys limits use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroup {
    V1,
    V2,
}

impl Cgroup {
    /// v1 when the memory controller is mounted on its own (`/sys/fs/cgroup/memory`: a v1 or
    /// hybrid host), else v2.
    pub fn detect() -> Cgroup {
        if Path::new("/sys/fs/cgroup/memory").is_dir() {
            Cgroup::V1
        } else {
            Cgroup::V2
        }
    }
}

const CPU_PERIOD_US: u64 = 100_000;

/// A container's `config` file: the lines as they are, and hostplane's view of them.
#[derive(Debug, Clone)]
pub struct Config {
    lines: Vec<String>,
}

fn key_value(line: &str) -> Option<(&str, &str)> {
    let t = line.trim();
    if t.starts_with('#') {
        return None;
    }
    let (k, v) = t.split_once('=')?;
    Some((k.trim(), v.trim()))
}

impl Config {
    pub fn parse(text: &str) -> Config {
        Config {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    pub fn read(path: &Path) -> std::io::Result<Config> {
        Ok(Config::parse(&std::fs::read_to_string(path)?))
    }

    /// Every value of `key`, in order.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| key_value(l))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values(key).last().copied()
    }

    /// Replaces every `key` line with one `key = value` where the first was (appended when
    /// there was none).
    pub fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key} = {value}");
        let mut done = false;
        self.lines.retain_mut(|l| {
            if key_value(l).is_some_and(|(k, _)| k == key) {
                if done {
                    return false;
                }
                *l = line.clone();
                done = true;
            }
            true
        });
        if !done {
            let at = self
                .lines
                .iter()
                .position(|l| l == MANAGED_MARKER)
                .unwrap_or(self.lines.len());
            self.lines.insert(at, line);
        }
    }

    /// Rewrites every value naming a path under `from` to the same path under `to` (a
    /// restored container's own directory).
    pub fn replace_prefix(&mut self, from: &str, to: &str) {
        let (from, to) = (format!("{from}/"), format!("{to}/"));
        for l in &mut self.lines {
            if let Some((k, v)) = key_value(l)
                && v.contains(&from)
            {
                *l = format!("{k} = {}", v.replace(&from, &to));
            }
        }
    }

    /// The rootfs directory (`lxc.rootfs.path`, `dir:` taken off).
    pub fn rootfs(&self) -> Option<PathBuf> {
        let v = self.get("lxc.rootfs.path")?;
        let p = v.strip_prefix("dir:").unwrap_or(v);
        Path::new(p).is_absolute().then(|| PathBuf::from(p))
    }

    /// hostplane's settings as the file has them.
    pub fn settings(&self) -> Settings {
        let num = |k: &str| self.get(k).and_then(|v| v.parse::<i64>().ok());
        let memory_bytes = self
            .get("lxc.cgroup.memory.limit_in_bytes")
            .or_else(|| self.get("lxc.cgroup2.memory.max"))
            .and_then(parse_bytes);
        let cpus = match (
            num("lxc.cgroup.cpu.cfs_quota_us"),
            num("lxc.cgroup.cpu.cfs_period_us"),
        ) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            _ => self.get("lxc.cgroup2.cpu.max").and_then(|v| {
                let (q, p) = v.split_once(' ')?;
                let (q, p) = (q.parse::<f64>().ok()?, p.parse::<f64>().ok()?);
                (p > 0.0).then(|| q / p)
            }),
        };
        let marker = self.lines.iter().position(|l| l == MANAGED_MARKER);
        let mounts = marker
            .map(|m| {
                self.lines[m..]
                    .iter()
                    .filter_map(|l| key_value(l))
                    .filter(|(k, _)| *k == "lxc.mount.entry")
                    .filter_map(|(_, v)| MountEntry::parse(v))
                    .collect()
            })
            .unwrap_or_default();
        Settings {
            autostart: num("lxc.start.auto") == Some(1),
            start_order: num("lxc.start.order"),
            start_delay_secs: num("lxc.start.delay").and_then(|v| u32::try_from(v).ok()),
            memory_bytes,
            cpus,
            mounts,
        }
    }

    /// Writes `s` as hostplane's block (the managed keys removed elsewhere first).
    pub fn apply(&mut self, s: &Settings, cg: Cgroup) {
        if let Some(m) = self.lines.iter().position(|l| l == MANAGED_MARKER) {
            self.lines.truncate(m);
        }
        self.lines
            .retain(|l| !key_value(l).is_some_and(|(k, _)| MANAGED_KEYS.contains(&k)));
        while self.lines.last().is_some_and(|l| l.trim().is_empty()) {
            self.lines.pop();
        }
        self.lines.push(String::new());
        self.lines.push(MANAGED_MARKER.to_string());
        let mut kv = |k: &str, v: String| self.lines.push(format!("{k} = {v}"));
        kv("lxc.start.auto", if s.autostart { "1" } else { "0" }.into());
        if let Some(o) = s.start_order {
            kv("lxc.start.order", o.to_string());
        }
        if let Some(d) = s.start_delay_secs {
            kv("lxc.start.delay", d.to_string());
        }
        if let Some(m) = s.memory_bytes {
            match cg {
                Cgroup::V1 => kv("lxc.cgroup.memory.limit_in_bytes", m.to_string()),
                Cgroup::V2 => kv("lxc.cgroup2.memory.max", m.to_string()),
            }
        }
        if let Some(c) = s.cpus {
            let quota = ((c * CPU_PERIOD_US as f64).round() as u64).max(1000);
            match cg {
                Cgroup::V1 => {
                    kv("lxc.cgroup.cpu.cfs_quota_us", quota.to_string());
                    kv("lxc.cgroup.cpu.cfs_period_us", CPU_PERIOD_US.to_string());
                }
                Cgroup::V2 => kv("lxc.cgroup2.cpu.max", format!("{quota} {CPU_PERIOD_US}")),
            }
        }
        for m in &s.mounts {
            kv("lxc.mount.entry", m.line());
        }
    }

    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    /// Writes the file atomically (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::fsutil::write_atomic(path, self.render().as_bytes(), 0o640)
    }
}

/// `123`, `64M`, `1G` (LXC and cgroup v1 accept suffixes; `max` is no limit).
fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mul) = match v.chars().last()? {
        'K' | 'k' => (&v[..v.len() - 1], 1u64 << 10),
        'M' | 'm' => (&v[..v.len() - 1], 1 << 20),
        'G' | 'g' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO_RUNNING: &str = include_str!("../tests/fixtures/lxc/info-running.txt");
    const INFO_STOPPED: &str = include_str!("../tests/fixtures/lxc/info-stopped.txt");
    const LS_FANCY: &str = include_str!("../tests/fixtures/lxc/ls-fancy.txt");
    const SNAPSHOTS: &str = include_str!("../tests/fixtures/lxc/snapshot-list.txt");
    const BUSYBOX_CONFIG: &str = include_str!("../tests/fixtures/lxc/busybox-config.txt");

    #[test]
    fn info_from_real_output() {
        let i = parse_info(INFO_RUNNING);
        assert_eq!(i.name, "bb1");
        assert_eq!(i.state, State::Running);
        assert_eq!(i.pid, Some(19846));
        assert_eq!(i.memory_bytes, Some(630784));
        assert_eq!(i.cpu_ns, Some(6056680));
        assert!(i.ips.is_empty());
        let s = parse_info(INFO_STOPPED);
        assert_eq!(
            (s.state, s.pid, s.memory_bytes),
            (State::Stopped, None, None)
        );
        let with_ip = parse_info("Name: a\nState: RUNNING\nIP:  10.0.3.5\nIP:  fd00::5\n");
        assert_eq!(with_ip.ips, vec!["10.0.3.5", "fd00::5"]);
    }

    #[test]
    fn ls_fancy_from_real_output() {
        let rows = parse_ls_fancy(LS_FANCY);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].name, "bb1");
        assert_eq!(rows[0].state, State::Running);
        assert!(!rows[0].autostart);
        assert!(rows[0].ipv4.is_empty());
        assert_eq!(rows[1].name, "bb2");
        assert_eq!(rows[1].state, State::Stopped);
        assert!(rows[1].autostart);
        assert!(rows[1].ipv4.is_empty() && rows[1].ipv6.is_empty());
        assert_eq!(rows[2].state, State::Frozen);
        assert!(parse_ls_fancy("").is_empty());
        // Several addresses in one cell (`a, b`), in lxc-ls's column layout.
        let ips = "NAME STATE   AUTOSTART IPV4               IPV6    \n\
                   web  RUNNING 1         10.0.3.5, 10.0.3.6 fd00::5 \n";
        let r = parse_ls_fancy(ips);
        assert_eq!(r[0].ipv4, vec!["10.0.3.5", "10.0.3.6"]);
        assert_eq!(r[0].ipv6, vec!["fd00::5"]);
    }

    #[test]
    fn snapshots_from_real_output() {
        let s = parse_snapshots(SNAPSHOTS);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "snap0");
        assert_eq!(s[0].created, "2026:12:07 00:42:36");
        assert_eq!(s[1].name, "snap1");
        assert!(parse_snapshots("No snapshots\n").is_empty());
    }

    #[test]
    fn config_settings_round_trip_in_a_marked_block() {
        let mut c = Config::parse(BUSYBOX_CONFIG);
        assert_eq!(
            c.rootfs().unwrap(),
            PathBuf::from("/tmp/hp-test-lxcprobe-ESie/lp/bb1/rootfs")
        );
        let s0 = c.settings();
        assert!(!s0.autostart && s0.mounts.is_empty() && s0.memory_bytes.is_none());
        let s = Settings {
            autostart: true,
            start_order: Some(3),
            start_delay_secs: Some(5),
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            mounts: vec![MountEntry {
                source: "/srv/pools/tank/data".into(),
                target: "mnt/data".into(),
                read_only: true,
            }],
        };
        c.apply(&s, Cgroup::V1);
        assert_eq!(c.settings(), s);
        let text = c.render();
        assert!(
            text.contains("lxc.cgroup.cpu.cfs_quota_us = 50000"),
            "{text}"
        );
        assert!(text.contains(
            "lxc.mount.entry = /srv/pools/tank/data mnt/data none bind,ro,create=dir 0 0"
        ));
        // The template's own mounts stay, outside the block, and are not hostplane's.
        assert!(text.contains("lxc.mount.entry = /lib lib none ro,bind 0 0"));
        // Applying again replaces the block (no duplicates); v2 keys on a v2 host.
        let mut s2 = s.clone();
        s2.mounts.clear();
        s2.autostart = false;
        c.apply(&s2, Cgroup::V2);
        let t2 = c.render();
        assert_eq!(t2.matches(MANAGED_MARKER).count(), 1);
        assert!(!t2.contains("cfs_quota_us") && t2.contains("lxc.cgroup2.cpu.max = 50000 100000"));
        assert_eq!(c.settings(), s2);
        c.set("lxc.uts.name", "\"other\"");
        assert_eq!(c.get("lxc.uts.name"), Some("\"other\""));
        assert_eq!(c.values("lxc.uts.name").len(), 1);
    }

    #[test]
    fn bytes_with_suffixes() {
        assert_eq!(parse_bytes("64M"), Some(64 << 20));
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("max"), None);
    }
}
