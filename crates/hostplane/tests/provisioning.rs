//! Provisioning, live: the tiny test guest (`scripts/guest-kit` booted with `mode=login`:
//! busybox getty + login on ttyS0) provisioned end to end over its serial console by the real
//! daemon and the real QEMU (TCG).
//!
//! The run logs in through a real `login:` / `Password:` exchange (the kit's test-only root
//! password is the stored secret), sets up the network
//! (QEMU user-mode networking: 10.0.2.15/24 via 10.0.2.2, which is the host's loopback from
//! the guest, where the test daemon listens on plain HTTP), the guest fetches an artifact
//! through its single-use run URL with busybox wget and checks its sha256, a provisioner that
//! exits 1 fails the run at that step, the profile is fixed, and a retry resumes at that step
//! and succeeds. Viewers of the console are told it is read-only meanwhile. Afterwards no
//! file of the data dir (the store with its jobs, job logs, events and audit; logs) and no
//! answer holds the secret. QEMU is killed by the daemon guard (it names the data dir).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

fn qemu_present() {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "qemu-system-x86_64 is missing: run scripts/install-qemu"
    );
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn expect(r: reqwest::Response, status: u16) -> Value {
    let s = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(s.as_u16(), status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Waits for a console WebSocket to say it is read-only (a text control frame).
async fn console_says_read_only(d: &Daemon, vm: &str) -> String {
    let t0 = Instant::now();
    // The run starts the VM: wait until a console ticket works.
    let url = loop {
        let vmv = d.get_json(&format!("/api/v1/vms/{vm}")).await;
        if vmv["status"] == "running" {
            let t = expect(
                d.post(&format!("/api/v1/vms/{vm}/console"), json!({}))
                    .await,
                201,
            )
            .await;
            break t["serial_url"].as_str().unwrap().to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "VM not running: {vmv}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}{url}", d.port))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no read_only frame");
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("read_only") => return t.to_string(),
            Ok(Some(Ok(_))) => {}
            other => panic!("console ended: {other:?}"),
        }
    }
}

fn recipe() -> Value {
    json!({
        "name": "tiny-login",
        "description": "the test guest: a real login on ttyS0",
        "os_family": "linux",
        "login_prompt": "login: $",
        "shell_prompt": "[#$] $",
        "variables": [
            {"name": "password", "secret": true},
            {"name": "greeting"},
            {"name": "iface", "default": "eth0"},
            {"name": "ip", "default": "10.0.2.15"},
            {"name": "gateway", "default": "10.0.2.2"}
        ],
        "steps": [
            {"type": "wait", "pattern": "HOSTPLANE-GUEST-READY", "timeout_secs": 300},
            {"type": "send", "text": ""},
            {"type": "wait", "pattern": "login: $", "regex": true, "timeout_secs": 120},
            {"type": "send", "text": "root"},
            {"type": "wait", "pattern": "Password:", "timeout_secs": 30},
            // login prints the prompt before it turns the echo off.
            {"type": "delay", "millis": 1000},
            {"type": "send", "text": "{{password}}"},
            {"type": "wait", "pattern": "[#$] $", "regex": true, "timeout_secs": 60},
            // Logged in as root through login(1): its session says so.
            {"type": "command", "command": "test \"$(id -u)\" = 0 && test \"$HOME\" = /root"},
            {"type": "command", "command": "ip link set {{iface}} up && ip addr add {{ip}}/24 dev {{iface}} && ip route add default via {{gateway}}"},
            {"type": "write_file", "path": "/tmp/motd", "content": "provisioned by {{run_id}}: {{greeting}}\n", "mode": "0644"}
        ]
    })
}

fn profile(fixed: bool) -> Value {
    let last = if fixed {
        json!({"type": "shell", "name": "needs-fix",
               "script": "#!/bin/sh\necho fixed > /tmp/fixed\ntest -f /tmp/fixed\n"})
    } else {
        json!({"type": "shell", "name": "needs-fix", "inline": ["test -f /tmp/fixed"],
               "retries": 1})
    };
    json!({
        "name": "tiny",
        "recipe": "tiny-login",
        "credential": {"secret": "guest-pw"},
        "variables": {"greeting": "hello"},
        "artifacts": [{"artifact": "kit", "dest": "/tmp/kit.bin", "mode": "0600"}],
        "provisioners": [
            {"type": "shell", "name": "check",
             "inline": ["test -s /tmp/kit.bin", "grep -q provisioned /tmp/motd",
                        // A command holding the secret: its echo must be redacted.
                        "echo {{password}} > /tmp/pw.copy",
                        // The run URL works once: the second download is refused.
                        "u='{{artifact_url.kit}}'; wget -q -O /tmp/k1 \"$u\" && ! wget -q -O /tmp/k2 \"$u\""]},
            last
        ]
    })
}

