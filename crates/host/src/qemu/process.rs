//! The QEMU process: spawned once, long-lived, and independent of the daemon.
//!
//! QEMU must outlive the request that started it and even the daemon (a daemon restart must
//! not touch running guests). So it is a supervised child of the command runner
//! ([`Cmd::spawn`]) that is left running when its handle is dropped, in its own process group
//! (a signal to the daemon's group does not reach it), with stdin from `/dev/null` and
//! stdout/stderr appended to a log file (a pipe would break when the daemon exits). The caller
//! reaps the child while it lives; after a daemon restart the process is found again by its
//! `-pidfile`, checked against its command line (the QMP socket path must appear in it, so a
//! recycled pid is never taken for our QEMU).

use std::path::{Path, PathBuf};

use crate::command::{ChildOutput, Cmd, CommandError, OnDrop, Supervised};

/// The QEMU binary for x86-64 guests.
pub const QEMU: &str = "qemu-system-x86_64";

/// Starts `qemu-system-x86_64 argv...` detached from the daemon's process group, its output
/// appended to `log`.
pub fn spawn(argv: &[String], log: &Path) -> Result<Supervised, CommandError> {
    tracing::debug!(args = ?argv, "spawning QEMU");
    Cmd::new(QEMU)
        .args(argv)
        .spawn(ChildOutput::AppendTo(log.to_path_buf()), OnDrop::Leave)
}

/// The last `max` bytes of QEMU's log, for error messages.
pub fn log_tail(log: &Path, max: usize) -> String {
    let data = std::fs::read(log).unwrap_or_default();
    let start = data.len().saturating_sub(max);
    String::from_utf8_lossy(&data[start..]).trim().to_string()
}

/// The pid in a `-pidfile`.
pub fn read_pidfile(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process (not a zombie) whose command line contains `needle`.
pub fn is_our_process(pid: u32, needle: &Path) -> bool {
    if !is_alive(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = needle.as_os_str().as_encoded_bytes();
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg.windows(needle.len()).any(|w| w == needle))
}

/// Whether `pid` exists and has not exited (zombies count as exited).
pub fn is_alive(pid: u32) -> bool {
    match proc_stat(pid) {
        Some(s) => !matches!(s.state, 'Z' | 'X'),
        None => false,
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; the pid was checked to be ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Fields of `/proc/<pid>/stat` hostplane uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    pub state: char,
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident set in bytes.
    pub rss_bytes: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Parses `/proc/<pid>/stat` (the command name may contain spaces and parentheses: the fields
/// start after the last `)`).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15, rss 24 (1-based over the line).
    let state = f.first()?.chars().next()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss: u64 = f.get(21)?.parse().ok()?;
    Some(ProcStat {
        state,
        cpu_seconds: (utime + stime) / clock_ticks(),
        rss_bytes: rss * page_size(),
    })
}

/// The files of one VM's runtime directory.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub qmp: PathBuf,
    pub serial: PathBuf,
    /// The guest agent's channel.
    pub qga: PathBuf,
    pub vnc: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

impl RunFiles {
    pub fn new(dir: PathBuf) -> RunFiles {
        RunFiles {
            qmp: dir.join("qmp.sock"),
            serial: dir.join("serial.sock"),
            qga: dir.join("qga.sock"),
            vnc: dir.join("vnc.sock"),
            pidfile: dir.join("qemu.pid"),
            log: dir.join("qemu.log"),
            dir,
        }
    }

    /// The live QEMU of this directory, if any (pidfile + command line check).
    pub fn running_pid(&self) -> Option<u32> {
        let pid = read_pidfile(&self.pidfile)?;
        is_our_process(pid, &self.qmp).then_some(pid)
    }

    /// Removes sockets and the pidfile a dead QEMU left.
    pub fn clear_stale(&self) {
        for p in [&self.qmp, &self.serial, &self.qga, &self.vnc, &self.pidfile] {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_name() {
        // Real line of a QEMU process, name replaced by one with spaces and parentheses.
        let line = "7704 (qemu (x) y) S 1 7700 7700 0 -1 4194560 12065 0 3 0 523 87 0 0 20 0 4 0 \
                    181350 1296416768 21733 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 \
                    17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert!((s.cpu_seconds - 610.0 / clock_ticks()).abs() < 1e-9);
        assert_eq!(s.rss_bytes, 21733 * page_size());
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn our_own_process_is_alive_and_found_by_cmdline() {
        let me = std::process::id();
        assert!(is_alive(me));
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap();
        assert!(is_our_process(me, Path::new(name)));
        assert!(!is_our_process(me, Path::new("/no/such/qmp.sock")));
        assert!(!is_alive(u32::MAX - 1));
        assert!(!signal(1, 0), "never signals init");
    }
}
