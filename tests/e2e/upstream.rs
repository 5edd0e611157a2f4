//! Upstream MCP servers mounted beside our tools, against the real reference servers
//! from npm (`server-everything` over stdio and Streamable HTTP, `server-filesystem` over stdio):
//! names, filters and priority; results identical to a direct call; a server going down and
//! coming back (tools withdrawn and restored, `notifications/tools/list_changed` sent); calls
//! interrupted by a killed upstream; config changes without a restart; a bad config refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::{text_of, tool_names};
use crate::support::upstreams::{
    EverythingHttp, everything_js, everything_stdio, filesystem_js, filesystem_stdio,
};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

pub(crate) const QUEUES: &str = "avb-workflows,avb-upstream";

/// Counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct ListWatcher {
    changes: Arc<AtomicUsize>,
}

impl ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

impl ListWatcher {
    fn seen(&self) -> usize {
        self.changes.load(Ordering::SeqCst)
    }
}

pub(crate) async fn session<H: ClientHandler>(
    system: &TestSystem,
    handler: H,
) -> RunningService<RoleClient, H> {
    handler
        .serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
        .await
        .expect("MCP session")
}

pub(crate) async fn call_tool<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    name: &str,
    args: Value,
) -> CallToolResult {
    let args = args.as_object().cloned().expect("object");
    client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .expect("tools/call answers")
}

/// Polls tools/list until `ok` holds (the hub checks upstreams every second here).
pub(crate) async fn wait_for_tools<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    what: &str,
    ok: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = tool_names(client).await;
        if ok(&names) {
            return names;
        }
        assert!(Instant::now() < deadline, "{what}; tools now: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stdio_client(args: Vec<String>) -> RunningService<RoleClient, ()> {
    let cmd = tokio::process::Command::new("node").configure(|c| {
        c.args(args);
    });
    ().serve(TokioChildProcess::new(cmd).expect("spawn node"))
        .await
        .expect("direct stdio session")
}

pub(crate) fn upstream_status(status: &CallToolResult, name: &str) -> Value {
    let out = status.structured_content.clone().expect("structured");
    out["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no upstream {name} in {out}"))
}

