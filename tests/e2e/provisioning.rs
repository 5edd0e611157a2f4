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

/// Polls the server's REST view until `done` holds (60 s at most).
async fn server_until(
    system: &TestSystem,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("{}/api/v2/mcp-servers/{id}", system.base_url);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = support::get_json(&url).await;
        if done(&view) {
            return view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never got {what}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a worker of `host` polls its provisioning queue.
async fn wait_for_host(system: &TestSystem, host: &str) {
    use temporalio_common::protos::temporal::api::enums::v1::TaskQueueType;
    let queue = avb_workflows::queues::provisioning_on(host);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pollers = avb_api::health::queue_pollers(
            &system.client,
            "default",
            &queue,
            TaskQueueType::Activity,
        )
        .await;
        if matches!(pollers, Ok(n) if n > 0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker polls {queue}: {pollers:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Two provisioning hosts with the process backend (two workers with their own data folders and
/// `AVB_PROVISIONING_HOST`, sharing Temporal and PostgreSQL): a server stays on the host that
/// created it. With that host's worker down, a delete waits for it (the other host neither sees
/// nor removes its processes), the reconciliation reports it unreachable and takes nothing of it
/// for drift or orphans; once it is back the delete finishes and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_replicas_live_and_die_on_the_host_that_created_them() {
    demo_binary();
    let system =
        TestSystem::start_on_postgres(|c| c.mcp.wait_budget_secs = 1, "avb-workflows,avb-billing")
            .await;
    let worker = |host: &'static str, dir: &tempfile::TempDir| {
        let data = dir.path().display().to_string();
        system.spawn_avb(
            &["worker", "--queues", "avb-provisioning"],
            &[
                ("AVB_DATA_DIR", data.as_str()),
                ("AVB_PROVISIONING_BACKEND", "process"),
                ("AVB_PROVISIONING_HOST", host),
            ],
        )
    };
    let (alpha_dir, beta_dir) = (
        support::other_host_data_dir(),
        support::other_host_data_dir(),
    );
    let mut alpha = worker("alpha", &alpha_dir);
    wait_for_host(&system, "alpha").await;
    let http = reqwest::Client::new();
    let create = |name: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/v2/mcp-servers", system.base_url);
        async move {
            let v: Value = http
                .post(url)
                .json(&json!({"service_name": name, "template": "demo", "replicas": 2}))
                .send()
                .await
                .expect("POST")
                .json()
                .await
                .expect("json");
            v["server_id"].as_str().expect("id").to_owned()
        }
    };
    let first = create("first").await;
    let first_view = server_until(&system, &first, "running", |v| v["status"] == "running").await;
    assert_eq!(first_view["host"], "alpha", "{first_view}");
    let first_urls: Vec<String> = first_view["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["url"].as_str().expect("url").to_owned())
        .collect();
    let replicas_on = |host: &str, id: &str| {
        let backend = ProcessBackend::new().with_host(host);
        let filter = ListFilter::server(id.to_owned());
        async move { backend.list_managed(&filter).await.expect("list").len() }
    };
    assert_eq!(replicas_on("alpha", &first).await, 2);
    assert_eq!(
        replicas_on("beta", &first).await,
        0,
        "beta leaves alpha's alone"
    );

    // Beta joins, alpha's worker dies (its replicas, like containers, live on).
    let _beta = worker("beta", &beta_dir);
    wait_for_host(&system, "beta").await;
    alpha.start_kill().expect("kill alpha");
    alpha.wait().await.expect("alpha ended");
    let second = create("second").await;
    let second_view = server_until(&system, &second, "running", |v| v["status"] == "running").await;
    assert_eq!(
        second_view["host"], "beta",
        "only beta could take it: {second_view}"
    );
    assert_eq!(replicas_on("beta", &second).await, 2);

    // Deleting alpha's server waits for alpha: nothing else may touch its replicas.
    let deleting: Value = http
        .delete(format!("{}/api/v2/mcp-servers/{first}", system.base_url))
        .send()
        .await
        .expect("DELETE")
        .json()
        .await
        .expect("json");
    assert_eq!(deleting["status"], "deleting", "{deleting}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = server_until(&system, &first, "a pending removal", |v| {
        v["progress"]["step"] == "remove_replicas"
    })
    .await;
    assert_eq!(waiting["status"], "deleting", "{waiting}");
    for url in &first_urls {
        list_tool_names(url, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{url} of the waiting delete stopped answering: {e}"));
    }

    // Reconciliation: beta's run sees beta's server whole; alpha is reported, not judged.
    let report = system.reconcile_now().await;
    assert_eq!(report.hosts, ["alpha", "beta"], "{report:?}");
    assert_eq!(
        report
            .unreachable
            .iter()
            .map(|u| u.host.as_str())
            .collect::<Vec<_>>(),
        ["alpha"],
        "{report:?}"
    );
    assert!(report.drift.is_empty(), "{report:?}");
    assert!(report.orphans.is_empty(), "{report:?}");
    assert_eq!(replicas_on("alpha", &first).await, 2);

    // Alpha is back: the delete finishes there and nothing of the server is left anywhere.
    let _alpha = worker("alpha", &alpha_dir);
    let deleted = server_until(&system, &first, "deleted", |v| v["status"] == "deleted").await;
    assert_eq!(deleted["host"], "alpha", "{deleted}");
    let anywhere = ProcessBackend::new()
        .list_managed(&ListFilter::server(first.clone()))
        .await
        .expect("list");
    assert!(anywhere.is_empty(), "{anywhere:?}");
    for url in &first_urls {
        assert!(
            list_tool_names(url, Duration::from_millis(500))
                .await
                .is_err(),
            "{url} still answers"
        );
    }
    let report = system.reconcile_now().await;
    assert!(report.unreachable.is_empty(), "{report:?}");
    assert!(
        report.drift.is_empty() && report.orphans.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.records, 1, "beta's server only: {report:?}");

    let gone: Value = http
        .delete(format!("{}/api/v2/mcp-servers/{second}", system.base_url))
        .send()
        .await
        .expect("DELETE")
        .json()
        .await
        .expect("json");
    let gone = if gone["status"] == "deleted" {
        gone
    } else {
        server_until(&system, &second, "deleted", |v| v["status"] == "deleted").await
    };
    assert_eq!(gone["host"], "beta", "{gone}");
    assert_eq!(replicas_on("beta", &second).await, 0);
    system.stop().await;
}
