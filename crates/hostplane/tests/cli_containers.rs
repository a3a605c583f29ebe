//! The containers and images commands of the CLI end to end: the real `hostplane` binary as a
//! client of a real daemon with a private dockerd (`engine_util`): an image imported from a
//! busybox rootfs tarball, a container created, started, listed, shown, its log read, a
//! command run with and without a terminal (`exec -it` over the WebSocket from a pipe: the
//! command's output and exit code come back), stopped and removed (not without `--yes`).

mod common;
mod engine_util;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{BIN, Daemon};
use engine_util::{Engine, Kind, busybox_rootfs, daemon_for};
use hostplane_types::containers::{Container, ContainerImage, ContainerState};

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
}

fn command(d: &Daemon, args: &[&str]) -> Command {
    let home = d.data_dir().join("cli-home");
    let mut cmd = Command::new(BIN);
    cmd.args(["--url", &d.base, "--token", &d.token])
        .args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs the CLI with `input` on stdin (a pipe; /dev/null when None).
fn cli_in(d: &Daemon, args: &[&str], input: Option<&str>) -> Run {
    let mut cmd = command(d, args);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("run hostplane");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    Run {
        what: args.join(" "),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn cli(d: &Daemon, args: &[&str]) -> Run {
    cli_in(d, args, None)
}

#[test]
fn containers_and_images_commands() {
    let engine = Engine::start(Kind::Docker);
    let d = daemon_for(&[("docker", engine.socket_url())], 10);
    let rootfs = d.data_dir().join("rootfs.tar");
    std::fs::write(&rootfs, busybox_rootfs()).unwrap();

    cli(
        &d,
        &[
            "images",
            "import",
            "docker",
            rootfs.to_str().unwrap(),
            "--repo",
            "localhost/hp-cli",
            "--tag",
            "t1",
        ],
    )
    .ok();
    let r = cli(&d, &["--json", "images", "list", "docker"]).ok();
    let images: Vec<ContainerImage> = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        images.iter().any(|i| i.tags == ["localhost/hp-cli:t1"]),
        "{}",
        r.stdout
    );
    let r = cli(&d, &["images", "list"]).ok();
    assert!(r.stdout.contains("localhost/hp-cli:t1"), "{}", r.stdout);

    // Bad names are refused by the CLI or the daemon, and nothing is made.
    cli(&d, &["containers", "create", "web1", "--image", "x"]).expect(1);
    cli(
        &d,
        &[
            "containers",
            "create",
            "docker/-x",
            "--image",
            "localhost/hp-cli:t1",
        ],
    )
    .expect(1);

    cli(
        &d,
        &[
            "containers",
            "create",
            "docker/cli1",
            "--image",
            "localhost/hp-cli:t1",
            "-e",
            "GREETING=from-cli",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "echo log-$GREETING; exec sleep 600",
        ],
    )
    .ok();
    let r = cli(&d, &["containers", "start", "docker/cli1"]).ok();
    assert!(r.stdout.contains("running"), "{}", r.stdout);
    let r = cli(&d, &["--json", "containers", "list"]).ok();
    let list: Vec<Container> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, ContainerState::Running);
    let r = cli(&d, &["containers", "show", "docker/cli1"]).ok();
    assert!(r.stdout.contains("localhost/hp-cli:t1"), "{}", r.stdout);

    // The log (the line is written as the container starts).
    let mut seen = String::new();
    for _ in 0..50 {
        seen = cli(&d, &["containers", "logs", "docker/cli1", "--tail", "10"])
            .ok()
            .stdout;
        if seen.contains("log-from-cli") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.contains("log-from-cli"), "{seen}");

    // Exec without a terminal: output and exit code are the command's.
    let r = cli(
        &d,
        &[
            "containers",
            "exec",
            "docker/cli1",
            "sh",
            "-c",
            "echo out-$GREETING; exit 7",
        ],
    )
    .expect(7);
    assert_eq!(r.stdout, "out-from-cli\n");

    // A terminal from a pipe: typed input, output, the command's exit code.
    let t0 = std::time::Instant::now();
    let r = cli_in(
        &d,
        &["containers", "exec", "-it", "docker/cli1", "sh"],
        Some("echo tty-$((40+2)); exit 5\n"),
    )
    .expect(5);
    assert!(r.stdout.contains("tty-42"), "{}\n{}", r.stdout, r.stderr);
    eprintln!("exec -it round trip: {:.2} s", t0.elapsed().as_secs_f64());
    // The end of the input ends a shell that waits for more (a Ctrl-D, as on a terminal).
    let r = cli_in(
        &d,
        &["containers", "exec", "-it", "docker/cli1", "sh"],
        Some("echo eof-ok\n"),
    )
    .expect(0);
    assert!(r.stdout.contains("eof-ok"), "{}", r.stdout);

    let r = cli(&d, &["containers", "stop", "docker/cli1", "--timeout", "0"]).ok();
    assert!(r.stdout.contains("exited"), "{}", r.stdout);
    let r = cli(&d, &["containers", "rm", "docker/cli1"]).expect(1);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    cli(&d, &["containers", "rm", "-y", "docker/cli1"]).ok();
    let r = cli(&d, &["--json", "containers", "list"]).ok();
    assert_eq!(r.stdout.trim(), "[]");
    let id = images
        .iter()
        .find(|i| i.tags == ["localhost/hp-cli:t1"])
        .unwrap()
        .id
        .clone();
    cli(&d, &["images", "rm", "docker", &id]).ok();
    drop(d);
    drop(engine);
}
