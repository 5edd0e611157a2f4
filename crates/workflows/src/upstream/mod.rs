//! Upstream: calls of tools mounted from upstream MCP servers. `UpstreamCall` (one call, after a
//! person's approval where the server requires it, inside the billing saga when priced) and
//! `UpstreamBatch` (`batch_execute`: several calls, each charged only when it produced a result).

pub mod contract;
pub mod workflow;

pub use contract::*;
pub use workflow::{UpstreamBatchWorkflow, UpstreamCallWorkflow};
