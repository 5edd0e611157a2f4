//! Provisioned MCP servers on the docker backend, end to end: the real api, workers and Temporal,
//! and a private real dockerd per test (avb_testkit::dockerd; Debian
//! `docker.io`, needs root). The demo image is not there at first: the provisioning worker
//! builds it from `avb-demo-mcp` (no registry). Covers create → every replica answers MCP →
//! delete → no container left; a provisioning worker SIGKILLed mid-create; the engine stopped
//! mid-create (retried, visible in `get_mcp_server`, completes when it is back); the
//! reconciliation schedule removing an orphan and reporting drift.

use crate::support;
use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::dockerd::TestDockerd;
use avb_config::AvbConfig;
use avb_provisioning::{
    ContainerBackend, DockerBackend, DockerEndpoint, ListFilter, McpClient, list_tool_names,
};
use serde_json::{Value, json};

/// Workflows, synthesis and billing in-process; provisioning where the test says.
const ALL_BUT_PROVISIONING: &str = "avb-workflows,avb-tts,avb-billing";

fn on_docker(daemon: &TestDockerd) -> impl FnOnce(&mut AvbConfig) + use<> {
    let host = daemon.host();
    move |c: &mut AvbConfig| {
        c.provisioning.backend = "docker".into();
        c.provisioning.docker_host = Some(host);
    }
}

fn backend(daemon: &TestDockerd) -> DockerBackend {
    DockerBackend::new(DockerEndpoint::parse(&daemon.host()).expect("endpoint"))
}

