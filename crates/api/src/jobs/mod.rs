//! Durable jobs on Temporal, whatever tool started them: start options, waiting with progress,
//! the finished job's raw result, failures, views, lists and the REST surface. Nothing here
//! knows a tool family: what a job of a tool means is its family's [`durable::DurableTool`].

pub mod durable;
pub mod follow;
pub mod list;
pub mod output;
pub mod rest;
pub mod tools;
pub mod view;

use std::time::Duration;

use avb_workflows::queues;
use avb_workflows::search;
use serde_json::{Value, json};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecutionDescription,
    WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use temporalio_common::MemoValues;
use temporalio_common::search_attributes::SearchAttributes;

use crate::core::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::state::ApiState;

/// Unguessable job id (= workflow id): 122 random bits.
/// The longest reason a caller may give (cancelling, rejecting), in characters: it is kept in
/// the workflow's history.
pub const MAX_REASON_CHARS: usize = 500;

/// Refuses a reason longer than [`MAX_REASON_CHARS`], naming the field.
pub fn check_reason(reason: Option<&str>) -> Result<(), crate::core::problem::Problem> {
    match reason.map(|r| r.chars().count()) {
        Some(n) if n > MAX_REASON_CHARS => Err(crate::core::problem::Problem::invalid(
            "reason",
            format!("is {n} characters; at most {MAX_REASON_CHARS}"),
        )),
        _ => Ok(()),
    }
}

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
    /// Refused before anything started, for the reason the problem names (an approval the
    /// client did not give, a used or changed approval).
    #[error("{}", .0.message)]
    Refused(Box<Problem>),
}

/// Whose jobs a caller sees and acts on: its tenant's, and for an AGENT key only the jobs that
/// key started. Anything outside is "not found", exactly like another tenant's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobScope {
    pub tenant: String,
    /// The owner (key id) an AGENT caller is limited to; `None`: every job of the tenant.
    pub owner: Option<String>,
}

impl JobScope {
    /// A scope that matches no job (a server not bound to a caller).
    pub fn nothing() -> Self {
        Self {
            tenant: String::new(),
            owner: Some(String::new()),
        }
    }

    /// Whether a job of `tenant` started by `owner` (none: started before owners were
    /// recorded) is in this scope.
    pub fn sees(&self, tenant: Option<&str>, owner: Option<&str>) -> bool {
        tenant == Some(self.tenant.as_str())
            && self.owner.as_deref().is_none_or(|mine| owner == Some(mine))
    }
}

/// Start options every job shares: its id as the workflow id (never reused), the search
/// attributes that scope it to its tool, tenant and owner (lists and the Temporal UI filter on
/// them) and the owner's label in its memo.
pub(crate) fn job_start_options(
    tool: &str,
    caller: &Caller,
    job_id: &str,
    eager: bool,
) -> WorkflowStartOptions {
    let mut attrs = SearchAttributes::new([
        search::TOOL.value_set(tool.to_string()),
        search::TENANT.value_set(caller.tenant.clone()),
    ]);
    let mut memo = MemoValues::new();
    if let Some(owner) = &caller.key_id {
        attrs.apply(search::OWNER.value_set(owner.clone()));
        if let Some(label) = &caller.label {
            memo.insert(search::OWNER_LABEL_MEMO, Value::String(label.clone()));
        }
    }
    let mut options = WorkflowStartOptions::new(queues::WORKFLOWS, job_id.to_string())
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .search_attributes(attrs)
        .enable_eager_workflow_start(eager)
        .build();
    options.memo = Some(memo);
    options
}

pub fn map_result<T>(r: Result<T, WorkflowGetResultError>) -> Result<T, JobError> {
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

impl From<&JobError> for Problem {
    fn from(e: &JobError) -> Self {
        let (kind, details) = match e {
            JobError::Refused(p) => return (**p).clone(),
            JobError::Failed { kind, details, .. } => {
                let parsed = kind.as_deref().and_then(ErrorKind::parse);
                let mut details = details.clone().unwrap_or_else(|| json!({}));
                // A failure type outside the vocabulary keeps its name in the facts.
                if let (None, Some(name), Some(map)) = (parsed, kind, details.as_object_mut()) {
                    map.insert("failure_type".into(), json!(name));
                }
                (parsed.unwrap_or(ErrorKind::JobFailed), details)
            }
            JobError::Cancelled => (ErrorKind::Cancelled, json!({})),
            JobError::Terminated => (ErrorKind::Terminated, json!({})),
            JobError::TimedOut => (ErrorKind::TimedOut, json!({})),
            JobError::Start(_) | JobError::Temporal(_) => (ErrorKind::Unavailable, json!({})),
        };
        Problem::new(kind, e.to_string()).with_details(details)
    }
}

impl From<JobError> for Problem {
    fn from(e: JobError) -> Self {
        Problem::from(&e)
    }
}

/// The result of a finished job as its workflow returned it (JSON), whatever the workflow:
/// its tool's family reads it (`DurableTool::structured`, `render`).
pub async fn outcome(state: &ApiState, job_id: &str) -> Result<Value, JobError> {
    let raw = state
        .temporal
        .get_workflow_handle::<UntypedWorkflow>(job_id.to_string())
        .get_result(WorkflowGetResultOptions::default())
        .await;
    let raw = map_result(raw)?;
    let payload = raw.payloads.into_iter().next().unwrap_or_default();
    if payload.data.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&payload.data)
        .map_err(|e| JobError::Temporal(format!("the job's result is not JSON: {e}")))
}

/// The heartbeat details of the job's pending activity, newest first: what families read
/// their progress from.
pub fn heartbeat(desc: &WorkflowExecutionDescription) -> Option<Value> {
    desc.raw().pending_activities.iter().find_map(|a| {
        let payload = a.heartbeat_details.as_ref()?.payloads.last()?;
        serde_json::from_slice(&payload.data).ok()
    })
}

/// Waits for a job's result for at most `budget` (`None`: until it ends), calling
/// `on_progress` with the job's progress (its family reads it from heartbeats) whenever it
/// changes. `Ok(None)` = still running when the budget ran out.
pub async fn wait(
    state: &ApiState,
    job_id: &str,
    budget: Option<Duration>,
    progress_of: impl Fn(&Value) -> Option<view::JobProgress>,
    mut on_progress: impl FnMut(view::JobProgress) -> futures::future::BoxFuture<'static, ()> + Send,
) -> Result<Option<Value>, JobError> {
    let result = outcome(state, job_id);
    tokio::pin!(result);
    let deadline = budget.map(|b| tokio::time::Instant::now() + b);
    let out_of_time = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => futures::future::pending().await,
        }
    };
    tokio::pin!(out_of_time);
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let handle = state
        .temporal
        .get_workflow_handle::<UntypedWorkflow>(job_id.to_string());
    let mut last = None;
    loop {
        tokio::select! {
            r = &mut result => return r.map(Some),
            () = &mut out_of_time => return Ok(None),
            _ = ticker.tick() => {
                let Ok(desc) = handle.describe(WorkflowDescribeOptions::default()).await else {
                    continue;
                };
                if let Some(p) = heartbeat(&desc).as_ref().and_then(&progress_of)
                    && last.as_ref() != Some(&p) {
                        last = Some(p.clone());
                        on_progress(p).await;
                    }
            }
        }
    }
}
