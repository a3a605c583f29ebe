//! The services area against a real systemd: a Debian rootfs (built once with debootstrap and
//! cached in /var/tmp) booted with `systemd-nspawn` on a throw-away overlay, its system bus
//! bound out to a temp dir, and the daemon pointed at that bus (`[services] dbus_address`).
//! Every change made through the API is checked from inside the container with `systemctl`.
//! The container is powered off and every mount and directory removed when the guard drops,
//! also on panic.
//!
//! Needs root, `systemd-nspawn` (systemd-container), `debootstrap` and `dbus-daemon`
//! (scripts/test installs them) and, for the first run on a machine, a Debian mirror
//! (`HOSTPLANE_DEBIAN_MIRROR`, default deb.debian.org).

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ROOTFS: &str = "/var/tmp/hostplane-nspawn-bookworm";
const MARKER: &str = ".hostplane-rootfs-complete";

fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
    assert!(found, "{tool} is missing: scripts/test installs it (apt)");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cached rootfs, built on first use (minbase + systemd + dbus, ~75 s, ~240 MB).
fn ensure_rootfs() -> PathBuf {
    let root = PathBuf::from(ROOTFS);
    if root.join(MARKER).exists() {
        return root;
    }
    need("debootstrap");
    // One builder at a time (other test processes may want it too).
    let lock = std::fs::File::create(format!("{ROOTFS}.lock")).unwrap();
    // SAFETY: flock on a file we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if root.join(MARKER).exists() {
        return root;
    }
    let tmp = PathBuf::from(format!("{ROOTFS}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mirror = std::env::var("HOSTPLANE_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            "bookworm",
        ])
        .arg(&tmp)
        .arg(&mirror));
    std::fs::write(
        tmp.join(MARKER),
        "debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&tmp, &root).unwrap();
    root
}

/// A booted systemd container; powered off and cleaned up on drop.
struct Container {
    dir: tempfile::TempDir,
    nspawn: Option<Child>,
    leader: u32,
    mounts: Vec<PathBuf>,
}

impl Container {
    fn boot(units: &[(&str, &str)]) -> Container {
        need("systemd-nspawn");
        let rootfs = ensure_rootfs();
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let mut c = Container {
            dir,
            nspawn: None,
            leader: 0,
            mounts: Vec::new(),
        };
        let t = c.dir.path().join("t");
        let merged = c.dir.path().join("merged");
        let dbus = c.dir.path().join("dbus");
        for d in [&t, &merged, &dbus] {
            std::fs::create_dir(d).unwrap();
        }
        // upper/work on a tmpfs: an overlay cannot have its upper dir on another overlay.
        run(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&t));
        c.mounts.push(t.clone());
        std::fs::create_dir(t.join("upper")).unwrap();
        std::fs::create_dir(t.join("work")).unwrap();
        run(Command::new("mount")
            .args(["-t", "overlay", "hp-ovl", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                rootfs.display(),
                t.join("upper").display(),
                t.join("work").display()
            ))
            .arg(&merged));
        c.mounts.push(merged.clone());
        for (name, body) in units {
            std::fs::write(merged.join("etc/systemd/system").join(name), body).unwrap();
        }
        let log = std::fs::File::create(c.dir.path().join("nspawn.log")).unwrap();
        let machine = format!("hp-svc-{}", std::process::id());
        let child = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&merged)
            .args([
                "-M",
                &machine,
                "--private-network",
                "--register=no",
                "--keep-unit",
            ])
            .args(["--console=passive"])
            .arg(format!("--bind={}:/run/dbus", dbus.display()))
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("systemd-nspawn");
        let pid = child.id();
        c.nspawn = Some(child);
        // Ready when the container's PID 1 answers on its bus and the boot is over.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = Command::new("busctl")
                .arg(format!("--address={}", c.address()))
                .args([
                    "get-property",
                    "org.freedesktop.systemd1",
                    "/org/freedesktop/systemd1",
                    "org.freedesktop.systemd1.Manager",
                    "SystemState",
                ])
                .output()
                .expect("busctl");
            let s = String::from_utf8_lossy(&out.stdout);
            if s.contains("running") || s.contains("degraded") {
                break;
            }
            if let Some(Some(status)) = c.nspawn.as_mut().map(|ch| ch.try_wait().unwrap()) {
                panic!(
                    "systemd-nspawn exited ({status}): {}",
                    std::fs::read_to_string(c.dir.path().join("nspawn.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the container did not boot: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        c.leader = children.split_whitespace().next().unwrap().parse().unwrap();
        c
    }

    fn address(&self) -> String {
        format!(
            "unix:path={}",
            self.dir.path().join("dbus/system_bus_socket").display()
        )
    }

    /// `systemctl ARGS` inside the container; stdout, trimmed (non-zero exits are answers
    /// here: `is-active` of a stopped unit exits 3).
    fn systemctl(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "systemctl"])
            .args(args)
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            // SIGTERM: nspawn asks the container's systemd to power off cleanly.
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: the process group we created for it.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
            }
        }
        for m in self.mounts.iter().rev() {
            let ok = Command::new("umount")
                .arg(m)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
    }
}

const TOKEN: &str = "services-admin-token";

