//! Rate limits against the real api (keys in the store, Temporal dev server, workers): a token
//! bucket per API key and tool for MCP tool calls (direct and as tasks), one per key for REST;
//! refused calls say which limit and when to retry (MCP `isError` result with `RateLimited`,
//! REST 429 with `Retry-After`). With Redis (a real `redis-server` started here) two `avb serve`
//! processes share the buckets, and a Redis outage fails open.

use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::{args, call, error_of, text_of};
use crate::support::redis::RedisServer;
use avb_runtime::devserver::free_port;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    Implementation,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};

/// An MCP client that may declare the tasks extension.
#[derive(Clone, Default)]
struct Client {
    tasks: bool,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.tasks {
            ClientCapabilities::builder().enable_tasks().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("avb-rate-limit-tests", "1"))
    }
}

type Session = RunningService<RoleClient, Client>;

async fn session(mcp_url: &str, token: &str, tasks: bool) -> Session {
    let config = StreamableHttpClientTransportConfig::with_uri(mcp_url).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    if tasks {
        // Tasks of the Tasks extension belong to 2026-07-28 sessions.
        Client { tasks }
            .serve_with_lifecycle(transport, crate::support::mcp::tasks_era())
            .await
            .expect("an authenticated MCP session")
    } else {
        Client { tasks }
            .serve(transport)
            .await
            .expect("an authenticated MCP session")
    }
}

/// A new AGENT key of tenant `tenant` (created when missing).
async fn agent_key(system: &TestSystem, tenant: &str) -> String {
    let store = system.store.as_ref().expect("store");
    let t = match store.tenant_by_name(tenant).await.expect("lookup") {
        Some(t) => t,
        None => store.create_tenant(tenant).await.expect("tenant"),
    };
    store
        .create_key(&t.id, avb_store::Role::Agent, "rate-limit test")
        .await
        .expect("key")
        .token
}

/// Checks a refused tool call: the text names the limit and the wait, the error facts have
/// kind `RateLimited` and `retry_after_secs`.
fn assert_rate_limited(r: &CallToolResult, tool: &str, per_minute: u64, retry_after: u64) {
    assert_eq!(r.is_error, Some(true), "{tool}: {}", text_of(r));
    let text = text_of(r);
    assert!(text.starts_with("RateLimited: "), "{text}");
    assert!(
        text.contains(&format!("at most {per_minute} calls of {tool} per minute")),
        "{text}"
    );
    assert!(
        text.contains(&format!("retry after {retry_after} s")),
        "{text}"
    );
    let s = error_of(r);
    assert_eq!(s["kind"], "RateLimited", "{s}");
    assert_eq!(s["details"]["retry_after_secs"], retry_after, "{s}");
    assert_eq!(s["details"]["tool"], tool, "{s}");
    assert_eq!(s["details"]["per_minute"], per_minute, "{s}");
}

fn assert_ok(r: &CallToolResult, what: &str) {
    assert_ne!(r.is_error, Some(true), "{what}: {}", text_of(r));
}

/// `GET /api/v2/voices` with `key`: (status, Retry-After, body).
async fn get_voices(base: &str, key: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v2/voices"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /api/v2/voices");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_string());
    (status, retry_after, r.json().await.expect("json"))
}

