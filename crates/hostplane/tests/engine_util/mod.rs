//! Real container engines for tests: a private dockerd or podman service on its own socket in
//! a temp dir (no network: `--bridge=none`, containers on network `none`), a busybox rootfs
//! tarball to import as the test image (nothing from the internet), and a daemon configured
//! for them. Guards stop the engines and remove what they made, also on panic. Used by
//! `containers*.rs` and the other tests that need an engine (`mod engine_util;`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Daemon, Opts};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Docker,
    Podman,
}

pub fn need(tool: &str) -> PathBuf {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} is missing: scripts/test installs it (apt: docker.io, podman, runc, busybox-static)"
    );
}

/// One HTTP/1.1 request over a unix socket (the guard's own client: no hostplane involved).
pub fn raw(sock: &Path, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string())?;
    Some((status, body))
}

/// A private dockerd or podman service; `Drop` removes its containers, stops it and
/// everything it started, and unmounts what is mounted below its dir.
pub struct Engine {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    child: Option<Child>,
}

impl Engine {
    pub fn start(kind: Kind) -> Engine {
        Engine::start_in(kind, None)
    }

    /// [`Engine::start`] inside network namespace `netns` (`nsenter --net=/run/netns/NS`, which
    /// execs the engine itself; not `ip netns exec`, whose fresh /sys hides the cgroups): the
    /// networks it makes and the links it adds stay in there.
    pub fn start_in(kind: Kind, netns: Option<&str>) -> Engine {
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let sock = d.join("engine.sock");
        let log = std::fs::File::create(d.join("engine.log")).unwrap();
        let mut cmd = match kind {
            Kind::Docker => {
                let mut c = in_netns(netns, need("dockerd"));
                c.arg("--data-root")
                    .arg(d.join("data"))
                    .arg("--exec-root")
                    .arg(d.join("exec"))
                    .arg("--pidfile")
                    .arg(d.join("dockerd.pid"))
                    .arg("-H")
                    .arg(format!("unix://{}", sock.display()))
                    // The host's network stays untouched: no bridge, no iptables rules.
                    .args([
                        "--iptables=false",
                        "--ip6tables=false",
                        "--bridge=none",
                        "--ip-masq=false",
                        "--userland-proxy=false",
                    ]);
                c
            }
            Kind::Podman => {
                need("runc");
                // host-vms-containers.md: runc (crun fails on this cgroup layout), ulimits
                // below the hard limits, cgroupfs and the file events logger (no systemd);
                // network none by default (no CNI bridge on the host).
                let conf = d.join("containers.conf");
                // Networks hostplane creates are written below the temp dir, never to
                // /etc/cni/net.d.
                std::fs::write(
                    &conf,
                    format!(
                        "[containers]\ndefault_ulimits = [\"nofile=16384:16384\", \"nproc=8192:8192\"]\n\
                         netns = \"none\"\n\
                         [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                         [network]\nnetwork_config_dir = \"{}\"\n",
                        d.join("cni").display()
                    ),
                )
                .unwrap();
                // podman 4.3's image load writes `api_load.tar*` to $TMPDIR (else /var/tmp)
                // and leaves it there: keep it in the engine's own dir, removed with it.
                std::fs::create_dir_all(d.join("tmp")).unwrap();
                let mut c = in_netns(netns, need("podman"));
                c.env("CONTAINERS_CONF", &conf)
                    .env("TMPDIR", d.join("tmp"))
                    .arg("--root")
                    .arg(d.join("store"))
                    .arg("--runroot")
                    .arg(d.join("run"))
                    .arg("--tmpdir")
                    .arg(d.join("tmp"))
                    .args(["system", "service", "--time=0"])
                    .arg(format!("unix://{}", sock.display()));
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the engine");
        let e = Engine {
            dir,
            sock,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while raw(&e.sock, "GET", "/_ping").map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not answer: {}",
                std::fs::read_to_string(e.dir.path().join("engine.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        e
    }

    pub fn socket_url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Stops the engine: its containers are removed first (podman's outlive the service).
    pub fn stop(&mut self) {
        if let Some((200, body)) = raw(&self.sock, "GET", "/containers/json?all=1")
            && let Ok(list) = serde_json::from_str::<Vec<Value>>(&body)
        {
            for c in list {
                if let Some(id) = c["Id"].as_str() {
                    raw(
                        &self.sock,
                        "DELETE",
                        &format!("/containers/{id}?force=1&v=1"),
                    );
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            for p in common::descendants(pid) {
                // SAFETY: processes this engine started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for p in common::naming_dir(self.dir.path()) {
            // SAFETY: processes of this engine (containerd, shims, conmon) by their arguments.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        self.unmount_all();
    }

    /// Unmounts everything below the engine's dir (overlay layers, shm), deepest first.
    fn unmount_all(&self) {
        let dir = self.dir.path().to_string_lossy().into_owned();
        for _ in 0..3 {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut points: Vec<String> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&format!("{dir}/")))
                .map(str::to_string)
                .collect();
            if points.is_empty() {
                return;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(&p).output();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `program`, or `nsenter --net=/run/netns/NS program` (the same process: nsenter execs it).
fn in_netns(netns: Option<&str>, program: PathBuf) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new(need("nsenter"));
            c.arg(format!("--net=/run/netns/{ns}")).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A root filesystem with the static busybox and a few applets, as a tar.
pub fn busybox_rootfs() -> Vec<u8> {
    let bb = std::fs::read(need("busybox")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "bin/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(bb.len() as u64);
    b.append_data(&mut h, "bin/busybox", &bb[..]).unwrap();
    for applet in [
        "sh", "echo", "cat", "sleep", "ls", "env", "true", "false", "stty", "mkdir",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    for d in ["tmp", "data", "proc", "sys", "dev", "etc"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())
            .unwrap();
    }
    b.into_inner().unwrap()
}

pub fn daemon_for(engines: &[(&str, String)], timeout_secs: u64) -> Daemon {
    let mut cfg = format!("[containers]\ntimeout_secs = {timeout_secs}\n");
    for (name, socket) in engines {
        cfg.push_str(&format!(
            "[[containers.engines]]\nname = \"{name}\"\nsocket = \"{socket}\"\n"
        ));
    }
    Daemon::start_with(Opts {
        config: Some(cfg),
        ..Default::default()
    })
}

/// The `docker` CLI pointed at the engine's socket.
pub fn docker_cli(sock: &str, args: &[&str]) -> String {
    let out = Command::new(need("docker"))
        .env("DOCKER_HOST", sock)
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("hp-test-docker-cli"),
        )
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
