//! How AgentVoiceBox holds its sessions with upstream MCP servers: a remote server that
//! speaks only the legacy HTTP+SSE transport; a pool of sessions per server that spreads
//! concurrent calls; and one set of sessions shared by the api and the upstream worker when both
//! run in one process (`avb dev`), so a stdio server is not started twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::text_of;
use crate::support::sse_client;
use crate::support::upstreams::{EverythingHttp, everything_stdio};
use crate::upstream::{QUEUES, call_tool, session, upstream_status, wait_for_tools};
use rmcp::ServiceExt;
use serde_json::json;

/// Pids of processes (of any parent) whose environment holds `AVB_TEST_MARK=<mark>`.
fn pids_marked(mark: &str) -> Vec<u32> {
    let needle = format!("AVB_TEST_MARK={mark}");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
                .then_some(pid)
        })
        .collect()
}

fn processes_marked(mark: &str) -> usize {
    pids_marked(mark).len()
}

/// Waits (10 s at most) until no process carries any of `marks`: `what` outlived the system.
async fn assert_all_gone(marks: &[&str], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while marks.iter().map(|m| processes_marked(m)).sum::<usize>() > 0 {
        assert!(Instant::now() < deadline, "{what} outlived the system");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_legacy_sse_upstream_mounts_answers_like_a_direct_call_and_returns_after_a_restart() {
    let mut legacy = EverythingHttp::start_sse();
    let mut settings = legacy.settings();
    settings.allowed_tools = Some(["echo", "get-sum"].map(String::from).to_vec());
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            c.mcp_servers.insert("old".into(), settings);
        },
        QUEUES,
    )
    .await;
    let client = session(&system, ()).await;
    wait_for_tools(&client, "the SSE server's tools mounted", |n| {
        n.contains("old_echo") && n.contains("old_get-sum")
    })
    .await;
    let status = call_tool(&client, "get_server_status", json!({})).await;
    let old = upstream_status(&status, "old");
    assert_eq!(
        (old["status"].as_str(), old["transport"].as_str()),
        (Some("up"), Some("sse")),
        "{old}"
    );

    // The same answer as our own (independent) SSE client gets from the server directly.
    let direct =
        ().serve(sse_client::connect(&legacy.url()).await)
            .await
            .expect("direct SSE session");
    for (tool, args) in [
        ("echo", json!({"message": "over the old transport"})),
        ("get-sum", json!({"a": 20, "b": 22})),
    ] {
        let via = call_tool(&client, &format!("old_{tool}"), args.clone()).await;
        let want = call_tool(&direct, tool, args).await;
        assert_eq!(
            serde_json::to_value(&via).expect("json"),
            serde_json::to_value(&want).expect("json"),
            "{tool}"
        );
    }
    drop(direct);

    // Down: withdrawn and shown as down; back: mounted and answering again.
    legacy.kill();
    wait_for_tools(&client, "the SSE server's tools withdrawn", |n| {
        !n.contains("old_echo")
    })
    .await;
    let status = call_tool(&client, "get_server_status", json!({})).await;
    assert_eq!(upstream_status(&status, "old")["status"], "down");
    legacy.start_again();
    wait_for_tools(&client, "the SSE server's tools back", |n| {
        n.contains("old_echo")
    })
    .await;
    let r = call_tool(&client, "old_echo", json!({"message": "again"})).await;
    assert!(text_of(&r).contains("again"), "{}", text_of(&r));
    drop(client);
    system.stop().await;
}

