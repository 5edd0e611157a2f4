//! `DeviceCommand`: one smart-home command (`smart_home_control`, `call_service`) as a workflow.
//! An activity on `avb-devices` checks it against the devices the backend knows and says what to
//! send (a bad command fails here, before anything is sent or anyone is asked). Where policy
//! says so, the workflow then waits for a human's decision (signal `decide_approval`), bound to
//! the digest of the exact arguments, until the approval expires. Then one activity per device
//! sends the change and returns once the device's state confirms it. Unconfirmed changes and
//! broker outages retry; an offline device fails at once.
//!
//! `DeviceRead` (`list_devices`, `get_device_state`) is the same path for reads: one activity.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{
    ActivityExecutionError, ActivityOptions, SyncWorkflowContext, WorkflowContext, WorkflowResult,
};

use crate::approval::{AwaitsApproval, await_approval};
use crate::billing::BillingPlan;
use crate::errors::ErrorKind;
use crate::queues;
use crate::saga::Saga;

pub const PLAN_DEVICE_COMMAND: &str = "plan_device_command";
pub const SEND_DEVICE_COMMAND: &str = "send_device_command";
pub const READ_DEVICES: &str = "read_devices";

/// Which backend a tool's devices live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Zigbee2mqtt,
    HomeAssistant,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zigbee2mqtt => "zigbee2mqtt",
            Self::HomeAssistant => "home_assistant",
        }
    }
}

/// A command that waits for a human: how long it may wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalGate {
    pub expires_in_secs: u64,
    /// RFC 3339, as shown to approvers (the timer uses `expires_in_secs`).
    pub expires_at: String,
}

/// Workflow input: the tool's arguments as given (checked by `plan_device_command`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCommandJob {
    pub tenant: String,
    /// `smart_home_control` or `call_service`.
    pub tool: String,
    pub arguments: Value,
    /// Set when policy requires a human's approval before anything is sent.
    #[serde(default)]
    pub approval: Option<ApprovalGate>,
    /// The price, when billing is on: held once the command is valid (and approved), charged
    /// when every device confirmed, returned when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

/// What `plan_device_command` is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    pub tool: String,
    pub arguments: Value,
}

/// One device's change: a Zigbee2MQTT `/set` payload, or a Home Assistant service call
/// (`set` = `{"domain", "service", "data"}`, `device` = the entity id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSet {
    #[serde(default = "default_backend")]
    pub backend: Backend,
    pub device: String,
    pub set: Value,
}

fn default_backend() -> Backend {
    Backend::Zigbee2mqtt
}

/// A device's state after the command, as it reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceResult {
    pub device: String,
    /// What was asked.
    pub set: Value,
    /// The state that confirmed it.
    pub state: Value,
}

/// A human's decision on a command waiting for approval (signal `decide_approval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecision {
    pub approved: bool,
    /// The digest of the arguments the human saw (`arguments_digest`).
    pub digest: String,
    /// Who decided: the HUMAN key (or OIDC subject) that called approve/reject.
    pub by: String,
    /// RFC 3339.
    pub at: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceCommandOutput {
    pub devices: Vec<DeviceResult>,
    /// Who approved the command and when, when it needed approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDecision>,
}

/// What the approver is shown and the decision must name: `sha256:` + hex of the canonical JSON
/// of the tool and its arguments (object keys sorted), so any change of an argument changes it.
pub fn arguments_digest(tool: &str, arguments: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                // An absent field and a null one are the same argument.
                let mut keys: Vec<&String> = map
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k)
                    .collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&map[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(
        &serde_json::json!({ "tool": tool, "arguments": arguments }),
        &mut text,
    );
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What `list_devices` / `get_device_state` ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "read", rename_all = "snake_case")]
pub enum ReadRequest {
    List {
        room: Option<String>,
        backends: Vec<Backend>,
    },
    State {
        device: String,
        backends: Vec<Backend>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReadJob {
    pub tenant: String,
    pub request: ReadRequest,
}

pub struct DeviceActivityDefs;

#[activity_definitions]
impl DeviceActivityDefs {
    #[activity(name = PLAN_DEVICE_COMMAND)]
    pub fn plan_device_command(
        request: PlanRequest,
    ) -> Result<Vec<DeviceSet>, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = SEND_DEVICE_COMMAND)]
    pub fn send_device_command(
        input: DeviceSet,
    ) -> Result<DeviceResult, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = READ_DEVICES)]
    pub fn read_devices(request: ReadRequest) -> Result<Value, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

