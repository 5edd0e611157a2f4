//! Provisioned MCP servers: `ProvisionMcpServer` (record, hold block 0, create and probe each
//! replica, record the endpoints; remove everything and release on failure) and
//! `DeleteMcpServer` (remove, settle the container-minutes, record).

pub mod contract;
pub mod workflow;

pub use contract::*;
pub use workflow::{DeleteMcpServerWorkflow, ProvisionMcpServerWorkflow};