#[tokio::test]
async fn mounted_tools_are_namespaced_filtered_and_return_exactly_what_the_upstream_returns() {
    let root = tempfile::tempdir().expect("tmp");
    let root_path = root.path().canonicalize().expect("canonical");
    std::fs::write(root_path.join("hello.txt"), "hello from disk\n").expect("write");
    let fs_root = root_path.clone();
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            let mut everything = everything_stdio();
            everything.allowed_tools = Some(
                [
                    "echo",
                    "get-sum",
                    "get-tiny-image",
                    "get-structured-content",
                ]
                .map(String::from)
                .to_vec(),
            );
            c.mcp_servers.insert("everything".into(), everything);
            let mut files = filesystem_stdio(&fs_root);
            files.allowed_tools = Some(
                ["read_text_file", "write_file", "list_directory"]
                    .map(String::from)
                    .to_vec(),
            );
            c.mcp_servers.insert("files".into(), files);
        },
        QUEUES,
    )
    .await;
    let client = session(&system, ()).await;
    let names = wait_for_tools(&client, "both upstreams mounted", |n| {
        n.contains("everything_echo") && n.contains("files_read_text_file")
    })
    .await;
    for expected in [
        "everything_get-sum",
        "everything_get-tiny-image",
        "files_write_file",
        "generate_speech",
    ] {
        assert!(names.contains(expected), "{expected} missing: {names:?}");
    }
    for filtered in [
        "everything_get-env",
        "files_move_file",
        "echo",
        "read_text_file",
    ] {
        assert!(!names.contains(filtered), "{filtered} listed: {names:?}");
    }

    // Through the aggregator (a durable job) and directly: the very same result.
    let direct = stdio_client(vec![everything_js(), "stdio".into()]).await;
    let direct_defs = direct.list_all_tools().await.expect("direct tools");
    let mounted_defs = client.list_all_tools().await.expect("tools");
    let sum_direct = direct_defs
        .iter()
        .find(|t| t.name == "get-sum")
        .expect("get-sum");
    let sum_mounted = mounted_defs
        .iter()
        .find(|t| t.name == "everything_get-sum")
        .expect("everything_get-sum");
    assert_eq!(sum_mounted.input_schema, sum_direct.input_schema);
    assert_eq!(sum_mounted.annotations, sum_direct.annotations);
    for (tool, args) in [
        ("get-tiny-image", json!({})),
        ("get-structured-content", json!({"location": "New York"})),
        ("get-sum", json!({"a": 2, "b": 40})),
        ("echo", json!({"message": "héllo, upstream"})),
    ] {
        let via = call_tool(&client, &format!("everything_{tool}"), args.clone()).await;
        let want = call_tool(&direct, tool, args).await;
        assert_eq!(
            serde_json::to_value(&via).expect("json"),
            serde_json::to_value(&want).expect("json"),
            "{tool} through avb differs from the direct call"
        );
    }
    let _ = direct.cancel().await;

    // The filesystem server: a write lands on disk; a refused read comes back as the upstream's
    // own error result, unchanged.
    let target = root_path.join("written.txt");
    let r = call_tool(
        &client,
        "files_write_file",
        json!({"path": target.display().to_string(), "content": "written through avb"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(
        std::fs::read_to_string(&target).expect("written"),
        "written through avb"
    );
    let direct_fs = stdio_client(vec![filesystem_js(), root_path.display().to_string()]).await;
    for path in [root_path.join("hello.txt"), "/etc/hostname".into()] {
        let args = json!({"path": path.display().to_string()});
        let via = call_tool(&client, "files_read_text_file", args.clone()).await;
        let want = call_tool(&direct_fs, "read_text_file", args).await;
        assert_eq!(
            serde_json::to_value(&via).expect("json"),
            serde_json::to_value(&want).expect("json"),
            "read_text_file {path:?}"
        );
    }
    let _ = direct_fs.cancel().await;

    // Each call was a job, listed under its mounted name.
    let jobs = call_tool(&client, "list_jobs", json!({"tool": "everything_get-sum"})).await;
    let page = jobs.structured_content.clone().expect("structured");
    let listed = page["jobs"].as_array().expect("jobs");
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["status"], "completed", "{page}");
    let call_id = listed[0]["job_id"].as_str().expect("job id").to_string();

    // search_tools finds mounted and own tools; batch_execute runs several calls as one job.
    let found = call_tool(&client, "search_tools", json!({"query": "read file"})).await;
    let found = found.structured_content.clone().expect("structured");
    assert_eq!(found["tools"][0]["name"], "files_read_text_file", "{found}");
    assert_eq!(found["tools"][0]["source"], "files", "{found}");
    let found = call_tool(&client, "search_tools", json!({"query": "speech"})).await;
    let found = found.structured_content.clone().expect("structured");
    assert_eq!(found["tools"][0]["name"], "generate_speech", "{found}");
    assert_eq!(found["tools"][0]["source"], "agentvoicebox", "{found}");
    let batch = call_tool(
        &client,
        "batch_execute",
        json!({"calls": [
            {"tool": "everything_get-sum", "arguments": {"a": 1, "b": 2}},
            {"tool": "files_read_text_file",
             "arguments": {"path": root_path.join("hello.txt").display().to_string()}},
            {"tool": "everything_echo", "arguments": {"message": "third"}},
        ]}),
    )
    .await;
    assert_ne!(batch.is_error, Some(true), "{}", text_of(&batch));
    let out = batch.structured_content.clone().expect("structured");
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "{out}");
    assert!(results[0]["result"].to_string().contains('3'), "{out}");
    assert!(
        results[1]["result"].to_string().contains("hello from disk"),
        "{out}"
    );
    assert!(results[2]["result"].to_string().contains("third"), "{out}");
    let job = call_tool(&client, "get_job", json!({"job_id": out["job_id"]})).await;
    let job = job.structured_content.clone().expect("structured");
    assert_eq!(job["status"], "completed", "{job}");
    let batch_id = out["job_id"].as_str().expect("job id").to_string();
    for (calls, needle) in [
        (json!([]), "calls: 0 calls; a batch has 1 to 20"),
        (
            json!([{"tool": "generate_speech"}]),
            "calls[0].tool: generate_speech is AgentVoiceBox's own tool",
        ),
        (
            json!([{"tool": "everything_get-env"}]),
            "no mounted upstream tool is called \"everything_get-env\"",
        ),
    ] {
        let r = call_tool(&client, "batch_execute", json!({ "calls": calls })).await;
        assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
        assert!(text_of(&r).contains(needle), "{}", text_of(&r));
    }

    // Both workflows replay (and are recorded for the replay suite with AVB_RECORD_HISTORIES).
    for (id, file) in [
        (&call_id, "upstream_call.json"),
        (&batch_id, "upstream_batch.json"),
    ] {
        let json = crate::replay::history_json(&system, id).await;
        crate::replay::replayer()
            .replay_workflow(
                temporalio_client::WorkflowHistory::from_json(&json).expect("history JSON"),
            )
            .await
            .unwrap_or_else(|e| panic!("{id} does not replay: {e:?}"));
        if std::env::var_os("AVB_RECORD_HISTORIES").is_some() {
            std::fs::write(
                crate::support::repo_root()
                    .join("tests/histories")
                    .join(file),
                &json,
            )
            .expect("record");
        }
    }

    let status = call_tool(&client, "get_server_status", json!({})).await;
    let everything = upstream_status(&status, "everything");
    assert_eq!(everything["status"], "up", "{everything}");
    assert_eq!(everything["tools"], 4, "{everything}");
    drop(client);
    system.stop().await;
}

