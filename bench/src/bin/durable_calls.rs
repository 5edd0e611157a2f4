//! Durable-call benchmark (latency of a durable call, fast-path throughput): run with
//! `cargo run --release -p avb-bench --bin durable_calls -- [--calls 200] [--seconds 5] [--concurrency 8]`.
//!
//! (a) Durable call latency: `durable_echo` over MCP (Streamable HTTP, rmcp client) vs a raw
//!     Temporal client starting the same `DurableEcho` workflow and awaiting its result, same SDK
//!     and server, in three configurations to show what each change buys: the dev server's
//!     default 4 task-queue partitions; one partition; one partition + eager workflow start
//!     (worker shares the api's connection). Eager activity dispatch is on in all three (the echo
//!     activity lives on the workflow's queue).
//! (b) Fast-path throughput: `get_server_status` calls/s vs a bare rmcp echo server on the same
//!     stack (axum + StreamableHttpService + TCP_NODELAY), both at the same concurrency.
//! Every ratio compares numbers measured in this run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use avb_api::{ApiState, echo};
use avb_bench::{mcp_client, numeric_flags, summary, tool_call};
use avb_config::AvbConfig;
use avb_runtime::devserver::{DevServer, DevServerOptions, free_port};
use avb_runtime::temporal;
use avb_workflows::echo::EchoInput;
use avb_workflows::search;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

struct Args {
    calls: usize,
    seconds: u64,
    concurrency: usize,
}

fn args() -> Args {
    let f = numeric_flags(&[("calls", 200), ("seconds", 5), ("concurrency", 8)]);
    Args {
        calls: usize::try_from(f["calls"]).expect("calls"),
        seconds: f["seconds"],
        concurrency: usize::try_from(f["concurrency"]).expect("concurrency"),
    }
}

fn echo_args(msg: &str) -> CallToolRequestParams {
    tool_call("durable_echo", serde_json::json!({ "message": msg }))
}

struct Scenario {
    name: &'static str,
    single_partition: bool,
    eager: bool,
    local: bool,
}

