//! Validation of what reaches an `lxc-*` command line or a container's config file, and the
//! container as the API shows it ([`view`]).
//!
//! Names in a request body that break the rule are 422 `invalid_name`; a malformed name in a
//! path names nothing (404). Mount sources and targets are checked here for form; whether a
//! source lies inside a pool dataset is [`super::storage::check_mount_source`]'s job.

use std::path::Path;

use hostplane_host::command::validate_name;
use hostplane_host::lxc::{self as hl, Config, MountEntry, Settings};
use hostplane_types::lxc::{LxcContainer, LxcLimits, LxcMount, LxcState};

use crate::error::{ApiError, ApiResult};

/// Most bind mounts hostplane manages on one container.
pub const MAX_MOUNTS: usize = 64;

/// A container name in a request body: `validate_name`'s rule (a letter or digit first, then
/// `A-Za-z0-9_.-`, no `..`, at most 64 bytes), else 422 `invalid_name` naming `field`.
pub fn check_name(field: &str, s: &str) -> ApiResult<()> {
    validate_name("container", s).map_err(|e| ApiError::invalid_field("invalid_name", field, e.to_string()))
}

/// A container name in a path: malformed = 404 (it names nothing).
pub fn check_path_name(s: &str) -> ApiResult<()> {
    validate_name("container", s).map_err(|e| {
        ApiError::not_found(format!("no LXC container named {:?}: {e}", truncate(s)))
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `<pool>/<dataset>`, else 422 `invalid_storage` naming `field`.
pub fn parse_storage(field: &str, s: &str) -> ApiResult<(String, String)> {
    let bad = |why: String| ApiError::invalid_field("invalid_storage", field, why);
    let (pool, ds) = s
        .split_once('/')
        .ok_or_else(|| bad(format!("{:?}: give <pool>/<dataset>", truncate(s))))?;
    validate_name("pool", pool).map_err(|e| bad(e.to_string()))?;
    validate_name("dataset", ds).map_err(|e| bad(e.to_string()))?;
    Ok((pool.to_string(), ds.to_string()))
}

/// A backup file name: a letter or digit first, then `A-Za-z0-9_.-`, no `..`, ending in
/// `.tar.zst`, at most 128 bytes; else 422 `invalid_file`.
pub fn check_backup_file(field: &str, s: &str) -> ApiResult<()> {
    let b = s.as_bytes();
    let ok = s.len() <= 128
        && s.ends_with(".tar.zst")
        && s.len() > ".tar.zst".len()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_file",
            field,
            "a file name of A-Z a-z 0-9 _ . - (a letter or digit first, no \"..\") ending in \
             .tar.zst, at most 128 bytes",
        ))
    }
}

/// Limits in range: memory at least 4 MiB, CPUs 0.01 .. 1024.
pub fn check_limits(field: &str, l: &LxcLimits) -> ApiResult<()> {
    if l.memory_bytes.is_some_and(|m| m < 4 << 20) {
        return Err(ApiError::invalid_field(
            "invalid_limits",
            format!("{field}.memory_bytes"),
            "at least 4194304 (4 MiB)",
        ));
    }
    if l.cpus.is_some_and(|c| !(0.01..=1024.0).contains(&c) || c.is_nan()) {
        return Err(ApiError::invalid_field(
            "invalid_limits",
            format!("{field}.cpus"),
            "0.01 .. 1024",
        ));
    }
    Ok(())
}

/// A mount's form: an absolute source without whitespace, `..` components or characters the
/// fstab line cannot carry; a relative target of plain names. Returns the config entry.
pub fn check_mount(field: &str, m: &LxcMount) -> ApiResult<MountEntry> {
    let bad = |f: &str, why: &str| {
        ApiError::invalid_field("invalid_mount", format!("{field}.{f}"), why.to_string())
    };
    let src = Path::new(&m.source);
    let src_ok = m.source.len() <= 1024
        && src.is_absolute()
        && !m.source.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '#')
        && src
            .components()
            .all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
    if !src_ok {
        return Err(bad(
            "source",
            "an absolute host path without spaces, backslashes, # or .. components",
        ));
    }
    let tgt_ok = m.target.len() <= 255
        && !m.target.is_empty()
        && m.target.split('/').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
                && part != ".."
                && !part.contains("..")
        });
    if !tgt_ok {
        return Err(bad(
            "target",
            "a path inside the container relative to its root (mnt/data): names of A-Z a-z 0-9 \
             _ . - separated by /, no ..",
        ));
    }
    Ok(MountEntry {
        source: m.source.trim_end_matches('/').to_string(),
        target: m.target.clone(),
        read_only: m.read_only,
    })
}

