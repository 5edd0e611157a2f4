//! `ProvisionMcpServer` and `DeleteMcpServer`: MCP servers from templates, provisioned on the
//! `avb-provisioning` worker. Create: record → `mcp.server.create.requested` → one container
//! (or process) per replica → wait until each answers MCP `initialize` → record the endpoints →
//! `mcp.server.created`. Any failure removes every replica it may have created (names are
//! deterministic, removal is idempotent) → `mcp.server.failed` with the reason. Delete:
//! `mcp.server.delete.requested` → remove → `mcp.server.deleted`.
//!
//! Placement: a job with `on_host` first asks a provisioning worker where its replicas will
//! live (`place_replicas`); with a host-local engine every replica step then runs on that
//! host's queue, so create, readiness, compensation and delete all reach the same processes or
//! containers, whichever host took the placement.

use std::collections::BTreeMap;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{WorkflowContext, WorkflowResult};

use super::contract::{
    CreateReplica, DeleteServerJob, EVENT_CREATE_REQUESTED, EVENT_CREATED, EVENT_DELETE_REQUESTED,
    EVENT_DELETED, EVENT_FAILED, Endpoint, PlaceReplicas, ProvisionServerJob,
    ProvisioningActivityDefs, RecordServer, RemoveReplicas, SettleServerMinutes,
};
use crate::billing::Saga;
use crate::policy;

fn record(
    job: &ProvisionServerJob,
    host: Option<&str>,
    status: &str,
    endpoints: Vec<Endpoint>,
    error: Option<String>,
    event: &str,
    detail: serde_json::Value,
) -> RecordServer {
    RecordServer {
        server_id: job.server_id.clone(),
        tenant: job.tenant.clone(),
        service_name: job.service_name.clone(),
        template: job.template.clone(),
        replicas: job.replicas,
        status: status.into(),
        endpoints,
        error,
        event: event.into(),
        event_key: format!("{}/{event}", job.server_id),
        detail,
        host: host.map(str::to_owned),
    }
}

#[workflow]
#[derive(Default)]
pub struct ProvisionMcpServerWorkflow;

