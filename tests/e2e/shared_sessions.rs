//! MCP sessions that move between api replicas through Redis: two `avb serve` processes share
//! a Redis server; a 2025-11-25 Streamable HTTP session opened on one continues on the other
//! and after its replica is killed and started again, stays its opener's on every replica,
//! and once closed (DELETE) is closed everywhere. A legacy SSE POST that reaches the wrong
//! replica is told that affinity is needed.

use std::time::Duration;

use crate::support::TestSystem;
use crate::support::mcp::rpc_response;
use avb_testkit::redis::RedisServer;
use avb_testkit::system::wait_until_ok;
use serde_json::{Value, json};

const PROTOCOL: &str = "2025-11-25";

/// An `avb serve` replica on its own port, sharing the system's Temporal, database and Redis.
struct Replica {
    child: tokio::process::Child,
    base: String,
}

async fn start_replica(system: &TestSystem, redis_url: &str, port: u16) -> Replica {
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let child = system.spawn_avb(
        &["serve", "--http", &addr],
        &[("REDIS_URL", redis_url), ("AVB_PUBLIC_URL", &base)],
    );
    let healthz = format!("{base}/healthz");
    wait_until_ok(&healthz, "a replica", Duration::from_secs(60)).await;
    Replica { child, base }
}

/// One JSON-RPC POST to `base`/mcp with `token` and, when given, the session id.
async fn post(base: &str, token: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL)
        .json(&body);
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    request.send().await.expect("POST /mcp")
}

/// Opens a session on `base`: initialize, then the initialized notification.
async fn open_session(base: &str, token: &str) -> String {
    let init = post(
        base,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "replica-hopper", "version": "1"}
        }}),
    )
    .await;
    assert_eq!(init.status(), 200);
    let id = init.headers()["mcp-session-id"]
        .to_str()
        .expect("session id")
        .to_string();
    let answer = rpc_response(init, &json!(1)).await;
    assert_eq!(answer["result"]["protocolVersion"], PROTOCOL, "{answer}");
    let initialized = post(
        base,
        token,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status(), 202);
    id
}

/// `durable_echo` of `message` on the session `id` through `base`: the echoed text, or the
/// HTTP status when the request was refused.
async fn echo(base: &str, token: &str, id: &str, n: u64, message: &str) -> Result<String, u16> {
    let response = post(
        base,
        token,
        Some(id),
        json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "durable_echo", "arguments": {"message": message}
        }}),
    )
    .await;
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let answer = rpc_response(response, &json!(n)).await;
    let result = &answer["result"];
    assert_ne!(result["isError"], true, "{answer}");
    Ok(result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {answer}"))
        .to_string())
}

async fn keys(system: &TestSystem) -> (String, String) {
    let store = system.store.as_ref().expect("store");
    let mut tokens = Vec::new();
    for tenant in ["home", "other"] {
        let t = store.create_tenant(tenant).await.expect("tenant");
        store
            .grant(&t.id, 1_000, &format!("{tenant}-grant"), "test")
            .await
            .expect("grant");
        let key = store
            .create_key(&t.id, avb_store::Role::Agent, "assistant")
            .await
            .expect("key");
        tokens.push(key.token);
    }
    (tokens[0].clone(), tokens[1].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_moves_between_replicas_and_survives_its_replica() {
    let redis = RedisServer::start();
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let (home, other) = keys(&system).await;
    let (port_a, port_b) = (avb_testkit::free_port(), avb_testkit::free_port());
    let mut a = start_replica(&system, &redis.url(), port_a).await;
    let b = start_replica(&system, &redis.url(), port_b).await;

    let id = open_session(&a.base, &home).await;
    assert!(
        echo(&a.base, &home, &id, 2, "on a")
            .await
            .expect("a")
            .contains("on a")
    );
    // The same session on the other replica (before: 404 Session not found).
    assert!(
        echo(&b.base, &home, &id, 3, "on b")
            .await
            .expect("b")
            .contains("on b")
    );
    // Another tenant's key with the session id: not found, on either replica.
    assert_eq!(echo(&b.base, &other, &id, 4, "x").await, Err(404));
    assert_eq!(echo(&a.base, &other, &id, 5, "x").await, Err(404));

    // Replica a dies (SIGKILL) and starts again: the session continues on it.
    a.child.start_kill().expect("kill -9 replica a");
    a.child.wait().await.expect("reaped");
    let a = start_replica(&system, &redis.url(), port_a).await;
    assert!(
        echo(&a.base, &home, &id, 6, "after restart")
            .await
            .expect("restarted a")
            .contains("after restart")
    );

    // The client ends the session on b: a, which restored it, stops serving it too.
    let deleted = reqwest::Client::new()
        .delete(format!("{}/mcp", b.base))
        .bearer_auth(&home)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .expect("DELETE");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(echo(&a.base, &home, &id, 7, "x").await, Err(404));
    assert_eq!(echo(&b.base, &home, &id, 8, "x").await, Err(404));
    // Nothing of the session id is stored in the clear.
    let stored = redis.cli(&["KEYS", "avb:mcp:session:*"]);
    assert!(!stored.contains(&id), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_legacy_sse_post_to_the_wrong_replica_says_affinity_is_needed() {
    let redis = RedisServer::start();
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let (home, other) = keys(&system).await;
    let a = start_replica(&system, &redis.url(), avb_testkit::free_port()).await;
    let b = start_replica(&system, &redis.url(), avb_testkit::free_port()).await;

    let stream = reqwest::Client::new()
        .get(format!("{}/api/v2/mcp/sse", a.base))
        .bearer_auth(&home)
        .send()
        .await
        .expect("open the SSE stream");
    assert_eq!(stream.status(), 200);
    let mut stream = stream.bytes_stream();
    let mut head = String::new();
    while !head.contains("sessionId=") || !head.contains("\n\n") {
        use futures::StreamExt as _;
        let chunk = stream.next().await.expect("endpoint event").expect("bytes");
        head.push_str(&String::from_utf8_lossy(&chunk));
    }
    let endpoint = head
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("endpoint")
        .trim()
        .to_string();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let send = |base: String, token: String| {
        let (endpoint, ping) = (endpoint.clone(), ping.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}{endpoint}"))
                .bearer_auth(token)
                .json(&ping)
                .send()
                .await
                .expect("POST")
        }
    };
    let wrong = send(b.base.clone(), home.clone()).await;
    assert_eq!(wrong.status(), 421);
    let why = wrong.text().await.expect("body");
    assert!(why.contains("session affinity"), "{why}");
    // Another tenant learns nothing: not found.
    assert_eq!(send(b.base.clone(), other.clone()).await.status(), 404);
    // The replica holding the stream takes it.
    assert_eq!(send(a.base.clone(), home.clone()).await.status(), 202);
}
