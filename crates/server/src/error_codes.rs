//! Every stable error `code` the server can emit is documented in docs/errors.md.
//!
//! The codes are collected from the source of this crate, the way they are written:
//! * a string literal passed where a function or closure takes `code: &'static str`
//!   (`ApiError::invalid`, `conflict`, `JobFailure::new`, `JobFailure::command`, an area's own
//!   `refuse(code, …)`, …): the functions are found by their signature, so a new helper of that
//!   shape is covered without listing it here;
//! * a `code: "…"` field (`ApiError::Unavailable { code: "…", .. }`);
//! * the arms of functions named `code`/`…_code` returning `&'static str` (`ApiError::code()`).
//!
//! A code computed some other way (read from a variable set by an `if`) escapes the scan:
//! write codes as literals at the call.

use std::collections::BTreeSet;
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

/// The crate's sources without their test modules (codes made up by tests are not emitted).
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files
        .into_iter()
        .filter(|p| !p.ends_with("error_codes.rs") && !p.ends_with("conventions.rs"))
        .map(|p| {
            let s = std::fs::read_to_string(&p).unwrap();
            let s = match s.find("#[cfg(test)]\nmod tests") {
                Some(i) => s[..i].to_string(),
                None => s,
            };
            (p.display().to_string(), s)
        })
        .collect()
}

