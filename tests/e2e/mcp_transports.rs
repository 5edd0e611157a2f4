//! `generate_speech` and friends over all three MCP transports, with rmcp's client, against the
//! real Temporal dev server, workers and Kokoro model.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::mcp::{audio_of, call, text_of};
use crate::support::sse_client;
use crate::support::{TestSystem, wav_facts};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct ProgressCounter(Arc<AtomicUsize>);

impl ClientHandler for ProgressCounter {
    async fn on_progress(
        &self,
        _p: ProgressNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("avb-tests", "1"),
        )
    }
}

/// The checks every transport must pass; returns the WAV duration.
async fn exercise(
    system: &TestSystem,
    client: &RunningService<RoleClient, ProgressCounter>,
) -> f64 {
    let info = client.peer_info().expect("initialized");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("AgentVoiceBox")
    );
    // The conformance fixtures are compiled into test builds but off by config: the server is
    // the production one (no prompts, logging or completions; exactly the ten tools below).
    let caps = &info.capabilities;
    assert!(
        caps.prompts.is_none() && caps.logging.is_none() && caps.completions.is_none(),
        "{caps:?}"
    );
    let tools: BTreeSet<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let expected = [
        "approve_job",
        "batch_execute",
        "call_service",
        "cancel_job",
        "create_mcp_server",
        "delete_mcp_server",
        "durable_echo",
        "generate_speech",
        "get_balance",
        "get_device_state",
        "get_job",
        "get_mcp_server",
        "get_server_status",
        "get_usage",
        "grant_credits",
        "list_devices",
        "list_jobs",
        "list_mcp_servers",
        "list_voices",
        "reject_job",
        "search_tools",
        "smart_home_control",
    ];
    assert_eq!(
        tools,
        expected
            .iter()
            .map(|s| (*s).to_string())
            .collect::<BTreeSet<_>>()
    );
    let echo = call(client, "durable_echo", json!({"message": "ping"})).await;
    let echoed = echo
        .structured_content
        .as_ref()
        .map(|v| v["message"].clone());
    assert_eq!(echoed, Some(json!("ping")), "{}", text_of(&echo));

    let status = call(client, "get_server_status", json!({})).await;
    assert!(
        text_of(&status).contains("AgentVoiceBox Platform is ONLINE"),
        "{}",
        text_of(&status)
    );

    let voices = call(client, "list_voices", json!({})).await;
    let list = voices.structured_content.expect("structured voices");
    assert_eq!(list["voices"].as_array().map(Vec::len), Some(54));

    // Billing with authentication off: the local tenant's account, created on first use.
    let balance = call(client, "get_balance", json!({})).await;
    assert_ne!(balance.is_error, Some(true), "{}", text_of(&balance));
    let b = balance.structured_content.expect("structured balance");
    assert_eq!(b["tenant"], "local", "{b}");
    assert!(b["available"].is_i64() && b["held"].is_i64(), "{b}");

    let r = call(
        client,
        "generate_speech",
        json!({"text": "Durable speech, delivered exactly once."}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let wav = audio_of(&r).await;
    let (rate, channels, secs) = wav_facts(&wav);
    assert_eq!((rate, channels), (24_000, 1));
    assert!(
        (1.0..6.0).contains(&secs),
        "{secs:.2}s for a 6-word sentence"
    );
    let out = r.structured_content.expect("structured output");
    assert_eq!(out["status"], "completed");
    let job_id = out["job_id"].as_str().expect("job id");
    assert!(job_id.starts_with("job_") && job_id.len() > 30, "{job_id}");
    // The link downloads the very same bytes.
    let url = out["audio_url"].as_str().expect("audio url");
    assert_eq!(url, format!("{}/api/v2/audio/{job_id}", system.base_url));
    let downloaded = reqwest::get(url)
        .await
        .expect("GET audio")
        .bytes()
        .await
        .expect("body");
    assert_eq!(downloaded.as_ref(), wav.as_slice());
    secs
}

#[tokio::test]
async fn streamable_http_generates_speech_with_progress() {
    let system = TestSystem::start().await;
    let progress = ProgressCounter::default();
    let client = progress
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
        .await
        .expect("connect");
    exercise(&system, &client).await;
    // A multi-chunk text reports progress while the workflow runs.
    let before = progress.0.load(Ordering::SeqCst);
    let text = "Agents call tools. Each call becomes a workflow, and the workflow survives crashes. \
        Progress flows back to the caller while the speech is synthesized, chunk after chunk, \
        until the whole text has been spoken and stored as audio.";
    let r = call(
        &client,
        "generate_speech",
        json!({"text": text, "voice_id": "bm_george", "speed": 1.2}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(
        progress.0.load(Ordering::SeqCst) > before,
        "no progress notification during a multi-chunk job"
    );
    // Operations endpoints reflect what just happened.
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/readyz", system.base_url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = ready.json().await.expect("readyz json");
    let names: Vec<_> = ready["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter(|c| c["healthy"] == true)
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["temporal", "artifact_store", "database"], "{ready}");
    let metrics = http
        .get(format!("{}/metrics", system.base_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains(r#"avb_tool_calls_total{outcome="ok",tool="generate_speech"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"avb_job_outcomes_total{status="completed",tool="generate_speech"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("avb_tool_call_seconds_bucket"),
        "latency histogram missing"
    );
    let job_id = r
        .structured_content
        .as_ref()
        .and_then(|v| v["job_id"].as_str())
        .expect("job id")
        .to_string();
    let job: Value = http
        .get(format!("{}/api/v2/jobs/{job_id}", system.base_url))
        .send()
        .await
        .expect("job")
        .json()
        .await
        .expect("json");
    assert_eq!(job["status"], "completed");
    assert_eq!(job["result"]["voice_id"], "bm_george");
    let missing = http
        .get(format!("{}/api/v2/jobs/job_doesnotexist", system.base_url))
        .send()
        .await
        .expect("job");
    assert_eq!(missing.status().as_u16(), 404);
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn stdio_generates_speech() {
    let system = TestSystem::start().await;
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_avb")).configure(|c| {
        c.args(["mcp", "--transport", "stdio"]);
        for (k, v) in system.child_env() {
            c.env(k, v);
        }
    });
    let client = ProgressCounter::default()
        .serve(TokioChildProcess::new(cmd).expect("spawn avb"))
        .await
        .expect("connect");
    exercise(&system, &client).await;
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn legacy_sse_generates_speech() {
    let system = TestSystem::start().await;
    let transport = sse_client::connect(&system.sse_url()).await;
    let client = ProgressCounter::default()
        .serve(transport)
        .await
        .expect("connect");
    exercise(&system, &client).await;
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_starts_nothing() {
    let system = TestSystem::start().await;
    let client = ProgressCounter::default()
        .serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
        .await
        .expect("connect");
    let cases = [
        (json!({}), "text"),
        (json!({"text": 42}), "invalid type"),
        (json!({"text": "hi", "speed": "fast"}), "invalid type"),
        (json!({"text": "hi", "voice_id": "af_hart"}), "voice_id"),
        (json!({"text": "a".repeat(20_001)}), "text"),
        (json!({"text": "hi", "speed": 3.0}), "speed"),
        (json!({"text": "   "}), "text"),
    ];
    for (a, needle) in cases {
        let r = call(&client, "generate_speech", a.clone()).await;
        assert_eq!(r.is_error, Some(true), "{a} must be rejected");
        let t = text_of(&r);
        assert!(
            t.contains(needle),
            "error for {a} should mention '{needle}': {t}"
        );
    }
    let r = call(
        &client,
        "generate_speech",
        json!({"text": "hi", "voice_id": "af_hart"}),
    )
    .await;
    assert!(
        text_of(&r).contains("af_heart"),
        "nearest voice suggested: {}",
        text_of(&r)
    );
    let r = call(
        &client,
        "generate_speech",
        json!({"text": "a".repeat(20_001)}),
    )
    .await;
    assert!(
        text_of(&r).contains("20000"),
        "bound named: {}",
        text_of(&r)
    );
    // Visibility on the dev server is immediate; give it a moment anyway.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        system.speech_workflow_count().await,
        0,
        "bad input must not start a workflow"
    );
    client.cancel().await.ok();
    system.stop().await;
}

/// DNS rebinding: a page on a foreign site (its `Origin`), or a request under a foreign `Host`,
/// is refused with 403 on every MCP route, legacy SSE included, and on REST, before
/// authentication; a page on localhost reaches authentication; health stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_and_hosts_are_refused_on_every_mcp_route() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let http = reqwest::Client::new();
    let base = &system.base_url;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "browser", "version": "1"}}});
    let evil = "https://evil.example";
    let refused = [
        http.post(system.mcp_url())
            .header("origin", evil)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize),
        http.get(system.sse_url()).header("origin", evil),
        http.post(format!("{base}/api/v2/mcp/messages?sessionId=x"))
            .header("origin", evil)
            .json(&initialize),
        http.get(system.sse_url()).header("host", "evil.example"),
        http.get(format!("{base}/api/v2/jobs"))
            .header("origin", evil),
    ];
    for request in refused {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
        let body: serde_json::Value = response.json().await.expect("json error");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("evil.example"), "{body}");
    }
    let local_page = http
        .post(system.mcp_url())
        .header("origin", "http://localhost:6274")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .expect("send");
    assert_eq!(
        local_page.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "a localhost page reaches authentication"
    );
    let health = http
        .get(format!("{base}/healthz"))
        .header("origin", evil)
        .send()
        .await
        .expect("send");
    assert!(health.status().is_success(), "not an MCP route");
    system.stop().await;
}
