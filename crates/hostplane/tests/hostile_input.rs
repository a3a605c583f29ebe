//! Hostile input against every operation of the daemon's own OpenAPI document.
//!
//! The test reads `GET /api-docs/openapi.json` and sends a corpus of hostile values (path
//! traversal, leading `-`, NUL, 10 KB, unicode confusables and bidi overrides, shell
//! metacharacters, format strings) as an admin:
//!
//! * to every path parameter of every operation, one parameter at a time, the others naming
//!   real fixtures (a btrfs pool on a loop device with a dataset and a snapshot, SMB and NFS
//!   shares, a stopped VM with a VM snapshot, a user), percent-encoded over a raw HTTP/1.1
//!   connection (so nothing is normalized on the way) and, for values that are URL syntax
//!   themselves (`%2e%2e%2f`, `%00`, `..`), also as written;
//! * to every string field of every JSON request body (nested objects and array items too; enum
//!   fields excepted, serde refuses those), one field at a time, the others valid or absent.
//!
//! It asserts: no answer 500 or other 5xx (501 and 503 only as the documented problem+json
//! "not here" answers); no escape (no file named from the corpus appears outside the daemon's
//! data dir and the test's roots: `/`, `/tmp`, `/var/tmp`, `/etc`, the working directory and
//! its parents; a planted canary file that traversal values aim at stays as it was; no shell
//! ever ran a corpus command, which would have touched a marker file); and nothing written for
//! a refused request (no corpus value names anything in the listings afterwards, and the
//! generated Samba and NFS files hold no line a corpus newline injected).
//!
//! Not sent, each with its reason, in [`EXCLUDED`]. Runs as root (loop devices), in its own
//! daemon with its own data dir; every loop device and mount goes away on drop, also on panic.

mod common;
mod storage_util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use futures_util::StreamExt;
use serde_json::{Value, json};
use storage_util::{Loops, job_ok};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Operations never sent, and why.
const EXCLUDED: &[(&str, &str, &str)] = &[
    ("post", "/api/v1/system/reboot", "reboots the host"),
    (
        "get",
        "/api/v1/admin/reboot",
        "reboots the host (Jidoteki form)",
    ),
    (
        "post",
        "/api/v1/system/update",
        "update upload: slow, and content is the test, not names",
    ),
    (
        "post",
        "/api/v1/admin/update",
        "update upload (Jidoteki form)",
    ),
    (
        "post",
        "/api/v1/system/backups/upload",
        "backup upload: a tar body, no names",
    ),
    (
        "post",
        "/api/v1/admin/backup/restore",
        "restore upload (Jidoteki form)",
    ),
    (
        "get",
        "/api/v1/events",
        "endless SSE stream; takes no name or path",
    ),
];

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if UNRESERVED.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The corpus. `marker` is in every value that could name a file, so an escape is found by
/// name; `canary` is a directory outside the daemon's roots with a file `victim` in it.
fn corpus(marker: &str, canary: &Path) -> Vec<String> {
    let c = canary.display();
    let deep = "../".repeat(12);
    let mut v: Vec<String> = [
        "../../etc/passwd",
        "..",
        ".",
        "../",
        "..\\..\\windows\\win.ini",
        "/etc/passwd",
        "/",
        "-rf",
        "--help",
        "-",
        "--output=/etc/passwd",
        "a\0b",
        "\0",
        "／etc",
        "\u{ff0e}\u{ff0e}\u{ff0f}etc",
        "abc\u{202e}gpj.exe",
        "\u{2024}\u{2024}",
        "\u{200b}",
        ";id",
        "$(id)",
        "`id`",
        "|",
        "&",
        "\n",
        "x\r\ny: z",
        " ",
        "*",
        "~root",
        "${IFS}",
        "'\"",
        "%s%n%x",
        "{{7*7}}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("A".repeat(10 * 1024));
    v.push(format!("{deep}{c}/victim"));
    v.push(format!("{c}/victim"));
    v.push(format!("{deep}{c}/{marker}-new"));
    v.push(format!("{c}/{marker}-abs"));
    for depth in 1..=4 {
        v.push(format!("{}{marker}-up{depth}", "../".repeat(depth)));
    }
    v.push(format!("-{marker}-dash"));
    v.push(format!(";touch /tmp/{marker}-semi"));
    v.push(format!("$(touch /tmp/{marker}-sub)"));
    v.push(format!("`touch /tmp/{marker}-bt`"));
    v.push(format!("|touch /tmp/{marker}-pipe"));
    v.push(format!("&touch /tmp/{marker}-amp"));
    v.push(format!("x\ntouch /tmp/{marker}-nl"));
    v
}

/// Values that are URL syntax themselves: also sent in a path as written.
fn raw_corpus(marker: &str) -> Vec<String> {
    [
        "%2e%2e%2f",
        "%2e%2e",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%00",
        "x%00.tar.zst",
        "..",
        "%2fetc%2fpasswd",
        "%252e%252e%252f",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("..%2f..%2f{marker}-raw")])
    .collect()
}