pub fn state(s: hl::State) -> LxcState {
    match s {
        hl::State::Stopped => LxcState::Stopped,
        hl::State::Starting => LxcState::Starting,
        hl::State::Running => LxcState::Running,
        hl::State::Stopping => LxcState::Stopping,
        hl::State::Aborting => LxcState::Aborting,
        hl::State::Freezing => LxcState::Freezing,
        hl::State::Frozen => LxcState::Frozen,
        hl::State::Thawed => LxcState::Thawed,
        hl::State::Unknown => LxcState::Unknown,
    }
}

pub fn href(name: &str) -> String {
    format!("/api/v1/lxc/{name}")
}

/// The container as the API shows it, from `lxc-info` and its config; `storage` labels the
/// rootfs directory ([`super::storage::label`]).
pub fn view(info: &hl::Info, cfg: &Config, storage: Option<String>) -> LxcContainer {
    let s: Settings = cfg.settings();
    LxcContainer {
        href: href(&info.name),
        name: info.name.clone(),
        state: state(info.state),
        pid: info.pid,
        ips: info.ips.clone(),
        memory_bytes: info.memory_bytes,
        storage,
        rootfs: cfg
            .rootfs()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        autostart: s.autostart,
        start_order: s.start_order,
        start_delay_secs: s.start_delay_secs,
        limits: LxcLimits {
            memory_bytes: s.memory_bytes,
            cpus: s.cpus,
        },
        mounts: s
            .mounts
            .into_iter()
            .map(|m| LxcMount {
                source: m.source,
                target: m.target,
                read_only: m.read_only,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_bodies_are_422() {
        for bad in ["", "-rf", "a..b", "..", "a/b", "a b", &"x".repeat(65), "naïve"] {
            let e = check_name("name", bad).unwrap_err();
            assert_eq!(e.code(), "invalid_name", "{bad:?}");
            assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        }
        assert!(check_name("name", "web-1.a_b").is_ok());
        assert_eq!(check_path_name("-x").unwrap_err().code(), "not_found");
    }

    #[test]
    fn storage_and_files() {
        assert_eq!(
            parse_storage("storage", "tank/ct").unwrap(),
            ("tank".into(), "ct".into())
        );
        for bad in ["tank", "tank/", "/ct", "tank/a/b", "../x", "tank/..", "-t/x"] {
            assert_eq!(parse_storage("storage", bad).unwrap_err().code(), "invalid_storage", "{bad}");
        }
        assert!(check_backup_file("file", "web-2026.tar.zst").is_ok());
        for bad in [".tar.zst", "a..b.tar.zst", "-a.tar.zst", "a.tar", "a/b.tar.zst", "a b.tar.zst"] {
            assert!(check_backup_file("file", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_and_limits() {
        let m = |s: &str, t: &str| LxcMount {
            source: s.into(),
            target: t.into(),
            read_only: false,
        };
        assert!(check_mount("mounts[0]", &m("/srv/pools/tank/data/", "mnt/data")).is_ok());
        for (s, t) in [
            ("relative", "mnt"),
            ("/a/../etc", "mnt"),
            ("/a b", "mnt"),
            ("/a#b", "mnt"),
            ("/srv", "/mnt"),
            ("/srv", "../mnt"),
            ("/srv", "mnt/../.."),
            ("/srv", ""),
            ("/srv", "a b"),
        ] {
            assert_eq!(
                check_mount("mounts[0]", &m(s, t)).unwrap_err().code(),
                "invalid_mount",
                "{s} {t}"
            );
        }
        assert!(check_limits("limits", &LxcLimits { memory_bytes: Some(64 << 20), cpus: Some(0.5) }).is_ok());
        assert!(check_limits("limits", &LxcLimits { memory_bytes: Some(1), cpus: None }).is_err());
        assert!(check_limits("limits", &LxcLimits { memory_bytes: None, cpus: Some(0.0) }).is_err());
    }
}
