//! Contracts (tool inputs and outputs, task queues, error kinds) and deterministic workflow
//! code. No I/O crates here: the api and the workers both depend on this crate.

pub mod approval;
pub mod artifact;
pub mod billing;
pub mod devices;
pub mod echo_workflow;
pub mod errors;
pub mod provision;
pub mod queues;
pub mod reconcile;
pub mod saga;
pub mod search;
pub mod speech;
pub mod speech_workflow;
pub mod upstream;
pub mod voices;