fn hmac_hash(method: &str, path: &str) -> String {
    let key = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(format!("{method}{path}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

async fn action(d: &Daemon, unit: &str, what: &str) -> Value {
    let r = d
        .post(&format!("/api/v1/services/{unit}/{what}"), json!({}))
        .await;
    assert_eq!(
        r.status(),
        202,
        "{what} {unit}: {}",
        r.text().await.unwrap()
    );
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    d.wait_job(&loc).await
}

const DEMO: &str = "[Unit]\nDescription=hostplane demo service\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";
const BROKEN: &str =
    "[Unit]\nDescription=hostplane broken service\n[Service]\nType=oneshot\nExecStart=/bin/false\n";

#[tokio::test]
async fn services_are_driven_on_a_real_systemd_in_nspawn() {
    let t0 = Instant::now();
    let c = Container::boot(&[("hp-demo.service", DEMO), ("hp-broken.service", BROKEN)]);
    eprintln!("container booted in {:?}", t0.elapsed());
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[services]\ndbus_address = \"{}\"\nchange_units = true\n[admin]\nservices = [\"hp-demo\", \"dbus\", \"no-such-unit\"]\n",
            c.address()
        )),
        ..Opts::default()
    });
    let form = reqwest::multipart::Form::new().text("newtoken", TOKEN);
    let r = d
        .client
        .post(d.url("/api/v1/admin/setup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The list: loaded units and installed unit files.
    let r = d.get("/api/v1/services").await;
    assert_eq!(r.status(), 200);
    let total: usize = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), total);
    let find = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    let dbus = find("dbus.service");
    assert_eq!(dbus["active_state"], "active");
    assert_eq!(dbus["sub_state"], "running");
    assert_eq!(dbus["href"], "/api/v1/services/dbus.service");
    let demo = find("hp-demo.service");
    assert_eq!(demo["active_state"], "inactive");
    assert_eq!(demo["unit_file_state"], "disabled");
    let filtered: Value = d
        .get_json("/api/v1/services?filter=name:hp-demo.service&fields=name,active_state")
        .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1, "{filtered}");

    // One unit; a missing one is 404.
    let one = d.get_json("/api/v1/services/hp-demo").await;
    assert_eq!(one["name"], "hp-demo.service");
    assert_eq!(one["description"], "hostplane demo service");
    assert_problem(
        d.get("/api/v1/services/no-such-unit").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        d.post("/api/v1/services/no-such-unit/start", json!({}))
            .await,
        404,
        "not_found",
    )
    .await;

    // enable → the symlink exists inside.
    let r = d.post("/api/v1/services/hp-demo/enable", json!({})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["unit_file_state"], "enabled");
    assert_eq!(c.systemctl(&["is-enabled", "hp-demo.service"]), "enabled");

    // start → a job that waits for systemd's result.
    let job = action(&d, "hp-demo", "start").await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["result"], "done");
    assert_eq!(job["result"]["service"]["active_state"], "active");
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "active");
    let pid1 = d.get_json("/api/v1/services/hp-demo.service").await["main_pid"]
        .as_u64()
        .expect("a main pid while running");

    // The Jidoteki view, in both documented forms.
    for q in [
        format!("token={TOKEN}"),
        format!("hash={}", hmac_hash("GET", "/api/v1/admin/services")),
    ] {
        let r = d
            .client
            .get(d.url(&format!("/api/v1/admin/services?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"services": [
                {"hp-demo": "running"}, {"dbus": "running"}, {"no-such-unit": "not running"}
            ]})
        );
    }

    // restart → a new main process.
    let job = action(&d, "hp-demo.service", "restart").await;
    assert_eq!(job["status"], "success", "{job}");
    let pid2 = job["result"]["service"]["main_pid"].as_u64().unwrap();
    assert_ne!(pid1, pid2);
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "active");

    // stop.
    let job = action(&d, "hp-demo", "stop").await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "inactive");
    let r = d
        .client
        .get(d.url(&format!("/api/v1/admin/services?token={TOKEN}")))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["services"][0], json!({"hp-demo": "not running"}));

    // disable.
    let r = d.post("/api/v1/services/hp-demo/disable", json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.systemctl(&["is-enabled", "hp-demo.service"]), "disabled");

    // A unit that fails to start fails the job, with systemd's result and the unit's state.
    let job = action(&d, "hp-broken", "start").await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "unit_job_failed");
    assert_eq!(job["result"]["result"], "failed");
    assert_eq!(job["result"]["service"]["active_state"], "failed");
    assert_eq!(c.systemctl(&["is-failed", "hp-broken.service"]), "failed");

    // Actions need operator.
    let viewer = d.token_for_role("svc-viewer", "viewer").await;
    for what in ["start", "stop", "restart", "enable", "disable"] {
        let r = d
            .send(
                "POST",
                &format!("/api/v1/services/hp-demo/{what}"),
                Some(&viewer),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status(), 403, "{what} as viewer");
    }
    assert_eq!(
        d.get_as("/api/v1/services/hp-demo", &viewer).await.status(),
        200
    );
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "inactive");
}

/// A plain D-Bus daemon with no systemd on it; killed on drop.
struct PlainBus(Child);

impl Drop for PlainBus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_bus_without_systemd_is_503_with_the_reason() {
    need("dbus-daemon");
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("bus.sock");
    let address = format!("unix:path={}", sock.display());
    let _bus = PlainBus(
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "dbus-daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[services]\ndbus_address = \"{address}\"\nchange_units = true\n"
        )),
        ..Opts::default()
    });
    let v = assert_problem(d.get("/api/v1/services").await, 503, "systemd_unavailable").await;
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("systemd is not reachable"), "{detail}");
    assert!(detail.contains(&address), "{detail}");
    assert_problem(
        d.post("/api/v1/services/ssh/start", json!({})).await,
        503,
        "systemd_unavailable",
    )
    .await;
}