/// The kit's test-only root password (distinctive, so a grep for it means something).
fn secret(kit: &Path) -> String {
    let p = kit.join("root-password");
    let s = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (an old guest kit?)", p.display()));
    let s = s.trim().to_string();
    assert!(s.len() >= 12, "{s:?}");
    s
}

/// Runs the CLI against the daemon (a private HOME); its stdout, after asserting exit 0.
fn cli(d: &Daemon, args: &[&str]) -> String {
    let home = d.data_dir().join("cli-home");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostplane"));
    cmd.args(["--url", &d.base, "--token", &d.token])
        .args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let o = cmd.output().expect("run hostplane");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "hostplane {args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(b) = std::fs::read(&p)
                && b.windows(needle.len()).any(|w| w == needle)
            {
                out.push(p);
            }
        }
    }
    out
}

/// A daemon that may boot the test guest, and a stopped `mode=login` guest (the run boots it).
struct Guest {
    kit: PathBuf,
    d: Daemon,
    /// The kit's root password.
    secret: String,
    vm: Value,
    vm_id: String,
}

async fn login_guest(name: &str, nics: Value) -> Guest {
    qemu_present();
    let kit = common::guest_kit();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[vms]\nallowed_paths = [{:?}]\n",
            kit.to_str().unwrap()
        )),
        ..Opts::default()
    });
    let secret = secret(&kit);
    let vm = expect(
        d.post(
            "/api/v1/vms",
            json!({
                "name": name,
                "memory_mib": 256,
                "accelerator": "tcg",
                "kernel": kit.join("vmlinuz").to_str().unwrap(),
                "initrd": kit.join("initrd.gz").to_str().unwrap(),
                "cmdline": "console=ttyS0 quiet panic=-1 mode=login",
                "nics": nics,
            }),
        )
        .await,
        201,
    )
    .await;
    let vm_id = vm["id"].as_str().unwrap().to_string();
    Guest {
        kit,
        d,
        secret,
        vm,
        vm_id,
    }
}

/// Stores `secret` as `root-pw` and uploads `content` as the artifact `blob`; its sha256.
async fn root_pw_and_blob(d: &Daemon, secret: &str, content: Vec<u8>) -> String {
    expect(
        d.post(
            "/api/v1/provisioning/secrets",
            json!({"name": "root-pw", "value": secret}),
        )
        .await,
        201,
    )
    .await;
    let sha = sha256_hex(&content);
    let r = d
        .client
        .post(d.url(&format!(
            "/api/v1/provisioning/artifacts?name=blob&sha256={sha}"
        )))
        .bearer_auth(&d.token)
        .body(content)
        .send()
        .await
        .unwrap();
    expect(r, 201).await;
    sha
}

