//! Smart-home commands and reads as callers see them. A command (`smart_home_control`,
//! `call_service`) is a job: a `DeviceCommand` workflow (id `job_…`, tagged with tool and
//! tenant), validated and carried out on the `avb-devices` worker; the backend's policy decides
//! whether the tool may be used at all and whether a human must approve it first. A command
//! that needs approval returns at once with status `input_required` and the digest an approver
//! must name; `approve_job` / `reject_job` (HUMAN callers only) signal the workflow. Reads
//! (`list_devices`, `get_device_state`) run as short `DeviceRead` workflows on the same worker.

pub mod commands;
pub mod rest;
pub mod tools;

use avb_config::PolicyView;
use avb_workflows::approval::{ApprovalDecision, PendingApproval};
use avb_workflows::billing::BillingPlan;
use avb_workflows::devices::{
    Backend, DeviceCommandJob, DeviceCommandOutput, DeviceCommandWorkflow, DeviceReadJob,
    DeviceReadWorkflow, ReadRequest,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

use crate::approval::client;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::output::resource_uri;
use crate::jobs::{JobError, job_start_options, map_result, new_job_id};
use crate::state::ApiState;

/// Device tools that start commands (jobs), and the backend each one drives.
pub const COMMAND_TOOLS: &[(&str, Backend)] = &[
    ("smart_home_control", Backend::Zigbee2mqtt),
    ("call_service", Backend::HomeAssistant),
];

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

    pub fn waiting(job_id: &str, status: &str, pending: Option<PendingApproval>) -> Self {
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
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No home that serves the caller's tenant offers it: to that tenant it does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Job(#[from] JobError),
    /// Refused before anything started (an approval the client's answer does not give).
    #[error("{0}")]
    Refused(Problem),
}

impl From<DeviceToolError> for Problem {
    fn from(e: DeviceToolError) -> Self {
        match e {
            DeviceToolError::NotAllowed(m) => Problem::new(ErrorKind::ToolNotAllowed, m),
            DeviceToolError::NotFound(m) => Problem::not_found(m),
            DeviceToolError::Invalid { field, message } => Problem::invalid(field, message),
            DeviceToolError::Job(j) => Problem::from(&j),
            DeviceToolError::Refused(p) => p,
        }
    }
}

fn policy(state: &ApiState, backend: Backend) -> PolicyView<'_> {
    match backend {
        Backend::Zigbee2mqtt => state.config.devices.zigbee2mqtt_policy(),
        Backend::HomeAssistant => state.config.devices.home_assistant_policy(),
    }
}

/// The backends that offer `tool` to `tenant`'s agents.
fn backends_for(state: &ApiState, tenant: &str, tool: &str) -> Vec<Backend> {
    [Backend::Zigbee2mqtt, Backend::HomeAssistant]
        .into_iter()
        .filter(|b| {
            let p = policy(state, *b);
            p.enabled && p.allows(tool) && p.serves(tenant)
        })
        .collect()
}

/// Whether `tenant` sees the device tool `tool` at all: some home that serves the tenant
/// offers it (enabled or not: a home switched off explains itself when called). Other tenants'
/// lists do not name it, and a call is "tool not found", as for any tool that does not exist.
pub fn offered_to(state: &ApiState, tenant: &str, tool: &str) -> bool {
    let device_tool = avb_config::devices::DEVICE_TOOLS.contains(&tool);
    !device_tool
        || [Backend::Zigbee2mqtt, Backend::HomeAssistant]
            .into_iter()
            .any(|b| {
                let p = policy(state, b);
                p.allows(tool) && p.serves(tenant)
            })
}

/// A started command job, and what an approver must approve, if anyone must.
pub struct StartedCommand {
    pub job_id: String,
    pub pending: Option<PendingApproval>,
}

/// What starting a command came to: a job, or a question for the person at the client first.
pub enum CommandStart {
    Started(StartedCommand),
    Asked(rmcp::model::InputRequiredResult),
}

