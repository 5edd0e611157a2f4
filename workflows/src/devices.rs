//! `DeviceCommand`: one smart-home command (`smart_home_control`) as a workflow. An activity on
//! `avb-devices` checks it against the devices the backend knows and says what to send (a bad
//! command fails here, before anything is sent); then one activity per device publishes the
//! change and returns once the device's state confirms it. Unconfirmed changes and broker
//! outages retry; an offline device fails at once.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::errors::NON_RETRYABLE_KINDS;
use crate::queues;

pub const PLAN_DEVICE_COMMAND: &str = "plan_device_command";
pub const SEND_DEVICE_COMMAND: &str = "send_device_command";

/// Workflow input: the tool's arguments as given (checked by `plan_device_command`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCommandJob {
    pub tenant: String,
    pub arguments: serde_json::Value,
}

/// One device's change: Zigbee2MQTT `/set` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSet {
    pub device: String,
    pub set: serde_json::Value,
}

/// A device's state after the command, as it reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceResult {
    pub device: String,
    /// What was asked.
    pub set: serde_json::Value,
    /// The state that confirmed it.
    pub state: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceCommandOutput {
    pub devices: Vec<DeviceResult>,
}

pub struct DeviceActivityDefs;

#[activity_definitions]
impl DeviceActivityDefs {
    #[activity(name = PLAN_DEVICE_COMMAND)]
    pub fn plan_device_command(
        arguments: serde_json::Value,
    ) -> Result<Vec<DeviceSet>, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = SEND_DEVICE_COMMAND)]
    pub fn send_device_command(
        input: DeviceSet,
    ) -> Result<DeviceResult, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

fn options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .task_queue(queues::DEVICES.to_string())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(500))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(5))
                .maximum_attempts(6)
                .non_retryable_error_types(NON_RETRYABLE_KINDS.iter().map(|s| (*s).to_string()))
                .build(),
        )
        .build()
}

#[workflow]
#[derive(Default)]
pub struct DeviceCommandWorkflow;

#[workflow_methods]
impl DeviceCommandWorkflow {
    #[run(name = "DeviceCommand")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        job: DeviceCommandJob,
    ) -> WorkflowResult<DeviceCommandOutput> {
        let sets = ctx
            .execute_activity(
                DeviceActivityDefs::plan_device_command,
                job.arguments,
                options(),
            )
            .await?;
        let mut devices = Vec::new();
        for set in sets {
            let done = ctx
                .execute_activity(DeviceActivityDefs::send_device_command, set, options())
                .await?;
            devices.push(done);
        }
        Ok(DeviceCommandOutput { devices })
    }
}
