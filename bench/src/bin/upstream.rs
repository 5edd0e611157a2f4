//! Aggregator benchmark (calls to upstream MCP servers through avb vs direct):
//! `cargo run --release -p avb-bench --bin upstream -- [--rounds 200]`. Needs Node and npm
//! (`deploy/upstream_servers.sh` installs the reference servers).
//!
//! One upstream, npm's `server-everything` over Streamable HTTP, mounted twice: `durable_*`
//! (every call an `UpstreamCall` workflow with its activity on `avb-upstream`) and `fast_*`
//! (`durable = false`: the api calls the upstream itself). Interleaved rounds of `get-sum`
//! through avb (MCP over Streamable HTTP) on both paths and directly against the upstream;
//! p50 and p99 of each, and the ratios to the direct call.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use avb_bench::{mcp_client, numeric_flags, summary};
use avb_config::UpstreamServer;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// server-everything over Streamable HTTP on `port`.
fn start_everything(port: u16) -> Node {
    let out = Command::new("deploy/upstream_servers.sh")
        .stderr(Stdio::inherit())
        .output()
        .expect("deploy/upstream_servers.sh (run from the repository root)");
    assert!(out.status.success(), "deploy/upstream_servers.sh failed");
    let modules = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let js = format!("{modules}/@modelcontextprotocol/server-everything/dist/index.js");
    let child = Command::new("node")
        .args([js.as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server-everything did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Node(child)
}

async fn timed_sum(client: &RunningService<RoleClient, ()>, tool: &str, i: u64) -> f64 {
    let args = json!({"a": i, "b": 1})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let t = Instant::now();
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await
        .expect("call");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
    ms
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let f = numeric_flags(&[("rounds", 200)]);
    let port = avb_runtime::devserver::free_port().expect("port");
    let _upstream = start_everything(port);
    let upstream_url = format!("http://127.0.0.1:{port}/mcp");

    let data = tempfile::tempdir().expect("tmp");
    let (server, mut config, client) = avb_bench::dev_setup(data.path(), "bench-upstream").await;
    config.rate_limits.enabled = false;
    config.billing.enabled = false;
    config.auth.required = false;
    config.mcp.upstream_check_secs = 1;
    for (name, durable) in [("durable", true), ("fast", false)] {
        config.mcp_servers.insert(
            name.into(),
            UpstreamServer {
                server_url: Some(upstream_url.clone()),
                allowed_tools: Some(vec!["get-sum".into()]),
                durable,
                ..UpstreamServer::default()
            },
        );
    }
    let queues = [
        avb_workflows::queues::WORKFLOWS,
        avb_workflows::queues::UPSTREAM,
    ];
    avb_bench::with_api_and_workers(config, client, &queues, |mcp_url| async move {
        let avb = mcp_client(&mcp_url).await;
        let direct = ()
            .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
                upstream_url.clone(),
            ))
            .await
            .expect("direct session");
        // Mounted once the first check ran; then warm every path.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let names: Vec<String> = avb
                .list_all_tools()
                .await
                .expect("tools")
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            if names.iter().any(|n| n == "durable_get-sum")
                && names.iter().any(|n| n == "fast_get-sum")
            {
                break;
            }
            assert!(Instant::now() < deadline, "not mounted: {names:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for i in 0..10 {
            timed_sum(&avb, "durable_get-sum", i).await;
            timed_sum(&avb, "fast_get-sum", i).await;
            timed_sum(&direct, "get-sum", i).await;
        }
        let rounds = f["rounds"];
        let (mut durable, mut fast, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            durable.push(timed_sum(&avb, "durable_get-sum", i).await);
            fast.push(timed_sum(&avb, "fast_get-sum", i).await);
            plain.push(timed_sum(&direct, "get-sum", i).await);
        }
        let (d50, d99) = summary(durable);
        let (f50, f99) = summary(fast);
        let (p50, p99) = summary(plain);
        println!("get-sum on server-everything (Streamable HTTP), {rounds} interleaved rounds:");
        println!("  through avb, durable path: p50 {d50:7.2} ms  p99 {d99:7.2} ms");
        println!("  through avb, fast path:    p50 {f50:7.2} ms  p99 {f99:7.2} ms");
        println!("  direct to the upstream:    p50 {p50:7.2} ms  p99 {p99:7.2} ms");
        println!(
            "  ratio durable/direct: p50 {:.1}x  p99 {:.1}x;  fast/direct: p50 {:.1}x  p99 {:.1}x",
            d50 / p50,
            d99 / p99,
            f50 / p50,
            f99 / p99
        );
        avb.cancel().await.ok();
        direct.cancel().await.ok();
    })
    .await;
    server.stop().await;
}
