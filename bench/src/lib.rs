//! Benchmarks of AgentVoiceBox against baselines measured in the same run: each binary in
//! `src/bin` prints its numbers and ratios; `BENCHMARKS.md` records them with the command.
//! The Python scripts beside this crate compare the speech engine with kokoro-onnx.
//!
//! # Layout
//! - `src/bin/durable_calls.rs`: a durable MCP call vs a raw Temporal workflow; fast-path
//!   throughput vs a bare rmcp server.
//! - `src/bin/jobs.rs`, `billing.rs`, `provisioning.rs`, `devices.rs`, `upstream.rs`: one
//!   family each.
//! - this file: percentiles, flags and the MCP client the binaries share.

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};

/// The `p` quantile (0..=1) of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// (p50, p99) of unsorted samples.
pub fn summary(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (pct(&ms, 0.5), pct(&ms, 0.99))
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// An rmcp client session over Streamable HTTP with handler `h`.
pub async fn mcp_session<H: ClientHandler>(url: &str, h: H) -> RunningService<RoleClient, H> {
    h.serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .expect("mcp connect")
}

/// A 2026-07-28 session (`server/discover`) with handler `h`: the revision whose clients get
/// tasks of the Tasks extension.
pub async fn tasks_session<H: ClientHandler>(url: &str, h: H) -> RunningService<RoleClient, H> {
    use rmcp::ClientServiceExt;
    h.serve_with_lifecycle(
        StreamableHttpClientTransport::from_uri(url.to_string()),
        rmcp::ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("mcp connect (2026-07-28)")
}

/// A plain rmcp client (no tasks capability).
pub async fn mcp_client(url: &str) -> RunningService<RoleClient, ()> {
    mcp_session(url, ()).await
}

/// `tools/call` parameters for `tool` with JSON object arguments.
pub fn tool_call(tool: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().expect("object"))
}

/// `--name N` arguments over `defaults` (every flag must be one of them); `flags["name"]`.
pub fn numeric_flags(defaults: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    let mut out: std::collections::BTreeMap<String, u64> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_string(), *v))
        .collect();
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let name = pair[0].trim_start_matches("--");
        assert!(
            out.contains_key(name),
            "unknown argument {}; known: {:?}",
            pair[0],
            out.keys().collect::<Vec<_>>()
        );
        let n = pair
            .get(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} needs a whole number", pair[0]));
        out.insert(name.to_string(), n);
    }
    out
}

/// Runs `per_caller(i, deadline)` on `n` concurrent callers until `seconds` pass; each returns
/// how many operations it completed. Returns operations per second.
pub async fn rate<F, Fut>(n: usize, seconds: u64, per_caller: F) -> f64
where
    F: Fn(usize, std::time::Instant) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let callers: Vec<_> = (0..n)
        .map(|i| tokio::spawn(per_caller(i, deadline)))
        .collect();
    let mut total = 0;
    for c in callers {
        total += c.await.expect("caller");
    }
    total as f64 / seconds as f64
}

/// A benchmark's own Temporal dev server and a configuration pointing at it, with its data in
/// `data` (the fetched Kokoro assets linked in, as the api reads the voice catalog).
pub async fn dev_setup(
    data: &std::path::Path,
    identity: &str,
) -> (
    avb_runtime::devserver::DevServer,
    avb_config::AvbConfig,
    temporalio_client::Client,
) {
    use avb_runtime::devserver::{DevServer, DevServerOptions, free_port};
    let assets = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/assets");
    std::os::unix::fs::symlink(&assets, data.join("assets"))
        .expect("link assets (run deploy/fetch_assets.py)");
    let server = DevServer::start(DevServerOptions::ephemeral(
        free_port().expect("port"),
        data.join("temporal.log"),
        avb_workflows::search::ALL_KEYWORDS,
    ))
    .await
    .expect("dev server");
    let mut config = avb_config::AvbConfig {
        data_dir: data.to_path_buf(),
        ..avb_config::AvbConfig::default()
    };
    config.temporal.address = server.addr.to_string();
    let client = avb_runtime::temporal::connect(&config.temporal, identity)
        .await
        .expect("connect");
    avb_runtime::temporal::ensure_search_attributes(
        &client,
        "default",
        avb_workflows::search::ALL_KEYWORDS,
    )
    .await
    .expect("search attributes");
    (server, config, client)
}

/// Runs the api (on a loopback port) and the workers for `queues` in this process, hands the
/// MCP endpoint to `bench`, and stops both once it returns.
pub async fn with_api_and_workers<Fut: std::future::Future<Output = ()>>(
    mut config: avb_config::AvbConfig,
    client: temporalio_client::Client,
    queues: &[&'static str],
    bench: impl FnOnce(String) -> Fut,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.http = listener.local_addr().expect("addr");
    let mcp_url = format!("http://{}/mcp", config.http);
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = avb_api::ApiState::new(client.clone(), config.clone()).expect("state");
    let api = tokio::spawn(avb_api::run(listener, state, shutdown.clone()));
    let workers = avb_workers::run_workers(&runtime, client, &config, queues, {
        let stop = shutdown.clone();
        async move { stop.cancelled().await }
    });
    let bench = async {
        bench(mcp_url).await;
        shutdown.cancel();
    };
    let (w, ()) = tokio::join!(workers, bench);
    w.expect("workers");
    api.await.expect("api").expect("api serves");
}
