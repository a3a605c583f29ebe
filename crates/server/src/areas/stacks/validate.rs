//! Checks a compose file before it is stored, so that a stack that cannot run, or would reach
//! what its creator may not, never gets into the store.
//!
//! Flow: [`check_text`] parses the YAML (a syntax error is 422 `invalid_compose` with compose's
//! line and column) and checks its shape on the file as written: a `services` mapping of
//! well-named services, each with an `image` and no `build` (images are imported or pulled,
//! never built here), only the top-level keys compose v1 files use, and for callers below
//! admin no keys that give a container the host (`privileged`, `cap_add`, `devices`, `pid`,
//! `ipc`, `userns_mode`, `security_opt`, `cgroup_parent`, `env_file`, `extends`). Errors
//! name the line of the offending key. Then the stacks area runs `docker-compose config` on the
//! files (interpolation, `.env`, relative paths resolved as compose will); [`check_resolved`]
//! checks the images as interpolated (an image may take its tag from `.env`), and
//! [`bind_sources`] hands the binds over: for callers below admin each bind mount's source must
//! be inside a pool's dataset (`platform::pool_paths`).

use serde_yaml::Value;

use crate::error::ApiError;

/// Largest compose file and `.env`.
pub const COMPOSE_MAX: usize = 256 * 1024;
pub const ENV_MAX: usize = 64 * 1024;

const TOP_KEYS: &[&str] = &["version", "services", "volumes", "networks"];
/// Keys that hand a container part of the host: admin only.
const ADMIN_KEYS: &[&str] = &[
    "privileged",
    "cap_add",
    "devices",
    "pid",
    "ipc",
    "userns_mode",
    "security_opt",
    "cgroup_parent",
    "env_file",
    "extends",
    "volumes_from",
    "sysctls",
];

/// A finding: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: Option<usize>,
    pub reason: String,
    /// Allowed to an admin (the rest is wrong for everyone).
    pub admin_only: bool,
}

impl Finding {
    fn new(line: Option<usize>, reason: impl Into<String>) -> Finding {
        Finding {
            line,
            reason: reason.into(),
            admin_only: false,
        }
    }

    pub fn message(&self) -> String {
        match self.line {
            Some(l) => format!("line {l}: {}", self.reason),
            None => self.reason.clone(),
        }
    }

    pub fn to_api_error(&self) -> ApiError {
        if self.admin_only {
            ApiError::invalid_field("compose_not_allowed", "compose", self.message())
        } else {
            ApiError::invalid_field("invalid_compose", "compose", self.message())
        }
    }
}

/// The 1-based line of the key at `path` (each segment a mapping key found below the line of
/// the one before, indented deeper), as written in the file; None when not found.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0usize;
    let mut indent: Option<usize> = None;
    let mut found = None;
    for seg in path {
        let mut hit = None;
        for (i, l) in lines.iter().enumerate().skip(from) {
            let t = l.trim_start();
            let ind = l.len() - t.len();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if let Some(p) = indent
                && ind <= p
                && i > from
            {
                break;
            }
            let t = t.trim_start_matches("- ");
            let key = t.split(':').next().unwrap_or("").trim().trim_matches(['"', '\'']);
            if key == *seg && t.contains(':') {
                hit = Some((i, ind));
                break;
            }
        }
        let (i, ind) = hit?;
        found = Some(i + 1);
        from = i + 1;
        indent = Some(ind);
    }
    found
}

fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && !s.contains("..")
}

fn is_image(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= hostplane_types::containers::IMAGE_MAX_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b':' | b'@' | b'-'))
        && !s.contains("..")
        && !s.contains("//")
}

/// Checks the `.env` text: `KEY=value` lines, comments and blank lines.
pub fn check_env(text: &str) -> Result<(), ApiError> {
    let bad = |line: usize, why: &str| {
        ApiError::invalid_field("invalid_env", "env", format!("line {line}: {why}"))
    };
    if text.len() > ENV_MAX {
        return Err(ApiError::invalid_field(
            "invalid_env",
            "env",
            format!("at most {ENV_MAX} bytes"),
        ));
    }
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if l.contains('\0') {
            return Err(bad(i + 1, "a NUL byte"));
        }
        let Some((k, _)) = t.split_once('=') else {
            return Err(bad(i + 1, "expected KEY=value"));
        };
        let k = k.trim();
        let ok = k
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !ok {
            return Err(bad(i + 1, "the name is [A-Za-z_][A-Za-z0-9_]*"));
        }
    }
    Ok(())
}

