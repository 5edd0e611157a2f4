//! API keys and tenant isolation against the real api, store (SQLite), Temporal dev server and
//! workers: no key → 401 with `WWW-Authenticate`; tenant B cannot get, list, cancel, read,
//! follow or fetch the audio of tenant A's job — it is "not found", never "forbidden".

mod support;

use rmcp::RoleClient;
use rmcp::model::ReadResourceRequestParams;
use rmcp::service::RunningService;
use serde_json::{Value, json};
use support::TestSystem;
use support::mcp::{call, keyed_session, text_of};

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
    assert!(r.headers().contains_key("www-authenticate"));
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
    let read = b
        .peer()
        .read_resource(ReadResourceRequestParams::new(format!("avb://jobs/{id}")))
        .await;
    assert!(read.is_err(), "B cannot read A's job resource: {read:?}");
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
