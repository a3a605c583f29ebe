//! Every curl example in `docs/*.md` (```sh blocks, lines starting with `curl`, `\`-continued)
//! run with curl itself against a live daemon over HTTPS. The docs define their variables at the
//! top of each example: `API` (the daemon's `/api/v1`), `H` (the bearer header from `$TOKEN`) and
//! `J` (the JSON content type); `$JOB` is the job of the last `202` answer.
//!
//! An example may say in a comment line above it:
//! - `# needs: <fixture>`: it needs something this test does not set up and is skipped (a pool on
//!   loop devices: `shares.rs` runs the same requests live; systemd: `services.rs` does);
//! - `# expect: <status>`: the status it documents, when that is not 2xx/3xx/409/422.
//!
//! Every other example must answer: curl exits 0, and a status that is 2xx/3xx or a 409/422 the
//! daemon decided on (never 5xx, 400, 401, 403, 404, 405 or 415: a wrong route, method, header or
//! credential in the doc).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Daemon, Opts};

struct Example {
    doc: String,
    line: usize,
    text: String,
    needs: Option<String>,
    expect: Option<u16>,
}

fn examples(dir: &Path) -> Vec<Example> {
    let mut out = Vec::new();
    let mut docs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.file_name().unwrap().to_string_lossy().into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let (mut in_sh, mut needs, mut expect) = (false, None, None);
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim_start();
            let start = i;
            i += 1;
            if l.starts_with("```") {
                in_sh = !in_sh && l.trim() == "```sh";
                continue;
            }
            if !in_sh {
                continue;
            }
            if let Some(n) = l.strip_prefix("# needs:") {
                needs = Some(n.trim().to_string());
            } else if let Some(n) = l.strip_prefix("# expect:") {
                expect = Some(n.trim().parse().expect("# expect: <status>"));
            } else if l.starts_with("curl ") {
                let mut cmd = l.to_string();
                while cmd.ends_with('\\') && i < lines.len() {
                    cmd.pop();
                    cmd.push(' ');
                    cmd.push_str(lines[i].trim());
                    i += 1;
                }
                out.push(Example {
                    doc: name.clone(),
                    line: start + 1,
                    text: cmd,
                    needs: needs.take(),
                    expect: expect.take(),
                });
            } else if !l.starts_with('#') {
                needs = None;
                expect = None;
            }
        }
    }
    out
}

#[tokio::test]
async fn every_curl_example_in_docs_runs_against_a_live_daemon() {
    let d = Daemon::start_with(Opts {
        https: true,
        // Share users must not become accounts of this machine.
        config: Some("[shares]\nunix_accounts = false\n".into()),
        ..Default::default()
    });
    // A kernel and an initrd for the direct-kernel-boot example (defining a VM reads neither).
    let kernels = d.data_dir().join("vms/kernels");
    std::fs::create_dir_all(&kernels).unwrap();
    std::fs::write(kernels.join("vmlinuz"), b"kernel").unwrap();
    std::fs::write(kernels.join("initrd.img"), b"initrd").unwrap();

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let all = examples(&docs);
    assert!(all.len() >= 6, "too few curl examples found: {}", all.len());
    let out = tempfile::NamedTempFile::new().unwrap();
    let headers = tempfile::NamedTempFile::new().unwrap();
    let mut job = String::from("no-job-yet");
    let mut ran = 0;
    for ex in &all {
        let at = format!("docs/{}:{}", ex.doc, ex.line);
        if let Some(n) = &ex.needs {
            eprintln!("{at}: skipped (needs {n})");
            continue;
        }
        let text = ex
            .text
            .replace("$API", &format!("{}/api/v1", d.base))
            .replace("$TOKEN", &d.token)
            .replace("$JOB", &job)
            .replace("\"$H\"", &format!("\"Authorization: Bearer {}\"", d.token))
            .replace("\"$J\"", "\"content-type: application/json\"");
        assert!(
            !text.contains('$'),
            "{at}: an undefined variable: {}",
            ex.text
        );
        let argv = shlex::split(&text).unwrap_or_else(|| panic!("{at}: cannot split {text}"));
        assert_eq!(argv[0], "curl");
        let r = Command::new("curl")
            .args(&argv[1..])
            .arg("-o")
            .arg(out.path())
            .arg("-D")
            .arg(headers.path())
            .args(["-w", "%{http_code}", "--max-time", "60"])
            .output()
            .expect("curl is installed");
        assert!(r.status.success(), "{at}: curl failed: {r:?}");
        let status: u16 = String::from_utf8_lossy(&r.stdout).trim().parse().unwrap();
        let body = std::fs::read_to_string(out.path()).unwrap_or_default();
        let ok = match ex.expect {
            Some(s) => status == s,
            None => status < 400 || status == 409 || status == 422,
        };
        assert!(ok, "{at}: {status} {body}\n{}", ex.text);
        if status == 202 {
            let h = std::fs::read_to_string(headers.path()).unwrap();
            if let Some(loc) = h.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("location:")
                    .map(str::to_string)
            }) {
                job = loc.trim().rsplit('/').next().unwrap().to_string();
            }
        }
        eprintln!("{at}: {status}");
        ran += 1;
    }
    assert!(ran >= 4, "only {ran} examples ran");
}
