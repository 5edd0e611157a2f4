//! Waiting for a human: a job whose policy requires approval waits for the `decide_approval`
//! signal or its expiry, tagged `AvbAwaiting = approval` meanwhile, and runs only when the
//! decision approves the digest of its very arguments. Device commands and upstream calls share
//! this; each keeps the first decision in its own state.

use std::time::Duration;

use serde_json::Value;
use temporalio_workflow::{WorkflowContext, WorkflowResult, WorkflowTermination, select};

use crate::devices::{ApprovalDecision, ApprovalGate, arguments_digest};
use crate::errors::ErrorKind;
use crate::search;

/// A workflow that takes `decide_approval`: where it keeps the decision.
pub trait AwaitsApproval {
    fn decision_slot(&mut self) -> &mut Option<ApprovalDecision>;
    fn decision(&self) -> Option<&ApprovalDecision>;

    /// The body of the `decide_approval` signal: the first decision counts.
    fn record_decision(&mut self, decision: ApprovalDecision) {
        self.decision_slot().get_or_insert(decision);
    }
}

/// Waits for a decision or the expiry of `gate`; returns the decision when it approves exactly
/// `tool` with `arguments`, else the failure that ends the job with nothing done.
pub async fn await_approval<W: AwaitsApproval>(
    ctx: &mut WorkflowContext<W>,
    gate: &ApprovalGate,
    tool: &str,
    arguments: &Value,
) -> WorkflowResult<ApprovalDecision> {
    ctx.upsert_search_attributes([search::AWAITING.value_set("approval".to_string())]);
    let decided = {
        let mut decision = ctx.wait_condition(|s| s.decision().is_some());
        let mut expiry = ctx.timer(Duration::from_secs(gate.expires_in_secs));
        select! {
            r = decision => { r?; true }
            _ = expiry => false,
        }
    };
    // Not `value_unset`: the server refuses the SDK's encoding of an unset keyword.
    ctx.upsert_search_attributes(
        [search::AWAITING.value_set(search::AWAITING_NOTHING.to_string())],
    );
    let decision = ctx.state(|s| s.decision().cloned()).filter(|_| decided);
    judge_decision(decision, gate, tool, arguments)
}

fn refused(kind: ErrorKind, message: String) -> WorkflowTermination {
    kind.failure(message).into()
}

/// What a human's decision (none: nobody decided before the expiry) means for a job waiting at
/// `gate` to run `tool` with `arguments`: the decision, when it approves exactly these arguments;
/// otherwise the failure that ends the job, with nothing done.
pub fn judge_decision(
    decision: Option<ApprovalDecision>,
    gate: &ApprovalGate,
    tool: &str,
    arguments: &Value,
) -> Result<ApprovalDecision, WorkflowTermination> {
    let Some(decision) = decision else {
        return Err(refused(
            ErrorKind::ApprovalExpired,
            format!(
                "rejected: nobody approved the command before it expired at {}; nothing \
                 was sent",
                gate.expires_at
            ),
        ));
    };
    if !decision.approved {
        let why = decision
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return Err(refused(
            ErrorKind::ApprovalRejected,
            format!(
                "rejected by {} at {}{why}; nothing was sent",
                decision.by, decision.at
            ),
        ));
    }
    let digest = arguments_digest(tool, arguments);
    if decision.digest != digest {
        return Err(refused(
            ErrorKind::ApprovalMismatch,
            format!(
                "{} approved arguments with digest {}, but this command's arguments have \
                 digest {digest}; not executed",
                decision.by, decision.digest
            ),
        ));
    }
    Ok(decision)
}

/// Memo key of a job's approval request (what approvers are shown).
pub const APPROVAL_MEMO: &str = "approval";

// Set by the api as the job's memo when the job starts waiting; read back by every view of it.
/// What an approver is shown and must name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PendingApproval {
    pub tool: String,
    pub arguments: Value,
    /// Pass this to `approve_job`: the approval covers exactly these arguments.
    pub digest: String,
    /// RFC 3339: unapproved by then, the command is rejected.
    pub expires_at: String,
}
