//! Every external program runs through a host adapter (`crates/host/src`), checked on the
//! source: no `Cmd::new` in the server (an area calls a typed function of a host module), and
//! no raw `std::process::Command` / `tokio::process::Command` in the non-test source of any
//! crate except the command runner itself (`crates/host/src/command.rs`), which gives argv
//! only, timeouts, process groups and typed errors to every run.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's code without its `#[cfg(test)] mod … { … }` blocks (each replaced by its line
/// breaks, so line numbers stay right). Braces are counted naively: test modules here have
/// balanced braces in their strings too.
fn non_test(src: &str) -> String {
    let block = regex::Regex::new(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{").unwrap();
    let mut out = String::new();
    let mut rest = src;
    while let Some(m) = block.find(rest) {
        out.push_str(&rest[..m.start()]);
        let mut depth = 1;
        let mut end = rest.len();
        for (i, c) in rest[m.end()..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = m.end() + i + 1;
                break;
            }
        }
        out.extend(rest[m.start()..end].matches('\n').map(|_| '\n'));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `(line number, line)` where each match of `re` in `src` starts.
fn hits<'a>(src: &'a str, re: &regex::Regex) -> Vec<(usize, &'a str)> {
    re.find_iter(src)
        .map(|m| {
            let n = src[..m.start()].matches('\n').count();
            (n + 1, src.lines().nth(n).unwrap_or("").trim())
        })
        .collect()
}

/// `std::process::Command`, `tokio::process::Command`, `process::Command::new`, grouped
/// imports (`process::{Child, Command}`, also over several lines) and the std extension trait.
fn raw_command() -> regex::Regex {
    regex::Regex::new(r"\bprocess::Command\b|\bprocess::\{[^}]*\bCommand\b|\bCommandExt\b").unwrap()
}

#[test]
fn no_cmd_new_in_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let me = root.join("host_adapters.rs");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let re = regex::Regex::new(r"\bCmd::new\b").unwrap();
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| **f != me) {
        let src = std::fs::read_to_string(f).unwrap();
        for (n, l) in hits(&src, &re) {
            bad.push(format!("{}:{n}: {l}", f.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "run programs through a typed function of a host adapter in crates/host/src, not \
         Cmd::new in the server:\n{}",
        bad.join("\n")
    );
    assert!(files.len() > 50, "scanned only {} files", files.len());
}

#[test]
fn no_raw_process_command_outside_the_runner() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let runner = crates.join("host/src/command.rs");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&crates).unwrap() {
        let src = e.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let me = crates.join("server/src/host_adapters.rs");
    let re = raw_command();
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| **f != runner && **f != me) {
        let src = std::fs::read_to_string(f).unwrap();
        let code = non_test(&src);
        for (n, l) in hits(&code, &re) {
            bad.push(format!("{}:{n}: {l}", f.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "spawn programs with hostplane_host::command (Cmd::run, Cmd::spawn) inside a host \
         adapter, not with a raw process Command:\n{}",
        bad.join("\n")
    );
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("host/src/qemu/process.rs")),
        "the scan missed crates/host/src"
    );
}

#[test]
fn the_patterns_catch_what_they_should() {
    let re = raw_command();
    for l in [
        "use tokio::process::{Child, Command};",
        "let c = std::process::Command::new(\"ls\");",
        "tokio::process::Command::new(p)",
        "use std::os::unix::process::CommandExt;",
        "use std::process::{\n    Command,\n    Stdio,\n};",
    ] {
        assert!(re.is_match(l), "{l}");
    }
    for l in [
        "use std::process::{ExitStatus, Stdio};",
        "Command::Login(a) => x,",
        "pub enum VendorCommand {",
        "use tokio::process::Child;",
        "use std::process::{\n    ExitStatus,\n    Stdio,\n};\nCommand::Login",
    ] {
        assert!(!re.is_match(l), "{l}");
    }
    assert_eq!(
        hits("a\nuse std::process::{\n  Command};\n", &re),
        vec![(2, "use std::process::{")]
    );
    let src = "fn a() {}\n#[cfg(test)]\nmod tests {\n fn b() { use std::process::Command; }\n}\n\
               use tokio::process::Command;\n";
    let code = non_test(src);
    assert_eq!(hits(&code, &re), vec![(6, "use tokio::process::Command;")]);
}
