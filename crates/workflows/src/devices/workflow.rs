//! `DeviceCommand`: one smart-home command (`smart_home_control`, `call_service`) as a workflow.
//! An activity on `avb-devices` checks it against the devices the backend knows and says what to
//! send (a bad command fails here, before anything is sent or anyone is asked). Where policy
//! says so, the workflow then waits for a human's decision (signal `decide_approval`), bound to
//! the digest of the exact arguments, until the approval expires. Then one activity per device
//! sends the change and returns once the device's state confirms it. Unconfirmed changes and
//! broker outages retry; an offline device fails at once.
//!
//! `DeviceRead` (`list_devices`, `get_device_state`) is the same path for reads: one activity.

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
                policy::device_command(),
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
                policy::device_command(),
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
        Ok(ctx
            .execute_activity(
                DeviceActivityDefs::read_devices,
                job.request,
                policy::device_read(),
            )
            .await?)
    }
}
