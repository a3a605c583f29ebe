//! The command runner against real processes (no mocks). Some tests start `sh` to build a
//! process tree or write pid files; the runner itself never uses a shell.

use std::path::Path;
use std::time::{Duration, Instant};

use hostplane_host::command::{Cmd, CommandError};
use serde::Deserialize;

/// `/proc/<pid>` is gone or the process is a zombie (reparented to an init that has not reaped
/// it yet), polling up to 5 s.
async fn wait_dead(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                // Field 3 follows the parenthesised comm.
                let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
                if state == Some(Some('Z')) {
                    return true;
                }
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn true_succeeds() {
    let out = Cmd::new("true").run().await.unwrap();
    assert_eq!(out.status, 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[tokio::test]
async fn false_fails_with_status() {
    let err = Cmd::new("false").run().await.unwrap_err();
    match &err {
        CommandError::Failed {
            program,
            status,
            stderr,
        } => {
            assert_eq!(program, "false");
            assert_eq!(*status, Some(1));
            assert!(stderr.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "`false` failed (exit status 1)");
    assert_eq!(err.program(), Some("false"));
}

#[tokio::test]
async fn ok_codes_accept_other_statuses() {
    let out = Cmd::new("false").ok_codes(&[0, 1]).run().await.unwrap();
    assert_eq!(out.status, 1);
    let err = Cmd::new("true").ok_codes(&[1]).run().await.unwrap_err();
    assert!(matches!(
        err,
        CommandError::Failed {
            status: Some(0),
            ..
        }
    ));
}

#[tokio::test]
async fn stderr_is_kept_in_the_error() {
    let err = Cmd::new("ls")
        .arg("/nonexistent-hostplane-test")
        .run()
        .await
        .unwrap_err();
    let CommandError::Failed { status, stderr, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*status, Some(2));
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert_eq!(stderr, stderr.trim());
    let text = err.to_string();
    assert!(
        text.contains("`ls`") && text.contains("No such file or directory"),
        "{text}"
    );
}

#[tokio::test]
async fn error_text_falls_back_to_stdout_and_is_capped() {
    let err = Cmd::new("sh")
        .args(["-c", "echo '  oops on stdout  '; exit 3"])
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CommandError::Failed { status: Some(3), stderr, .. } if stderr == "oops on stdout"),
        "{err:?}"
    );

    let err = Cmd::new("sh")
        .args(["-c", "head -c 20000 /dev/zero | tr '\\0' x >&2; exit 1"])
        .run()
        .await
        .unwrap_err();
    let CommandError::Failed { stderr, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(stderr.len() <= 4096 + '…'.len_utf8(), "{}", stderr.len());
    assert!(stderr.ends_with('…'));
}

#[tokio::test]
async fn killed_by_signal_has_no_status() {
    let err = Cmd::new("sh")
        .args(["-c", "kill -9 $$"])
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Failed { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("killed by a signal"));
}

#[tokio::test]
async fn timeout_kills_sleep_quickly() {
    let start = Instant::now();
    let err = Cmd::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(200))
        .run()
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    match &err {
        CommandError::Timeout { program, after } => {
            assert_eq!(program, "sleep");
            assert_eq!(*after, Duration::from_millis(200));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "`sleep` timed out after 200ms");
}

#[tokio::test]
async fn timeout_kills_the_process_group_and_reaps() {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let (leader, bg) = (dir.path().join("leader"), dir.path().join("bg"));
    let script = format!(
        "echo $$ > {l}.tmp && mv {l}.tmp {l}; sleep 30 & echo $! > {b}.tmp && mv {b}.tmp {b}; wait",
        l = leader.display(),
        b = bg.display()
    );
    let start = Instant::now();
    let err = Cmd::new("sh")
        .args(["-c", &script])
        .timeout(Duration::from_secs(1))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10));

    let leader_pid = read_pid(&leader).await;
    let bg_pid = read_pid(&bg).await;
    // The direct child was reaped by the runner: not even a zombie is left.
    assert!(
        !Path::new(&format!("/proc/{leader_pid}")).exists(),
        "child {leader_pid} still exists"
    );
    // The grandchild (same process group) was killed too.
    assert!(wait_dead(bg_pid).await, "grandchild {bg_pid} survived");
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let bg = dir.path().join("bg");
    let script = format!(
        "sleep 30 & echo $! > {b}.tmp && mv {b}.tmp {b}; wait",
        b = bg.display()
    );
    let cmd = Cmd::new("sh").args(["-c", &script]);
    let cancelled = tokio::time::timeout(Duration::from_millis(500), cmd.run()).await;
    assert!(cancelled.is_err(), "should still be running");
    let bg_pid = read_pid(&bg).await;
    assert!(wait_dead(bg_pid).await, "grandchild {bg_pid} survived");
}

#[tokio::test]
async fn background_process_holding_stdout_does_not_block() {
    // The child exits at once but leaves a process that inherited its stdout: the runner
    // returns after a short grace period instead of waiting for that process.
    let start = Instant::now();
    let out = Cmd::new("sh")
        .args(["-c", "sleep 20 & echo $!"])
        .run()
        .await
        .unwrap();
    let elapsed = start.elapsed();
    let pid: i32 = out.stdout_lossy().trim().parse().unwrap();
    // SAFETY: kill(2) on the pid of the `sleep` this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
}

#[tokio::test]
async fn missing_program_is_not_found() {
    for program in ["hostplane-no-such-program", "/nonexistent/bin/tool"] {
        let err = Cmd::new(program).arg("x").run().await.unwrap_err();
        assert!(
            matches!(&err, CommandError::NotFound { program: p } if p == program),
            "{err:?}"
        );
        assert_eq!(err.to_string(), format!("program `{program}` not found"));
    }
}

#[tokio::test]
async fn bad_programs_and_arguments_are_refused() {
    for program in ["", "./true", "bin/true", "-true", "tr\0ue"] {
        let err = Cmd::new(program).run().await.unwrap_err();
        assert!(
            matches!(err, CommandError::InvalidArgument { .. }),
            "{program:?}: {err:?}"
        );
    }
    let err = Cmd::new("echo").arg("a\0b").run().await.unwrap_err();
    assert!(
        matches!(err, CommandError::InvalidArgument { .. }),
        "{err:?}"
    );
    let err = Cmd::new("true").env("A=B", "c").run().await.unwrap_err();
    assert!(
        matches!(err, CommandError::InvalidArgument { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn arguments_are_not_interpreted_by_a_shell() {
    let tricky = ["$(id)", "a b", "*", "; rm -rf /", "'\"", "`x`"];
    let out = Cmd::new("printf")
        .arg("%s\\n")
        .args(tricky)
        .run()
        .await
        .unwrap();
    let lines: Vec<_> = out.stdout_lossy().lines().map(String::from).collect();
    assert_eq!(lines, tricky);
}

#[derive(Debug, Deserialize)]
struct Lsblk {
    blockdevices: Vec<BlockDevice>,
}

#[derive(Debug, Deserialize)]
struct BlockDevice {
    name: String,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
    mountpoints: Vec<Option<String>>,
}

#[tokio::test]
async fn run_json_parses_stdout() {
    let json = r#"{"blockdevices": [
        {"name":"loop0", "size":2147483648, "type":"loop", "mountpoints":[null]},
        {"name":"vda", "size":53687091200, "type":"disk", "mountpoints":["/"]}
    ]}"#;
    let parsed: Lsblk = Cmd::new("printf")
        .args(["%s", json])
        .run_json()
        .await
        .unwrap();
    assert_eq!(parsed.blockdevices.len(), 2);
    assert_eq!(parsed.blockdevices[0].name, "loop0");
    assert_eq!(parsed.blockdevices[0].size, 2 << 30);
    assert_eq!(parsed.blockdevices[0].mountpoints, [None]);
    assert_eq!(parsed.blockdevices[1].kind, "disk");
}

#[tokio::test]
async fn run_json_reports_parse_errors() {
    let err = Cmd::new("printf")
        .args(["%s", "not json"])
        .run_json::<serde_json::Value>()
        .await
        .unwrap_err();
    let CommandError::Parse { program, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(program, "printf");
    assert!(message.contains("not json"), "{message}");
}

#[tokio::test]
async fn real_lsblk_json() {
    let v: serde_json::Value = Cmd::new("lsblk")
        .args(["-J", "-b", "-o", "NAME,SIZE,TYPE"])
        .run_json()
        .await
        .unwrap();
    assert!(v["blockdevices"].is_array(), "{v}");
}

#[tokio::test]
async fn stdin_is_piped() {
    let out = Cmd::new("cat").stdin("hello\nworld\n").run().await.unwrap();
    assert_eq!(out.stdout, b"hello\nworld\n");

    // Larger than any pipe buffer in both directions: feeding and reading run concurrently.
    let big: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let out = Cmd::new("cat").stdin(big.clone()).run().await.unwrap();
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout == big);

    // A child that does not read its stdin is not an error.
    Cmd::new("true").stdin(big).run().await.unwrap();
}

#[tokio::test]
async fn stdin_defaults_to_dev_null() {
    let out = Cmd::new("cat")
        .timeout(Duration::from_secs(5))
        .run()
        .await
        .unwrap();
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn stdout_is_capped() {
    let err = Cmd::new("head")
        .args(["-c", "100000", "/dev/zero"])
        .max_stdout(4096)
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::OutputTooLarge { limit: 4096, .. }),
        "{err:?}"
    );

    // A never-ending writer is killed, not waited for.
    let err = Cmd::new("yes").max_stdout(1 << 20).run().await.unwrap_err();
    assert!(
        matches!(err, CommandError::OutputTooLarge { .. }),
        "{err:?}"
    );

    let out = Cmd::new("head")
        .args(["-c", "4096", "/dev/zero"])
        .max_stdout(4096)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 4096);
}

#[tokio::test]
async fn env_and_cwd() {
    let out = Cmd::new("env")
        .env("HOSTPLANE_TEST", "42")
        .run()
        .await
        .unwrap();
    let text = out.stdout_lossy();
    assert!(text.lines().any(|l| l == "HOSTPLANE_TEST=42"), "{text}");
    assert!(text.lines().any(|l| l == "LC_ALL=C.UTF-8"), "{text}");

    let out = Cmd::new("env").env("LC_ALL", "C").run().await.unwrap();
    assert!(out.stdout_lossy().lines().any(|l| l == "LC_ALL=C"));

    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let out = Cmd::new("pwd").cwd(dir.path()).run_text().await.unwrap();
    assert_eq!(
        Path::new(out.trim()).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn absolute_paths_and_reuse() {
    let cmd = Cmd::new("/bin/echo").args(["-n", "x"]);
    assert_eq!(cmd.to_string(), "/bin/echo -n x");
    for _ in 0..3 {
        let out = cmd.run().await.unwrap();
        assert_eq!(out.stdout, b"x");
        assert!(out.elapsed < Duration::from_secs(30));
    }
}

#[test]
fn sbin_tools_are_found() {
    // blkid lives in /usr/sbin (or /sbin); `which` searches there whatever PATH says.
    let p = hostplane_host::which("blkid").expect("blkid");
    assert!(p.is_absolute() && p.ends_with("blkid"));
}

// ---- supervised children (Cmd::spawn) ----

#[tokio::test]
async fn supervised_stdout_streams_and_stderr_is_kept_for_the_error() {
    use hostplane_host::command::{ChildOutput, OnDrop};
    use tokio::io::AsyncReadExt;
    let mut child = Cmd::new("sh")
        .args(["-c", "echo one; echo two; echo broken >&2; exit 3"])
        .spawn(ChildOutput::Piped, OnDrop::Kill)
        .unwrap();
    assert!(child.pid() > 1);
    let mut out = String::new();
    child
        .take_stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "one\ntwo\n");
    assert!(child.take_stdout().is_none());
    match child.finish().await.unwrap_err() {
        CommandError::Failed {
            program,
            status,
            stderr,
        } => {
            assert_eq!(program, "sh");
            assert_eq!(status, Some(3));
            assert_eq!(stderr, "broken");
        }
        other => panic!("{other:?}"),
    }
    let ok = Cmd::new("sh")
        .args(["-c", "echo fine >&2; exit 1"])
        .ok_codes(&[0, 1])
        .spawn(ChildOutput::Piped, OnDrop::Kill)
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!((ok.status, ok.stderr.as_str()), (1, "fine\n"));
}

#[tokio::test]
async fn supervised_output_appends_to_a_log() {
    use hostplane_host::command::{ChildOutput, OnDrop};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("child.log");
    std::fs::write(&log, "before\n").unwrap();
    let mut child = Cmd::new("sh")
        .args(["-c", "echo out; echo err >&2"])
        .spawn(ChildOutput::AppendTo(log.clone()), OnDrop::Leave)
        .unwrap();
    assert!(child.take_stdout().is_none());
    assert!(child.wait().await.unwrap().success());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "before\nout\nerr\n");
}

#[tokio::test]
async fn supervised_drop_kills_the_group_or_leaves_it() {
    use hostplane_host::command::{ChildOutput, OnDrop};
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let bg = dir.path().join("bg");
    let script = format!(
        "sleep 30 & echo $! > {b}.tmp && mv {b}.tmp {b}; wait",
        b = bg.display()
    );
    let child = Cmd::new("sh")
        .args(["-c", &script])
        .spawn(ChildOutput::Piped, OnDrop::Kill)
        .unwrap();
    let bg_pid = read_pid(&bg).await;
    drop(child);
    assert!(
        wait_dead(bg_pid).await,
        "grandchild {bg_pid} survived the drop"
    );

    let left = Cmd::new("sleep")
        .arg("30")
        .spawn(ChildOutput::AppendTo(dir.path().join("log")), OnDrop::Leave)
        .unwrap();
    let pid = left.pid() as i32;
    drop(left);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!wait_dead_now(pid), "a Leave child must survive its handle");
    // SAFETY: kill(2) on the `sleep` this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert!(wait_dead(pid).await);
}

/// Whether `pid` is gone or a zombie right now.
fn wait_dead_now(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')) == Some(true),
    }
}

