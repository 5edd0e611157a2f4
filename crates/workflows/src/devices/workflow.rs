//! `DeviceCommand`: one smart-home command (`smart_home_control`, `call_service`) as a workflow.
//! An activity on `avb-devices` checks it against the devices the backend knows and says what to
//! send (a bad command fails here, before anything is sent or anyone is asked). Where policy
//! says so, the workflow then waits for a human's decision (signal `decide_approval`), bound to
//! the digest of the exact arguments, until the approval expires. Then one activity per device
//! sends the change and returns once the device's state confirms it. Unconfirmed changes and
//! broker outages retry; an offline device fails at once.
//!
//! `DeviceRead` (`list_devices`, `get_device_state`) is the same path for reads: one activity.
//!
//! Jobs started with `local_activities` run on the devices queue, where the worker that runs the
//! workflow also holds the devices: plan, send and read are local activities there, so a
//! command costs one workflow task instead of a dispatch through Temporal per step. That is as
//! safe as dispatching: either way a step whose result was not recorded runs again (and a
//! device set to a state it already has stays in it). Billing steps stay on `avb-billing`.

use serde_json::Value;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{
    ActivityExecutionError, SyncWorkflowContext, WorkflowContext, WorkflowResult,
};

use super::contract::{
    DeviceActivityDefs, DeviceCommandJob, DeviceCommandOutput, DeviceReadJob, DeviceResult,
    DeviceSet, PlanRequest,
};
use crate::approval::{ApprovalDecision, AwaitsApproval, DECIDE_APPROVAL, await_approval};
use crate::billing::Saga;
use crate::policy;

#[workflow]
#[derive(Default)]
pub struct DeviceCommandWorkflow {
    decision: Option<ApprovalDecision>,
}

/// Checks the command against the devices the backend knows and says what to send.
async fn plan<W>(
    ctx: &WorkflowContext<W>,
    request: PlanRequest,
    local: bool,
) -> Result<Vec<DeviceSet>, ActivityExecutionError> {
    let plan = DeviceActivityDefs::plan_device_command;
    if local {
        ctx.execute_local_activity(plan, request, policy::device_command_local())
            .await
    } else {
        ctx.execute_activity(plan, request, policy::device_command())
            .await
    }
}

/// Sends each device its change, in order; the first that fails stops the rest.
async fn send_all<W>(
    ctx: &WorkflowContext<W>,
    sets: Vec<DeviceSet>,
    local: bool,
) -> Result<Vec<DeviceResult>, ActivityExecutionError> {
    let mut devices = Vec::with_capacity(sets.len());
    for set in sets {
        let done = if local {
            ctx.execute_local_activity(
                DeviceActivityDefs::send_device_command,
                set,
                policy::device_command_local(),
            )
            .await?
        } else {
            ctx.execute_activity(
                DeviceActivityDefs::send_device_command,
                set,
                policy::device_command(),
            )
            .await?
        };
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
        let sets = plan(ctx, request, job.local_activities).await?;
        let approval = match &job.approval {
            Some(gate) => Some(await_approval(ctx, gate, &job.tool, &job.arguments).await?),
            None => None,
        };
        let job_id = ctx.workflow_id().to_owned();
        let saga = Saga::hold_if_priced(ctx, &job.tenant, &job_id, job.billing.as_ref()).await?;
        let sent = send_all(ctx, sets, job.local_activities).await;
        let devices = Saga::conclude(saga, ctx, sent).await??;
        Ok(DeviceCommandOutput { devices, approval })
    }

    /// A human's decision; the first one counts.
    #[signal(name = DECIDE_APPROVAL)]
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
        let read = DeviceActivityDefs::read_devices;
        Ok(if job.local_activities {
            ctx.execute_local_activity(read, job.request, policy::device_read_local())
                .await?
        } else {
            ctx.execute_activity(read, job.request, policy::device_read())
                .await?
        })
    }
}
