//! Asynchronous jobs: anything that can take more than about a second.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// Job-specific result when it succeeded.
    pub result: Option<serde_json::Value>,
    pub href: String,
}