/// One configuration: its own dev server, workers and api in this task; returns
/// (raw p50, raw p99, mcp p50, mcp p99) in milliseconds.
async fn durable_scenario(
    s: &Scenario,
    calls: usize,
    data: &std::path::Path,
) -> (f64, f64, f64, f64) {
    let port = free_port().expect("port");
    let server = DevServer::start(DevServerOptions {
        single_partition: s.single_partition,
        ..DevServerOptions::ephemeral(
            port,
            data.join(format!("temporal-{port}.log")),
            search::ALL_KEYWORDS,
        )
    })
    .await
    .expect("dev server");
    let mut config = AvbConfig {
        data_dir: data.to_path_buf(),
        ..AvbConfig::default()
    };
    config.temporal.address = server.addr.to_string();
    // Thousands of calls a second from one caller: measured without rate limits.
    config.rate_limits.enabled = false;
    config.temporal.eager_start = s.eager;
    config.temporal.echo_local_activity = s.local;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.http = listener.local_addr().expect("addr");
    let api_client = temporal::connect(&config.temporal, "bench-api")
        .await
        .expect("connect");
    temporal::ensure_search_attributes(&api_client, "default", search::ALL_KEYWORDS)
        .await
        .expect("attrs");
    // Eager start needs the worker on the starter's connection; otherwise a separate one, as
    // with `avb serve` + `avb worker`.
    let worker_client = if s.eager {
        api_client.clone()
    } else {
        temporal::connect(&config.temporal, "bench-worker")
            .await
            .expect("connect")
    };
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let shutdown = CancellationToken::new();
    let state = ApiState::new(api_client.clone(), config.clone()).expect("state");
    let api = tokio::spawn(avb_api::run(listener, state, shutdown.clone()));
    let stop = shutdown.clone();
    let workers = avb_workers::run_workers(
        &runtime,
        worker_client,
        &config,
        &[avb_workflows::queues::WORKFLOWS],
        async move {
            stop.cancelled().await;
        },
    );
    let url = format!("http://{}/mcp", config.http);
    let body = async {
        let caller = avb_api::auth::Caller::operator_of("bench");
        // The raw path: the api's own start-and-await of the workflow, without MCP.
        let raw_echo = async || {
            let input = EchoInput {
                message: "ping".into(),
            };
            echo::run_echo(&api_client, &caller, input, s.eager, s.local)
                .await
                .expect("raw echo");
        };
        // Warm up both paths (connections, caches, worker pollers).
        for _ in 0..20 {
            raw_echo().await;
        }
        let client = mcp_client(&url).await;
        for _ in 0..20 {
            client.call_tool(echo_args("ping")).await.expect("mcp echo");
        }
        let mut raw = Vec::with_capacity(calls);
        let mut mcp = Vec::with_capacity(calls);
        // Interleaved so drift in the server affects both equally.
        for _ in 0..calls {
            let t = Instant::now();
            raw_echo().await;
            raw.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let r = client.call_tool(echo_args("ping")).await.expect("mcp echo");
            assert_ne!(r.is_error, Some(true), "durable_echo failed: {r:?}");
            mcp.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let _ = client.cancel().await;
        shutdown.cancel();
        (summary(raw), summary(mcp))
    };
    let (worker_result, ((r50, r99), (m50, m99))) = tokio::join!(workers, body);
    worker_result.expect("workers");
    let _ = api.await;
    server.stop().await;
    println!(
        "  {:<34} raw p50 {r50:6.1} ms p99 {r99:6.1} | MCP p50 {m50:6.1} ms p99 {m99:6.1} | MCP/raw p50 {:.2}x",
        s.name,
        m50 / r50
    );
    (r50, r99, m50, m99)
}

/// A bare rmcp server with one trivial tool: the baseline for the fast path.
#[derive(Clone)]
struct BareEcho {
    tool_router: ToolRouter<BareEcho>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    message: String,
}

#[tool_router]
impl BareEcho {
    #[tool(description = "echo")]
    async fn echo(&self, Parameters(a): Parameters<EchoArgs>) -> String {
        a.message
    }
}

#[tool_handler(router = self.tool_router, name = "bare-echo", version = "1")]
impl ServerHandler for BareEcho {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn serve_bare_echo(shutdown: CancellationToken) -> String {
    use axum::serve::ListenerExt;
    let service = StreamableHttpService::new(
        || {
            Ok(BareEcho {
                tool_router: BareEcho::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token()),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let listener = listener.tap_io(|t| {
        let _ = t.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    url
}

/// Calls/s of `tool` at `concurrency` for `seconds`.
async fn throughput(
    url: &str,
    tool: &'static str,
    args: serde_json::Value,
    concurrency: usize,
    seconds: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let url = url.to_string();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let client = mcp_client(&url).await;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let r = client
                    .call_tool(tool_call(tool, args.clone()))
                    .await
                    .expect("call");
                assert_ne!(r.is_error, Some(true));
                n += 1;
            }
            let _ = client.cancel().await;
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    total as f64 / seconds as f64
}

async fn fast_path(a: &Args, data: &std::path::Path) {
    let port = free_port().expect("port");
    let server = DevServer::start(DevServerOptions::ephemeral(
        port,
        data.join("temporal-fast.log"),
        search::ALL_KEYWORDS,
    ))
    .await
    .expect("dev server");
    let mut config = AvbConfig {
        data_dir: data.to_path_buf(),
        ..AvbConfig::default()
    };
    config.temporal.address = server.addr.to_string();
    // Thousands of calls a second from one caller: measured without rate limits.
    config.rate_limits.enabled = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.http = listener.local_addr().expect("addr");
    let client = temporal::connect(&config.temporal, "bench-fast")
        .await
        .expect("connect");
    let shutdown = CancellationToken::new();
    let state = ApiState::new(client, config.clone()).expect("state");
    tokio::spawn(avb_api::run(listener, state, shutdown.clone()));
    let bare_url = serve_bare_echo(shutdown.clone()).await;
    let avb_url = format!("http://{}/mcp", config.http);
    // Warm-up, then interleave two rounds each.
    throughput(
        &bare_url,
        "echo",
        serde_json::json!({"message": "x"}),
        a.concurrency,
        1,
    )
    .await;
    throughput(
        &avb_url,
        "get_server_status",
        serde_json::json!({}),
        a.concurrency,
        1,
    )
    .await;
    let mut bare = Vec::new();
    let mut avb = Vec::new();
    for _ in 0..2 {
        bare.push(
            throughput(
                &bare_url,
                "echo",
                serde_json::json!({"message": "x"}),
                a.concurrency,
                a.seconds,
            )
            .await,
        );
        avb.push(
            throughput(
                &avb_url,
                "get_server_status",
                serde_json::json!({}),
                a.concurrency,
                a.seconds,
            )
            .await,
        );
    }
    let b = bare.iter().sum::<f64>() / bare.len() as f64;
    let s = avb.iter().sum::<f64>() / avb.len() as f64;
    println!("  bare rmcp echo:            {b:8.0} calls/s");
    println!(
        "  AgentVoiceBox get_server_status: {s:8.0} calls/s  (ratio {:.2}x, goal >= 0.8x)",
        s / b
    );
    shutdown.cancel();
    server.stop().await;
}

#[tokio::main]
async fn main() {
    let a = args();
    let data = tempfile::tempdir().expect("tmp");
    let assets = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/assets");
    std::os::unix::fs::symlink(&assets, data.path().join("assets"))
        .expect("link assets (run deploy/fetch_assets.py)");
    println!(
        "(a) durable call latency, {} sequential calls each (ms):",
        a.calls
    );
    let scenarios = [
        Scenario {
            name: "4 partitions (server default)",
            single_partition: false,
            eager: false,
            local: false,
        },
        Scenario {
            name: "1 partition",
            single_partition: true,
            eager: false,
            local: false,
        },
        Scenario {
            name: "1 partition + eager start",
            single_partition: true,
            eager: true,
            local: false,
        },
        Scenario {
            name: "... + local activity",
            single_partition: true,
            eager: true,
            local: true,
        },
    ];
    for s in &scenarios {
        durable_scenario(s, a.calls, data.path()).await;
    }
    println!(
        "(b) fast path, concurrency {}, {} s x 2 rounds:",
        a.concurrency, a.seconds
    );
    fast_path(&a, data.path()).await;
}
