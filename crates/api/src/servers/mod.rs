//! MCP servers as callers see them (tools `create_mcp_server`, `get_mcp_server`,
//! `list_mcp_servers`, `delete_mcp_server`; REST under `/api/v2/mcp-servers`): requests are
//! validated here (nothing is created for a bad one), then a `ProvisionMcpServer` or
//! `DeleteMcpServer` workflow does the work; the record and its events come from the store.

use std::collections::BTreeMap;

use avb_store::{CreateLimits, CreateRefused, ServerRecord, Store, now_ms};
use avb_workflows::provision::{
    BILLED_TOOL, DeleteMcpServerWorkflow, DeleteServerJob, Endpoint, ProvisionMcpServerWorkflow,
    ProvisionServerJob, ServerBilling,
};
use avb_workflows::queues;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_client::{
    WorkflowCancelOptions, WorkflowDescribeOptions, WorkflowGetResultOptions,
    WorkflowIdConflictPolicy, WorkflowStartOptions,
};

/// Limits of a server's environment (`create_mcp_server`): how many variables, and how long
/// each value may be.
pub const MAX_ENV_VARS: usize = 64;
pub const MAX_ENV_VALUE_BYTES: usize = 8 * 1024;

pub mod rest;
pub mod tools;

use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::view::rfc3339_ms;
use crate::state::ApiState;

pub const MAX_SERVICE_NAME_LEN: usize = 40;

/// `create_mcp_server` arguments and the `POST /api/v2/mcp-servers` body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServerInput {
    /// 1 to 40 characters from a-z, 0-9 and '-', starting with a letter; unique among your
    /// servers that are not deleted.
    pub service_name: String,
    /// A template from the configuration, e.g. "demo".
    pub template: String,
    /// Environment for the server; only the template's allowed keys.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Replicas, 1 to the configured maximum (default 1).
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventView {
    /// e.g. mcp.server.create.requested, mcp.server.created, mcp.server.failed.
    pub kind: String,
    pub detail: serde_json::Value,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerView {
    /// `srv_` + 32 hex digits.
    pub server_id: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    /// creating, running, failed, deleting, deleted.
    pub status: String,
    /// Where each replica answers MCP (Streamable HTTP).
    pub endpoints: Vec<Endpoint>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The provisioning host its replicas run on (`AVB_PROVISIONING_HOST` of the workers that
    /// created them); absent for an engine every worker reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// While creating or deleting: the step under way, its attempt and the last fault (e.g. the
    /// container engine being down), so a waiting caller sees why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ServerProgress>,
    pub created_at: String,
    pub updated_at: String,
    /// The audit trail, oldest first (get only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerProgress {
    /// The activity under way: place_replicas, create_replica, wait_replica_ready,
    /// remove_replicas, record_server.
    pub step: String,
    /// 1 on the first try; above 1 after a fault or a worker crash.
    pub attempt: u32,
    /// Why the previous attempt failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The step's last heartbeat, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerList {
    pub servers: Vec<ServerView>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// Too many creates in the last hour (`provisioning.creates_per_hour`).
    #[error("{0}")]
    RateLimited(String),
    #[error(
        "insufficient credits: the first {block_minutes} minutes of {replicas} replica(s) cost \
         {needed} credits, your balance is {balance}"
    )]
    InsufficientCredits {
        needed: i64,
        balance: i64,
        replicas: u32,
        block_minutes: u64,
    },
}

impl From<ServerError> for Problem {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Invalid { field, message } => Problem::invalid(field, message),
            ServerError::NotFound(m) => Problem::not_found(m),
            ServerError::Conflict(m) => Problem::new(ErrorKind::Conflict, m),
            ServerError::Unavailable(m) => Problem::unavailable(m),
            ServerError::RateLimited(m) => Problem::new(ErrorKind::RateLimited, m)
                .with_details(serde_json::json!({ "retry_after_secs": 3600 })),
            ServerError::InsufficientCredits {
                needed, balance, ..
            } => Problem::new(ErrorKind::InsufficientCredits, e.to_string()).with_details(
                serde_json::json!({ "needed": needed, "balance": balance, "shortfall": needed - balance }),
            ),
        }
    }
}

