//! Calls of tools mounted from upstream MCP servers. On the durable path (the default) a call is
//! a job: an `UpstreamCall` workflow (id `job_…`, tagged with the mounted tool and the tenant)
//! whose activity on `avb-upstream` calls the upstream, with retries where a retry is safe. On the
//! fast path (`durable = false` on the server) the api calls the upstream itself. Either way
//! the agent gets the upstream's result exactly as it was sent.

pub mod aggregator;
pub mod mounted;

use std::sync::Arc;

use avb_upstream::{MountedTool, UpstreamHub};
use avb_workflows::billing::BillingPlan;
use avb_workflows::upstream::{
    BatchCall, UpstreamBatchJob, UpstreamBatchWorkflow, UpstreamCallJob, UpstreamCallRequest,
    UpstreamCallWorkflow,
};
use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::{Map, Value, json};

use crate::approval::client;
use crate::core::problem::Problem;
use crate::jobs::durable::{DurableTool, Started, ToolCall};
use crate::jobs::output::resource_uri;
use crate::jobs::{JobError, job_start_options, new_job_id};
use crate::state::ApiState;

/// How metrics name a tool call: by its name, except tools of servers a tenant provisioned,
/// whose names the tenant chose (metrics are the installation's, read by its operators).
pub fn metric_label<'a>(state: &ApiState, tenant: &str, tool: &'a str) -> &'a str {
    match state.upstreams.catalog_for(tenant).get(tool) {
        Some(t) if t.server.starts_with("srv_") => "provisioned_server_tool",
        _ => tool,
    }
}

/// The tool (and job tool) name of batches.
pub const BATCH_TOOL: &str = "batch_execute";

/// The api's hub: the catalog agents see, kept current by [`UpstreamHub::run`].
/// `own` names AgentVoiceBox's own tools: an upstream tool never shadows one.
pub fn hub_for(
    config: &avb_config::AvbConfig,
    own: std::collections::HashSet<String>,
) -> Arc<UpstreamHub> {
    let hub = UpstreamHub::new(
        config.mcp_servers.clone(),
        Some(config.data_dir.join("logs/upstreams")),
        move |name| own.contains(name),
    );
    Arc::new(match config.source_file.clone() {
        Some(path) => hub.with_reload(Box::new(move || {
            avb_config::AvbConfig::reload_mcp_servers(&path).map_err(|e| e.to_string())
        })),
        None => hub,
    })
}

/// Tools mounted from upstream servers: their names come from each tenant's catalog.
pub struct Mounted;

#[async_trait::async_trait]
impl DurableTool for Mounted {
    fn names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Listed per tenant from the catalog (`AvbServer::all_tools`), not here.
    fn definitions(&self) -> Vec<Tool> {
        Vec::new()
    }

    fn takes_tasks(&self) -> bool {
        false
    }

    async fn start(&self, call: &ToolCall<'_>) -> Result<Started, Problem> {
        let state = call.state;
        let name = call.name;
        let tool = state
            .upstreams
            .catalog_for(call.tenant())
            .get(name)
            .cloned()
            .ok_or_else(|| Problem::not_found(format!("no tool is called {name:?}")))?;
        let where_ = json!({ "server": tool.server, "tool": tool.upstream_tool });
        start_call(call, &tool, Some(call.arguments.clone()))
            .await
            .map_err(|e| Problem::from(&e).with_details(where_))
    }

    fn structured(
        &self,
        _state: &ApiState,
        _job_id: &str,
        output: Value,
    ) -> Result<Value, Problem> {
        Ok(output)
    }

    async fn render(&self, _state: &ApiState, job_id: &str, output: Value) -> CallToolResult {
        match result_of(output) {
            Ok(result) => result,
            Err(e) => Problem::from(&e)
                .with_details(json!({ "job_id": job_id }))
                .into_tool_result(),
        }
    }
}

