//! Tasks of protocol 2025-11-25 over raw Streamable HTTP, as that revision's clients speak them:
//! `capabilities.tasks` at initialize, `execution.taskSupport` on durable tools, `params.task`
//! on `tools/call` → `CreateTaskResult {task}`, then `tasks/get`, `tasks/result`, `tasks/list`
//! and `tasks/cancel`, over real jobs; a call without `params.task` stays a plain result, and
//! another tenant's task is "not found".

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestSystem;
use crate::support::mcp::rpc_response;

/// A 2025-11-25 session of one key.
pub(crate) struct Session {
    url: String,
    token: String,
    id: String,
    next: u64,
}

impl Session {
    pub(crate) async fn open(url: &str, token: &str) -> (Self, Value) {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tasks": {"list": {}, "cancel": {}}},
            "clientInfo": {"name": "core-tasks-test", "version": "1"}}});
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .expect("initialize");
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("session id")
            .to_string();
        let answer = rpc_response(response, &json!(0)).await;
        let mut session = Self {
            url: url.to_string(),
            token: token.to_string(),
            id,
            next: 1,
        };
        session
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        (session, answer)
    }

    /// The session's stream (GET): the `notifications/tasks/status` messages it carries, as
    /// they come, until `until` says stop or 30 s pass.
    async fn watch_task_status(
        &self,
        until: impl Fn(&Value) -> bool + Send + 'static,
    ) -> tokio::task::JoinHandle<Vec<Value>> {
        use futures::StreamExt as _;
        let response = reqwest::Client::new()
            .get(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .expect("open the session's stream");
        assert!(response.status().is_success(), "{}", response.status());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut stream = response.bytes_stream();
            let mut buffer = String::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    let Some(data) = line.trim_end().strip_prefix("data:") else {
                        continue;
                    };
                    let Ok(message) = serde_json::from_str::<Value>(data.trim()) else {
                        continue;
                    };
                    if message["method"] == "notifications/tasks/status" {
                        let stop = until(&message["params"]);
                        seen.push(message["params"].clone());
                        if stop {
                            return seen;
                        }
                    }
                }
            }
            seen
        })
    }

    async fn post(&mut self, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &self.id)
            .json(&body)
            .send()
            .await
            .expect("post")
    }

    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = json!(self.next);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.post(body).await;
        rpc_response(response, &id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_11_25_client_runs_durable_tools_as_tasks_it_asked_for() {
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.billing.enabled = false;
    })
    .await;
    let store = system.store.as_ref().expect("store");
    let mut keys = Vec::new();
    for name in ["home", "neighbour"] {
        let tenant = store.create_tenant(name).await.expect("tenant");
        let key = store
            .create_key(&tenant.id, avb_store::Role::Agent, "agent")
            .await
            .expect("key");
        keys.push(key.token);
    }
    let url = system.mcp_url();
    let (mut s, init) = Session::open(&url, &keys[0]).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(
        init["result"]["capabilities"]["tasks"]["requests"]["tools"]["call"],
        json!({}),
        "{init}"
    );

    let tools = s.request("tools/list", json!({})).await;
    let support = |name: &str| {
        tools["result"]["tools"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name))
            .map(|t| t["execution"]["taskSupport"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(support("durable_echo"), "optional", "{tools}");
    assert_eq!(support("generate_speech"), "optional");
    assert_eq!(
        support("list_voices"),
        Value::Null,
        "fast tools take no tasks"
    );

    // Asked for a task: a task, created only once its job started; its status changes are
    // pushed on the session's stream.
    let watch = s
        .watch_task_status(|task| task["status"] == "completed")
        .await;
    let created = s
        .request(
            "tools/call",
            json!({"name": "durable_echo", "arguments": {"message": "core"}, "task": {"ttl": 60000}}),
        )
        .await;
    let task = &created["result"]["task"];
    assert_eq!(task["status"], "working", "{created}");
    assert!(created["result"].get("resultType").is_none(), "{created}");
    let task_id = task["taskId"].as_str().expect("task id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = s.request("tasks/get", json!({"taskId": task_id})).await;
        assert_eq!(t["result"]["taskId"], task_id.as_str(), "{t}");
        if t["result"]["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "task never completed: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = s.request("tasks/result", json!({"taskId": task_id})).await;
    assert_eq!(
        result["result"]["structuredContent"]["message"], "core",
        "{result}"
    );
    assert_eq!(
        result["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        task_id.as_str()
    );
    let pushed = watch.await.expect("watch");
    assert!(
        pushed
            .iter()
            .any(|t| t["taskId"] == task_id.as_str() && t["status"] == "completed"),
        "no completed status pushed: {pushed:?}"
    );
    let listed = s.request("tasks/list", json!({})).await;
    let ids: Vec<&str> = listed["result"]["tasks"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["taskId"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&task_id.as_str()), "{listed}");

    // Not asked: the plain result, as every older client gets.
    let plain = s
        .request(
            "tools/call",
            json!({"name": "durable_echo", "arguments": {"message": "plain"}}),
        )
        .await;
    assert_eq!(
        plain["result"]["structuredContent"]["message"], "plain",
        "{plain}"
    );
    assert!(plain["result"].get("task").is_none(), "{plain}");

    // Bad input is the tool's error, and no task.
    let bad = s
        .request(
            "tools/call",
            json!({"name": "generate_speech", "arguments": {"text": "hi", "voice_id": "nope"}, "task": {}}),
        )
        .await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(
        bad["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("nope")
    );

    // A long job, cancelled.
    let long = "A sentence to speak while the client decides to cancel it. ".repeat(20);
    let created = s
        .request(
            "tools/call",
            json!({"name": "generate_speech", "arguments": {"text": long}, "task": {}}),
        )
        .await;
    let speech = created["result"]["task"]["taskId"]
        .as_str()
        .expect("task id")
        .to_string();
    let cancelled = s.request("tasks/cancel", json!({"taskId": speech})).await;
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = s.request("tasks/get", json!({"taskId": speech})).await;
        if t["result"]["status"] == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "task never cancelled: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Unknown, and another tenant's: not found.
    let unknown = s.request("tasks/get", json!({"taskId": "job_nope"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let (mut other, _) = Session::open(&url, &keys[1]).await;
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let r = other.request(method, json!({"taskId": task_id})).await;
        assert_eq!(r["error"]["code"], -32602, "{method}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("not found"),
            "{r}"
        );
    }
    let theirs = other.request("tasks/list", json!({})).await;
    assert_eq!(theirs["result"]["tasks"], json!([]), "{theirs}");
    system.stop().await;
}
