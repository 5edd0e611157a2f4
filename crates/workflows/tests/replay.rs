//! Determinism without a server: every recorded history in `tests/histories` (at the repository
//! root) replays against the current workflow code, registered through the same
//! [`avb_workflows::register_all`] the workers use. A change that makes a workflow issue other
//! commands than its recorded jobs did fails here (see the crate's "Versioning" rules).
//!
//! The histories are recorded from live runs by the end-to-end tests (`tests/e2e/replay.rs`,
//! `tests/e2e/upstream.rs`) with `AVB_RECORD_HISTORIES=1`; `generate_speech.json` predates billing
//! and must keep replaying (its input has no price, so no billing activities); so must the
//! provisioning histories recorded before replicas were placed on hosts.

use std::path::{Path, PathBuf};

use avb_workflows::billing::{HOLD_CREDITS, SETTLE_CREDITS};
use avb_workflows::devices::{PLAN_DEVICE_COMMAND, SEND_DEVICE_COMMAND};
use avb_workflows::provision::{
    CREATE_REPLICA, PLACE_REPLICAS, RECORD_SERVER, REMOVE_REPLICAS, WAIT_REPLICA_READY,
};
use avb_workflows::speech::SYNTHESIZE_SPEECH;
use avb_workflows::{WORKFLOW_TYPES, approval, register_all};
use temporalio_client::WorkflowHistory;
use temporalio_common::protos::temporal::api::history::v1::{HistoryEvent, history_event};
use temporalio_sdk::workflow_replayer::{
    WorkflowReplayResult, WorkflowReplayer, WorkflowReplayerOptions,
};

fn histories_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/histories")
}

/// A replayer with every workflow of the crate, as a worker registers them.
fn replayer() -> WorkflowReplayer {
    let mut options = WorkflowReplayerOptions::new().build();
    register_all(&mut options).expect("register");
    WorkflowReplayer::new(options).expect("replayer")
}

/// Every recorded history, by file name, replayed.
async fn replay_all() -> Vec<(String, WorkflowReplayResult)> {
    let dir = histories_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no recorded histories in {}",
        dir.display()
    );
    let histories = paths.iter().map(|path| {
        let bytes = std::fs::read(path).expect("read history");
        WorkflowHistory::from_json(&bytes).expect("history JSON")
    });
    let results = replayer()
        .replay_workflows(histories)
        .await
        .expect("replay worker");
    let names = paths.iter().map(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned()
    });
    names.zip(results).collect()
}

#[tokio::test]
async fn recorded_histories_replay() {
    let results = replay_all().await;
    assert!(!results.is_empty());
    for (file, result) in &results {
        if let Some(failure) = &result.replay_failure {
            panic!("{file} no longer replays: {failure:?}");
        }
    }
}

/// The activity type a local activity marker records (`local <type>`).
fn local_activity(
    a: &temporalio_common::protos::temporal::api::history::v1::MarkerRecordedEventAttributes,
) -> Option<String> {
    let data = a.details.get("data")?.payloads.first()?;
    let data: serde_json::Value = serde_json::from_slice(&data.data).ok()?;
    Some(format!("local {}", data["activity_type"].as_str()?))
}

/// What a history did, in order: the workflow type and its queue, activities scheduled, local
/// activities run, signals received and timers started.
fn steps(events: &[HistoryEvent]) -> Vec<String> {
    use history_event::Attributes as A;
    events
        .iter()
        .filter_map(|e| match e.attributes.as_ref()? {
            A::WorkflowExecutionStartedEventAttributes(a) => Some(format!(
                "workflow {} on {}",
                a.workflow_type.as_ref()?.name,
                a.task_queue.as_ref()?.name
            )),
            A::MarkerRecordedEventAttributes(a) => local_activity(a),
            A::ActivityTaskScheduledEventAttributes(a) => {
                Some(a.activity_type.as_ref()?.name.clone())
            }
            A::WorkflowExecutionSignaledEventAttributes(a) => {
                Some(format!("signal {}", a.signal_name))
            }
            A::TimerStartedEventAttributes(_) => Some("timer".to_owned()),
            _ => None,
        })
        .collect()
}

/// The activities a history scheduled, each with its task queue: `<type> on <queue>`.
fn scheduled(events: &[HistoryEvent]) -> Vec<String> {
    use history_event::Attributes as A;
    events
        .iter()
        .filter_map(|e| match e.attributes.as_ref()? {
            A::ActivityTaskScheduledEventAttributes(a) => Some(format!(
                "{} on {}",
                a.activity_type.as_ref()?.name,
                a.task_queue.as_ref()?.name
            )),
            _ => None,
        })
        .collect()
}

