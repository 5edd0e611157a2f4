//! The approval contract, shared by every family whose jobs may wait for a person (device
//! commands, upstream calls): how long a job may wait ([`ApprovalGate`], computed by the api),
//! what an approver is shown ([`PendingApproval`], the job's memo) and sends back
//! ([`ApprovalDecision`], signal [`DECIDE_APPROVAL`]), and the digest that binds a decision to
//! the exact arguments ([`arguments_digest`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The signal a waiting job takes a decision by.
pub const DECIDE_APPROVAL: &str = "decide_approval";

/// Memo key of a job's approval request (what approvers are shown).
pub const APPROVAL_MEMO: &str = "approval";

/// A command that waits for a human: how long it may wait.
// Computed by the api from the wall clock when the job starts (workflows never read the clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalGate {
    pub expires_in_secs: u64,
    /// RFC 3339, as shown to approvers (the timer uses `expires_in_secs`).
    pub expires_at: String,
}

/// A human's decision on a command waiting for approval (signal `decide_approval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecision {
    pub approved: bool,
    /// The digest of the arguments the human saw (`arguments_digest`).
    pub digest: String,
    /// Who decided: the HUMAN key (or OIDC subject) that called approve/reject.
    pub by: String,
    /// RFC 3339.
    pub at: String,
    #[serde(default)]
    pub reason: Option<String>,
}

// Set by the api as the job's memo when the job starts waiting; read back by every view of it.
/// What an approver is shown and must name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PendingApproval {
    pub tool: String,
    pub arguments: Value,
    /// Pass this to `approve_job`: the approval covers exactly these arguments.
    pub digest: String,
    /// RFC 3339: unapproved by then, the command is rejected.
    pub expires_at: String,
}

/// What the approver is shown and the decision must name: `sha256:` + hex of the canonical JSON
/// of the tool and its arguments (object keys sorted), so any change of an argument changes it.
pub fn arguments_digest(tool: &str, arguments: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                // An absent field and a null one are the same argument.
                let mut keys: Vec<&String> = map
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k)
                    .collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&map[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(
        &serde_json::json!({ "tool": tool, "arguments": arguments }),
        &mut text,
    );
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_digest_ignores_key_order_and_changes_with_any_argument() {
        let a = arguments_digest(
            "smart_home_control",
            &json!({"action": "turn_on", "room": "x"}),
        );
        let b = arguments_digest(
            "smart_home_control",
            &json!({"room": "x", "action": "turn_on"}),
        );
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:") && a.len() == 71, "{a}");
        let c = arguments_digest(
            "smart_home_control",
            &json!({"action": "turn_on", "room": "y"}),
        );
        assert_ne!(a, c);
        let d = arguments_digest("call_service", &json!({"action": "turn_on", "room": "x"}));
        assert_ne!(a, d);
        let e = arguments_digest(
            "smart_home_control",
            &json!({"action": "turn_on", "room": "x", "device": null}),
        );
        assert_eq!(a, e, "null is absent");
    }
}
