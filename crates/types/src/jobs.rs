//! Asynchronous jobs: anything that can take more than about a second.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::container_io::VolumeBackupResult;
use crate::containers::{Container, ContainerImage};
use crate::containers_ops::UpdateCheckResult;
use crate::lxc::{LxcBackup, LxcContainer, LxcSnapshot};
use crate::pools::{Pool, ScrubResult};
use crate::services::ServiceActionResult;
use crate::stacks::StackActionResult;
use crate::system::SelftestResult;
use crate::system::backup::{Backup, RestoreResult};
use crate::system::certificate::Certificate;
use crate::vms::{Applied, Template, Vm, VmDisk};
use crate::workloads::AutostartResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Success,
    Failed,
    Cancelled,
    /// The daemon stopped (crash, kill) while the job ran.
    Interrupted,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "success" => JobStatus::Success,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            "interrupted" => JobStatus::Interrupted,
            _ => return None,
        })
    }

    /// A finished job never changes again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// UUIDv7 (time ordered).
    pub id: String,
    /// What the job does, e.g. `system.selftest`.
    pub kind: String,
    pub status: JobStatus,
    /// 0–100.
    pub progress: u8,
    /// The resource the job acts on, when there is one.
    pub target: Option<String>,
    /// Jobs with the same lock key never overlap.
    pub lock_key: Option<String>,
    /// Who started it.
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Stable error code when failed/cancelled/interrupted.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Job-specific result when it succeeded (some failed jobs keep what they found, e.g. the
    /// self-test's steps). Its schema is the one `JobResult`'s `x-result-schemas` names for the
    /// job's `kind`.
    #[schema(value_type = Option<JobResultSchema>)]
    pub result: Option<serde_json::Value>,
    pub href: String,
}

/// A job's result: one type per job kind (the `job_results!` table below). The job
/// engine serializes it once (`Jobs::spawn`); a type not in the table cannot be a result, and
/// `serde_json::Value` is not one.
pub trait JobResult: Serialize + ToSchema + Send + 'static {}

/// `disks.wipe`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiskWipeResult {
    /// The disk's href.
    pub disk: String,
    /// Devices whose signatures were erased (the disk and its partitions).
    pub wiped: Vec<String>,
}

/// `disks.partition`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiskPartitionResult {
    pub disk: String,
    /// The new partitions' device paths.
    pub partitions: Vec<String>,
}

/// `disks.format`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiskFormatResult {
    pub disk: String,
    /// The device formatted (the disk or one partition).
    pub device: String,
    pub filesystem: String,
    pub label: Option<String>,
    /// The new filesystem's UUID, when blkid saw it.
    pub uuid: Option<String>,
}

/// `pools.destroy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PoolDestroyResult {
    pub pool: String,
    /// Member devices whose signatures were erased.
    pub wiped: Vec<String>,
}

/// `pools.snapraid` (sync or scrub of the parity).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapraidResult {
    /// `finished`.
    pub status: String,
    /// What snapraid printed.
    pub output: String,
}

/// `vms.disk_import`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VmDiskImportResult {
    pub disk: VmDisk,
    pub applied: Applied,
    /// Why it waits for the next boot, when it does.
    pub reason: Option<String>,
}

/// `vms.shutdown`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VmShutdownResult {
    /// The guest powered off by itself (false: stopped by force after the timeout).
    pub clean: bool,
}

/// `vms.snapshot`, `vms.snapshot_revert`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VmSnapshotResult {
    pub name: String,
    /// The snapshot (`vms.snapshot` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// `system.reboot`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RebootResult {
    /// The backup taken before the reboot.
    pub backup: Backup,
    /// How the reboot was asked for (`command: …`, `systemd: reboot.target`).
    pub action: String,
}

/// `system.update`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateResult {
    pub version: String,
    pub previous_version: String,
    pub min_version: String,
}

/// The schema of [`Job::result`]: any of the kinds' results (`anyOf`, not `oneOf`: results of
/// different kinds may look alike), with `x-result-schemas` naming the one of each kind.
pub struct JobResultSchema;

