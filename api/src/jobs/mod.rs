//! Durable jobs on Temporal: start a tool's workflow, follow its progress, fetch its result.

pub mod follow;
pub mod list;
pub mod output;
pub mod view;

use std::time::Duration;

use avb_common::config::BillingSettings;
use avb_workflows::billing::BillingPlan;
use avb_workflows::queues;
use avb_workflows::search;
use avb_workflows::speech::{GenerateSpeechInput, SpeechArtifact, SpeechProgress};
use avb_workflows::speech_workflow::{GenerateSpeechJob, GenerateSpeechWorkflow};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowExecutionDescription, WorkflowGetResultOptions,
    WorkflowHandle, WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use temporalio_common::search_attributes::SearchAttributes;

/// Unguessable job id (= workflow id): 122 random bits.
pub fn new_job_id() -> String {
    format!("job_{}", uuid::Uuid::new_v4().simple())
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("could not start the job: {0}")]
    Start(String),
    /// The workflow failed; `kind` is the application failure type (e.g. `UnknownVoice`).
    #[error("{message}")]
    Failed {
        kind: Option<String>,
        message: String,
        /// The failure's details as JSON (e.g. balance, price and shortfall of
        /// `InsufficientCredits`).
        details: Option<serde_json::Value>,
    },
    #[error("the job was cancelled")]
    Cancelled,
    #[error("the job was terminated by an operator")]
    Terminated,
    #[error("the job ran out of time")]
    TimedOut,
    #[error("Temporal error: {0}")]
    Temporal(String),
}

/// Start options every job shares: its id as the workflow id (never reused) and the search
/// attributes that scope it to its tool and tenant (lists and the Temporal UI filter on them).
pub(crate) fn job_start_options(
    tool: &str,
    tenant: &str,
    job_id: &str,
    eager: bool,
) -> WorkflowStartOptions {
    let attrs = SearchAttributes::new([
        search::TOOL.value_set(tool.to_string()),
        search::TENANT.value_set(tenant.to_string()),
    ]);
    WorkflowStartOptions::new(queues::WORKFLOWS, job_id.to_string())
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .search_attributes(attrs)
        .enable_eager_workflow_start(eager)
        .build()
}

pub type SpeechHandle = WorkflowHandle<Client, GenerateSpeechWorkflow>;

/// What a speech job costs under `billing`: its characters at the `generate_speech` tariff;
/// none when billing is off or speech is free.
pub fn speech_billing(
    billing: &BillingSettings,
    request: &GenerateSpeechInput,
) -> Option<BillingPlan> {
    const TOOL: &str = "generate_speech";
    let price = billing.price_of(TOOL)?;
    let chars = i64::try_from(request.text.chars().count()).unwrap_or(i64::MAX);
    let plan = BillingPlan::new(TOOL, &price.unit, chars, price.credits_per_1000);
    (plan.credits > 0).then_some(plan)
}

/// Starts a `GenerateSpeech` job; with a `billing` plan its workflow holds the credits before
/// synthesis and settles them after.
pub async fn start_speech(
    client: &Client,
    tenant: &str,
    request: GenerateSpeechInput,
    billing: Option<BillingPlan>,
) -> Result<(String, SpeechHandle), JobError> {
    let job_id = new_job_id();
    let job = GenerateSpeechJob {
        job_id: job_id.clone(),
        tenant: tenant.to_string(),
        request,
        billing,
    };
    let opts = job_start_options("generate_speech", tenant, &job_id, false);
    client
        .start_workflow(GenerateSpeechWorkflow::run, job, opts)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    Ok((
        job_id.clone(),
        client.get_workflow_handle::<GenerateSpeechWorkflow>(job_id),
    ))
}

/// Latest progress of the synthesis: the heartbeat details of the pending activity.
pub async fn speech_progress(handle: &SpeechHandle) -> Option<SpeechProgress> {
    let desc = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .ok()?;
    heartbeat_progress(&desc)
}

