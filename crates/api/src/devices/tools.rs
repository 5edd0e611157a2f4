//! The smart home's fast tools: `list_devices` and `get_device_state` (short `DeviceRead`
//! workflows; the commands are durable tools, `super::commands`).

use avb_workflows::devices::ReadRequest;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::DeviceToolError;
use crate::core::problem::Problem;
use crate::devices;
use crate::mcp::AvbServer;
use crate::mcp::results::structured;

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

fn read_result(
    r: Result<serde_json::Value, DeviceToolError>,
    text: impl FnOnce(&serde_json::Value) -> String,
) -> CallToolResult {
    match r {
        Ok(v) => structured(text(&v), &v),
        Err(e) => Problem::from(e).into_tool_result(),
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
        read_result(r, |v| {
            let n = v["devices"].as_array().map_or(0, Vec::len);
            format!("{n} devices.")
        })
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
        read_result(r, |v| format!("State of {device}: {}", v["state"]))
    }
}
