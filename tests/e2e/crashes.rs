//! Crash-proof jobs: the api and the TTS worker are separate `avb` processes here, killed with
//! SIGKILL mid-job and started again. The task survives the api, the activity is retried on the
//! new worker, and the job completes exactly once. The Temporal dev server itself is killed and
//! restarted (same SQLite file) mid-job, and the job still completes once.

use std::time::{Duration, Instant};

use crate::support::mcp::audio_of;
use crate::support::{TestSystem, get_json, stored_wavs, wav_facts};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    GetTaskParams, Implementation, TaskPayload,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct TasksClient;

impl ClientHandler for TasksClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("avb-crash-tests", "1"),
        )
    }
}

async fn connect(url: &str) -> RunningService<RoleClient, TasksClient> {
    use rmcp::ClientServiceExt;
    TasksClient
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_string()),
            crate::support::mcp::tasks_era(),
        )
        .await
        .expect("connect")
}

async fn start_api(system: &TestSystem, port: u16) -> tokio::process::Child {
    let addr = format!("127.0.0.1:{port}");
    let child = system.spawn_avb(&["serve", "--http", &addr], &[]);
    let healthz = format!("http://{addr}/healthz");
    avb_testkit::system::wait_until_ok(&healthz, "the api", Duration::from_secs(60)).await;
    child
}

fn start_tts_worker(system: &TestSystem) -> tokio::process::Child {
    system.spawn_avb(
        &["worker", "--queues", "avb-tts"],
        &[("AVB_TTS_THREADS", "1"), ("AVB_TTS_SESSIONS", "1")],
    )
}

async fn job_view(base: &str, id: &str) -> Value {
    get_json(&format!("{base}/api/v2/jobs/{id}")).await
}

/// Starts `generate_speech` as a task; returns its id.
async fn start_speech_task(
    client: &RunningService<RoleClient, TasksClient>,
    text: String,
) -> String {
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("generate_speech")
                .with_arguments(json!({"text": text}).as_object().cloned().expect("args")),
        )
        .await
        .expect("tools/call");
    let CallToolResponse::Task(task) = response else {
        panic!("expected a task, got {response:?}")
    };
    task.task.task_id
}

/// Waits until the job reports its first chunk synthesized.
async fn wait_for_first_chunk(base: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = job_view(base, id).await;
        if v["progress"]["done"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "no progress: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A completed task's result is the whole text's audio, and exactly one WAV was stored.
async fn assert_whole_speech_stored_once(
    system: &TestSystem,
    result: serde_json::Map<String, Value>,
) {
    let result: CallToolResult =
        serde_json::from_value(Value::Object(result)).expect("CallToolResult");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let (_, _, secs) = wav_facts(&audio_of(&result).await);
    assert!(secs > 15.0, "{secs:.1}s of audio for the whole text");
    assert_eq!(stored_wavs(system).await, 1, "exactly one stored result");
}

#[tokio::test]
async fn killed_api_and_worker_do_not_lose_the_job() {
    let system = TestSystem::start_custom(|_| {}, "avb-workflows,avb-billing").await;
    let mut worker = start_tts_worker(&system);
    system.wait_for_workers().await;
    let port = avb_runtime::devserver::free_port().expect("port");
    let mut api = start_api(&system, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = connect(&format!("{base}/mcp")).await;

    let text = "A worker can die at any moment. ".repeat(4)
        + &"The job does not care: Temporal notices the silence, hands the work to another \
            worker, and the agent still gets one result. "
            .repeat(5);
    let id = start_speech_task(&client, text).await;
    wait_for_first_chunk(&base, &id).await;
    // Kill the worker mid-synthesis (SIGKILL): nothing was stored by that attempt.
    worker.start_kill().expect("kill -9 worker");
    worker.wait().await.expect("worker reaped");
    assert_eq!(
        stored_wavs(&system).await,
        0,
        "nothing stored by the killed attempt"
    );

    // Kill the api too and start another one: the task is still there.
    api.start_kill().expect("kill -9 api");
    api.wait().await.expect("api reaped");
    drop(client);
    let mut api = start_api(&system, port).await;
    let client = connect(&format!("{base}/mcp")).await;
    let t = client
        .peer()
        .get_task(GetTaskParams::new(id.clone()))
        .await
        .expect("the task survives the api")
        .task;
    assert!(!t.status().is_terminal(), "still working: {:?}", t.payload);

    // A new worker picks the activity up after the heartbeat timeout and finishes the job.
    let _worker = start_tts_worker(&system);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut saw_retry = false;
    let result = loop {
        let v = job_view(&base, &id).await;
        saw_retry |= v["progress"]["attempt"].as_u64().unwrap_or(0) >= 2;
        let t = client
            .peer()
            .get_task(GetTaskParams::new(id.clone()))
            .await
            .expect("tasks/get")
            .task;
        if let TaskPayload::Completed { result } = t.payload {
            break result;
        }
        assert!(!t.status().is_terminal(), "{:?}", t.payload);
        assert!(Instant::now() < deadline, "job did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(saw_retry, "the activity should have run a second attempt");
    assert_whole_speech_stored_once(&system, result).await;

    drop(client);
    api.start_kill().ok();
    api.wait().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn a_job_survives_a_temporal_server_restart() {
    let mut system = TestSystem::start_restartable().await;
    let client = connect(&system.mcp_url()).await;
    let text = "The orchestrator itself may go away for a while. ".repeat(3)
        + &"Its state is on disk, the workers keep polling, and when it comes back the job \
            carries on from its history as if nothing had happened. "
            .repeat(6);
    let id = start_speech_task(&client, text).await;
    let base = system.base_url.clone();
    wait_for_first_chunk(&base, &id).await;

    let before = job_view(&base, &id).await;
    assert_eq!(before["status"], "running", "still synthesizing: {before}");
    // SIGKILL the Temporal server mid-synthesis, leave it down for a few seconds, start it
    // again on the same port and SQLite file.
    system.restart_temporal(Duration::from_secs(3)).await;

    let deadline = Instant::now() + Duration::from_secs(300);
    let result = loop {
        // The api's Temporal client reconnects by itself; a call may fail while it does.
        match client.peer().get_task(GetTaskParams::new(id.clone())).await {
            Ok(t) => {
                let terminal = t.task.status().is_terminal();
                match t.task.payload {
                    TaskPayload::Completed { result } => break result,
                    p => assert!(!terminal, "{p:?}"),
                }
            }
            Err(e) => eprintln!("tasks/get while Temporal comes back: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "job did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_whole_speech_stored_once(&system, result).await;
    assert_eq!(system.speech_workflow_count().await, 1, "one workflow");
    let v = job_view(&base, &id).await;
    assert_eq!(v["status"], "completed", "{v}");

    drop(client);
    system.stop().await;
}
