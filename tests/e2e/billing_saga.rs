//! The billing saga inside `GenerateSpeech`, against the real api, workers, Temporal dev server
//! and store: a job holds its price before synthesis and settles it once after (on SQLite and on
//! PostgreSQL); too few credits refuse the job before any work with balance, price and
//! shortfall; a cancelled or failed job gets its hold back; a billing worker killed between hold
//! and settle settles exactly once after it is restarted.

use std::time::{Duration, Instant};

use crate::support::mcp::{call, error_of, keyed_session, text_of};
use crate::support::{TEST_CREDITS, TestSystem, get_json, stored_wavs};
use avb_store::{EntryKind, LedgerEntry, Role};
use avb_workflows::billing::credits_for;
use avb_workflows::speech::GenerateSpeechWorkflow;
use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};
use temporalio_client::WorkflowFetchHistoryOptions;

/// `generate_speech`'s default tariff: credits per 1 000 characters.
const PRICE: i64 = 10;

fn speech_credits(text: &str) -> i64 {
    credits_for(i64::try_from(text.chars().count()).expect("len"), PRICE)
}

/// Ledger entries of one job, oldest first.
async fn job_entries(system: &TestSystem, tenant: &str, job_id: &str) -> Vec<LedgerEntry> {
    let id = system.tenant_id(tenant).await;
    let mut entries: Vec<_> = system
        .store()
        .entries(&id, 1000)
        .await
        .expect("entries")
        .into_iter()
        .filter(|e| e.job_id.as_deref() == Some(job_id))
        .collect();
    entries.sort_by_key(|e| e.created_at_ms);
    entries
}

fn kinds(entries: &[LedgerEntry]) -> Vec<(EntryKind, i64)> {
    entries.iter().map(|e| (e.kind, e.amount)).collect()
}

async fn balance(system: &TestSystem, tenant: &str) -> (i64, i64) {
    let b = system
        .store()
        .balance(&system.tenant_id(tenant).await)
        .await
        .expect("balance");
    (b.available, b.held)
}

/// The job of a result: in the structured result, or in the error facts of a failed job.
fn job_id_of(r: &CallToolResult) -> String {
    let s = match &r.structured_content {
        Some(s) => s.clone(),
        None => error_of(r)["details"].clone(),
    };
    let id = s["job_id"].as_str();
    id.unwrap_or_else(|| panic!("no job id in {s}")).to_owned()
}

async fn job_view(system: &TestSystem, id: &str) -> Value {
    get_json(&format!("{}/api/v2/jobs/{id}", system.base_url)).await
}