#[tokio::test]
async fn supervised_kill_and_timeout() {
    use hostplane_host::command::{ChildOutput, OnDrop};
    let mut child = Cmd::new("sleep")
        .arg("30")
        .spawn(ChildOutput::Piped, OnDrop::Leave)
        .unwrap();
    assert!(child.try_wait().unwrap().is_none());
    let status = child.kill().await.unwrap();
    assert!(!status.success());
    assert!(child.try_wait().unwrap().is_some());

    let start = Instant::now();
    let err = Cmd::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(200))
        .spawn(ChildOutput::Piped, OnDrop::Kill)
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn supervised_refuses_what_run_refuses() {
    use hostplane_host::command::{ChildOutput, OnDrop};
    let spawn = |c: Cmd| c.spawn(ChildOutput::Piped, OnDrop::Kill).unwrap_err();
    assert!(matches!(
        spawn(Cmd::new("cat").stdin("x")),
        CommandError::InvalidArgument { .. }
    ));
    assert!(matches!(
        spawn(Cmd::new("bin/sh")),
        CommandError::InvalidArgument { .. }
    ));
    assert!(matches!(
        spawn(Cmd::new("no-such-program-hp")),
        CommandError::NotFound { .. }
    ));
}

/// The start times of a [`Cmd::supervise`]d program, filled by its `on_start`.
type Starts = std::sync::Arc<std::sync::Mutex<Vec<(Instant, u32)>>>;

