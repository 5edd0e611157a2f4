//! `ReconcileMcpServers`, run by a Temporal schedule (`avb-reconcile-mcp-servers`): one activity
//! on `avb-provisioning` compares the recorded deployments with the engine's labelled replicas,
//! removes orphans (replicas no live record accounts for), and reports drift (a running server
//! whose replicas are missing or not running; its record turns `degraded`, and back to `running`
//! once healthy). The workflow only carries the report, so operators see each run in the UI.

use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{
    ChildWorkflowOptions, ParentClosePolicy, WorkflowContext, WorkflowResult,
};

use super::contract::{ReconcileActivityDefs, ReconcileInput, ReconcileReport};
use crate::policy;
use crate::provision::{DeleteMcpServerWorkflow, DeleteServerJob};

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
        let options = policy::reconcile();
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
