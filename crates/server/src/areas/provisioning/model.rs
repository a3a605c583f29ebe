//! Stored objects (recipes, profiles, artifacts, runs) as JSON rows of
//! `provisioning_objects(kind, id)`, the built-in recipes, and the checks a spec passes before
//! it is stored.

use std::collections::BTreeMap;

use hostplane_types::provisioning::{
    Profile, ProfileSpec, ProvisioningRun, Provisioner, Recipe, RecipeSpec, RecipeStep,
    RecipeVariable,
};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;
use crate::platform::time;

pub const BASE: &str = "/api/v1/provisioning";

pub fn get<T: DeserializeOwned>(store: &Store, kind: &str, id: &str) -> ApiResult<Option<T>> {
    let data: Option<String> = store.read(|c| {
        c.query_row(
            "SELECT data FROM provisioning_objects WHERE kind = ?1 AND id = ?2",
            params![kind, id],
            |r| r.get(0),
        )
        .optional()
    })?;
    data.map(|d| serde_json::from_str(&d).map_err(ApiError::internal))
        .transpose()
}

pub fn list<T: DeserializeOwned>(store: &Store, kind: &str) -> ApiResult<Vec<T>> {
    let rows: Vec<String> = store.read(|c| {
        let mut st =
            c.prepare("SELECT data FROM provisioning_objects WHERE kind = ?1 ORDER BY id")?;
        st.query_map([kind], |r| r.get(0))?.collect()
    })?;
    rows.iter()
        .map(|d| serde_json::from_str(d).map_err(ApiError::internal))
        .collect()
}

/// Inserts (`create`: 409 `exists` when the id is taken) or replaces.
pub fn put<T: Serialize>(store: &Store, kind: &str, id: &str, v: &T, create: bool) -> ApiResult<()> {
    let data = serde_json::to_string(v).map_err(ApiError::internal)?;
    let now = time::now_string();
    let n = store.write(|tx| {
        if create {
            tx.execute(
                "INSERT OR IGNORE INTO provisioning_objects(kind, id, data, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![kind, id, data, now],
            )
        } else {
            tx.execute(
                "INSERT INTO provisioning_objects(kind, id, data, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT(kind, id) DO UPDATE SET data = ?3, updated_at = ?4",
                params![kind, id, data, now],
            )
        }
    })?;
    if create && n == 0 {
        return Err(ApiError::conflict(
            "exists",
            format!("a {kind} named {id:?} exists"),
        ));
    }
    Ok(())
}

pub fn delete(store: &Store, kind: &str, id: &str) -> ApiResult<bool> {
    Ok(store.write(|tx| {
        tx.execute(
            "DELETE FROM provisioning_objects WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )
    })? > 0)
}

/// Ids of recipes, profiles, artifacts and secrets: lower-case, URL-safe.
pub fn check_id(field: &str, s: &str) -> ApiResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_name",
            field,
            format!("{s:?}: 1-64 of a-z 0-9 . _ -, starting with a letter or digit"),
        ))
    }
}

fn check_var_name(field: &str, s: &str) -> ApiResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_recipe",
            field,
            format!("{s:?} is not a variable name (letters, digits, _)"),
        ))
    }
}

/// A guest path as a command line may carry it inside single quotes.
pub fn check_guest_path(field: &str, p: &str) -> ApiResult<()> {
    // Characters, not bytes: the schema's `maxLength` counts characters.
    if !p.starts_with('/') || p.contains('\'') || p.contains('\n') || p.chars().count() > 1024 {
        return Err(ApiError::invalid_field(
            "invalid_recipe",
            field,
            format!("{p:?}: an absolute path without quotes or newlines"),
        ));
    }
    Ok(())
}

pub fn check_mode(field: &str, m: &Option<String>) -> ApiResult<()> {
    if let Some(m) = m
        && (m.is_empty() || m.len() > 4 || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)))
    {
        return Err(ApiError::invalid_field(
            "invalid_recipe",
            field,
            format!("{m:?} is not an octal mode"),
        ));
    }
    Ok(())
}

/// The longest a step or provisioner may wait: a day (the schema's `maximum`).
const MAX_TIMEOUT_SECS: u64 = 86_400;

fn check_timeout(code: &'static str, field: &str, t: Option<u64>) -> ApiResult<()> {
    match t {
        Some(t) if t > MAX_TIMEOUT_SECS => Err(ApiError::invalid_field(
            code,
            field,
            format!("at most {MAX_TIMEOUT_SECS} seconds"),
        )),
        _ => Ok(()),
    }
}

