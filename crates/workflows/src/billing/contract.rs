//! The billing saga's contract: what a job will cost (computed by the api from the configured
//! tariff before the workflow starts, so the price is part of the job's recorded input), the
//! inputs of the `avb-billing` activities, and the ledger idempotency keys derived from the
//! workflow id and the saga step (so retries, crashes and replays never charge twice).

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;

pub const HOLD_CREDITS: &str = "hold_credits";
pub const SETTLE_CREDITS: &str = "settle_credits";
pub const RELEASE_CREDITS: &str = "release_credits";

/// What a job costs: `quantity` units of `unit` at `price` credits per 1 000 units, rounded up
/// to whole credits (`credits`). Held before the work, settled after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingPlan {
    pub tool: String,
    /// e.g. "character", "container-minute", "device-command".
    pub unit: String,
    pub quantity: i64,
    /// Credits per 1 000 units.
    pub price: i64,
    pub credits: i64,
}

impl BillingPlan {
    pub fn new(tool: &str, unit: &str, quantity: i64, price: i64) -> Self {
        Self {
            tool: tool.to_owned(),
            unit: unit.to_owned(),
            quantity,
            price,
            credits: credits_for(quantity, price),
        }
    }
}

/// Credits for `quantity` units at `price` per 1 000: rounded up, at least 1 when anything is
/// used at a non-zero price (nothing is free by rounding).
pub fn credits_for(quantity: i64, price: i64) -> i64 {
    if quantity <= 0 || price <= 0 {
        return 0;
    }
    let q = i128::from(quantity) * i128::from(price);
    i64::try_from((q + 999) / 1000).unwrap_or(i64::MAX)
}

/// The saga step an idempotency key belongs to. One key per workflow and step: an activity
/// retried, re-run after a worker crash or replayed never writes a second ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStep {
    Hold,
    Settle,
    Release,
}

pub fn ledger_key(workflow_id: &str, step: SagaStep) -> String {
    let step = match step {
        SagaStep::Hold => "hold",
        SagaStep::Settle => "settle",
        SagaStep::Release => "release",
    };
    format!("{workflow_id}/{step}")
}

/// Input of `hold_credits`: take `plan.credits` from the tenant's available balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCredits {
    /// Tenant name (as on the job's `AvbTenant` search attribute).
    pub tenant: String,
    pub job_id: String,
    pub hold_key: String,
    pub plan: BillingPlan,
}

/// Input of `settle_credits`: charge `credits` (at most the hold) and record the usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleCredits {
    pub hold_key: String,
    pub idempotency_key: String,
    pub credits: i64,
    pub plan: BillingPlan,
}

/// Input of `release_credits`: give the whole hold back (the job failed or was cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCredits {
    pub hold_key: String,
    pub idempotency_key: String,
    /// Why, for the activity's log.
    pub reason: String,
}

/// What a billing activity wrote (or found already written under its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReceipt {
    /// The ledger entry id (`led_…`); empty when there was nothing to write.
    pub entry_id: String,
    pub amount: i64,
}

/// Details of an `InsufficientCredits` failure, shown to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsufficientCreditsDetails {
    pub tool: String,
    pub unit: String,
    pub quantity: i64,
    /// Credits per 1 000 units.
    pub price: i64,
    /// Credits the job needs.
    pub needed: i64,
    /// The tenant's available balance.
    pub balance: i64,
    pub shortfall: i64,
}

impl InsufficientCreditsDetails {
    pub fn message(&self) -> String {
        format!(
            "{} of {} {}s costs {} credits ({} per 1 000 {}s); the available balance is {}: {} \
             short. Nothing was run or charged; an operator (HUMAN key) can grant credits.",
            self.tool,
            self.quantity,
            self.unit,
            self.needed,
            self.price,
            self.unit,
            self.balance,
            self.shortfall
        )
    }
}

/// Declarations of the billing activities (implemented in `avb-activities`).
pub struct BillingActivityDefs;

#[activity_definitions]
impl BillingActivityDefs {
    #[activity(name = HOLD_CREDITS)]
    pub fn hold_credits(
        input: HoldCredits,
    ) -> Result<LedgerReceipt, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = SETTLE_CREDITS)]
    pub fn settle_credits(
        input: SettleCredits,
    ) -> Result<LedgerReceipt, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = RELEASE_CREDITS)]
    pub fn release_credits(
        input: ReleaseCredits,
    ) -> Result<LedgerReceipt, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`.
pub mod activity {
    pub use super::billing_activity_defs::{HoldCredits, ReleaseCredits, SettleCredits};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_round_up_and_never_make_work_free() {
        assert_eq!(credits_for(1000, 10), 10);
        assert_eq!(credits_for(1001, 10), 11);
        assert_eq!(credits_for(1, 10), 1);
        assert_eq!(credits_for(0, 10), 0);
        assert_eq!(credits_for(500, 0), 0);
        assert_eq!(credits_for(i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn keys_are_per_workflow_and_step() {
        assert_eq!(ledger_key("job_1", SagaStep::Hold), "job_1/hold");
        assert_ne!(
            ledger_key("job_1", SagaStep::Settle),
            ledger_key("job_1", SagaStep::Release)
        );
    }

    #[test]
    fn the_shortfall_message_names_price_balance_and_shortfall() {
        let d = InsufficientCreditsDetails {
            tool: "generate_speech".into(),
            unit: "character".into(),
            quantity: 1200,
            price: 10,
            needed: 12,
            balance: 5,
            shortfall: 7,
        };
        assert_eq!(
            d.message(),
            "generate_speech of 1200 characters costs 12 credits (10 per 1 000 characters); the \
             available balance is 5: 7 short. Nothing was run or charged; an operator (HUMAN \
             key) can grant credits."
        );
    }
}