async fn wait_for_status(system: &TestSystem, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v = job_view(system, id).await;
        if v["status"] == status {
            return v;
        }
        assert!(Instant::now() < deadline, "job never became {status}: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A plain MCP client (authentication off: the `local` tenant).
async fn client(system: &TestSystem) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
        .await
        .expect("connect")
}

/// One speech call: one hold, one settle of its price, its usage recorded, nothing left held.
async fn a_billed_job_settles_once(system: TestSystem) {
    let text = "Credits are held before the work starts and settled once it is done. ".repeat(3);
    let credits = speech_credits(&text);
    let client = client(&system).await;
    let r = call(&client, "generate_speech", json!({ "text": text })).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let job = job_id_of(&r);

    let entries = job_entries(&system, "local", &job).await;
    assert_eq!(
        kinds(&entries),
        vec![(EntryKind::Hold, credits), (EntryKind::Settle, credits)]
    );
    let keys: Vec<_> = entries.iter().map(|e| e.idempotency_key.clone()).collect();
    assert_eq!(keys, vec![format!("{job}/hold"), format!("{job}/settle")]);
    assert_eq!(balance(&system, "local").await, (TEST_CREDITS - credits, 0));

    let usage = get_json(&format!("{}/api/v2/billing/usage", system.base_url)).await;
    let record = &usage["records"][0];
    assert_eq!(record["job_id"], job.as_str(), "{usage}");
    assert_eq!(record["tool"], "generate_speech");
    assert_eq!(record["unit"], "character");
    assert_eq!(record["quantity"], text.chars().count());
    assert_eq!(record["price"], PRICE);
    assert_eq!(record["credits"], credits);
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn a_billed_job_settles_once_on_sqlite() {
    let system = TestSystem::start().await;
    assert_eq!(system.store().backend_name(), "sqlite");
    a_billed_job_settles_once(system).await;
}

#[tokio::test]
async fn a_billed_job_settles_once_on_postgres() {
    let system = TestSystem::start_on_postgres(|_| {}, "all").await;
    assert_eq!(system.store().backend_name(), "postgres");
    a_billed_job_settles_once(system).await;
}

#[tokio::test]
async fn insufficient_credits_refuse_the_job_before_any_work() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let store = system.store();
    let tenant = store.create_tenant("thrifty").await.expect("tenant");
    store
        .grant(&tenant.id, 5, "thrifty-grant", "a little")
        .await
        .expect("grant");
    let key = store
        .create_key(&tenant.id, Role::Agent, "test")
        .await
        .expect("key")
        .token;
    let session = keyed_session(system.mcp_url(), &key).await;

    let text = "x".repeat(1150) + " and some words.";
    let needed = speech_credits(&text);
    assert_eq!(needed, 12);
    let r = call(&session, "generate_speech", json!({ "text": text })).await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    let error = &error_of(&r);
    assert_eq!(error["kind"], "InsufficientCredits", "{error}");
    let details = &error["details"];
    assert_eq!(
        (
            &details["needed"],
            &details["balance"],
            &details["shortfall"],
            &details["price"]
        ),
        (&json!(12), &json!(5), &json!(7), &json!(PRICE)),
        "{details}"
    );
    let message = text_of(&r);
    for needle in [
        "costs 12 credits",
        "balance is 5",
        "7 short",
        "10 per 1 000",
    ] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }

    // Nothing ran, nothing is held, only the grant is in the ledger.
    let job = job_id_of(&r);
    let history = system
        .client
        .get_workflow_handle::<GenerateSpeechWorkflow>(job.clone())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .expect("history");
    let history = String::from_utf8(history).expect("utf-8");
    assert!(history.contains("hold_credits"));
    assert!(
        !history.contains("synthesize_speech"),
        "synthesis was scheduled"
    );
    assert_eq!(stored_wavs(&system).await, 0);
    assert_eq!(balance(&system, "thrifty").await, (5, 0));
    let all = store.entries(&tenant.id, 100).await.expect("entries");
    assert_eq!(kinds(&all), vec![(EntryKind::Grant, 5)]);

    // The job's status says the same.
    let view: Value = reqwest::Client::new()
        .get(format!("{}/api/v2/jobs/{job}", system.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("job view")
        .json()
        .await
        .expect("json");
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["kind"], "InsufficientCredits");
    assert_eq!(view["error"]["details"]["shortfall"], 7);
    session.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn a_cancelled_job_releases_its_hold() {
    let system = TestSystem::start_with(|c| c.mcp.wait_budget_secs = 1).await;
    let client = client(&system).await;
    let text = "Cancelled work is never charged: the hold goes back. ".repeat(60);
    let credits = speech_credits(&text);
    let r = call(&client, "generate_speech", json!({ "text": text })).await;
    let job = job_id_of(&r);
    assert_eq!(
        r.structured_content.as_ref().expect("structured")["status"],
        "running"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while job_view(&system, &job).await["progress"]["done"]
        .as_u64()
        .unwrap_or(0)
        < 1
    {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        balance(&system, "local").await,
        (TEST_CREDITS - credits, credits)
    );
    let status = reqwest::Client::new()
        .post(format!("{}/api/v2/jobs/{job}/cancel", system.base_url))
        .send()
        .await
        .expect("cancel")
        .status();
    assert!(status.is_success(), "{status}");
    wait_for_status(&system, &job, "cancelled").await;

    let entries = job_entries(&system, "local", &job).await;
    assert_eq!(
        kinds(&entries),
        vec![(EntryKind::Hold, credits), (EntryKind::Release, credits)]
    );
    assert_eq!(balance(&system, "local").await, (TEST_CREDITS, 0));
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn a_failed_job_releases_its_hold() {
    // No espeak-ng: a word outside the lexicon fails synthesis (non-retryable) after the hold.
    let system =
        TestSystem::start_with(|c| c.tts.espeak_program = "/nonexistent/espeak-ng".into()).await;
    let client = client(&system).await;
    let text = "The zorblaxian fleet has landed.";
    let r = call(&client, "generate_speech", json!({ "text": text })).await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("zorblaxian"), "{}", text_of(&r));
    let job = job_id_of(&r);
    let credits = speech_credits(text);
    let entries = job_entries(&system, "local", &job).await;
    assert_eq!(
        kinds(&entries),
        vec![(EntryKind::Hold, credits), (EntryKind::Release, credits)]
    );
    assert_eq!(balance(&system, "local").await, (TEST_CREDITS, 0));
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test]
async fn a_billing_worker_killed_between_hold_and_settle_settles_once() {
    // Workflows and synthesis in-process; billing in a child `avb worker` we can kill.
    let system =
        TestSystem::start_custom(|c| c.mcp.wait_budget_secs = 1, "avb-workflows,avb-tts").await;
    let spawn_billing = || system.spawn_avb(&["worker", "--queues", "avb-billing"], &[]);
    let mut billing = spawn_billing();
    system.wait_for_workers().await;
    let client = client(&system).await;
    let text = "The billing worker dies after the hold; the settle waits for it. ".repeat(8);
    let credits = speech_credits(&text);
    let r = call(&client, "generate_speech", json!({ "text": text })).await;
    let job = job_id_of(&r);

    // The hold landed: kill the billing worker (SIGKILL) while synthesis runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while job_entries(&system, "local", &job).await.is_empty() {
        assert!(Instant::now() < deadline, "no hold");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    billing.start_kill().expect("kill -9 billing worker");
    billing.wait().await.expect("reaped");

    // Synthesis finishes; the settle waits for a billing worker, the job with it.
    let deadline = Instant::now() + Duration::from_secs(180);
    while stored_wavs(&system).await == 0 {
        assert!(Instant::now() < deadline, "synthesis never finished");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_view(&system, &job).await["status"], "running");
    assert_eq!(
        kinds(&job_entries(&system, "local", &job).await),
        vec![(EntryKind::Hold, credits)]
    );

    let mut billing = spawn_billing();
    let done = wait_for_status(&system, &job, "completed").await;
    assert!(
        done["result"]["duration_secs"].as_f64().unwrap_or(0.0) > 1.0,
        "{done}"
    );
    assert_eq!(
        kinds(&job_entries(&system, "local", &job).await),
        vec![(EntryKind::Hold, credits), (EntryKind::Settle, credits)]
    );
    assert_eq!(balance(&system, "local").await, (TEST_CREDITS - credits, 0));
    billing.start_kill().ok();
    billing.wait().await.ok();
    client.cancel().await.ok();
    system.stop().await;
}
