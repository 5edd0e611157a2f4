//! The device families' contract: `DeviceCommand` (`smart_home_control`, `call_service`) and
//! `DeviceRead` (`list_devices`, `get_device_state`): workflow inputs and outputs, what the
//! `avb-devices` activities are asked and answer, and their definitions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use temporalio_macros::activity_definitions;

use crate::approval::{ApprovalDecision, ApprovalGate};
use crate::billing::BillingPlan;

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
    /// Started on the devices queue: plan and send run as local activities on the worker that
    /// runs the workflow (no dispatch through Temporal per step). Jobs recorded without it
    /// dispatch each step to `avb-devices`, as they did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_activities: bool,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceCommandOutput {
    pub devices: Vec<DeviceResult>,
    /// Who approved the command and when, when it needed approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDecision>,
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
    /// As [`DeviceCommandJob::local_activities`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_activities: bool,
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

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`.
pub mod activity {
    pub use super::device_activity_defs::{PlanDeviceCommand, ReadDevices, SendDeviceCommand};
}
