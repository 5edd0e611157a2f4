//! Smart-home commands and reads as callers see them. A command (`smart_home_control`,
//! `call_service`) is a job: a `DeviceCommand` workflow (id `job_…`, tagged with tool and
//! tenant), validated and carried out on the `avb-devices` worker; the backend's policy decides
//! whether the tool may be used at all and whether a human must approve it first. A command
//! that needs approval returns at once with status `input_required` and the digest an approver
//! must name; `approve_job` / `reject_job` (HUMAN callers only) signal the workflow. Reads
//! (`list_devices`, `get_device_state`) run as short `DeviceRead` workflows on the same worker.

use std::time::{Duration, SystemTime};

use avb_common::device_settings::PolicyView;
use avb_store::Role;
use avb_workflows::billing::BillingPlan;
use avb_workflows::devices::{
    ApprovalDecision, ApprovalGate, Backend, DeviceCommandJob, DeviceCommandOutput,
    DeviceCommandWorkflow, DeviceReadJob, DeviceReadWorkflow, ReadRequest, arguments_digest,
};
use avb_workflows::search;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use temporalio_client::{WorkflowGetResultOptions, WorkflowSignalOptions, WorkflowStartOptions};
use temporalio_common::MemoValues;

use crate::auth::Caller;
use crate::jobs::output::resource_uri;
use crate::jobs::view::{JobStatus, JobView, LookupError, get_job, rfc3339};
use crate::jobs::{JobError, job_start_options, map_result, new_job_id};
use crate::state::ApiState;

/// Device tools that start commands (jobs), and the backend each one drives.
pub const COMMAND_TOOLS: &[(&str, Backend)] = &[
    ("smart_home_control", Backend::Zigbee2mqtt),
    ("call_service", Backend::HomeAssistant),
];
/// Memo key of a command's approval request (what approvers are shown).
pub const APPROVAL_MEMO: &str = "approval";

/// What an approver is shown and must name.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct PendingApproval {
    pub tool: String,
    pub arguments: Value,
    /// Pass this to `approve_job`: the approval covers exactly these arguments.
    pub digest: String,
    /// RFC 3339: unapproved by then, the command is rejected.
    pub expires_at: String,
}

/// Structured result of `smart_home_control` and `call_service`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeviceJobOutput {
    pub job_id: String,
    /// `completed`; `input_required` while a human must approve; `running` when the call's
    /// wait budget ran out first.
    pub status: String,
    /// Each device's confirmed state (when completed).
    pub devices: Vec<avb_workflows::devices::DeviceResult>,
    /// Who approved, when (for commands that needed approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDecision>,
    /// What a human must approve (status `input_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    pub resource_uri: String,
}

impl DeviceJobOutput {
    pub fn completed(job_id: &str, out: &DeviceCommandOutput) -> Self {
        Self {
            job_id: job_id.to_string(),
            status: "completed".into(),
            devices: out.devices.clone(),
            approval: out.approval.clone(),
            pending_approval: None,
            resource_uri: resource_uri(job_id),
        }
    }