/// A replica that has just started (a load balancer sends it traffic as soon as its port
/// accepts) answers a call of a mounted tool once its first check of the upstream is done,
/// instead of calling the tool "not found"; `/readyz` says it is not ready until then.
#[tokio::test]
async fn a_call_that_arrives_before_the_first_upstream_check_waits_for_it() {
    let system = TestSystem::start_custom(
        |c| {
            let mut slow = everything_stdio();
            // The upstream takes a few seconds to answer its first tools/list.
            slow.command = Some("sh".into());
            slow.args = vec![
                "-c".into(),
                format!("sleep 3; exec node {:?} stdio", everything_js()),
            ];
            slow.durable = false;
            c.mcp_servers.insert("slow".into(), slow);
        },
        "avb-workflows",
    )
    .await;
    let readyz = reqwest::get(format!("{}/readyz", system.base_url))
        .await
        .expect("readyz");
    assert_eq!(
        readyz.status(),
        503,
        "ready before the first upstream check"
    );
    let body: Value = readyz.json().await.expect("json");
    assert!(
        body["components"]
            .as_array()
            .expect("components")
            .iter()
            .any(|c| c["name"] == "upstream_catalog" && c["healthy"] == false),
        "{body}"
    );
    let client = session(&system, ()).await;
    let r = call_tool(&client, "slow_echo", json!({"message": "early"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("early"), "{}", text_of(&r));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::get(format!("{}/readyz", system.base_url))
            .await
            .expect("readyz");
        if r.status().is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "not ready after the first check");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(client);
    system.stop().await;
}

#[tokio::test]
async fn priority_decides_and_a_down_upstream_is_withdrawn_announced_and_restored() {
    let mut http = EverythingHttp::start();
    let remote_settings = http.settings();
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            // The same namespace twice: the remote server wins (priority 10 < 20) while it is
            // up; the local one, which says who it is in its environment, takes over otherwise.
            let mut remote = remote_settings;
            remote.namespace = Some("everything".into());
            remote.priority = 10;
            remote.allowed_tools = Some(["get-env", "get-sum"].map(String::from).to_vec());
            c.mcp_servers.insert("remote".into(), remote);
            let mut local = everything_stdio();
            local.priority = 20;
            local.allowed_tools = Some(vec!["get-env".into()]);
            local
                .env
                .insert("AVB_UPSTREAM_WHICH".into(), "the-local-one".into());
            c.mcp_servers.insert("everything".into(), local);
        },
        QUEUES,
    )
    .await;
    let watcher = ListWatcher::default();
    let client = session(&system, watcher.clone()).await;
    wait_for_tools(&client, "the remote server mounted", |n| {
        n.contains("everything_get-sum") && n.contains("everything_get-env")
    })
    .await;
    let env = text_of(&call_tool(&client, "everything_get-env", json!({})).await);
    assert!(
        !env.contains("the-local-one"),
        "priority 10 serves get-env: {env}"
    );
    let status = call_tool(&client, "get_server_status", json!({})).await;
    assert_eq!(upstream_status(&status, "remote")["tools"], 2);
    assert_eq!(
        upstream_status(&status, "everything")["tools"],
        0,
        "shadowed"
    );

    // Down: its tools are withdrawn (get-sum gone, get-env served by the local server), clients
    // are told, and the status says why.
    let before = watcher.seen();
    http.kill();
    wait_for_tools(&client, "get-sum withdrawn", |n| {
        !n.contains("everything_get-sum") && n.contains("everything_get-env")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while watcher.seen() == before {
        assert!(Instant::now() < deadline, "no tools/list_changed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = text_of(&call_tool(&client, "everything_get-env", json!({})).await);
    assert!(env.contains("the-local-one"), "the fallback serves: {env}");
    let status = call_tool(&client, "get_server_status", json!({})).await;
    let remote = upstream_status(&status, "remote");
    assert_eq!(remote["status"], "down", "{remote}");
    assert!(
        remote["error"]
            .as_str()
            .is_some_and(|e| e.contains("remote")),
        "{remote}"
    );

    // Back: restored and announced again.
    let before = watcher.seen();
    http.start_again();
    wait_for_tools(&client, "get-sum restored", |n| {
        n.contains("everything_get-sum")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while watcher.seen() == before {
        assert!(Instant::now() < deadline, "no tools/list_changed on return");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = text_of(&call_tool(&client, "everything_get-env", json!({})).await);
    assert!(!env.contains("the-local-one"), "remote again: {env}");
    drop(client);
    system.stop().await;
}

#[tokio::test]
async fn an_upstream_killed_mid_call_is_retried_when_safe_and_fails_clearly_when_not() {
    let mut http = EverythingHttp::start();
    let settings = http.settings();
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            let mut sturdy = settings.clone();
            sturdy.allowed_tools = Some(vec!["trigger-long-running-operation".into()]);
            sturdy.timeout = 15;
            // The same server, but its read-only/idempotent hints are not believed.
            let mut fragile = sturdy.clone();
            fragile.trust_hints = false;
            c.mcp_servers.insert("sturdy".into(), sturdy);
            c.mcp_servers.insert("fragile".into(), fragile);
        },
        QUEUES,
    )
    .await;
    let client = Arc::new(session(&system, ()).await);
    wait_for_tools(&client, "both mounted", |n| {
        n.contains("sturdy_trigger-long-running-operation")
            && n.contains("fragile_trigger-long-running-operation")
    })
    .await;
    for (server, retried) in [("sturdy", true), ("fragile", false)] {
        let name = format!("{server}_trigger-long-running-operation");
        let call = {
            let client = client.clone();
            tokio::spawn(async move {
                call_tool(&client, &name, json!({"duration": 3, "steps": 3})).await
            })
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        http.kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        http.start_again();
        let r = call.await.expect("call task");
        let text = text_of(&r);
        if retried {
            assert_ne!(r.is_error, Some(true), "{server}: {text}");
            assert!(text.contains("Long running operation completed"), "{text}");
        } else {
            assert_eq!(r.is_error, Some(true), "{server}: {text}");
            assert!(
                text.contains("UpstreamNotRetried")
                    && text.contains("mcp_servers.fragile.retry_tools"),
                "{text}"
            );
        }
        // Both mounted again before the next round.
        wait_for_tools(&client, "remounted", |n| {
            n.contains("fragile_trigger-long-running-operation")
        })
        .await;
    }
    system.stop().await;
}

#[tokio::test]
async fn config_file_changes_apply_without_a_restart_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("avb.toml");
    let js = everything_js();
    let write = |allowed: &str, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "[mcp_servers.everything]\ncommand = \"node\"\nargs = [{js:?}, \"stdio\"]\n\
                 allowed_tools = [{allowed}]\n{extra}"
            ),
        )
        .expect("write config");
    };
    write("\"echo\"", "");
    let path = file.clone();
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            c.mcp_servers = avb_config::AvbConfig::reload_mcp_servers(&path).expect("valid");
            c.source_file = Some(path);
        },
        QUEUES,
    )
    .await;
    let watcher = ListWatcher::default();
    let client = session(&system, watcher.clone()).await;
    wait_for_tools(&client, "echo mounted", |n| n.contains("everything_echo")).await;
    assert!(!tool_names(&client).await.contains("everything_get-sum"));

    let before = watcher.seen();
    write("\"echo\", \"get-sum\"", "");
    wait_for_tools(&client, "get-sum added by the edit", |n| {
        n.contains("everything_get-sum")
    })
    .await;
    let r = call_tool(&client, "everything_get-sum", json!({"a": 1, "b": 2})).await;
    assert!(text_of(&r).contains('3'), "{}", text_of(&r));
    let deadline = Instant::now() + Duration::from_secs(10);
    while watcher.seen() == before {
        assert!(
            Instant::now() < deadline,
            "no tools/list_changed after the edit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken edit is refused: the running settings stay.
    write("\"echo\"", "server_url = \"http://127.0.0.1:1/mcp\"\n");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let names = tool_names(&client).await;
    assert!(
        names.contains("everything_get-sum"),
        "the bad edit changed the catalog: {names:?}"
    );
    drop(client);
    system.stop().await;

    // At start, the same mistake refuses to start, naming the key.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_avb"))
        .arg("serve")
        .env("AVB_CONFIG", &file)
        .env("AVB_DATA_DIR", dir.path())
        .output()
        .await
        .expect("run avb serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad config: {stderr}");
    assert!(
        stderr.contains("mcp_servers.everything.server_url") && stderr.contains("not both"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_provisioned_server_mounts_for_its_tenant_and_unmounts_on_delete() {
    crate::provisioning::demo_binary();
    let system = TestSystem::start_custom(
        |c| c.mcp.upstream_check_secs = 1,
        "avb-workflows,avb-provisioning,avb-billing,avb-upstream",
    )
    .await;
    let watcher = ListWatcher::default();
    let client = session(&system, watcher.clone()).await;
    let r = call_tool(
        &client,
        "create_mcp_server",
        json!({"service_name": "notes", "template": "demo",
               "environment": {"ECHO_PREFIX": "hi: "}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let id = r.structured_content.clone().expect("structured")["server_id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for_tools(&client, "the provisioned server's tools mounted", |n| {
        n.contains("notes_echo") && n.contains("notes_add")
    })
    .await;
    let r = call_tool(&client, "notes_echo", json!({"message": "mounted"})).await;
    assert_eq!(text_of(&r), "hi: mounted");
    let status = call_tool(&client, "get_server_status", json!({})).await;
    let notes = upstream_status(&status, "notes");
    assert_eq!(notes["server_id"], id.as_str(), "{notes}");
    assert_eq!(notes["status"], "up", "{notes}");

    let before = watcher.seen();
    let r = call_tool(&client, "delete_mcp_server", json!({"server_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    wait_for_tools(&client, "unmounted after delete", |n| {
        !n.contains("notes_echo")
    })
    .await;
    assert!(watcher.seen() > before, "no tools/list_changed on unmount");
    drop(client);
    system.stop().await;
}

/// Polls the REST job view until it is no longer waiting or running.
async fn finished_job(system: &TestSystem, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = crate::support::get_json(&format!("{}/api/v2/jobs/{job}", system.base_url)).await;
        if v["status"] != "input_required" && v["status"] != "running" {
            return v;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_mounted_tool_that_needs_approval_runs_only_once_a_human_approves_its_arguments() {
    use avb_config::{ApprovalMode, ApprovalRule};
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            let mut everything = everything_stdio();
            everything.allowed_tools = Some(["get-sum", "echo"].map(String::from).to_vec());
            everything.require_approval =
                ApprovalRule::PerTool([("get-sum".to_string(), ApprovalMode::Always)].into());
            c.mcp_servers.insert("everything".into(), everything);
        },
        QUEUES,
    )
    .await;
    let client = session(&system, ()).await;
    wait_for_tools(&client, "mounted", |n| n.contains("everything_get-sum")).await;
    // echo is not covered: it runs at once.
    let r = call_tool(&client, "everything_echo", json!({"message": "free"})).await;
    assert!(text_of(&r).contains("free"), "{}", text_of(&r));

    let http = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for decision in ["approve", "reject", "approve-other-arguments"] {
        let r = call_tool(&client, "everything_get-sum", json!({"a": 20, "b": 22})).await;
        let out = r.structured_content.clone().expect("structured");
        assert_eq!(out["status"], "input_required", "{out}");
        let job = out["job_id"].as_str().expect("job").to_string();
        let digest = out["pending_approval"]["digest"].as_str().expect("digest");
        let waiting = finished_job_or_waiting(&system, &job).await;
        assert_eq!(waiting["status"], "input_required", "{waiting}");
        let (path, body) = match decision {
            "approve" => ("approve", json!({ "digest": digest })),
            "reject" => ("reject", json!({ "reason": "not today" })),
            _ => (
                "approve",
                json!({ "digest": avb_workflows::approval::arguments_digest(
                    "everything_get-sum", &json!({"a": 20, "b": 23})) }),
            ),
        };
        let sent = http
            .post(format!("{}/api/v2/jobs/{job}/{path}", system.base_url))
            .json(&body)
            .send()
            .await
            .expect("decide");
        assert_eq!(sent.status().as_u16(), 200, "{decision}");
        outcomes.push(finished_job(&system, &job).await);
    }
    assert_eq!(outcomes[0]["status"], "completed", "{}", outcomes[0]);
    assert!(
        outcomes[0]["result"].to_string().contains("42"),
        "{}",
        outcomes[0]
    );
    assert_eq!(outcomes[1]["status"], "failed", "{}", outcomes[1]);
    assert_eq!(
        outcomes[1]["error"]["kind"], "ApprovalRejected",
        "{}",
        outcomes[1]
    );
    assert_eq!(outcomes[2]["status"], "failed", "{}", outcomes[2]);
    assert_eq!(
        outcomes[2]["error"]["kind"], "ApprovalMismatch",
        "{}",
        outcomes[2]
    );
    drop(client);
    system.stop().await;
}

/// The job view right after start (it may not have run its first task yet).
async fn finished_job_or_waiting(system: &TestSystem, job: &str) -> Value {
    crate::support::get_json(&format!("{}/api/v2/jobs/{job}", system.base_url)).await
}

#[tokio::test]
async fn a_second_avb_mounts_as_an_upstream() {
    // With the conformance fixtures: tools whose results are audio and embedded resources.
    let peer =
        TestSystem::start_custom(|c| c.mcp.conformance_fixtures = true, "avb-workflows").await;
    let peer_url = peer.mcp_url();
    let peer_sse_url = peer.sse_url();
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            // The same peer over the legacy HTTP+SSE transport too.
            c.mcp_servers.insert(
                "legacy".into(),
                avb_config::UpstreamServer {
                    server_url: Some(peer_sse_url),
                    transport: Some(avb_config::UpstreamTransport::Sse),
                    allowed_tools: Some(vec!["list_voices".into()]),
                    ..Default::default()
                },
            );
            c.mcp_servers.insert(
                "peer".into(),
                avb_config::UpstreamServer {
                    server_url: Some(peer_url),
                    allowed_tools: Some(
                        [
                            "list_voices",
                            "durable_echo",
                            "test_audio_content",
                            "test_embedded_resource",
                        ]
                        .map(String::from)
                        .to_vec(),
                    ),
                    description: Some("another AgentVoiceBox".into()),
                    ..Default::default()
                },
            );
        },
        QUEUES,
    )
    .await;
    let client = session(&system, ()).await;
    wait_for_tools(&client, "the peer's tools mounted", |n| {
        n.contains("peer_list_voices")
            && n.contains("peer_durable_echo")
            && n.contains("legacy_list_voices")
    })
    .await;
    let direct = session(&peer, ()).await;
    let want = call_tool(&direct, "list_voices", json!({})).await;
    for name in ["peer_list_voices", "legacy_list_voices"] {
        let via = call_tool(&client, name, json!({})).await;
        assert_eq!(
            serde_json::to_value(&via).expect("json"),
            serde_json::to_value(&want).expect("json"),
            "{name}"
        );
    }
    // Audio and embedded resources pass through unchanged too.
    for tool in ["test_audio_content", "test_embedded_resource"] {
        let via = call_tool(&client, &format!("peer_{tool}"), json!({})).await;
        let want = call_tool(&direct, tool, json!({})).await;
        assert!(
            want.content.first().is_some_and(|c| c.as_text().is_none()),
            "{tool}: {want:?}"
        );
        assert_eq!(
            serde_json::to_value(&via).expect("json"),
            serde_json::to_value(&want).expect("json"),
            "{tool}"
        );
    }
    // A durable call through two AgentVoiceBoxes: a job here, a job there.
    let r = call_tool(
        &client,
        "peer_durable_echo",
        json!({"message": "twice durable"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(
        serde_json::to_string(&r)
            .expect("json")
            .contains("twice durable"),
        "{}",
        text_of(&r)
    );
    drop(client);
    drop(direct);
    system.stop().await;
    peer.stop().await;
}

async fn available<H: ClientHandler>(client: &RunningService<RoleClient, H>) -> i64 {
    let b = call_tool(client, "get_balance", json!({})).await;
    let b = b.structured_content.clone().expect("structured");
    assert_eq!(b["held"], 0, "{b}");
    b["available"].as_i64().expect("available")
}

#[tokio::test]
async fn priced_upstream_calls_are_charged_once_through_the_ledger() {
    let system = TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            let mut everything = everything_stdio();
            everything.allowed_tools = Some(["get-sum", "echo"].map(String::from).to_vec());
            everything.credits_per_call = 5;
            c.mcp_servers.insert("everything".into(), everything);
        },
        "avb-workflows,avb-upstream,avb-billing",
    )
    .await;
    let client = session(&system, ()).await;
    wait_for_tools(&client, "mounted", |n| n.contains("everything_get-sum")).await;
    let start = available(&client).await;
    let r = call_tool(&client, "everything_get-sum", json!({"a": 1, "b": 1})).await;
    assert!(text_of(&r).contains('2'), "{}", text_of(&r));
    assert_eq!(available(&client).await, start - 5, "one call, 5 credits");
    let r = call_tool(
        &client,
        "batch_execute",
        json!({"calls": [
            {"tool": "everything_get-sum", "arguments": {"a": 1, "b": 2}},
            {"tool": "everything_echo", "arguments": {"message": "paid"}},
        ]}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(available(&client).await, start - 15, "two more calls");
    let usage = call_tool(&client, "get_usage", json!({})).await;
    let usage = serde_json::to_string(&usage.structured_content).expect("json");
    assert!(
        usage.contains("everything_get-sum") && usage.contains("batch_execute"),
        "{usage}"
    );
    drop(client);
    system.stop().await;
}
