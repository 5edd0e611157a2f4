//! The provisioning activities on the `avb-provisioning` queue (and, for a host-local engine,
//! on this host's `avb-provisioning@<host>`): name the host replicas go to, create a replica of a template
//! on the configured engine, wait until it speaks MCP (heartbeating), remove a server's replicas
//! (idempotent compensation and delete), and write the server's record and lifecycle event.
//! Engine faults retry; bad templates, images and specs fail fast (non-retryable).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avb_config::{ProvisioningSettings, TemplateSettings};
use avb_provisioning::{
    ContainerBackend, DockerBackend, DockerEndpoint, ProcessBackend, ProvisionError, ServerSpec,
    TemplateSpec, Transport, wait_until_mcp_ready,
};
use avb_store::{ServerRecord, now_ms};
use avb_workflows::provision::activity as defs;
use avb_workflows::provision::{
    CreateReplica, EVENT_CREATED, Endpoint, PlaceReplicas, RecordServer, RemoveReplicas,
    SettleServerMinutes,
};
use temporalio_macros::activities;

use crate::server_billing::settle_on_delete;
use crate::server_events::ServerEvents;

/// The tenant could not pay a block of container-minutes.
pub const EVENT_BILLING_UNPAID: &str = "mcp.server.billing.unpaid";
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// A replica that does not answer MCP `initialize` within this long has failed.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub struct ProvisioningActivities {
    pub backend: Arc<dyn ContainerBackend>,
    /// Records live in its store; lifecycle events go through it (database, Redis stream).
    pub events: Arc<ServerEvents>,
    pub settings: ProvisioningSettings,
    /// This host's name when the engine is host-local (see [`host_of`]).
    pub host: Option<String>,
}

/// The host name replicas of `backend` are placed under: `settings`' host when the engine is
/// local to this host, `None` when every worker reaches it alike.
pub fn host_of(settings: &ProvisioningSettings, backend: &dyn ContainerBackend) -> Option<String> {
    backend.host_local().then(|| settings.host_name())
}

fn to_activity_error(e: ProvisionError) -> ActivityError {
    if e.is_retryable() {
        ActivityError::from(anyhow::Error::new(e))
    } else {
        ActivityError::application(
            ApplicationFailure::builder(e.to_string())
                .type_name(e.kind().to_owned())
                .non_retryable(true)
                .build(),
        )
    }
}

fn store_error(e: avb_store::StoreError) -> ActivityError {
    ActivityError::from(anyhow::Error::new(e))
}

/// The program of a process-backend template: as given when absolute, else next to the running
/// binary (`cargo build` puts `avb-demo-mcp` beside `avb`), else on `PATH`.
pub fn resolve_program(program: &Path) -> PathBuf {
    if program.is_absolute() {
        return program.to_path_buf();
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(program)));
    // Test binaries live one level deeper (target/debug/deps).
    let above = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|d| d.join(program)));
    [beside, above]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| program.to_path_buf())
}

/// The engine `settings` ask for: docker, process, or (auto) docker when it answers. Its
/// replicas carry `instance` (see `AvbConfig::installation_id`).
pub async fn backend_for(
    settings: &ProvisioningSettings,
    log_dir: &Path,
    instance: &str,
) -> Arc<dyn ContainerBackend> {
    let process = || {
        let mut b = ProcessBackend::new()
            .with_log_dir(log_dir)
            .with_instance(instance)
            .with_address(settings.publish_address())
            .with_host(settings.host_name());
        for t in settings.templates.values() {
            if let Some(p) = &t.program {
                b = b.with_program(t.image.clone(), resolve_program(p));
            }
        }
        Arc::new(b) as Arc<dyn ContainerBackend>
    };
    let docker = || -> Option<Arc<dyn ContainerBackend>> {
        let endpoint = match &settings.docker_host {
            Some(h) => DockerEndpoint::parse(h).ok()?,
            None => DockerEndpoint::from_env().ok()?,
        };
        Some(Arc::new(
            DockerBackend::new(endpoint)
                .with_instance(instance)
                .with_publish_ip(settings.publish_address()),
        ))
    };
    match settings.backend.as_str() {
        "process" => process(),
        "docker" => docker().unwrap_or_else(process),
        _ => match docker() {
            Some(d) if d.ping().await.is_ok() => d,
            _ => process(),
        },
    }
}

pub fn template_spec(name: &str, t: &TemplateSettings) -> TemplateSpec {
    TemplateSpec {
        name: name.to_owned(),
        image: t.image.clone(),
        command: t.command.clone(),
        args: t.args.clone(),
        container_port: t.port,
        transport: Transport::StreamableHttp {
            path: t.path.clone(),
        },
        allowed_env: t.allowed_env.clone(),
        memory_mb: t.memory_mb,
        cpus: t.cpus,
        pids: t.pids,
        cap_add: t.cap_add.clone(),
        writable_root: t.writable_root,
    }
}

#[activities]
impl ProvisioningActivities {
    #[activity(definition = defs::PlaceReplicas)]
    pub async fn place_replicas(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: PlaceReplicas,
    ) -> Result<Option<String>, ActivityError> {
        tracing::info!(server_id = %input.server_id, host = ?self.host, backend = self.backend.kind(), "replicas placed");
        Ok(self.host.clone())
    }

