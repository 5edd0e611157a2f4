//! Determinism of live runs: fresh histories replay against the current workflow code, and
//! replaying charges nothing. The recorded histories in `tests/histories` are replayed without a
//! server by `cargo test -p avb-workflows` (`crates/workflows/tests/replay.rs`); these tests write
//! them: `AVB_RECORD_HISTORIES=1` writes `tests/histories/generate_speech_billed.json` from the
//! live run (a billed job: hold → synthesize → settle); `generate_speech.json` predates billing and
//! must keep replaying (its input has no price, so no billing activities). The provisioning
//! workflows (create with its billing saga and its replicas placed on the worker's host, delete
//! with its container-minute settlement, a reconciliation run that visits that host) are
//! recorded the same way, as `provision_mcp_server_on_host.json`, `delete_mcp_server_on_host.json`
//! and `reconcile_mcp_servers_by_host.json` (`provision_mcp_server.json`,
//! `delete_mcp_server.json` and `reconcile_mcp_servers.json` predate hosts and must keep
//! replaying), and a device command that waited for
//! approval (search attribute, timer, signal) and ran its steps as local activities on the devices
//! queue as `device_command_local.json` (`device_command_approved.json`, the same command with each
//! step dispatched to `avb-devices`, predates that and must keep replaying). Calls of mounted
//! upstream tools are recorded by `upstream.rs` (`upstream_call.json`, `upstream_batch.json`). The
//! command is in the workflows crate's doc ("Versioning").

use std::time::Duration;

use crate::support::{TestSystem, repo_root};
use avb_api::speech;
use avb_store::EntryKind;
use avb_workflows::provision::ProvisionMcpServerWorkflow;
use avb_workflows::speech::{GenerateSpeechInput, GenerateSpeechWorkflow};
use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

/// A replayer with every workflow, registered from the list the workers use.
pub(crate) fn replayer() -> WorkflowReplayer {
    let mut opts = WorkflowReplayerOptions::new().build();
    avb_workflows::register_all(&mut opts).expect("register");
    WorkflowReplayer::new(opts).expect("replayer")
}

#[tokio::test]
async fn live_history_replays() {
    let system = TestSystem::start().await;
    let req = GenerateSpeechInput {
        text: "Replay me, deterministically.".into(),
        voice_id: "af_heart".into(),
        speed: 1.0,
        format: None,
        language: None,
    };
    let plan = speech::speech_billing(&system.config.billing, &req).expect("speech is billed");
    let (job_id, handle) = speech::start_speech(
        &system.client,
        &avb_api::auth::Caller::local(),
        req,
        Some(plan),
    )
    .await
    .expect("start");
    let artifact = speech::wait_speech(&handle, Duration::from_secs(120))
        .await
        .expect("job succeeds")
        .expect("within budget");
    assert!(artifact.duration_secs > 0.5);
    let json = system
        .client
        .get_workflow_handle::<GenerateSpeechWorkflow>(job_id.clone())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .expect("history");
    let tenant = system.tenant_id("local").await;
    let ledger_before = system
        .store()
        .entries(&tenant, 1000)
        .await
        .expect("entries");
    let kinds: Vec<_> = ledger_before
        .iter()
        .filter(|e| e.job_id.as_deref() == Some(job_id.as_str()))
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.len(), 2, "one hold and one settle: {kinds:?}");
    assert!(kinds.contains(&EntryKind::Hold) && kinds.contains(&EntryKind::Settle));
    replayer()
        .replay_workflow(WorkflowHistory::from_json(&json).expect("parse"))
        .await
        .expect("live history replays");
    // Replaying runs the workflow code against the recorded events: no activity runs again, so
    // the ledger is exactly as it was.
    let ledger_after = system
        .store()
        .entries(&tenant, 1000)
        .await
        .expect("entries");
    assert_eq!(ledger_after, ledger_before);
    if std::env::var_os("AVB_RECORD_HISTORIES").is_some() {
        std::fs::write(
            repo_root().join("tests/histories/generate_speech_billed.json"),
            &json,
        )
        .expect("record");
    }
    system.stop().await;
}

pub(crate) async fn history_json(system: &TestSystem, workflow_id: &str) -> Vec<u8> {
    system
        .client
        .get_workflow_handle::<ProvisionMcpServerWorkflow>(workflow_id.to_string())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .unwrap_or_else(|e| panic!("history of {workflow_id}: {e}"))
}

