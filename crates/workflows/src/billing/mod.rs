//! Billing: what a job costs ([`BillingPlan`]), the ledger activities on `avb-billing` and the
//! saga that uses them ([`Saga`]: hold before the work, settle after it, release when it failed
//! or was cancelled). Every family that bills runs its work inside a saga.

pub mod contract;
pub mod workflow;

pub use contract::*;
pub use workflow::{Saga, release_reason};
