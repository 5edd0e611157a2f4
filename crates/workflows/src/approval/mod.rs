//! Approval: a job whose policy requires a person's approval waits for the `decide_approval`
//! signal or its expiry and runs only when the decision approves the digest of its very
//! arguments. Not a workflow of its own: device commands and upstream calls wait through
//! [`await_approval`].

pub mod contract;
pub mod workflow;

pub use contract::*;
pub use workflow::{AwaitsApproval, await_approval, judge_decision};
