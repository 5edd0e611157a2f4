//! Echo: `durable_echo` (workflow `DurableEcho`, activity `echo` on the workflow queue), the
//! smallest durable job.

pub mod contract;
pub mod workflow;

pub use contract::*;
pub use workflow::DurableEchoWorkflow;