/// The speech progress in the last heartbeat of the job's pending activity.
pub fn heartbeat_progress(desc: &WorkflowExecutionDescription) -> Option<SpeechProgress> {
    desc.raw().pending_activities.iter().find_map(|a| {
        let payload = a.heartbeat_details.as_ref()?.payloads.last()?;
        serde_json::from_slice::<SpeechProgress>(&payload.data).ok()
    })
}

/// Waits for the result, calling `on_progress` whenever the progress changes, for at most
/// `budget`. `Ok(None)` = still running when the budget ran out.
pub async fn wait_speech(
    handle: &SpeechHandle,
    budget: Duration,
    mut on_progress: impl FnMut(SpeechProgress) -> futures::future::BoxFuture<'static, ()> + Send,
) -> Result<Option<SpeechArtifact>, JobError> {
    let result = handle.get_result(WorkflowGetResultOptions::default());
    tokio::pin!(result);
    let deadline = tokio::time::Instant::now() + budget;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = None;
    loop {
        tokio::select! {
            r = &mut result => return map_result(r).map(Some),
            () = tokio::time::sleep_until(deadline) => return Ok(None),
            _ = ticker.tick() => {
                if let Some(p) = speech_progress(handle).await
                    && last != Some(p) {
                        last = Some(p);
                        on_progress(p).await;
                    }
            }
        }
    }
}

pub(crate) fn map_result<T>(r: Result<T, WorkflowGetResultError>) -> Result<T, JobError> {
    match r {
        Ok(a) => Ok(a),
        Err(WorkflowGetResultError::Failed(e)) => Err(failure(&e)),
        Err(WorkflowGetResultError::Cancelled { .. }) => Err(JobError::Cancelled),
        Err(WorkflowGetResultError::Terminated { .. }) => Err(JobError::Terminated),
        Err(WorkflowGetResultError::TimedOut) => Err(JobError::TimedOut),
        Err(e) => Err(JobError::Temporal(e.to_string())),
    }
}

/// Digs the innermost application failure (type + message) out of a workflow failure chain
/// (workflow failure → activity failure → application failure).
fn failure(e: &temporalio_common::error::IncomingError) -> JobError {
    use temporalio_common::error::IncomingError;
    let mut kind = None;
    let mut message = e.to_string();
    let mut details = None;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let IncomingError::Application(a) = err {
            kind = a.type_name().map(str::to_string);
            message = a.to_string();
            details = a
                .raw_details()
                .and_then(|p| p.first())
                .and_then(|p| serde_json::from_slice(&p.data).ok());
        }
        cur = err.cause();
    }
    JobError::Failed {
        kind,
        message,
        details,
    }
}

pub type EchoHandle = WorkflowHandle<Client, avb_workflows::echo_workflow::DurableEchoWorkflow>;

/// Starts `DurableEcho`: the minimal durable round trip (workflow + activity).
/// `eager` asks the server to hand the first workflow task straight back to an in-process worker
/// sharing this client's connection (the SDK falls back silently when there is none).
pub async fn start_echo(
    client: &Client,
    tenant: &str,
    input: avb_workflows::echo_workflow::EchoInput,
    eager: bool,
    local_activity: bool,
) -> Result<(String, EchoHandle), JobError> {
    use avb_workflows::echo_workflow::{DurableEchoWorkflow, EchoJob};
    let job = EchoJob {
        message: input.message,
        local_activity,
    };
    let job_id = new_job_id();
    let opts = job_start_options("durable_echo", tenant, &job_id, eager);
    client
        .start_workflow(DurableEchoWorkflow::run, job, opts)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    let handle = client.get_workflow_handle::<DurableEchoWorkflow>(job_id.clone());
    Ok((job_id, handle))
}

/// Runs `DurableEcho` to completion.
pub async fn run_echo(
    client: &Client,
    tenant: &str,
    input: avb_workflows::echo_workflow::EchoInput,
    eager: bool,
    local_activity: bool,
) -> Result<(String, avb_workflows::echo_workflow::EchoOutput), JobError> {
    let (job_id, handle) = start_echo(client, tenant, input, eager, local_activity).await?;
    let out = map_result(handle.get_result(WorkflowGetResultOptions::default()).await)?;
    Ok((job_id, out))
}
