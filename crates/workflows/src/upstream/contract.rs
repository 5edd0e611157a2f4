//! The upstream contract: `UpstreamCall` and `UpstreamBatch` (`batch_execute`) inputs and
//! outputs, what the `avb-upstream` activity is asked, and its definition.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use temporalio_macros::activity_definitions;

use crate::approval::ApprovalGate;
use crate::billing::BillingPlan;

pub const CALL_UPSTREAM_TOOL: &str = "call_upstream_tool";

/// What the activity is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamCallRequest {
    pub server: String,
    /// The tool's name on the upstream.
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<Map<String, Value>>,
    /// The call may run twice: retry even when it may have reached the upstream.
    pub may_retry: bool,
    /// A provisioned server's MCP endpoint (workers know configured servers by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Workflow input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamCallJob {
    pub tenant: String,
    /// The mounted name the agent called (`<namespace>_<tool>`).
    pub mounted_as: String,
    pub request: UpstreamCallRequest,
    /// The server's per-call timeout (seconds), for the activity's start-to-close timeout.
    pub timeout_secs: u64,
    /// Set when the server's `require_approval` covers the tool: nothing is called before a
    /// human approves these very arguments (signal `decide_approval`, as for device commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalGate>,
    /// The price (the server's `credits_per_call`), when billing is on: held before the call,
    /// charged when the upstream answered, returned when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

pub struct UpstreamActivityDefs;

#[activity_definitions]
impl UpstreamActivityDefs {
    /// Returns the upstream's `CallToolResult` as JSON.
    #[activity(name = CALL_UPSTREAM_TOOL)]
    pub fn call_upstream_tool(
        request: UpstreamCallRequest,
    ) -> Result<Value, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// One call of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchCall {
    pub mounted_as: String,
    pub request: UpstreamCallRequest,
    pub timeout_secs: u64,
    /// What this call costs (charged only when it produced a result).
    #[serde(default)]
    pub credits: i64,
}

/// `batch_execute`: several mounted tools' calls as one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamBatchJob {
    pub tenant: String,
    pub calls: Vec<BatchCall>,
    /// Every call's price, held before the first; only the calls that produced a result are
    /// charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

/// One call's outcome, in the order of the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BatchItem {
    pub tool: String,
    /// The upstream's `CallToolResult` (which may itself be an `isError` result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the call produced no result (the upstream refused it, or could not be reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`.
pub mod activity {
    pub use super::upstream_activity_defs::CallUpstreamTool;
}