    #[activity(definition = defs::CreateReplica)]
    pub async fn create_replica(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: CreateReplica,
    ) -> Result<Endpoint, ActivityError> {
        let job = &input.job;
        let template = self.settings.templates.get(&job.template).ok_or_else(|| {
            to_activity_error(ProvisionError::Invalid(format!(
                "unknown template {:?}",
                job.template
            )))
        })?;
        let spec = ServerSpec {
            server_id: job.server_id.clone(),
            tenant: job.tenant.clone(),
            template: template_spec(&job.template, template),
            env: job.environment.clone(),
            replicas: job.replicas,
        };
        // A template with a local program runs on docker without a registry: its image is
        // built from the program the first time it is missing.
        let program = template.program.as_deref().map(resolve_program);
        self.backend
            .prepare_image(&template.image, program.as_deref())
            .await
            .map_err(to_activity_error)?;
        let handle = self
            .backend
            .create_replica(&spec, input.replica)
            .await
            .map_err(to_activity_error)?;
        tracing::info!(server_id = %job.server_id, replica = input.replica, url = %handle.url, backend = self.backend.kind(), "replica created");
        Ok(Endpoint {
            replica: handle.replica,
            id: handle.id,
            host_port: handle.host_port,
            url: handle.url,
        })
    }

    #[activity(definition = defs::WaitReplicaReady)]
    pub async fn wait_replica_ready(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Endpoint,
    ) -> Result<(), ActivityError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            ctx.record_heartbeat(format!("waiting for {} to answer MCP", input.url))
                .await?;
            // A cancelled create (its server was deleted) stops waiting at once.
            let probed = tokio::select! {
                r = wait_until_mcp_ready(&input.url, Duration::from_secs(3)) => r,
                () = ctx.cancelled() => return Err(ActivityError::cancelled()),
            };
            match probed {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ActivityError::application(
                        ApplicationFailure::builder(format!(
                            "replica {} at {} did not answer MCP initialize within {}s: {e}",
                            input.replica,
                            input.url,
                            READY_TIMEOUT.as_secs()
                        ))
                        .type_name("NotReady".to_owned())
                        .non_retryable(true)
                        .build(),
                    ));
                }
                Err(_) => {}
            }
        }
    }

    #[activity(definition = defs::RemoveReplicas)]
    pub async fn remove_replicas(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RemoveReplicas,
    ) -> Result<u32, ActivityError> {
        // By label (whatever exists) and by name (what this job may have created).
        let mut removed = self
            .backend
            .remove_server(&input.server_id)
            .await
            .map_err(to_activity_error)?;
        for replica in 0..input.replicas {
            self.backend
                .remove_replica(&input.server_id, replica)
                .await
                .map_err(to_activity_error)?;
        }
        removed = removed.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
        tracing::info!(server_id = %input.server_id, removed, "replicas removed");
        Ok(u32::try_from(removed).unwrap_or(u32::MAX))
    }

    #[activity(definition = defs::RecordServer)]
    pub async fn record_server(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RecordServer,
    ) -> Result<(), ActivityError> {
        // The upsert keeps the first `created_at`; only a new record takes this one.
        let now = now_ms();
        let record = ServerRecord {
            id: input.server_id.clone(),
            tenant: input.tenant.clone(),
            service_name: input.service_name.clone(),
            template: input.template.clone(),
            replicas: i64::from(input.replicas),
            status: input.status.clone(),
            endpoints: serde_json::to_string(&input.endpoints).unwrap_or_else(|_| "[]".into()),
            error: input.error.clone(),
            created_at_ms: now,
            updated_at_ms: now,
            // Billing blocks count from the first "created" write (kept on a retry).
            running_since_ms: (input.event == EVENT_CREATED).then_some(now),
            host: input.host.clone(),
        };
        // The event first, then the record: whoever sees the new status also finds the event
        // that explains it (both writes are idempotent, so a retry after either is harmless).
        self.events
            .append(
                &input.event_key,
                &input.server_id,
                &input.tenant,
                &input.event,
                &input.detail,
            )
            .await
            .map_err(store_error)?;
        self.events
            .store()
            .upsert_server(&record)
            .await
            .map_err(store_error)?;
        tracing::info!(server_id = %input.server_id, event = %input.event, status = %input.status, "mcp server event");
        Ok(())
    }

    #[activity(definition = defs::SettleServerMinutes)]
    pub async fn settle_server_minutes(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SettleServerMinutes,
    ) -> Result<(), ActivityError> {
        let store = self.events.store();
        let Some(record) = store
            .server(&input.tenant, &input.server_id)
            .await
            .map_err(store_error)?
        else {
            return Ok(()); // no record: nothing ran, nothing to bill
        };
        let billed = settle_on_delete(store, &record, &input.billing, input.ended_at_ms)
            .await
            .map_err(store_error)?;
        if let Some(block) = billed.unpaid_block {
            let detail =
                serde_json::json!({ "block": block, "block_secs": input.billing.block_secs });
            self.events
                .append(
                    &format!("{}/billing/unpaid", input.server_id),
                    &input.server_id,
                    &input.tenant,
                    EVENT_BILLING_UNPAID,
                    &detail,
                )
                .await
                .map_err(store_error)?;
        }
        tracing::info!(server_id = %input.server_id, paid = ?billed.paid_blocks, refunded = billed.refunded_credits, "container-minutes settled");
        Ok(())
    }
}