    fn waiting(job_id: &str, status: &str, pending: Option<PendingApproval>) -> Self {
        Self {
            job_id: job_id.to_string(),
            status: status.into(),
            devices: Vec::new(),
            approval: None,
            pending_approval: pending,
            resource_uri: resource_uri(job_id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceToolError {
    /// The backend's policy does not offer this tool (disabled, or not in `allowed_tools`).
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The job is not waiting for a decision.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl DeviceToolError {
    pub fn kind(&self) -> &str {
        match self {
            Self::NotAllowed(_) => "ToolNotAllowed",
            Self::Forbidden(_) => "Forbidden",
            Self::Invalid { .. } => "InvalidInput",
            Self::Conflict(_) => "NotAwaitingApproval",
            Self::Lookup(LookupError::NotFound(_)) => "NotFound",
            Self::Lookup(LookupError::AlreadyFinished { .. }) => "NotAwaitingApproval",
            Self::Lookup(LookupError::Unavailable(_)) => "Unavailable",
            Self::Job(JobError::Failed { kind, .. }) => kind.as_deref().unwrap_or("Failed"),
            Self::Job(_) => "Unavailable",
        }
    }
}

fn policy(state: &ApiState, backend: Backend) -> PolicyView<'_> {
    match backend {
        Backend::Zigbee2mqtt => state.config.devices.zigbee2mqtt_policy(),
        Backend::HomeAssistant => state.config.devices.home_assistant_policy(),
    }
}

/// The backends that offer `tool` to agents.
fn backends_for(state: &ApiState, tool: &str) -> Vec<Backend> {
    [Backend::Zigbee2mqtt, Backend::HomeAssistant]
        .into_iter()
        .filter(|b| {
            let p = policy(state, *b);
            p.enabled && p.allows(tool)
        })
        .collect()
}

/// What the caller gets back from a command: done, waiting for a human, or still running.
pub enum CommandOutcome {
    Done(DeviceJobOutput),
    Waiting(DeviceJobOutput),
}

/// A started command job: its workflow, and what an approver must approve, if anyone must.
pub struct StartedCommand {
    pub job_id: String,
    pub pending: Option<PendingApproval>,
}

/// Starts a device command job and waits for it up to the wait budget (not at all when it
/// needs approval).
pub async fn command(
    state: &ApiState,
    tenant: &str,
    tool: &str,
    arguments: Value,
) -> Result<CommandOutcome, DeviceToolError> {
    let StartedCommand { job_id, pending } = start_command(state, tenant, tool, arguments).await?;
    let handle = state
        .temporal
        .get_workflow_handle::<DeviceCommandWorkflow>(job_id.clone());
    if pending.is_some() {
        return Ok(CommandOutcome::Waiting(DeviceJobOutput::waiting(
            &job_id,
            JobStatus::InputRequired.as_str(),
            pending,
        )));
    }
    match tokio::time::timeout(
        state.config.wait_budget(),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    {
        Ok(r) => Ok(CommandOutcome::Done(DeviceJobOutput::completed(
            &job_id,
            &map_result(r)?,
        ))),
        Err(_) => Ok(CommandOutcome::Waiting(DeviceJobOutput::waiting(
            &job_id, "running", None,
        ))),
    }
}

/// Checks the backend's policy for `tool` and starts the command's workflow (as a task does:
/// the caller follows the job).
pub async fn start_command(
    state: &ApiState,
    tenant: &str,
    tool: &str,
    arguments: Value,
) -> Result<StartedCommand, DeviceToolError> {
    let backend = COMMAND_TOOLS
        .iter()
        .find(|(t, _)| *t == tool)
        .map(|(_, b)| *b)
        .ok_or_else(|| DeviceToolError::NotAllowed(format!("{tool} is not a device command")))?;
    let p = policy(state, backend);
    if !p.enabled {
        let why = if backend == Backend::HomeAssistant
            && state.config.devices.home_assistant.url.is_none()
        {
            "no Home Assistant is configured (devices.home_assistant.url)".to_string()
        } else {
            format!(
                "the {} backend is disabled (devices.{}.enabled)",
                p.backend, p.backend
            )
        };
        return Err(DeviceToolError::NotAllowed(format!("{tool}: {why}")));
    }
    if !p.allows(tool) {
        return Err(DeviceToolError::NotAllowed(format!(
            "{tool} is not in devices.{}.allowed_tools",
            p.backend
        )));
    }
    let job_id = new_job_id();
    let mut options = job_start_options(tool, tenant, &job_id, false);
    let (gate, pending) = if p.require_approval.requires(tool) {
        let (gate, pending) = await_approval(state, tool, &arguments, &mut options);
        (Some(gate), Some(pending))
    } else {
        (None, None)
    };
    // One command, at the tool's tariff (call_service has none: Home Assistant is free).
    let billing = state.config.billing.price_of(tool).and_then(|price| {
        let plan = BillingPlan::new(tool, &price.unit, 1, price.credits_per_1000);
        (plan.credits > 0).then_some(plan)
    });
    let job = DeviceCommandJob {
        tenant: tenant.to_owned(),
        tool: tool.to_owned(),
        arguments,
        approval: gate,
        billing,
    };
    state
        .temporal
        .start_workflow(DeviceCommandWorkflow::run, job, options)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    tracing::info!(job_id = %job_id, tool, tenant, approval = pending.is_some(), "device command started");
    Ok(StartedCommand { job_id, pending })
}

/// Makes the job about to start wait for a human (device commands, mounted upstream tools):
/// the gate the workflow waits at, and what approvers are shown (memo `approval`). The job is
/// tagged as waiting from the first moment (the workflow clears it once decided), so an
/// approver can act before its first task ran.
pub(crate) fn await_approval(
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
    let mut memo = MemoValues::new();
    memo.insert(
        APPROVAL_MEMO,
        serde_json::to_value(&pending).unwrap_or_default(),
    );
    options.memo = Some(memo);
    (gate, pending)
}

/// `list_devices` / `get_device_state`, over every backend that offers the tool.
pub async fn read(
    state: &ApiState,
    tenant: &str,
    tool: &str,
    request: impl FnOnce(Vec<Backend>) -> ReadRequest,
) -> Result<Value, DeviceToolError> {
    let backends = backends_for(state, tool);
    if backends.is_empty() {
        return Err(DeviceToolError::NotAllowed(format!(
            "{tool}: no enabled device backend offers it (devices.*.enabled, allowed_tools)"
        )));
    }
    let id = format!("read_{}", uuid::Uuid::new_v4().simple());
    let options = WorkflowStartOptions::new(avb_workflows::queues::WORKFLOWS, id.clone()).build();
    let job = DeviceReadJob {
        tenant: tenant.to_owned(),
        request: request(backends),
    };
    let handle = state
        .temporal
        .start_workflow(DeviceReadWorkflow::run, job, options)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    let result = tokio::time::timeout(
        state.config.wait_budget(),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .map_err(|_| JobError::Temporal(format!("{tool} got no answer from the devices worker")))?;
    Ok(map_result(result)?)
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
) -> Result<JobView, DeviceToolError> {
    let verb = if approved { "approve" } else { "reject" };
    if caller.role != Role::Human {
        return Err(DeviceToolError::Forbidden(format!(
            "only HUMAN keys may {verb} jobs; this key is {}",
            caller.role.as_str()
        )));
    }
    let record = get_job(state, &caller.tenant, job_id).await?;
    if record.view.status != JobStatus::InputRequired {
        return Err(DeviceToolError::Conflict(format!(
            "job {job_id} is {}, not waiting for approval",
            record.view.status.as_str()
        )));
    }
    let digest = match (approved, digest) {
        (true, None) => {
            return Err(DeviceToolError::Invalid {
                field: "digest",
                message: "name the digest of the arguments you approve (pending_approval.digest \
                          of the job)"
                    .into(),
            });
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
    state
        .temporal
        .get_workflow_handle::<DeviceCommandWorkflow>(job_id.to_string())
        .signal(
            DeviceCommandWorkflow::decide_approval,
            decision,
            WorkflowSignalOptions::default(),
        )
        .await
        .map_err(|e| LookupError::Unavailable(e.to_string()))?;
    tracing::info!(job_id, tenant = %caller.tenant, by = %decider(caller), approved, "approval decision sent");
    // The view as it is now; the job goes on (or ends) on its own.
    Ok(get_job(state, &caller.tenant, job_id).await?.view)
}