/// Parses and checks the compose file as written; returns its services in file order.
pub fn check_text(text: &str, admin: bool) -> Result<Vec<String>, Finding> {
    if text.len() > COMPOSE_MAX {
        return Err(Finding::new(None, format!("larger than {COMPOSE_MAX} bytes")));
    }
    if text.contains('\0') {
        return Err(Finding::new(None, "a NUL byte"));
    }
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let reason = format!("not valid YAML: {e}");
        Finding::new(line, reason)
    })?;
    let Value::Mapping(top) = &doc else {
        return Err(Finding::new(Some(1), "the file is not a mapping of keys"));
    };
    for k in top.keys() {
        let k = k.as_str().unwrap_or("");
        if !TOP_KEYS.contains(&k) && !k.starts_with("x-") {
            return Err(Finding::new(
                line_of(text, &[k]),
                format!("top-level key {k:?} is not supported here (version, services, volumes, networks, x-*)"),
            ));
        }
    }
    if let Some(v) = top.get("version")
        && !matches!(v, Value::String(_) | Value::Number(_))
    {
        return Err(Finding::new(line_of(text, &["version"]), "version is a string"));
    }
    let Some(Value::Mapping(services)) = top.get("services") else {
        return Err(Finding::new(
            line_of(text, &["services"]),
            "a `services` mapping is required",
        ));
    };
    if services.is_empty() {
        return Err(Finding::new(line_of(text, &["services"]), "no services"));
    }
    let mut names = Vec::new();
    for (k, svc) in services {
        let Some(name) = k.as_str() else {
            return Err(Finding::new(line_of(text, &["services"]), "a service name is not a string"));
        };
        let at = |key: Option<&str>| match key {
            Some(key) => line_of(text, &["services", name, key]),
            None => line_of(text, &["services", name]),
        };
        if !is_service_name(name) {
            return Err(Finding::new(
                at(None),
                format!("service name {name:?}: use A-Z a-z 0-9 _ . -, a letter or digit first, no \"..\", at most 63"),
            ));
        }
        let Value::Mapping(svc) = svc else {
            return Err(Finding::new(at(None), format!("service {name:?} is not a mapping")));
        };
        if svc.contains_key("build") {
            return Err(Finding::new(
                at(Some("build")),
                format!("service {name:?}: `build` is not supported (import or pull an image and name it in `image`)"),
            ));
        }
        match svc.get("image") {
            // `${VAR}` parts are checked once compose has resolved them ([`check_resolved`]).
            Some(Value::String(i)) if is_image(i) || i.contains('$') => {}
            Some(_) => {
                return Err(Finding::new(
                    at(Some("image")),
                    format!("service {name:?}: image is a reference of A-Z a-z 0-9 . _ / : @ -, a letter or digit first"),
                ));
            }
            None => {
                return Err(Finding::new(
                    at(None),
                    format!("service {name:?} has no `image`"),
                ));
            }
        }
        if let Some(cn) = svc.get("container_name") {
            let ok = cn
                .as_str()
                .is_some_and(|s| hostplane_host::command::validate_name("container", s).is_ok());
            if !ok {
                return Err(Finding::new(
                    at(Some("container_name")),
                    format!("service {name:?}: container_name follows the name rule (A-Z a-z 0-9 _ . -, no \"..\")"),
                ));
            }
        }
        if !admin {
            for key in ADMIN_KEYS {
                if svc.contains_key(*key) {
                    return Err(Finding {
                        line: at(Some(key)),
                        reason: format!("service {name:?}: `{key}` needs role admin"),
                        admin_only: true,
                    });
                }
            }
            if let Some(Value::String(m)) = svc.get("network_mode")
                && m.starts_with("container:")
            {
                // Joining another container's namespaces reaches containers of other stacks.
                return Err(Finding {
                    line: at(Some("network_mode")),
                    reason: format!("service {name:?}: network_mode container:… needs role admin"),
                    admin_only: true,
                });
            }
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// A bind mount of the resolved file (`docker-compose config`): service and host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub service: String,
    pub source: String,
}

/// The bind mounts of the resolved compose file (compose has made every path absolute).
pub fn bind_sources(resolved: &str) -> Result<Vec<Bind>, String> {
    let doc: Value = serde_yaml::from_str(resolved).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let Some(Value::Mapping(services)) = doc.get("services") else {
        return Ok(out);
    };
    for (k, svc) in services {
        let service = k.as_str().unwrap_or("").to_string();
        let Some(Value::Sequence(vols)) = svc.get("volumes") else {
            continue;
        };
        for v in vols {
            let source = match v {
                // Short syntax: SOURCE:TARGET[:MODE]; a bind when SOURCE is a path.
                Value::String(s) => {
                    let src = s.split(':').next().unwrap_or("");
                    (src.starts_with('/') || src.starts_with('.') || src.starts_with('~'))
                        .then(|| src.to_string())
                }
                Value::Mapping(m) => {
                    let kind = m.get("type").and_then(Value::as_str).unwrap_or("volume");
                    (kind == "bind")
                        .then(|| m.get("source").and_then(Value::as_str).unwrap_or("").to_string())
                }
                _ => None,
            };
            if let Some(source) = source {
                out.push(Bind {
                    service: service.clone(),
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// Checks the images of the resolved file (interpolation applied) like those written out.
pub fn check_resolved(text: &str, resolved: &str) -> Result<(), Finding> {
    let images = service_images(resolved).map_err(|e| Finding::new(None, e))?;
    for (service, image) in images {
        if !is_image(&image) {
            return Err(Finding::new(
                line_of(text, &["services", &service, "image"]),
                format!("service {service:?}: image {image:?} (interpolated) is not a reference of A-Z a-z 0-9 . _ / : @ -, a letter or digit first"),
            ));
        }
    }
    Ok(())
}

/// Each service's image in the resolved file (`docker-compose config`), in file order.
pub fn service_images(resolved: &str) -> Result<Vec<(String, String)>, String> {
    let doc: Value = serde_yaml::from_str(resolved).map_err(|e| e.to_string())?;
    let Some(Value::Mapping(services)) = doc.get("services") else {
        return Ok(Vec::new());
    };
    Ok(services
        .iter()
        .filter_map(|(k, svc)| {
            let image = svc.get("image")?.as_str()?;
            Some((k.as_str()?.to_string(), image.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "version: \"3\"\nservices:\n  a:\n    image: localhost/bb:1\n    command: sleep 3600\n  b:\n    image: localhost/bb:1\n";

    #[test]
    fn a_good_file_lists_its_services() {
        assert_eq!(check_text(OK, false).unwrap(), ["a", "b"]);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let f = check_text("services:\n  a:\n    image: x\n   bad: [\n", false).unwrap_err();
        assert!(f.line.is_some(), "{f:?}");
        assert!(f.message().starts_with("line "), "{}", f.message());
    }

    #[test]
    fn structure_errors_name_the_line() {
        let f = check_text("services:\n  a:\n    image: x\n  b:\n    build: .\n", false).unwrap_err();
        assert_eq!(f.line, Some(5), "{f:?}");
        assert!(f.reason.contains("build"));
        let f = check_text("services:\n  a:\n    command: x\n", false).unwrap_err();
        assert_eq!(f.line, Some(2));
        let f = check_text("services:\n  -bad:\n    image: x\n", false).unwrap_err();
        assert!(f.reason.contains("service name"));
        let f = check_text("services:\n  a:\n    image: ../x\n", false).unwrap_err();
        assert_eq!(f.line, Some(3));
        let f = check_text("secrets:\n  s: {}\nservices:\n  a:\n    image: x\n", false).unwrap_err();
        assert_eq!(f.line, Some(1));
        assert!(check_text("- a\n- b\n", false).is_err());
        assert!(check_text("services: {}\n", false).is_err());
    }

    #[test]
    fn host_keys_need_admin() {
        let t = "services:\n  a:\n    image: x\n    privileged: true\n";
        let f = check_text(t, false).unwrap_err();
        assert!(f.admin_only && f.line == Some(4), "{f:?}");
        assert!(check_text(t, true).is_ok());
    }

    #[test]
    fn env_lines() {
        assert!(check_env("# c\nA=1\n_B = x y\n\n").is_ok());
        assert!(check_env("1A=1\n").is_err());
        assert!(check_env("novalue\n").is_err());
    }

    #[test]
    fn images_from_resolved_files() {
        let r = "services:\n  a:\n    image: reg:5000/x:1\n  b:\n    image: y\n";
        assert_eq!(
            service_images(r).unwrap(),
            [("a".into(), "reg:5000/x:1".into()), ("b".into(), "y".into())]
        );
    }

    #[test]
    fn binds_from_resolved_files() {
        let r = "services:\n  a:\n    image: x\n    volumes:\n    - /srv/a:/a:rw\n    - named:/n:rw\n    - type: bind\n      source: /srv/b\n      target: /b\n";
        let b = bind_sources(r).unwrap();
        assert_eq!(
            b.iter().map(|b| b.source.as_str()).collect::<Vec<_>>(),
            ["/srv/a", "/srv/b"]
        );
    }
}