pub fn check_recipe(r: &RecipeSpec) -> ApiResult<()> {
    check_id("name", &r.name)?;
    for (i, v) in r.variables.iter().enumerate() {
        check_var_name(&format!("variables[{i}].name"), &v.name)?;
    }
    for (field, re) in [("login_prompt", &r.login_prompt), ("shell_prompt", &r.shell_prompt)] {
        if let Some(re) = re {
            regex::Regex::new(re).map_err(|e| {
                ApiError::invalid_field("invalid_recipe", field, format!("not a regex: {e}"))
            })?;
        }
    }
    if r.steps.len() > 500 {
        return Err(ApiError::invalid_field(
            "invalid_recipe",
            "steps",
            "at most 500 steps",
        ));
    }
    for (i, s) in r.steps.iter().enumerate() {
        let f = |x: &str| format!("steps[{i}].{x}");
        if let RecipeStep::Wait { timeout_secs, .. } | RecipeStep::Command { timeout_secs, .. } = s
        {
            check_timeout("invalid_recipe", &f("timeout_secs"), *timeout_secs)?;
        }
        match s {
            RecipeStep::Wait {
                pattern, regex, ..
            } => {
                if pattern.is_empty() {
                    return Err(ApiError::invalid_field(
                        "invalid_recipe",
                        f("pattern"),
                        "empty",
                    ));
                }
                // A regex is checked when no variable is in it; one with variables is
                // checked when the run renders it.
                if *regex && !pattern.contains("{{") {
                    regex::Regex::new(pattern).map_err(|e| {
                        ApiError::invalid_field(
                            "invalid_recipe",
                            f("pattern"),
                            format!("not a regex: {e}"),
                        )
                    })?;
                }
            }
            RecipeStep::Command { command, .. } => {
                if command.contains('\n') {
                    return Err(ApiError::invalid_field(
                        "invalid_recipe",
                        f("command"),
                        "one line (write a script with write_file for more)",
                    ));
                }
            }
            RecipeStep::WriteFile {
                path,
                content,
                artifact,
                mode,
            } => {
                if content.is_some() == artifact.is_some() {
                    return Err(ApiError::invalid_field(
                        "invalid_recipe",
                        f("content"),
                        "give content or artifact, not both",
                    ));
                }
                if !path.contains("{{") {
                    check_guest_path(&f("path"), path)?;
                }
                check_mode(&f("mode"), mode)?;
            }
            RecipeStep::Send { .. } => {}
            RecipeStep::Delay { millis } => {
                if *millis > 600_000 {
                    return Err(ApiError::invalid_field(
                        "invalid_recipe",
                        f("millis"),
                        "at most 600000",
                    ));
                }
            }
        }
    }
    Ok(())
}

pub fn check_profile(p: &ProfileSpec) -> ApiResult<()> {
    check_id("name", &p.name)?;
    check_id("recipe", &p.recipe)?;
    for k in p.variables.keys() {
        check_var_name(&format!("variables.{k}"), k)?;
    }
    if let Some(c) = &p.credential {
        check_id("credential.secret", &c.secret)?;
    }
    for (i, a) in p.artifacts.iter().enumerate() {
        check_id(&format!("artifacts[{i}].artifact"), &a.artifact)?;
        check_guest_path(&format!("artifacts[{i}].dest"), &a.dest)?;
        check_mode(&format!("artifacts[{i}].mode"), &a.mode)?;
    }
    for (i, pr) in p.provisioners.iter().enumerate() {
        match pr {
            Provisioner::Shell {
                inline,
                script,
                timeout_secs,
                ..
            } => {
                check_timeout(
                    "invalid_profile",
                    &format!("provisioners[{i}].timeout_secs"),
                    *timeout_secs,
                )?;
                if inline.is_empty() == script.is_none() {
                    return Err(ApiError::invalid_field(
                        "invalid_profile",
                        format!("provisioners[{i}]"),
                        "give inline commands or a script, not both",
                    ));
                }
                if inline.iter().any(|c| c.contains('\n')) {
                    return Err(ApiError::invalid_field(
                        "invalid_profile",
                        format!("provisioners[{i}].inline"),
                        "one line per command",
                    ));
                }
            }
            Provisioner::File {
                artifact,
                dest,
                mode,
                ..
            } => {
                check_id(&format!("provisioners[{i}].artifact"), artifact)?;
                check_guest_path(&format!("provisioners[{i}].dest"), dest)?;
                check_mode(&format!("provisioners[{i}].mode"), mode)?;
            }
        }
    }
    Ok(())
}

