//! Helpers shared by the benchmark examples (not an example itself: no `main.rs`).

#![allow(dead_code)]

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

/// A plain rmcp client (no tasks capability).
pub async fn mcp_client(url: &str) -> RunningService<RoleClient, ()> {
    mcp_session(url, ()).await
}

/// `tools/call` parameters for `tool` with JSON object arguments.
pub fn tool_call(tool: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().expect("object"))
}