/// Starts a call of `tool` with `arguments` for `tenant`: the upstream's answer on the fast
/// path (`durable = false`), else an `UpstreamCall` job.
async fn start_call(
    call: &ToolCall<'_>,
    tool: &MountedTool,
    arguments: Option<Map<String, Value>>,
) -> Result<Started, JobError> {
    let (state, tenant, name) = (call.state, call.tenant(), call.name);
    let settings = state.upstreams.settings_of(&tool.server).ok_or_else(|| {
        JobError::Start(format!("upstream {} is no longer configured", tool.server))
    })?;
    // A call that needs approval waits in a workflow: never the fast path.
    if !settings.durable && !tool.approval {
        return state
            .upstreams
            .call(
                &tool.server,
                &tool.upstream_tool,
                arguments,
                state.upstreams.endpoint_of(&tool.server).as_deref(),
            )
            .await
            .map(Started::Answered)
            .map_err(|e| JobError::Failed {
                kind: Some(e.kind().to_string()),
                message: e.to_string(),
                details: None,
            });
    }
    let shown = Value::Object(arguments.clone().unwrap_or_default());
    let path = if tool.approval {
        client::resolve(state, call.caller, &call.client, name, &shown)
            .map_err(|p| JobError::Refused(Box::new(p)))?
    } else {
        client::ApprovalPath::Operator
    };
    let (job_id, decided) = match path {
        client::ApprovalPath::Ask(ask) => return Ok(Started::NeedsInput(ask)),
        client::ApprovalPath::Client { job_id, decision } => (job_id, Some(decision)),
        client::ApprovalPath::Operator => (new_job_id(), None),
    };
    let mut options = job_start_options(name, call.caller, &job_id, !tool.approval);
    let (approval, pending) = if tool.approval {
        let (gate, pending) = crate::approval::await_approval(state, name, &shown, &mut options);
        (Some(gate), Some(pending))
    } else {
        (None, None)
    };
    if decided.is_some() {
        client::used_once(&mut options);
    }
    let job = UpstreamCallJob {
        tenant: tenant.to_string(),
        mounted_as: name.to_string(),
        request: UpstreamCallRequest {
            server: tool.server.clone(),
            tool: tool.upstream_tool.clone(),
            arguments,
            may_retry: tool.retry,
            endpoint: state.upstreams.endpoint_of(&tool.server),
        },
        timeout_secs: settings.timeout,
        approval,
        billing: call_price(state, name, settings.credits_per_call, 1),
    };
    state
        .temporal
        .start_workflow(UpstreamCallWorkflow::run, job, options)
        .await
        .map_err(|e| client::start_error(e, &job_id))?;
    tracing::info!(job_id = %job_id, tool = name, server = %tool.server, tenant, approval = pending.is_some(), "upstream call started");
    // Approved at the client: the job runs at once, with the decision in its history.
    let pending = match decided {
        Some(decision) => {
            client::record(state, &job_id, decision).await?;
            None
        }
        None => pending,
    };
    Ok(match pending {
        Some(pending) => Started::Waiting {
            answer: crate::approval::waiting_result(
                name,
                &job_id,
                &pending,
                crate::approval::waiting_value(&job_id, &pending),
            ),
            job_id,
        },
        None => Started::Running {
            still_running: running_result(name, &job_id),
            job_id,
        },
    })
}

/// A job still running when the call's wait budget ran out: a handle to find it again.
fn running_result(name: &str, job_id: &str) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(format!(
        "{name} is still running as job {job_id}; follow it with get_job or the resource {}",
        resource_uri(job_id)
    ))]);
    r.structured_content = Some(json!({
        "job_id": job_id,
        "status": "running",
        "resource_uri": resource_uri(job_id),
    }));
    r
}

/// What `calls` calls priced at `credits_per_call` cost, when billing is on.
fn call_price(
    state: &ApiState,
    tool: &str,
    credits_per_call: i64,
    calls: i64,
) -> Option<BillingPlan> {
    if !state.config.billing.enabled || credits_per_call <= 0 {
        return None;
    }
    let mut plan = BillingPlan::new(tool, "call", calls, credits_per_call.saturating_mul(1000));
    plan.credits = credits_per_call.saturating_mul(calls);
    Some(plan)
}

/// The upstream's result, as the workflow stored it.
pub fn result_of(value: Value) -> Result<CallToolResult, JobError> {
    serde_json::from_value(value)
        .map_err(|e| JobError::Temporal(format!("the upstream's result does not parse: {e}")))
}

/// One call of a batch as the agent asked it: the mounted name, its tool, the arguments.
pub type RequestedCall = (String, MountedTool, Option<Map<String, Value>>);

/// Runs `calls` as one `UpstreamBatch` job for `caller`.
pub async fn start_batch(
    state: &ApiState,
    caller: &crate::core::auth::Caller,
    calls: Vec<RequestedCall>,
) -> Result<String, JobError> {
    let mut batch = Vec::with_capacity(calls.len());
    let mut total = 0i64;
    for (name, tool, arguments) in calls {
        let (timeout_secs, credits) = state
            .upstreams
            .settings_of(&tool.server)
            .map_or((30, 0), |s| (s.timeout, s.credits_per_call));
        total = total.saturating_add(credits);
        batch.push(BatchCall {
            mounted_as: name,
            request: UpstreamCallRequest {
                server: tool.server.clone(),
                tool: tool.upstream_tool,
                endpoint: state.upstreams.endpoint_of(&tool.server),
                arguments,
                may_retry: tool.retry,
            },
            timeout_secs,
            credits,
        });
    }
    let job_id = new_job_id();
    let options = job_start_options(BATCH_TOOL, caller, &job_id, true);
    let billing = (state.config.billing.enabled && total > 0).then(|| {
        let mut plan = BillingPlan::new(BATCH_TOOL, "call", batch.len() as i64, 0);
        plan.credits = total;
        plan
    });
    let job = UpstreamBatchJob {
        tenant: caller.tenant.clone(),
        calls: batch,
        billing,
    };
    state
        .temporal
        .start_workflow(UpstreamBatchWorkflow::run, job, options)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    tracing::info!(job_id = %job_id, tenant = %caller.tenant, "upstream batch started");
    Ok(job_id)
}

/// The running servers `create_mcp_server` provisioned (every tenant's), from the store.
pub fn provisioned_source(store: avb_store::Store) -> avb_upstream::ProvisionedSource {
    Box::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let records = store.running_servers().await.map_err(|e| e.to_string())?;
            Ok(records
                .into_iter()
                .filter_map(|r| {
                    let endpoints: Vec<Value> = serde_json::from_str(&r.endpoints).ok()?;
                    let url = endpoints.first()?.get("url")?.as_str()?.to_string();
                    Some(avb_upstream::Provisioned {
                        id: r.id,
                        tenant: r.tenant,
                        service_name: r.service_name,
                        url,
                    })
                })
                .collect())
        })
    })
}
