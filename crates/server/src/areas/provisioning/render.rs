//! Variables and rendering: `{{name}}` in a recipe's steps and a profile's provisioners.
//!
//! Flow: [`resolve`] merges the recipe's defaults, the profile's variables, the credential and
//! the run's variables (later wins) and says which names are still missing; a run is refused
//! (422) before it starts when any is. [`render`] substitutes; [`Redactor`] replaces every
//! secret value in text that is about to be logged.

use std::collections::{BTreeMap, BTreeSet};

use hostplane_types::provisioning::{RecipeSpec, RecipeStep};

/// Resolved variables and which of them are secret.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub values: BTreeMap<String, String>,
    pub secret: BTreeSet<String>,
}

impl Vars {
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            self.secret
                .iter()
                .filter_map(|k| self.values.get(k).cloned())
                .collect(),
        )
    }
}

/// The names `{{…}}` refers to in `text`, in order.
pub fn names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        out.push(after[..j].trim().to_string());
        rest = &after[j + 2..];
    }
    out
}

/// `text` with every `{{name}}` replaced by `lookup(name)`; names it cannot resolve go to
/// `missing` and stay as they were.
pub fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut BTreeSet<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let name = after[..j].trim();
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => {
                missing.insert(name.to_string());
                out.push_str(&rest[i..i + 2 + j + 2]);
            }
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

/// Merges the layers (later wins). `run_secret` names the run's own values that are secret
/// beyond those the recipe declares secret (the credential's password).
pub fn resolve(recipe: &RecipeSpec, layers: &[&BTreeMap<String, String>]) -> Vars {
    let mut v = Vars::default();
    for d in &recipe.variables {
        if let Some(def) = &d.default {
            v.values.insert(d.name.clone(), def.clone());
        }
        if d.secret {
            v.secret.insert(d.name.clone());
        }
    }
    for l in layers {
        for (k, val) in l.iter() {
            v.values.insert(k.clone(), val.clone());
        }
    }
    v
}

/// Built-in names resolved at run time (`artifact_url.<name>`, `run_id`): present in every
/// render, never missing.
pub fn is_builtin(name: &str) -> bool {
    name == "run_id" || name.starts_with("artifact_url.")
}

/// Every name the steps use that `vars` cannot resolve (built-ins aside).
pub fn unresolved(steps: &[RecipeStep], extra: &[String], vars: &Vars) -> Vec<String> {
    let mut missing = BTreeSet::new();
    let mut texts: Vec<&str> = extra.iter().map(String::as_str).collect();
    for s in steps {
        texts.extend(step_texts(s));
    }
    for t in texts {
        for n in names_in(t) {
            if !is_builtin(&n) && !vars.values.contains_key(&n) {
                missing.insert(n);
            }
        }
    }
    missing.into_iter().collect()
}

fn step_texts(s: &RecipeStep) -> Vec<&str> {
    match s {
        RecipeStep::Wait { pattern, .. } => vec![pattern],
        RecipeStep::Send { text, .. } => vec![text],
        RecipeStep::Command { command, .. } => vec![command],
        RecipeStep::WriteFile { path, content, .. } => {
            let mut v = vec![path.as_str()];
            v.extend(content.as_deref());
            v
        }
        RecipeStep::Delay { .. } => vec![],
    }
}

/// One step with its variables substituted by `lookup`.
pub fn render_step(
    s: &RecipeStep,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut BTreeSet<String>,
) -> RecipeStep {
    let mut sub = |t: &str| substitute(t, lookup, missing);
    match s {
        RecipeStep::Wait {
            pattern,
            regex,
            timeout_secs,
        } => RecipeStep::Wait {
            pattern: sub(pattern),
            regex: *regex,
            timeout_secs: *timeout_secs,
        },
        RecipeStep::Send { text, newline } => RecipeStep::Send {
            text: sub(text),
            newline: *newline,
        },
        RecipeStep::Command {
            command,
            expect_exit,
            timeout_secs,
        } => RecipeStep::Command {
            command: sub(command),
            expect_exit: expect_exit.clone(),
            timeout_secs: *timeout_secs,
        },
        RecipeStep::WriteFile {
            path,
            content,
            artifact,
            mode,
        } => RecipeStep::WriteFile {
            path: sub(path),
            content: content.as_deref().map(&mut sub),
            artifact: artifact.clone(),
            mode: mode.clone(),
        },
        RecipeStep::Delay { millis } => RecipeStep::Delay { millis: *millis },
    }
}

