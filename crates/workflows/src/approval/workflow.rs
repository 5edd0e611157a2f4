//! Waiting for a human: a job whose policy requires approval waits for the `decide_approval`
//! signal or its expiry, tagged `AvbAwaiting = approval` meanwhile, and runs only when the
//! decision approves the digest of its very arguments. Device commands and upstream calls share
//! this; each keeps the first decision in its own state.

use std::time::Duration;

use serde_json::Value;
use temporalio_workflow::{WorkflowContext, WorkflowResult, WorkflowTermination, select};

use super::contract::{ApprovalDecision, ApprovalGate, arguments_digest};
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use temporalio_common::error::OutgoingWorkflowError;

    fn gate() -> ApprovalGate {
        ApprovalGate {
            expires_in_secs: 600,
            expires_at: "2030-01-01T00:10:00Z".into(),
        }
    }

    fn decision(approved: bool, digest: String) -> ApprovalDecision {
        ApprovalDecision {
            approved,
            digest,
            by: "alice".into(),
            at: "2030-01-01T00:01:00Z".into(),
            reason: Some("not now".into()),
        }
    }

    /// The failure's kind (its Temporal type) and message.
    fn refusal(r: Result<ApprovalDecision, WorkflowTermination>) -> (String, String) {
        match r {
            Err(WorkflowTermination::Failed(OutgoingWorkflowError::Application(f))) => (
                f.type_name().unwrap_or_default().to_owned(),
                f.source_error().to_string(),
            ),
            other => panic!("expected an application failure, got {other:?}"),
        }
    }

    #[test]
    fn only_an_approval_of_these_very_arguments_runs_the_job() {
        let args = json!({"action": "turn_on", "room": "x"});
        let digest = arguments_digest("smart_home_control", &args);
        let ok = judge_decision(
            Some(decision(true, digest.clone())),
            &gate(),
            "smart_home_control",
            &args,
        )
        .expect("approved");
        assert_eq!(ok.by, "alice");

        let (kind, message) = refusal(judge_decision(None, &gate(), "smart_home_control", &args));
        assert_eq!(kind, "ApprovalExpired");
        assert!(message.contains("2030-01-01T00:10:00Z"), "{message}");

        let (kind, message) = refusal(judge_decision(
            Some(decision(false, digest.clone())),
            &gate(),
            "smart_home_control",
            &args,
        ));
        assert_eq!(kind, "ApprovalRejected");
        assert!(
            message.contains("by alice") && message.contains(": not now"),
            "{message}"
        );

        let other = json!({"action": "turn_on", "room": "y"});
        let (kind, message) = refusal(judge_decision(
            Some(decision(true, digest)),
            &gate(),
            "smart_home_control",
            &other,
        ));
        assert_eq!(kind, "ApprovalMismatch");
        assert!(message.contains("not executed"), "{message}");
    }
}
