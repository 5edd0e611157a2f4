//! The long-running modes: serve, worker, dev, mcp (stdio).

use std::net::SocketAddr;

use anyhow::Context;
use avb_api::{ApiState, AvbServer};
use avb_config::AvbConfig;
use avb_runtime::devserver::{DevServer, DevServerOptions, reachable};
use avb_runtime::{telemetry, temporal};
use avb_workflows::search;
use rmcp::ServiceExt;
use temporalio_sdk::Runtime;
use temporalio_sdk::runtime::RuntimeOptions;
use tokio_util::sync::CancellationToken;

pub fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    block_on_value(fut)
}

pub fn block_on_value<T>(
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Listen address (overrides AVB_HTTP).
    #[arg(long)]
    http: Option<SocketAddr>,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Task queues to serve: `all`, or a comma-separated list (avb-workflows,avb-tts,…).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    queues: Vec<String>,
    /// Serve /healthz, /readyz and /metrics (the SDK's worker metrics) on this address.
    #[arg(long)]
    http: Option<SocketAddr>,
}

#[derive(clap::Args)]
pub struct DevArgs {
    #[arg(long)]
    http: Option<SocketAddr>,
}

#[derive(clap::Args)]
pub struct McpArgs {
    #[arg(long, value_enum, default_value = "stdio")]
    transport: McpTransport,
}

#[derive(Clone, clap::ValueEnum)]
pub enum McpTransport {
    Stdio,
}

fn load_config(http: Option<SocketAddr>) -> anyhow::Result<AvbConfig> {
    let mut config = AvbConfig::load()?;
    // What the variables leave unset, the `temporal` command's own config file may say.
    avb_runtime::temporal::apply_profile(&mut config.temporal)?;
    if let Some(addr) = http {
        config.http = addr;
    }
    // Before anything starts (a dev server, a Temporal connection): say what this build lacks.
    avb_api::state::check_build_features(&config)?;
    Ok(config)
}

async fn api_state(config: AvbConfig) -> anyhow::Result<ApiState> {
    let store = crate::admin::open_store(&config).await?;
    let client = temporal::connect(&config.temporal, "avb-api").await?;
    temporal::ensure_search_attributes(&client, &config.temporal.namespace, search::ALL_KEYWORDS)
        .await?;
    Ok(ApiState::new(client, config)?.with_store(store))
}

async fn serve_http(state: ApiState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let addr = state.config.http;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "api listening");
    avb_api::run(listener, state, shutdown).await?;
    Ok(())
}

fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        avb_api::shutdown_signal().await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init();
    let config = load_config(args.http)?;
    let state = api_state(config).await?;
    serve_http(state, cancel_on_signal()).await
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    telemetry::init();
    let config = load_config(None)?;
    let queues = avb_workers::parse_queues(&args.queues)?;
    // The probe port is bound before anything starts: a taken port is an error now, not after
    // the model has loaded.
    let probe_listener = match args.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (avb worker --http)"))?,
        ),
        None => None,
    };
    let (runtime_options, sdk_metrics) = match &probe_listener {
        Some(_) => {
            let (meter, addr) = avb_workers::probe::sdk_metrics()?;
            let telemetry = temporalio_common::telemetry::TelemetryOptions::builder()
                .metrics(meter)
                .build();
            let options = RuntimeOptions::builder()
                .telemetry_options(telemetry)
                .build()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (options, Some(addr))
        }
        None => (RuntimeOptions::default(), None),
    };
    let runtime =
        Runtime::from_current_tokio(runtime_options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = temporal::connect(&config.temporal, "avb-worker").await?;
    temporal::ensure_search_attributes(&client, &config.temporal.namespace, search::ALL_KEYWORDS)
        .await?;
    let shutdown = cancel_on_signal();
    let shared = avb_workers::Shared::default();
    if let (Some(listener), Some(sdk_metrics)) = (probe_listener, sdk_metrics) {
        let probe = std::sync::Arc::new(avb_workers::probe::WorkerProbe::new(
            client.clone(),
            config.temporal.address.clone(),
            queues.clone(),
            shared.started.clone(),
            sdk_metrics,
        ));
        tracing::info!(address = %listener.local_addr()?, "worker probes on /healthz, /readyz, /metrics");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, avb_workers::probe::router(probe))
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "worker probe server stopped");
            }
        });
    }
    avb_workers::run_workers_sharing(&runtime, client, &config, &queues, &shared, async move {
        shutdown.cancelled().await
    })
    .await
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    telemetry::init();
    let mut config = load_config(args.http)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let mut dev_server = None;
    if !reachable(&config.temporal.address).await {
        let port: u16 = config
            .temporal
            .address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context(
                "temporal.address must end in :port for avb dev to start a dev server there",
            )?;
        tracing::info!(
            port,
            "no Temporal server answering; starting the dev server"
        );
        let server = DevServer::start(DevServerOptions {
            ui_port: Some(config.temporal.dev_server_ui_port),
            db_file: Some(config.data_dir.join("temporal.db")),
            namespace: config.temporal.namespace.clone(),
            ..DevServerOptions::ephemeral(
                port,
                config.data_dir.join("logs/temporal.log"),
                avb_workflows::search::ALL_KEYWORDS,
            )
        })
        .await?;
        config.temporal.address = server.addr.to_string();
        dev_server = Some(server);
    }
    let demo_home = crate::demo_home::start(&mut config).await?;
    let runtime = Runtime::from_current_tokio(RuntimeOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = api_state(config.clone()).await?;
    let dev_keys = match &state.store {
        Some(store) if config.auth.required => {
            Some(crate::admin::ensure_dev_keys(store, &config.data_dir).await?)
        }
        _ => None,
    };
    let dev_credits = match &state.store {
        Some(store) if config.billing.enabled => {
            Some(crate::admin::ensure_dev_credits(store, config.billing.dev_credits).await?)
        }
        _ => None,
    };
    // One connection for api and workers: eager workflow start needs a worker on the starter's
    // connection.
    let worker_client = state.temporal.clone();
    let shutdown = cancel_on_signal();
    let ui = match &dev_server {
        Some(s) => s.ui_port.map_or_else(
            || "headless".to_string(),
            |p| format!("http://127.0.0.1:{p}"),
        ),
        None => "(external Temporal server)".to_string(),
    };
    println!("AgentVoiceBox is running");
    println!("  MCP (Streamable HTTP): {}/mcp", config.public_url());
    println!(
        "  MCP (legacy SSE):      {}/api/v2/mcp/sse",
        config.public_url()
    );
    println!("  Temporal UI:           {ui}");
    println!("  Temporal frontend:     {}", config.temporal.address);
    match &dev_keys {
        Some(keys) => keys.print(),
        None => println!("  Authentication:        off (auth.required = false)"),
    }
    match dev_credits {
        Some(n) => println!(
            "  Credits (tenant local): {n} available (grant more: avb admin grant --tenant local --credits N)"
        ),
        None => println!("  Billing:               off (billing.enabled = false)"),
    }
    for line in &demo_home.lines {
        println!("  Smart home:            {line}");
    }
    let shared = avb_workers::Shared {
        upstream_pool: Some(state.upstreams.pool.clone()),
        ..Default::default()
    };
    let http = serve_http(state, shutdown.clone());
    let queues = avb_workers::parse_queues(&["all".to_string()])?;
    let workers =
        avb_workers::run_workers_sharing(&runtime, worker_client, &config, &queues, &shared, {
            let s = shutdown.clone();
            async move { s.cancelled().await }
        });
    let (http_result, worker_result) = tokio::join!(http, workers);
    demo_home.stop().await;
    if let Some(server) = dev_server {
        server.stop().await;
    }
    http_result.and(worker_result)
}

pub async fn mcp(args: McpArgs) -> anyhow::Result<()> {
    telemetry::init();
    let McpTransport::Stdio = args.transport;
    let config = load_config(None)?;
    let state = api_state(config).await?;
    // stdio has no headers: the key comes from the environment.
    let key = std::env::var("AVB_API_KEY").ok();
    let caller = avb_api::auth::caller_for(&state, key.as_deref())
        .await
        .context("avb mcp acts for the tenant of the API key in AVB_API_KEY")?;
    let upstreams = CancellationToken::new();
    avb_api::start_upstreams(&state, upstreams.clone());
    let running = AvbServer::for_caller(state, caller)
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP stdio handshake failed")?;
    let quit = running.waiting().await;
    // Stops the upstream sessions (and their stdio children) with the session.
    upstreams.cancel();
    quit?;
    Ok(())
}
