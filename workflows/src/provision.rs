//! `ProvisionMcpServer` and `DeleteMcpServer`: MCP servers from templates, provisioned on the
//! `avb-provisioning` worker. Create: record → `mcp.server.create.requested` → one container
//! (or process) per replica → wait until each answers MCP `initialize` → record the endpoints →
//! `mcp.server.created`. Any failure removes every replica it may have created (names are
//! deterministic, removal is idempotent) → `mcp.server.failed` with the reason. Delete:
//! `mcp.server.delete.requested` → remove → `mcp.server.deleted`.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{
    ActivityOptions, WorkflowCancellationToken, WorkflowContext, WorkflowResult,
};

use crate::billing::BillingPlan;
use crate::errors::ErrorKind;
use crate::queues;
use crate::saga::Saga;

pub const CREATE_REPLICA: &str = "create_replica";
pub const WAIT_REPLICA_READY: &str = "wait_replica_ready";
pub const REMOVE_REPLICAS: &str = "remove_replicas";
pub const RECORD_SERVER: &str = "record_server";
pub const SETTLE_SERVER_MINUTES: &str = "settle_server_minutes";

/// The tool container-minutes are billed under (`[billing.prices.create_mcp_server]`).
pub const BILLED_TOOL: &str = "create_mcp_server";
pub const BILLED_UNIT: &str = "container-minute";

pub const EVENT_CREATE_REQUESTED: &str = "mcp.server.create.requested";
pub const EVENT_CREATED: &str = "mcp.server.created";
pub const EVENT_FAILED: &str = "mcp.server.failed";
pub const EVENT_DELETE_REQUESTED: &str = "mcp.server.delete.requested";
pub const EVENT_DELETED: &str = "mcp.server.deleted";

/// Workflow input of `ProvisionMcpServer` (validated by the api before it starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionServerJob {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub environment: BTreeMap<String, String>,
    pub replicas: u32,
    /// Container-minute billing (none when billing is off, and in jobs recorded before it).
    #[serde(default)]
    pub billing: Option<ServerBilling>,
}

/// How a server's container-minutes are paid: in blocks of `block_secs`, each prepaid when it
/// starts (block 0 through the billing saga before anything is created; later ones by the
/// reconciliation runs), the unused whole minutes of the last block refunded on delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBilling {
    /// Block 0: `replicas` x the block's minutes at the tariff.
    pub plan: BillingPlan,
    pub block_secs: u64,
}

impl ServerBilling {
    /// The tariff `price` (credits per 1 000 container-minutes) for `replicas` in blocks of
    /// `block_secs` (billed in whole minutes, rounded up).
    pub fn new(replicas: u32, price: i64, block_secs: u64) -> Self {
        let minutes = i64::try_from(block_secs.div_ceil(60)).unwrap_or(i64::MAX);
        Self {
            plan: BillingPlan::new(
                BILLED_TOOL,
                BILLED_UNIT,
                minutes.saturating_mul(i64::from(replicas)),
                price,
            ),
            block_secs,
        }
    }
}

/// Input of `settle_server_minutes`: bill the blocks up to `ended_at_ms` not yet paid and refund
/// the unused whole minutes of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleServerMinutes {
    pub server_id: String,
    pub tenant: String,
    pub replicas: u32,
    pub billing: ServerBilling,
    /// When the replicas were removed (workflow time: the same on every retry and replay).
    pub ended_at_ms: i64,
}

/// One replica to create (the activity resolves the template from its config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateReplica {
    pub job: ProvisionServerJob,
    pub replica: u32,
}

/// Where a replica answers MCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoint {
    pub replica: u32,
    /// Container id or process id.
    pub id: String,
    pub host_port: u16,
    /// `http://127.0.0.1:<port>/mcp`
    pub url: String,
}

/// Remove every replica of a server (`replicas` is the most there can be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReplicas {
    pub server_id: String,
    pub replicas: u32,
}

/// Write the server's record and, with it, one lifecycle event (keyed by `event_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordServer {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    pub status: String,
    pub endpoints: Vec<Endpoint>,
    pub error: Option<String>,
    pub event: String,
    pub event_key: String,
    pub detail: serde_json::Value,
}

/// Workflow input of `DeleteMcpServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteServerJob {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    /// The tariff in force when it is deleted (none when billing is off).
    #[serde(default)]
    pub billing: Option<ServerBilling>,
}

/// Declarations of the provisioning activities (implemented in `avb-activities`).
pub struct ProvisioningActivityDefs;

#[activity_definitions]
impl ProvisioningActivityDefs {
    #[activity(name = CREATE_REPLICA)]
    pub fn create_replica(
        input: CreateReplica,
    ) -> Result<Endpoint, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = WAIT_REPLICA_READY)]
    pub fn wait_replica_ready(input: Endpoint) -> Result<(), temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = REMOVE_REPLICAS)]
    pub fn remove_replicas(input: RemoveReplicas) -> Result<u32, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = RECORD_SERVER)]
    pub fn record_server(input: RecordServer) -> Result<(), temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = SETTLE_SERVER_MINUTES)]
    pub fn settle_server_minutes(
        input: SettleServerMinutes,
    ) -> Result<(), temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// Engine faults retry (a stopped engine delays the job; the status shows the attempt); bad
/// templates and images fail fast.
fn options(start_to_close: Duration, heartbeat: Option<Duration>) -> ActivityOptions {
    let builder = ActivityOptions::with_start_to_close_timeout(start_to_close)
        .task_queue(queues::PROVISIONING.to_string())
        // Compensation must run after a cancellation too.
        .cancellation_token(WorkflowCancellationToken::new())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(15))
                .maximum_attempts(20)
                .non_retryable_error_types(ErrorKind::non_retryable_names())
                .build(),
        );
    match heartbeat {
        Some(h) => builder.heartbeat_timeout(h).build(),
        None => builder.build(),
    }
}

fn record(
    job: &ProvisionServerJob,
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
        let short = options(Duration::from_secs(30), None);
        let requested = record(
            &job,
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
            let created = ctx
                .execute_activity(
                    ProvisioningActivityDefs::create_replica,
                    input,
                    options(Duration::from_secs(120), None),
                )
                .await;
            let endpoint = match created {
                Ok(e) => e,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let ready = ctx
                .execute_activity(
                    ProvisioningActivityDefs::wait_replica_ready,
                    endpoint.clone(),
                    options(Duration::from_secs(120), Some(Duration::from_secs(10))),
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
                    options(Duration::from_secs(120), None),
                )
                .await?;
                if let Some(saga) = saga {
                    saga.release(ctx, &reason).await?;
                }
                let failed = record(
                    &job,
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
        let short = options(Duration::from_secs(30), None);
        let as_job = ProvisionServerJob {
            server_id: job.server_id.clone(),
            tenant: job.tenant.clone(),
            service_name: job.service_name.clone(),
            template: job.template.clone(),
            environment: BTreeMap::new(),
            replicas: job.replicas,
            billing: None,
        };
        let requested = record(
            &as_job,
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
                options(Duration::from_secs(120), None),
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