impl From<avb_store::StoreError> for ServerError {
    fn from(e: avb_store::StoreError) -> Self {
        ServerError::Unavailable(e.to_string())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ServerError {
    ServerError::Invalid {
        field,
        message: message.into(),
    }
}

fn store(state: &ApiState) -> Result<&Store, ServerError> {
    state
        .store
        .as_ref()
        .ok_or_else(|| ServerError::Unavailable("MCP servers need the database".into()))
}

fn view(r: &ServerRecord) -> ServerView {
    ServerView {
        server_id: r.id.clone(),
        service_name: r.service_name.clone(),
        template: r.template.clone(),
        replicas: u32::try_from(r.replicas).unwrap_or(0),
        status: r.status.clone(),
        endpoints: serde_json::from_str(&r.endpoints).unwrap_or_default(),
        error: r.error.clone(),
        host: r.host.clone(),
        progress: None,
        created_at: rfc3339_ms(r.created_at_ms),
        updated_at: rfc3339_ms(r.updated_at_ms),
        events: None,
    }
}

/// Checks a create request against the templates, the limits and the tenant's quota; the error
/// names the field.
pub async fn validate_create(
    state: &ApiState,
    tenant: &str,
    input: &CreateServerInput,
) -> Result<u32, ServerError> {
    let name = &input.service_name;
    let name_ok = !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(invalid(
            "service_name",
            format!(
                "{name:?} is not a valid name: use 1 to {MAX_SERVICE_NAME_LEN} characters from \
                 a-z, 0-9 and '-', starting with a letter"
            ),
        ));
    }
    let settings = &state.config.provisioning;
    let Some(template) = settings.templates.get(&input.template) else {
        let known: Vec<_> = settings.templates.keys().map(String::as_str).collect();
        return Err(invalid(
            "template",
            format!(
                "unknown template {:?}; known templates: {}",
                input.template,
                known.join(", ")
            ),
        ));
    };
    if let Some(key) = input
        .environment
        .keys()
        .find(|k| !template.allowed_env.contains(k))
    {
        return Err(invalid(
            "environment",
            format!(
                "key {key:?} is not allowed by template {:?}; allowed: {}",
                input.template,
                if template.allowed_env.is_empty() {
                    "none".to_string()
                } else {
                    template.allowed_env.join(", ")
                }
            ),
        ));
    }
    // Values reach a process environment: what a process cannot take is refused here, naming
    // the key, rather than failing in the worker after the hold was made.
    if input.environment.len() > MAX_ENV_VARS {
        return Err(invalid(
            "environment",
            format!(
                "{} variables; at most {MAX_ENV_VARS}",
                input.environment.len()
            ),
        ));
    }
    for (key, value) in &input.environment {
        if value.contains('\0') {
            return Err(invalid(
                "environment",
                format!("the value of {key:?} contains a NUL byte"),
            ));
        }
        if value.len() > MAX_ENV_VALUE_BYTES {
            return Err(invalid(
                "environment",
                format!(
                    "the value of {key:?} is {} bytes; at most {MAX_ENV_VALUE_BYTES}",
                    value.len()
                ),
            ));
        }
    }
    let replicas = input.replicas.unwrap_or(1);
    if !(1..=settings.max_replicas).contains(&replicas) {
        return Err(invalid(
            "replicas",
            format!(
                "{replicas} is out of range; use 1 to {}",
                settings.max_replicas
            ),
        ));
    }
    // Quota, name and create rate are decided by the database as the record is inserted
    // (`create`): checked here they could be passed by two concurrent creates.
    if let Some(billing) = billing_for(state, replicas) {
        let store = store(state)?;
        let balance = match store.tenant_by_name(tenant).await? {
            Some(t) => store.balance(&t.id).await?.available,
            None => 0,
        };
        if balance < billing.plan.credits {
            return Err(ServerError::InsufficientCredits {
                needed: billing.plan.credits,
                balance,
                replicas,
                block_minutes: billing.block_secs.div_ceil(60),
            });
        }
    }
    Ok(replicas)
}

/// The container-minute tariff for `replicas`, when billing is on and the tool has a price.
fn billing_for(state: &ApiState, replicas: u32) -> Option<ServerBilling> {
    let price = state.config.billing.price_of(BILLED_TOOL)?;
    Some(ServerBilling::new(
        replicas,
        price.credits_per_1000,
        state.config.provisioning.billing_block_secs,
    ))
}

/// Validates, starts `ProvisionMcpServer` and waits up to the wait budget for it.
pub async fn create(
    state: &ApiState,
    tenant: &str,
    input: CreateServerInput,
) -> Result<ServerView, ServerError> {
    let replicas = validate_create(state, tenant, &input).await?;
    let server_id = format!("srv_{}", uuid::Uuid::new_v4().simple());
    let job = ProvisionServerJob {
        server_id: server_id.clone(),
        tenant: tenant.to_owned(),
        service_name: input.service_name,
        template: input.template,
        environment: input.environment,
        replicas,
        billing: billing_for(state, replicas),
        on_host: true,
    };
    // The record exists from the start (status "creating"), so the server is visible even
    // while no provisioning worker runs; the workflow updates it.
    let now = now_ms();
    let settings = &state.config.provisioning;
    let limits = CreateLimits {
        quota: usize::try_from(settings.quota_per_tenant).unwrap_or(usize::MAX),
        per_hour: usize::try_from(settings.creates_per_hour).unwrap_or(usize::MAX),
    };
    let name = job.service_name.clone();
    store(state)?
        .insert_new_server(
            &ServerRecord {
                id: server_id.clone(),
                tenant: tenant.to_owned(),
                service_name: job.service_name.clone(),
                template: job.template.clone(),
                replicas: i64::from(replicas),
                status: "creating".into(),
                endpoints: "[]".into(),
                error: None,
                created_at_ms: now,
                updated_at_ms: now,
                running_since_ms: None,
                host: None,
            },
            limits,
        )
        .await
        .map_err(|refused| match refused {
            CreateRefused::NameTaken => ServerError::Conflict(format!(
                "you already have a server named {name:?}; delete it first or choose another name"
            )),
            CreateRefused::Quota { live } => ServerError::Conflict(format!(
                "quota exceeded: your tenant has {live} servers, its quota is {}; delete one first",
                limits.quota
            )),
            CreateRefused::Rate { recent } => ServerError::RateLimited(format!(
                "your tenant started {recent} server creates in the last hour (failed ones \
                 count), the most provisioning.creates_per_hour allows; try again later"
            )),
            CreateRefused::Store(e) => ServerError::from(e),
        })?;
    let workflow_id = format!("{server_id}-create");
    let opts = WorkflowStartOptions::new(queues::WORKFLOWS, workflow_id.clone())
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .build();
    state
        .temporal
        .start_workflow(ProvisionMcpServerWorkflow::run, job, opts)
        .await
        .map_err(|e| ServerError::Unavailable(format!("could not start provisioning: {e}")))?;
    tracing::info!(server_id = %server_id, workflow_id = %workflow_id, tenant, "mcp server provisioning started");
    let handle = state
        .temporal
        .get_workflow_handle::<ProvisionMcpServerWorkflow>(workflow_id);
    // The outcome is in the record either way; the wait only decides what the caller sees now.
    let _ = tokio::time::timeout(
        state.config.wait_budget(),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await;
    get(state, tenant, &server_id).await
}

/// The server with its events; another tenant's server is "not found".
pub async fn get(
    state: &ApiState,
    tenant: &str,
    server_id: &str,
) -> Result<ServerView, ServerError> {
    let store = store(state)?;
    let record = store
        .server(tenant, server_id)
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("MCP server {server_id} not found")))?;
    let events = store.server_events(tenant, server_id).await?;
    let mut v = view(&record);
    v.progress = progress(state, &record).await;
    v.events = Some(
        events
            .into_iter()
            .map(|e| EventView {
                kind: e.kind,
                detail: serde_json::from_str(&e.detail).unwrap_or_default(),
                at: rfc3339_ms(e.created_at_ms),
            })
            .collect(),
    );
    Ok(v)
}