/// Provisioning placed on a host runs its replica steps on that host's queue (and everything
/// else on the shared one); jobs recorded before hosts ran every step on the shared queue.
#[tokio::test]
async fn provisioning_histories_run_replica_steps_on_the_placed_host() {
    let results = replay_all().await;
    let scheduled_in = |file: &str| {
        let (_, result) = results
            .iter()
            .find(|(f, _)| f == file)
            .unwrap_or_else(|| panic!("{file} is not recorded"));
        scheduled(result.history.events())
    };
    let on_host = |step: &str| {
        step.split_once(" on avb-provisioning@")
            .is_some_and(|(_, host)| !host.is_empty())
    };
    let create = scheduled_in("provision_mcp_server_on_host.json");
    assert_eq!(create[0], format!("{PLACE_REPLICAS} on avb-provisioning"));
    for step in &create {
        let replica_step = step.starts_with(CREATE_REPLICA) || step.starts_with(WAIT_REPLICA_READY);
        assert_eq!(replica_step, on_host(step), "{create:?}");
    }
    assert!(create.iter().any(|s| s.starts_with(CREATE_REPLICA)));
    let delete = scheduled_in("delete_mcp_server_on_host.json");
    for step in &delete {
        assert_eq!(
            step.starts_with(REMOVE_REPLICAS),
            on_host(step),
            "{delete:?}"
        );
    }
    let reconcile = scheduled_in("reconcile_mcp_servers_by_host.json");
    assert_eq!(reconcile.len(), 2, "{reconcile:?}");
    assert_eq!(reconcile[0], "reconcile_servers on avb-provisioning");
    assert!(on_host(&reconcile[1]), "{reconcile:?}");
    for file in [
        "provision_mcp_server.json",
        "delete_mcp_server.json",
        "reconcile_mcp_servers.json",
    ] {
        let steps = scheduled_in(file);
        assert!(
            steps
                .iter()
                .all(|s| !on_host(s) && !s.starts_with(PLACE_REPLICAS)),
            "{file}: {steps:?}"
        );
    }
}

/// The replayed histories cover the saga (hold → work → settle) and the approval wait (plan →
/// decision → send), so replay checks those paths, not only the plain ones.
#[tokio::test]
async fn histories_cover_the_saga_and_the_approval_wait() {
    let results = replay_all().await;
    let steps_of = |file: &str| {
        let (_, result) = results
            .iter()
            .find(|(f, _)| f == file)
            .unwrap_or_else(|| panic!("{file} is not recorded"));
        steps(result.history.events())
    };
    for (file, result) in &results {
        let steps = steps(result.history.events());
        let workflow = steps[0]
            .trim_start_matches("workflow ")
            .split(' ')
            .next()
            .unwrap_or_default();
        assert!(
            WORKFLOW_TYPES.contains(&workflow),
            "{file}: {workflow} is not registered"
        );
    }
    assert_eq!(
        steps_of("generate_speech.json"),
        [
            "workflow GenerateSpeech on avb-workflows",
            SYNTHESIZE_SPEECH
        ]
    );
    assert_eq!(
        steps_of("generate_speech_billed.json"),
        [
            "workflow GenerateSpeech on avb-workflows",
            HOLD_CREDITS,
            SYNTHESIZE_SPEECH,
            SETTLE_CREDITS
        ]
    );
    let provision = steps_of("provision_mcp_server.json");
    assert_eq!(
        provision,
        [
            "workflow ProvisionMcpServer on avb-workflows",
            RECORD_SERVER,
            HOLD_CREDITS,
            CREATE_REPLICA,
            WAIT_REPLICA_READY,
            RECORD_SERVER,
            SETTLE_CREDITS
        ]
    );
    // A device command that waited for approval: dispatched to `avb-devices` (recorded before
    // device workflows ran there) and with local activities on the devices queue.
    for (file, queue, plan, send) in [
        (
            "device_command_approved.json",
            "avb-workflows",
            PLAN_DEVICE_COMMAND.to_owned(),
            SEND_DEVICE_COMMAND.to_owned(),
        ),
        (
            "device_command_local.json",
            "avb-devices",
            format!("local {PLAN_DEVICE_COMMAND}"),
            format!("local {SEND_DEVICE_COMMAND}"),
        ),
    ] {
        let device = steps_of(file);
        assert_eq!(device[0], format!("workflow DeviceCommand on {queue}"));
        let at = |step: &str| {
            device
                .iter()
                .position(|s| s == step)
                .unwrap_or_else(|| panic!("{file}: no {step} in {device:?}"))
        };
        let decided = at(&format!("signal {}", approval::DECIDE_APPROVAL));
        assert!(at(&plan) < decided, "{file}: {device:?}");
        assert!(decided < at(&send), "{file}: {device:?}");
        assert!(at("timer") < at(&send), "{file}: {device:?}");
    }
}
