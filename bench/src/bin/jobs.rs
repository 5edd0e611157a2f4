//! Jobs benchmark (durable calls and `tasks/get` under many sessions): run with
//! `cargo run --release -p avb-bench --bin jobs -- [--sessions 50] [--seconds 10] [--rounds 2]`.
//!
//! (a) Durable calls/s: `--sessions` concurrent MCP sessions (Streamable HTTP, rmcp clients) each
//!     calling `durable_echo` in a loop, vs the same number of concurrent raw Temporal SDK callers
//!     starting the same `DurableEcho` workflow and awaiting its result (same server, same worker,
//!     same start options). Rounds interleaved; ratio = MCP / raw.
//! (b) `tasks/get` calls/s: `--sessions` tasks-capable MCP sessions, each polling its own
//!     completed `durable_echo` task, vs raw SDK callers doing what `tasks/get` does underneath
//!     for a finished job (describe the workflow, fetch its result). Ratio = MCP / raw.
//!
//! One process: its own Temporal dev server (as `avb dev` starts it: one task-queue partition),
//! the api and the workflows worker sharing one connection (eager start, as in `avb dev`).

use std::time::{Duration, Instant};

use avb_api::{ApiState, echo};
use avb_bench::{mcp_client, mean, numeric_flags, rate, tasks_session, tool_call};
use avb_config::AvbConfig;
use avb_workflows::echo::{DurableEchoWorkflow, EchoInput};
use rmcp::model::{
    CallToolResponse, ClientCapabilities, ClientConfig, GetTaskParams, Implementation, TaskPayload,
};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient};
use temporalio_client::{Client, WorkflowDescribeOptions, WorkflowGetResultOptions};
use tokio_util::sync::CancellationToken;

struct Args {
    sessions: usize,
    seconds: u64,
    rounds: usize,
}

fn args() -> Args {
    let f = numeric_flags(&[("sessions", 50), ("seconds", 10), ("rounds", 2)]);
    Args {
        sessions: usize::try_from(f["sessions"]).expect("sessions"),
        seconds: f["seconds"],
        rounds: usize::try_from(f["rounds"]).expect("rounds"),
    }
}

#[derive(Clone, Default)]
struct TasksClient;

impl ClientHandler for TasksClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("avb-bench-jobs", "1"),
        )
    }
}

fn echo() -> serde_json::Value {
    serde_json::json!({ "message": "ping" })
}

async fn mcp_durable_calls(sessions: &[RunningService<RoleClient, ()>], seconds: u64) -> f64 {
    let peers: Vec<_> = sessions.iter().map(|s| s.peer().clone()).collect();
    rate(peers.len(), seconds, |i, deadline| {
        let peer = peers[i].clone();
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let r = peer
                    .call_tool(tool_call("durable_echo", echo()))
                    .await
                    .expect("durable_echo over MCP");
                assert_ne!(r.is_error, Some(true), "durable_echo failed: {r:?}");
                n += 1;
            }
            n
        }
    })
    .await
}

async fn raw_durable_calls(client: &Client, n: usize, seconds: u64, eager: bool) -> f64 {
    rate(n, seconds, |_, deadline| {
        let client = client.clone();
        async move {
            let mut count = 0;
            while Instant::now() < deadline {
                let input = EchoInput {
                    message: "ping".into(),
                };
                echo::run_echo(
                    &client,
                    &avb_api::auth::Caller::operator_of("bench"),
                    input,
                    eager,
                    true,
                )
                .await
                .expect("raw echo");
                count += 1;
            }
            count
        }
    })
    .await
}

async fn mcp_task_gets(
    sessions: &[RunningService<RoleClient, TasksClient>],
    ids: &[String],
    seconds: u64,
) -> f64 {
    let peers: Vec<_> = sessions.iter().map(|s| s.peer().clone()).collect();
    rate(peers.len(), seconds, |i, deadline| {
        let peer = peers[i].clone();
        let id = ids[i].clone();
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let t = peer
                    .get_task(GetTaskParams::new(id.clone()))
                    .await
                    .expect("tasks/get");
                assert!(
                    matches!(t.task.payload, TaskPayload::Completed { .. }),
                    "{:?}",
                    t.task.payload
                );
                n += 1;
            }
            n
        }
    })
    .await
}

