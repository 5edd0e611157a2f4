//! API keys and tenant isolation against the real api, store (SQLite), Temporal dev server and
//! workers: no key → 401 with `WWW-Authenticate`; tenant B cannot get, list, cancel, read,
//! follow or fetch the audio of tenant A's job — it is "not found", never "forbidden"; an MCP
//! session (Streamable HTTP, legacy SSE, stdio) stays with the tenant whose key opened it.

use crate::support::TestSystem;
use crate::support::mcp::{call, keyed_session, text_of};
use rmcp::model::ReadResourceRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

async fn session(system: &TestSystem, token: &str) -> RunningService<RoleClient, ()> {
    keyed_session(system.mcp_url(), token).await
}

async fn tenant_with_agent_key(system: &TestSystem, name: &str) -> String {
    let store = system
        .store
        .as_ref()
        .expect("auth on: the system has a store");
    let tenant = store.create_tenant(name).await.expect("tenant");
    store
        .create_key(&tenant.id, avb_store::Role::Agent, "test")
        .await
        .expect("key")
        .token
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `GET /api/v2/jobs` with `key`.
async fn list_jobs_as(base: &str, key: &str) -> Value {
    http()
        .get(format!("{base}/api/v2/jobs"))
        .bearer_auth(key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn keys_are_required_and_tenants_see_only_their_jobs() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let base = system.base_url.clone();

    // No key, a malformed key, a wrong key: 401 with a Bearer challenge, on REST and MCP alike.
    for (token, invalid) in [
        (None, false),
        (Some("nonsense"), true),
        (Some("avb_abcdefgh_wrong"), true),
    ] {
        let mut req = http().get(format!("{base}/api/v2/jobs"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 401, "token {token:?}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"agentvoicebox\""),
            "{challenge}"
        );
        assert_eq!(challenge.contains("invalid_token"), invalid, "{challenge}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    let r = http()
        .post(system.mcp_url())
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "anon", "version": "1"}}}),
        )
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(r.status().as_u16(), 401, "MCP without a key");
    // The refusal names the MCP endpoint's Protected Resource Metadata (RFC 9728), public.
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{challenge}"
    );
    let metadata: Value = http()
        .get(&metadata_url)
        .send()
        .await
        .expect("GET metadata")
        .json()
        .await
        .expect("metadata JSON");
    assert_eq!(metadata["resource"], json!(system.mcp_url()), "{metadata}");
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert!(
        metadata.get("authorization_servers").is_none(),
        "API keys only: no issuer to name: {metadata}"
    );
    // Probes stay open.
    let r = http()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);

    let key_a = tenant_with_agent_key(&system, "tenant-a").await;
    let key_b = tenant_with_agent_key(&system, "tenant-b").await;

    // A runs a durable job.
    let a = session(&system, &key_a).await;
    let r = call(&a, "durable_echo", json!({"message": "only for A"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let page = list_jobs_as(&base, &key_a).await;
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{page}");
    let id = jobs[0]["job_id"].as_str().expect("job id").to_string();
    let r = http()
        .get(format!("{base}/api/v2/jobs/{id}"))
        .bearer_auth(&key_a)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200, "A sees its job");

    // B sees nothing of it, over REST…
    let page = list_jobs_as(&base, &key_b).await;
    assert_eq!(page["jobs"], json!([]), "B's list is empty: {page}");
    for (method, path) in [
        ("GET", format!("/api/v2/jobs/{id}")),
        ("POST", format!("/api/v2/jobs/{id}/cancel")),
        ("GET", format!("/api/v2/jobs/{id}/events")),
        ("GET", format!("/api/v2/audio/{id}")),
    ] {
        let url = format!("{base}{path}");
        let req = match method {
            "GET" => http().get(&url),
            _ => http().post(&url),
        };
        let r = req.bearer_auth(&key_b).send().await.expect("request");
        assert_eq!(r.status().as_u16(), 404, "{method} {path} for B");
    }

    // …and over MCP: tools, resource, task.
    let b = session(&system, &key_b).await;
    for tool in ["get_job", "cancel_job"] {
        let r = call(&b, tool, json!({"job_id": id})).await;
        assert_eq!(r.is_error, Some(true), "{tool} for B");
        assert!(text_of(&r).contains("not found"), "{tool}: {}", text_of(&r));
    }
    let r = call(&b, "list_jobs", json!({})).await;
    let listed = r.structured_content.clone().unwrap_or_default();
    assert_eq!(listed["jobs"], json!([]), "B's list_jobs: {listed}");
    for uri in [format!("avb://jobs/{id}"), format!("avb://audio/{id}")] {
        let read = b
            .peer()
            .read_resource(ReadResourceRequestParams::new(uri.clone()))
            .await;
        let error = format!("{read:?}");
        assert!(
            read.is_err() && error.contains("not found"),
            "B cannot read A's {uri}: {error}"
        );
    }
    let task = b
        .peer()
        .get_task(rmcp::model::GetTaskParams::new(id.clone()))
        .await;
    assert!(task.is_err(), "B cannot see A's job as a task: {task:?}");

    // A still can.
    let r = call(&a, "get_job", json!({"job_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));

    a.cancel().await.ok();
    b.cancel().await.ok();
    system.stop().await;
}

/// The text of a (possibly SSE-framed) HTTP response body.
async fn body_text(r: reqwest::Response) -> String {
    r.text().await.expect("body")
}

/// `POST /mcp` of one JSON-RPC message with `key` (and the session id, once there is one).
async fn mcp_post(
    system: &TestSystem,
    key: &str,
    session: Option<&str>,
    message: Value,
) -> reqwest::Response {
    let mut req = http()
        .post(system.mcp_url())
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&message);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.expect("POST /mcp")
}

fn get_balance_request(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "get_balance", "arguments": {}}})
}

