//! Long-running jobs: MCP tasks served from Temporal, the job tools, the `avb://jobs/{id}`
//! resource and its subscriptions, REST list/cancel/events, and cancellation reaching the
//! worker. Real Temporal dev server, workers and Kokoro model.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::mcp::{args, audio_of, call, text_of};
use crate::support::{TestSystem, get_json, stored_wavs, wav_facts};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ClientCapabilities,
    ClientConfig, DetailedTask, GetTaskParams, Implementation, ReadResourceRequestParams,
    ResourceContents, SubscribeRequestParams, TASKS_EXTENSION_ID, TaskPayload,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Client {
    tasks: bool,
    progress: Arc<AtomicUsize>,
    updates: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        _p: rmcp::model::ProgressNotificationParam,
        _cx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
    async fn on_resource_updated(
        &self,
        p: rmcp::model::ResourceUpdatedNotificationParam,
        _cx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.updates.lock().expect("lock").push(p.uri);
    }
    fn get_info(&self) -> ClientConfig {
        let caps = if self.tasks {
            ClientCapabilities::builder().enable_tasks().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("avb-job-tests", "1"))
    }
}

type Session = RunningService<RoleClient, Client>;

async fn connect(system: &TestSystem, tasks: bool) -> Session {
    connect_as(
        system,
        Client {
            tasks,
            ..Client::default()
        },
    )
    .await
}

/// A tasks client speaks 2026-07-28 (`server/discover`, the Tasks extension's revision); any
/// other uses the `initialize` handshake of 2025-11-25.
async fn connect_as(system: &TestSystem, client: Client) -> Session {
    let transport = StreamableHttpClientTransport::from_uri(system.mcp_url());
    if client.tasks {
        client
            .serve_with_lifecycle(transport, crate::support::mcp::tasks_era())
            .await
            .expect("connect")
    } else {
        client.serve(transport).await.expect("connect")
    }
}

fn long_text(chars: usize) -> String {
    let para = "Durable workflows keep agents honest. When a worker crashes in the middle of a long job, \
        the orchestrator notices the missing heartbeat, schedules the activity again, and the agent \
        still receives exactly one result; nobody pays twice, and nothing is lost. ";
    let mut t = String::new();
    while t.len() < chars {
        t.push_str(para);
    }
    t.truncate(chars);
    t
}

async fn start_task(client: &Session, tool: &'static str, a: Value) -> String {
    let response = client
        .call_tool_once(CallToolRequestParams::new(tool).with_arguments(args(a)))
        .await
        .expect("tools/call answers");
    match response {
        CallToolResponse::Task(create) => {
            assert_eq!(create.task.poll_interval_ms, Some(500));
            create.task.task_id
        }
        other => panic!("a tasks client must get a task, got {other:?}"),
    }
}

async fn get_task(client: &Session, id: &str) -> DetailedTask {
    client
        .peer()
        .get_task(GetTaskParams::new(id))
        .await
        .expect("tasks/get")
        .task
}

