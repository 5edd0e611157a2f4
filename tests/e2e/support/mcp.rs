//! MCP client helpers shared by the end-to-end tests.

use base64::Engine as _;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;

/// An MCP session over Streamable HTTP at `url`, authenticated with `token`.
pub async fn keyed_session(url: String, token: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("an authenticated MCP session")
}

/// An MCP session over Streamable HTTP at `url`, without credentials.
pub async fn session(url: String) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .expect("an MCP session")
}

/// The names `tools/list` gives.
pub async fn tool_names<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
) -> std::collections::BTreeSet<String> {
    client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

pub fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

pub async fn call<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &'static str,
    a: Value,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args(a)))
        .await
        .expect("tools/call answers")
}

pub fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The WAV of a speech result: its inline `audio/wav` block, or — for audio over the inline
/// limit — downloaded from the result's `audio_url` (tests without authentication), checked
/// against the size its `resource_link` announces.
pub async fn audio_of(r: &CallToolResult) -> Vec<u8> {
    if let Some(audio) = r.content.iter().find_map(|c| c.as_audio()) {
        assert_eq!(audio.mime_type, "audio/wav");
        return base64::engine::general_purpose::STANDARD
            .decode(&audio.data)
            .expect("base64");
    }
    let link = r
        .content
        .iter()
        .find_map(|c| c.as_resource_link())
        .filter(|l| l.mime_type.as_deref() == Some("audio/wav"))
        .unwrap_or_else(|| panic!("no audio block and no audio link: {}", text_of(r)));
    assert!(link.uri.starts_with("avb://audio/"), "{}", link.uri);
    let url = r
        .structured_content
        .as_ref()
        // A speech result has it at the top, get_job's view under `result`.
        .and_then(|s| {
            s["audio_url"]
                .as_str()
                .or(s["result"]["audio_url"].as_str())
        })
        .expect("the result's audio_url")
        .to_owned();
    let response = reqwest::get(&url).await.expect("download the audio");
    assert_eq!(response.status(), 200, "{url}");
    let wav = response.bytes().await.expect("audio").to_vec();
    assert_eq!(Some(wav.len() as u64), link.size, "the link's size");
    wav
}

/// The facts of an `isError` result (`_meta["agentvoicebox/error"]`: kind, field, message,
/// details); an error result never carries `structuredContent`, which belongs to the tool's
/// output schema.
pub fn error_of(r: &CallToolResult) -> Value {
    assert_eq!(
        r.is_error,
        Some(true),
        "not an error result: {}",
        text_of(r)
    );
    assert_eq!(
        r.structured_content, None,
        "an error result must not claim the tool's output schema"
    );
    r.meta
        .as_ref()
        .and_then(|m| m.0.get("agentvoicebox/error"))
        .cloned()
        .unwrap_or_else(|| panic!("no error facts in _meta: {:?}", r.meta))
}

/// The lifecycle of a tasks client: 2026-07-28 (`server/discover`), the revision the Tasks
/// extension belongs to; a 2025-11-25 session gets plain results even when it declares it.
pub fn tasks_era() -> rmcp::ClientLifecycleMode {
    rmcp::ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    }
}

/// The JSON-RPC message with `id` in a raw HTTP answer of an MCP endpoint: a JSON body, or the
/// `data:` lines of an event stream.
pub async fn rpc_response(response: reqwest::Response, id: &Value) -> Value {
    let sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("event-stream"));
    let body = response.text().await.expect("body");
    if !sse {
        return serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| &m["id"] == id)
        .unwrap_or_else(|| panic!("no response {id} on the stream: {body}"))
}