#[tokio::test]
async fn serial_run_with_artifact_failure_retry_and_no_secret_anywhere() {
    // The VM (stopped: the run boots it).
    let Guest {
        d, secret, vm_id, ..
    } = login_guest("prov", json!([{"mode": "user"}])).await;

    // A secret: stored, never shown.
    let s = expect(
        d.post(
            "/api/v1/provisioning/secrets",
            json!({"name": "guest-pw", "value": secret}),
        )
        .await,
        201,
    )
    .await;
    assert!(s.get("value").is_none(), "{s}");
    let listed = d
        .get("/api/v1/provisioning/secrets")
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains("guest-pw") && !listed.contains(&secret));

    // An artifact: uploaded with its sha256 (a wrong one is refused).
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = sha256_hex(&content);
    let up = |q: String, body: Vec<u8>| {
        d.client
            .post(d.url(&format!("/api/v1/provisioning/artifacts?{q}")))
            .bearer_auth(&d.token)
            .body(body)
            .send()
    };
    let bad = up(
        format!("name=kit&sha256={}", "0".repeat(64)),
        content.clone(),
    )
    .await
    .unwrap();
    assert_eq!(expect(bad, 422).await["code"], "checksum_mismatch");
    let a = expect(
        up(format!("name=kit&sha256={sha}"), content.clone())
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(a["sha256"], sha.as_str());
    assert_eq!(a["size_bytes"], 200_000);
    assert!(
        d.data_dir()
            .join("provisioning/artifacts")
            .join(&sha)
            .is_file()
    );

    // Recipe and its dry run; profile.
    expect(d.post("/api/v1/provisioning/recipes", recipe()).await, 201).await;
    let dry = expect(
        d.post(
            "/api/v1/provisioning/recipes/tiny-login/render",
            json!({"variables": {"password": secret}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(dry["unresolved"], json!(["greeting"]), "{dry}");
    assert!(!dry.to_string().contains(&secret), "{dry}");
    expect(
        d.post("/api/v1/provisioning/profiles", profile(false))
            .await,
        201,
    )
    .await;

    // An unresolved variable is refused before anything starts.
    let mut p2 = profile(false);
    p2["name"] = json!("tiny-unresolved");
    p2["variables"] = json!({});
    expect(d.post("/api/v1/provisioning/profiles", p2).await, 201).await;
    let r = d
        .post(
            &format!("/api/v1/vms/{vm_id}/provisioning"),
            json!({"profile": "tiny-unresolved"}),
        )
        .await;
    let pr = expect(r, 422).await;
    assert_eq!(pr["code"], "unresolved_variable", "{pr}");
    assert!(pr["detail"].as_str().unwrap().contains("greeting"), "{pr}");

    // The run: boots the VM, fails at the last provisioner.
    let t0 = Instant::now();
    let job = expect(
        d.post(
            &format!("/api/v1/vms/{vm_id}/provisioning"),
            json!({"profile": "tiny"}),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(job["kind"], "provisioning.run");
    let frame = console_says_read_only(&d, &vm_id).await;
    assert!(frame.contains("provisioning run"), "{frame}");
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    eprintln!("first attempt: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "provisioning_step_failed", "{job}");
    let run_href = job["result"]["href"].as_str().unwrap().to_string();
    let run = d.get_json(&run_href).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failed_step"], "provisioner:2:needs-fix", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "boot",
            "setup",
            "wait_ready",
            "artifacts",
            "provisioner:1:check",
            "provisioner:2:needs-fix"
        ]
    );
    for s in &steps[..5] {
        assert_eq!(s["status"], "success", "{s}");
        assert!(s["duration_ms"].is_u64(), "{s}");
    }
    assert_eq!(steps[5]["status"], "failed");
    assert_eq!(steps[5]["exit_code"], 1, "{}", steps[5]);
    assert!(
        steps[5]["log"].as_str().unwrap().contains("retry 1 of 1"),
        "{}",
        steps[5]
    );
    assert!(
        steps[3]["log"]
            .as_str()
            .unwrap()
            .contains("/tmp/kit.bin: OK"),
        "the guest checked the artifact's sha256: {}",
        steps[3]
    );
    assert!(
        steps[4]["log"].as_str().unwrap().contains("<redacted>"),
        "{}",
        steps[4]
    );
    let boot_ms = steps[0]["duration_ms"].clone();

    // A second run of the same VM cannot start while... (none is running now); the retry of a
    // run that did not fail is refused later. Fix the profile, retry: resumes at the failed step.
    let r = d
        .send(
            "PUT",
            "/api/v1/provisioning/profiles/tiny",
            Some(&d.token.clone()),
            Some(profile(true)),
        )
        .await;
    expect(r, 200).await;
    let t1 = Instant::now();
    let job2 = expect(d.post(&format!("{run_href}/retry"), json!({})).await, 202).await;
    assert_eq!(job2["kind"], "provisioning.retry");
    let job2 = d.wait_job(job2["href"].as_str().unwrap()).await;
    eprintln!("retry: {:.1} s", t1.elapsed().as_secs_f64());
    assert_eq!(job2["status"], "success", "{job2}");
    let run = d.get_json(&run_href).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["attempts"], 2);
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(
        steps[0]["duration_ms"], boot_ms,
        "earlier steps are kept, not rerun"
    );
    assert_eq!(steps[5]["status"], "success", "{}", steps[5]);
    assert_eq!(steps[5]["exit_code"], 0);
    let log2 = d
        .get(&format!("{}/log", job2["href"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(log2.contains("from step provisioner:2:needs-fix"), "{log2}");
    assert!(!log2.contains("step boot"), "{log2}");
    let r = d.post(&format!("{run_href}/retry"), json!({})).await;
    assert_eq!(expect(r, 409).await["code"], "run_not_failed");

    // The guest really holds what the run did: ask it over the console after the run.
    // (The run gave the console back: typing works again.)
    let runs = d.get_json("/api/v1/provisioning/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);

    // The CLI shows the same.
    let run_id = run_href.rsplit('/').next().unwrap().to_string();
    let shown = cli(&d, &["provision", "runs", "show", &run_id]);
    assert!(
        shown.contains("provisioner:2:needs-fix success exit 0"),
        "{shown}"
    );
    let recipes = cli(&d, &["provision", "recipes", "list"]);
    assert!(
        recipes.contains("test-guest") && recipes.contains("tiny-login"),
        "{recipes}"
    );
    let secrets = cli(&d, &["provision", "secrets", "list"]);
    assert!(
        secrets.contains("guest-pw") && !secrets.contains(&secret),
        "{secrets}"
    );

    // No secret anywhere: answers, job logs, the audit log, and every file of the data dir
    // (the store: jobs, results, job logs, events, audit; the daemon's own files).
    let mut answers = String::new();
    for p in [
        run_href.clone(),
        format!("{}/log", job["href"].as_str().unwrap()),
        format!("{}/log", job2["href"].as_str().unwrap()),
        job["href"].as_str().unwrap().to_string(),
        "/api/v1/audit".into(),
        "/api/v1/provisioning/profiles/tiny".into(),
        "/api/v1/provisioning/secrets/guest-pw".into(),
        "/api/v1/jobs".into(),
    ] {
        answers.push_str(&d.get(&p).await.text().await.unwrap());
    }
    assert!(answers.contains("<redacted>"));
    assert!(!answers.contains(&secret), "the secret is in an answer");
    // Let the audit writer and the store settle (the audit flushes in batches).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let holding = files_holding(d.data_dir(), secret.as_bytes());
    assert!(holding.is_empty(), "the secret is in {holding:?}");
    assert!(
        !d.log().contains(&secret),
        "the secret is in the daemon's log"
    );
}

/// The `guest_agent` transport: the recipe logs in over the console (the built-in `test-guest`
/// recipe), then the artifact, a script, inline commands (an accepted exit code 3 with its
/// stderr), a file and a command past its timeout (killed) all go through qemu-ga on the
/// VM's virtio-serial channel. A second run with `setup` skipped never touches the console.
#[tokio::test]
async fn guest_agent_run_reads_exit_codes_and_output_through_the_agent() {
    let Guest {
        d, secret, vm_id, ..
    } = login_guest("agent", json!([{"mode": "user"}])).await;
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let sha = root_pw_and_blob(&d, &secret, content).await;

    // Every transport is accepted (the ssh one runs in `ssh_run_...` below).
    let ssh = json!({"name": "over-ssh", "recipe": "test-guest", "transport": "ssh"});
    let r = d.post("/api/v1/provisioning/profiles", ssh).await;
    assert_eq!(expect(r, 201).await["transport"], "ssh");
    let profile = json!({
        "name": "agent",
        "recipe": "test-guest",
        "credential": {"secret": "root-pw"},
        "transport": "guest_agent",
        "artifacts": [{"artifact": "blob", "dest": "/tmp/blob.bin", "mode": "0600"}],
        "provisioners": [
            {"type": "shell", "name": "codes", "valid_exit_codes": [0, 3],
             "inline": ["test -s /tmp/blob.bin", "echo to-stderr >&2; echo {{password}} > /tmp/pw; exit 3"]},
            {"type": "shell", "name": "script",
             "script": "#!/bin/sh\necho from-script \"$(id -u)\"\nstat -c %a /tmp/blob.bin\n"},
            {"type": "file", "name": "copy", "artifact": "blob", "dest": "/tmp/blob2.bin", "mode": "0640"},
            {"type": "shell", "name": "slow", "timeout_secs": 3,
             "inline": ["stat -c %a /tmp/blob2.bin && sha256sum /tmp/blob2.bin", "sleep 60"]}
        ]
    });
    expect(d.post("/api/v1/provisioning/profiles", profile).await, 201).await;

    let t0 = Instant::now();
    let job = expect(
        d.post(
            &format!("/api/v1/vms/{vm_id}/provisioning"),
            json!({"profile": "agent"}),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    eprintln!("guest-agent run: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(job["status"], "failed", "{job}");
    let run_href = job["result"]["href"].as_str().unwrap().to_string();
    let run = d.get_json(&run_href).await;
    assert_eq!(run["failed_step"], "provisioner:4:slow", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let log = |i: usize| steps[i]["log"].as_str().unwrap().to_string();
    for (i, s) in steps[..6].iter().enumerate() {
        assert_eq!(s["status"], "success", "step {i}: {s}");
    }
    assert!(
        log(2).contains("the guest agent answered"),
        "wait_ready: {}",
        log(2)
    );
    assert!(
        log(3).contains("/tmp/blob.bin: OK"),
        "artifacts: {}",
        log(3)
    );
    assert_eq!(steps[4]["exit_code"], 3, "{}", steps[4]);
    assert!(log(4).contains("to-stderr"), "{}", log(4));
    assert!(log(4).contains("<redacted>"), "{}", log(4));
    assert!(log(5).contains("from-script 0"), "{}", log(5));
    assert!(
        log(5).contains("\n600\n"),
        "the artifact's mode: {}",
        log(5)
    );
    assert!(
        log(5).contains("through the guest agent"),
        "the script went through guest-file-write: {}",
        log(5)
    );
    assert!(log(6).contains("/tmp/blob2.bin: OK"), "{}", log(6));
    let slow = &steps[7];
    assert_eq!(slow["status"], "failed", "{slow}");
    assert!(slow["exit_code"].is_null(), "{slow}");
    assert!(slow["error"].as_str().unwrap().contains("killed"), "{slow}");
    let slow_log = slow["log"].as_str().unwrap();
    assert!(slow_log.contains("640"), "{slow_log}");
    assert!(
        slow_log.contains(&format!("{sha}  /tmp/blob2.bin")),
        "{slow_log}"
    );

    // Setup skipped: the agent alone (the VM keeps running), and the killed sleep is gone.
    let only = json!({
        "name": "agent-only",
        "recipe": "test-guest",
        "transport": "guest_agent",
        "variables": {"password": "unused"},
        "provisioners": [
            {"type": "shell", "inline": ["cat /tmp/pw >/dev/null && ! ps | grep -q '[s]leep 60' && echo agent-only-ok"]}
        ]
    });
    expect(d.post("/api/v1/provisioning/profiles", only).await, 201).await;
    let job = expect(
        d.post(
            &format!("/api/v1/vms/{vm_id}/provisioning"),
            json!({"profile": "agent-only", "skip": ["setup"]}),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    let run = d.get_json(job["result"]["href"].as_str().unwrap()).await;
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[1]["status"], "skipped", "{run}");
    assert!(
        steps[4]["log"].as_str().unwrap().contains("agent-only-ok"),
        "{run}"
    );

    // No secret in answers or files.
    let mut answers = String::new();
    for p in [
        run_href.clone(),
        "/api/v1/jobs".into(),
        "/api/v1/audit".into(),
    ] {
        answers.push_str(&d.get(&p).await.text().await.unwrap());
    }
    assert!(!answers.contains(&secret), "the secret is in an answer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let holding = files_holding(d.data_dir(), secret.as_bytes());
    assert!(holding.is_empty(), "the secret is in {holding:?}");
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `ssh` transport: the guest's port 22 forwarded to a loopback port of the host; the
/// recipe logs in over the console (`test-guest`), the run installs its own key and pins the
/// guest's host key (dropbear's, made at this boot) read over the console, then the artifact
/// (streamed on ssh's stdin, sha256 checked in the guest), a script, inline commands (an
/// accepted exit code 3 with its stderr), a file and a command past its timeout (killed, in
/// the guest too) go over ssh. A second run (setup skipped) connects with a new key — the
/// first run's key left authorized_keys — and fails at its failing provisioner; a VM without
/// a forward to port 22 fails at `wait_ready` saying so. The run's key directory is gone
/// after each run, and the secret is nowhere. (A wrong pinned host key is refused: the
/// host crate's `ssh::tests::pinned_host_key_against_a_real_dropbear`.)
#[tokio::test]
async fn ssh_run_pins_the_host_key_and_reads_exit_codes_and_output() {
    qemu_present();
    for tool in ["ssh", "ssh-keygen"] {
        assert!(
            Command::new(tool).arg("-V").output().is_ok()
                || Command::new("which")
                    .arg(tool)
                    .output()
                    .is_ok_and(|o| o.status.success()),
            "{tool} is missing: apt-get install openssh-client"
        );
    }
    let port = free_port();
    let Guest {
        kit,
        d,
        secret,
        vm,
        vm_id,
    } = login_guest(
        "sshguest",
        json!([{"mode": "user", "port_forwards": [{"host_port": port, "guest_port": 22}]}]),
    )
    .await;
    assert_eq!(vm["nics"][0]["port_forwards"][0]["host_port"], port, "{vm}");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 17 % 251) as u8).collect();
    let sha = root_pw_and_blob(&d, &secret, content).await;
    let profile = json!({
        "name": "over-ssh",
        "recipe": "test-guest",
        "credential": {"secret": "root-pw"},
        "transport": "ssh",
        "artifacts": [{"artifact": "blob", "dest": "/tmp/blob.bin", "mode": "0600"}],
        "provisioners": [
            {"type": "shell", "name": "codes", "valid_exit_codes": [0, 3],
             "inline": ["test -s /tmp/blob.bin",
                        "echo to-stderr >&2; echo {{password}} > /tmp/pw; echo 'it'\\''s {{password}}'; exit 3"]},
            {"type": "shell", "name": "script",
             "script": "#!/bin/sh\necho from-script \"$(id -u)\"\nstat -c %a /tmp/blob.bin\ngrep -c hostplane-run /root/.ssh/authorized_keys\n"},
            {"type": "file", "name": "copy", "artifact": "blob", "dest": "/tmp/blob 2.bin", "mode": "0640"},
            {"type": "shell", "name": "slow", "timeout_secs": 3,
             "inline": ["stat -c %a '/tmp/blob 2.bin' && sha256sum '/tmp/blob 2.bin'", "sleep 60"]}
        ]
    });
    expect(d.post("/api/v1/provisioning/profiles", profile).await, 201).await;

    let t0 = Instant::now();
    let job = expect(
        d.post(
            &format!("/api/v1/vms/{vm_id}/provisioning"),
            json!({"profile": "over-ssh"}),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    eprintln!("ssh run: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(job["status"], "failed", "{job}");
    let run_href = job["result"]["href"].as_str().unwrap().to_string();
    let run_id = run_href.rsplit('/').next().unwrap().to_string();
    let run = d.get_json(&run_href).await;
    assert_eq!(run["failed_step"], "provisioner:4:slow", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let log = |i: usize| steps[i]["log"].as_str().unwrap().to_string();
    for (i, s) in steps[..7].iter().enumerate() {
        assert_eq!(s["status"], "success", "step {i}: {s}");
    }
    let ready = log(2);
    assert!(
        ready.contains("pinned the guest's ssh-ed25519 host key"),
        "{ready}"
    );
    assert!(ready.contains(&format!("127.0.0.1:{port}")), "{ready}");
    assert!(ready.contains("ssh answered after"), "{ready}");
    assert!(log(3).contains("over ssh"), "artifacts: {}", log(3));
    assert!(
        log(3).contains("/tmp/blob.bin: OK"),
        "artifacts: {}",
        log(3)
    );
    assert_eq!(steps[4]["exit_code"], 3, "{}", steps[4]);
    assert!(log(4).contains("to-stderr"), "{}", log(4));
    assert!(log(4).contains("it's <redacted>"), "{}", log(4));
    assert!(log(5).contains("from-script 0"), "{}", log(5));
    assert!(
        log(5).contains("\n600\n"),
        "the artifact's mode: {}",
        log(5)
    );
    assert!(
        log(5).contains("\n1\n"),
        "one run key authorized: {}",
        log(5)
    );
    assert!(
        log(5).contains("over ssh"),
        "the script went on stdin: {}",
        log(5)
    );
    assert!(log(6).contains("/tmp/blob 2.bin: OK"), "{}", log(6));
    let slow = &steps[7];
    assert_eq!(slow["status"], "failed", "{slow}");
    assert!(slow["exit_code"].is_null(), "{slow}");
    assert!(slow["error"].as_str().unwrap().contains("killed"), "{slow}");
    let slow_log = slow["log"].as_str().unwrap();
    assert!(slow_log.contains("640"), "{slow_log}");
    assert!(
        slow_log.contains(&format!("{sha}  /tmp/blob 2.bin")),
        "{slow_log}"
    );
    let keys_dir = d.data_dir().join("provisioning/ssh");
    assert!(
        !keys_dir.join(&run_id).exists(),
        "the run's key directory is removed at its end"
    );

    // Setup skipped (the console is still logged in): a new key, the old one gone, the killed
    // sleep gone; a provisioner exiting 7 fails the run at that step.
    let second = json!({
        "name": "ssh-again",
        "recipe": "test-guest",
        "credential": {"secret": "root-pw"},
        "transport": "ssh",
        "provisioners": [
            {"type": "shell", "name": "check", "inline": [
                "cat /tmp/pw >/dev/null && ! ps | grep -q '[s]leep 60' && echo ssh-again-ok",
                "grep -c hostplane-run /root/.ssh/authorized_keys"]},
            {"type": "shell", "name": "fails", "inline": ["echo failing; exit 7", "echo never"]},
            {"type": "shell", "name": "after", "inline": ["true"]}
        ]
    });
    expect(d.post("/api/v1/provisioning/profiles", second).await, 201).await;
    let job = expect(
        d.post(
            &format!("/api/v1/vms/{vm_id}/provisioning"),
            json!({"profile": "ssh-again", "skip": ["setup"]}),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    let run2_href = job["result"]["href"].as_str().unwrap().to_string();
    let run = d.get_json(&run2_href).await;
    assert_eq!(run["failed_step"], "provisioner:2:fails", "{run}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[1]["status"], "skipped", "{run}");
    let check = steps[4]["log"].as_str().unwrap();
    assert!(check.contains("ssh-again-ok"), "{check}");
    assert!(
        check.contains("\n1\n"),
        "the first run's key was removed: {check}"
    );
    assert_eq!(steps[5]["status"], "failed", "{run}");
    assert_eq!(steps[5]["exit_code"], 7, "{run}");
    assert!(
        steps[5]["log"].as_str().unwrap().contains("failing"),
        "{run}"
    );
    assert!(
        !steps[5]["log"].as_str().unwrap().contains("never"),
        "{run}"
    );
    assert_eq!(steps[6]["status"], "pending", "{run}");

    // A VM without a forward to port 22: wait_ready fails and says why (setup skipped, so
    // nothing waits for a login).
    let bare = expect(
        d.post(
            "/api/v1/vms",
            json!({
                "name": "noforward",
                "memory_mib": 128,
                "accelerator": "tcg",
                "kernel": kit.join("vmlinuz").to_str().unwrap(),
                "initrd": kit.join("initrd.gz").to_str().unwrap(),
                "cmdline": "console=ttyS0 quiet panic=-1 mode=login",
                "nics": [{"mode": "user"}],
            }),
        )
        .await,
        201,
    )
    .await;
    let job = expect(
        d.post(
            &format!("/api/v1/vms/{}/provisioning", bare["id"].as_str().unwrap()),
            json!({"profile": "ssh-again", "skip": ["setup"]}),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    let run = d.get_json(job["result"]["href"].as_str().unwrap()).await;
    assert_eq!(run["failed_step"], "wait_ready", "{run}");
    let err = run["steps"][2]["error"].as_str().unwrap();
    assert!(err.contains("no port forward to guest port 22"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&keys_dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run key directories left: {left:?}");

    // No secret in answers or files.
    let mut answers = String::new();
    for p in [
        run_href.clone(),
        run2_href.clone(),
        "/api/v1/jobs".into(),
        "/api/v1/audit".into(),
    ] {
        answers.push_str(&d.get(&p).await.text().await.unwrap());
    }
    assert!(answers.contains("<redacted>"));
    assert!(!answers.contains(&secret), "the secret is in an answer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let holding = files_holding(d.data_dir(), secret.as_bytes());
    assert!(holding.is_empty(), "the secret is in {holding:?}");
    assert!(
        !d.log().contains(&secret),
        "the secret is in the daemon's log"
    );
}
