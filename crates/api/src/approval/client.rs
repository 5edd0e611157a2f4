//! Approval by the person at the MCP client (`approver = "client"`), over multi round-trip
//! results: a call that needs approval first answers `input_required` with an elicitation that
//! shows the exact arguments, and a `requestState` sealed with the server's key (HMAC) that
//! binds the tenant, the key, the tool, the arguments' digest and an expiry. The retry carries
//! the answer and the state; only then does the job start, under the job id the state names,
//! which Temporal refuses to start twice, so an approval is used at most once on every replica.
//! The decision (who, how, when) is signalled to the job and stays in its history.

use std::time::{Duration, SystemTime};

use avb_workflows::approval::{ApprovalDecision, arguments_digest};
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationSchema, InputRequest, InputRequests,
    InputRequiredResult, RequestStateError, SealOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{WorkflowIdReusePolicy, WorkflowStartOptions};

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::JobError;
use crate::jobs::durable::ClientInput;
use crate::jobs::view::rfc3339;
use crate::state::ApiState;

/// The input request's key in `inputRequests` / `inputResponses`.
pub const APPROVAL_KEY: &str = "approval";

/// How a call that needs approval gets it.
pub enum ApprovalPath {
    /// A HUMAN key decides while the job waits (approve_job / reject_job).
    Operator,
    /// The person at the client approved these very arguments: start the job as `job_id`
    /// (used once), then record `decision`.
    Client {
        job_id: String,
        decision: ApprovalDecision,
    },
    /// Ask the person at the client first; nothing starts.
    Ask(InputRequiredResult),
}

/// What the sealed state carries; tenant, key, tool and digest are bound as associated data.
#[derive(Debug, Serialize, Deserialize)]
struct SealedApproval {
    job_id: String,
    expires_at: String,
}

fn associated_data(caller: &Caller, tool: &str, digest: &str) -> Vec<u8> {
    let key = caller.key_id.as_deref().unwrap_or("-");
    format!("avb-approval\0{}\0{key}\0{tool}\0{digest}", caller.tenant).into_bytes()
}

/// Whether the client approves on this call, and how far it got.
pub fn resolve(
    state: &ApiState,
    caller: &Caller,
    client: &ClientInput,
    tool: &str,
    arguments: &Value,
) -> Result<ApprovalPath, Problem> {
    if state.config.devices.approver != avb_config::Approver::Client || !client.can_elicit {
        return Ok(ApprovalPath::Operator);
    }
    let digest = arguments_digest(tool, arguments);
    let bound = associated_data(caller, tool, &digest);
    let Some(sealed) = client.request_state.as_deref() else {
        return Ok(ApprovalPath::Ask(ask(
            state, tool, arguments, &digest, &bound,
        )));
    };
    let approval: SealedApproval = state
        .request_state
        .open_json_with(sealed, &bound)
        .map_err(refused_state)?;
    let Some(answer) = client.responses.as_ref().and_then(|r| r.get(APPROVAL_KEY)) else {
        // The state is good but the answer is missing: ask again with the same state.
        return Ok(ApprovalPath::Ask(InputRequiredResult::new(
            Some(requests(tool, arguments, &digest, &approval.expires_at)),
            Some(sealed.to_string()),
        )));
    };
    let decision = decision_of(caller, tool, answer, &digest, "by elicitation")?;
    if !decision.approved {
        return Err(Problem::new(
            ErrorKind::ApprovalRejected,
            format!(
                "{tool} was {} at the client; nothing was done",
                decision.reason.as_deref().unwrap_or("rejected")
            ),
        ));
    }
    Ok(ApprovalPath::Client {
        job_id: approval.job_id,
        decision,
    })
}

/// The decision an answer to the approval question gives: `accept` with `approve: true`
/// approves, `accept` with `approve: false`, `decline` or `cancel` rejects.
pub fn decision_of(
    caller: &Caller,
    tool: &str,
    answer: &Value,
    digest: &str,
    how: &str,
) -> Result<ApprovalDecision, Problem> {
    let action = answer.get("action").and_then(Value::as_str);
    let approved = match action {
        Some("accept") => answer
            .get("content")
            .and_then(|c| c.get("approve"))
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                Problem::invalid(
                    "inputResponses.approval",
                    "an accepted approval carries content.approve (true or false)",
                )
            })?,
        Some("decline" | "cancel") => false,
        _ => {
            return Err(Problem::invalid(
                "inputResponses.approval",
                format!("answer the approval of {tool} with action accept, decline or cancel"),
            ));
        }
    };
    let reason = match (approved, action) {
        (true, _) => None,
        (false, Some("accept")) => Some("rejected".to_string()),
        (false, other) => other.map(|a| format!("{a}d")),
    };
    Ok(ApprovalDecision {
        approved,
        digest: digest.to_string(),
        by: format!(
            "{} (at the MCP client, {how})",
            caller
                .key_id
                .clone()
                .unwrap_or_else(|| format!("{} local client", caller.tenant))
        ),
        at: rfc3339(SystemTime::now()),
        reason,
    })
}

