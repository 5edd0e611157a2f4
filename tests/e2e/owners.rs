//! Jobs belong to the key that started them. Two AGENT keys and one HUMAN key of one tenant,
//! against the real api, store, Temporal dev server and workers: the second agent gets "not
//! found" for the first agent's jobs on every path (REST, MCP tools, resources and
//! subscriptions, tasks of both protocol eras, the WebSocket), exactly as for another tenant's
//! job; the HUMAN key sees both agents' jobs, filters them by owner and cancels the first
//! agent's; the owner shows in the job view and as the `AvbOwner` search attribute; a job
//! started before owners were recorded is seen by the HUMAN key only; `avb admin keys` counts
//! each key's jobs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::core_tasks::Session;
use crate::speech_streaming::websocket_cannot_reach;
use crate::support::TestSystem;
use crate::support::mcp::{call, keyed_session, text_of};
use avb_store::Role;
use rmcp::model::{ReadResourceRequestParams, SubscribeRequestParams};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(url: &str, key: &str) -> reqwest::Response {
    http().get(url).bearer_auth(key).send().await.expect("GET")
}

/// The job ids `GET /api/v2/jobs{query}` lists for `key`.
async fn listed(system: &TestSystem, key: &str, query: &str) -> BTreeSet<String> {
    let r = get(&format!("{}/api/v2/jobs{query}", system.base_url), key).await;
    assert_eq!(r.status(), 200, "list {query}");
    let page: Value = r.json().await.expect("json");
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_str().expect("id").to_string())
        .collect()
}