/// Polls `tasks/get` until `done` holds, returning every state seen.
async fn poll_task(
    client: &Session,
    id: &str,
    limit: Duration,
    done: impl Fn(&DetailedTask) -> bool,
) -> Vec<DetailedTask> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let t = get_task(client, id).await;
        let stop = done(&t);
        seen.push(t);
        if stop {
            return seen;
        }
        assert!(
            start.elapsed() < limit,
            "task {id} not there within {limit:?}; last: {:?}",
            seen.last()
                .map(|t| (&t.task.status, &t.task.status_message))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn tasks_complete_like_direct_calls_and_cancel_stops_the_worker() {
    let system = TestSystem::start().await;
    let client = connect(&system, true).await;

    // A client on 2025-11-25 that declares the Tasks extension anyway (the MCP Inspector does)
    // gets the plain result its revision knows, never a task it cannot read.
    let legacy = Client {
        tasks: true,
        ..Client::default()
    }
    .serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
    .await
    .expect("connect with initialize");
    match legacy
        .call_tool_once(
            CallToolRequestParams::new("durable_echo")
                .with_arguments(args(json!({"message": "legacy era"}))),
        )
        .await
        .expect("tools/call answers")
    {
        CallToolResponse::Complete(r) => {
            assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
            let out = r.structured_content.expect("structured result");
            assert_eq!(out["message"], "legacy era", "{out}");
        }
        other => panic!("a 2025-11-25 client must get a plain result, got {other:?}"),
    }
    let http = reqwest::Client::new();
    let base = &system.base_url;

    let tools = client.list_all_tools().await.expect("tools/list");
    for name in ["get_job", "list_jobs", "cancel_job"] {
        assert!(tools.iter().any(|t| t.name == name), "{name} missing");
    }
    let speech = tools
        .iter()
        .find(|t| t.name == "generate_speech")
        .expect("tool");
    let support = speech
        .meta
        .as_ref()
        .and_then(|m| m.get(TASKS_EXTENSION_ID).cloned());
    assert_eq!(support, Some(json!({"taskSupport": "optional"})));

    // Bad input never becomes a task: the direct call's error comes back at once.
    let bad = client
        .call_tool_once(
            CallToolRequestParams::new("generate_speech")
                .with_arguments(args(json!({"text": "hi", "voice_id": "af_hart"}))),
        )
        .await
        .expect("answer");
    match bad {
        CallToolResponse::Complete(r) => {
            assert_eq!(r.is_error, Some(true));
            assert!(text_of(&r).contains("af_heart"), "{}", text_of(&r));
        }
        other => panic!("invalid input must not start a task: {other:?}"),
    }

    // A task completes with exactly what the direct call returns.
    let text = "Tasks live in Temporal, not in the api process. Each poll reads the workflow, \
        so any replica can answer, and a restart loses nothing.";
    let id = start_task(&client, "generate_speech", json!({"text": text})).await;
    assert!(id.starts_with("job_") && id.len() == 36, "{id}");
    let states = poll_task(&client, &id, Duration::from_secs(120), |t| {
        t.status().is_terminal()
    })
    .await;
    let done = states.last().expect("states");
    let TaskPayload::Completed { result } = &done.payload else {
        panic!("expected completed, got {:?}", done.payload)
    };
    let result: CallToolResult =
        serde_json::from_value(Value::Object(result.clone())).expect("a CallToolResult");
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let wav = audio_of(&result).await;
    let (rate, _, secs) = wav_facts(&wav);
    assert_eq!(rate, 24_000);
    assert!(secs > 3.0, "{secs:.2}s for two sentences");
    let out = result.structured_content.clone().expect("structured");
    assert_eq!(out["job_id"], json!(id));
    assert_eq!(out["status"], "completed");
    // get_job returns the same audio and the same structured result.
    let job = call(&client, "get_job", json!({"job_id": id})).await;
    assert_eq!(
        audio_of(&job).await,
        wav,
        "get_job audio differs from the task's"
    );
    let view = job.structured_content.clone().expect("view");
    assert_eq!(view["status"], "completed");
    assert_eq!(view["result"], out);
    assert_eq!(view["tool"], "generate_speech");

    // Cancel a long job once it has made progress: it ends cancelled and stores nothing.
    let stored_before = stored_wavs(&system).await;
    let long = start_task(&client, "generate_speech", json!({"text": long_text(3000)})).await;
    let states = poll_task(&client, &long, Duration::from_secs(120), |t| {
        t.task
            .status_message
            .as_deref()
            .is_some_and(|m| m.starts_with("synthesized"))
    })
    .await;
    assert!(!states.last().expect("state").status().is_terminal());
    client
        .peer()
        .cancel_task(CancelTaskParams::new(long.clone()))
        .await
        .expect("tasks/cancel");
    let states = poll_task(&client, &long, Duration::from_secs(60), |t| {
        t.status().is_terminal()
    })
    .await;
    let last = states.last().expect("state");
    assert!(
        matches!(last.payload, TaskPayload::Cancelled),
        "{:?}",
        last.payload
    );
    let rest: Value = get_json(&format!("{base}/api/v2/jobs/{long}")).await;
    assert_eq!(rest["status"], "cancelled", "{rest}");
    assert_eq!(rest["error"]["kind"], "Cancelled", "{rest}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stored_wavs(&system).await,
        stored_before,
        "a cancelled job must not store audio"
    );
    // Cancelling again is fine; cancelling a finished job is a conflict.
    client
        .peer()
        .cancel_task(CancelTaskParams::new(long.clone()))
        .await
        .expect("second tasks/cancel");
    let again = call(&client, "cancel_job", json!({"job_id": long})).await;
    assert_ne!(again.is_error, Some(true), "{}", text_of(&again));
    let conflict = http
        .post(format!("{base}/api/v2/jobs/{id}/cancel"))
        .send()
        .await
        .expect("POST cancel");
    assert_eq!(conflict.status().as_u16(), 409);

    // Listing: filters and pages, through the tool and REST.
    let cancelled = call(&client, "list_jobs", json!({"status": "cancelled"})).await;
    let jobs = cancelled.structured_content.expect("page")["jobs"].clone();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs[0]["job_id"], json!(long));
    let page1: Value = get_json(&format!(
        "{base}/api/v2/jobs?tool=generate_speech&page_size=1"
    ))
    .await;
    let token = page1["next_page_token"]
        .as_str()
        .expect("a second page")
        .to_string();
    let page2: Value = get_json(&format!(
        "{base}/api/v2/jobs?tool=generate_speech&page_size=1&page_token={token}"
    ))
    .await;
    let ids: Vec<&Value> = [&page1, &page2]
        .iter()
        .map(|p| &p["jobs"][0]["job_id"])
        .collect();
    assert_ne!(ids[0], ids[1], "pages must not repeat");
    for (query, field) in [
        ("status=done", "status"),
        ("page_token=zz", "page_token"),
        ("page_size=0", "page_size"),
        ("since=yesterday", "since"),
        ("colour=red", "colour"),
    ] {
        let bad = http
            .get(format!("{base}/api/v2/jobs?{query}"))
            .send()
            .await
            .expect("list");
        assert_eq!(bad.status().as_u16(), 400, "{query}");
        let body = bad.text().await.expect("body");
        assert!(body.contains(field), "{query}: {body}");
    }
    let bad = call(&client, "list_jobs", json!({"tool": "make_coffee"})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text_of(&bad).contains("tool"), "{}", text_of(&bad));

    // Unknown ids: not found everywhere, never a crash.
    let err = client
        .peer()
        .get_task(GetTaskParams::new("job_00000000000000000000000000000000"))
        .await
        .expect_err("unknown task");
    assert!(err.to_string().contains("not found"), "{err}");
    for uri in [
        "avb://jobs/job_00000000000000000000000000000000",
        "avb://nothing/here",
    ] {
        let err = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .expect_err("unknown resource");
        assert!(err.to_string().contains(uri), "{err}");
    }
    let missing = call(&client, "get_job", json!({"job_id": "nope"})).await;
    assert_eq!(missing.is_error, Some(true));
    assert!(
        text_of(&missing).contains("NotFound"),
        "{}",
        text_of(&missing)
    );

    client.cancel().await.ok();
    system.stop().await;
}