/// The tenant's servers that are not deleted, newest first.
pub async fn list(state: &ApiState, tenant: &str) -> Result<ServerList, ServerError> {
    let records = store(state)?.servers(Some(tenant), false, 500).await?;
    Ok(ServerList {
        servers: records.iter().map(view).collect(),
    })
}

/// Starts (or joins) `DeleteMcpServer` and waits up to the wait budget for it.
pub async fn delete(
    state: &ApiState,
    tenant: &str,
    server_id: &str,
) -> Result<ServerView, ServerError> {
    let record = store(state)?
        .server(tenant, server_id)
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("MCP server {server_id} not found")))?;
    if record.status == "deleted" {
        return get(state, tenant, server_id).await;
    }
    let job = DeleteServerJob {
        server_id: record.id.clone(),
        tenant: tenant.to_owned(),
        service_name: record.service_name.clone(),
        template: record.template.clone(),
        replicas: u32::try_from(record.replicas).unwrap_or(0),
        billing: billing_for(state, u32::try_from(record.replicas).unwrap_or(0)),
        host: record.host.clone(),
    };
    if record.status == "creating" {
        // Delete wins: the create still under way is cancelled, so it removes what it made and
        // releases its hold instead of finishing later as `running` (the store also keeps a
        // deleting record from being written back to running).
        let create = state
            .temporal
            .get_workflow_handle::<ProvisionMcpServerWorkflow>(format!("{server_id}-create"));
        if let Err(e) = create
            .cancel(
                WorkflowCancelOptions::builder()
                    .reason("deleted while creating")
                    .build(),
            )
            .await
        {
            tracing::info!(server_id, error = %e, "the create to cancel had ended");
        }
    }
    let workflow_id = format!("{server_id}-delete");
    // A repeated delete joins the one already running.
    let opts = WorkflowStartOptions::new(queues::WORKFLOWS, workflow_id.clone())
        .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
        .build();
    state
        .temporal
        .start_workflow(DeleteMcpServerWorkflow::run, job, opts)
        .await
        .map_err(|e| ServerError::Unavailable(format!("could not start the deletion: {e}")))?;
    let handle = state
        .temporal
        .get_workflow_handle::<DeleteMcpServerWorkflow>(workflow_id);
    let _ = tokio::time::timeout(
        state.config.wait_budget(),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await;
    get(state, tenant, server_id).await
}

/// The pending step of the server's create or delete workflow (none when nothing is under way
/// or Temporal cannot say: the record still answers).
async fn progress(state: &ApiState, record: &ServerRecord) -> Option<ServerProgress> {
    let workflow_id = match record.status.as_str() {
        "creating" => format!("{}-create", record.id),
        "deleting" => format!("{}-delete", record.id),
        _ => return None,
    };
    let desc = state
        .temporal
        .get_workflow_handle::<ProvisionMcpServerWorkflow>(workflow_id)
        .describe(WorkflowDescribeOptions::default())
        .await
        .ok()?;
    let activity = desc.raw().pending_activities.first()?;
    let message = activity
        .heartbeat_details
        .as_ref()
        .and_then(|d| d.payloads.first())
        .and_then(|p| serde_json::from_slice::<String>(&p.data).ok());
    Some(ServerProgress {
        step: activity
            .activity_type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        attempt: u32::try_from(activity.attempt).unwrap_or(1).max(1),
        last_error: activity.last_failure.as_ref().map(|f| f.message.clone()),
        message,
    })
}