/// Every way to reach a job, tried with `key` on `job_id`: each must be "not found".
async fn cannot_reach(system: &TestSystem, key: &str, job_id: &str) {
    let base = &system.base_url;
    // REST.
    for (method, path) in [
        ("GET", format!("/api/v2/jobs/{job_id}")),
        ("POST", format!("/api/v2/jobs/{job_id}/cancel")),
        ("GET", format!("/api/v2/jobs/{job_id}/events")),
        ("GET", format!("/api/v2/audio/{job_id}")),
        ("GET", format!("/api/v2/audio/{job_id}/stream")),
    ] {
        let url = format!("{base}{path}");
        let req = match method {
            "GET" => http().get(&url),
            _ => http().post(&url),
        };
        let r = req.bearer_auth(key).send().await.expect("request");
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    assert!(
        !listed(system, key, "").await.contains(job_id),
        "REST list shows {job_id}"
    );

    // MCP tools, resources and subscriptions, tasks (the protocol era rmcp speaks).
    let client = keyed_session(system.mcp_url(), key).await;
    for tool in ["get_job", "cancel_job"] {
        let r = call(&client, tool, json!({"job_id": job_id})).await;
        assert_eq!(r.is_error, Some(true), "{tool}");
        assert!(text_of(&r).contains("not found"), "{tool}: {}", text_of(&r));
    }
    let r = call(&client, "list_jobs", json!({})).await;
    let page = r.structured_content.clone().unwrap_or_default();
    assert!(!page.to_string().contains(job_id), "list_jobs: {page}");
    for uri in [
        format!("avb://jobs/{job_id}"),
        format!("avb://audio/{job_id}"),
    ] {
        let read = client
            .peer()
            .read_resource(ReadResourceRequestParams::new(uri.clone()))
            .await;
        assert!(
            format!("{read:?}").contains("not found"),
            "read {uri}: {read:?}"
        );
    }
    // The session-era subscription (rmcp marks it legacy; it is what such clients send).
    #[allow(deprecated)]
    let subscribed = client
        .peer()
        .subscribe(SubscribeRequestParams::new(format!("avb://jobs/{job_id}")))
        .await;
    assert!(
        format!("{subscribed:?}").contains("not found"),
        "subscribe: {subscribed:?}"
    );
    let task = client
        .peer()
        .get_task(rmcp::model::GetTaskParams::new(job_id.to_string()))
        .await;
    assert!(task.is_err(), "tasks/get: {task:?}");
    client.cancel().await.ok();

    // Tasks of protocol 2025-11-25.
    let (mut session, _) = Session::open(&system.mcp_url(), key).await;
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let answer = session.request(method, json!({"taskId": job_id})).await;
        assert!(
            answer.get("error").is_some() && answer.to_string().contains("not found"),
            "{method}: {answer}"
        );
    }
    let tasks = session.request("tasks/list", json!({})).await;
    assert!(!tasks.to_string().contains(job_id), "tasks/list: {tasks}");

    websocket_cannot_reach(system, key, job_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_see_their_own_jobs_and_humans_the_whole_tenant() {
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.billing.enabled = false;
    })
    .await;
    let store = system.store.as_ref().expect("store");
    let acme = store.create_tenant("acme").await.expect("tenant");
    let key = |role, label: &'static str| {
        let id = acme.id.clone();
        async move { store.create_key(&id, role, label).await.expect("key") }
    };
    let first = key(Role::Agent, "first agent").await;
    let second = key(Role::Agent, "second agent").await;
    let human = key(Role::Human, "ops").await;

    // The first agent: a finished speech job, and a long one it leaves running as a task.
    let client = keyed_session(system.mcp_url(), &first.token).await;
    let r = call(
        &client,
        "generate_speech",
        json!({"text": "Owners see their own jobs."}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    client.cancel().await.ok();
    let finished = listed(&system, &first.token, "")
        .await
        .into_iter()
        .next()
        .expect("the first agent's job");
    let (mut session, _) = Session::open(&system.mcp_url(), &first.token).await;
    let long = "The lamp in the hall stays on while the house is asleep. ".repeat(60);
    let created = session
        .request(
            "tools/call",
            json!({"name": "generate_speech", "arguments": {"text": long}, "task": {"ttl": 600000}}),
        )
        .await;
    let running = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a task: {created}"))
        .to_string();

    // The owner is in the job view and on the workflow.
    let view: Value = get(
        &format!("{}/api/v2/jobs/{finished}", system.base_url),
        &first.token,
    )
    .await
    .json()
    .await
    .expect("view");
    assert_eq!(
        view["owner"],
        json!({"id": first.key_id, "label": "first agent"}),
        "{view}"
    );
    let desc = system
        .client
        .get_workflow_handle::<temporalio_client::UntypedWorkflow>(finished.clone())
        .describe(Default::default())
        .await
        .expect("describe");
    assert_eq!(
        desc.search_attributes()
            .get(&avb_workflows::search::OWNER)
            .as_deref(),
        Some(first.key_id.as_str())
    );

    // The second agent reaches neither, and lists only its own job.
    cannot_reach(&system, &second.token, &finished).await;
    cannot_reach(&system, &second.token, &running).await;
    let client = keyed_session(system.mcp_url(), &second.token).await;
    let r = call(&client, "durable_echo", json!({"message": "mine"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    client.cancel().await.ok();
    let seconds = listed(&system, &second.token, "").await;
    assert_eq!(seconds.len(), 1, "{seconds:?}");
    let seconds_job = seconds.into_iter().next().expect("job");
    // An owner filter does not widen an agent's view.
    let widened = listed(&system, &second.token, &format!("?owner={}", first.key_id)).await;
    assert!(widened.is_empty(), "{widened:?}");

    // A job started before owners were recorded: the HUMAN key sees it, no agent does.
    let before = avb_api::auth::Caller {
        tenant: "acme".into(),
        role: Role::Agent,
        key_id: None,
        label: None,
    };
    let (ownerless, _) = avb_api::echo::run_echo(
        &system.client,
        &before,
        avb_workflows::echo::EchoInput {
            message: "from before".into(),
        },
        false,
        true,
    )
    .await
    .expect("a job without an owner");
    let r = get(
        &format!("{}/api/v2/jobs/{ownerless}", system.base_url),
        &first.token,
    )
    .await;
    assert_eq!(r.status(), 404, "an agent sees an ownerless job");

    // The HUMAN key sees the whole tenant, filters by owner, and cancels the first agent's job.
    let all = listed(&system, &human.token, "").await;
    for job in [&finished, &running, &seconds_job, &ownerless] {
        assert!(all.contains(job), "{job} missing from {all:?}");
    }
    let firsts = listed(&system, &human.token, &format!("?owner={}", first.key_id)).await;
    assert_eq!(
        firsts,
        BTreeSet::from([finished.clone(), running.clone()]),
        "owner filter"
    );
    let client = keyed_session(system.mcp_url(), &human.token).await;
    let r = call(&client, "list_jobs", json!({"owner": second.key_id})).await;
    let page = r.structured_content.clone().expect("structured");
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![seconds_job.as_str()], "{page}");
    let r = call(&client, "cancel_job", json!({"job_id": running})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view: Value = get(
            &format!("{}/api/v2/jobs/{running}", system.base_url),
            &human.token,
        )
        .await
        .json()
        .await
        .expect("view");
        if view["status"] == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "not cancelled: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client.cancel().await.ok();

    // `avb admin keys` counts each key's jobs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_avb"))
        .args(["admin", "keys", "--tenant", "acme"])
        .envs(system.child_env())
        .output()
        .expect("avb admin keys");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let jobs_of = |key_id: &str| -> String {
        stdout
            .lines()
            .find(|l| l.starts_with(key_id))
            .and_then(|l| l.split('\t').nth(4))
            .unwrap_or_else(|| panic!("no line for {key_id}: {stdout}"))
            .to_string()
    };
    assert_eq!(jobs_of(&first.key_id), "2", "{stdout}");
    assert_eq!(jobs_of(&second.key_id), "1", "{stdout}");
    assert_eq!(jobs_of(&human.key_id), "0", "{stdout}");
    system.stop().await;
}
