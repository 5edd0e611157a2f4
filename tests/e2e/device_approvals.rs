//! Approval policies for device commands: with `require_approval = always`, a command
//! waits as `input_required` with nothing sent; only a HUMAN key approves or rejects; the
//! approval names the digest of the exact arguments; unapproved commands expire as rejected.
//! Real mosquitto, the Zigbee2MQTT-behaving simulator counts what reaches each device.

use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::{call, keyed_session, text_of};
use crate::support::mosquitto::Mosquitto;
use avb_config::{ApprovalMode, ApprovalRule};
use avb_devices::sim::Simulator;
use avb_workflows::approval::arguments_digest;
use serde_json::{Value, json};

const PLUG: &str = "kitchen/coffee_plug";
const EXPIRY_SECS: u64 = 6;

async fn job_view(base: &str, key: &str, job_id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/v2/jobs/{job_id}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("get job")
        .json()
        .await
        .expect("json")
}

/// Polls the job until it leaves `running`/`input_required`.
async fn finished(base: &str, key: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = job_view(base, key, job_id).await;
        if !matches!(v["status"].as_str(), Some("running" | "input_required")) {
            return v;
        }
        assert!(Instant::now() < deadline, "job never finished: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn commands_wait_for_a_human_and_run_only_as_approved() {
    let broker = Mosquitto::start();
    let sim = Simulator::demo("zigbee2mqtt");
    let sim_task = sim.connect(&broker.url()).expect("simulator");
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.devices.mqtt_url = Some(url);
        c.devices.zigbee2mqtt.require_approval = ApprovalRule::PerTool(
            [("smart_home_control".to_string(), ApprovalMode::Always)].into(),
        );
        c.devices.approval_expiry_secs = EXPIRY_SECS;
        // The home is the `home` tenant's (a home serves `local` only unless it says so).
        c.devices.zigbee2mqtt.tenants = avb_config::ServedTenants::new(["home"]);
    })
    .await;
    let store = system.store.as_ref().expect("store");
    let tenant = store.create_tenant("home").await.expect("tenant");
    // Commands are billed (one credit each at the default tariff).
    store
        .grant(&tenant.id, 100, "approvals-test-credits", "test")
        .await
        .expect("grant");
    let agent = store
        .create_key(&tenant.id, avb_store::Role::Agent, "assistant")
        .await
        .expect("agent key");
    let human = store
        .create_key(&tenant.id, avb_store::Role::Human, "owner's phone")
        .await
        .expect("human key");
    let other_agent = store
        .create_key(&tenant.id, avb_store::Role::Agent, "another assistant")
        .await
        .expect("second agent key");
    let agent_mcp = keyed_session(system.mcp_url(), &agent.token).await;
    let human_mcp = keyed_session(system.mcp_url(), &human.token).await;
    let base = system.base_url.clone();
    let turn_on = json!({"action": "turn_on", "device": PLUG});

    // Pending: the call returns at once, nothing reaches the device.
    let r = call(&agent_mcp, "smart_home_control", turn_on.clone()).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.clone().expect("structured");
    assert_eq!(out["status"], "input_required", "{out}");
    let job = out["job_id"].as_str().expect("job id").to_string();
    let digest = out["pending_approval"]["digest"].as_str().expect("digest");
    assert_eq!(digest, arguments_digest("smart_home_control", &turn_on));
    let view = job_view(&base, &agent.token, &job).await;
    assert_eq!(view["status"], "input_required", "{view}");
    assert_eq!(view["approval_request"]["arguments"], turn_on, "{view}");
    let listed = call(&agent_mcp, "list_jobs", json!({"status": "input_required"})).await;
    assert!(text_of(&listed).contains(&job), "{}", text_of(&listed));
    let running = call(&agent_mcp, "list_jobs", json!({"status": "running"})).await;
    assert_ne!(running.is_error, Some(true), "{}", text_of(&running));
    assert!(!text_of(&running).contains(&job), "{}", text_of(&running));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.sets_received(PLUG), 0, "sent before approval");
    // Waiting, it is seen by its own agent and the tenant's HUMAN keys, not by another agent.
    let seen = job_view(&base, &human.token, &job).await;
    assert_eq!(seen["status"], "input_required", "{seen}");
    let unseen = job_view(&base, &other_agent.token, &job).await;
    assert_eq!(unseen["error"]["code"], "not_found", "{unseen}");
    let other_mcp = keyed_session(system.mcp_url(), &other_agent.token).await;
    let waiting = call(&other_mcp, "list_jobs", json!({"status": "input_required"})).await;
    assert!(!text_of(&waiting).contains(&job), "{}", text_of(&waiting));

    // An AGENT key cannot approve, over MCP or REST.
    let r = call(
        &agent_mcp,
        "approve_job",
        json!({"job_id": job, "digest": digest}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("only HUMAN keys may approve"),
        "{}",
        text_of(&r)
    );
    let rest = reqwest::Client::new()
        .post(format!("{base}/api/v2/jobs/{job}/approve"))
        .bearer_auth(&agent.token)
        .json(&json!({"digest": digest}))
        .send()
        .await
        .expect("approve");
    assert_eq!(rest.status().as_u16(), 403);

    // Approved by a human (REST) → executed once, the record says who and when.
    let rest = reqwest::Client::new()
        .post(format!("{base}/api/v2/jobs/{job}/approve"))
        .bearer_auth(&human.token)
        .json(&json!({"digest": digest}))
        .send()
        .await
        .expect("approve");
    assert_eq!(rest.status().as_u16(), 200, "{:?}", rest.text().await);
    let done = finished(&base, &agent.token, &job).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["devices"][0]["state"]["state"], "ON",
        "{done}"
    );
    assert_eq!(
        done["result"]["approval"]["by"],
        human.key_id.as_str(),
        "{done}"
    );
    assert!(
        done["result"]["approval"]["at"].as_str().is_some(),
        "{done}"
    );
    assert_eq!(sim.sets_received(PLUG), 1);

    // Approving arguments other than the command's → not executed.
    let turn_off = json!({"action": "turn_off", "device": PLUG});
    let r = call(&agent_mcp, "smart_home_control", turn_off.clone()).await;
    let job = r.structured_content.expect("structured")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let other = arguments_digest(
        "smart_home_control",
        &json!({"action": "turn_off", "room": "kitchen"}),
    );
    let r = call(
        &human_mcp,
        "approve_job",
        json!({"job_id": job, "digest": other}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let done = finished(&base, &human.token, &job).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "ApprovalMismatch", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not executed")
    );

    // Rejected → never executed.
    let r = call(&agent_mcp, "smart_home_control", turn_off.clone()).await;
    let job = r.structured_content.expect("structured")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = call(
        &human_mcp,
        "reject_job",
        json!({"job_id": job, "reason": "keep the coffee hot"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let done = finished(&base, &human.token, &job).await;
    assert_eq!(done["error"]["kind"], "ApprovalRejected", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("keep the coffee hot"),
        "{done}"
    );
    // Deciding again: the job no longer waits.
    let r = call(&human_mcp, "reject_job", json!({"job_id": job})).await;
    assert!(
        text_of(&r).contains("NotAwaitingApproval"),
        "{}",
        text_of(&r)
    );

    // Nobody decides → rejected at expiry.
    let r = call(&agent_mcp, "smart_home_control", turn_off).await;
    let job = r.structured_content.expect("structured")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let done = finished(&base, &agent.token, &job).await;
    assert_eq!(done["error"]["kind"], "ApprovalExpired", "{done}");

    assert_eq!(
        sim.sets_received(PLUG),
        1,
        "only the approved command reached the plug"
    );
    agent_mcp.cancel().await.ok();
    human_mcp.cancel().await.ok();
    system.stop().await;
    sim_task.abort();
}

#[derive(Clone, Default)]
struct TasksClient;

impl rmcp::ClientHandler for TasksClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("avb-approval-tests", "1"),
        )
    }
}

