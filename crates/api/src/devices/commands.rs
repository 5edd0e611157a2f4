//! `smart_home_control` (Zigbee2MQTT) and `call_service` (Home Assistant) as durable tools: a
//! command is a `DeviceCommand` job, confirmed by the devices' new state.

use avb_workflows::devices::{ControlInput, DeviceCommandOutput, ServiceCall};
use rmcp::model::{CallToolResult, Tool};
use serde_json::Value;

use super::{CommandStart, DeviceJobOutput, start_command};
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::durable::{DurableTool, Started, ToolCall, definition, output_as};
use crate::jobs::view::JobStatus;
use crate::mcp::results::structured;
use crate::state::ApiState;

/// The device-command family.
pub struct DeviceCommands;

#[async_trait::async_trait]
impl DurableTool for DeviceCommands {
    fn names(&self) -> &'static [&'static str] {
        &["smart_home_control", "call_service"]
    }

    fn definitions(&self) -> Vec<Tool> {
        vec![
            definition::<ControlInput, DeviceJobOutput>(
                "smart_home_control",
                "Control the home: `set_lights` (room or device; brightness 0-100 %, color name \
                 such as\nwarm_white, or color_temp in kelvin), `turn_on`, `turn_off`, \
                 `set_temperature` (°C).\nDurable: returns once every device has confirmed the \
                 change, with its new state; where\npolicy requires a person's approval, returns \
                 `input_required` at once and runs after\napprove_job.",
            ),
            definition::<ServiceCall, DeviceJobOutput>(
                "call_service",
                "Call a Home Assistant service on one entity, e.g. domain \"light\", service \
                 \"turn_on\",\nentity_id \"light.porch\", data {\"brightness_pct\": 40}. Durable, \
                 confirmed by the entity's\nnew state; approval as policy says.",
            ),
        ]
    }

    async fn start(&self, call: &ToolCall<'_>) -> Result<Started, Problem> {
        if !super::offered_to(call.state, call.tenant(), call.name) {
            return Err(Problem::not_found(format!(
                "no tool is called {:?}",
                call.name
            )));
        }
        let arguments = if call.name == "call_service" {
            let input: ServiceCall = call.input()?;
            input
                .check()
                .map_err(|e| Problem::invalid(e.field, e.message))?;
            let ha = &call.state.config.devices.home_assistant;
            if !ha.allows_service(&input.domain, &input.service) {
                return Err(Problem::new(
                    ErrorKind::ToolNotAllowed,
                    format!(
                        "{}.{} is not in devices.home_assistant.allowed_services ({})",
                        input.domain,
                        input.service,
                        ha.allowed_services.join(", ")
                    ),
                ));
            }
            serde_json::to_value(&input)
        } else {
            serde_json::to_value(call.input::<ControlInput>()?)
        }
        .map_err(|e| {
            Problem::internal("the command's arguments cannot be encoded").with_source(e)
        })?;
        let started = match start_command(call, arguments).await? {
            CommandStart::Asked(ask) => return Ok(Started::NeedsInput(ask)),
            CommandStart::Started(started) => started,
        };
        let job_id = started.job_id;
        Ok(match started.pending {
            Some(pending) => {
                let out = DeviceJobOutput::waiting(
                    &job_id,
                    JobStatus::InputRequired.as_str(),
                    Some(pending.clone()),
                );
                let value = serde_json::to_value(&out).unwrap_or_default();
                Started::Waiting {
                    answer: crate::approval::waiting_result(call.name, &job_id, &pending, value),
                    job_id,
                }
            }
            None => {
                let out = DeviceJobOutput::waiting(&job_id, "running", None);
                let text = format!(
                    "Job {job_id} is still waiting for its devices; it goes on durably (get_job)."
                );
                Started::Running {
                    still_running: structured(text, &out),
                    job_id,
                }
            }
        })
    }

    fn structured(&self, _state: &ApiState, job_id: &str, output: Value) -> Result<Value, Problem> {
        let out: DeviceCommandOutput = output_as(output)?;
        serde_json::to_value(DeviceJobOutput::completed(job_id, &out))
            .map_err(|e| Problem::internal("the job's result cannot be encoded").with_source(e))
    }

    async fn render(&self, _state: &ApiState, job_id: &str, output: Value) -> CallToolResult {
        let out = match output_as::<DeviceCommandOutput>(output) {
            Ok(out) => DeviceJobOutput::completed(job_id, &out),
            Err(p) => return p.into_tool_result(),
        };
        let names: Vec<_> = out.devices.iter().map(|d| d.device.as_str()).collect();
        structured(
            format!("Job {job_id}: confirmed by {}", names.join(", ")),
            &out,
        )
    }
}