fn assert_429(answer: &(u16, Option<String>, Value), per_minute: u64, retry_after: u64) {
    let (status, header, body) = answer;
    assert_eq!(*status, 429, "{body}");
    assert_eq!(
        header.as_deref(),
        Some(retry_after.to_string().as_str()),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["retry_after_secs"], retry_after, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("at most {per_minute} REST requests per minute")),
        "{message}"
    );
    assert!(
        message.contains(&format!("retry after {retry_after} s")),
        "{message}"
    );
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn in_process_limits_are_per_key_and_per_tool_over_mcp_and_rest() {
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.rate_limits.per_key_per_minute = 4;
        c.rate_limits.burst = 4;
        c.rate_limits.tools.insert("get_server_status".into(), 2);
        c.rate_limits.tools.insert("durable_echo".into(), 1);
        // Every task-capable call becomes a task (none answers within a shortcut).
        c.mcp.task_shortcut_ms = 0;
    })
    .await;
    let base = system.base_url.clone();
    // Two keys of the same tenant: limits count per key, not per tenant.
    let key_a = agent_key(&system, "acme").await;
    let key_b = agent_key(&system, "acme").await;

    // MCP: 2 calls a minute of get_server_status (a token every 30 s).
    let a = session(&system.mcp_url(), &key_a, false).await;
    for i in 0..2 {
        assert_ok(
            &call(&a, "get_server_status", json!({})).await,
            &format!("call {i}"),
        );
    }
    let refused = call(&a, "get_server_status", json!({})).await;
    assert_rate_limited(&refused, "get_server_status", 2, 30);
    // Another tool has its own bucket (4 a minute)…
    assert_ok(&call(&a, "list_voices", json!({})).await, "another tool");
    // …and another key its own buckets.
    let b = session(&system.mcp_url(), &key_b, false).await;
    assert_ok(
        &call(&b, "get_server_status", json!({})).await,
        "another key",
    );
    // Unknown tools are not counted (and answer as before).
    let unknown = a
        .call_tool(CallToolRequestParams::new("no_such_tool").with_arguments(args(json!({}))))
        .await;
    assert!(
        !format!("{unknown:?}").contains("RateLimited"),
        "{unknown:?}"
    );

    // Task-augmented calls take tokens too: durable_echo, once a minute.
    let tasks = session(&system.mcp_url(), &key_a, true).await;
    let echo = || {
        CallToolRequestParams::new("durable_echo").with_arguments(args(json!({"message": "hi"})))
    };
    match tasks.call_tool_once(echo()).await.expect("tools/call") {
        CallToolResponse::Task(_) => {}
        other => panic!("the first call becomes a task: {other:?}"),
    }
    match tasks.call_tool_once(echo()).await.expect("tools/call") {
        CallToolResponse::Complete(r) => assert_rate_limited(&r, "durable_echo", 1, 60),
        other => panic!("the second call is refused, not a task: {other:?}"),
    }

    // REST: 4 requests a minute per key (a token every 15 s), then 429 with Retry-After.
    for i in 0..4 {
        let (status, _, body) = get_voices(&base, &key_a).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    assert_429(&get_voices(&base, &key_a).await, 4, 15);
    let (status, _, body) = get_voices(&base, &key_b).await;
    assert_eq!(status, 200, "another key: {body}");
    // MCP traffic is not REST traffic: key A's tools still answer.
    assert_ok(
        &call(&a, "list_voices", json!({})).await,
        "MCP after REST 429",
    );

    let m = metrics(&base).await;
    assert!(
        m.contains(r#"avb_rate_limited_total{scope="get_server_status"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"avb_rate_limited_total{scope="rest"} 1"#),
        "{m}"
    );

    for s in [a, b, tasks] {
        s.cancel().await.ok();
    }
    system.stop().await;
}

/// `avb serve` on a free port with `env`; returns the child and its base URL once it answers.
async fn start_api(system: &TestSystem, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let addr = format!("127.0.0.1:{}", free_port().expect("port"));
    let child = system.spawn_avb(&["serve", "--http", &addr], env);
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::get(format!("{base}/healthz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "api on {addr} did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (child, base)
}

#[tokio::test]
async fn redis_limits_are_shared_by_two_api_processes_and_fail_open() {
    let mut redis = RedisServer::start();
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("AVB_RATE_LIMITS_PER_KEY_PER_MINUTE", "6"),
        ("AVB_RATE_LIMITS_BURST", "6"),
        ("AVB_RATE_LIMITS_TOOLS", "get_server_status=4"),
    ];
    let (_api1, base1) = start_api(&system, &env).await;
    let (_api2, base2) = start_api(&system, &env).await;
    let key_a = agent_key(&system, "shared").await;
    let key_b = agent_key(&system, "shared").await;

    // MCP: 4 calls a minute of get_server_status, spread over both processes.
    let a1 = session(&format!("{base1}/mcp"), &key_a, false).await;
    let a2 = session(&format!("{base2}/mcp"), &key_a, false).await;
    for i in 0..4 {
        let s = if i % 2 == 0 { &a1 } else { &a2 };
        assert_ok(
            &call(s, "get_server_status", json!({})).await,
            &format!("call {i}"),
        );
    }
    // The fifth is refused by whichever process gets it: the bucket is in Redis.
    assert_rate_limited(
        &call(&a1, "get_server_status", json!({})).await,
        "get_server_status",
        4,
        15,
    );
    assert_rate_limited(
        &call(&a2, "get_server_status", json!({})).await,
        "get_server_status",
        4,
        15,
    );
    // Another tool, another key: their own buckets.
    assert_ok(&call(&a2, "list_voices", json!({})).await, "another tool");
    let b1 = session(&format!("{base1}/mcp"), &key_b, false).await;
    assert_ok(
        &call(&b1, "get_server_status", json!({})).await,
        "another key",
    );

    // REST: 6 requests a minute per key over both processes, then 429 from either.
    for i in 0..6 {
        let base = if i % 2 == 0 { &base1 } else { &base2 };
        let (status, _, body) = get_voices(base, &key_a).await;
        assert_eq!(status, 200, "request {i} to {base}: {body}");
    }
    assert_429(&get_voices(&base2, &key_a).await, 6, 10);
    assert_429(&get_voices(&base1, &key_a).await, 6, 10);
    let (status, _, body) = get_voices(&base1, &key_b).await;
    assert_eq!(status, 200, "another key: {body}");

    // The buckets are Redis keys that expire.
    let keys = redis.cli(&["--scan", "--pattern", "avb:ratelimit:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert!(keys.len() >= 4, "{keys:?}");
    for k in &keys {
        let ttl: i64 = redis.cli(&["PTTL", k]).parse().expect("PTTL");
        assert!(ttl > 0 && ttl <= 61_000, "{k}: PTTL {ttl}");
    }

    // Redis goes away: calls fail open (answered, promptly), the failure is counted.
    redis.stop();
    let key_c = agent_key(&system, "shared").await;
    let c1 = session(&format!("{base1}/mcp"), &key_c, false).await;
    let started = Instant::now();
    assert_ok(
        &call(&c1, "get_server_status", json!({})).await,
        "Redis down",
    );
    let (status, _, body) = get_voices(&base1, &key_c).await;
    assert_eq!(status, 200, "REST with Redis down: {body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fail-open took {:?}",
        started.elapsed()
    );
    let m = metrics(&base1).await;
    assert!(
        m.lines().any(|l| {
            l.starts_with(r#"avb_rate_limit_backend_errors_total{backend="redis"}"#)
                && !l.ends_with(" 0")
        }),
        "{m}"
    );

    for s in [a1, a2, b1, c1] {
        s.cancel().await.ok();
    }
    system.stop().await;
}
