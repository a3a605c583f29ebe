//! The naming conventions of docs/conventions.md, checked on the source of every area: job kinds
//! are `<area>.<action>` and lock keys `<area>/<stable id or name>`, `<area>` being the URL's
//! (plural) segment under `/api/v1`.

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

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/areas");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let s = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), s)
        })
        .collect()
}

/// The areas: the folders under `src/areas`, named as their URL segment.
fn areas() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/areas");
    std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.is_dir()
                .then(|| p.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn job_kinds_are_area_dot_action() {
    // Where a kind is written: `kind: "…"`, `…KIND: &str = "…"`, `spec("…"` (pools), the
    // services' `=> "services.…"` and the VM snapshot jobs' `spawn_job(&state, &p.user, "…"`.
    let finders = [
        regex::Regex::new(r#"\bkind: "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"KIND: &str = "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"\bspec\("([^"]+)""#).unwrap(),
        regex::Regex::new(r#"UnitAction::\w+ => "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"spawn_job\(\s*&state,\s*&p\.user,\s*"([^"]+)""#).unwrap(),
    ];
    let areas = areas();
    let kind = regex::Regex::new(r"^([a-z]+)\.[a-z][a-z_]*$").unwrap();
    let mut found = Vec::new();
    for (file, src) in sources() {
        for f in &finders {
            for c in f.captures_iter(&src) {
                let k = c[1].to_string();
                // `kind` is also a field of datasets ("subvolume"), not a job kind.
                if !k.contains('.') {
                    continue;
                }
                let ok = kind
                    .captures(&k)
                    .is_some_and(|m| areas.iter().any(|a| a == &m[1]));
                assert!(
                    ok,
                    "{file}: job kind {k:?} is not <area>.<action> with an area of {areas:?}"
                );
                found.push(k);
            }
        }
    }
    for k in [
        "vms.shutdown",
        "pools.create",
        "disks.wipe",
        "system.selftest",
        "services.restart",
    ] {
        assert!(found.iter().any(|f| f == k), "{k} not found: {found:?}");
    }
}

#[test]
fn lock_keys_are_area_slash_id() {
    let finders = [
        regex::Regex::new(r#"lock_key: Some\(format!\("([^"]+)""#).unwrap(),
        regex::Regex::new(r#"lock_key: Some\("([^"]+)""#).unwrap(),
        regex::Regex::new(r#"LOCK: &str = "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"fn lock_key\(id: &str\) -> String \{\s*format!\("([^"]+)""#).unwrap(),
    ];
    let areas = areas();
    let mut n = 0;
    for (file, src) in sources() {
        for f in &finders {
            for c in f.captures_iter(&src) {
                let k = &c[1];
                let area = k.split('/').next().unwrap();
                assert!(
                    k.contains('/') && areas.iter().any(|a| a == area),
                    "{file}: lock key {k:?} is not <area>/<id>"
                );
                // A disk is locked by its stable id, never by the kernel name.
                assert!(
                    !k.contains("disk.name"),
                    "{file}: {k:?} uses the kernel name"
                );
                n += 1;
            }
        }
    }
    assert!(n >= 10, "only {n} lock keys found");
}

#[test]
fn every_job_kind_has_a_result_schema() {
    // The kinds as `job_kinds_are_area_dot_action` finds them; each has its result type in
    // hostplane_types::jobs (the OpenAPI document's `x-result-schemas`).
    let finders = [
        regex::Regex::new(r#"\bkind: "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"KIND: &str = "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"\bspec\("([^"]+)""#).unwrap(),
        regex::Regex::new(r#"UnitAction::\w+ => "([^"]+)""#).unwrap(),
        regex::Regex::new(r#"spawn_job\(\s*&state,\s*&p\.user,\s*"([^"]+)""#).unwrap(),
    ];
    let mut n = 0;
    for (file, src) in sources() {
        for f in &finders {
            for c in f.captures_iter(&src) {
                let k = &c[1];
                if !k.contains('.') {
                    continue;
                }
                assert!(
                    hostplane_types::jobs::result_schema_of(k).is_some(),
                    "{file}: job kind {k:?} has no result type in hostplane_types::jobs"
                );
                n += 1;
            }
        }
    }
    assert!(n >= 20, "only {n} job kinds found");
}