/// An MCP session belongs to the tenant whose key opened it: on Streamable HTTP a request with
/// another tenant's key is refused, on legacy SSE another tenant cannot post into the session,
/// and `avb mcp` (stdio) acts for the key in `AVB_API_KEY` and refuses to start without one.
#[tokio::test]
async fn an_mcp_session_stays_with_the_tenant_that_opened_it() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let key_a = tenant_with_agent_key(&system, "tenant-a").await;
    let key_b = tenant_with_agent_key(&system, "tenant-b").await;

    // Streamable HTTP: A opens a session; B's key on it is refused, A's works.
    let r = mcp_post(
        &system,
        &key_a,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "a", "version": "1"}}}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let sid = r.headers()["mcp-session-id"]
        .to_str()
        .expect("session id")
        .to_string();
    body_text(r).await;
    let r = mcp_post(
        &system,
        &key_a,
        Some(&sid),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    // Another key's session does not exist for it: 404, as an unknown session id.
    let r = mcp_post(&system, &key_b, Some(&sid), get_balance_request(2)).await;
    assert_eq!(r.status().as_u16(), 404, "B on A's session");
    let refused = body_text(r).await;
    assert!(
        refused.contains("Session not found"),
        "B on A's session: {refused}"
    );
    assert!(
        !refused.contains("tenant-a"),
        "nothing of A leaks: {refused}"
    );
    let served =
        body_text(mcp_post(&system, &key_a, Some(&sid), get_balance_request(3)).await).await;
    assert!(
        served.contains("tenant-a") && !served.contains("another tenant"),
        "A on its own session: {served}"
    );

    // Legacy SSE: A opens the stream; B cannot post into A's session (404), A can (202).
    let stream = http()
        .get(system.sse_url())
        .bearer_auth(&key_a)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET sse");
    assert_eq!(stream.status().as_u16(), 200);
    let mut body = stream.bytes_stream();
    let mut buf = String::new();
    let endpoint = loop {
        use futures::StreamExt;
        let chunk = body.next().await.expect("stream open").expect("chunk");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = buf
            .lines()
            .find_map(|l| l.strip_prefix("data:").map(str::trim))
            .filter(|l| l.contains("sessionId"))
        {
            break line.to_string();
        }
    };
    let post_url = format!("{}{endpoint}", system.base_url);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "b", "version": "1"}}});
    let r = http()
        .post(&post_url)
        .bearer_auth(&key_b)
        .json(&init)
        .send()
        .await
        .expect("POST as B");
    assert_eq!(r.status().as_u16(), 404, "B posting into A's SSE session");
    let r = http()
        .post(&post_url)
        .bearer_auth(&key_a)
        .json(&init)
        .send()
        .await
        .expect("POST as A");
    assert_eq!(r.status().as_u16(), 202, "A posting into its own session");
    drop(body);

    // stdio: without AVB_API_KEY, on a folder without local keys, `avb mcp` refuses to start
    // and says why…
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_avb"))
        .args(["mcp", "--transport", "stdio"])
        .envs(system.child_env())
        .env_remove("AVB_API_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run avb mcp");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AVB_API_KEY is not set") && stderr.contains("dev-keys.json"),
        "{stderr}"
    );
    // …and with B's key it acts for tenant B.
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_avb")).configure(|c| {
        c.args(["mcp", "--transport", "stdio"])
            .envs(system.child_env())
            .env("AVB_API_KEY", &key_b);
    });
    let stdio =
        ().serve(TokioChildProcess::new(cmd).expect("spawn avb mcp"))
            .await
            .expect("stdio session");
    let r = call(&stdio, "get_balance", json!({})).await;
    assert_eq!(
        r.structured_content.clone().unwrap_or_default()["tenant"],
        "tenant-b",
        "{}",
        text_of(&r)
    );
    stdio.cancel().await.ok();
    system.stop().await;
}

/// One HTTP/1.1 response read off `conn`: its status line and headers, lower-cased, and body.
async fn read_response(conn: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("length"));
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (head, buf[head_end..head_end + length].to_vec())
}

/// A refused request whose body arrives after its headers (as clients that write them
/// separately send it on a busy machine) leaves its connection usable: OAuth clients send their
/// signed-in retry on the connection that carried the 401.
#[tokio::test]
async fn a_refused_request_leaves_its_connection_usable_for_the_retry() {
    use tokio::io::AsyncWriteExt as _;
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let mut conn = tokio::net::TcpStream::connect(system.config.http)
        .await
        .expect("connect");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n",
        system.config.http,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("headers");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    conn.write_all(body.as_bytes()).await.expect("body");
    let (head, body) = read_response(&mut conn).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("unauthorized"),
        "{body:?}"
    );
    assert!(!head.contains("connection: close"), "{head}");
    // The retry, on the same connection.
    let retry = format!(
        "GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n",
        system.config.http
    );
    conn.write_all(retry.as_bytes()).await.expect("retry");
    let (head, body) = read_response(&mut conn).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"ok");
    system.stop().await;
}