/// The top-level arguments of the call whose `(` is at `open`, as source text.
fn call_args(src: &str, open: usize) -> Vec<&str> {
    let b = src.as_bytes();
    let (mut depth, mut start, mut i) = (0usize, open + 1, open);
    let mut args = Vec::new();
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        args.push(src[start..i].trim());
                        return args;
                    }
                }
                b',' if depth == 1 => {
                    args.push(src[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    args
}

/// Where a code-taking function may be called from.
enum Taker {
    /// A method of `impl Type`: called as `Type::name(` (or `Self::name(` in its file).
    Method { ty: String, name: String },
    /// A free function or closure: called bare in its file, as `module::name(` elsewhere.
    Free { file: String, name: String },
}

/// (code, file) for every code the scan finds.
fn emitted_codes() -> Vec<(String, String)> {
    let sources = sources();
    let fn_sig = regex::Regex::new(
        r"(?m)^( *)(?:pub(?:\([^)]*\))? )?(?:async )?fn (\w+)(?:<[^>]*>)?\(([^)]*)\)",
    )
    .unwrap();
    let closure = regex::Regex::new(r"let (\w+) =\s*(?:move )?\|([^|]*)\|").unwrap();
    let impl_line = regex::Regex::new(r"(?m)^impl(?:<[^>]*>)? (?:[\w:]+ for )?(\w+)").unwrap();
    let konst = regex::Regex::new(r#"const (\w+): &str = "([^"]+)";"#).unwrap();
    // Constants a code may be passed as (`codes::PROCESS`).
    let mut consts = std::collections::HashMap::new();
    for (_, src) in &sources {
        for c in konst.captures_iter(src) {
            consts.insert(c[1].to_string(), c[2].to_string());
        }
    }
    let code_pos = |params: &str| {
        params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.contains("self"))
            .position(|p| p == "code: &'static str")
    };
    // Functions and closures taking `code: &'static str`, with the code's argument position.
    let mut takers: Vec<(Taker, usize)> = Vec::new();
    for (file, src) in &sources {
        for c in fn_sig.captures_iter(src) {
            let Some(pos) = code_pos(&c[3]) else { continue };
            let name = c[2].to_string();
            let start = c.get(0).unwrap().start();
            let owner = impl_line
                .captures_iter(&src[..start])
                .last()
                .map(|i| i[1].to_string());
            let taker = match owner {
                Some(ty) if !c[1].is_empty() => Taker::Method { ty, name },
                _ => Taker::Free {
                    file: file.clone(),
                    name,
                },
            };
            takers.push((taker, pos));
        }
        for c in closure.captures_iter(src) {
            if let Some(pos) = code_pos(&c[2]) {
                let name = c[1].to_string();
                takers.push((
                    Taker::Free {
                        file: file.clone(),
                        name,
                    },
                    pos,
                ));
            }
        }
    }
    let as_code = |arg: &str| -> Option<String> {
        let lit = regex::Regex::new(r#"^"([a-z][a-z0-9_]*|E[0-9]{4})"$"#).unwrap();
        if let Some(c) = lit.captures(arg) {
            return Some(c[1].to_string());
        }
        let konst = arg.rsplit("::").next().unwrap_or(arg);
        consts
            .get(konst)
            .filter(|v| lit.is_match(&format!("\"{v}\"")))
            .cloned()
    };
    // `fn code(…)` / `fn job_code(…)` → &'static str: their literal arms.
    let code_fn = regex::Regex::new(r"fn (?:\w+_)?code\(&self\) -> &'static str \{").unwrap();
    let arm = regex::Regex::new(r#"=> "([a-z][a-z0-9_]*|E[0-9]{4})""#).unwrap();
    let field = regex::Regex::new(r#"\bcode: "([a-z][a-z0-9_]*|E[0-9]{4})""#).unwrap();
    let mut out = Vec::new();
    for (file, src) in &sources {
        for (taker, pos) in &takers {
            let call = match taker {
                Taker::Method { ty, name } => format!(r"\b(?:{ty}|Self)::{name}\("),
                Taker::Free { file: f, name } if f == file => format!(r"(?:^|[^\w.:]){name}\("),
                Taker::Free { name, .. } => format!(r"\w::{name}\("),
            };
            let call = regex::Regex::new(&call).unwrap();
            for m in call.find_iter(src) {
                let args = call_args(src, m.end() - 1);
                if let Some(code) = args.get(*pos).and_then(|a| as_code(a)) {
                    out.push((code, file.clone()));
                }
            }
        }
        for c in field.captures_iter(src) {
            out.push((c[1].to_string(), file.clone()));
        }
        for m in code_fn.find_iter(src) {
            // The body: up to the first line that closes the function.
            let body = &src[m.end()..];
            let end = body.find("\n    }\n").unwrap_or(body.len());
            for c in arm.captures_iter(&body[..end]) {
                out.push((c[1].to_string(), file.clone()));
            }
        }
    }
    out
}

/// Codes docs/errors.md names, written as `` `code` ``.
fn documented() -> BTreeSet<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let re = regex::Regex::new(r"`([a-z][a-z0-9_]*|E[0-9]{4})`").unwrap();
    re.captures_iter(&text).map(|c| c[1].to_string()).collect()
}

#[test]
fn error_codes_documented() {
    let codes = emitted_codes();
    let names: BTreeSet<&str> = codes.iter().map(|(c, _)| c.as_str()).collect();
    // The scan itself works: codes of each way of writing them are found.
    for known in [
        "unauthenticated",    // ApiError::code() arm
        "lock_held",          // ApiError::conflict
        "invalid_name",       // ApiError::invalid_field
        "tool_missing",       // ApiError::tool_missing / code: field
        "command_timeout",    // From<CommandError>
        "wipe_failed",        // JobFailure::command
        "unit_job_failed",    // services' closure taking a code
        "E1002",              // Jidoteki refuse()
        "backup_failed",      // a job_code() arm
        "invalid_pem",        // certificate cert_err()
        "insufficient_space", // ApiError::insufficient_space
    ] {
        assert!(
            names.contains(known),
            "the scan misses {known:?}: {names:?}"
        );
    }
    assert!(names.len() > 150, "only {} codes found", names.len());
    let doc = documented();
    let mut missing: Vec<String> = codes
        .iter()
        .filter(|(c, _)| !doc.contains(c))
        .map(|(c, f)| format!("{c} ({f})"))
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "error codes not in docs/errors.md (add a row: status, code, meaning):\n  {}",
        missing.join("\n  ")
    );
}
