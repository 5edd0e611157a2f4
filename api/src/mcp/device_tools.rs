//! Smart-home tools: `list_devices`, `get_device_state`, `smart_home_control` (Zigbee2MQTT),
//! `call_service` (Home Assistant); and the approval family, `approve_job` / `reject_job`
//! (HUMAN callers only). See `crate::devices`.

use avb_devices::command::ControlInput;
use avb_devices::ha::ServiceCall;
use avb_workflows::devices::ReadRequest;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AvbServer;
use super::results::{structured, tool_error};
use crate::devices::{self, CommandOutcome, DeviceJobOutput, DeviceToolError};
use crate::jobs::JobError;
use crate::jobs::view::JobView;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDevicesInput {
    /// Only devices in this room, e.g. "living_room" (Zigbee2MQTT rooms).
    pub room: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceStateInput {
    /// A Zigbee2MQTT device ("living_room/ceiling") or a Home Assistant entity
    /// ("light.porch").
    pub device: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    pub job_id: String,
    /// The `digest` of the job's `approval_request`: the approval covers exactly those
    /// arguments.
    pub digest: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    pub job_id: String,
    /// Why, recorded with the decision.
    pub reason: Option<String>,
}

pub(crate) fn error_result(e: &DeviceToolError) -> CallToolResult {
    let (field, message) = match e {
        DeviceToolError::Invalid { field, message } => (Some(*field), message.clone()),
        DeviceToolError::Job(JobError::Failed { message, .. }) => (None, message.clone()),
        other => (None, other.to_string()),
    };
    let details = match e {
        DeviceToolError::Job(JobError::Failed {
            details: Some(d), ..
        }) => d.clone(),
        _ => json!({}),
    };
    tool_error(e.kind(), field, &message, details)
}

/// The arguments of a device command sent as a task, checked like the direct call's.
pub(crate) fn command_arguments(
    request: &rmcp::model::CallToolRequestParams,
) -> Result<Value, CallToolResult> {
    let value = Value::Object(request.arguments.clone().unwrap_or_default());
    let bad = |e: serde_json::Error| {
        tool_error(
            "InvalidInput",
            None,
            &format!("invalid arguments for {}: {e}", request.name),
            json!({}),
        )
    };
    if request.name == "call_service" {
        let call: ServiceCall = serde_json::from_value(value).map_err(bad)?;
        call.check()
            .map_err(|e| tool_error("InvalidInput", Some(e.field), &e.message, json!({})))?;
        Ok(serde_json::to_value(&call).unwrap_or_default())
    } else {
        let input: ControlInput = serde_json::from_value(value).map_err(bad)?;
        Ok(serde_json::to_value(&input).unwrap_or_default())
    }
}

fn command_result(outcome: Result<CommandOutcome, DeviceToolError>) -> CallToolResult {
    match outcome {
        Ok(CommandOutcome::Done(out)) => {
            let names: Vec<_> = out.devices.iter().map(|d| d.device.as_str()).collect();
            structured(
                format!("Job {}: confirmed by {}", out.job_id, names.join(", ")),
                &out,
            )
        }
        Ok(CommandOutcome::Waiting(out)) => {
            let text = match &out.pending_approval {
                Some(p) => format!(
                    "Job {} waits for a person's approval (until {}): approve_job with digest \
                     {}, or reject_job. Nothing is sent before that.",
                    out.job_id, p.expires_at, p.digest
                ),
                None => format!(
                    "Job {} is still waiting for its devices; it goes on durably (get_job).",
                    out.job_id
                ),
            };
            structured(text, &out)
        }
        Err(e) => error_result(&e),
    }
}

fn decision_result(r: Result<JobView, DeviceToolError>, verb: &str) -> CallToolResult {
    match r {
        Ok(view) => structured(format!("Job {}: {verb}.", view.job_id), &view),
        Err(e) => error_result(&e),
    }
}

#[tool_router(router = device_tools, vis = "pub(crate)")]
impl AvbServer {
    /// The home's devices: name, room, kind, whether online, last state. Zigbee2MQTT devices
    /// and Home Assistant entities, as configured.
    #[tool(
        name = "list_devices",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_devices(
        &self,
        Parameters(input): Parameters<ListDevicesInput>,
    ) -> CallToolResult {
        let r = devices::read(&self.state, self.tenant(), "list_devices", |backends| {
            ReadRequest::List {
                room: input.room,
                backends,
            }
        })
        .await;
        match r {
            Ok(v) => {
                let n = v["devices"].as_array().map_or(0, Vec::len);
                structured(format!("{n} devices."), &v)
            }
            Err(e) => error_result(&e),
        }
    }

    /// One device's current state, asked from the device (Zigbee2MQTT `/get`) or Home
    /// Assistant.
    #[tool(
        name = "get_device_state",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_device_state(
        &self,
        Parameters(input): Parameters<DeviceStateInput>,
    ) -> CallToolResult {
        let device = input.device.clone();
        let r = devices::read(&self.state, self.tenant(), "get_device_state", |backends| {
            ReadRequest::State {
                device: input.device,
                backends,
            }
        })
        .await;
        match r {
            Ok(v) => structured(format!("State of {device}: {}", v["state"]), &v),
            Err(e) => error_result(&e),
        }
    }

    /// Control the home: `set_lights` (room or device; brightness 0-100 %, color name such as
    /// warm_white, or color_temp in kelvin), `turn_on`, `turn_off`, `set_temperature` (°C).
    /// Durable: returns once every device has confirmed the change, with its new state; where
    /// policy requires a person's approval, returns `input_required` at once and runs after
    /// approve_job.
    #[tool(
        name = "smart_home_control",
        output_schema = schema_for_output::<DeviceJobOutput>()
    )]
    async fn smart_home_control(
        &self,
        Parameters(input): Parameters<ControlInput>,
    ) -> CallToolResult {
        let arguments = serde_json::to_value(&input).unwrap_or_default();
        command_result(
            devices::command(&self.state, self.tenant(), "smart_home_control", arguments).await,
        )
    }

    /// Call a Home Assistant service on one entity, e.g. domain "light", service "turn_on",
    /// entity_id "light.porch", data {"brightness_pct": 40}. Durable, confirmed by the entity's
    /// new state; approval as policy says.
    #[tool(
        name = "call_service",
        output_schema = schema_for_output::<DeviceJobOutput>()
    )]
    async fn call_service(&self, Parameters(input): Parameters<ServiceCall>) -> CallToolResult {
        if let Err(e) = input.check() {
            return tool_error("InvalidInput", Some(e.field), &e.message, json!({}));
        }
        let arguments: Value = serde_json::to_value(&input).unwrap_or_default();
        command_result(
            devices::command(&self.state, self.tenant(), "call_service", arguments).await,
        )
    }
}