fn quick_echo() -> CallToolRequestParams {
    CallToolRequestParams::new("durable_echo").with_arguments(args(json!({"message": "quick"})))
}

/// A job that ends within the task shortcut answers a tasks client with its result (no poll
/// round).
#[tokio::test]
async fn a_quick_job_answers_a_tasks_client_at_once() {
    // A generous shortcut, so that a busy test machine cannot turn the echo into a task.
    let system = TestSystem::start_with(|c| c.mcp.task_shortcut_ms = 5_000).await;
    let client = connect(&system, true).await;
    match client
        .call_tool_once(quick_echo())
        .await
        .expect("tools/call")
    {
        CallToolResponse::Complete(r) => {
            assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
            assert_eq!(
                r.structured_content.expect("structured")["message"],
                "quick"
            );
        }
        other => panic!("a job done within the shortcut answers at once, got {other:?}"),
    }
}

/// With the shortcut off, the same quick call is a task.
#[tokio::test]
async fn without_the_shortcut_every_call_is_a_task() {
    let system = TestSystem::start_with(|c| c.mcp.task_shortcut_ms = 0).await;
    let client = connect(&system, true).await;
    match client
        .call_tool_once(quick_echo())
        .await
        .expect("tools/call")
    {
        CallToolResponse::Task(create) => assert!(create.task.task_id.starts_with("job_")),
        other => panic!("with the shortcut off every call is a task, got {other:?}"),
    }
}