#[workflow_methods]
impl ProvisionMcpServerWorkflow {
    #[run(name = "ProvisionMcpServer")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        job: ProvisionServerJob,
    ) -> WorkflowResult<Vec<Endpoint>> {
        let short = policy::provisioning_step();
        let host = if job.on_host {
            let place = PlaceReplicas {
                server_id: job.server_id.clone(),
            };
            ctx.execute_activity(
                ProvisioningActivityDefs::place_replicas,
                place,
                short.clone(),
            )
            .await?
        } else {
            None
        };
        let host = host.as_deref();
        let requested = record(
            &job,
            host,
            "creating",
            Vec::new(),
            None,
            EVENT_CREATE_REQUESTED,
            serde_json::json!({ "template": job.template, "replicas": job.replicas }),
        );
        ctx.execute_activity(
            ProvisioningActivityDefs::record_server,
            requested,
            short.clone(),
        )
        .await?;
        // Block 0 is held before anything is created: too few credits fail the job here.
        let saga = match &job.billing {
            Some(b) => match Saga::hold(ctx, &job.tenant, &job.server_id, &b.plan).await {
                Ok(saga) => Some(saga),
                Err(e) => {
                    let reason = e.to_string();
                    let failed = record(
                        &job,
                        host,
                        "failed",
                        Vec::new(),
                        Some(reason.clone()),
                        EVENT_FAILED,
                        serde_json::json!({ "reason": reason }),
                    );
                    ctx.execute_activity(ProvisioningActivityDefs::record_server, failed, short)
                        .await?;
                    return Err(e);
                }
            },
            None => None,
        };
        let mut endpoints = Vec::new();
        let mut failure = None;
        for replica in 0..job.replicas {
            if ctx.cancellation_token().is_cancelled() {
                break;
            }
            let input = CreateReplica {
                job: job.clone(),
                replica,
            };
            // The steps that build the server stop when the workflow is cancelled (a delete
            // came first); compensation below keeps its own, detached, token.
            let mut building = policy::on_host(policy::provisioning_replicas(), host);
            building.cancellation_token = Some(ctx.cancellation_token());
            let created = ctx
                .execute_activity(ProvisioningActivityDefs::create_replica, input, building)
                .await;
            let endpoint = match created {
                Ok(e) => e,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let mut readiness = policy::on_host(policy::provisioning_readiness(), host);
            readiness.cancellation_token = Some(ctx.cancellation_token());
            let ready = ctx
                .execute_activity(
                    ProvisioningActivityDefs::wait_replica_ready,
                    endpoint.clone(),
                    readiness,
                )
                .await;
            if let Err(e) = ready {
                failure = Some(e);
                break;
            }
            endpoints.push(endpoint);
        }
        match failure {
            None if !ctx.cancellation_token().is_cancelled() => {
                let created = record(
                    &job,
                    host,
                    "running",
                    endpoints.clone(),
                    None,
                    EVENT_CREATED,
                    serde_json::json!({ "endpoints": endpoints }),
                );
                ctx.execute_activity(ProvisioningActivityDefs::record_server, created, short)
                    .await?;
                if let Some(saga) = saga {
                    saga.settle(ctx).await?;
                }
                Ok(endpoints)
            }
            other => {
                // Compensation: every replica this job may have created, by name.
                let reason = other
                    .as_ref()
                    .map_or_else(|| "cancelled".to_string(), |e| format!("{e}"));
                let remove = RemoveReplicas {
                    server_id: job.server_id.clone(),
                    replicas: job.replicas,
                };
                ctx.execute_activity(
                    ProvisioningActivityDefs::remove_replicas,
                    remove,
                    policy::on_host(policy::provisioning_replicas(), host),
                )
                .await?;
                if let Some(saga) = saga {
                    saga.release(ctx, &reason).await?;
                }
                let failed = record(
                    &job,
                    host,
                    "failed",
                    Vec::new(),
                    Some(reason.clone()),
                    EVENT_FAILED,
                    serde_json::json!({ "reason": reason }),
                );
                ctx.execute_activity(ProvisioningActivityDefs::record_server, failed, short)
                    .await?;
                match other {
                    Some(e) => Err(e.into()),
                    None => Err(temporalio_workflow::WorkflowTermination::cancelled()),
                }
            }
        }
    }
}

#[workflow]
#[derive(Default)]
pub struct DeleteMcpServerWorkflow;

#[workflow_methods]
impl DeleteMcpServerWorkflow {
    #[run(name = "DeleteMcpServer")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, job: DeleteServerJob) -> WorkflowResult<u32> {
        let short = policy::provisioning_step();
        let as_job = ProvisionServerJob {
            server_id: job.server_id.clone(),
            tenant: job.tenant.clone(),
            service_name: job.service_name.clone(),
            template: job.template.clone(),
            environment: BTreeMap::new(),
            replicas: job.replicas,
            billing: None,
            on_host: false,
        };
        let host = job.host.as_deref();
        let requested = record(
            &as_job,
            host,
            "deleting",
            Vec::new(),
            None,
            EVENT_DELETE_REQUESTED,
            serde_json::json!({}),
        );
        ctx.execute_activity(
            ProvisioningActivityDefs::record_server,
            requested,
            short.clone(),
        )
        .await?;
        let removed = ctx
            .execute_activity(
                ProvisioningActivityDefs::remove_replicas,
                RemoveReplicas {
                    server_id: job.server_id.clone(),
                    replicas: job.replicas,
                },
                policy::on_host(policy::provisioning_replicas(), host),
            )
            .await?;
        if let Some(billing) = job.billing.clone() {
            let ended = ctx
                .workflow_time()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let settle = SettleServerMinutes {
                server_id: job.server_id.clone(),
                tenant: job.tenant.clone(),
                replicas: job.replicas,
                billing,
                ended_at_ms: ended,
            };
            ctx.execute_activity(
                ProvisioningActivityDefs::settle_server_minutes,
                settle,
                short.clone(),
            )
            .await?;
        }
        let deleted = record(
            &as_job,
            host,
            "deleted",
            Vec::new(),
            None,
            EVENT_DELETED,
            serde_json::json!({ "removed": removed }),
        );
        ctx.execute_activity(ProvisioningActivityDefs::record_server, deleted, short)
            .await?;
        Ok(removed)
    }
}
