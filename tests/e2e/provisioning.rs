//! Provisioned MCP servers end to end: `create_mcp_server` over MCP runs a
//! `ProvisionMcpServer` workflow whose activities start real replicas of the bundled
//! `avb-demo-mcp` (process backend), each answers MCP `tools/list`; the record and its lifecycle
//! events are there; `delete_mcp_server` removes every replica. Bad requests create nothing.

use crate::support;
use std::time::Duration;

use crate::support::TestSystem;
use crate::support::mcp::{call, text_of};
use avb_provisioning::{ContainerBackend, ListFilter, ProcessBackend, list_tool_names};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

pub(crate) fn demo_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("avb-demo-mcp");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

#[tokio::test]
async fn a_server_is_created_answers_mcp_and_is_deleted_without_leftovers() {
    demo_binary();
    let system = TestSystem::start().await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");

    let r = call(
        &client,
        "create_mcp_server",
        json!({"service_name": "notes", "template": "demo", "replicas": 2,
               "environment": {"ECHO_PREFIX": "hi: "}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let server = r.structured_content.clone().expect("structured");
    assert_eq!(server["status"], "running", "{server}");
    let id = server["server_id"].as_str().expect("id").to_owned();
    let endpoints = server["endpoints"].as_array().expect("endpoints").clone();
    assert_eq!(endpoints.len(), 2, "{server}");
    for e in &endpoints {
        let url = e["url"].as_str().expect("url");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let tools = list_tool_names(url, Duration::from_secs(10))
            .await
            .expect("replica answers tools/list");
        assert!(
            tools.contains(&"echo".to_string()) && tools.contains(&"add".to_string()),
            "{tools:?}"
        );
    }

    // The record and its audit trail, over MCP and REST.
    let r = call(&client, "get_mcp_server", json!({"server_id": id})).await;
    let got = r.structured_content.clone().expect("structured");
    let kinds: Vec<_> = got["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["mcp.server.create.requested", "mcp.server.created"]);
    let listed = support::get_json(&format!("{}/api/v2/mcp-servers", system.base_url)).await;
    assert_eq!(listed["servers"][0]["server_id"], id.as_str(), "{listed}");

    // A second server of the same name is refused.
    let r = call(
        &client,
        "create_mcp_server",
        json!({"service_name": "notes", "template": "demo"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("already have a server named"),
        "{}",
        text_of(&r)
    );

    let r = call(&client, "delete_mcp_server", json!({"server_id": id})).await;
    let deleted = r.structured_content.clone().expect("structured");
    assert_eq!(deleted["status"], "deleted", "{deleted}");
    for e in &endpoints {
        let url = e["url"].as_str().expect("url");
        assert!(
            list_tool_names(url, Duration::from_millis(500))
                .await
                .is_err(),
            "{url} still answers after delete"
        );
    }
    let leftovers = ProcessBackend::new()
        .list_managed(&ListFilter::server(id.clone()))
        .await
        .expect("list processes");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let events = support::get_json(&format!(
        "{}/api/v2/mcp-servers/{id}/events",
        system.base_url
    ))
    .await;
    let kinds: Vec<_> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "mcp.server.create.requested",
            "mcp.server.created",
            "mcp.server.delete.requested",
            "mcp.server.deleted"
        ]
    );
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn bad_requests_name_the_problem_and_create_nothing() {
    let system = TestSystem::start_with(|c| c.provisioning.quota_per_tenant = 0).await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    let long = "x".repeat(avb_api::servers::MAX_ENV_VALUE_BYTES + 1);
    let cases: [(Value, &str); 7] = [
        (
            json!({"service_name": "Bad Name", "template": "demo"}),
            "service_name: \"Bad Name\" is not a valid name",
        ),
        (
            json!({"service_name": "ok", "template": "nope"}),
            "template: unknown template \"nope\"; known templates: demo",
        ),
        (
            json!({"service_name": "ok", "template": "demo", "environment": {"SECRET": "x"}}),
            "environment: key \"SECRET\" is not allowed by template \"demo\"",
        ),
        (
            json!({"service_name": "ok", "template": "demo", "environment": {"ECHO_PREFIX": "a\u{0}b"}}),
            "environment: the value of \"ECHO_PREFIX\" contains a NUL byte",
        ),
        (
            json!({"service_name": "ok", "template": "demo", "environment": {"ECHO_PREFIX": long}}),
            "environment: the value of \"ECHO_PREFIX\" is 8193 bytes; at most 8192",
        ),
        (
            json!({"service_name": "ok", "template": "demo", "replicas": 99}),
            "replicas: 99 is out of range; use 1 to 5",
        ),
        (
            json!({"service_name": "ok", "template": "demo"}),
            "its quota is 0",
        ),
    ];
    for (args, needle) in cases {
        let r = call(&client, "create_mcp_server", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(text_of(&r).contains(needle), "{args}: {}", text_of(&r));
    }
    let listed = support::get_json(&format!("{}/api/v2/mcp-servers", system.base_url)).await;
    assert_eq!(listed["servers"], json!([]), "nothing recorded: {listed}");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/mcp-servers", system.base_url))
        .json(&json!({"service_name": "ok", "template": "nope"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn lifecycle_events_reach_the_redis_stream_and_the_mcp_resource() {
    demo_binary();
    let redis = support::redis::RedisServer::start();
    let url = redis.url();
    let system = TestSystem::start_with(|c| c.redis.url = Some(url)).await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    let r = call(
        &client,
        "create_mcp_server",
        json!({"service_name": "streamed", "template": "demo"}),
    )
    .await;
    let server = r.structured_content.clone().expect("structured");
    assert_eq!(server["status"], "running", "{server}");
    let id = server["server_id"].as_str().expect("id").to_owned();
    let r = call(&client, "delete_mcp_server", json!({"server_id": id})).await;
    assert_eq!(
        r.structured_content.expect("structured")["status"],
        "deleted"
    );

    // The stream has the four events of this server, in order, with the tenant and a key.
    let entries = redis.cli(&["XRANGE", "avb:events:mcp-servers", "-", "+"]);
    let kinds: Vec<&str> = entries
        .lines()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "kind")
        .map(|w| w[1])
        .collect();
    assert_eq!(
        kinds,
        [
            "mcp.server.create.requested",
            "mcp.server.created",
            "mcp.server.delete.requested",
            "mcp.server.deleted"
        ],
        "{entries}"
    );
    assert!(
        entries.contains(&id) && entries.contains("local"),
        "{entries}"
    );

    // The audit trail as an MCP resource.
    let templates = client
        .list_resource_templates(None)
        .await
        .expect("resources/templates/list");
    assert!(
        templates
            .resource_templates
            .iter()
            .any(|t| t.uri_template == "avb://mcp-servers/{server_id}"),
        "{templates:?}"
    );
    let uri = format!("avb://mcp-servers/{id}");
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
        .await
        .expect("resources/read");
    let text = match &read.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("not text: {other:?}"),
    };
    let view: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(view["status"], "deleted");
    assert_eq!(view["events"].as_array().map(Vec::len), Some(4), "{view}");
    let missing = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "avb://mcp-servers/srv_00000000000000000000000000000000",
        ))
        .await;
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not found")),
        "{missing:?}"
    );
    client.cancel().await.ok();
    system.stop().await;
}

/// The local tenant's available credits.
async fn available(system: &TestSystem) -> i64 {
    let tenant = system.tenant_id("local").await;
    system
        .store()
        .balance(&tenant)
        .await
        .expect("balance")
        .available
}

#[tokio::test]
async fn container_minutes_are_prepaid_and_unused_minutes_refunded_on_delete() {
    demo_binary();
    // Blocks of 2 minutes at the default tariff (1 credit per container-minute).
    let system = TestSystem::start_with(|c| c.provisioning.billing_block_secs = 120).await;
    let before = available(&system).await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    let r = call(
        &client,
        "create_mcp_server",
        json!({"service_name": "metered", "template": "demo", "replicas": 2}),
    )
    .await;
    let server = r.structured_content.clone().expect("structured");
    assert_eq!(server["status"], "running", "{server}");
    let id = server["server_id"].as_str().expect("id").to_owned();
    assert_eq!(
        available(&system).await,
        before - 4,
        "block 0 prepaid: 2 replicas x 2 minutes"
    );
    let tenant = system.tenant_id("local").await;
    let usage = system.store().usage(&tenant, 10).await.expect("usage");
    assert_eq!(usage[0].job_id, id);
    assert_eq!(
        (
            usage[0].tool.as_str(),
            usage[0].unit.as_str(),
            usage[0].quantity,
            usage[0].credits
        ),
        ("create_mcp_server", "container-minute", 4, 4)
    );

    // Deleted within its first minute: the second minute of both replicas comes back.
    let r = call(&client, "delete_mcp_server", json!({"server_id": id})).await;
    assert_eq!(
        r.structured_content.expect("structured")["status"],
        "deleted"
    );
    assert_eq!(
        available(&system).await,
        before - 2,
        "1 unused minute x 2 refunded"
    );
    let refund = system
        .store()
        .entry_by_key(&format!("{id}/refund"))
        .await
        .expect("ledger")
        .expect("a refund entry");
    assert_eq!(refund.amount, 2);
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn reconciliation_prepays_started_blocks_once_and_deletes_servers_nobody_can_pay_for() {
    demo_binary();
    // Blocks of 2 s, each billed as 1 container-minute (whole minutes, rounded up).
    let system = TestSystem::start_with(|c| c.provisioning.billing_block_secs = 2).await;
    let before = available(&system).await;
    let (status, server) = {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/mcp-servers", system.base_url))
            .json(&json!({"service_name": "ticking", "template": "demo"}))
            .send()
            .await
            .expect("POST");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!(
        (status, &server["status"]),
        (200, &json!("running")),
        "{server}"
    );
    let id = server["server_id"].as_str().expect("id").to_owned();
    assert_eq!(available(&system).await, before - 1);

    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let report = system.reconcile_now().await;
    assert!(
        report.paid_blocks >= 2,
        "blocks 1 and 2 started: {report:?}"
    );
    let paid = i64::from(report.paid_blocks);
    assert_eq!(available(&system).await, before - 1 - paid);
    let again = system.reconcile_now().await;
    assert!(
        again.paid_blocks <= 1,
        "only a block that started since is paid: {again:?}"
    );
    let spent = before - available(&system).await;

    // Out of credits (the rest held elsewhere): a new server is refused before anything runs,
    // the running one is deleted at its next block.
    let tenant = system.tenant_id("local").await;
    let rest = available(&system).await;
    system
        .store()
        .hold(&tenant, rest, "test/drain", "drain")
        .await
        .expect("drain the balance");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/mcp-servers", system.base_url))
        .json(&json!({"service_name": "unpaid", "template": "demo"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 402);
    let body: Value = r.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("insufficient credits") && message.contains("balance is 0"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let exhausted = system.reconcile_now().await;
    assert_eq!(exhausted.exhausted.len(), 1, "{exhausted:?}");
    assert_eq!(exhausted.exhausted[0].server_id, id);
    let started = std::time::Instant::now();
    loop {
        let got = support::get_json(&format!("{}/api/v2/mcp-servers/{id}", system.base_url)).await;
        if got["status"] == "deleted" {
            let kinds: Vec<_> = got["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert!(
                kinds.contains(&"mcp.server.credits.exhausted".to_string()),
                "{kinds:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the unpaid server was not deleted: {got}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let leftovers = ProcessBackend::new()
        .list_managed(&ListFilter::server(id.clone()))
        .await
        .expect("list processes");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let listed = support::get_json(&format!("{}/api/v2/mcp-servers", system.base_url)).await;
    assert_eq!(
        listed["servers"],
        json!([]),
        "the refused one was never recorded: {listed}"
    );
    // Nothing was charged beyond what was paid before the drain.
    let balance = system.store().balance(&tenant).await.expect("balance");
    assert_eq!(balance.available + balance.held, before - spent);
    system.stop().await;
}

/// A provisioning worker told its host's address (`provisioning.publish_address`) starts
/// replicas listening there and hands out endpoints there, so apis on other hosts reach them;
/// on loopback, 127.0.0.2 stands for that address. (Before: always http://127.0.0.1:<port>.)
#[tokio::test]
async fn replicas_are_published_and_reached_at_the_configured_address() {
    demo_binary();
    let system =
        TestSystem::start_with(|c| c.provisioning.publish_address = Some([127, 0, 0, 2].into()))
            .await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    let r = call(
        &client,
        "create_mcp_server",
        json!({"service_name": "elsewhere", "template": "demo", "replicas": 1}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let server = r.structured_content.clone().expect("structured");
    let url = server["endpoints"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.2:"), "{url}");
    let tools = list_tool_names(&url, Duration::from_secs(10))
        .await
        .expect("the replica answers at the published address");
    assert!(tools.contains(&"echo".to_string()), "{tools:?}");
    let on_loopback = url.replace("127.0.0.2", "127.0.0.1");
    assert!(
        list_tool_names(&on_loopback, Duration::from_secs(2))
            .await
            .is_err(),
        "the replica listens on the published address only"
    );
    let id = server["server_id"].as_str().expect("id");
    let r = call(&client, "delete_mcp_server", json!({"server_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
}
