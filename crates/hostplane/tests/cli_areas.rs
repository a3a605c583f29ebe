//! The area commands of the CLI end to end: the real `hostplane` binary as a client of a real
//! daemon (the harness in `common`), on loop devices this test makes (`storage_util`) and with
//! the tiny TCG guest of `scripts/guest-kit` (its serial console from a pipe and from a pty).
//! Output with `--json` is parsed back into the shared API types; jobs are followed with
//! `--wait`; destructive commands refuse without `--yes` when stdin is not a terminal.

mod common;
mod storage_util;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BIN, Daemon, Opts};
use hostplane_types::disks::Disk;
use hostplane_types::jobs::{Job, JobStatus};
use hostplane_types::pools::{Dataset, Pool, Snapshot};
use hostplane_types::shares::{NfsShare, ShareSummary, SmbShare};
use hostplane_types::system::backup::{Backup, BackupOrigin};
use hostplane_types::system::certificate::Certificate;
use hostplane_types::system::update::UpdateStatus;
use hostplane_types::vms::Vm;
use serde::de::DeserializeOwned;
use storage_util::Loops;

const MIB: u64 = 1 << 20;

struct Run {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "`hostplane {}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    fn ok(self) -> Run {
        self.expect(0)
    }

    /// stdout as one of the shared API types.
    fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`hostplane {}`: not the expected JSON ({e}):\n{}",
                self.what, self.stdout
            )
        })
    }
}