macro_rules! job_results {
    ($($ty:ty => [$($kind:literal),+ $(,)?]),* $(,)?) => {
        $(impl JobResult for $ty {})*

        /// The job kinds that have a result, with the name of its schema.
        pub fn result_schemas() -> Vec<(&'static str, Cow<'static, str>)> {
            vec![$($(($kind, <$ty as ToSchema>::name())),+),*]
        }

        impl ToSchema for JobResultSchema {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed("JobResult")
            }

            // Empty on purpose: every operation that answers a `Job` (all 202s) would build
            // every result type's schema again, a tenth of the daemon's start-up. The document
            // takes them once from [`result_type_schemas`].
            fn schemas(_out: &mut Vec<(String, RefOr<Schema>)>) {}
        }

        /// The schemas `JobResult` refers to, with what they refer to: for the document,
        /// once (see `JobResultSchema::schemas`).
        pub fn result_type_schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
            $(
                out.push((<$ty as ToSchema>::name().into_owned(), <$ty as PartialSchema>::schema()));
                <$ty as ToSchema>::schemas(out);
            )*
        }
    };
}

job_results! {
    DiskWipeResult => ["disks.wipe"],
    DiskPartitionResult => ["disks.partition"],
    DiskFormatResult => ["disks.format"],
    Pool => [
        "pools.create",
        "pools.import",
        "pools.balance",
        "pools.device_add",
        "pools.device_remove",
        "pools.device_replace",
    ],
    PoolDestroyResult => ["pools.destroy"],
    ScrubResult => ["pools.scrub"],
    SnapraidResult => ["pools.snapraid"],
    VmShutdownResult => ["vms.shutdown"],
    VmSnapshotResult => ["vms.snapshot", "vms.snapshot_revert"],
    Vm => ["vms.clone", "vms.import"],
    VmDiskImportResult => ["vms.disk_import"],
    Template => ["vms.template_import", "vms.template_pull"],
    ServiceActionResult => ["services.start", "services.stop", "services.restart"],
    SelftestResult => ["system.selftest"],
    RebootResult => ["system.reboot"],
    Backup => ["system.backup"],
    RestoreResult => ["system.restore"],
    Certificate => ["system.certificate"],
    UpdateResult => ["system.update"],
    LxcContainer => ["lxc.create", "lxc.clone", "lxc.restore", "lxc.snapshot_restore"],
    LxcSnapshot => ["lxc.snapshot"],
    LxcBackup => ["lxc.backup"],
    StackActionResult => ["stacks.up", "stacks.down", "stacks.restart", "stacks.pull"],
    AutostartResult => ["workloads.autostart"],
    crate::network::ProvisioningNetwork => [
        "network.provisioning",
        "network.provisioning_teardown",
    ],
    VolumeBackupResult => ["containers.volume_backup", "containers.volume_restore"],
    Container => ["containers.recreate", "containers.create"],
    ContainerImage => ["containers.image_pull"],
    UpdateCheckResult => ["containers.update_check"],
    crate::provisioning::ProvisioningRun => ["provisioning.run", "provisioning.retry"],
    crate::provisioning::Artifact => ["provisioning.artifact_fetch"],
}

impl PartialSchema for JobResultSchema {
    fn schema() -> RefOr<Schema> {
        let schemas = result_schemas();
        let mut names: Vec<&str> = schemas.iter().map(|(_, n)| n.as_ref()).collect();
        names.sort_unstable();
        names.dedup();
        let mut any = AnyOfBuilder::new().description(Some(
            "The job's result; its schema depends on the job's `kind` (`x-result-schemas`).",
        ));
        for n in names {
            any = any.item(Ref::from_schema_name(n));
        }
        let by_kind: serde_json::Map<String, serde_json::Value> = schemas
            .iter()
            .map(|(k, n)| (k.to_string(), format!("#/components/schemas/{n}").into()))
            .collect();
        any.extensions(Some(
            ExtensionsBuilder::new()
                .add("x-result-schemas", by_kind)
                .build(),
        ))
        .into()
    }
}

/// The schema name of a job kind's result, `None` for a kind without one.
pub fn result_schema_of(kind: &str) -> Option<Cow<'static, str>> {
    result_schemas()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, n)| n)
}
