//! Validation of everything that reaches an engine: names, image references, create requests,
//! exec requests. Pure functions; a refused value answers 422 before any engine is asked, so
//! bad input changes nothing.

use std::path::{Component, Path};

use hostplane_types::containers::{
    ContainerCreate, ExecRequest, IMAGE_MAX_LEN, RestartPolicyName,
};

use crate::error::{ApiError, ApiResult};

/// Container, volume, network and engine names (also container ids, which are hex).
pub fn check_name(field: &str, s: &str) -> ApiResult<()> {
    hostplane_host::command::validate_name(field, s)
        .map_err(|e| ApiError::invalid_field("invalid_name", field, e.to_string()))
}

/// A name in a URL path: one that is not a valid name cannot exist, so 404 (a body's name that
/// is malformed is 422, [`check_name`]). It never reaches an engine either way.
pub fn check_path_name(what: &str, s: &str) -> ApiResult<()> {
    hostplane_host::command::validate_name(what, s).map_err(|e| {
        ApiError::not_found(format!("no {what} named {:?}: {e}", truncate(s)))
    })
}

/// Image references: `[registry[:port]/]path[:tag][@digest]`, no `..`, no leading `-`.
pub fn check_image(field: &str, s: &str) -> ApiResult<()> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= IMAGE_MAX_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b':' | b'@' | b'-'))
        && !s.contains("..")
        && !s.contains("//");
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_image",
            field,
            format!(
                "invalid image reference {:?}: 1 to {IMAGE_MAX_LEN} of A-Z a-z 0-9 . _ / : @ -, \
                 starting with a letter or digit, without \"..\"",
                truncate(s)
            ),
        ))
    }
}

/// An image id or reference to delete: a reference, or `sha256:<hex>`.
pub fn check_image_ref(field: &str, s: &str) -> ApiResult<()> {
    check_image(field, s)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// An absolute path with only plain components (no `.`, `..`, NUL), at most 4096 bytes.
pub fn check_abs_path(field: &str, s: &str) -> ApiResult<()> {
    let p = Path::new(s);
    let plain = p
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    // `components()` drops a `.` inside a path (`/a/./b`): look at the text too.
    let dots = s.split('/').any(|c| c == "." || c == "..");
    if s.len() <= 4096 && p.is_absolute() && plain && !dots && !s.contains('\0') && !s.contains(':') {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_path",
            field,
            format!(
                "{:?} is not an absolute path without . or .. (and without ':')",
                truncate(s)
            ),
        ))
    }
}

fn check_env(field: &str, env: &std::collections::BTreeMap<String, String>) -> ApiResult<()> {
    if env.len() > 256 {
        return Err(ApiError::invalid_field(
            "invalid_env",
            field,
            "at most 256 variables",
        ));
    }
    for (k, v) in env {
        let kb = k.as_bytes();
        let ok_key = !kb.is_empty()
            && kb.len() <= 256
            && (kb[0].is_ascii_alphabetic() || kb[0] == b'_')
            && kb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if !ok_key || v.contains('\0') || v.len() > 32768 {
            return Err(ApiError::invalid_field(
                "invalid_env",
                format!("{field}.{}", truncate(k)),
                "names are [A-Za-z_][A-Za-z0-9_]* (at most 256 bytes); values at most 32768 \
                 bytes without NUL",
            ));
        }
    }
    Ok(())
}

fn check_args(field: &str, args: &[String], min: usize) -> ApiResult<()> {
    if args.len() < min || args.len() > 256 {
        return Err(ApiError::invalid_field(
            "invalid_cmd",
            field,
            format!("{min} to 256 arguments"),
        ));
    }
    if args.iter().any(|a| a.contains('\0') || a.len() > 32768) {
        return Err(ApiError::invalid_field(
            "invalid_cmd",
            field,
            "arguments are at most 32768 bytes, without NUL",
        ));
    }
    Ok(())
}

