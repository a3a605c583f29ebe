//! Provisioning (`/api/v1/provisioning`): recipes typed over a guest's serial console,
//! profiles that combine a recipe with variables, a credential, artifacts and provisioners,
//! stored secrets, content-addressed artifacts, and runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn yes() -> bool {
    true
}

fn zero() -> Vec<i32> {
    vec![0]
}

fn linux() -> String {
    "linux".into()
}

/// A variable a recipe declares: `{{name}}` in its steps.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecipeVariable {
    #[schema(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$", max_length = 64)]
    pub name: String,
    /// Used when neither the profile nor the run gives a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A secret value is never written to a log, a job result, an event or the audit log.
    #[serde(default)]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One step of a recipe.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecipeStep {
    /// Wait until the console prints `pattern` (a literal, or a regex with `regex: true`).
    Wait {
        #[schema(min_length = 1)]
        pattern: String,
        #[serde(default)]
        regex: bool,
        /// Default 60.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(maximum = 86400)]
        timeout_secs: Option<u64>,
    },
    /// Type `text` (followed by Enter unless `newline: false`). A text holding a secret
    /// variable is logged as `<redacted>`.
    Send {
        text: String,
        #[serde(default = "yes")]
        newline: bool,
    },
    /// Run a shell command and read its exit code back (a marker with a per-command nonce).
    Command {
        /// One line (write a script with `write_file` for more).
        #[schema(pattern = r"^[^\n]*$")]
        command: String,
        /// Exit codes that count as success (default `[0]`).
        #[serde(default = "zero")]
        expect_exit: Vec<i32>,
        /// Default 120.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(maximum = 86400)]
        timeout_secs: Option<u64>,
    },
    /// Write a file in the guest from `content` (base64 over the console) or an artifact
    /// (fetched by the guest through a single-use run URL).
    WriteFile {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact: Option<String>,
        /// Octal mode, e.g. `0755`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = r"^[0-7]{1,4}$")]
        mode: Option<String>,
    },
    /// Wait this many milliseconds (at most 10 minutes).
    Delay {
        #[schema(maximum = 600000)]
        millis: u64,
    },
}

/// `POST /provisioning/recipes`, `PUT /provisioning/recipes/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    /// The recipe's id in URLs.
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `linux`, `debian`, `ubuntu`, … (informative).
    #[serde(default = "linux")]
    pub os_family: String,
    /// Regex of the login prompt (informative for `wait` steps; `{{login_prompt}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_prompt: Option<String>,
    /// Regex of the shell prompt, waited for before the first command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_prompt: Option<String>,
    #[serde(default)]
    pub variables: Vec<RecipeVariable>,
    #[schema(max_items = 500)]
    pub steps: Vec<RecipeStep>,
}

// The answer repeats the spec's fields rather than flattening it: the spec refuses unknown
// fields (`additionalProperties: false`), so a flattened answer's `allOf` would refuse its own
// `id`. `Recipe::new` destructures the spec, so a field added there must be added here.
/// A recipe: the fields of its spec, with `id`, `href` and `builtin`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recipe {
    pub id: String,
    pub href: String,
    /// Shipped with hostplane (read-only).
    pub builtin: bool,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `linux`, `debian`, `ubuntu`, … (informative).
    pub os_family: String,
    /// Regex of the login prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_prompt: Option<String>,
    /// Regex of the shell prompt, waited for before the first command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_prompt: Option<String>,
    pub variables: Vec<RecipeVariable>,
    pub steps: Vec<RecipeStep>,
}

impl Recipe {
    pub fn new(id: String, href: String, builtin: bool, spec: RecipeSpec) -> Self {
        let RecipeSpec {
            name,
            description,
            os_family,
            login_prompt,
            shell_prompt,
            variables,
            steps,
        } = spec;
        Recipe {
            id,
            href,
            builtin,
            name,
            description,
            os_family,
            login_prompt,
            shell_prompt,
            variables,
            steps,
        }
    }

    /// The spec part (what a `PUT` takes).
    pub fn into_spec(self) -> RecipeSpec {
        RecipeSpec {
            name: self.name,
            description: self.description,
            os_family: self.os_family,
            login_prompt: self.login_prompt,
            shell_prompt: self.shell_prompt,
            variables: self.variables,
            steps: self.steps,
        }
    }
}

/// `POST /provisioning/recipes/{id}/render`: the variables to resolve.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// A dry run: the steps with variables substituted (secret values shown as `<redacted>`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RenderResult {
    pub steps: Vec<RecipeStep>,
    /// Variables with no value.
    pub unresolved: Vec<String>,
}

/// A credential by reference: the secret's value becomes the secret variable `password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CredentialRef {
    /// Becomes the variable `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The stored secret's name (`/provisioning/secrets`).
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub secret: String,
}

