//! Reconciliation: `ReconcileMcpServers`, run by a Temporal schedule, compares recorded servers
//! with the engine's replicas, removes orphans, reports drift, pays running servers' next
//! container-minute blocks and deletes the servers nobody can pay for.

pub mod contract;
pub mod workflow;

pub use contract::*;
pub use workflow::ReconcileMcpServersWorkflow;
