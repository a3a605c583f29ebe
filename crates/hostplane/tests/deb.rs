//! The Debian package on a real systemd: scripts/build-deb packages this build's binary (the
//! debug one nextest built: no release build in CI), dpkg installs it in a booted container
//! (tests/nspawn_util), the package's unit is enabled and running, is restarted and reaches
//! ready, the installed CLI calls the API over the unix socket and over HTTPS, a change to the
//! conffile takes effect and survives a reinstall, and `dpkg --purge` leaves no file, unit,
//! state or process behind.
//! The container and the temp dir go away when their guards drop, also on panic.
//!
//! Needs root, systemd-nspawn and debootstrap (as tests/services.rs), dpkg-dev
//! (dpkg-shlibdeps, for the package's Depends) and cargo-deb, which scripts/build-deb installs
//! into /var/tmp/hostplane-tools on first use (~3 min once).

mod nspawn_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nspawn_util::{Container, need};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hostplane");

/// Files and dirs the package installs or makes; none may be left after a purge.
const INSTALLED: &[&str] = &[
    "usr/bin/hostplane",
    "usr/lib/systemd/system/hostplane.service",
    "etc/hostplane/config.toml",
    "etc/default/hostplane",
    "usr/share/man/man1/hostplane.1.gz",
    "usr/share/man/man1/hostplane-serve.1.gz",
    "usr/share/man/man1/hostplane-jobs-list.1.gz",
    "usr/share/bash-completion/completions/hostplane",
    "usr/share/zsh/vendor-completions/_hostplane",
    "usr/share/fish/vendor_completions.d/hostplane.fish",
    "usr/share/doc/hostplane/README.md",
];

/// `scripts/build-deb` on the binary nextest built; the .deb's path.
fn build_deb(out: &Path) -> PathBuf {
    need("dpkg-shlibdeps");
    // BIN is TARGET_DIR/debug/hostplane: build-deb packages exactly that file.
    let target_dir = Path::new(BIN).parent().unwrap().parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-deb");
    let t0 = Instant::now();
    let res = Command::new(&script)
        .args(["--profile", "dev", "--no-build", "--fast", "--out"])
        .arg(out)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("scripts/build-deb");
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "scripts/build-deb: {}\n{stdout}{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    eprintln!("scripts/build-deb: {:?}", t0.elapsed());
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.starts_with(out) && deb.extension().is_some_and(|e| e == "deb"),
        "{deb:?}"
    );
    deb
}

/// The unit's main pid once the daemon it started wrote ready.json (after every listener is
/// up); panics with the unit's journal if that takes more than a minute.
fn wait_ready(c: &Container, since: Instant) -> u64 {
    let ready = c.root().join("var/lib/hostplane/ready.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let main_pid: u64 = c
            .systemctl(&["show", "-p", "MainPID", "--value", "hostplane.service"])
            .parse()
            .unwrap_or(0);
        let written = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["pid"].as_u64());
        if main_pid != 0 && written == Some(main_pid) {
            eprintln!("hostplane.service ready after {:?}", since.elapsed());
            return main_pid;
        }
        if Instant::now() > deadline {
            let journal = c.exec(&["journalctl", "-b", "-u", "hostplane", "--no-pager"]);
            panic!(
                "hostplane.service not ready (MainPID {main_pid}, ready.json pid {written:?}): {}\n{}",
                c.systemctl(&["status", "hostplane.service"]),
                String::from_utf8_lossy(&journal.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `hostplane ARGS` inside the container (the installed binary); its JSON answer.
fn cli_json(c: &Container, args: &[&str]) -> Value {
    let mut argv = vec!["hostplane"];
    argv.extend_from_slice(args);
    let out = c.exec_ok(&argv);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Processes named `hostplane` in the container's pid namespace.
fn daemons_in(c: &Container) -> Vec<u32> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = ns(&c.leader().to_string());
    assert!(theirs.is_some());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| ns(&pid.to_string()) == theirs)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "hostplane")
        })
        .collect()
}

