//! Approval by the person at the MCP client (`approver = "client"`): on 2026-07-28 a call that
//! needs approval answers `input_required` with an elicitation that shows the exact arguments
//! and a sealed `requestState`; the retry with the approval runs the command once, and a
//! changed, foreign, replayed or expired state runs nothing. As a task, the same question is the
//! task's `input_required`, answered with `tasks/update`. Older clients and clients that cannot
//! elicit keep the operator's path. Raw JSON-RPC over HTTP, so the test controls every byte of
//! the retry; real mosquitto and the Zigbee2MQTT-behaving simulator count what reaches the plug.

use std::time::{Duration, Instant};

use avb_config::{ApprovalMode, ApprovalRule, Approver};
use avb_devices::sim::Simulator;
use serde_json::{Value, json};

use crate::support::TestSystem;
use crate::support::mcp::{call, keyed_session, rpc_response, text_of};
use crate::support::mosquitto::Mosquitto;

const PLUG: &str = "kitchen/coffee_plug";
const EXPIRY_SECS: u64 = 5;
const TASKS: &str = "io.modelcontextprotocol/tasks";

/// One stateless 2026-07-28 request with `capabilities`; the JSON-RPC response (SSE or JSON).
async fn rpc(url: &str, token: &str, method: &str, params: Value, capabilities: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "approvals-test", "version": "1"},
    });
    let name = params
        .get("name")
        .or_else(|| params.get("taskId"))
        .and_then(Value::as_str)
        .map(String::from);
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    let response = request
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
        .send()
        .await
        .expect("send");
    rpc_response(response, &json!(7)).await
}

fn is_error_result(r: &Value) -> bool {
    r["result"]["isError"] == json!(true)
}