fn record(starts: &Starts) -> impl FnMut(u32) + Send + 'static {
    let starts = starts.clone();
    move |pid| starts.lock().unwrap().push((Instant::now(), pid))
}

#[tokio::test]
async fn restarting_program_backs_off_up_to_the_cap() {
    use hostplane_host::command::RestartPolicy;
    let dir = tempfile::tempdir().unwrap();
    let policy = RestartPolicy {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(300),
        reset_after: Duration::from_secs(60),
    };
    let starts = Starts::default();
    let r = Cmd::new("false").supervise(dir.path().join("log"), policy, record(&starts));
    // Starts at 0, 100, 300, 600, 900 ms (100, 200, 300, 300 apart).
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts.lock().unwrap().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.stop().await;
    let s = starts.lock().unwrap().clone();
    assert!(s.len() >= 5, "only {} starts", s.len());
    assert!(s.iter().all(|(_, pid)| *pid > 0));
    let gaps: Vec<Duration> = s.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(300), "{gaps:?}");
    // Capped: not 600 ms.
    assert!(gaps[3] >= Duration::from_millis(300), "{gaps:?}");
    assert!(gaps[3] < Duration::from_millis(590), "{gaps:?}");
    // Stopped: no start after it.
    let n = s.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(starts.lock().unwrap().len(), n);
}

#[tokio::test]
async fn restarting_program_is_stopped_by_its_handle() {
    use hostplane_host::command::RestartPolicy;
    let dir = tempfile::tempdir().unwrap();
    let starts = Starts::default();
    let r = Cmd::new("sleep").arg("30").supervise(
        dir.path().join("log"),
        RestartPolicy::default(),
        record(&starts),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.pid() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = r.pid() as i32;
    assert!(pid > 0);
    r.stop().await;
    assert!(
        wait_dead_now(pid),
        "stop() returned before the child {pid} was gone"
    );
    assert_eq!(starts.lock().unwrap().len(), 1);

    // Dropping the handle stops it too.
    let starts = Starts::default();
    let r = Cmd::new("sleep").arg("30").supervise(
        dir.path().join("log"),
        RestartPolicy::default(),
        record(&starts),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.pid() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = r.pid() as i32;
    drop(r);
    assert!(
        wait_dead(pid).await,
        "the child {pid} survived its dropped handle"
    );
}
