//! `ReconcileMcpServers`, run by a Temporal schedule (`avb-reconcile-mcp-servers`): one activity
//! on `avb-provisioning` compares the recorded deployments with the engine's labelled replicas,
//! removes orphans (replicas no live record accounts for), and reports drift (a running server
//! whose replicas are missing or not running; its record turns `degraded`, and back to `running`
//! once healthy). The workflow only carries the report, so operators see each run in the UI.
//!
//! Host-local engines (processes, a Docker socket) are visited host by host: the run on
//! `avb-provisioning` checks servers recorded without a host, pays blocks, purges old records
//! and names the hosts of recorded servers; each host then gets a run on its own queue (orphans
//! and drift of its engine), merged into one report. A host whose workers do not take its run
//! within 30 s is reported unreachable; the others are visited anyway.

use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{
    ChildWorkflowOptions, ParentClosePolicy, WorkflowContext, WorkflowResult,
};

use super::contract::{ReconcileActivityDefs, ReconcileInput, ReconcileReport, UnreachableHost};
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
        let mut report = ctx
            .execute_activity(
                ReconcileActivityDefs::reconcile_servers,
                input.clone(),
                options,
            )
            .await?;
        // Runs recorded before hosts were named report none: nothing more is scheduled.
        for host in report.hosts.clone() {
            let visit = ReconcileInput {
                dry_run: input.dry_run,
                host: Some(host.clone()),
            };
            let options = policy::reconcile_on_host(&host);
            match ctx
                .execute_activity(ReconcileActivityDefs::reconcile_servers, visit, options)
                .await
            {
                Ok(found) => report.absorb(found),
                Err(e) => report.unreachable.push(UnreachableHost {
                    host,
                    error: e.to_string(),
                }),
            }
        }
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
                host: server.host.clone(),
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
