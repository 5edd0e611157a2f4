//! One job as callers see it (MCP `get_job`, tasks, `avb://jobs/{id}`, REST): looked up in
//! Temporal by id, visible only within the caller's [`JobScope`] (its tenant; for an AGENT
//! key, the jobs that key started).

use avb_workflows::search;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_client::errors::WorkflowInteractionError;
use temporalio_client::{
    UntypedWorkflow, WorkflowCancelOptions, WorkflowDescribeOptions, WorkflowExecutionDescription,
    WorkflowExecutionStatus,
};
use temporalio_common::protos::temporal::api::enums::v1::PendingActivityState;

use super::durable::DurableTool;
pub use super::durable::JobProgress;
use super::output::{resource_uri, status_url};
use super::{JobError, JobScope, heartbeat, outcome};
use crate::core::problem::{ErrorKind, Problem};
use crate::state::ApiState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    /// Running, and waiting for a person (a command that needs approval).
    InputRequired,
    Completed,
    Failed,
    Cancelled,
    Terminated,
    TimedOut,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Running,
        Self::InputRequired,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Terminated,
        Self::TimedOut,
    ];

    pub fn from_temporal(s: WorkflowExecutionStatus) -> Self {
        match s {
            WorkflowExecutionStatus::Completed => Self::Completed,
            WorkflowExecutionStatus::Failed => Self::Failed,
            WorkflowExecutionStatus::Canceled => Self::Cancelled,
            WorkflowExecutionStatus::Terminated => Self::Terminated,
            WorkflowExecutionStatus::TimedOut => Self::TimedOut,
            _ => Self::Running,
        }
    }

    /// The name Temporal visibility queries use (`ExecutionStatus = '...'`).
    pub fn visibility_name(self) -> &'static str {
        match self {
            Self::Running | Self::InputRequired => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Cancelled => "Canceled",
            Self::Terminated => "Terminated",
            Self::TimedOut => "TimedOut",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::InputRequired => "input_required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Terminated => "terminated",
            Self::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Running | Self::InputRequired)
    }

    /// A running job that tagged itself as waiting for a person (`AvbAwaiting`).
    pub fn with_awaiting(self, awaiting: Option<&str>) -> Self {
        match (self, awaiting) {
            (Self::Running, Some("approval")) => Self::InputRequired,
            (s, _) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct JobFailure {
    /// Stable error type, e.g. `UnknownVoice`, `Cancelled`.
    pub kind: String,
    pub message: String,
    /// Facts about the failure, when it has some (e.g. `InsufficientCredits`: needed, balance,
    /// price, shortfall).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobView {
    pub job_id: String,
    /// The MCP tool that started the job.
    pub tool: String,
    /// Who started the job (absent for jobs started with authentication off, or before owners
    /// were recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<JobOwner>,
    pub status: JobStatus,
    /// RFC 3339.
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    /// Last sign of life: the close time, else the running activity's last heartbeat or start.
    pub updated_at: Option<String>,
    /// Cancellation was requested and the job is stopping.
    pub cancel_requested: bool,
    pub progress: Option<JobProgress>,
    /// When completed: the tool's structured output, as a direct call returns it.
    pub result: Option<serde_json::Value>,
    /// When failed, cancelled, terminated or timed out: why.
    pub error: Option<JobFailure>,
    /// Device commands that need a person's approval: what is to be approved (the arguments
    /// and their digest) and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_request: Option<avb_workflows::approval::PendingApproval>,
    pub status_url: String,
    pub resource_uri: String,
}

/// The key (or token subject) that started a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct JobOwner {
    /// The API key's id, or `jwt:<subject>`; `list_jobs(owner=…)` filters on it.
    pub id: String,
    /// The key's label, or the token's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A job view plus, once the job ended, what its workflow returned (its family renders tool
/// results from it).
pub struct JobRecord {
    pub view: JobView,
    pub outcome: Option<Result<serde_json::Value, JobError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Unknown id, or a job outside the caller's scope: another tenant's, or another agent's
    /// (indistinguishable on purpose).
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {job_id} is already {status}; only running jobs can be cancelled", status = .status.as_str())]
    AlreadyFinished { job_id: String, status: JobStatus },
    #[error("Temporal is unavailable: {0}")]
    Unavailable(String),
}

/// `job_` + 32 lowercase hex digits, as `new_job_id` makes them.
pub fn is_job_id(id: &str) -> bool {
    id.strip_prefix("job_").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Describes the job's workflow, answering "not found" for ids outside `scope`.
async fn describe(
    state: &ApiState,
    scope: &JobScope,
    job_id: &str,
) -> Result<WorkflowExecutionDescription, LookupError> {
    if !is_job_id(job_id) {
        return Err(LookupError::NotFound(job_id.to_string()));
    }
    let desc = state
        .temporal
        .get_workflow_handle::<UntypedWorkflow>(job_id.to_string())
        .describe(WorkflowDescribeOptions::default())
        .await
        .map_err(|e| match e {
            WorkflowInteractionError::NotFound(_) => LookupError::NotFound(job_id.to_string()),
            other => LookupError::Unavailable(other.to_string()),
        })?;
    let attrs = desc.search_attributes();
    if !scope.sees(
        attrs.get(&search::TENANT).as_deref(),
        attrs.get(&search::OWNER).as_deref(),
    ) {
        return Err(LookupError::NotFound(job_id.to_string()));
    }
    Ok(desc)
}

pub async fn get_job(
    state: &ApiState,
    scope: &JobScope,
    job_id: &str,
) -> Result<JobRecord, LookupError> {
    let desc = describe(state, scope, job_id).await?;
    let tool = desc
        .search_attributes()
        .get(&search::TOOL)
        .unwrap_or_default();
    let awaiting = desc.search_attributes().get(&search::AWAITING);
    let status = JobStatus::from_temporal(desc.status()).with_awaiting(awaiting.as_deref());
    let approval_request = desc
        .memo()
        .get::<serde_json::Value>(avb_workflows::approval::APPROVAL_MEMO)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_value(v).ok());
    let owner = desc
        .search_attributes()
        .get(&search::OWNER)
        .map(|id| JobOwner {
            id,
            label: desc
                .memo()
                .get::<String>(search::OWNER_LABEL_MEMO)
                .ok()
                .flatten(),
        });
    let family = state.tools.family_of_job(&tool).clone();
    let outcome = if status.is_terminal() {
        Some(outcome(state, job_id).await)
    } else {
        None
    };
    let public_url = state.config.public_url();
    let (result, error) = match &outcome {
        Some(Ok(out)) => match family.structured(state, job_id, out.clone()) {
            Ok(value) => (Some(value), None),
            Err(p) => (None, Some(JobFailure::from(p))),
        },
        Some(Err(e)) => (None, Some(failure_of(e))),
        None => (None, None),
    };
    let view = JobView {
        job_id: job_id.to_string(),
        status,
        created_at: desc.start_time().map(rfc3339),
        closed_at: desc.close_time().map(rfc3339),
        updated_at: desc
            .close_time()
            .or_else(|| last_activity_time(&desc))
            .or_else(|| desc.start_time())
            .map(rfc3339),
        cancel_requested: !status.is_terminal() && cancel_requested(&desc),
        progress: (!status.is_terminal())
            .then(|| progress_of(family.as_ref(), &desc))
            .flatten(),
        result,
        error,
        approval_request,
        status_url: status_url(&public_url, job_id),
        resource_uri: resource_uri(job_id),
        tool,
        owner,
    };
    Ok(JobRecord { view, outcome })
}

/// Requests cancellation; the workflow cancels its activity, which stops between chunks.
/// Cancelling a job that is already cancelled (or stopping) is not an error.
pub async fn cancel_job(
    state: &ApiState,
    scope: &JobScope,
    job_id: &str,
    reason: &str,
) -> Result<JobRecord, LookupError> {
    let mut record = get_job(state, scope, job_id).await?;
    match record.view.status {
        JobStatus::Running | JobStatus::InputRequired => {}
        JobStatus::Cancelled => return Ok(record),
        status => {
            return Err(LookupError::AlreadyFinished {
                job_id: job_id.to_string(),
                status,
            });
        }
    }
    state
        .temporal
        .get_workflow_handle::<UntypedWorkflow>(job_id.to_string())
        .cancel(
            WorkflowCancelOptions::builder()
                .reason(reason.to_string())
                .build(),
        )
        .await
        .map_err(|e| LookupError::Unavailable(e.to_string()))?;
    tracing::info!(
        job_id,
        tenant = scope.tenant,
        reason,
        "job cancellation requested"
    );
    // The workflow reacts on its next task; until then the view we hold is current but for this.
    record.view.cancel_requested = true;
    Ok(record)
}

pub fn failure_of(e: &JobError) -> JobFailure {
    JobFailure::from(Problem::from(e))
}

impl From<Problem> for JobFailure {
    fn from(p: Problem) -> Self {
        let details = p.details.as_object().is_some_and(|d| !d.is_empty());
        JobFailure {
            kind: p.kind.as_str().to_string(),
            message: p.message,
            details: details.then_some(p.details),
        }
    }
}

impl From<LookupError> for Problem {
    fn from(e: LookupError) -> Self {
        let kind = match e {
            LookupError::NotFound(_) => ErrorKind::NotFound,
            LookupError::AlreadyFinished { .. } => ErrorKind::AlreadyFinished,
            LookupError::Unavailable(_) => ErrorKind::Unavailable,
        };
        Problem::new(kind, e.to_string())
    }
}

/// Progress from the heartbeat of the job's pending activity.
pub fn progress_of(
    family: &dyn DurableTool,
    desc: &WorkflowExecutionDescription,
) -> Option<JobProgress> {
    let activity = desc.raw().pending_activities.first()?;
    let attempt = u32::try_from(activity.attempt).unwrap_or(1).max(1);
    Some(
        match heartbeat(desc).as_ref().and_then(|hb| family.progress(hb)) {
            Some(p) => JobProgress { attempt, ..p },
            None => JobProgress {
                done: 0,
                total: None,
                message: if activity.state == PendingActivityState::Scheduled as i32 {
                    // No worker has taken it yet: none polls (one is starting, e.g. loading
                    // the speech model), or all are busy.
                    "queued: waiting for a worker to take it".into()
                } else if attempt > 1 {
                    format!("retrying (attempt {attempt})")
                } else {
                    "started".into()
                },
                attempt,
            },
        },
    )
}

fn last_activity_time(desc: &WorkflowExecutionDescription) -> Option<std::time::SystemTime> {
    let a = desc.raw().pending_activities.first()?;
    let t = a
        .last_heartbeat_time
        .as_ref()
        .or(a.last_started_time.as_ref())?;
    let since_epoch =
        std::time::Duration::new(u64::try_from(t.seconds).ok()?, u32::try_from(t.nanos).ok()?);
    Some(std::time::SystemTime::UNIX_EPOCH + since_epoch)
}

fn cancel_requested(desc: &WorkflowExecutionDescription) -> bool {
    desc.raw()
        .pending_activities
        .iter()
        .any(|a| a.state == PendingActivityState::CancelRequested as i32)
}

/// RFC 3339 of a store timestamp (milliseconds since the Unix epoch).
pub fn rfc3339_ms(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
