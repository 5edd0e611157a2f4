//! Component health for `get_server_status`, `/readyz` and `/healthz`.

use std::time::Duration;

use avb_workflows::queues;
use schemars::JsonSchema;
use serde::Serialize;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::Request;
use temporalio_common::protos::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeTaskQueueRequest, GetSystemInfoRequest,
};

use crate::state::ApiState;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ComponentHealth {
    pub name: String,
    pub healthy: bool,
    pub detail: String,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn component(name: &str, healthy: bool, detail: impl Into<String>) -> ComponentHealth {
    ComponentHealth {
        name: name.into(),
        healthy,
        detail: detail.into(),
    }
}

/// Temporal, the artifact store and the database: what `/readyz` requires.
pub async fn check_dependencies(state: &ApiState) -> Vec<ComponentHealth> {
    // All at once: a probe's answer takes the slowest check, not the sum (orchestrators give
    // a probe about a second).
    let (temporal, storage, database) = tokio::join!(
        check_temporal(state),
        check_storage(state),
        check_database(state)
    );
    [Some(temporal), Some(storage), database]
        .into_iter()
        .flatten()
        .collect()
}

async fn check_temporal(state: &ApiState) -> ComponentHealth {
    let mut raw = state.temporal.clone();
    match tokio::time::timeout(
        CHECK_TIMEOUT,
        WorkflowService::get_system_info(&mut raw, Request::new(GetSystemInfoRequest {})),
    )
    .await
    {
        Ok(Ok(info)) => component(
            "temporal",
            true,
            format!(
                "{} (server {})",
                state.config.temporal.address,
                info.into_inner().server_version
            ),
        ),
        Ok(Err(e)) => component(
            "temporal",
            false,
            format!("{}: {}", state.config.temporal.address, e.message()),
        ),
        Err(_) => component(
            "temporal",
            false,
            format!(
                "{}: no answer within {CHECK_TIMEOUT:?}",
                state.config.temporal.address
            ),
        ),
    }
}

async fn check_storage(state: &ApiState) -> ComponentHealth {
    match tokio::time::timeout(CHECK_TIMEOUT, state.artifacts.check()).await {
        Ok(Ok(())) => component("artifact_store", true, state.artifacts.description()),
        Ok(Err(e)) => component("artifact_store", false, e.to_string()),
        Err(_) => component("artifact_store", false, "no answer within 2s"),
    }
}

/// Keys, tenants and the ledger: without them no authenticated or billed call works.
async fn check_database(state: &ApiState) -> Option<ComponentHealth> {
    let store = state.store.as_ref()?;
    Some(
        match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => component("database", true, store.backend_name()),
            Ok(Err(e)) => component("database", false, e.to_string()),
            Err(_) => component("database", false, "no answer within 2s"),
        },
    )
}

/// Dependencies plus the workers polling each implemented queue and the voice catalog.
pub async fn check_components(state: &ApiState) -> Vec<ComponentHealth> {
    let (mut out, workflows, tts, billing, provisioning) = tokio::join!(
        check_dependencies(state),
        pollers(state, queues::WORKFLOWS, TaskQueueType::Workflow),
        pollers(state, queues::TTS, TaskQueueType::Activity),
        pollers(state, queues::BILLING, TaskQueueType::Activity),
        pollers(state, queues::PROVISIONING, TaskQueueType::Activity),
    );
    out.push(workflows);
    out.push(tts);
    if state.config.billing.enabled {
        // Billed jobs wait for the billing worker before any work starts.
        out.push(billing);
    }
    out.push(provisioning);
    out.push(component(
        "voices",
        !state.voices.is_empty(),
        format!("{} voices", state.voices.len()),
    ));
    out
}

/// Number of workers polling `queue` for `kind` tasks (workflow or activity).
pub async fn queue_pollers(
    client: &temporalio_client::Client,
    namespace: &str,
    queue: &str,
    kind: TaskQueueType,
) -> Result<usize, String> {
    let mut raw = client.clone();
    let req = DescribeTaskQueueRequest {
        namespace: namespace.to_string(),
        task_queue: Some(TaskQueue {
            name: queue.to_string(),
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        }),
        task_queue_type: kind as i32,
        ..Default::default()
    };
    match tokio::time::timeout(
        CHECK_TIMEOUT,
        WorkflowService::describe_task_queue(&mut raw, Request::new(req)),
    )
    .await
    {
        Ok(Ok(resp)) => Ok(resp.into_inner().pollers.len()),
        Ok(Err(e)) => Err(e.message().to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

async fn pollers(state: &ApiState, queue: &str, kind: TaskQueueType) -> ComponentHealth {
    let name = format!("workers:{queue}");
    let namespace = &state.config.temporal.namespace;
    match queue_pollers(&state.temporal, namespace, queue, kind).await {
        Ok(n) => component(&name, n > 0, format!("{n} pollers")),
        Err(e) => component(&name, false, e),
    }
}

/// How long a health snapshot is reused by `get_server_status`.
pub const STATUS_TTL: Duration = Duration::from_secs(1);

/// `check_dependencies`, cached for `STATUS_TTL` (what `/readyz` answers from).
pub async fn cached_dependencies(state: &ApiState) -> Vec<ComponentHealth> {
    let mut cache = state.ready_cache.lock().await;
    if let Some((at, components)) = cache.as_ref()
        && at.elapsed() < STATUS_TTL
    {
        return components.clone();
    }
    let fresh = check_dependencies(state).await;
    *cache = Some((std::time::Instant::now(), fresh.clone()));
    fresh
}

/// `check_components`, cached for `STATUS_TTL`: an agent polling status does not turn into four
/// Temporal RPCs per call. Concurrent callers share one refresh.
pub async fn cached_components(state: &ApiState) -> Vec<ComponentHealth> {
    let mut cache = state.status_cache.lock().await;
    if let Some((at, components)) = cache.as_ref()
        && at.elapsed() < STATUS_TTL
    {
        return components.clone();
    }
    let fresh = check_components(state).await;
    *cache = Some((std::time::Instant::now(), fresh.clone()));
    fresh
}
