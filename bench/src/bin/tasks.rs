//! Task latency benchmark: what a task-capable client (2026-07-28, Tasks extension) waits for a
//! quick durable job, against the direct call of a 2025-11-25 client in the same run. Run with
//! `cargo run --release -p avb-bench --bin tasks -- [--calls 40] [--speech 8]`.
//!
//! For `durable_echo` and a one-sentence `generate_speech`, calls alternate between the two
//! clients; the tasks client follows a task the way clients do (`tasks/get` at the suggested
//! poll interval until it ends). Two phases, each with its own api: the task shortcut off (every
//! call is a task: the poll-interval floor) and at its default (a job done within it answers at
//! once). Prints p50/p99 and the task/direct p50 ratio of each.

use std::time::{Duration, Instant};

use avb_bench::{mcp_client, numeric_flags, summary, tool_call};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, GetTaskParams,
    Implementation,
};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient};

/// A client that declares the Tasks extension.
#[derive(Clone)]
struct TasksClient;

impl ClientHandler for TasksClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("avb-task-bench", "1"),
        )
    }
}

async fn tasks_client(url: &str) -> RunningService<RoleClient, TasksClient> {
    avb_bench::tasks_session(url, TasksClient).await
}

/// One call as a task-capable client makes it: the result, or the task followed to its end.
async fn task_call(client: &RunningService<RoleClient, TasksClient>, call: CallToolRequestParams) {
    match client.call_tool_once(call).await.expect("tools/call") {
        CallToolResponse::Complete(r) => assert_ne!(r.is_error, Some(true), "{r:?}"),
        CallToolResponse::Task(create) => {
            let interval = Duration::from_millis(create.task.poll_interval_ms.unwrap_or(500));
            loop {
                tokio::time::sleep(interval).await;
                let t = client
                    .peer()
                    .get_task(GetTaskParams::new(create.task.task_id.clone()))
                    .await
                    .expect("tasks/get")
                    .task;
                if t.status().is_terminal() {
                    break;
                }
            }
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

struct Phase {
    name: String,
    shortcut_ms: u64,
}

/// One phase: its own dev server and api; prints a line per tool.
async fn phase(p: &Phase, calls: usize, speech: usize) {
    let data = tempfile::tempdir().expect("tmp");
    let (server, mut config, client) = avb_bench::dev_setup(data.path(), "bench-tasks").await;
    config.rate_limits.enabled = false;
    config.billing.enabled = false;
    config.auth.required = false;
    config.mcp.task_shortcut_ms = p.shortcut_ms;
    let queues = [avb_workflows::queues::WORKFLOWS, avb_workflows::queues::TTS];
    avb_bench::with_api_and_workers(config, client, &queues, |url| async move {
        let direct = mcp_client(&url).await;
        let tasks = tasks_client(&url).await;
        let echo = || tool_call("durable_echo", serde_json::json!({"message": "ping"}));
        let say = || {
            tool_call(
                "generate_speech",
                serde_json::json!({"text": "A short sentence to measure."}),
            )
        };
        // Warm up: connections, pollers, the engine's first session.
        for _ in 0..5 {
            direct.call_tool(echo()).await.expect("echo");
            task_call(&tasks, echo()).await;
        }
        direct.call_tool(say()).await.expect("speech");
        for (i, (n, call)) in [
            (calls, &echo as &dyn Fn() -> CallToolRequestParams),
            (speech, &say),
        ]
        .into_iter()
        .enumerate()
        {
            let (mut d, mut t) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let start = Instant::now();
                let r = direct.call_tool(call()).await.expect("direct call");
                assert_ne!(r.is_error, Some(true), "{r:?}");
                d.push(start.elapsed().as_secs_f64() * 1e3);
                let start = Instant::now();
                task_call(&tasks, call()).await;
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
            let ((d50, d99), (t50, t99)) = (summary(d), summary(t));
            let tool = if i == 0 { "durable_echo" } else { "generate_speech" };
            println!(
                "  {:<22} {tool:<16} direct p50 {d50:7.1} ms p99 {d99:7.1} | task p50 {t50:7.1} ms p99 {t99:7.1} | task/direct p50 {:.2}x",
                p.name,
                t50 / d50
            );
        }
        let _ = direct.cancel().await;
        let _ = tasks.cancel().await;
    })
    .await;
    server.stop().await;
}

#[tokio::main]
async fn main() {
    // `--shortcut-ms N` runs one phase; without it, each phase runs in a child process of its
    // own (the speech engine loads ONNX Runtime once per process, from one data folder).
    let f = numeric_flags(&[("calls", 40), ("speech", 8), ("shortcut-ms", u64::MAX)]);
    let calls = usize::try_from(f["calls"]).expect("calls");
    let speech = usize::try_from(f["speech"]).expect("speech");
    match f["shortcut-ms"] {
        u64::MAX => {
            println!(
                "task latency: {calls} echo calls and {speech} one-sentence speech calls per client"
            );
            let default = avb_config::McpSettings::default().task_shortcut_ms;
            for shortcut in [0, default] {
                let status = std::process::Command::new(std::env::current_exe().expect("exe"))
                    .args([
                        "--calls",
                        &calls.to_string(),
                        "--speech",
                        &speech.to_string(),
                    ])
                    .args(["--shortcut-ms", &shortcut.to_string()])
                    .status()
                    .expect("run a phase");
                assert!(status.success(), "phase with shortcut {shortcut} ms failed");
            }
        }
        shortcut_ms => {
            let name = if shortcut_ms == 0 {
                "shortcut off (0 ms)".to_string()
            } else {
                format!("shortcut {shortcut_ms} ms")
            };
            phase(&Phase { name, shortcut_ms }, calls, speech).await;
        }
    }
}
