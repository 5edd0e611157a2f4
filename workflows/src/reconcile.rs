//! `ReconcileMcpServers`, run by a Temporal schedule (`avb-reconcile-mcp-servers`): one activity
//! on `avb-provisioning` compares the recorded deployments with the engine's labelled replicas,
//! removes orphans (replicas no live record accounts for), and reports drift (a running server
//! whose replicas are missing or not running; its record turns `degraded`, and back to `running`
//! once healthy). The workflow only carries the report, so operators see each run in the UI.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{
    ActivityOptions, ChildWorkflowOptions, ParentClosePolicy, WorkflowContext, WorkflowResult,
};

use crate::provision::{DeleteMcpServerWorkflow, DeleteServerJob, ServerBilling};
use crate::queues;

pub const RECONCILE_WORKFLOW: &str = "ReconcileMcpServers";
pub const RECONCILE_ACTIVITY: &str = "reconcile_servers";
/// The schedule's id (one per namespace).
pub const RECONCILE_SCHEDULE_ID: &str = "avb-reconcile-mcp-servers";

pub const EVENT_ORPHAN_REMOVED: &str = "mcp.server.orphan.removed";
pub const EVENT_DRIFT: &str = "mcp.server.drift";
pub const EVENT_RECOVERED: &str = "mcp.server.recovered";
pub const EVENT_CREDITS_EXHAUSTED: &str = "mcp.server.credits.exhausted";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileInput {
    /// Only report orphans, do not remove them.
    #[serde(default)]
    pub dry_run: bool,
}

/// A replica no live record accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    pub server_id: String,
    pub tenant: String,
    pub replica: u32,
    /// Container or process id.
    pub id: String,
    /// Why it is an orphan: no record, record deleted/failed, replica beyond the record's count.
    pub reason: String,
    pub removed: bool,
}

/// A recorded running server whose replicas are not all there and running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub server_id: String,
    pub tenant: String,
    /// e.g. "replica 1 is missing", "replica 0 is exited (exit code 137)".
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// `docker` or `process`.
    pub backend: String,
    /// Records looked at (not deleted).
    pub records: u32,
    /// Managed replicas the engine has.
    pub replicas: u32,
    pub orphans: Vec<Orphan>,
    pub drift: Vec<Drift>,
    /// Servers that were degraded and are whole again.
    pub recovered: Vec<String>,
    /// Blocks of container-minutes paid by this run.
    #[serde(default)]
    pub paid_blocks: u32,
    /// Servers whose tenant cannot pay their next block: the run deletes them.
    #[serde(default)]
    pub exhausted: Vec<ExhaustedServer>,
}

/// A server whose tenant ran out of credits for its next block of container-minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExhaustedServer {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    /// The block that could not be paid.
    pub block: i64,
    pub billing: Option<ServerBilling>,
}

pub struct ReconcileActivityDefs;

#[activity_definitions]
impl ReconcileActivityDefs {
    #[activity(name = RECONCILE_ACTIVITY)]
    pub fn reconcile_servers(
        input: ReconcileInput,
    ) -> Result<ReconcileReport, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

#[workflow]
#[derive(Default)]
pub struct ReconcileMcpServersWorkflow;

#[workflow_methods]
impl ReconcileMcpServersWorkflow {
    #[run(name = "ReconcileMcpServers")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ReconcileInput,
    ) -> WorkflowResult<ReconcileReport> {
        // A few quick retries: the next scheduled run tries again anyway.
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
            .task_queue(queues::PROVISIONING.to_string())
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(2))
                    .maximum_attempts(3)
                    .build(),
            )
            .build();
        let report = ctx
            .execute_activity(ReconcileActivityDefs::reconcile_servers, input, options)
            .await?;
        // Servers nobody can pay for are deleted (their own workflow, as if the tenant asked;
        // one already being deleted is left to that deletion).
        for server in &report.exhausted {
            let job = DeleteServerJob {
                server_id: server.server_id.clone(),
                tenant: server.tenant.clone(),
                service_name: server.service_name.clone(),
                template: server.template.clone(),
                replicas: server.replicas,
                billing: server.billing.clone(),
            };
            let options = ChildWorkflowOptions::builder()
                .workflow_id(format!("{}-delete", server.server_id))
                .parent_close_policy(ParentClosePolicy::Abandon)
                .build();
            // An error here means the deletion is already under way.
            let _already_deleting = ctx
                .start_child_workflow(DeleteMcpServerWorkflow::run, job, options)
                .await
                .is_err();
        }
        Ok(report)
    }
}
