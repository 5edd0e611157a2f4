//! Worker assembly: one Temporal worker per task queue, all joined in the calling task (the SDK's
//! `Worker::run` uses a LocalSet and cannot be spawned), with graceful shutdown.

pub mod probe;
pub mod reconcile_schedule;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use avb_activities::billing_activity::BillingActivities;
use avb_activities::device_activity::DeviceActivities;
use avb_activities::echo_activity::EchoActivities;
use avb_activities::provisioning_activity::{ProvisioningActivities, backend_for, host_of};
use avb_activities::reconcile_activity::ReconcileActivities;
use avb_activities::server_events::ServerEvents;
use avb_activities::speech_activity::TtsActivities;
use avb_activities::upstream_activity::UpstreamActivities;
use avb_artifacts::ArtifactStore;
use avb_config::AvbConfig;
use avb_store::Store;
use avb_tts::{TtsConfig, TtsEngine};
use avb_workflows::provision::BILLED_TOOL;
use avb_workflows::queues;
use futures::future::{FutureExt, LocalBoxFuture};
use temporalio_client::Client;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Longest delay between an activity's heartbeat and Temporal seeing it.
const HEARTBEAT_THROTTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Activities that are still running when shutdown starts get this long to finish (or heartbeat
/// their cancellation) before they are abandoned to Temporal's retry.
const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(20);

/// Queues a worker process serves; `all` expands to every queue.
pub fn parse_queues(spec: &[String]) -> anyhow::Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for item in spec
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if item == "all" {
            out.extend_from_slice(queues::ALL);
            continue;
        }
        let q = queues::ALL.iter().find(|q| **q == item).with_context(|| {
            format!(
                "unknown task queue '{item}'; known: all, {}",
                queues::ALL.join(", ")
            )
        })?;
        out.push(*q);
    }
    out.sort_unstable();
    out.dedup();
    anyhow::ensure!(
        !out.is_empty(),
        "no task queue given; use --queues all or a list such as avb-workflows,avb-tts"
    );
    Ok(out)
}

/// How many speech jobs one TTS worker takes at once: one per engine session. A worker that
/// took more would only queue them behind its sessions while other hosts' workers idle; at
/// this bound the rest stay on the task queue for whichever worker has a free session.
pub fn tts_slots(engine: &TtsEngine) -> usize {
    engine.config().sessions.max(1)
}

fn tts_tuner(activity_slots: usize) -> temporalio_sdk::runtime::worker_tuner::WorkerTuner {
    use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
    // Workflow and local-activity slots as the SDK's default (this queue runs none).
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activity_slots))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .build()
        .into()
}

/// Loads the TTS engine (model, voices, phonemizer) once for the process.
pub fn load_tts_engine(config: &AvbConfig) -> anyhow::Result<Arc<TtsEngine>> {
    let mut tts = TtsConfig::new(config.assets_dir()).with_sessions(
        config.tts.threads,
        config.tts.sessions,
        config.tts.lead_threads,
    );
    tts.max_text_chars = config.tts.max_text_chars;
    tts.espeak_program = config.tts.espeak_program.clone();
    tts.rewrite_convs = config.tts.rewrite_convs;
    tts.lead_in_pool = !config.tts.separate_lead;
    Ok(Arc::new(TtsEngine::load(tts)?))
}

/// The upstream servers of this worker process: `[mcp_servers]` now, re-read from the config
/// file when a call names a server it does not know yet. Sessions are `shared`'s pool when the
/// api runs in this process too (one stdio child per session, not one for each side).
pub fn upstream_hub(config: &AvbConfig, shared: &Shared) -> Arc<avb_upstream::UpstreamHub> {
    let mut hub = avb_upstream::UpstreamHub::new(
        config.mcp_servers.clone(),
        Some(config.data_dir.join("logs/upstreams")),
        |_| false,
    );
    if let Some(pool) = &shared.upstream_pool {
        hub = hub.with_pool(pool.clone());
    }
    Arc::new(match reload_mcp_servers(config) {
        Some(reload) => hub.with_reload(reload),
        None => hub,
    })
}

