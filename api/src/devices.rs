//! Smart-home commands as callers see them (`smart_home_control`): each command is a
//! `DeviceCommand` workflow (id `dev_…`, tagged with the tool and tenant like jobs), validated and
//! carried out on the `avb-devices` worker; the call waits up to the wait budget for it.

use avb_devices::command::ControlInput;
use avb_workflows::devices::{DeviceCommandJob, DeviceCommandOutput, DeviceCommandWorkflow};
use temporalio_client::WorkflowGetResultOptions;

use crate::jobs::{JobError, job_start_options, map_result};
use crate::state::ApiState;

pub const TOOL: &str = "smart_home_control";

/// The outcome now, or the command's id when it is still running after the wait budget.
pub enum ControlOutcome {
    Done(DeviceCommandOutput),
    Running(String),
}

pub async fn control(
    state: &ApiState,
    tenant: &str,
    input: ControlInput,
) -> Result<ControlOutcome, JobError> {
    let id = format!("dev_{}", uuid::Uuid::new_v4().simple());
    let job = DeviceCommandJob {
        tenant: tenant.to_owned(),
        arguments: serde_json::to_value(&input).map_err(|e| JobError::Start(e.to_string()))?,
    };
    let handle = state
        .temporal
        .start_workflow(
            DeviceCommandWorkflow::run,
            job,
            job_start_options(TOOL, tenant, &id, false),
        )
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    tracing::info!(command_id = %id, tenant, "device command started");
    match tokio::time::timeout(
        state.config.wait_budget(),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    {
        Ok(r) => map_result(r).map(ControlOutcome::Done),
        Err(_) => Ok(ControlOutcome::Running(id)),
    }
}