/// Start options of a job the client approved: its id comes from the sealed state, and Temporal
/// refuses to start a second job under it, finished or not.
pub fn used_once(options: &mut WorkflowStartOptions) {
    options.id_reuse_policy = WorkflowIdReusePolicy::RejectDuplicate;
}

/// A start refused because the approval's job exists already: the approval was used.
pub fn start_error(e: WorkflowStartError, job_id: &str) -> JobError {
    match e {
        WorkflowStartError::AlreadyStarted { .. } => JobError::Refused(Box::new(Problem::new(
            ErrorKind::ApprovalRejected,
            format!(
                "this approval was used already (job {job_id}); an approval runs one job: call \
                 the tool again to be asked again"
            ),
        ))),
        other => JobError::Start(other.to_string()),
    }
}

/// Records the client's decision in the job's history, as a HUMAN's decision is.
pub async fn record(
    state: &ApiState,
    job_id: &str,
    decision: ApprovalDecision,
) -> Result<(), JobError> {
    tracing::info!(job_id, by = %decision.by, "approved at the client");
    super::signal_decision(state, job_id, decision)
        .await
        .map_err(|e| JobError::Start(format!("approved, but the decision was not recorded: {e}")))
}

/// A state that does not open is refused, and nothing runs: changed or forged (or meant for
/// another key, tool or arguments), expired, or sealed by another key.
fn refused_state(e: RequestStateError) -> Problem {
    match e {
        RequestStateError::Expired => Problem::new(
            ErrorKind::ApprovalExpired,
            "the approval request expired; call the tool again to be asked again",
        ),
        other => Problem::invalid(
            "requestState",
            "does not verify for this key, tool and these arguments (changed, forged, or from \
             another server key); call the tool again without it to be asked again",
        )
        .with_source(other),
    }
}

fn ask(
    state: &ApiState,
    tool: &str,
    arguments: &Value,
    digest: &str,
    bound: &[u8],
) -> InputRequiredResult {
    let secs = state.config.devices.approval_expiry_secs;
    let approval = SealedApproval {
        job_id: crate::jobs::new_job_id(),
        expires_at: rfc3339(SystemTime::now() + Duration::from_secs(secs)),
    };
    let options = SealOptions::new()
        .associated_data(bound)
        .ttl(Duration::from_secs(secs));
    // Two strings always serialize.
    let sealed = state
        .request_state
        .seal_json_with(&approval, &options)
        .unwrap_or_default();
    InputRequiredResult::new(
        Some(requests(tool, arguments, digest, &approval.expires_at)),
        Some(sealed),
    )
}

pub fn requests(tool: &str, arguments: &Value, digest: &str, expires_at: &str) -> InputRequests {
    let shown = serde_json::to_string_pretty(arguments).unwrap_or_else(|_| arguments.to_string());
    let message = format!(
        "Approve {tool} with these arguments?\n{shown}\n(digest {digest}; the question \
         expires at {expires_at}; nothing is done unless you approve)"
    );
    let schema = json!({
        "type": "object",
        "properties": {
            "approve": {
                "type": "boolean",
                "title": "Approve",
                "description": format!("Run {tool} with exactly these arguments"),
            }
        },
        "required": ["approve"],
    });
    let request = InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema: serde_json::from_value(schema)
                .unwrap_or_else(|_| ElicitationSchema::new(Default::default())),
        },
    ));
    [(APPROVAL_KEY.to_string(), request)].into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_bound_to_tenant_key_tool_and_digest() {
        let caller = |tenant: &str, key: Option<&str>| Caller {
            tenant: tenant.into(),
            key_id: key.map(String::from),
            role: avb_store::Role::Agent,
            label: None,
        };
        let a = associated_data(&caller("t1", Some("k1")), "call_service", "sha256:1");
        for other in [
            associated_data(&caller("t2", Some("k1")), "call_service", "sha256:1"),
            associated_data(&caller("t1", Some("k2")), "call_service", "sha256:1"),
            associated_data(&caller("t1", Some("k1")), "smart_home_control", "sha256:1"),
            associated_data(&caller("t1", Some("k1")), "call_service", "sha256:2"),
        ] {
            assert_ne!(a, other);
        }
    }
}
