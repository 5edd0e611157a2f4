//! The long-running modes: serve, worker, dev, mcp (stdio).

use std::net::SocketAddr;

use anyhow::Context;
use avb_api::{ApiState, AvbServer};
use avb_config::AvbConfig;
use avb_runtime::devserver::{DevServer, DevServerOptions, reachable};
use avb_runtime::supervise::{RestartPolicy, Supervised, supervise};
use avb_runtime::{ports, telemetry, temporal};
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
    /// Run the folder's stack for `avb mcp --transport stdio` processes: no HTTP, and stop once
    /// the last of them has exited (they start it themselves).
    #[arg(long, hide = true)]
    serve_stdio_clients: bool,
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
    let client = connect_temporal(&config, "avb-api").await?;
    Ok(ApiState::new(client, config)?.with_store(store))
}

/// Connects to Temporal and registers the search attributes. A failure says which it is:
/// nothing listens at the address, or something that is not Temporal does.
async fn connect_temporal(
    config: &AvbConfig,
    identity: &str,
) -> anyhow::Result<temporalio_client::Client> {
    let connected = async {
        let client = temporal::connect(&config.temporal, identity).await?;
        temporal::ensure_search_attributes(
            &client,
            &config.temporal.namespace,
            search::ALL_KEYWORDS,
        )
        .await?;
        Ok::<_, temporal::TemporalError>(client)
    };
    let address = &config.temporal.address;
    let failure = match tokio::time::timeout(TEMPORAL_ANSWER, connected).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", TEMPORAL_ANSWER.as_secs()),
    };
    if reachable(address).await {
        anyhow::bail!(
            "something else listens on {address}: it does not answer as a Temporal server \
             ({failure}); set AVB_TEMPORAL_ADDRESS to Temporal's address or free the port"
        )
    }
    anyhow::bail!(
        "{failure} (nothing listens there: start Temporal, run `avb dev`, or set \
         AVB_TEMPORAL_ADDRESS)"
    )
}

/// How long a Temporal server has to answer the first calls at start-up.
const TEMPORAL_ANSWER: std::time::Duration = std::time::Duration::from_secs(15);

