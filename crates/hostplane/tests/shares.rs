//! `/api/v1/shares` end to end: a btrfs pool on a loop device, a dataset, share users, an SMB
//! share served by a real smbd on a loopback port (smbclient puts and gets a file as the share
//! user; a user without rights is refused) and the same file read through a real nfs-ganesha
//! NFSv4 export (libnfs's nfs-cat). Also: path confinement (traversal, symlink escape),
//! refusals while shared, a dataset rename the share follows, read-only, sessions, and that
//! share users cannot use the API.
//!
//! Every process, Unix account and group the test makes is removed by guards, also on panic.

mod common;
mod storage_util;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem, free_port};
use serde_json::{Value, json};
use storage_util::{Loops, eventually, job_ok};

const MIB: u64 = 1 << 20;

/// A daemon (smbd, ganesha) in its own process group, killed with its children on drop.
struct Server {
    child: Child,
    name: &'static str,
}

impl Server {
    fn spawn(name: &'static str, cmd: &mut Command) -> Server {
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} is needed: {e}"));
        Server { child, name }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pg = self.child.id() as i32;
        // SAFETY: signals to the process group this guard created.
        unsafe { libc::kill(-pg, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pg, libc::SIGKILL) };
        let _ = self.child.wait();
        eprintln!("stopped {}", self.name);
    }
}

/// Unix accounts and the group hostplane creates for this test's share users.
struct Accounts {
    users: Vec<String>,
    group: String,
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

fn exists(db: &str, name: &str) -> bool {
    Command::new("getent")
        .args([db, name])
        .output()
        .unwrap()
        .status
        .success()
}

struct Samba {
    dir: tempfile::TempDir,
    port: u16,
    _server: Server,
}

impl Samba {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("smb.conf")
    }
    fn include(&self) -> PathBuf {
        self.dir.path().join("hostplane-shares.conf")
    }

