//! Successful tool results: one line for people and the same facts as structured content.
//! (Failures are `crate::core::problem::Problem::into_tool_result`.)

use rmcp::model::{CallToolResult, ContentBlock};

/// A successful tool result: one line for people and the same facts as structured content.
pub(crate) fn structured<T: serde::Serialize>(text: String, value: &T) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = serde_json::to_value(value).ok();
    r
}
