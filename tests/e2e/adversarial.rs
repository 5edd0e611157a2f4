//! What an outside security review found, one test per finding: each failed before its fix.
//! (More findings are open; the README's security notes say what holds today.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestSystem;
use crate::support::upstreams::everything_js;

/// A stdio upstream runs with a cleared environment: PATH and its configured `env`, never the
/// api's secrets (here `AVB_API_KEY`), which any tenant could read through the upstream's own
/// tools (server-everything's `get-env`). The api is a child process, so the secret is really
/// in its environment; the upstream is on the fast path, so that process starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_upstream_never_sees_the_apis_environment() {
    let system = TestSystem::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("avb.toml");
    std::fs::write(
        &config,
        format!(
            "[mcp_servers.everything]\ncommand = \"node\"\nargs = [{js:?}, \"stdio\"]\n\
             durable = false\nallowed_tools = [\"get-env\"]\n\
             [mcp_servers.everything.env]\nUPSTREAM_SETTING = \"configured-for-it\"\n",
            js = everything_js()
        ),
    )
    .expect("write config");
    let addr = format!("127.0.0.1:{}", avb_testkit::free_port());
    let config_path = config.display().to_string();
    let _api = system.spawn_avb(
        &["serve", "--http", &addr],
        &[
            ("AVB_CONFIG", config_path.as_str()),
            ("AVB_UPSTREAM_CHECK_SECS", "1"),
            ("AVB_API_KEY", "secret-probe-never-shown"),
        ],
    );
    let mcp = format!("http://{addr}/mcp");
    let http = reqwest::Client::new();
    let call = |name: &'static str| {
        let http = http.clone();
        let mcp = mcp.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": name, "arguments": {}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}});
            let response = http
                .post(&mcp)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", name)
                .json(&body)
                .send()
                .await
                .ok()?;
            Some(crate::support::mcp::rpc_response(response, &json!(1)).await)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer: Value = loop {
        if let Some(a) = call("everything_get-env").await
            && a["result"]["content"][0]["text"].is_string()
        {
            break a;
        }
        assert!(Instant::now() < deadline, "the upstream never answered");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let env = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(env.contains("PATH"), "{env}");
    assert!(
        env.contains("configured-for-it"),
        "its own env reaches it: {env}"
    );
    assert!(
        !env.contains("secret-probe-never-shown"),
        "the api's secret leaked: {env}"
    );
    system.stop().await;
}