    /// smbd on 127.0.0.1:<port>, its state in a temp dir, including hostplane's file.
    fn start() -> Samba {
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let s = dir.path();
        for d in ["private", "lock", "state", "cache", "pid", "ncalrpc"] {
            std::fs::create_dir(s.join(d)).unwrap();
        }
        let port = free_port();
        let include = s.join("hostplane-shares.conf");
        std::fs::write(&include, "").unwrap();
        let p = s.display();
        std::fs::write(
            s.join("smb.conf"),
            format!(
                "[global]\n  server role = standalone server\n  interfaces = lo\n  \
                 bind interfaces only = yes\n  smb ports = {port}\n  disable netbios = yes\n  \
                 private dir = {p}/private\n  lock directory = {p}/lock\n  \
                 state directory = {p}/state\n  cache directory = {p}/cache\n  \
                 pid directory = {p}/pid\n  ncalrpc dir = {p}/ncalrpc\n  log file = {p}/log.%m\n  \
                 passdb backend = tdbsam:{p}/private/passdb.tdb\n  load printers = no\n  \
                 disable spoolss = yes\n  include = {}\n",
                include.display()
            ),
        )
        .unwrap();
        let server = Server::spawn(
            "smbd",
            Command::new("smbd")
                .args(["--foreground", "--no-process-group"])
                .arg(format!("--configfile={p}/smb.conf")),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smbd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Samba {
            dir,
            port,
            _server: server,
        }
    }

    /// smbclient as `user` on `share` running smbclient's own command language `cmds`
    /// (no shell); (success, output).
    fn client(&self, user: &str, password: &str, share: &str, cmds: &str) -> (bool, String) {
        let out = Command::new("smbclient")
            .arg(format!("--configfile={}", self.conf().display()))
            .args(["-p", &self.port.to_string(), "-U"])
            .arg(format!("{user}%{password}"))
            .arg(format!("//127.0.0.1/{share}"))
            .args(["-c", cmds])
            .output()
            .expect("smbclient is needed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // smbclient exits 0 even when a command in -c failed; NT_STATUS_ says so.
        (out.status.success() && !text.contains("NT_STATUS_"), text)
    }
}

struct Ganesha {
    dir: tempfile::TempDir,
    port: u16,
    _server: Server,
}

impl Ganesha {
    fn exports(&self) -> PathBuf {
        self.dir.path().join("hostplane-exports.conf")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("ganesha.pid")
    }

    /// nfs-ganesha, NFSv4 only, on 127.0.0.1:<port>, including hostplane's exports file.
    fn start() -> Ganesha {
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let g = dir.path();
        std::fs::create_dir(g.join("recov")).unwrap();
        let port = free_port();
        std::fs::write(g.join("hostplane-exports.conf"), "").unwrap();
        std::fs::write(
            g.join("ganesha.conf"),
            format!(
                "NFS_CORE_PARAM {{ Protocols = 4; Enable_UDP = false; NFS_Port = {port}; \
                 Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; }}\n\
                 NFSv4 {{ RecoveryBackend = fs; RecoveryRoot = {}/recov; Graceless = true; }}\n\
                 %include \"{}/hostplane-exports.conf\"\n",
                g.display(),
                g.display()
            ),
        )
        .unwrap();
        let server = Server::spawn(
            "ganesha.nfsd",
            Command::new("ganesha.nfsd")
                .arg("-F")
                .arg("-f")
                .arg(g.join("ganesha.conf"))
                .arg("-L")
                .arg(g.join("ganesha.log"))
                .arg("-p")
                .arg(g.join("ganesha.pid"))
                .args(["-N", "NIV_EVENT"]),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || !g.join("ganesha.pid").exists()
        {
            assert!(
                Instant::now() < deadline,
                "ganesha did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ganesha {
            dir,
            port,
            _server: server,
        }
    }

    /// `nfs-cat` of a file of an export: its text, or nfs-cat's complaint.
    fn cat(&self, pseudo: &str, file: &str) -> Result<String, String> {
        let out = Command::new("nfs-cat")
            .arg(format!(
                "nfs://127.0.0.1{pseudo}/{file}?version=4&nfsport={}",
                self.port
            ))
            .output()
            .expect("nfs-cat (libnfs-utils) is needed");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Waits (ganesha rereads its exports on SIGHUP, asynchronously) until the file reads, or
    /// with `gone`, until the export is gone; panics with ganesha's complaints otherwise.
    fn wait_cat(&self, pseudo: &str, file: &str, gone: bool) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.cat(pseudo, file);
            match (&r, gone) {
                (Ok(t), false) => return Some(t.clone()),
                (Err(_), true) => return None,
                _ => {}
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("ganesha.log"))
                    .unwrap_or_default();
                let problems: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains(":CONFIG :CRIT") || l.contains(":FSAL :"))
                    .collect();
                panic!(
                    "nfs-cat {pseudo}/{file}: {r:?}\nganesha:\n{}\nexports:\n{}",
                    problems.join("\n"),
                    std::fs::read_to_string(self.exports()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The daemon, with every loop allow-listed and the shares area pointed at this smbd and
/// ganesha.
fn daemon(loops: &Loops, samba: &Samba, ganesha: &Ganesha, group: &str) -> Daemon {
    let config = format!(
        "{}[shares]\ngroup = \"{group}\"\nsmb_config = \"{}\"\nsmb_include = \"{}\"\n\
         nfs_backend = \"ganesha\"\nnfs_exports = \"{}\"\nganesha_pid_file = \"{}\"\n\
         ganesha_log = \"{}\"\n",
        loops.config(),
        samba.conf().display(),
        samba.include().display(),
        ganesha.exports().display(),
        ganesha.pid_file().display(),
        ganesha.dir.path().join("ganesha.log").display()
    );
    Daemon::start_with(Opts {
        config: Some(config),
        extra_args: vec!["--disks-allow".into(), loops.devs.join(",")],
        ..Default::default()
    })
}

async fn send(d: &Daemon, method: &str, path: &str, body: Value) -> reqwest::Response {
    d.send(method, path, Some(&d.token.clone()), Some(body))
        .await
}

async fn created(r: reqwest::Response) -> Value {
    let s = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(s, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}", (std::process::id() ^ t) & 0xffffff)
}

#[tokio::test]
async fn smb_and_nfs_shares_of_a_dataset_end_to_end() {
    // Dropped last: the servers let go of the pool's folders first.
    let loops = Loops::new(1, 256 * MIB);
    let samba = Samba::start();
    let ganesha = Ganesha::start();
    // smbd works as the share user, who must be able to walk down to the pool.
    std::fs::set_permissions(loops.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = tag();
    let (alice, bob, carol, group) = (
        format!("hpt{t}a"),
        format!("hpt{t}b"),
        format!("hpt{t}c"),
        format!("hpt{t}g"),
    );
    let _accounts = Accounts {
        users: vec![alice.clone(), bob.clone(), carol.clone()],
        group: group.clone(),
    };
    assert!(!exists("passwd", &alice) && !exists("group", &group));
    let mut d = daemon(&loops, &samba, &ganesha, &group);

    let status = d.get_json("/api/v1/shares/status").await;
    assert_eq!(status["smb"]["available"], true, "{status}");
    assert_eq!(status["smb"]["running"], true, "{status}");
    assert_eq!(status["smb"]["included"], true, "{status}");
    // The test's smb.conf leaves `map to guest` at Samba's default.
    assert_eq!(status["smb"]["map_to_guest"], "Never", "{status}");
    assert_eq!(status["nfs"]["backend"], "ganesha", "{status}");
    assert_eq!(status["nfs"]["running"], true, "{status}");

    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [loops.devs[0]]}),
        )
        .await,
    )
    .await;
    created(
        d.post("/api/v1/pools/tank/datasets", json!({"name": "media"}))
            .await,
    )
    .await;
    let ds_path = loops.mount_root().join("tank/media");

    // Share users: a Unix account in the group, a Samba password, no API.
    let pw = "Sh4re-pass!";
    assert_problem(
        d.post("/api/v1/users", json!({"name": alice, "role": "share"}))
            .await,
        422,
        "password_required",
    )
    .await;
    assert_problem(
        d.post(
            "/api/v1/users",
            json!({"name": "root", "role": "share", "password": pw}),
        )
        .await,
        409,
        "unix_account_exists",
    )
    .await;
    assert_problem(
        d.post(
            "/api/v1/users",
            json!({"name": alice, "role": "share", "password": "two\nlines-pass"}),
        )
        .await,
        422,
        "invalid_password",
    )
    .await;
    for u in [&alice, &bob] {
        let v = created(
            d.post(
                "/api/v1/users",
                json!({"name": u, "role": "share", "password": pw}),
            )
            .await,
        )
        .await;
        assert_eq!(v["role"], "share");
        assert!(exists("passwd", u), "no Unix account {u}");
    }
    assert!(exists("group", &group));
    let login = d
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": alice, "password": pw})),
        )
        .await;
    assert_problem(login, 403, "forbidden").await;
    assert_problem(
        d.post("/api/v1/tokens", json!({"name": "t", "owner": alice}))
            .await,
        403,
        "forbidden",
    )
    .await;
    // A viewer made a share user loses the API, tokens included.
    let carol_token = d.token_for_role(&carol, "viewer").await;
    assert_eq!(
        d.get_as("/api/v1/auth/whoami", &carol_token).await.status(),
        200
    );
    let r = send(
        &d,
        "PATCH",
        &format!("/api/v1/users/{carol}"),
        json!({"role": "share"}),
    )
    .await;
    assert_problem(r, 422, "password_required").await;
    let r = send(
        &d,
        "PATCH",
        &format!("/api/v1/users/{carol}"),
        json!({"role": "share", "password": pw}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(exists("passwd", &carol));
    assert_problem(
        d.get_as("/api/v1/auth/whoami", &carol_token).await,
        403,
        "forbidden",
    )
    .await;
    // And back: the Unix account goes.
    let r = send(
        &d,
        "PATCH",
        &format!("/api/v1/users/{carol}"),
        json!({"role": "viewer"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(!exists("passwd", &carol));

    // Bad shares are refused before anything is written.
    std::os::unix::fs::symlink("/etc", ds_path.join("escape")).unwrap();
    let base = json!({"name": "media", "pool": "tank", "dataset": "media"});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (body, status, code) in [
        (
            with(json!({"subpath": "../../etc"})),
            422,
            "invalid_subpath",
        ),
        (
            with(json!({"subpath": "escape"})),
            422,
            "path_escapes_dataset",
        ),
        (with(json!({"subpath": "nope"})), 422, "path_not_found"),
        (with(json!({"dataset": "nope"})), 422, "unknown_dataset"),
        (with(json!({"name": "homes"})), 422, "reserved_name"),
        (with(json!({"comment": "100%"})), 422, "invalid_comment"),
        (
            with(json!({"valid_users": ["nobody-here"]})),
            422,
            "unknown_share_user",
        ),
    ] {
        assert_problem(d.post("/api/v1/shares/smb", body).await, status, code).await;
    }
    assert!(
        !std::fs::read_to_string(samba.include())
            .unwrap()
            .contains('[')
    );

    // The SMB share: alice may, bob may not.
    let share = created(
        d.post(
            "/api/v1/shares/smb",
            with(json!({"valid_users": [alice], "comment": "Films", "recycle_bin": true})),
        )
        .await,
    )
    .await;
    assert_eq!(share["state"], "active", "{share}");
    assert_eq!(share["path"], ds_path.to_str().unwrap());
    assert_problem(
        d.post("/api/v1/shares/smb", with(json!({"name": "MEDIA"})))
            .await,
        409,
        "share_exists",
    )
    .await;
    let include = std::fs::read_to_string(samba.include()).unwrap();
    assert!(include.contains("[media]\n"), "{include}");
    assert!(
        include.contains(&format!("\tvalid users = {alice}\n")),
        "{include}"
    );
    // The share folder belongs to the share group, writable by it.
    let md = std::fs::metadata(&ds_path).unwrap();
    assert_eq!(md.mode() & 0o2070, 0o2070, "{:o}", md.mode());

    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let src = work.path().join("hello.txt");
    std::fs::write(&src, "hello over SMB\n").unwrap();
    let back = work.path().join("back.txt");
    let (ok, out) = samba.client(
        &alice,
        pw,
        "media",
        &format!(
            "put {} hello.txt; get hello.txt {}",
            src.display(),
            back.display()
        ),
    );
    assert!(ok, "alice put/get: {out}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello over SMB\n");
    let on_disk = ds_path.join("hello.txt");
    assert_eq!(
        std::fs::read_to_string(&on_disk).unwrap(),
        "hello over SMB\n"
    );
    let owner = Command::new("id").args(["-u", &alice]).output().unwrap();
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().uid().to_string(),
        String::from_utf8_lossy(&owner.stdout).trim()
    );
    let (ok, out) = samba.client(&bob, pw, "media", "ls");
    assert!(!ok && out.contains("NT_STATUS_ACCESS_DENIED"), "bob: {out}");
    let (ok, out) = samba.client(&alice, "wrong-password", "media", "ls");
    assert!(
        !ok && out.contains("NT_STATUS_LOGON_FAILURE"),
        "bad password: {out}"
    );

    // Sessions: a client that stays connected is listed.
    let mut held = Command::new("smbclient")
        .arg(format!("--configfile={}", samba.conf().display()))
        .args(["-p", &samba.port.to_string(), "-U"])
        .arg(format!("{alice}%{pw}"))
        .arg("//127.0.0.1/media")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sessions = eventually(20, || async {
        let s = d.get_json("/api/v1/shares/smb/sessions").await;
        s.as_array()
            .unwrap()
            .iter()
            .any(|x| x["username"] == alice.as_str() && x["shares"][0]["share"] == "media")
            .then_some(s)
    })
    .await;
    assert_eq!(sessions[0]["remote"], "127.0.0.1", "{sessions}");
    held.stdin.take().unwrap().write_all(b"quit\n").unwrap();
    let _ = held.wait();

    // The same file over NFS (read-only export for loopback).
    let nfs = created(
        d.post(
            "/api/v1/shares/nfs",
            json!({"name": "media-nfs", "pool": "tank", "dataset": "media",
                   "clients": [{"host": "127.0.0.1", "access": "ro"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(nfs["pseudo"], "/media-nfs");
    assert_eq!(nfs["export_id"], 1);
    let text = ganesha.wait_cat("/media-nfs", "hello.txt", false).unwrap();
    assert_eq!(text, "hello over SMB\n");
    // A read-only export refuses writes (NFS4ERR_ROFS).
    let put = Command::new("nfs-cp")
        .arg(&src)
        .arg(format!(
            "nfs://127.0.0.1/media-nfs/via-nfs.txt?version=4&nfsport={}",
            ganesha.port
        ))
        .output()
        .unwrap();
    assert!(!put.status.success(), "a read-only export took a file");
    assert!(!ds_path.join("via-nfs.txt").exists());
    assert_problem(
        d.post(
            "/api/v1/shares/nfs",
            json!({"name": "x", "pool": "tank", "dataset": "media",
                   "clients": [{"host": "10.0.0.0/99"}]}),
        )
        .await,
        422,
        "invalid_client",
    )
    .await;

    // PATCH /shares/nfs/{name}: disabled, the export is gone from ganesha (the answer comes
    // after ganesha reread its exports); enabled again, it serves the file again.
    let r = send(
        &d,
        "PATCH",
        "/api/v1/shares/nfs/media-nfs",
        json!({"enabled": false, "comment": "paused"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let nfs = d.get_json("/api/v1/shares/nfs/media-nfs").await;
    assert_eq!(nfs["enabled"], false, "{nfs}");
    assert_eq!(nfs["comment"], "paused", "{nfs}");
    assert!(
        !std::fs::read_to_string(ganesha.exports())
            .unwrap()
            .contains("/media-nfs"),
        "a disabled export is not in ganesha's file"
    );
    assert!(ganesha.wait_cat("/media-nfs", "hello.txt", true).is_none());
    // If-Match: an outdated ETag is 412 and changes nothing.
    let r = d
        .client
        .patch(d.url("/api/v1/shares/nfs/media-nfs"))
        .bearer_auth(&d.token)
        .header("if-match", "\"outdated\"")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 412, "precondition_failed").await;
    assert_eq!(
        d.get_json("/api/v1/shares/nfs/media-nfs").await["enabled"],
        false
    );
    let r = send(
        &d,
        "PATCH",
        "/api/v1/shares/nfs/media-nfs",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let text = ganesha.wait_cat("/media-nfs", "hello.txt", false).unwrap();
    assert_eq!(text, "hello over SMB\n");

    // Operators may read shares but not change them (admin only), and a refusal changes nothing.
    let op = d.token_for_role("shareop", "operator").await;
    assert_eq!(
        d.get_as("/api/v1/shares/nfs/media-nfs", &op).await.status(),
        200
    );
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/shares/nfs",
            Some(json!({"name": "op-nfs", "pool": "tank", "dataset": "media"})),
        ),
        (
            "POST",
            "/api/v1/shares/smb",
            Some(json!({"name": "op-smb", "pool": "tank", "dataset": "media"})),
        ),
        (
            "PATCH",
            "/api/v1/shares/nfs/media-nfs",
            Some(json!({"enabled": false})),
        ),
        (
            "PATCH",
            "/api/v1/shares/smb/media",
            Some(json!({"enabled": false})),
        ),
        ("DELETE", "/api/v1/shares/nfs/media-nfs", None),
        ("DELETE", "/api/v1/shares/smb/media", None),
    ] {
        let r = d.send(method, path, Some(&op), body).await;
        assert_problem(r, 403, "forbidden").await;
    }
    assert_eq!(
        d.get_json("/api/v1/shares/nfs/media-nfs").await["enabled"],
        true
    );
    assert_eq!(
        d.get_json("/api/v1/shares/smb/media").await["enabled"],
        true
    );
    assert_problem(d.get("/api/v1/shares/nfs/op-nfs").await, 404, "not_found").await;

    // While shared: the dataset and the user stay.
    assert_problem(
        d.send(
            "DELETE",
            "/api/v1/pools/tank/datasets/media",
            Some(&d.token),
            None,
        )
        .await,
        409,
        "in_use",
    )
    .await;
    assert_problem(
        d.send(
            "DELETE",
            &format!("/api/v1/users/{alice}"),
            Some(&d.token),
            None,
        )
        .await,
        409,
        "share_user_in_use",
    )
    .await;

    // Renaming the dataset: both shares follow it.
    let r = send(
        &d,
        "PATCH",
        "/api/v1/pools/tank/datasets/media",
        json!({"name": "films"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let share = d.get_json("/api/v1/shares/smb/media").await;
    assert_eq!(share["dataset"], "films");
    assert_eq!(share["state"], "active");
    assert!(
        std::fs::read_to_string(samba.include())
            .unwrap()
            .contains(&format!(
                "\tpath = {}\n",
                loops.mount_root().join("tank/films").display()
            ))
    );
    let text = ganesha.wait_cat("/media-nfs", "hello.txt", false).unwrap();
    assert_eq!(text, "hello over SMB\n");

    // A rollback swaps the dataset's subvolume: both protocols serve the new one.
    created(
        d.post(
            "/api/v1/pools/tank/datasets/films/snapshots",
            json!({"name": "s1"}),
        )
        .await,
    )
    .await;
    let (ok, out) = samba.client(
        &alice,
        pw,
        "media",
        &format!("put {} later.txt", src.display()),
    );
    assert!(ok, "{out}");
    assert_eq!(
        ganesha.wait_cat("/media-nfs", "later.txt", false).unwrap(),
        "hello over SMB\n"
    );
    let r = send(
        &d,
        "POST",
        "/api/v1/pools/tank/datasets/films/snapshots/s1/rollback",
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    ganesha.wait_cat("/media-nfs", "later.txt", true);
    assert_eq!(
        ganesha.wait_cat("/media-nfs", "hello.txt", false).unwrap(),
        "hello over SMB\n"
    );
    let (ok, out) = samba.client(&alice, pw, "media", "ls later.txt");
    assert!(!ok, "later.txt survived the rollback: {out}");

    // The files are derived from the store: a restart writes them again.
    std::fs::write(samba.include(), "# edited by hand\n").unwrap();
    d.stop();
    d.spawn();
    eventually(20, || async {
        std::fs::read_to_string(samba.include())
            .unwrap()
            .contains("[media]\n")
            .then_some(())
    })
    .await;

    // Read-only: alice can read but not write any more. If-Match guards the change.
    let r = d
        .client
        .patch(d.url("/api/v1/shares/smb/media"))
        .bearer_auth(&d.token)
        .header("if-match", "\"stale\"")
        .json(&json!({"read_only": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = send(
        &d,
        "PATCH",
        "/api/v1/shares/smb/media",
        json!({"read_only": true}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (ok, out) = samba.client(
        &alice,
        pw,
        "media",
        &format!("put {} again.txt", src.display()),
    );
    assert!(!ok, "a read-only share took a file: {out}");
    let (ok, out) = samba.client(
        &alice,
        pw,
        "media",
        &format!("get hello.txt {}", back.display()),
    );
    assert!(ok, "read-only get: {out}");

    // Listing both, then deleting: smbd no longer offers the share, the export is gone.
    let all = d.get_json("/api/v1/shares").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    for h in ["/api/v1/shares/smb/media", "/api/v1/shares/nfs/media-nfs"] {
        let r = d.send("DELETE", h, Some(&d.token), None).await;
        assert_eq!(r.status(), 204);
    }
    let (ok, out) = samba.client(&alice, pw, "media", "ls");
    assert!(!ok && out.contains("NT_STATUS_BAD_NETWORK_NAME"), "{out}");
    ganesha.wait_cat("/media-nfs", "hello.txt", true);
    assert!(
        !std::fs::read_to_string(samba.include())
            .unwrap()
            .contains('[')
    );
    assert!(
        !std::fs::read_to_string(ganesha.exports())
            .unwrap()
            .contains("EXPORT")
    );

    // Deleting share users removes their Unix accounts, and the last one the group hostplane
    // made for them.
    for (i, u) in [&alice, &bob].into_iter().enumerate() {
        let r = d
            .send(
                "DELETE",
                &format!("/api/v1/users/{u}"),
                Some(&d.token),
                None,
            )
            .await;
        assert_eq!(r.status(), 204);
        assert!(!exists("passwd", u), "{u} still has a Unix account");
        assert_eq!(
            exists("group", &group),
            i == 0,
            "group {group} after deleting {u}"
        );
    }
}

/// mergerfs datasets are folders; smbd (needs `allow_other`) and ganesha (through its bind
/// mount of a FUSE folder) serve them like any other. A share whose folder disappears shows
/// `unavailable` and leaves the generated files at the next change.
#[tokio::test]
async fn shares_of_a_mergerfs_folder_and_an_unavailable_share() {
    let loops = Loops::new(2, 128 * MIB);
    let samba = Samba::start();
    let ganesha = Ganesha::start();
    std::fs::set_permissions(loops.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = tag();
    let (user, group) = (format!("hpt{t}m"), format!("hpt{t}h"));
    let _accounts = Accounts {
        users: vec![user.clone()],
        group: group.clone(),
    };
    let d = daemon(&loops, &samba, &ganesha, &group);
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "merged", "kind": "mergerfs", "devices": loops.devs, "min_free_space": MIB}),
        )
        .await,
    )
    .await;
    created(
        d.post("/api/v1/pools/merged/datasets", json!({"name": "docs"}))
            .await,
    )
    .await;
    let pw = "Sh4re-pass!";
    created(
        d.post(
            "/api/v1/users",
            json!({"name": user, "role": "share", "password": pw}),
        )
        .await,
    )
    .await;
    let docs = loops.mount_root().join("merged/docs");
    std::fs::create_dir(docs.join("old")).unwrap();
    created(
        d.post(
            "/api/v1/shares/smb",
            json!({"name": "docs", "pool": "merged", "dataset": "docs"}),
        )
        .await,
    )
    .await;
    created(
        d.post(
            "/api/v1/shares/smb",
            json!({"name": "old", "pool": "merged", "dataset": "docs", "subpath": "old"}),
        )
        .await,
    )
    .await;
    created(
        d.post(
            "/api/v1/shares/nfs",
            json!({"name": "docs", "pool": "merged", "dataset": "docs", "clients": [{"host": "*"}]}),
        )
        .await,
    )
    .await;

    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let src = work.path().join("note.txt");
    std::fs::write(&src, "on mergerfs\n").unwrap();
    let (ok, out) = samba.client(
        &user,
        pw,
        "docs",
        &format!("put {} note.txt", src.display()),
    );
    assert!(ok, "put on mergerfs: {out}");
    assert_eq!(
        std::fs::read_to_string(docs.join("note.txt")).unwrap(),
        "on mergerfs\n"
    );
    assert_eq!(
        ganesha.wait_cat("/docs", "note.txt", false).unwrap(),
        "on mergerfs\n"
    );

    // The folder goes away behind hostplane's back: the share says so, and the next change
    // leaves it out of smbd's configuration.
    std::fs::remove_dir(docs.join("old")).unwrap();
    let old = d.get_json("/api/v1/shares/smb/old").await;
    assert_eq!(old["state"], "unavailable", "{old}");
    assert!(old["problem"].as_str().unwrap().contains("old"), "{old}");
    let all = d.get_json("/api/v1/shares?filter=state:unavailable").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let r = send(
        &d,
        "PATCH",
        "/api/v1/shares/smb/docs",
        json!({"comment": "Documents"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let include = std::fs::read_to_string(samba.include()).unwrap();
    assert!(include.contains("[docs]\n\tpath") && include.contains("comment = Documents"));
    assert!(!include.contains("[old]"), "{include}");
    let (ok, out) = samba.client(&user, pw, "old", "ls");
    assert!(!ok && out.contains("NT_STATUS_BAD_NETWORK_NAME"), "{out}");

    // Pools with shares stay mounted.
    assert_problem(
        d.post("/api/v1/pools/merged/unmount", json!({})).await,
        409,
        "in_use",
    )
    .await;
    for h in [
        "/api/v1/shares/smb/docs",
        "/api/v1/shares/smb/old",
        "/api/v1/shares/nfs/docs",
    ] {
        assert_eq!(
            d.send("DELETE", h, Some(&d.token), None).await.status(),
            204
        );
    }
    let r = d
        .send(
            "DELETE",
            &format!("/api/v1/users/{user}"),
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
}

/// ganesha exports from hostplane's bind mount of the dataset (`.nfs-exports/<id>`), which
/// shows as a mount of every pool member: it is the pool's own, so device replace and remove
/// go ahead, and the export keeps serving.
#[tokio::test]
async fn an_nfs_export_does_not_block_device_replace_or_remove() {
    // 512 MiB: on 256 MiB members, relocating the metadata chunk ran out of space here.
    let loops = Loops::new(4, 512 * MIB);
    let samba = Samba::start();
    let ganesha = Ganesha::start();
    let t = tag();
    let group = format!("hpt{t}n");
    let _accounts = Accounts {
        users: vec![],
        group: group.clone(),
    };
    let d = daemon(&loops, &samba, &ganesha, &group);
    let l: Vec<String> = loops.devs.clone();
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [l[0], l[1], l[2]],
                   "data_profile": "raid1", "metadata_profile": "raid1"}),
        )
        .await,
    )
    .await;
    created(
        d.post("/api/v1/pools/tank/datasets", json!({"name": "media"}))
            .await,
    )
    .await;
    let media = loops.mount_root().join("tank/media");
    std::fs::write(media.join("hello.txt"), "over nfs\n").unwrap();
    created(
        d.post(
            "/api/v1/shares/nfs",
            json!({"name": "media", "pool": "tank", "dataset": "media", "clients": [{"host": "*"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        ganesha.wait_cat("/media", "hello.txt", false).unwrap(),
        "over nfs\n"
    );
    let nfs_root = loops.mount_root().join(".nfs-exports");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.contains(nfs_root.to_str().unwrap()),
        "ganesha's bind mount is in place"
    );

    let name = |dev: &str| dev.trim_start_matches("/dev/").to_string();
    job_ok(
        &d,
        d.post(
            &format!("/api/v1/pools/tank/devices/{}/replace", name(&l[2])),
            json!({"device": l[3]}),
        )
        .await,
    )
    .await;
    job_ok(
        &d,
        d.send(
            "DELETE",
            &format!("/api/v1/pools/tank/devices/{}", name(&l[3])),
            Some(&d.token.clone()),
            None,
        )
        .await,
    )
    .await;
    let p = d.get_json("/api/v1/pools/tank").await;
    assert_eq!(p["members"].as_array().unwrap().len(), 2, "{p}");
    assert_eq!(
        ganesha.wait_cat("/media", "hello.txt", false).unwrap(),
        "over nfs\n"
    );
    // The export goes before the servers and loops do.
    let r = d
        .send(
            "DELETE",
            "/api/v1/shares/nfs/media",
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
}