pub fn recipe_view(spec: RecipeSpec, builtin: bool) -> Recipe {
    Recipe::new(
        spec.name.clone(),
        format!("{BASE}/recipes/{}", spec.name),
        builtin,
        spec,
    )
}

pub fn profile_view(spec: ProfileSpec) -> Profile {
    Profile::new(
        spec.name.clone(),
        format!("{BASE}/profiles/{}", spec.name),
        spec,
    )
}

/// A recipe or profile found by id: its spec, and whether it ships with hostplane.
pub struct Found<T> {
    pub spec: T,
    pub builtin: bool,
}

fn var(name: &str, default: Option<&str>, secret: bool, description: &str) -> RecipeVariable {
    RecipeVariable {
        name: name.into(),
        default: default.map(Into::into),
        secret,
        description: Some(description.into()),
    }
}

fn network_vars() -> Vec<RecipeVariable> {
    vec![
        var("iface", Some("eth0"), false, "the guest's NIC"),
        var(
            "ip",
            Some("10.0.2.15"),
            false,
            "the guest's address (QEMU user-mode networking's default)",
        ),
        var("prefix", Some("24"), false, "prefix length"),
        var("gateway", Some("10.0.2.2"), false, "the default gateway"),
    ]
}

fn network_command(sudo: &str) -> RecipeStep {
    RecipeStep::Command {
        // busybox `ip addr` has no `replace`: add, or find it there already (a rerun).
        command: format!(
            "{sudo}ip link set {{{{iface}}}} up && {{ {sudo}ip addr add {{{{ip}}}}/{{{{prefix}}}} dev {{{{iface}}}} 2>/dev/null || ip addr show dev {{{{iface}}}} | grep -q 'inet {{{{ip}}}}/'; }} && {sudo}ip route replace default via {{{{gateway}}}}"
        ),
        expect_exit: vec![0],
        timeout_secs: Some(60),
    }
}

fn cloud(name: &str, family: &str, user: &str) -> RecipeSpec {
    let mut variables = vec![
        var("username", Some(user), false, "the account to log in as"),
        var(
            "password",
            None,
            true,
            "its password (from the profile's credential)",
        ),
    ];
    variables.extend(network_vars());
    RecipeSpec {
        name: name.into(),
        description: Some(format!(
            "{family} cloud image: log in on the serial console, set up the network \
             (a password for {user} set by the image's cloud-init seed)"
        )),
        os_family: family.into(),
        login_prompt: Some(r"login: $".into()),
        shell_prompt: Some(r"[#$] $".into()),
        variables,
        steps: {
            let mut s = login_steps(600);
            s.push(network_command("sudo -n "));
            s
        },
    }
}

/// Log in at a `login:` prompt. login prints `Password:` before it turns the echo off (busybox
/// login does, seen on the test guest): a password typed at once is echoed, so the run waits a
/// moment first.
fn login_steps(login_timeout: u64) -> Vec<RecipeStep> {
    vec![
        // Enter wakes a getty that printed its prompt before the console was watched.
        RecipeStep::Send {
            text: String::new(),
            newline: true,
        },
        RecipeStep::Wait {
            pattern: r"login: $".into(),
            regex: true,
            timeout_secs: Some(login_timeout),
        },
        RecipeStep::Send {
            text: "{{username}}".into(),
            newline: true,
        },
        RecipeStep::Wait {
            pattern: "Password:".into(),
            regex: false,
            timeout_secs: Some(60),
        },
        RecipeStep::Delay { millis: 1000 },
        RecipeStep::Send {
            text: "{{password}}".into(),
            newline: true,
        },
        RecipeStep::Wait {
            pattern: r"[#$] $".into(),
            regex: true,
            timeout_secs: Some(120),
        },
    ]
}