/// Checks a create request's form. Where a caller below admin may bind is checked by the
/// handler against the pools (`platform::pool_paths`).
pub fn check_create(req: &ContainerCreate) -> ApiResult<()> {
    check_name("name", &req.name)?;
    check_image("image", &req.image)?;
    if let Some(cmd) = &req.cmd {
        check_args("cmd", cmd, 0)?;
    }
    check_env("env", &req.env)?;
    if req.ports.len() > 64 || req.mounts.len() > 64 || req.volumes.len() > 64 {
        return Err(ApiError::invalid(
            "too_many_items",
            "at most 64 ports, 64 mounts and 64 volumes",
        ));
    }
    for (i, p) in req.ports.iter().enumerate() {
        if p.container_port == 0 {
            return Err(ApiError::invalid_field(
                "invalid_port",
                format!("ports[{i}].container_port"),
                "must be 1 .. 65535",
            ));
        }
        if let Some(ip) = &p.host_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ApiError::invalid_field(
                "invalid_port",
                format!("ports[{i}].host_ip"),
                "must be an IP address",
            ));
        }
    }
    for (i, m) in req.mounts.iter().enumerate() {
        check_abs_path(&format!("mounts[{i}].source"), &m.source)?;
        check_abs_path(&format!("mounts[{i}].target"), &m.target)?;
        if !Path::new(&m.source).is_dir() && !Path::new(&m.source).is_file() {
            return Err(ApiError::invalid_field(
                "invalid_path",
                format!("mounts[{i}].source"),
                format!("{} does not exist", m.source),
            ));
        }
    }
    for (i, v) in req.volumes.iter().enumerate() {
        check_name(&format!("volumes[{i}].name"), &v.name)?;
        check_abs_path(&format!("volumes[{i}].target"), &v.target)?;
    }
    if req.restart.name != RestartPolicyName::OnFailure && req.restart.max_retries != 0 {
        return Err(ApiError::invalid_field(
            "invalid_restart",
            "restart.max_retries",
            "only with restart policy on-failure",
        ));
    }
    if req.restart.max_retries > 1000 {
        return Err(ApiError::invalid_field(
            "invalid_restart",
            "restart.max_retries",
            "at most 1000",
        ));
    }
    if let Some(m) = req.limits.memory_bytes
        && !(6 << 20..=1 << 40).contains(&m)
    {
        return Err(ApiError::invalid_field(
            "invalid_limits",
            "limits.memory_bytes",
            "must be 6291456 (6 MiB) .. 1099511627776 (1 TiB)",
        ));
    }
    if let Some(c) = req.limits.cpus
        && !(c.is_finite() && (0.01..=1024.0).contains(&c))
    {
        return Err(ApiError::invalid_field(
            "invalid_limits",
            "limits.cpus",
            "must be 0.01 .. 1024",
        ));
    }
    if let Some(p) = req.limits.pids
        && !(1..=4_194_304).contains(&p)
    {
        return Err(ApiError::invalid_field(
            "invalid_limits",
            "limits.pids",
            "must be 1 .. 4194304",
        ));
    }
    if let Some(n) = &req.network {
        check_name("network", n)?;
    }
    check_labels(&req.labels)
}

/// Labels: at most 256; keys `A-Z a-z 0-9 . _ - /`, values without NUL.
pub fn check_labels(labels: &std::collections::BTreeMap<String, String>) -> ApiResult<()> {
    if labels.len() > 256 {
        return Err(ApiError::invalid_field(
            "invalid_label",
            "labels",
            "at most 256 labels",
        ));
    }
    for (k, v) in labels {
        let ok_key = !k.is_empty()
            && k.len() <= 256
            && k.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'));
        if !ok_key || v.contains('\0') || v.len() > 4096 {
            return Err(ApiError::invalid_field(
                "invalid_label",
                format!("labels.{}", truncate(k)),
                "keys are 1 to 256 of A-Z a-z 0-9 . _ - /; values at most 4096 bytes without NUL",
            ));
        }
    }
    Ok(())
}

pub fn check_exec(req: &ExecRequest) -> ApiResult<()> {
    check_args("cmd", &req.cmd, 1)?;
    check_env("env", &req.env)?;
    if let Some(u) = &req.user {
        let ok = !u.is_empty()
            && u.len() <= 64
            && !u.starts_with('-')
            && u.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b':'));
        if !ok {
            return Err(ApiError::invalid_field(
                "invalid_user",
                "user",
                "user[:group]: A-Z a-z 0-9 _ . - (at most 64 bytes)",
            ));
        }
    }
    if let Some(w) = &req.workdir {
        check_abs_path("workdir", w)?;
    }
    if let Some(t) = req.timeout_secs
        && !(1..=3600).contains(&t)
    {
        return Err(ApiError::invalid_field(
            "invalid_timeout",
            "timeout_secs",
            "must be 1 .. 3600",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostplane_types::containers::{BindMount, ContainerLimits};

    fn req() -> ContainerCreate {
        serde_json::from_value(serde_json::json!({"name": "web", "image": "localhost/bb:1"}))
            .unwrap()
    }

    #[test]
    fn names_and_images() {
        for bad in ["", "-x", "a..b", "a/b", ".a", "a b"] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
        check_name("name", "web-1.a_b").unwrap();
        for bad in ["", "-x", "a/../b", "a b", "a;b", "/abs", "a//b"] {
            assert!(check_image("image", bad).is_err(), "{bad}");
        }
        for good in [
            "busybox",
            "localhost/bb:latest",
            "reg.example:5000/a/b@sha256:0123abcd",
            "sha256:0123",
        ] {
            check_image("image", good).unwrap();
        }
    }

    #[test]
    fn create_requests() {
        check_create(&req()).unwrap();
        let mut r = req();
        r.mounts.push(BindMount {
            source: "/tmp".into(),
            target: "/data".into(),
            read_only: false,
        });
        check_create(&r).unwrap();
        r.mounts[0].source = "/tmp/../etc".into();
        assert!(check_create(&r).is_err());
        let mut r = req();
        r.limits = ContainerLimits {
            memory_bytes: Some(1024),
            ..Default::default()
        };
        assert!(check_create(&r).is_err());
        let mut r = req();
        r.env.insert("1BAD".into(), "x".into());
        assert!(check_create(&r).is_err());
        let mut r = req();
        r.labels.insert("a b".into(), "x".into());
        assert!(check_create(&r).is_err());
    }
}