async fn post_server(system: &TestSystem, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/mcp-servers", system.base_url))
        .json(&body)
        .send()
        .await
        .expect("POST /api/v2/mcp-servers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

async fn get_server(system: &TestSystem, id: &str) -> Value {
    support::get_json(&format!("{}/api/v2/mcp-servers/{id}", system.base_url)).await
}

/// The one server the tenant has (the create call is still waiting when this runs).
async fn only_server(system: &TestSystem) -> Option<Value> {
    let listed = support::get_json(&format!("{}/api/v2/mcp-servers", system.base_url)).await;
    listed["servers"].as_array()?.first().cloned()
}

/// Polls the server until `done` holds for it (at most `limit`).
async fn wait_for(
    system: &TestSystem,
    id: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let server = get_server(system, id).await;
        if done(&server) {
            return server;
        }
        assert!(
            started.elapsed() < limit,
            "{what} not within {limit:?}: {server:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every endpoint answers MCP: lists the demo tools and echoes with the caller's prefix.
async fn assert_endpoints_speak_mcp(server: &Value, prefix: &str) {
    let endpoints = server["endpoints"].as_array().expect("endpoints");
    assert_eq!(
        endpoints.len(),
        usize::try_from(server["replicas"].as_u64().expect("replicas")).expect("count"),
        "{server:#}"
    );
    for e in endpoints {
        let url = e["url"].as_str().expect("url");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let tools = list_tool_names(url, Duration::from_secs(10))
            .await
            .unwrap_or_else(|err| panic!("{url} does not answer tools/list: {err}"));
        assert_eq!(tools, ["add", "echo"], "{url}");
        let mut client = McpClient::connect(url, Duration::from_secs(10))
            .await
            .expect("connect");
        let r = client
            .call_tool("echo", json!({"message": "hello"}))
            .await
            .expect("echo");
        assert_eq!(
            r["content"][0]["text"],
            format!("{prefix}hello"),
            "the environment reached replica {}: {r}",
            e["replica"]
        );
        client.close().await;
    }
}

/// The ids of the server's containers as the engine sees them.
async fn container_ids(daemon: &TestDockerd, server_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = backend(daemon)
        .list_managed(&ListFilter::server(server_id))
        .await
        .expect("list containers")
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

fn endpoint_ids(server: &Value) -> Vec<String> {
    let mut ids: Vec<String> = server["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn event_kinds(server: &Value) -> Vec<String> {
    server["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn delete_and_assert_nothing_left(system: &TestSystem, daemon: &TestDockerd, id: &str) {
    delete_and_assert_nothing_left_of(system, daemon, id).await;
    assert!(
        daemon.container_ids().is_empty(),
        "the engine still has containers: {:?}",
        daemon.container_ids()
    );
}

/// Deletes the server: its record says deleted and none of its containers is left.
async fn delete_and_assert_nothing_left_of(system: &TestSystem, daemon: &TestDockerd, id: &str) {
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v2/mcp-servers/{id}", system.base_url))
        .send()
        .await
        .expect("DELETE");
    assert!(r.status().is_success(), "{}", r.status());
    let deleted: Value = r.json().await.expect("json");
    assert_eq!(deleted["status"], "deleted", "{deleted:#}");
    assert!(
        container_ids(daemon, id).await.is_empty(),
        "containers left"
    );
}

async fn stop_all(system: TestSystem, daemon: TestDockerd) {
    system.stop().await;
    tokio::task::spawn_blocking(move || drop(daemon))
        .await
        .expect("stop dockerd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_replicas_answer_mcp_and_delete_leaves_no_container() {
    let daemon = tokio::task::block_in_place(TestDockerd::start);
    let system = TestSystem::start_with(on_docker(&daemon)).await;

    // A bad request creates nothing on the engine either.
    let (status, body) = post_server(
        &system,
        json!({"service_name": "notes", "template": "demo", "environment": {"SECRET": "x"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(daemon.container_ids().is_empty());

    let (status, server) = post_server(
        &system,
        json!({"service_name": "notes", "template": "demo", "replicas": 2,
               "environment": {"ECHO_PREFIX": "from docker: "}}),
    )
    .await;
    assert_eq!(status, 200, "{server:#}");
    assert_eq!(server["status"], "running", "{server:#}");
    let id = server["server_id"].as_str().expect("id").to_owned();
    assert_endpoints_speak_mcp(&server, "from docker: ").await;
    assert_eq!(container_ids(&daemon, &id).await, endpoint_ids(&server));
    let replicas = backend(&daemon)
        .list_managed(&ListFilter::server(&id))
        .await
        .expect("list");
    assert!(
        replicas.iter().all(|r| r.tenant == "local"),
        "labelled with the tenant: {replicas:?}"
    );
    assert_eq!(
        event_kinds(&get_server(&system, &id).await),
        ["mcp.server.create.requested", "mcp.server.created"]
    );

    delete_and_assert_nothing_left(&system, &daemon, &id).await;
    stop_all(system, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioning_worker_killed_mid_create_leaves_a_complete_server_and_no_orphan() {
    let daemon = tokio::task::block_in_place(TestDockerd::start);
    let system = TestSystem::start_custom(on_docker(&daemon), ALL_BUT_PROVISIONING).await;
    system.wait_for_workers().await;
    let host = daemon.host();
    let worker_env = [
        ("AVB_PROVISIONING_BACKEND", "docker"),
        ("AVB_DOCKER_HOST", host.as_str()),
    ];
    let mut worker = system.spawn_avb(&["worker", "--queues", "avb-provisioning"], &worker_env);

    // Each replica takes 3 s to listen: the worker dies while it waits for the first.
    let create = {
        let base = system.base_url.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v2/mcp-servers"))
                .json(
                    &json!({"service_name": "slow", "template": "demo", "replicas": 2,
                              "environment": {"DEMO_STARTUP_DELAY_MS": "3000"}}),
                )
                .send()
                .await
        })
    };
    let started = Instant::now();
    let id = loop {
        if let Some(s) = only_server(&system).await
            && s["server_id"].is_string()
        {
            let id = s["server_id"].as_str().expect("id").to_owned();
            let got = get_server(&system, &id).await;
            if got["progress"]["step"] == "wait_replica_ready" {
                break id;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the first replica never got to its readiness wait"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    worker
        .start_kill()
        .expect("SIGKILL the provisioning worker");
    worker.wait().await.expect("reap");
    assert_eq!(
        container_ids(&daemon, &id).await.len(),
        1,
        "one replica was created before the kill"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut worker = system.spawn_avb(&["worker", "--queues", "avb-provisioning"], &worker_env);

    // The readiness wait times out its heartbeat, runs again on the new worker, and the
    // workflow carries on with replica 1.
    let server = wait_for(
        &system,
        &id,
        Duration::from_secs(120),
        "running after the restart",
        |s| s["status"] != "creating",
    )
    .await;
    assert_eq!(server["status"], "running", "{server:#}");
    assert_endpoints_speak_mcp(&server, "").await;
    assert_eq!(
        container_ids(&daemon, &id).await,
        endpoint_ids(&server),
        "exactly the recorded replicas exist: no orphan, none missing"
    );
    assert_eq!(
        event_kinds(&server),
        ["mcp.server.create.requested", "mcp.server.created"]
    );
    let _ = create.await;

    delete_and_assert_nothing_left(&system, &daemon, &id).await;
    worker.start_kill().ok();
    worker.wait().await.ok();
    stop_all(system, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_engine_is_retried_visibly_and_the_server_completes_when_it_returns() {
    let mut daemon = tokio::task::block_in_place(TestDockerd::start);
    let system = TestSystem::start_with(|c| {
        on_docker(&daemon)(c);
        // The caller gets the "creating" record back quickly; the workflow goes on.
        c.mcp.wait_budget_secs = 1;
    })
    .await;
    tokio::task::block_in_place(|| daemon.stop());

    let (status, server) = post_server(
        &system,
        json!({"service_name": "patient", "template": "demo"}),
    )
    .await;
    assert_eq!(status, 200, "{server:#}");
    assert_eq!(server["status"], "creating", "{server:#}");
    let id = server["server_id"].as_str().expect("id").to_owned();
    let waiting = wait_for(
        &system,
        &id,
        Duration::from_secs(60),
        "a visible retry",
        |s| s["progress"]["attempt"].as_u64().unwrap_or(0) >= 2,
    )
    .await;
    let progress = &waiting["progress"];
    assert_eq!(progress["step"], "create_replica", "{waiting:#}");
    let last_error = progress["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("container engine unreachable"),
        "the status says why: {waiting:#}"
    );
    assert_eq!(waiting["status"], "creating");

    tokio::task::block_in_place(|| daemon.start_again());
    let server = wait_for(
        &system,
        &id,
        Duration::from_secs(60),
        "running once the engine is back",
        |s| s["status"] != "creating",
    )
    .await;
    assert_eq!(server["status"], "running", "{server:#}");
    assert!(server.get("progress").is_none(), "{server:#}");
    assert_endpoints_speak_mcp(&server, "").await;
    assert_eq!(container_ids(&daemon, &id).await, endpoint_ids(&server));

    delete_and_assert_nothing_left(&system, &daemon, &id).await;
    stop_all(system, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_removes_orphans_and_reports_drift() {
    let daemon = tokio::task::block_in_place(TestDockerd::start);
    let system = TestSystem::start_with(on_docker(&daemon)).await;
    let mut ids = Vec::new();
    for name in ["forgotten", "damaged", "healthy"] {
        let (status, server) =
            post_server(&system, json!({"service_name": name, "template": "demo"})).await;
        assert_eq!(server["status"], "running", "{status} {server:#}");
        ids.push(server["server_id"].as_str().expect("id").to_owned());
    }
    let [forgotten, damaged, healthy] = [&ids[0], &ids[1], &ids[2]];

    // Behind the system's back: one record deleted, one container removed.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&system.config.database_url())
        .await
        .expect("open the database");
    sqlx::query("DELETE FROM mcp_servers WHERE id = $1")
        .bind(forgotten.as_str())
        .execute(&db)
        .await
        .expect("delete the record");
    db.close().await;
    backend(&daemon)
        .remove_replica(damaged, 0)
        .await
        .expect("remove a container");

    let report = system.reconcile_now().await;
    assert_eq!(report.backend, "docker");
    assert_eq!(report.orphans.len(), 1, "{report:#?}");
    let orphan = &report.orphans[0];
    assert_eq!(&orphan.server_id, forgotten);
    assert_eq!(orphan.reason, "no record of this server");
    assert!(orphan.removed);
    assert!(
        container_ids(&daemon, forgotten).await.is_empty(),
        "the orphan is gone"
    );
    assert_eq!(report.drift.len(), 1, "{report:#?}");
    assert_eq!(&report.drift[0].server_id, damaged);
    assert_eq!(report.drift[0].problems, ["replica 0 is missing"]);

    let got = get_server(&system, damaged).await;
    assert_eq!(got["status"], "degraded", "{got:#}");
    assert_eq!(got["error"], "replica 0 is missing");
    assert!(event_kinds(&got).contains(&"mcp.server.drift".to_string()));
    let got = get_server(&system, healthy).await;
    assert_eq!(got["status"], "running", "untouched: {got:#}");
    assert_eq!(container_ids(&daemon, healthy).await.len(), 1);

    // A second run finds nothing new to remove; the damaged server is still reported.
    let again = system.reconcile_now().await;
    assert!(again.orphans.is_empty(), "{again:#?}");
    assert_eq!(again.drift.len(), 1, "{again:#?}");

    for id in [damaged, healthy] {
        delete_and_assert_nothing_left_of(&system, &daemon, id).await;
    }
    assert!(daemon.container_ids().is_empty());
    stop_all(system, daemon).await;
}