// --- the document --------------------------------------------------------------------------

struct Doc<'a> {
    root: &'a Value,
}

impl Doc<'_> {
    fn resolve<'b>(&'b self, s: &'b Value) -> &'b Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                self.resolve(&self.root["components"]["schemas"][name])
            }
            None => s,
        }
    }

    /// The first non-null alternative of `oneOf`/`anyOf`/type arrays.
    fn concrete<'b>(&'b self, s: &'b Value) -> &'b Value {
        let s = self.resolve(s);
        for k in ["oneOf", "anyOf", "allOf"] {
            if let Some(alts) = s.get(k).and_then(Value::as_array) {
                for a in alts {
                    let a = self.resolve(a);
                    if a.get("type") != Some(&json!("null")) {
                        return self.concrete(a);
                    }
                }
            }
        }
        s
    }

    fn ty(&self, s: &Value) -> String {
        match &s["type"] {
            Value::String(t) => t.clone(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null")
                .to_string(),
            _ if s.get("properties").is_some() => "object".into(),
            _ => String::new(),
        }
    }
}

/// Valid values for names the fixtures hold, by field or parameter name.
struct Fixtures {
    loop_free: String,
    member: String,
    counter: AtomicUsize,
}

impl Fixtures {
    fn path_default(&self, path: &str, param: &str) -> String {
        match param {
            "pool" => "hp".into(),
            "dataset" => "ds".into(),
            "snapshot" => "snap".into(),
            "disk" => self.member.clone(),
            "n" => "0".into(),
            "format" => "raw".into(),
            "id" if path.starts_with("/api/v1/vms/") => "vm0".into(),
            "id" if path.starts_with("/api/v1/disks/") => self.loop_free.clone(),
            "id" => "0".into(),
            "name" if path.starts_with("/api/v1/pools/") => "hp".into(),
            "name" if path.starts_with("/api/v1/shares/smb/") => "sh".into(),
            "name" if path.starts_with("/api/v1/shares/nfs/") => "nf".into(),
            "name" if path.starts_with("/api/v1/users/") => "probe".into(),
            "name" if path.starts_with("/api/v1/vms/templates/") => "tpl".into(),
            "name" if path.starts_with("/api/v1/vms/") => "vsnap".into(),
            "name" if path.starts_with("/api/v1/services/") => "hostile-probe.service".into(),
            _ => "x1".into(),
        }
    }

    fn string_default(&self, field: &str) -> String {
        match field {
            "pool" => "hp".into(),
            "dataset" => "ds".into(),
            "device" => self.loop_free.clone(),
            "devices" | "parity_devices" => self.loop_free.clone(),
            "owner" => "probe".into(),
            "password" | "new_password" => "hostile-pass-1".into(),
            "username" => "probe".into(),
            "url" => "http://127.0.0.1:9/x.box".into(),
            "host" => "127.0.0.1".into(),
            "uuid" => "00000000-0000-0000-0000-000000000000".into(),
            "name" => format!("hx{}", self.counter.fetch_add(1, Ordering::Relaxed)),
            _ => "x1".into(),
        }
    }