/// An artifact the run places in the guest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArtifactPlacement {
    /// Artifact name.
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub artifact: String,
    /// Path in the guest: absolute, without quotes or newlines.
    #[schema(pattern = r"^/[^'\n]*$", max_length = 1024)]
    pub dest: String,
    /// Octal mode, e.g. `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-7]{1,4}$")]
    pub mode: Option<String>,
}

/// A provisioner: a shell script or inline commands, or a file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Provisioner {
    Shell {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Commands run one after another; the first that fails fails the provisioner.
        #[serde(default)]
        inline: Vec<String>,
        /// A script (its text), written to the guest and run with `sh`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        #[serde(default = "zero")]
        valid_exit_codes: Vec<i32>,
        /// Per command; default 300.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(maximum = 86400)]
        timeout_secs: Option<u64>,
        /// Extra attempts after a failure.
        #[serde(default)]
        retries: u32,
    },
    File {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Artifact name.
        #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
        artifact: String,
        /// Path in the guest: absolute, without quotes or newlines.
        #[schema(pattern = r"^/[^'\n]*$", max_length = 1024)]
        dest: String,
        /// Octal mode, e.g. `0644`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = r"^[0-7]{1,4}$")]
        mode: Option<String>,
    },
}

/// How the run reaches the guest after the recipe (which always types at the serial
/// console): `serial`, or `guest_agent` (QEMU's guest agent, qemu-ga in the guest, on the VM's
/// `org.qemu.guest_agent.0` channel). `ssh` is not implemented (501).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Serial,
    Ssh,
    GuestAgent,
}

/// `POST /provisioning/profiles`, `PUT /provisioning/profiles/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    /// Recipe id.
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub recipe: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialRef>,
    #[serde(default)]
    pub artifacts: Vec<ArtifactPlacement>,
    #[serde(default)]
    pub provisioners: Vec<Provisioner>,
    #[serde(default)]
    pub transport: Transport,
}

// Repeated, not flattened: see `Recipe`.
/// A profile: the fields of its spec, with `id` and `href`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    pub id: String,
    pub href: String,
    pub name: String,
    /// Recipe id.
    pub recipe: String,
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialRef>,
    pub artifacts: Vec<ArtifactPlacement>,
    pub provisioners: Vec<Provisioner>,
    pub transport: Transport,
}

impl Profile {
    pub fn new(id: String, href: String, spec: ProfileSpec) -> Self {
        let ProfileSpec {
            name,
            recipe,
            variables,
            credential,
            artifacts,
            provisioners,
            transport,
        } = spec;
        Profile {
            id,
            href,
            name,
            recipe,
            variables,
            credential,
            artifacts,
            provisioners,
            transport,
        }
    }

    /// The spec part (what a `PUT` takes).
    pub fn into_spec(self) -> ProfileSpec {
        ProfileSpec {
            name: self.name,
            recipe: self.recipe,
            variables: self.variables,
            credential: self.credential,
            artifacts: self.artifacts,
            provisioners: self.provisioners,
            transport: self.transport,
        }
    }
}

/// `POST /provisioning/secrets`: the value is write-only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretCreate {
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    #[schema(max_length = 65536)]
    pub value: String,
}

/// A stored secret, without its value (no request returns it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    pub id: String,
    pub name: String,
    pub href: String,
    pub created_at: String,
}

/// A content-addressed artifact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// The sha256 of the content (hex).
    pub id: String,
    pub name: String,
    pub href: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// `upload` or the URL it was downloaded from.
    pub source: String,
    pub created_at: String,
}

/// `POST /provisioning/artifacts` with a JSON body: download an artifact by URL (a job).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactFetch {
    #[schema(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    /// An `http` or `https` URL (loopback and private addresses only when allowed by
    /// `provisioning.url_allow`).
    #[schema(max_length = 4096)]
    pub url: String,
    /// Expected sha256 (hex); the job fails when the content differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
}

/// `POST /vms/{id}/provisioning`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    /// Profile id.
    pub profile: String,
    /// Values for the recipe's variables (over the profile's).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Steps to skip: `boot`, `setup`, `wait_ready`, `artifacts`, `provisioners`.
    #[serde(default)]
    pub skip: Vec<String>,
    /// The base URL the guest reaches this daemon at (default: `http(s)://10.0.2.2:<port>`,
    /// QEMU user-mode networking's host address and the port this request came in on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_base_url: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Success,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Success,
    Failed,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunStep {
    /// `boot`, `setup`, `wait_ready`, `artifacts`, `provisioner:<n>:<name>`.
    pub name: String,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What the step did and the console said (secrets redacted, the last 16 KiB).
    #[serde(default)]
    pub log: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A provisioning run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvisioningRun {
    pub id: String,
    pub href: String,
    /// The VM's id.
    pub vm: String,
    pub profile: String,
    pub status: RunStatus,
    pub steps: Vec<RunStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// The job of the latest attempt.
    pub job: String,
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
}