#[tool_router(router = approval_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Approve a job waiting for approval (status input_required), naming the digest of the
    /// arguments you approve. HUMAN keys only; recorded with who and when.
    #[tool(
        name = "approve_job",
        output_schema = schema_for_output::<JobView>(),
        annotations(idempotent_hint = true)
    )]
    async fn approve_job(&self, Parameters(input): Parameters<ApproveInput>) -> CallToolResult {
        let Some(caller) = self.caller_of_session() else {
            return tool_error("Forbidden", None, "no caller", json!({}));
        };
        decision_result(
            devices::decide(
                &self.state,
                &caller,
                &input.job_id,
                true,
                Some(input.digest),
                None,
            )
            .await,
            "approved",
        )
    }

    /// Reject a job waiting for approval: it ends without sending anything. HUMAN keys only.
    #[tool(
        name = "reject_job",
        output_schema = schema_for_output::<JobView>(),
        annotations(idempotent_hint = true)
    )]
    async fn reject_job(&self, Parameters(input): Parameters<RejectInput>) -> CallToolResult {
        let Some(caller) = self.caller_of_session() else {
            return tool_error("Forbidden", None, "no caller", json!({}));
        };
        decision_result(
            devices::decide(
                &self.state,
                &caller,
                &input.job_id,
                false,
                None,
                input.reason,
            )
            .await,
            "rejected",
        )
    }
}