    /// A minimal valid-looking value of a schema: required properties only.
    fn value(&self, doc: &Doc, s: &Value, field: &str, depth: usize) -> Value {
        let s = doc.concrete(s);
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null);
        }
        match doc.ty(s).as_str() {
            "string" => Value::String(self.string_default(field)),
            "integer" | "number" => s.get("minimum").cloned().unwrap_or(json!(1)),
            "boolean" => json!(false),
            "array" => {
                let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                if min > 0 && depth < 4 {
                    json!([self.value(doc, &s["items"], field, depth + 1)])
                } else {
                    json!([])
                }
            }
            "object" if depth < 4 => {
                let mut o = serde_json::Map::new();
                let required: Vec<&str> = s["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(props) = s["properties"].as_object() {
                    for (k, p) in props {
                        if required.contains(&k.as_str()) {
                            o.insert(k.clone(), self.value(doc, p, k, depth + 1));
                        }
                    }
                }
                Value::Object(o)
            }
            _ => json!({}),
        }
    }
}

/// One step of a path into a JSON body.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index,
}

/// Paths to every non-enum string field of a body schema (with the schemas of their
/// containers, to build them when absent).
fn string_fields(
    doc: &Doc,
    s: &Value,
    prefix: &mut Vec<(Step, Value)>,
    out: &mut Vec<Vec<(Step, Value)>>,
) {
    if prefix.len() > 4 {
        return;
    }
    let s = doc.concrete(s).clone();
    if s.get("enum").is_some() {
        return;
    }
    match doc.ty(&s).as_str() {
        "string" => out.push(prefix.clone()),
        "array" => {
            prefix.push((Step::Index, s["items"].clone()));
            string_fields(doc, &s["items"], prefix, out);
            prefix.pop();
        }
        "object" => {
            if let Some(props) = s["properties"].as_object() {
                for (k, p) in props {
                    prefix.push((Step::Key(k.clone()), p.clone()));
                    string_fields(doc, p, prefix, out);
                    prefix.pop();
                }
            }
        }
        _ => {}
    }
}

/// `base` with `value` at `path`, building absent containers from their schemas.
fn with_value(
    doc: &Doc,
    fx: &Fixtures,
    base: &Value,
    path: &[(Step, Value)],
    value: &str,
) -> Value {
    let mut body = base.clone();
    let mut cur = &mut body;
    for (i, (step, schema)) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let name = match step {
            Step::Key(k) => k.clone(),
            Step::Index => String::new(),
        };
        let make = || {
            if last {
                Value::String(value.to_string())
            } else {
                fx.value(doc, schema, &name, 1)
            }
        };
        cur = match step {
            Step::Key(k) => {
                if !cur.is_object() {
                    *cur = json!({});
                }
                let o = cur.as_object_mut().unwrap();
                if last {
                    o.insert(k.clone(), make());
                }
                o.entry(k.clone()).or_insert_with(make)
            }
            Step::Index => {
                if !cur.is_array() {
                    *cur = json!([]);
                }
                let a = cur.as_array_mut().unwrap();
                if a.is_empty() {
                    a.push(make());
                } else if last {
                    a[0] = make();
                }
                &mut a[0]
            }
        };
    }
    body
}

// --- sending -------------------------------------------------------------------------------

struct Sent {
    method: String,
    path: String,
    what: String,
    value: String,
    status: u16,
    body: String,
}

/// One HTTP/1.1 request over a fresh loopback connection, the target exactly as given.
async fn raw(
    port: u16,
    token: &str,
    method: &str,
    target: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!(
        "{} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n",
        method.to_uppercase()
    );
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "{method} {target}: no answer in 60 s");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: not HTTP: {text:.200}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn short(v: &str) -> String {
    let s: String = v.chars().take(60).collect();
    format!("{s:?}{}", if v.chars().count() > 60 { "…" } else { "" })
}

// --- the host around the daemon ------------------------------------------------------------