fn result_text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn jobs_of(base: &str, token: &str) -> usize {
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/v2/jobs"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    v["jobs"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_at_the_client_approves_once_and_exactly_these_arguments() {
    let broker = Mosquitto::start();
    let sim = Simulator::demo("zigbee2mqtt");
    let _sim_task = sim.connect(&broker.url()).expect("simulator");
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.devices.mqtt_url = Some(url);
        c.devices.zigbee2mqtt.require_approval = ApprovalRule::PerTool(
            [("smart_home_control".to_string(), ApprovalMode::Always)].into(),
        );
        c.devices.approval_expiry_secs = EXPIRY_SECS;
        c.devices.approver = Approver::Client;
        // The home is the `home` tenant's (a home serves `local` only unless it says so).
        c.devices.zigbee2mqtt.tenants = avb_config::ServedTenants::new(["home"]);
    })
    .await;
    let store = system.store.as_ref().expect("store");
    let tenant = store.create_tenant("home").await.expect("tenant");
    store
        .grant(&tenant.id, 100, "client-approvals-credits", "test")
        .await
        .expect("grant");
    let agent = store
        .create_key(&tenant.id, avb_store::Role::Agent, "assistant")
        .await
        .expect("agent key");
    let other = store
        .create_key(&tenant.id, avb_store::Role::Agent, "another assistant")
        .await
        .expect("other key");
    let (mcp, base) = (system.mcp_url(), system.base_url.clone());
    let elicits = json!({"elicitation": {}});
    let turn_on = json!({"action": "turn_on", "device": PLUG});
    let call_with = |args: &Value, extra: Value| {
        let mut p = json!({"name": "smart_home_control", "arguments": args});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    };
    let approve = json!({"approval": {"action": "accept", "content": {"approve": true}}});

    // Round 1: the question, with the exact arguments; nothing starts.
    let asked = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_on, json!({})),
        elicits.clone(),
    )
    .await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let question = &result["inputRequests"]["approval"];
    assert_eq!(question["method"], "elicitation/create", "{asked}");
    let message = question["params"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("smart_home_control") && message.contains(PLUG),
        "{message}"
    );
    let state = result["requestState"]
        .as_str()
        .expect("requestState")
        .to_string();
    assert_eq!(
        jobs_of(&base, &agent.token).await,
        0,
        "asking starts no job"
    );

    // A changed state, the state with other arguments, or another key's retry: refused.
    let tampered = format!("{state}x");
    let turn_off = json!({"action": "turn_off", "device": PLUG});
    for (token, args, sealed) in [
        (&agent.token, &turn_on, tampered.as_str()),
        (&agent.token, &turn_off, state.as_str()),
        (&other.token, &turn_on, state.as_str()),
    ] {
        let extra = json!({"requestState": sealed, "inputResponses": approve});
        let r = rpc(
            &mcp,
            token,
            "tools/call",
            call_with(args, extra),
            elicits.clone(),
        )
        .await;
        assert!(is_error_result(&r), "{r}");
        assert!(result_text(&r).contains("requestState"), "{r}");
    }
    // Declined: nothing runs.
    let declined =
        json!({"requestState": state, "inputResponses": {"approval": {"action": "decline"}}});
    let r = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_on, declined),
        elicits.clone(),
    )
    .await;
    assert!(
        is_error_result(&r) && result_text(&r).contains("declined"),
        "{r}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.sets_received(PLUG), 0, "nothing was approved");
    assert_eq!(
        jobs_of(&base, &agent.token).await,
        0,
        "refusals start no job"
    );

    // Approved: runs once, and the job records who approved, how and when.
    let extra = json!({"requestState": state, "inputResponses": approve});
    let done = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_on, extra.clone()),
        elicits.clone(),
    )
    .await;
    assert!(!is_error_result(&done), "{done}");
    let out = &done["result"]["structuredContent"];
    assert_eq!(out["status"], "completed", "{done}");
    let by = out["approval"]["by"].as_str().unwrap_or_default();
    assert!(
        by.contains(&agent.key_id) && by.contains("MCP client"),
        "{done}"
    );
    assert_eq!(sim.sets_received(PLUG), 1);
    // Replayed: the approval was used.
    let again = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_on, extra),
        elicits.clone(),
    )
    .await;
    assert!(
        is_error_result(&again) && result_text(&again).contains("used already"),
        "{again}"
    );
    assert_eq!(sim.sets_received(PLUG), 1, "a replay runs nothing");

    // Expired: a question answered after the expiry runs nothing.
    let asked = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_off, json!({})),
        elicits.clone(),
    )
    .await;
    let late = asked["result"]["requestState"]
        .as_str()
        .expect("state")
        .to_string();
    tokio::time::sleep(Duration::from_secs(EXPIRY_SECS + 1)).await;
    let extra = json!({"requestState": late, "inputResponses": approve});
    let r = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_off, extra),
        elicits.clone(),
    )
    .await;
    assert!(
        is_error_result(&r) && result_text(&r).contains("expired"),
        "{r}"
    );
    assert_eq!(sim.sets_received(PLUG), 1);

    // As a task: the task waits in input_required with the same question; tasks/update decides.
    let caps = json!({"elicitation": {}, "extensions": {TASKS: {}}});
    let created = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_off, json!({})),
        caps.clone(),
    )
    .await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let task_id = created["result"]["taskId"]
        .as_str()
        .expect("task id")
        .to_string();
    let get = json!({"taskId": task_id});
    let waiting = rpc(&mcp, &agent.token, "tasks/get", get.clone(), caps.clone()).await;
    assert_eq!(waiting["result"]["status"], "input_required", "{waiting}");
    assert_eq!(
        waiting["result"]["inputRequests"]["approval"]["method"], "elicitation/create",
        "{waiting}"
    );
    let update = json!({"taskId": task_id, "inputResponses": approve});
    let ack = rpc(&mcp, &agent.token, "tasks/update", update, caps.clone()).await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let t = rpc(&mcp, &agent.token, "tasks/get", get.clone(), caps.clone()).await;
        if t["result"]["status"] != "input_required" && t["result"]["status"] != "working" {
            break t;
        }
        assert!(Instant::now() < deadline, "task never finished: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(finished["result"]["status"], "completed", "{finished}");
    assert_eq!(sim.sets_received(PLUG), 2);

    // A 2026-07-28 client that cannot elicit, and a 2025-11-25 client: the operator decides.
    let r = rpc(
        &mcp,
        &agent.token,
        "tools/call",
        call_with(&turn_on, json!({})),
        json!({}),
    )
    .await;
    assert_eq!(
        r["result"]["structuredContent"]["status"], "input_required",
        "{r}"
    );
    let legacy = keyed_session(mcp.clone(), &agent.token).await;
    let r = call(&legacy, "smart_home_control", turn_on.clone()).await;
    let out = r.structured_content.clone().expect("structured");
    assert_eq!(out["status"], "input_required", "{}", text_of(&r));
    assert!(out["pending_approval"]["digest"].is_string(), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.sets_received(PLUG), 2, "operator-path jobs wait");
    legacy.cancel().await.ok();
    system.stop().await;
}
