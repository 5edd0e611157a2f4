#![doc = include_str!("../README.md")]

pub mod approval;
pub mod artifact;
pub mod billing;
pub mod devices;
pub mod echo;
pub mod errors;
pub mod policy;
pub mod provision;
pub mod queues;
pub mod reconcile;
mod registry;
pub mod search;
pub mod speech;
pub mod upstream;

pub use registry::{WORKFLOW_TYPES, WorkflowRegistry, register_all, register_on_devices};