/// What the workers share with an api running in the same process (`avb dev`).
#[derive(Clone, Default)]
pub struct Shared {
    /// The api's upstream MCP sessions.
    pub upstream_pool: Option<Arc<avb_upstream::UpstreamPool>>,
    /// Set once every requested queue has its worker and polling starts (readiness).
    pub started: Arc<std::sync::atomic::AtomicBool>,
}

/// Re-reads `[mcp_servers]` from the config file, when the config came from one.
pub fn reload_mcp_servers(config: &AvbConfig) -> Option<avb_upstream::Reload> {
    let path = config.source_file.clone()?;
    Some(Box::new(move || {
        AvbConfig::reload_mcp_servers(&path).map_err(|e| e.to_string())
    }))
}

/// Builds the workers for `queues` and runs them until `shutdown` resolves.
pub async fn run_workers(
    runtime: &Runtime,
    client: Client,
    config: &AvbConfig,
    queue_names: &[&'static str],
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    run_workers_sharing(
        runtime,
        client,
        config,
        queue_names,
        &Shared::default(),
        shutdown,
    )
    .await
}

/// [`run_workers`], using what an api in this process already has (`shared`).
pub async fn run_workers_sharing(
    runtime: &Runtime,
    client: Client,
    config: &AvbConfig,
    queue_names: &[&'static str],
    shared: &Shared,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // Activities call https upstreams and Home Assistant with the operator's trust store.
    avb_tls::init(config.tls.ca_file.as_deref()).map_err(anyhow::Error::msg)?;
    let mut workers = Vec::new();
    // One pool for the queues that write the store (billing, provisioning), and for speech
    // when artifacts are kept in the database.
    let artifacts_in_database =
        config.artifact_location() == avb_config::ArtifactLocation::Database;
    let opened = if queue_names.iter().any(|q| {
        *q == queues::BILLING
            || *q == queues::PROVISIONING
            || (*q == queues::TTS && artifacts_in_database)
    }) {
        Some(
            Store::open(config)
                .await
                .context("opening the database (DATABASE_URL, default $AVB_DATA_DIR/avb.db)")?,
        )
    } else {
        None
    };
    let store = || opened.clone().context("the store was not opened");
    for q in queue_names {
        let opts = match *q {
            queues::WORKFLOWS => {
                let mut opts = WorkerOptions::new(*q)
                    // The echo activity shares the workflow queue so it is dispatched eagerly.
                    .register_activities(EchoActivities)
                    .build();
                // Every workflow, from the same list the replay tests check.
                avb_workflows::register_all(&mut opts)?;
                opts
            }
            queues::TTS => {
                let engine = load_tts_engine(config)?;
                let slots = tts_slots(&engine);
                let artifacts = ArtifactStore::configured(config, opened.as_ref())?;
                tracing::info!(
                    artifacts = artifacts.description(),
                    "speech results kept here"
                );
                {
                    let artifacts = artifacts.clone();
                    tokio::spawn(async move {
                        match avb_activities::speech_activity::remove_finished_streams(&artifacts)
                            .await
                        {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(
                                removed = n,
                                "removed finished audio streams left behind"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "could not look for finished audio streams")
                            }
                        }
                    });
                }
                let stream_keep = Duration::from_secs(config.tts.stream_keep_secs);
                let mut opts = WorkerOptions::new(*q)
                    .register_activities(TtsActivities {
                        engine,
                        artifacts,
                        stream_keep,
                    })
                    .graceful_shutdown_period(GRACEFUL_SHUTDOWN)
                    // Heartbeats carry progress (and deliver cancellation): the SDK's default
                    // throttle (0.8 x the 30 s heartbeat timeout) would show progress every 24 s.
                    .max_heartbeat_throttle_interval(HEARTBEAT_THROTTLE)
                    .build();
                opts.tuner = tts_tuner(slots);
                opts
            }
            queues::BILLING => WorkerOptions::new(*q)
                .register_activities(BillingActivities { store: store()? })
                .graceful_shutdown_period(GRACEFUL_SHUTDOWN)
                .build(),
            queues::PROVISIONING => {
                let logs = config.data_dir.join("logs/mcp-servers");
                let backend =
                    backend_for(&config.provisioning, &logs, &config.installation_id()).await;
                // A host-local engine's replicas are reached only from this host: its own queue
                // takes their steps (the shared one takes placements and everything else).
                let host = host_of(&config.provisioning, backend.as_ref());
                tracing::info!(backend = backend.kind(), host = ?host, "provisioning backend");
                reconcile_schedule::ensure_reconcile_schedule(
                    &client,
                    config.provisioning.reconcile_every_secs,
                )
                .await
                .context("creating the reconciliation schedule")?;
                let events = Arc::new(
                    ServerEvents::new(store()?, config.redis.url.as_deref())
                        .context("redis.url (REDIS_URL)")?,
                );
                let opts = WorkerOptions::new(*q)
                    .register_activities(ProvisioningActivities {
                        backend: backend.clone(),
                        events: events.clone(),
                        settings: config.provisioning.clone(),
                        host: host.clone(),
                    })
                    .register_activities(ReconcileActivities {
                        backend,
                        events,
                        tariff: config
                            .billing
                            .price_of(BILLED_TOOL)
                            .map(|p| (p.credits_per_1000, config.provisioning.billing_block_secs)),
                        retention: (config.provisioning.record_retention_days > 0).then(|| {
                            Duration::from_secs(
                                config
                                    .provisioning
                                    .record_retention_days
                                    .saturating_mul(86_400),
                            )
                        }),
                    })
                    .graceful_shutdown_period(GRACEFUL_SHUTDOWN)
                    .max_heartbeat_throttle_interval(HEARTBEAT_THROTTLE)
                    .build();
                if let Some(host) = &host {
                    let mut on_host = opts.clone();
                    on_host.task_queue = queues::provisioning_on(host);
                    let worker = Worker::new(runtime, client.clone(), on_host)
                        .with_context(|| format!("creating worker for {q}@{host}"))?;
                    tracing::info!(queue = %queues::provisioning_on(host), "worker ready");
                    workers.push(worker);
                }
                opts
            }
            queues::DEVICES => {
                let mut opts = WorkerOptions::new(*q)
                    .register_activities(DeviceActivities::new(config.devices.clone()))
                    .graceful_shutdown_period(GRACEFUL_SHUTDOWN)
                    .build();
                // Device workflows run here, next to the devices, with local activities.
                avb_workflows::register_on_devices(&mut opts)?;
                opts
            }
            queues::UPSTREAM => WorkerOptions::new(*q)
                .register_activities(UpstreamActivities {
                    hub: upstream_hub(config, shared),
                })
                .graceful_shutdown_period(GRACEFUL_SHUTDOWN)
                .build(),
            other => {
                // A queue in `queues::ALL` with no activities registered here: say so instead
                // of polling a queue nothing would answer.
                tracing::warn!(
                    queue = other,
                    "no activities implemented for this queue yet; not polling it"
                );
                continue;
            }
        };
        let worker = Worker::new(runtime, client.clone(), opts)
            .with_context(|| format!("creating worker for {q}"))?;
        tracing::info!(queue = q, "worker ready");
        workers.push(worker);
    }
    anyhow::ensure!(
        !workers.is_empty(),
        "none of the requested queues has a worker"
    );
    let handles: Vec<_> = workers.iter().map(|w| w.shutdown_handle()).collect();
    shared
        .started
        .store(true, std::sync::atomic::Ordering::Release);
    let stopper = async move {
        shutdown.await;
        tracing::info!("shutting down workers (running activities get {GRACEFUL_SHUTDOWN:?})");
        for h in &handles {
            h();
        }
    };
    let runs: Vec<LocalBoxFuture<'_, anyhow::Result<()>>> = workers
        .iter_mut()
        .map(|w| async move { w.run().await.map_err(anyhow::Error::from) }.boxed_local())
        .collect();
    let (results, ()) = futures::join!(futures::future::join_all(runs), stopper);
    for r in results {
        r?;
    }
    Ok(())
}