#[tokio::test]
async fn a_pool_spreads_concurrent_calls_and_the_worker_uses_the_apis_sessions() {
    let run = std::process::id().to_string();
    let pooled_mark = format!("pooled-{run}");
    let single_mark = format!("single-{run}");
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            // Fast path: the api calls it, three sessions at most.
            let mut pooled = everything_stdio();
            pooled.pool_size = 3;
            pooled.durable = false;
            pooled.timeout = 20;
            pooled.allowed_tools = Some(vec!["trigger-long-running-operation".into()]);
            pooled
                .env
                .insert("AVB_TEST_MARK".into(), pooled_mark.clone().into());
            // Durable: the worker calls it, the api checks it; one session between them.
            let mut single = everything_stdio();
            single.allowed_tools = Some(vec!["get-sum".into()]);
            single
                .env
                .insert("AVB_TEST_MARK".into(), single_mark.clone().into());
            c.mcp_servers.insert("pooled".into(), pooled);
            c.mcp_servers.insert("single".into(), single);
        },
        QUEUES,
    )
    .await;
    let client = Arc::new(session(&system, ()).await);
    wait_for_tools(&client, "both mounted", |n| {
        n.contains("pooled_trigger-long-running-operation") && n.contains("single_get-sum")
    })
    .await;
    assert_eq!(processes_marked(&pooled_mark), 1, "idle: one session");

    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                call_tool(
                    &client,
                    "pooled_trigger-long-running-operation",
                    json!({"duration": 4, "steps": 4}),
                )
                .await
            })
        })
        .collect();
    // Three calls in flight at once: three sessions, each its own child process.
    let deadline = Instant::now() + Duration::from_secs(3);
    while processes_marked(&pooled_mark) < 3 {
        assert!(
            Instant::now() < deadline,
            "three concurrent calls opened {} sessions",
            processes_marked(&pooled_mark)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for call in calls {
        let r = call.await.expect("call task");
        assert!(
            text_of(&r).contains("Long running operation completed"),
            "{}",
            text_of(&r)
        );
    }
    assert_eq!(
        processes_marked(&pooled_mark),
        3,
        "never more than pool_size"
    );
    let status = call_tool(&client, "get_server_status", json!({})).await;
    let pooled = upstream_status(&status, "pooled");
    assert_eq!(
        (
            pooled["pool_size"].as_u64(),
            pooled["open_sessions"].as_u64()
        ),
        (Some(3), Some(3)),
        "{pooled}"
    );

    // A durable call runs on the worker; the api keeps checking the same server: one child.
    let r = call_tool(&client, "single_get-sum", json!({"a": 2, "b": 3})).await;
    assert!(text_of(&r).contains('5'), "{}", text_of(&r));
    tokio::time::sleep(Duration::from_millis(1500)).await; // a check after the call
    assert_eq!(
        processes_marked(&single_mark),
        1,
        "the api and the worker share one session"
    );
    drop(client);
    system.stop().await;
    assert_all_gone(&[&pooled_mark, &single_mark], "children").await;
}

#[tokio::test]
async fn a_slow_upstream_start_does_not_hold_up_calls_to_other_upstreams() {
    let mark = format!("slow-{}", std::process::id());
    // server-everything behind a shell that waits 6 s first, every time it is started.
    let mut slow = everything_stdio();
    let program = slow.command.replace("sh".into()).expect("node");
    let mut args = vec![
        "-c".to_string(),
        r#"sleep 6; exec "$0" "$@""#.into(),
        program,
    ];
    args.append(&mut slow.args);
    slow.args = args;
    slow.env.insert("AVB_TEST_MARK".into(), mark.clone().into());
    slow.allowed_tools = Some(vec!["echo".into()]);
    let mut fast = everything_stdio();
    fast.durable = false;
    fast.allowed_tools = Some(vec!["echo".into()]);
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            c.mcp_servers.insert("slow".into(), slow);
            c.mcp_servers.insert("fast".into(), fast);
        },
        QUEUES,
    )
    .await;
    let client = session(&system, ()).await;
    wait_for_tools(&client, "both mounted", |n| {
        n.contains("slow_echo") && n.contains("fast_echo")
    })
    .await;

    // The slow server's process goes away; the next check (every second) starts it again,
    // which takes 6 s. Calls to the other server must not wait for that.
    for pid in pids_marked(&mark) {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        processes_marked(&mark) > 0,
        "the check is starting the slow server again"
    );
    let started = Instant::now();
    let r = call_tool(&client, "fast_echo", json!({"message": "not held up"})).await;
    let took = started.elapsed();
    assert!(text_of(&r).contains("not held up"), "{}", text_of(&r));
    assert!(
        took < Duration::from_secs(3),
        "a call to another upstream took {took:?} while the slow one was starting"
    );
    drop(client);
    system.stop().await;
    assert_all_gone(&[&mark], "the slow server").await;
}
