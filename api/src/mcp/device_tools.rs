//! `smart_home_control`: a smart-home command as a durable workflow (see `crate::devices`).

use avb_devices::command::ControlInput;
use avb_workflows::devices::DeviceCommandOutput;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde_json::json;

use super::AvbServer;
use super::results::{structured, tool_error};
use crate::devices::{self, ControlOutcome};
use crate::jobs::JobError;

#[tool_router(router = device_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Control the home: `set_lights` (room or device; brightness 0-100 %, color name such as
    /// warm_white, or color_temp in kelvin), `turn_on`, `turn_off`, `set_temperature` (°C).
    /// Durable: returns once every device has confirmed the change, with its new state.
    #[tool(
        name = "smart_home_control",
        output_schema = schema_for_output::<DeviceCommandOutput>()
    )]
    async fn smart_home_control(
        &self,
        Parameters(input): Parameters<ControlInput>,
    ) -> CallToolResult {
        match devices::control(&self.state, self.tenant(), input).await {
            Ok(ControlOutcome::Done(out)) => {
                let names: Vec<_> = out.devices.iter().map(|d| d.device.as_str()).collect();
                structured(format!("confirmed by {}", names.join(", ")), &out)
            }
            Ok(ControlOutcome::Running(id)) => tool_error(
                "StillRunning",
                None,
                &format!("command {id} is still waiting for its devices; it goes on durably"),
                json!({ "command_id": id }),
            ),
            Err(JobError::Failed { kind, message, .. }) => tool_error(
                kind.as_deref().unwrap_or("Failed"),
                None,
                &message,
                json!({}),
            ),
            Err(e) => tool_error("Unavailable", None, &e.to_string(), json!({})),
        }
    }
}