/// The recipes hostplane ships (read-only).
pub fn builtin_recipes() -> Vec<RecipeSpec> {
    vec![
        RecipeSpec {
            name: "test-guest".into(),
            description: Some(
                "hostplane's tiny test guest (scripts/guest-kit) booted with `mode=login`: \
                 busybox getty/login on ttyS0 after the HOSTPLANE-GUEST-READY banner; logs in \
                 (the kit's root password, from the profile's credential) and sets up the \
                 network"
                    .into(),
            ),
            os_family: "linux".into(),
            login_prompt: Some(r"login: $".into()),
            shell_prompt: Some(r"[#$] $".into()),
            variables: {
                let mut v = vec![
                    var("username", Some("root"), false, "the account to log in as"),
                    var(
                        "password",
                        None,
                        true,
                        "its password (from the profile's credential; the kit's root-password file)",
                    ),
                ];
                v.extend(network_vars());
                v
            },
            steps: {
                let mut s = vec![RecipeStep::Wait {
                    pattern: "HOSTPLANE-GUEST-READY".into(),
                    regex: false,
                    timeout_secs: Some(300),
                }];
                s.extend(login_steps(120));
                s.push(network_command(""));
                s
            },
        },
        cloud("debian-cloud", "debian", "debian"),
        cloud("ubuntu-cloud", "ubuntu", "ubuntu"),
    ]
}

pub fn find_recipe(store: &Store, id: &str) -> ApiResult<Found<RecipeSpec>> {
    if let Some(spec) = builtin_recipes().into_iter().find(|r| r.name == id) {
        return Ok(Found {
            spec,
            builtin: true,
        });
    }
    get::<RecipeSpec>(store, "recipe", id)?
        .map(|spec| Found {
            spec,
            builtin: false,
        })
        .ok_or_else(|| ApiError::not_found(format!("recipe {id:?}")))
}

pub fn all_recipes(store: &Store) -> ApiResult<Vec<Recipe>> {
    let mut v: Vec<Recipe> = builtin_recipes()
        .into_iter()
        .map(|r| recipe_view(r, true))
        .collect();
    v.extend(
        list::<RecipeSpec>(store, "recipe")?
            .into_iter()
            .map(|s| recipe_view(s, false)),
    );
    Ok(v)
}

pub fn find_profile(store: &Store, id: &str) -> ApiResult<Found<ProfileSpec>> {
    get::<ProfileSpec>(store, "profile", id)?
        .map(|spec| Found {
            spec,
            builtin: false,
        })
        .ok_or_else(|| ApiError::not_found(format!("profile {id:?}")))
}

/// A run as stored: the view plus what a retry needs (the run's own variables, sealed with
/// the secret store's key, hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: ProvisioningRun,
    pub vars_sealed: String,
    pub guest_base_url: String,
    pub skip: Vec<String>,
}

pub fn find_run(store: &Store, id: &str) -> ApiResult<RunRecord> {
    get::<RunRecord>(store, "run", id)?
        .ok_or_else(|| ApiError::not_found(format!("provisioning run {id:?}")))
}

/// Run variables for sealing.
pub fn encode_vars(v: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step timeout above the schema's maximum is refused (schemathesis found it accepted).
    #[test]
    fn step_timeouts_are_bounded() {
        let recipe = |t: u64| -> RecipeSpec {
            serde_json::from_value(serde_json::json!({
                "name": "r",
                "steps": [{"type": "command", "command": "true", "timeout_secs": t}],
            }))
            .unwrap()
        };
        assert!(check_recipe(&recipe(MAX_TIMEOUT_SECS)).is_ok());
        assert!(check_recipe(&recipe(MAX_TIMEOUT_SECS + 1)).is_err());
        assert!(check_recipe(&recipe(u64::MAX)).is_err());
    }

    #[test]
    fn transports_serial_guest_agent_and_ssh() {
        let profile = |t: &str| -> ProfileSpec {
            serde_json::from_value(serde_json::json!({
                "name": "p", "recipe": "test-guest", "transport": t,
            }))
            .unwrap()
        };
        assert!(check_profile(&profile("serial")).is_ok());
        assert!(check_profile(&profile("guest_agent")).is_ok());
        assert!(check_profile(&profile("ssh")).is_ok());
    }

    /// The shipped test-guest recipe logs in: waits for the banner, the login prompt and the
    /// password prompt, pauses before typing the password (login turns the echo off late).
    #[test]
    fn test_guest_recipe_logs_in() {
        let r = builtin_recipes()
            .into_iter()
            .find(|r| r.name == "test-guest")
            .unwrap();
        check_recipe(&r).unwrap();
        let pw = r
            .steps
            .iter()
            .position(|s| matches!(s, RecipeStep::Send { text, .. } if text == "{{password}}"))
            .unwrap();
        assert!(matches!(r.steps[pw - 1], RecipeStep::Delay { millis } if millis >= 500));
        assert!(matches!(&r.steps[pw - 2], RecipeStep::Wait { pattern, .. } if pattern == "Password:"));
        assert!(r.variables.iter().any(|v| v.name == "password" && v.secret));
    }
}