/// Binds the api's address before anything else starts: a taken port ends start-up at once,
/// naming the address, its holder and the setting.
fn bind_http(addr: SocketAddr, setting: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = ports::bind(addr, setting).map_err(anyhow::Error::msg)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve_http(
    listener: std::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    avb_api::run(listener, state, shutdown).await?;
    Ok(())
}

/// Creates the data folder and checks that it can be written, so a read-only or foreign folder
/// is one clear error before anything starts.
fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let unusable = |e: std::io::Error| {
        anyhow::anyhow!(
            "the data folder {} cannot be written ({e}): set AVB_DATA_DIR to a writable folder",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(unusable)?;
    let probe = dir.join(".avb-write-check");
    std::fs::write(&probe, b"").map_err(unusable)?;
    let _ = std::fs::remove_file(probe);
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
    let listener = bind_http(config.http, "--http or AVB_HTTP")?;
    let state = api_state(config).await?;
    serve_http(listener, state, cancel_on_signal()).await
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    telemetry::init();
    let config = load_config(None)?;
    let queues = avb_workers::parse_queues(&args.queues)?;
    // The probe port is bound before anything starts: a taken port is an error now, not after
    // the model has loaded.
    let probe_listener = match args.http {
        Some(addr) => Some(tokio::net::TcpListener::from_std(bind_http(
            addr,
            "avb worker --http",
        )?)?),
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
    let client = connect_temporal(&config, "avb-worker").await?;
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

/// `avb dev`: the whole system in one process on embedded defaults. Start-up is all or nothing:
/// every listener is bound or checked first, any failure ends the process with one line and
/// stops what already started, and the banner comes only once the api listens and the workers
/// poll. The children it owns (the Temporal dev server, the demo home's broker) are restarted
/// when they die, and given up on — ending `avb dev` non-zero, naming them — only after
/// repeated failures.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    telemetry::init();
    let mut config = load_config(args.http)?;
    prepare_data_dir(&config.data_dir)?;
    let _lock = crate::data_lock::DataLock::acquire(&config.data_dir)?;
    let http = if args.serve_stdio_clients {
        None
    } else {
        Some(bind_http(config.http, "--http or AVB_HTTP")?)
    };
    let dev_server = start_dev_server(&mut config).await?;
    let demo_home = match crate::demo_home::start(&mut config).await {
        Ok(home) => home,
        Err(e) => {
            if let Some(server) = dev_server {
                server.stop().await;
            }
            return Err(e);
        }
    };
    let shutdown = cancel_on_signal();
    let result = run_dev(config, http, &dev_server, &demo_home, shutdown.clone()).await;
    shutdown.cancel();
    demo_home.stop().await;
    if let Some(server) = dev_server {
        server.stop().await;
    }
    result
}

/// Starts the Temporal dev server when nothing answers at the configured address (its ports
/// checked first), under supervision, and points `config` at it.
async fn start_dev_server(config: &mut AvbConfig) -> anyhow::Result<Option<Supervised>> {
    if reachable(&config.temporal.address).await {
        return Ok(None);
    }
    let port: u16 = config
        .temporal
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("temporal.address must end in :port for avb dev to start a dev server there")?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    ports::check_free(loopback(port), "AVB_TEMPORAL_ADDRESS").map_err(anyhow::Error::msg)?;
    let ui_port = config.temporal.dev_server_ui_port;
    ports::check_free(loopback(ui_port), "AVB_TEMPORAL_UI_PORT").map_err(anyhow::Error::msg)?;
    tracing::info!(
        port,
        "no Temporal server answering; starting the dev server"
    );
    let log = config.data_dir.join("logs/temporal.log");
    let options = DevServerOptions {
        ui_port: Some(ui_port),
        db_file: Some(config.data_dir.join("temporal.db")),
        namespace: config.temporal.namespace.clone(),
        ..DevServerOptions::ephemeral(port, log.clone(), avb_workflows::search::ALL_KEYWORDS)
    };
    let server = DevServer::start(options.clone()).await?;
    config.temporal.address = server.addr.to_string();
    Ok(Some(supervise(
        "the Temporal dev server",
        server,
        Some(log),
        RestartPolicy::default(),
        move || {
            let options = options.clone();
            async move { DevServer::start(options).await.map_err(|e| e.to_string()) }
        },
    )))
}

/// What `avb dev` runs once its children are up: the api and every worker, until a signal, one
/// of them failing, or a child given up on.
async fn run_dev(
    config: AvbConfig,
    http: Option<std::net::TcpListener>,
    dev_server: &Option<Supervised>,
    demo_home: &crate::demo_home::DemoHome,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(RuntimeOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = api_state(config.clone()).await?;
    let serving_stdio_clients = http.is_none();
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
    let shared = avb_workers::Shared {
        upstream_pool: Some(state.upstreams.pool.clone()),
        ..Default::default()
    };
    let started = shared.started.clone();
    // Stdio clients of this folder find the stack's Temporal here from now on.
    let _published = crate::stack::Published::write(
        &config.data_dir,
        &crate::stack::StackInfo {
            pid: std::process::id(),
            temporal_address: config.temporal.address.clone(),
            http: http.as_ref().map(|_| config.public_url()),
        },
    )?;
    let mut http_task = match http {
        Some(listener) => tokio::spawn(serve_http(listener, state, shutdown.clone())),
        None => {
            let s = shutdown.clone();
            tokio::spawn(async move {
                s.cancelled().await;
                Ok(())
            })
        }
    };
    let clients_gone = async {
        if serving_stdio_clients {
            crate::stack::no_clients_left(&config.data_dir).await
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(clients_gone);
    // Kept until the stack has stopped: a stdio client arriving meanwhile waits for a new one.
    let mut held_until_stopped = None;
    let queues = avb_workers::parse_queues(&["all".to_string()])?;
    let workers =
        avb_workers::run_workers_sharing(&runtime, worker_client, &config, &queues, &shared, {
            let s = shutdown.clone();
            async move { s.cancelled().await }
        });
    tokio::pin!(workers);
    let child_failed = async {
        match dev_server {
            Some(server) => tokio::select! {
                why = server.failed() => why,
                why = demo_home.failed() => why,
            },
            None => demo_home.failed().await,
        }
    };
    tokio::pin!(child_failed);
    let mut banner = false;
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            served = &mut http_task => {
                shutdown.cancel();
                let served = served.map_err(|e| anyhow::anyhow!("the api stopped: {e}"))?;
                (&mut workers).await?;
                return served;
            }
            ran = &mut workers => {
                shutdown.cancel();
                let _ = (&mut http_task).await;
                return ran.and_then(|()| if banner || shutdown.is_cancelled() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("the workers stopped before they polled"))
                });
            }
            gone = &mut clients_gone, if held_until_stopped.is_none() => {
                tracing::info!("the last stdio client has exited; stopping");
                held_until_stopped = Some(gone?);
                shutdown.cancel();
            }
            why = &mut child_failed => {
                shutdown.cancel();
                let _ = (&mut http_task).await;
                let _ = (&mut workers).await;
                anyhow::bail!("{why}");
            }
            _ = poll.tick(), if !banner => {
                if started.load(std::sync::atomic::Ordering::Acquire) {
                    banner = true;
                    if !serving_stdio_clients {
                        print_banner(&config, dev_server.is_some(), dev_keys.as_ref(), dev_credits, demo_home);
                    }
                }
            }
        }
    }
}

fn print_banner(
    config: &AvbConfig,
    embedded_temporal: bool,
    dev_keys: Option<&crate::admin::DevKeys>,
    dev_credits: Option<i64>,
    demo_home: &crate::demo_home::DemoHome,
) {
    let ui = if embedded_temporal {
        format!("http://127.0.0.1:{}", config.temporal.dev_server_ui_port)
    } else {
        "(external Temporal server)".to_string()
    };
    println!("AgentVoiceBox is running");
    println!("  MCP (Streamable HTTP): {}/mcp", config.public_url());
    println!(
        "  MCP (legacy SSE):      {}/api/v2/mcp/sse",
        config.public_url()
    );
    println!("  Temporal UI:           {ui}");
    println!("  Temporal frontend:     {}", config.temporal.address);
    match dev_keys {
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
}

/// `avb mcp --transport stdio`, as an IDE's MCP config starts it: with nothing else running it
/// starts the data folder's stack itself ([`crate::stack`]), shares it with the folder's other
/// stdio processes and a running `avb dev`, and acts for the folder's local AGENT key when no
/// `AVB_API_KEY` is given. stdout carries only protocol messages.
pub async fn mcp(args: McpArgs) -> anyhow::Result<()> {
    let McpTransport::Stdio = args.transport;
    let mut config = load_config(None)?;
    prepare_data_dir(&config.data_dir)?;
    telemetry::init_with_log_file(&config.data_dir.join("logs/mcp-stdio.log"));
    // Held while this process runs: the stack knows a client still needs it.
    let _client = crate::stack::ClientHold::take(&config.data_dir).await?;
    if let Some(stack) = crate::stack::running(&config.data_dir).await? {
        tracing::info!(pid = stack.pid, temporal = %stack.temporal_address, "using the data folder's running stack");
        config.temporal.address = stack.temporal_address;
    } else if !reachable(&config.temporal.address).await {
        let stack = crate::stack::start(&config.data_dir).await?;
        config.temporal.address = stack.temporal_address;
    }
    let state = api_state(config.clone()).await?;
    let key = match std::env::var("AVB_API_KEY").ok().filter(|k| !k.is_empty()) {
        Some(key) => Some(key),
        None if config.auth.required => Some(local_agent_key(&config.data_dir)?),
        None => None,
    };
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

/// The AGENT key `avb dev` wrote for the data folder's `local` tenant, for a stdio process
/// started without `AVB_API_KEY` (said once on stderr).
fn local_agent_key(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("dev-keys.json");
    let keys: crate::admin::DevKeys = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .with_context(|| {
            format!(
                "authentication is on and AVB_API_KEY is not set, and {} has no local keys: \
                 set AVB_API_KEY to an AGENT key (avb admin create-key --role AGENT)",
                path.display()
            )
        })?;
    eprintln!(
        "avb: acting for the local AGENT key in {} (set AVB_API_KEY to act as another key)",
        path.display()
    );
    Ok(keys.agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_folder_that_cannot_be_written_is_named_with_the_variable() {
        // A folder "inside" a file cannot be made, whoever runs the test (root included).
        let file = tempfile::NamedTempFile::new().expect("tmp");
        let dir = file.path().join("data");
        let err = prepare_data_dir(&dir).expect_err("refused").to_string();
        assert!(
            err.starts_with(&format!(
                "the data folder {} cannot be written",
                dir.display()
            )) && err.contains("AVB_DATA_DIR"),
            "{err}"
        );
        let ok = tempfile::tempdir().expect("tmp");
        prepare_data_dir(&ok.path().join("fresh")).expect("a writable folder");
    }
}