#[tokio::test]
async fn live_provisioning_histories_replay() {
    let system = TestSystem::start().await;
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{}/api/v2/mcp-servers", system.base_url))
        .json(&serde_json::json!({"service_name": "replayed", "template": "demo"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(created["status"], "running", "{created}");
    let id = created["server_id"].as_str().expect("id").to_owned();
    let deleted: serde_json::Value = http
        .delete(format!("{}/api/v2/mcp-servers/{id}", system.base_url))
        .send()
        .await
        .expect("DELETE")
        .json()
        .await
        .expect("json");
    assert_eq!(deleted["status"], "deleted", "{deleted}");
    system.reconcile_now().await;
    let reconcile_id = {
        use futures::StreamExt;
        let run = system
            .client
            .list_workflows("WorkflowType = 'ReconcileMcpServers'", Default::default())
            .next()
            .await
            .expect("a reconciliation run")
            .expect("list");
        run.id().to_string()
    };
    let tenant = system.tenant_id("local").await;
    let ledger_before = system
        .store()
        .entries(&tenant, 1000)
        .await
        .expect("entries");
    for (workflow_id, file) in [
        (format!("{id}-create"), "provision_mcp_server_on_host.json"),
        (format!("{id}-delete"), "delete_mcp_server_on_host.json"),
        (reconcile_id, "reconcile_mcp_servers_by_host.json"),
    ] {
        let json = history_json(&system, &workflow_id).await;
        replayer()
            .replay_workflow(WorkflowHistory::from_json(&json).expect("parse"))
            .await
            .unwrap_or_else(|e| panic!("{workflow_id} does not replay: {e:?}"));
        if std::env::var_os("AVB_RECORD_HISTORIES").is_some() {
            std::fs::write(repo_root().join("tests/histories").join(file), &json).expect("record");
        }
    }
    let ledger_after = system
        .store()
        .entries(&tenant, 1000)
        .await
        .expect("entries");
    assert_eq!(ledger_after, ledger_before, "replays charge nothing");
    system.stop().await;
}

#[tokio::test]
async fn live_device_command_history_replays() {
    use avb_config::{ApprovalMode, ApprovalRule};
    let broker = crate::support::mosquitto::Mosquitto::start();
    let sim = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.devices.mqtt_url = Some(url);
        c.devices.zigbee2mqtt.require_approval = ApprovalRule::All(ApprovalMode::Always);
    })
    .await;
    let http = reqwest::Client::new();
    let pending: serde_json::Value = http
        .post(format!("{}/api/v2/devices/control", system.base_url))
        .json(&serde_json::json!({"action": "set_lights", "room": "bedroom", "color": "red"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(pending["status"], "input_required", "{pending}");
    let job = pending["job_id"].as_str().expect("id").to_owned();
    let digest = pending["pending_approval"]["digest"].clone();
    let approved = http
        .post(format!("{}/api/v2/jobs/{job}/approve", system.base_url))
        .json(&serde_json::json!({ "digest": digest }))
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = crate::support::get_json(&format!("{}/api/v2/jobs/{job}", system.base_url)).await;
        if v["status"] == "completed" {
            break;
        }
        assert!(
            v["status"] == "input_required" || v["status"] == "running",
            "{v}"
        );
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let json = history_json(&system, &job).await;
    replayer()
        .replay_workflow(WorkflowHistory::from_json(&json).expect("parse"))
        .await
        .unwrap_or_else(|e| panic!("{job} does not replay: {e:?}"));
    // The command ran on the devices queue with its steps inside workflow tasks: markers, no
    // activity dispatched for planning or sending.
    let history: serde_json::Value = serde_json::from_slice(&json).expect("history json");
    let events = history["events"].as_array().expect("events");
    let attributes = |kind: &str| {
        events
            .iter()
            .filter_map(|e| e["attributes"].get(kind))
            .collect::<Vec<_>>()
    };
    let started = attributes("WorkflowExecutionStartedEventAttributes");
    assert_eq!(started[0]["task_queue"]["name"], "avb-devices", "{history}");
    let dispatched: Vec<_> = attributes("ActivityTaskScheduledEventAttributes")
        .iter()
        .map(|a| {
            a["activity_type"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        !dispatched.iter().any(|a| a.contains("device")),
        "device steps were dispatched: {dispatched:?}"
    );
    assert!(
        attributes("MarkerRecordedEventAttributes").len() >= 2,
        "plan and send are local activity markers: {history}"
    );
    if std::env::var_os("AVB_RECORD_HISTORIES").is_some() {
        std::fs::write(
            repo_root().join("tests/histories/device_command_local.json"),
            &json,
        )
        .expect("record");
    }
    system.stop().await;
    sim.abort();
}