/// Runs the CLI against `d` over `url` (with the bootstrap token unless it is the socket, and
/// the daemon's certificate as the CA over HTTPS), stdin from /dev/null, with a private HOME
/// and no HOSTPLANE_* from the outside.
fn cli_at(d: &Daemon, url: &str, args: &[&str]) -> Run {
    let home = d.data_dir().join("cli-home");
    let mut cmd = Command::new(BIN);
    cmd.args(["--url", url]);
    if !url.starts_with("unix:") {
        cmd.args(["--token", &d.token]);
    }
    if url.starts_with("https:") {
        cmd.arg("--ca").arg(d.data_dir().join("tls/cert.pem"));
    }
    cmd.args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let o: Output = cmd.output().expect("run hostplane");
    Run {
        what: args.join(" "),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn cli(d: &Daemon, args: &[&str]) -> Run {
    cli_at(d, &d.base, args)
}

/// A table's rows (after the header) as columns.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The daemon with the loop allow-listed, pools under the loops' temp dir, and the shares
/// area writing its Samba include and ganesha exports into a temp dir (testparm checks the
/// Samba file; no server needs to run for the configuration to be written).
fn storage_daemon(loops: &Loops, shares: &Path) -> Daemon {
    let smb_conf = shares.join("smb.conf");
    let include = shares.join("hostplane-shares.conf");
    std::fs::write(&include, "").unwrap();
    std::fs::write(
        &smb_conf,
        format!(
            "[global]\n  server role = standalone server\n  load printers = no\n  \
             include = {}\n",
            include.display()
        ),
    )
    .unwrap();
    let config = format!(
        "{}[shares]\nsmb_config = \"{}\"\nsmb_include = \"{}\"\nnfs_backend = \"ganesha\"\n\
         nfs_exports = \"{}\"\nganesha_pid_file = \"{}\"\nganesha_log = \"{}\"\n",
        loops.config(),
        smb_conf.display(),
        include.display(),
        shares.join("exports.conf").display(),
        shares.join("ganesha.pid").display(),
        shares.join("ganesha.log").display(),
    );
    Daemon::start_with(Opts {
        config: Some(config),
        extra_args: vec!["--disks-allow".into(), loops.devs.join(",")],
        ..Default::default()
    })
}

#[test]
fn disks_pools_datasets_snapshots_and_shares() {
    let loops = Loops::new(1, 256 * MIB);
    let dev = loops.devs[0].clone();
    let name = Loops::name(&dev).to_string();
    let shares = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let d = storage_daemon(&loops, shares.path());

    // disks: the table lists the loop, allowed and unused; --json is the API's Disk.
    let t = cli(&d, &["disks", "list"]).ok();
    assert!(t.stdout.starts_with("NAME"), "{}", t.stdout);
    let row = rows(&t.stdout)
        .into_iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("{name} not in:\n{}", t.stdout));
    assert!(row.contains(&"yes".to_string()), "{row:?}");
    let disks: Vec<Disk> = cli(&d, &["disks", "list", "--json"]).ok().parse();
    let disk = disks.iter().find(|x| x.path == dev).expect("our loop");
    assert!(disk.allowed && disk.pool.is_none(), "{disk:?}");
    let one: Disk = cli(&d, &["disks", "show", &name, "--json"]).ok().parse();
    assert_eq!(one.id, disk.id);
    cli(&d, &["disks", "show", &name]).ok();

    // Destructive commands refuse without --yes when stdin is not a terminal, before any
    // request: the disk is untouched.
    for args in [
        vec!["disks", "wipe", name.as_str()],
        vec!["pools", "create", "tank", dev.as_str(), "--wait"],
    ] {
        let r = cli(&d, &args).expect(1);
        assert!(r.stderr.contains("without --yes"), "{}", r.stderr);
    }
    let jobs: Vec<Job> = cli(&d, &["jobs", "list", "--json"]).ok().parse();
    assert!(jobs.is_empty(), "{jobs:?}");

    // A pool, created and followed to the end.
    let r = cli(
        &d,
        &[
            "pools",
            "create",
            "tank",
            &dev,
            "--yes",
            "--wait",
            "--timeout",
            "120",
        ],
    )
    .ok();
    assert!(
        r.stdout.contains("Done: creation of pool tank"),
        "{}",
        r.stdout
    );
    let t = cli(&d, &["pools", "list"]).ok();
    let row = rows(&t.stdout)
        .into_iter()
        .find(|r| r[0] == "tank")
        .unwrap_or_else(|| panic!("tank not in:\n{}", t.stdout));
    assert_eq!(&row[1..4], ["btrfs", "online", "yes"], "{row:?}");
    let pools: Vec<Pool> = cli(&d, &["pools", "list", "--json"]).ok().parse();
    assert_eq!(pools.len(), 1);
    let pool: Pool = cli(&d, &["pools", "show", "tank", "--json"]).ok().parse();
    assert!(pool.mounted);
    assert_eq!(pool.members[0].path.as_deref(), Some(dev.as_str()));
    let r = cli(&d, &["pools", "show", "tank"]).ok();
    assert!(r.stdout.contains(&dev), "{}", r.stdout);

    // Datasets and snapshots by POOL/DATASET@NAME.
    cli(
        &d,
        &["datasets", "create", "tank/media", "--retention", "5"],
    )
    .ok();
    let ds: Vec<Dataset> = cli(&d, &["datasets", "list", "tank", "--json"])
        .ok()
        .parse();
    assert!(ds.iter().any(|x| x.name == "media"), "{ds:?}");
    let one: Dataset = cli(&d, &["datasets", "show", "tank/media", "--json"])
        .ok()
        .parse();
    assert_eq!(one.snapshot_retention, Some(5));
    cli(&d, &["snapshots", "create", "tank/media@first"]).ok();
    let snaps: Vec<Snapshot> = cli(&d, &["snapshots", "list", "tank", "--json"])
        .ok()
        .parse();
    assert_eq!(
        snaps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["first"]
    );
    let t = cli(&d, &["snapshots", "list", "tank/media"]).ok();
    assert!(t.stdout.contains("tank/media@first"), "{}", t.stdout);
    cli(&d, &["snapshots", "delete", "tank/media@first"]).expect(1);
    cli(&d, &["snapshots", "delete", "tank/media@first", "--yes"]).ok();

    // A scrub, followed; its result is printed.
    let r = cli(
        &d,
        &["pools", "scrub", "tank", "--wait", "--timeout", "120"],
    )
    .ok();
    assert!(r.stdout.contains("UNCORRECTABLE"), "{}", r.stdout);

    // SMB and NFS shares of the dataset.
    let r = cli(
        &d,
        &[
            "shares",
            "smb",
            "create",
            "docs",
            "--dataset",
            "tank/media",
            "--comment",
            "Docs",
            "--read-only",
        ],
    )
    .ok();
    assert!(r.stdout.contains("Created SMB share docs"), "{}", r.stdout);
    let smb: Vec<SmbShare> = cli(&d, &["shares", "smb", "list", "--json"]).ok().parse();
    assert_eq!(smb.len(), 1);
    assert!(smb[0].read_only && smb[0].comment == "Docs", "{:?}", smb[0]);
    assert!(
        std::fs::read_to_string(shares.path().join("hostplane-shares.conf"))
            .unwrap()
            .contains("[docs]")
    );
    let nfs: NfsShare = cli(
        &d,
        &[
            "shares",
            "nfs",
            "create",
            "media",
            "--dataset",
            "tank/media",
            "--client",
            "127.0.0.1=rw",
            "--client",
            "192.0.2.0/24=ro",
            "--json",
        ],
    )
    .ok()
    .parse();
    assert_eq!(nfs.pseudo, "/media");
    assert_eq!(nfs.clients.len(), 2);
    let listed: Vec<NfsShare> = cli(&d, &["shares", "nfs", "list", "--json"]).ok().parse();
    assert_eq!(listed.len(), 1);
    let all: Vec<ShareSummary> = cli(&d, &["shares", "list", "--json"]).ok().parse();
    assert_eq!(all.len(), 2);
    let t = cli(&d, &["shares", "list"]).ok();
    let protos: Vec<String> = rows(&t.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert!(
        protos.contains(&"smb".into()) && protos.contains(&"nfs".into()),
        "{}",
        t.stdout
    );
    cli(&d, &["shares", "smb", "show", "docs"]).ok();
    cli(&d, &["shares", "nfs", "show", "media"]).ok();
    cli(&d, &["shares", "smb", "delete", "docs"]).ok();
    cli(&d, &["shares", "nfs", "delete", "media"]).ok();
    let all: Vec<ShareSummary> = cli(&d, &["shares", "list", "--json"]).ok().parse();
    assert!(all.is_empty(), "{all:?}");
    let r = cli(&d, &["shares", "smb", "show", "docs"]).expect(1);
    assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);

    // Destroy: refused without --yes, then done and followed; the disk is free again.
    cli(&d, &["pools", "destroy", "tank"]).expect(1);
    cli(&d, &["datasets", "delete", "tank/media", "--yes"]).ok();
    let end: Job = cli(
        &d,
        &["pools", "destroy", "tank", "--yes", "--wait", "--json"],
    )
    .ok()
    .parse();
    assert_eq!(end.status, JobStatus::Success);
    let pools: Vec<Pool> = cli(&d, &["pools", "list", "--json"]).ok().parse();
    assert!(pools.is_empty());
    let disk: Disk = cli(&d, &["disks", "show", &name, "--json"]).ok().parse();
    assert!(disk.pool.is_none(), "{disk:?}");
}

#[test]
fn vms_update_backup_and_certs() {
    // Keys so that updates are configured: a package that is not one fails in its job.
    let keys = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let out = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(keys.path().join("k"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let vendor = std::fs::read_to_string(keys.path().join("k/vendor.pub")).unwrap();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[admin]\nvendor_public_key = \"{}\"\nappliance_identity = \"{}\"\n",
            vendor.trim(),
            keys.path().join("k/appliance.key").display()
        )),
        ..Default::default()
    });

    // VMs: none yet, as a table and as JSON, over HTTP and over the socket.
    let t = cli(&d, &["vms", "list"]).ok();
    assert!(t.stdout.starts_with("NAME"), "{}", t.stdout);
    assert!(rows(&t.stdout).is_empty(), "{}", t.stdout);
    let vms: Vec<Vm> = cli(&d, &["vms", "list", "--json"]).ok().parse();
    assert!(vms.is_empty());
    let sock = format!("unix://{}", d.socket.display());
    let vms: Vec<Vm> = cli_at(&d, &sock, &["vm", "list", "--json"]).ok().parse();
    assert!(vms.is_empty());
    let r = cli(&d, &["vms", "show", "nope"]).expect(1);
    assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);
    // The console's WebSocket request is answered 404 before any upgrade, on both transports.
    for url in [d.base.as_str(), sock.as_str()] {
        let r = cli_at(&d, url, &["vms", "console", "nope"]).expect(1);
        assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);
    }

    // A job that fails: --wait exits 1 and says why; --json gives the failed job.
    let junk = keys.path().join("junk.pkg");
    std::fs::write(&junk, b"this is not an update package").unwrap();
    let junk = junk.to_str().unwrap();
    let r = cli(&d, &["update", "apply", junk, "--wait"]).expect(1);
    assert!(r.stderr.contains("update failed"), "{}", r.stderr);
    let job: Job = cli(&d, &["update", "apply", junk, "--wait", "--json"])
        .expect(1)
        .parse();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("E1005"), "{job:?}");
    let st: UpdateStatus = cli(&d, &["update", "status", "--json"]).ok().parse();
    assert_eq!(st.job, job.href);
    // Without --wait the job is started and named; exit 0.
    let r = cli(&d, &["update", "apply", junk]).ok();
    assert!(r.stdout.contains("hostplane jobs wait"), "{}", r.stdout);
    cli(&d, &["update", "version"]).ok();

    // Backups: made and followed, listed, downloaded whole; delete needs --yes.
    let job: Job = cli(&d, &["backup", "create", "--wait", "--json"])
        .ok()
        .parse();
    assert_eq!(job.status, JobStatus::Success);
    let list: Vec<Backup> = cli(&d, &["backup", "list", "--json"]).ok().parse();
    let b = list.iter().find(|b| b.id == job.id).expect("the backup");
    let file = keys.path().join("b.tar");
    let r = cli(
        &d,
        &["backup", "download", &b.id, "-o", file.to_str().unwrap()],
    )
    .ok();
    assert!(r.stdout.contains("Wrote"), "{}", r.stdout);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        b.size_bytes.unwrap()
    );
    // Uploaded back, streamed from the file, over the socket this time.
    let up: Backup = cli_at(
        &d,
        &sock,
        &["backup", "upload", file.to_str().unwrap(), "--json"],
    )
    .ok()
    .parse();
    assert_eq!(up.origin, BackupOrigin::Uploaded);
    assert_eq!((up.size_bytes, &up.sha256), (b.size_bytes, &b.sha256));
    cli(&d, &["backup", "delete", &up.id, "--yes"]).ok();
    cli(&d, &["backup", "delete", &b.id]).expect(1);
    cli(&d, &["backup", "delete", &b.id, "--yes"]).ok();
    let list: Vec<Backup> = cli(&d, &["backup", "list", "--json"]).ok().parse();
    assert!(list.iter().all(|x| x.id != b.id));

    // A certificate installed by a job (stored; this daemon serves plain HTTP), then shown.
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cli.test",
            "-addext",
            "subjectAltName=DNS:cli.test",
        ])
        .current_dir(keys.path())
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
    let (cert, key) = (keys.path().join("c.pem"), keys.path().join("k.pem"));
    let r = cli(
        &d,
        &[
            "certs",
            "set",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--wait",
        ],
    )
    .ok();
    assert!(
        r.stdout.contains("Done: certificate update"),
        "{}",
        r.stdout
    );
    let c: Certificate = cli(&d, &["certs", "show", "--json"]).ok().parse();
    assert_eq!(c.dns_names, ["cli.test"], "{c:?}");
    let r = cli(&d, &["certs", "show"]).ok();
    assert!(r.stdout.contains(&c.sha256), "{}", r.stdout);
}