/// Names of entries (recursively up to `depth`) under `dir` that contain `marker`.
fn find_marked(dir: &Path, marker: &str, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(marker) {
            out.push(p.clone());
        }
        if depth > 0 && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_marked(&p, marker, depth - 1, out);
        }
    }
}

fn stamp(p: &Path) -> Option<(u64, std::time::SystemTime, Vec<u8>)> {
    let m = std::fs::metadata(p).ok()?;
    Some((
        m.len(),
        m.modified().ok()?,
        std::fs::read(p).unwrap_or_default(),
    ))
}

struct Canary(PathBuf);

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn smb_config(dir: &Path) -> String {
    let smb = dir.join("smb");
    std::fs::create_dir_all(smb.join("private")).unwrap();
    std::fs::create_dir_all(dir.join("ganesha")).unwrap();
    let s = smb.display();
    std::fs::write(
        smb.join("smb.conf"),
        format!(
            "[global]\n  private dir = {s}/private\n  passdb backend = tdbsam:{s}/private/passdb.tdb\n  lock directory = {s}\n  state directory = {s}\n  cache directory = {s}\n  pid directory = {s}\n  include = {s}/hostplane-shares.conf\n"
        ),
    )
    .unwrap();
    format!(
        "[shares]\nunix_accounts = false\nsmb_config = \"{s}/smb.conf\"\nsmb_include = \"{s}/hostplane-shares.conf\"\nnfs_backend = \"ganesha\"\nnfs_exports = \"{g}/hostplane-exports.conf\"\nganesha_pid_file = \"{g}/ganesha.pid\"\nganesha_log = \"{g}/ganesha.log\"\n",
        g = dir.join("ganesha").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_values_in_every_name_and_string_field_are_refused_without_effect() {
    let started = Instant::now();
    let loops = Loops::new(2, 512 << 20);
    let member_dev = loops.devs[0].clone();
    let free_dev = loops.devs[1].clone();
    let etc = loops.dir.path().join("conf");
    std::fs::create_dir_all(&etc).unwrap();
    let config = format!(
        "{}[auth]\nlogin_attempts_per_minute = 10000\n[admin]\nreboot_command = [\"true\"]\n[vms]\nmax_running = 1\nmax_disk_bytes = 67108864\n{}",
        loops.config(),
        smb_config(&etc)
    );
    let d = Daemon::start_with(Opts {
        config: Some(config),
        extra_args: vec![
            "--disks-allow".into(),
            Loops::allow(&[&member_dev, &free_dev]),
        ],
        ..Default::default()
    });

    // The marker and the canary: unique per run, outside every root of the daemon.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let marker = format!("hpesc{}x{nanos}", std::process::id());
    let canary = Canary(PathBuf::from(format!("/tmp/{marker}-canary")));
    std::fs::create_dir_all(&canary.0).unwrap();
    let victim = canary.0.join("victim");
    std::fs::write(&victim, "canary\n").unwrap();
    let watched_files = [victim.clone(), PathBuf::from("/etc/passwd")];
    let before: Vec<_> = watched_files.iter().map(|p| stamp(p)).collect();

    // Fixtures, so hostile values meet real objects on the other parameters.
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "hp", "kind": "btrfs", "devices": [member_dev]}),
        )
        .await,
    )
    .await;
    for (path, body) in [
        ("/api/v1/pools/hp/datasets", json!({"name": "ds"})),
        (
            "/api/v1/pools/hp/datasets/ds/snapshots",
            json!({"name": "snap"}),
        ),
        (
            "/api/v1/shares/smb",
            json!({"name": "sh", "pool": "hp", "dataset": "ds"}),
        ),
        (
            "/api/v1/shares/nfs",
            json!({"name": "nf", "pool": "hp", "dataset": "ds", "clients": [{"host": "127.0.0.1"}]}),
        ),
        (
            "/api/v1/vms",
            json!({"name": "vm0", "memory_mib": 64, "disks": [{"size_bytes": 1048576, "format": "qcow2"}]}),
        ),
        (
            "/api/v1/users",
            json!({"name": "probe", "role": "operator"}),
        ),
    ] {
        let r = d.post(path, body).await;
        assert_eq!(r.status(), 201, "{path}: {}", r.text().await.unwrap());
    }
    job_ok(
        &d,
        d.post("/api/v1/vms/vm0/snapshots", json!({"name": "vsnap"}))
            .await,
    )
    .await;
    let member = storage_util::disk(&d, &member_dev).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fx = Fixtures {
        loop_free: Loops::name(&free_dev).to_string(),
        member,
        counter: AtomicUsize::new(0),
    };

    let spec: Value = d.get_json("/api-docs/openapi.json").await;
    let doc = Doc { root: &spec };
    let values = corpus(&marker, &canary.0);
    let raws = raw_corpus(&marker);

    // Every request to send: (method, path template, what, value, target, body).
    let mut plan: Vec<(String, String, String, String, String, Option<String>)> = Vec::new();
    let mut excluded_seen = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            if EXCLUDED.iter().any(|(m, p, _)| m == method && p == path) {
                excluded_seen.insert((method.clone(), path.clone()));
                continue;
            }
            let json_schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
            let base_body = (!json_schema.is_null()).then(|| fx.value(&doc, &json_schema, "", 0));
            let params: Vec<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let fill = |hostile: Option<(&str, &str)>| -> String {
                let mut t = path.clone();
                for p in &params {
                    let v = match hostile {
                        Some((name, v)) if name == p => v.to_string(),
                        _ => pct(&fx.path_default(path, p)),
                    };
                    t = t.replace(&format!("{{{p}}}"), &v);
                }
                t
            };
            for p in &params {
                for v in &values {
                    plan.push((
                        method.clone(),
                        path.clone(),
                        format!("path {p}"),
                        v.clone(),
                        fill(Some((p, &pct(v)))),
                        base_body.as_ref().map(Value::to_string),
                    ));
                }
                for v in &raws {
                    plan.push((
                        method.clone(),
                        path.clone(),
                        format!("path {p} (as written)"),
                        v.clone(),
                        fill(Some((p, v))),
                        base_body.as_ref().map(Value::to_string),
                    ));
                }
            }
            if let Some(base) = &base_body {
                let mut fields = Vec::new();
                string_fields(&doc, &json_schema, &mut Vec::new(), &mut fields);
                for f in &fields {
                    let label = f
                        .iter()
                        .map(|(s, _)| match s {
                            Step::Key(k) => k.clone(),
                            Step::Index => "[0]".into(),
                        })
                        .collect::<Vec<_>>()
                        .join(".");
                    for v in &values {
                        plan.push((
                            method.clone(),
                            path.clone(),
                            format!("body {label}"),
                            v.clone(),
                            fill(None),
                            Some(with_value(&doc, &fx, base, f, v).to_string()),
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(
        excluded_seen.len(),
        EXCLUDED.len(),
        "every exclusion names an operation of the document: {excluded_seen:?}"
    );

    // Send, 8 at a time: destructive operations run on fixtures of this test only.
    let port = d.port;
    let token = d.token.clone();
    let n_planned = plan.len();
    let sent: Vec<Sent> = futures_util::stream::iter(plan)
        .map(|(method, path, what, value, target, body)| {
            let token = token.clone();
            async move {
                let (status, answer) = raw(port, &token, &method, &target, body.as_deref()).await;
                Sent {
                    method,
                    path,
                    what,
                    value,
                    status,
                    body: answer,
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(sent.len(), n_planned);
    let t_sent = started.elapsed();

    // 1. No server error: 5xx only as the documented "not on this host" answers.
    let mut failures = Vec::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &sent {
        *by_status.entry(s.status).or_default() += 1;
        let documented = matches!(s.status, 501 | 503)
            && serde_json::from_str::<Value>(&s.body)
                .map(|p| p["code"].is_string() && p["code"] != "internal")
                .unwrap_or(false);
        if s.status >= 500 && !documented {
            failures.push(format!(
                "{} {} {} = {}: {} {:.300}",
                s.method.to_uppercase(),
                s.path,
                s.what,
                short(&s.value),
                s.status,
                s.body
            ));
        }
    }

    // 2. No escape: nothing named from the corpus outside the daemon's roots, the canary and
    // /etc/passwd unchanged, no shell ran a corpus command.
    let mut escaped = Vec::new();
    let cwd = std::env::current_dir().unwrap();
    let mut dirs: Vec<(PathBuf, usize)> = vec![
        ("/".into(), 0),
        ("/tmp".into(), 1),
        ("/var/tmp".into(), 0),
        ("/etc".into(), 0),
        (canary.0.clone(), 2),
        (loops.dir.path().to_path_buf(), 0),
    ];
    for a in cwd.ancestors().take(5) {
        dirs.push((a.to_path_buf(), 0));
    }
    for (dir, depth) in &dirs {
        find_marked(dir, &marker, *depth, &mut escaped);
    }
    // The scan itself works: it finds the canary directory, which is named with the marker.
    assert!(escaped.contains(&canary.0), "the scan finds {marker}");
    escaped.retain(|p| p != &canary.0);
    let after: Vec<_> = watched_files.iter().map(|p| stamp(p)).collect();
    for ((p, b), a) in watched_files.iter().zip(&before).zip(&after) {
        if b != a {
            escaped.push(p.clone());
        }
    }

    // 3. Nothing written for a refused request: no listed name or id is a corpus value unless
    // some request with that value was accepted, and the generated share files hold no line a
    // newline in a value started.
    let accepted: BTreeSet<&str> = sent
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .map(|s| s.value.as_str())
        .collect();
    let corpus_set: BTreeSet<&str> = values.iter().chain(&raws).map(String::as_str).collect();
    let mut written = Vec::new();
    for list in [
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/pools",
        "/api/v1/pools/hp/datasets",
        "/api/v1/pools/hp/datasets/ds/snapshots",
        "/api/v1/pools/hp/snapshots",
        "/api/v1/shares",
        "/api/v1/vms",
        "/api/v1/vms/templates",
        "/api/v1/vms/vm0/snapshots",
        "/api/v1/system/backups",
    ] {
        let items = d.get_json(list).await;
        for item in items.as_array().unwrap() {
            for key in ["name", "id", "pool", "dataset", "path", "owner"] {
                let Some(v) = item[key].as_str() else {
                    continue;
                };
                let hostile = corpus_set.contains(v) || v.contains(&marker);
                if hostile && !accepted.contains(v) {
                    written.push(format!("{list}: {key} = {}", short(v)));
                }
            }
        }
    }
    for f in [
        etc.join("smb/hostplane-shares.conf"),
        etc.join("ganesha/hostplane-exports.conf"),
    ] {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let l = line.trim_start();
            if l.starts_with("touch ")
                || l.starts_with("y: z")
                || l.contains(&format!("{marker}-nl"))
            {
                written.push(format!("{}: injected line {l:?}", f.display()));
            }
        }
    }

    if std::env::var_os("HOSTILE_INPUT_VERBOSE").is_some() {
        for s in sent.iter().filter(|s| s.status < 300) {
            eprintln!(
                "accepted: {} {} {} = {} -> {}",
                s.method.to_uppercase(),
                s.path,
                s.what,
                short(&s.value),
                s.status
            );
        }
    }
    eprintln!(
        "hostile input: {} requests in {:.1} s ({} operations excluded), statuses {by_status:?}; {} values accepted somewhere; {:.1} s in all",
        sent.len(),
        t_sent.as_secs_f64(),
        EXCLUDED.len(),
        accepted.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} server errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        escaped.is_empty(),
        "escaped the daemon's roots: {escaped:?}"
    );
    assert!(
        written.is_empty(),
        "written for refused requests:\n{}",
        written.join("\n")
    );
    // Stop the daemon before the loops go (their drop unmounts the pool).
    drop(d);
}