#[tokio::test]
async fn a_command_as_an_mcp_task_shows_input_required_until_approved() {
    use rmcp::model::{CallToolRequestParams, CallToolResponse, GetTaskParams, TaskPayload};
    let broker = Mosquitto::start();
    let sim = Simulator::demo("zigbee2mqtt");
    let sim_task = sim.connect(&broker.url()).expect("simulator");
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.devices.mqtt_url = Some(url);
        c.devices.zigbee2mqtt.require_approval = ApprovalRule::All(ApprovalMode::Always);
    })
    .await;
    let client = rmcp::ClientServiceExt::serve_with_lifecycle(
        TasksClient,
        rmcp::transport::StreamableHttpClientTransport::from_uri(system.mcp_url()),
        crate::support::mcp::tasks_era(),
    )
    .await
    .expect("connect");
    let args = json!({"action": "set_temperature", "room": "hallway", "temperature": 21.5});
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("smart_home_control")
                .with_arguments(args.as_object().cloned().expect("object")),
        )
        .await
        .expect("tools/call");
    let CallToolResponse::Task(task) = response else {
        panic!("expected a task, got {response:?}")
    };
    let id = task.task.task_id;
    let get = || async {
        client
            .peer()
            .get_task(GetTaskParams::new(id.clone()))
            .await
            .expect("tasks/get")
            .task
    };
    let t = get().await;
    assert!(
        matches!(t.payload, TaskPayload::InputRequired { .. }),
        "{:?}",
        t.payload
    );
    let message = t.task.status_message.clone().unwrap_or_default();
    let digest = arguments_digest("smart_home_control", &args);
    assert!(message.contains(&digest), "{message}");
    assert_eq!(sim.sets_received("hallway/thermostat"), 0);

    // Approved (auth is off: the local operator is HUMAN) → the task completes.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/jobs/{id}/approve", system.base_url))
        .json(&json!({ "digest": digest }))
        .send()
        .await
        .expect("approve");
    assert_eq!(r.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let t = get().await;
        if let TaskPayload::Completed { result } = t.payload {
            break result;
        }
        assert!(Instant::now() < deadline, "{:?}", t.payload);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = &result["structuredContent"];
    assert_eq!(
        out["devices"][0]["state"]["occupied_heating_setpoint"], 21.5,
        "{result:?}"
    );
    assert_eq!(
        out["approval"]["by"], "local operator (authentication off)",
        "{result:?}"
    );
    assert_eq!(sim.sets_received("hallway/thermostat"), 1);
    client.cancel().await.ok();
    system.stop().await;
    sim_task.abort();
}