/// The tiny test guest (scripts/guest-kit, cached; `HOSTPLANE_GUEST_KIT` names a built one).
fn guest_kit() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("HOSTPLANE_GUEST_KIT") {
        return d.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/guest-kit");
    let out = Command::new(&script)
        .output()
        .expect("run scripts/guest-kit");
    assert!(
        out.status.success(),
        "scripts/guest-kit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().into()
}

/// Kills the QEMUs of the daemon's run directory on drop (QEMU outlives the daemon by design),
/// also on panic.
struct Qemus(std::path::PathBuf);

impl Drop for Qemus {
    fn drop(&mut self) {
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let Ok(pid) = std::fs::read_to_string(e.path().join("qemu.pid")) else {
                continue;
            };
            let Ok(pid) = pid.trim().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(self.0.to_str().unwrap()) {
                // SAFETY: kill(2) on a pid whose command line names our run directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Appends what `from` yields to `into` until its end, on a thread.
fn collect(
    mut from: impl std::io::Read + Send + 'static,
    into: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

#[test]
fn vm_start_console_stop_and_export() {
    let kit = guest_kit();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[vms]\nallowed_paths = [{:?}]\n",
            kit.to_str().unwrap()
        )),
        // HTTPS: the console's WebSocket upgrade runs over TLS.
        https: true,
        ..Default::default()
    });
    let _qemus = Qemus(d.data_dir().join("run/vms"));
    // No `vms create` command: the raw `api` command makes the VM.
    let def = serde_json::json!({
        "name": "tiny",
        "memory_mib": 256,
        "accelerator": "tcg",
        "kernel": kit.join("vmlinuz").to_str().unwrap(),
        "initrd": kit.join("initrd.gz").to_str().unwrap(),
        "cmdline": "console=ttyS0 quiet panic=-1 mode=serve",
    })
    .to_string();
    cli(&d, &["api", "POST", "/api/v1/vms", "--data", &def]).ok();
    let r = cli(&d, &["vms", "start", "tiny"]).ok();
    assert!(r.stdout.contains("VM tiny is running"), "{}", r.stdout);
    let vm: Vm = cli(&d, &["vms", "show", "tiny", "--json"]).ok().parse();
    assert!(vm.pid.is_some(), "{vm:?}");

    // The console from a pipe: type into the guest's shell until it answers.
    let home = d.data_dir().join("cli-home");
    let mut child = Command::new(BIN)
        .args(["--url", &d.base, "--token", &d.token, "--ca"])
        .arg(d.data_dir().join("tls/cert.pem"))
        .args(["vms", "console", "tiny", "--linger", "1"])
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = collect(stdout, seen.clone());
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let mut stdin = child.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !text().contains("CLI-42") {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest never answered on the console; saw:\n{}",
            text()
        );
        if text().contains("HOSTPLANE-GUEST-READY") {
            use std::io::Write;
            stdin.write_all(b"echo CLI-$((6*7))\n").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "console exited {status}:\n{}", text());

    // The console on a terminal (script(1) gives it a pty): raw mode, so a carriage return
    // goes to the guest as typed, and Ctrl-] leaves.
    let console = format!(
        "{BIN} --url {} --token {} --ca {} vms console tiny",
        d.base,
        d.token,
        d.data_dir().join("tls/cert.pem").display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &console, "/dev/null"])
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils) is installed");
    let stdout = child.stdout.take().unwrap();
    seen.lock().unwrap().clear();
    let reader = collect(stdout, seen.clone());
    let mut stdin = child.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !text().contains("TTY-42") {
        assert!(
            std::time::Instant::now() < deadline,
            "no answer through the terminal; saw:\n{}",
            text()
        );
        if text().contains("Ctrl-] leaves") {
            use std::io::Write;
            stdin.write_all(b"echo TTY-$((7*6))\r").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    {
        use std::io::Write;
        stdin.write_all(&[0x1d]).unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    assert!(
        status.success(),
        "console on a pty exited {status}:\n{}",
        text()
    );

    // A graceful stop, followed: the guest powers off on the ACPI button.
    let job: Job = cli(
        &d,
        &[
            "vms",
            "stop",
            "tiny",
            "--wait",
            "--timeout",
            "120",
            "--json",
        ],
    )
    .ok()
    .parse();
    assert_eq!(job.status, JobStatus::Success, "{job:?}");
    let vm: Vm = cli(&d, &["vms", "show", "tiny", "--json"]).ok().parse();
    assert_eq!(vm.pid, None, "{vm:?}");

    // Export streams the archive to a file.
    let out = d.data_dir().join("tiny.tar.zst");
    let r = cli(&d, &["vms", "export", "tiny", "-o", out.to_str().unwrap()]).ok();
    assert!(r.stdout.contains("Wrote"), "{}", r.stdout);
    let archive = std::fs::read(&out).unwrap();
    // zstd frame magic.
    assert_eq!(&archive[..4], [0x28, 0xb5, 0x2f, 0xfd]);
    cli(&d, &["vms", "delete", "tiny", "--yes"]).ok();
}
