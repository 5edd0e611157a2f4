//! Approval: jobs that wait for a person before they act (device commands, mounted upstream
//! tools whose server requires it). The job starts tagged as waiting (`AvbAwaiting`) with what
//! is to be approved in its memo; `approve_job` / `reject_job` (MCP) and
//! `POST /api/v2/jobs/{id}/approve|reject` (REST), HUMAN callers only, signal the decision, which
//! the workflow records with who and when.

pub mod client;
pub mod rest;
pub mod tools;

use std::time::{Duration, SystemTime};

use avb_store::Role;
use avb_workflows::approval::{
    APPROVAL_MEMO, ApprovalDecision, ApprovalGate, PendingApproval, arguments_digest,
};
use avb_workflows::devices::DeviceCommandWorkflow;
use avb_workflows::search;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use temporalio_client::{WorkflowSignalOptions, WorkflowStartOptions};
use temporalio_common::MemoValues;

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::output::resource_uri;
use crate::jobs::view::{JobStatus, JobView, LookupError, get_job, rfc3339};
use crate::state::ApiState;

/// Makes the job about to start wait for a person: the gate the workflow waits at, and what
/// approvers are shown (memo `approval`). The job is tagged as waiting from the first moment
/// (the workflow clears it once decided), so an approver can act before its first task ran.
pub fn await_approval(
    state: &ApiState,
    tool: &str,
    arguments: &Value,
    options: &mut WorkflowStartOptions,
) -> (ApprovalGate, PendingApproval) {
    let secs = state.config.devices.approval_expiry_secs;
    let gate = ApprovalGate {
        expires_in_secs: secs,
        expires_at: rfc3339(SystemTime::now() + Duration::from_secs(secs)),
    };
    let pending = PendingApproval {
        tool: tool.to_string(),
        arguments: arguments.clone(),
        digest: arguments_digest(tool, arguments),
        expires_at: gate.expires_at.clone(),
    };
    if let Some(attrs) = options.search_attributes.as_mut() {
        attrs.apply(search::AWAITING.value_set("approval".to_string()));
    }
    options.memo.get_or_insert_with(MemoValues::new).insert(
        APPROVAL_MEMO,
        serde_json::to_value(&pending).unwrap_or_default(),
    );
    (gate, pending)
}

/// What a direct call of a tool that waits for approval answers at once.
pub fn waiting_result(
    tool: &str,
    job_id: &str,
    pending: &PendingApproval,
    structured: Value,
) -> CallToolResult {
    let text = format!(
        "{tool} waits for a person's approval as job {job_id} (until {}): approve_job with \
         digest {}, or reject_job. Nothing is done before that.",
        pending.expires_at, pending.digest
    );
    crate::mcp::results::structured(text, &structured)
}

/// The structured answer of a job waiting for approval, for tools without an output type.
pub fn waiting_value(job_id: &str, pending: &PendingApproval) -> Value {
    json!({
        "job_id": job_id,
        "status": JobStatus::InputRequired.as_str(),
        "pending_approval": pending,
        "resource_uri": resource_uri(job_id),
    })
}

/// Who decided, for the record: the key id (or `jwt:<subject>`), else the local operator.
fn decider(caller: &Caller) -> String {
    caller
        .key_id
        .clone()
        .unwrap_or_else(|| format!("{} operator (authentication off)", caller.tenant))
}

/// `approve_job` / `reject_job`: HUMAN callers only, on a job of their tenant that waits for
/// approval. The decision is recorded in the workflow's history with who and when.
pub async fn decide(
    state: &ApiState,
    caller: &Caller,
    job_id: &str,
    approved: bool,
    digest: Option<String>,
    reason: Option<String>,
) -> Result<JobView, Problem> {
    let verb = if approved { "approve" } else { "reject" };
    crate::jobs::check_reason(reason.as_deref())?;
    if caller.role != Role::Human {
        return Err(Problem::operator_only(format!(
            "only HUMAN keys may {verb} jobs; this key is {}",
            caller.role.as_str()
        )));
    }
    let record = get_job(state, &caller.scope(), job_id)
        .await
        .map_err(not_awaiting)?;
    if record.view.status != JobStatus::InputRequired {
        return Err(Problem::new(
            ErrorKind::NotAwaitingApproval,
            format!(
                "job {job_id} is {}, not waiting for approval",
                record.view.status.as_str()
            ),
        ));
    }
    let digest = match (approved, digest) {
        (true, None) => {
            return Err(Problem::invalid(
                "digest",
                "name the digest of the arguments you approve (pending_approval.digest of the \
                 job)",
            ));
        }
        (_, Some(d)) => d,
        (false, None) => String::new(),
    };
    let decision = ApprovalDecision {
        approved,
        digest,
        by: decider(caller),
        at: rfc3339(SystemTime::now()),
        reason,
    };
    signal_decision(state, job_id, decision)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    tracing::info!(job_id, tenant = %caller.tenant, by = %decider(caller), approved, "approval decision sent");
    // The view as it is now; the job goes on (or ends) on its own.
    Ok(get_job(state, &caller.scope(), job_id).await?.view)
}

/// Sends a decision to a waiting job: every workflow that waits for approval takes the same
/// signal, which records it (who, how, when) in the job's history.
pub(crate) async fn signal_decision(
    state: &ApiState,
    job_id: &str,
    decision: ApprovalDecision,
) -> Result<(), temporalio_client::errors::WorkflowInteractionError> {
    state
        .temporal
        .get_workflow_handle::<DeviceCommandWorkflow>(job_id.to_string())
        .signal(
            DeviceCommandWorkflow::decide_approval,
            decision,
            WorkflowSignalOptions::default(),
        )
        .await
}

/// A job that ended is not waiting for a decision.
fn not_awaiting(e: LookupError) -> Problem {
    match e {
        LookupError::AlreadyFinished { .. } => {
            Problem::new(ErrorKind::NotAwaitingApproval, e.to_string())
        }
        other => other.into(),
    }
}