#[test]
fn the_deb_installs_runs_and_purges_on_a_booted_systemd() {
    let t0 = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let deb = build_deb(dir.path());
    let c = Container::boot(&[]);
    eprintln!("container booted at {:?}", t0.elapsed());
    std::fs::copy(&deb, c.root().join("root/hostplane.deb")).unwrap();

    // Install: the package enables and starts its unit (as dh_installsystemd does).
    let since = Instant::now();
    c.exec_ok(&["dpkg", "-i", "/root/hostplane.deb"]);
    assert_eq!(c.systemctl(&["is-enabled", "hostplane.service"]), "enabled");
    let first = wait_ready(&c, since);
    for path in INSTALLED {
        assert!(c.root().join(path).exists(), "{path} not installed");
    }
    let data = c.root().join("var/lib/hostplane");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&data).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o700,
        "the data dir holds the bootstrap token"
    );

    // Stop and start it again, as an admin would.
    c.exec_ok(&["systemctl", "stop", "hostplane.service"]);
    assert_eq!(c.systemctl(&["is-active", "hostplane.service"]), "inactive");
    let since = Instant::now();
    c.exec_ok(&["systemctl", "start", "hostplane.service"]);
    let second = wait_ready(&c, since);
    assert_ne!(first, second);

    // The API over the unix socket, as root: admin without a token.
    let me = cli_json(&c, &["api", "GET", "/api/v1/auth/whoami"]);
    assert_eq!(me["role"], "admin", "{me}");
    let version = cli_json(&c, &["api", "GET", "/api/v1/system/version"]);
    assert!(version.is_object(), "{version}");
    // And over HTTPS on the default listener with the bootstrap token.
    let token = std::fs::read_to_string(data.join("bootstrap-token")).unwrap();
    let https = [
        "--url",
        "https://127.0.0.1:8443",
        "--insecure",
        "--token",
        token.trim(),
    ];
    let me = cli_json(
        &c,
        &[&https[..], &["api", "GET", "/api/v1/auth/whoami"]].concat(),
    );
    assert_eq!(me["method"], "bearer", "{me}");

    // The conffiles are dpkg's, the shipped config is the repository's, and the daemon reads
    // it: with `[metrics] public = true` uncommented, /metrics answers without a credential.
    let conffiles = c.exec_ok(&["dpkg-query", "-W", "-f=${Conffiles}", "hostplane"]);
    for f in ["/etc/hostplane/config.toml", "/etc/default/hostplane"] {
        assert!(conffiles.contains(&format!(" {f} ")), "{f}: {conffiles}");
    }
    let config = c.root().join("etc/hostplane/config.toml");
    let shipped = std::fs::read_to_string(&config).unwrap();
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/etc/hostplane/config.toml");
    assert_eq!(shipped, std::fs::read_to_string(dist).unwrap());
    let anonymous = ["--url", "https://127.0.0.1:8443", "--insecure"];
    let metrics = |c: &Container| {
        c.exec(&[&["hostplane"], &anonymous[..], &["api", "GET", "/metrics"]].concat())
    };
    let refused = metrics(&c);
    assert!(
        !refused.status.success(),
        "/metrics is not public by default"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let edited = shipped.replace("# public = false", "public = true");
    assert_ne!(edited, shipped);
    std::fs::write(&config, edited).unwrap();
    let since = Instant::now();
    c.exec_ok(&["systemctl", "restart", "hostplane.service"]);
    wait_ready(&c, since);
    let open = metrics(&c);
    assert!(
        open.status.success(),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
    assert!(String::from_utf8_lossy(&open.stdout).contains("hostplane_uptime_seconds"));

    // Installed again over itself (dpkg's upgrade path): the edited conffile and the data stay,
    // and the service runs again.
    let edited = std::fs::read_to_string(&config).unwrap();
    let since = Instant::now();
    c.exec_ok(&["dpkg", "-i", "/root/hostplane.deb"]);
    wait_ready(&c, since);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_eq!(
        std::fs::read_to_string(data.join("bootstrap-token")).unwrap(),
        token
    );
    assert!(
        metrics(&c).status.success(),
        "the edited config still applies"
    );

    // Purge: the edited conffile, the data, the unit and its links, and the daemon are gone.
    c.exec_ok(&["dpkg", "--purge", "hostplane"]);
    let query = c.exec(&["dpkg-query", "-W", "hostplane"]);
    assert!(!query.status.success(), "dpkg still knows the package");
    for path in INSTALLED.iter().chain(&[
        "var/lib/hostplane",
        "etc/hostplane",
        "etc/systemd/system/multi-user.target.wants/hostplane.service",
        "var/lib/systemd/deb-systemd-helper-enabled/hostplane.service.dsh-also",
    ]) {
        assert!(!c.root().join(path).exists(), "{path} left after purge");
    }
    let run = PathBuf::from(format!("/proc/{}/root/run/hostplane", c.leader()));
    assert!(!run.exists(), "/run/hostplane left after purge");
    assert_eq!(
        c.systemctl(&["show", "-p", "LoadState", "--value", "hostplane.service"]),
        "not-found"
    );
    assert_eq!(
        daemons_in(&c),
        Vec::<u32>::new(),
        "a daemon survived the purge"
    );
    eprintln!("done in {:?}", t0.elapsed());
}