/// Where device workflows start: on the devices queue with local activities (eagerly when the
/// api asks for eager starts), or, with `AVB_DEVICE_LOCAL_ACTIVITIES=false`, on `avb-workflows`
/// with each step dispatched.
struct Placement {
    queue: &'static str,
    local_activities: bool,
    eager: bool,
}

impl Placement {
    fn of(state: &ApiState) -> Self {
        let local_activities = state.config.temporal.device_local_activities;
        Self {
            queue: if local_activities {
                avb_workflows::queues::DEVICES
            } else {
                avb_workflows::queues::WORKFLOWS
            },
            local_activities,
            eager: local_activities && state.config.temporal.eager_start,
        }
    }
}

/// Checks the backend's policy for `tool` and starts the command's workflow (as a task does:
/// the caller follows the job).
pub async fn start_command(
    call: &crate::jobs::durable::ToolCall<'_>,
    arguments: Value,
) -> Result<CommandStart, DeviceToolError> {
    let (state, tenant, tool) = (call.state, call.tenant(), call.name);
    let backend = COMMAND_TOOLS
        .iter()
        .find(|(t, _)| *t == tool)
        .map(|(_, b)| *b)
        .ok_or_else(|| DeviceToolError::NotAllowed(format!("{tool} is not a device command")))?;
    let p = policy(state, backend);
    if !p.serves(tenant) {
        return Err(DeviceToolError::NotFound(format!(
            "no tool is called {tool:?}"
        )));
    }
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
    let needs_approval = p.require_approval.requires(tool);
    let path = if needs_approval {
        client::resolve(state, call.caller, &call.client, tool, &arguments)
            .map_err(DeviceToolError::Refused)?
    } else {
        client::ApprovalPath::Operator
    };
    let (job_id, decided) = match path {
        client::ApprovalPath::Ask(ask) => return Ok(CommandStart::Asked(ask)),
        client::ApprovalPath::Client { job_id, decision } => (job_id, Some(decision)),
        client::ApprovalPath::Operator => (new_job_id(), None),
    };
    let placement = Placement::of(state);
    let mut options = job_start_options(tool, call.caller, &job_id, placement.eager);
    options.task_queue = placement.queue.to_owned();
    let (gate, pending) = if needs_approval {
        let (gate, pending) =
            crate::approval::await_approval(state, tool, &arguments, &mut options);
        (Some(gate), Some(pending))
    } else {
        (None, None)
    };
    if decided.is_some() {
        client::used_once(&mut options);
    }
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
        local_activities: placement.local_activities,
    };
    state
        .temporal
        .start_workflow(DeviceCommandWorkflow::run, job, options)
        .await
        .map_err(|e| client::start_error(e, &job_id))?;
    tracing::info!(job_id = %job_id, tool, tenant, approval = pending.is_some(), "device command started");
    // Approved at the client: the job runs at once, with the decision in its history.
    if let Some(decision) = decided {
        client::record(state, &job_id, decision).await?;
        return Ok(CommandStart::Started(StartedCommand {
            job_id,
            pending: None,
        }));
    }
    Ok(CommandStart::Started(StartedCommand { job_id, pending }))
}

/// `list_devices` / `get_device_state`, over every backend that offers the tool.
pub async fn read(
    state: &ApiState,
    tenant: &str,
    tool: &str,
    request: impl FnOnce(Vec<Backend>) -> ReadRequest,
) -> Result<Value, DeviceToolError> {
    if !offered_to(state, tenant, tool) {
        return Err(DeviceToolError::NotFound(format!(
            "no tool is called {tool:?}"
        )));
    }
    let backends = backends_for(state, tenant, tool);
    if backends.is_empty() {
        return Err(DeviceToolError::NotAllowed(format!(
            "{tool}: no enabled device backend offers it (devices.*.enabled, allowed_tools)"
        )));
    }
    let id = format!("read_{}", uuid::Uuid::new_v4().simple());
    let placement = Placement::of(state);
    let options = WorkflowStartOptions::new(placement.queue, id.clone())
        .enable_eager_workflow_start(placement.eager)
        .build();
    let job = DeviceReadJob {
        tenant: tenant.to_owned(),
        request: request(backends),
        local_activities: placement.local_activities,
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
