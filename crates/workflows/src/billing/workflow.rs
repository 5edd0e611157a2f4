//! The billing saga as workflow code: hold before the work, settle after it, release when it
//! failed or was cancelled. Every step is an activity on `avb-billing` whose ledger write is
//! keyed by workflow id + step, so a retried, re-run or replayed step writes nothing new.
//!
//! The steps never follow the workflow's cancellation: a hold that is already on its way must
//! land (or the release could miss it), and settle/release must run after a cancellation
//! ([`policy::ledger`]).

use temporalio_workflow::{WorkflowContext, WorkflowTermination};

use super::contract::{
    BillingActivityDefs, BillingPlan, HoldCredits, ReleaseCredits, SagaStep, SettleCredits,
    ledger_key,
};
use crate::policy;

/// A hold taken for one job: settle or release it exactly once.
#[derive(Debug)]
pub struct Saga {
    workflow_id: String,
    hold_key: String,
    plan: BillingPlan,
}

impl Saga {
    /// Holds `plan`'s credits when the job has a price (`None`: billing is off or it is free).
    pub async fn hold_if_priced<W>(
        ctx: &WorkflowContext<W>,
        tenant: &str,
        job_id: &str,
        plan: Option<&BillingPlan>,
    ) -> Result<Option<Saga>, WorkflowTermination> {
        match plan {
            Some(plan) => Ok(Some(Self::hold(ctx, tenant, job_id, plan).await?)),
            None => Ok(None),
        }
    }

    /// Ends the saga by the work's `outcome`: settled when it succeeded, released (with the
    /// failure as the reason) when it failed; nothing to do without a hold. Returns the outcome.
    pub async fn conclude<W, T, E: std::fmt::Display>(
        saga: Option<Saga>,
        ctx: &WorkflowContext<W>,
        outcome: Result<T, E>,
    ) -> Result<Result<T, E>, WorkflowTermination> {
        match (saga, &outcome) {
            (Some(saga), Ok(_)) => saga.settle(ctx).await?,
            (Some(saga), Err(e)) => saga.release(ctx, &e.to_string()).await?,
            (None, _) => {}
        }
        Ok(outcome)
    }

    /// Holds the plan's credits for `job_id`. Fails the job with `InsufficientCredits` (nothing
    /// held) when the balance is too small.
    pub async fn hold<W>(
        ctx: &WorkflowContext<W>,
        tenant: &str,
        job_id: &str,
        plan: &BillingPlan,
    ) -> Result<Saga, WorkflowTermination> {
        let workflow_id = ctx.workflow_id().to_owned();
        let hold_key = ledger_key(&workflow_id, SagaStep::Hold);
        let input = HoldCredits {
            tenant: tenant.to_owned(),
            job_id: job_id.to_owned(),
            hold_key: hold_key.clone(),
            plan: plan.clone(),
        };
        ctx.execute_activity(BillingActivityDefs::hold_credits, input, policy::ledger())
            .await?;
        Ok(Saga {
            workflow_id,
            hold_key,
            plan: plan.clone(),
        })
    }

    /// Charges the plan (the work is done) and records the usage.
    pub async fn settle<W>(self, ctx: &WorkflowContext<W>) -> Result<(), WorkflowTermination> {
        let input = SettleCredits {
            idempotency_key: ledger_key(&self.workflow_id, SagaStep::Settle),
            hold_key: self.hold_key,
            credits: self.plan.credits,
            plan: self.plan,
        };
        ctx.execute_activity(BillingActivityDefs::settle_credits, input, policy::ledger())
            .await?;
        Ok(())
    }

    /// Charges `credits` of the hold (at most what was held; the rest goes back): for jobs
    /// whose parts can fail on their own (a batch).
    pub async fn settle_actual<W>(
        mut self,
        ctx: &WorkflowContext<W>,
        credits: i64,
    ) -> Result<(), WorkflowTermination> {
        self.plan.credits = credits.clamp(0, self.plan.credits);
        self.settle(ctx).await
    }

    /// Returns the hold (the work failed or was cancelled).
    pub async fn release<W>(
        self,
        ctx: &WorkflowContext<W>,
        reason: &str,
    ) -> Result<(), WorkflowTermination> {
        let input = ReleaseCredits {
            idempotency_key: ledger_key(&self.workflow_id, SagaStep::Release),
            hold_key: self.hold_key,
            reason: reason.to_owned(),
        };
        ctx.execute_activity(
            BillingActivityDefs::release_credits,
            input,
            policy::ledger(),
        )
        .await?;
        Ok(())
    }
}

/// The release reason of work that did not succeed: it was cancelled, or it failed.
pub fn release_reason(cancelled: bool) -> &'static str {
    if cancelled { "cancelled" } else { "failed" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_reasons_say_why() {
        assert_eq!(release_reason(true), "cancelled");
        assert_eq!(release_reason(false), "failed");
    }
}