fn options(timeout: Duration, attempts: u32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(timeout)
        .task_queue(queues::DEVICES.to_string())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(500))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(5))
                .maximum_attempts(attempts)
                .non_retryable_error_types(ErrorKind::non_retryable_names())
                .build(),
        )
        .build()
}

#[workflow]
#[derive(Default)]
pub struct DeviceCommandWorkflow {
    decision: Option<ApprovalDecision>,
}

/// Sends each device its change, in order; the first that fails stops the rest.
async fn send_all<W>(
    ctx: &WorkflowContext<W>,
    sets: Vec<DeviceSet>,
) -> Result<Vec<DeviceResult>, ActivityExecutionError> {
    let mut devices = Vec::with_capacity(sets.len());
    for set in sets {
        let done = ctx
            .execute_activity(
                DeviceActivityDefs::send_device_command,
                set,
                options(Duration::from_secs(30), 6),
            )
            .await?;
        devices.push(done);
    }
    Ok(devices)
}

impl AwaitsApproval for DeviceCommandWorkflow {
    fn decision_slot(&mut self) -> &mut Option<ApprovalDecision> {
        &mut self.decision
    }
    fn decision(&self) -> Option<&ApprovalDecision> {
        self.decision.as_ref()
    }
}

#[workflow_methods]
impl DeviceCommandWorkflow {
    #[run(name = "DeviceCommand")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        job: DeviceCommandJob,
    ) -> WorkflowResult<DeviceCommandOutput> {
        let request = PlanRequest {
            tool: job.tool.clone(),
            arguments: job.arguments.clone(),
        };
        let sets = ctx
            .execute_activity(
                DeviceActivityDefs::plan_device_command,
                request,
                options(Duration::from_secs(30), 6),
            )
            .await?;
        let approval = match &job.approval {
            Some(gate) => Some(await_approval(ctx, gate, &job.tool, &job.arguments).await?),
            None => None,
        };
        let job_id = ctx.workflow_id().to_owned();
        let saga = Saga::hold_if_priced(ctx, &job.tenant, &job_id, job.billing.as_ref()).await?;
        let sent = send_all(ctx, sets).await;
        let devices = Saga::conclude(saga, ctx, sent).await??;
        Ok(DeviceCommandOutput { devices, approval })
    }

    /// A human's decision; the first one counts.
    #[signal(name = "decide_approval")]
    pub fn decide_approval(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: ApprovalDecision,
    ) {
        self.record_decision(decision);
    }
}

#[workflow]
#[derive(Default)]
pub struct DeviceReadWorkflow;

#[workflow_methods]
impl DeviceReadWorkflow {
    #[run(name = "DeviceRead")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, job: DeviceReadJob) -> WorkflowResult<Value> {
        // Reads are cheap to repeat but callers wait for them: few, quick attempts.
        Ok(ctx
            .execute_activity(
                DeviceActivityDefs::read_devices,
                job.request,
                options(Duration::from_secs(15), 3),
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_digest_ignores_key_order_and_changes_with_any_argument() {
        let a = arguments_digest(
            "smart_home_control",
            &json!({"action": "turn_on", "room": "x"}),
        );
        let b = arguments_digest(
            "smart_home_control",
            &json!({"room": "x", "action": "turn_on"}),
        );
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:") && a.len() == 71, "{a}");
        let c = arguments_digest(
            "smart_home_control",
            &json!({"action": "turn_on", "room": "y"}),
        );
        assert_ne!(a, c);
        let d = arguments_digest("call_service", &json!({"action": "turn_on", "room": "x"}));
        assert_ne!(a, d);
        let e = arguments_digest(
            "smart_home_control",
            &json!({"action": "turn_on", "room": "x", "device": null}),
        );
        assert_eq!(a, e, "null is absent");
    }
}