/// The dry run: secret values shown as `<redacted>`, built-ins as `<run_id>`-style
/// placeholders, unknown names left as written and listed.
pub fn dry_run(recipe: &RecipeSpec, vars: &Vars) -> (Vec<RecipeStep>, Vec<String>) {
    let mut missing = BTreeSet::new();
    let lookup = |n: &str| -> Option<String> {
        if is_builtin(n) {
            return Some(format!("<{n}>"));
        }
        let v = vars.values.get(n)?;
        Some(if vars.secret.contains(n) {
            REDACTED.to_string()
        } else {
            v.clone()
        })
    };
    let steps = recipe
        .steps
        .iter()
        .map(|s| render_step(s, &lookup, &mut missing))
        .collect();
    (steps, missing.into_iter().collect())
}

pub const REDACTED: &str = "<redacted>";

/// Replaces secret values in text before it is logged or stored.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        // Empty values would match everywhere; longest first so a secret containing another
        // is replaced whole.
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn contains_secret(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostplane_types::provisioning::RecipeVariable;

    fn recipe() -> RecipeSpec {
        RecipeSpec {
            name: "r".into(),
            description: None,
            os_family: "linux".into(),
            login_prompt: None,
            shell_prompt: None,
            variables: vec![
                RecipeVariable {
                    name: "ip".into(),
                    default: Some("10.0.2.15".into()),
                    secret: false,
                    description: None,
                },
                RecipeVariable {
                    name: "password".into(),
                    default: None,
                    secret: true,
                    description: None,
                },
            ],
            steps: vec![
                RecipeStep::Send {
                    text: "{{ password }}".into(),
                    newline: true,
                },
                RecipeStep::Command {
                    command: "ip addr add {{ip}}/24 dev eth0; wget {{artifact_url.kit}} {{gw}}"
                        .into(),
                    expect_exit: vec![0],
                    timeout_secs: None,
                },
            ],
        }
    }

    #[test]
    fn later_layers_win_and_unresolved_names_are_listed() {
        let r = recipe();
        let profile = BTreeMap::from([("ip".to_string(), "10.0.2.20".to_string())]);
        let run = BTreeMap::from([("password".to_string(), "s3cr3t".to_string())]);
        let v = resolve(&r, &[&profile, &run]);
        assert_eq!(v.values["ip"], "10.0.2.20");
        assert!(v.secret.contains("password"));
        assert_eq!(unresolved(&r.steps, &[], &v), vec!["gw".to_string()]);
        let v2 = resolve(&r, &[&profile]);
        assert_eq!(
            unresolved(&r.steps, &["{{extra}}".into()], &v2),
            vec!["extra", "gw", "password"]
        );
    }

    #[test]
    fn dry_run_hides_secrets_and_keeps_unknown_names() {
        let r = recipe();
        let run = BTreeMap::from([("password".to_string(), "s3cr3t".to_string())]);
        let v = resolve(&r, &[&run]);
        let (steps, missing) = dry_run(&r, &v);
        assert_eq!(missing, vec!["gw"]);
        let json = serde_json::to_string(&steps).unwrap();
        assert!(!json.contains("s3cr3t"), "{json}");
        assert!(json.contains("<redacted>"), "{json}");
        assert!(
            json.contains("ip addr add 10.0.2.15/24 dev eth0; wget <artifact_url.kit> {{gw}}"),
            "{json}"
        );
    }

    #[test]
    fn substitution_edge_cases() {
        let mut m = BTreeSet::new();
        let l = |n: &str| (n == "a").then(|| "X".to_string());
        assert_eq!(substitute("{{a}}{{a}}", &l, &mut m), "XX");
        assert_eq!(substitute("{{a", &l, &mut m), "{{a");
        assert_eq!(substitute("x }} {{ a }} y", &l, &mut m), "x }} X y");
        assert!(m.is_empty());
        assert_eq!(names_in("{{a}} {{ b.c }}"), vec!["a", "b.c"]);
    }

    #[test]
    fn redactor_replaces_longest_first_and_ignores_empty() {
        let r = Redactor::new(vec!["".into(), "abc".into(), "abcdef".into()]);
        assert_eq!(r.apply("x abcdef abc"), "x <redacted> <redacted>");
        assert!(r.contains_secret("zzabczz"));
        assert!(!Redactor::new(vec!["".into()]).contains_secret("anything"));
    }
}