#[tokio::test]
async fn a_long_call_returns_a_handle_at_the_budget_and_the_job_finishes() {
    let system = TestSystem::start_with(|c| c.mcp.wait_budget_secs = 2).await;
    let handler = Client::default();
    let updates = handler.updates.clone();
    let client = connect_as(&system, handler).await;
    let started = Instant::now();
    let r = call(&client, "generate_speech", json!({"text": long_text(3000)})).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the call must return at the budget, took {:?}",
        started.elapsed()
    );
    let out = r.structured_content.clone().expect("structured");
    assert_eq!(out["status"], "running", "{}", text_of(&r));
    let id = out["job_id"].as_str().expect("job id").to_string();
    let uri = out["resource_uri"].as_str().expect("uri").to_string();
    assert_eq!(uri, format!("avb://jobs/{id}"));
    assert!(text_of(&r).contains(&format!("/api/v2/jobs/{id}")));

    // The resource reads as the job's JSON view.
    let read = client
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .expect("resources/read");
    let ResourceContents::TextResourceContents {
        text, mime_type, ..
    } = &read.contents[0]
    else {
        panic!("text contents expected")
    };
    assert_eq!(mime_type.as_deref(), Some("application/json"));
    let view: Value = serde_json::from_str(text).expect("json");
    assert_eq!(view["status"], "running");
    assert_eq!(view["tool"], "generate_speech");

    // A subscription (resources/subscribe: this client negotiates a protocol version with the
    // initialize handshake) hears about progress.
    // Deprecated in favour of `listen`, which only 2026-07-28 (handshake-free) sessions have.
    #[allow(deprecated)]
    let subscribed = client
        .peer()
        .subscribe(SubscribeRequestParams::new(uri.clone()))
        .await;
    subscribed.expect("resources/subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while updates.lock().expect("lock").is_empty() {
        assert!(
            Instant::now() < deadline,
            "no resources/updated within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(updates.lock().expect("lock").iter().all(|u| *u == uri));

    // The REST event stream follows the job to its end.
    let resp = reqwest::get(format!("{}/api/v2/jobs/{id}/events", system.base_url))
        .await
        .expect("events");
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(420);
    while let Some(chunk) = tokio::time::timeout_at(deadline.into(), body.next())
        .await
        .expect("the job ends within 7 minutes")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert!(seen.contains("event: progress"), "{seen}");
    let result_line = seen
        .split("event: result\ndata: ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("no result event: {seen}"));
    let final_view: Value = serde_json::from_str(result_line).expect("json");
    assert_eq!(final_view["status"], "completed");

    // get_job now returns the audio: all 3000 characters of it.
    let job = call(&client, "get_job", json!({"job_id": id})).await;
    let (_, _, secs) = wav_facts(&audio_of(&job).await);
    assert!(
        secs > 120.0,
        "3000 characters gave only {secs:.1}s of audio"
    );
    client.cancel().await.ok();
    system.stop().await;
}

/// A job no worker has taken yet (none polls its queue: one is starting, or all are busy) says
/// so in its progress, instead of "started".
#[tokio::test]
async fn a_job_no_worker_has_taken_says_it_is_queued() {
    // Workflows run; no speech (nor billing) worker polls.
    let system = TestSystem::start_custom(|_| {}, "avb-workflows").await;
    let client = connect(&system, true).await;
    let job = start_task(
        &client,
        "generate_speech",
        json!({"text": "Waiting for a worker."}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let view = get_json(&format!("{}/api/v2/jobs/{job}", system.base_url)).await;
        if view["progress"]["message"].as_str().is_some() {
            break view;
        }
        assert!(Instant::now() < deadline, "no progress: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(
        view["progress"]["message"], "queued: waiting for a worker to take it",
        "{view}"
    );
    let r = call(&client, "cancel_job", json!({"job_id": job})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    system.stop().await;
}
