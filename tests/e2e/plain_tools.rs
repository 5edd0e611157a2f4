//! Tools over plain HTTP (`POST /tools/list`, `POST /tools/call` answering ndjson) with a real
//! API key: the MCP tool list, a speech call whose progress arrives line by line before its
//! result, errors as lines or statuses, and the key required.

use crate::support::TestSystem;
use avb_store::Role;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_lists_tools_and_streams_a_calls_progress_then_its_result() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let tenant = system.tenant_id("local").await;
    let key = system
        .store()
        .create_key(&tenant, Role::Agent, "plain http")
        .await
        .expect("key");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", system.base_url))
            .bearer_auth(&key.token)
            .json(&body)
    };

    let listed: Value = post("/tools/list", json!({}))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"generate_speech"), "{names:?}");

    // Several sentences: several chunks, each a progress line before the result line.
    let text = "First sentence here. A second one follows it. Then a third sentence comes. \
                And a fourth closes the text.";
    let response = post(
        "/tools/call",
        json!({"name": "generate_speech", "arguments": {"text": text, "format": "mp3"}}),
    )
    .send()
    .await
    .expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let body = response.text().await.expect("body");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let (last, before) = lines.split_last().expect("lines");
    assert_eq!(last["type"], "result", "{body}");
    assert_ne!(last["result"]["isError"], true, "{body}");
    let audio = last["result"]["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "audio"))
        .expect("audio block");
    assert_eq!(audio["mimeType"], "audio/mpeg");
    assert!(
        before.iter().any(|l| l["type"] == "progress"),
        "progress lines came before the result: {body}"
    );
    assert!(before.iter().all(|l| l["type"] == "progress"), "{body}");

    // A tool error is a result with isError; an unknown tool a JSON-RPC error line.
    let bad = post(
        "/tools/call",
        json!({"name": "generate_speech", "arguments": {"text": "hi", "voice_id": "af_nobody"}}),
    )
    .send()
    .await
    .expect("call")
    .text()
    .await
    .expect("body");
    let line: Value = serde_json::from_str(bad.lines().last().expect("line")).expect("json");
    assert_eq!(line["result"]["isError"], true, "{bad}");
    let unknown = post(
        "/tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    )
    .send()
    .await
    .expect("call")
    .text()
    .await
    .expect("body");
    assert!(unknown.contains("\"type\":\"error\""), "{unknown}");
    let malformed = post("/tools/call", json!({"tool": "generate_speech"}))
        .send()
        .await
        .expect("call");
    assert_eq!(malformed.status(), 400);
    let anonymous = http
        .post(format!("{}/tools/list", system.base_url))
        .json(&json!({}))
        .send()
        .await
        .expect("list");
    assert_eq!(anonymous.status(), 401);
    system.stop().await;
}