async fn raw_task_gets(client: &Client, ids: &[String], seconds: u64) -> f64 {
    rate(ids.len(), seconds, |i, deadline| {
        let client = client.clone();
        let id = ids[i].clone();
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let h = client.get_workflow_handle::<DurableEchoWorkflow>(id.clone());
                h.describe(WorkflowDescribeOptions::default())
                    .await
                    .expect("describe");
                h.get_result(WorkflowGetResultOptions::default())
                    .await
                    .expect("result");
                n += 1;
            }
            n
        }
    })
    .await
}

/// One completed `durable_echo` task per session; returns the task ids.
async fn completed_tasks(sessions: &[RunningService<RoleClient, TasksClient>]) -> Vec<String> {
    let mut ids = Vec::new();
    for s in sessions {
        match s
            .call_tool_once(tool_call("durable_echo", echo()))
            .await
            .expect("task-augmented call")
        {
            CallToolResponse::Task(t) => ids.push(t.task.task_id),
            other => panic!("expected a task, got {other:?}"),
        }
    }
    for (s, id) in sessions.iter().zip(&ids) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = s
                .peer()
                .get_task(GetTaskParams::new(id.clone()))
                .await
                .expect("tasks/get");
            if matches!(t.task.payload, TaskPayload::Completed { .. }) {
                break;
            }
            assert!(Instant::now() < deadline, "task {id} did not complete");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    ids
}

fn report(name: &str, unit: &str, mcp: &[f64], raw: &[f64]) {
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  {name}: MCP {:.0} {unit} (rounds {}) | raw SDK {:.0} {unit} (rounds {}) | MCP/raw {:.2}x",
        mean(mcp),
        fmt(mcp),
        mean(raw),
        fmt(raw),
        mean(mcp) / mean(raw)
    );
}

async fn bench(a: &Args, client: Client, config: &AvbConfig) {
    let url = format!("http://{}/mcp", config.http);
    let eager = config.temporal.eager_start;
    let mut sessions = Vec::new();
    for _ in 0..a.sessions {
        sessions.push(mcp_client(&url).await);
    }
    // Warm-up: connections, worker pollers, server caches.
    mcp_durable_calls(&sessions, 1).await;
    raw_durable_calls(&client, a.sessions, 1, eager).await;
    let (mut mcp, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        mcp.push(mcp_durable_calls(&sessions, a.seconds).await);
        raw.push(raw_durable_calls(&client, a.sessions, a.seconds, eager).await);
    }
    report(
        &format!("(a) durable_echo, {} concurrent callers", a.sessions),
        "calls/s",
        &mcp,
        &raw,
    );
    for s in sessions {
        let _ = s.cancel().await;
    }

    let mut sessions = Vec::new();
    for _ in 0..a.sessions {
        sessions.push(tasks_session(&url, TasksClient).await);
    }
    let ids = completed_tasks(&sessions).await;
    mcp_task_gets(&sessions, &ids, 1).await;
    raw_task_gets(&client, &ids, 1).await;
    let (mut mcp, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        mcp.push(mcp_task_gets(&sessions, &ids, a.seconds).await);
        raw.push(raw_task_gets(&client, &ids, a.seconds).await);
    }
    report(
        &format!(
            "(b) tasks/get of a completed task, {} concurrent callers",
            a.sessions
        ),
        "gets/s",
        &mcp,
        &raw,
    );
    for s in sessions {
        let _ = s.cancel().await;
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let data = tempfile::tempdir().expect("tmp");
    let (server, mut config, client) = avb_bench::dev_setup(data.path(), "bench-jobs").await;
    // Thousands of calls a second from one caller: measured without rate limits.
    config.rate_limits.enabled = false;
    // Every echo becomes a task (the benchmark measures tasks/get of completed tasks).
    config.mcp.task_shortcut_ms = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.http = listener.local_addr().expect("addr");
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let shutdown = CancellationToken::new();
    let state = ApiState::new(client.clone(), config.clone()).expect("state");
    let api = tokio::spawn(avb_api::run(listener, state, shutdown.clone()));
    let stop = shutdown.clone();
    // The worker shares the api's connection so eager workflow start applies, as in `avb dev`.
    let workers = avb_workers::run_workers(
        &runtime,
        client.clone(),
        &config,
        &[avb_workflows::queues::WORKFLOWS],
        async move { stop.cancelled().await },
    );
    println!(
        "durable calls and tasks/get, {} callers, {} rounds of {} s each (interleaved):",
        a.sessions, a.rounds, a.seconds
    );
    let body = async {
        bench(&a, client.clone(), &config).await;
        shutdown.cancel();
    };
    let (worker_result, ()) = tokio::join!(workers, body);
    worker_result.expect("workers");
    let _ = api.await;
    server.stop().await;
}
