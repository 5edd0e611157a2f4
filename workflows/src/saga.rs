//! The billing saga as workflow code: hold before the work, settle after it, release when it
//! failed or was cancelled. Every step is an activity on `avb-billing` whose ledger write is
//! keyed by workflow id + step, so a retried, re-run or replayed step writes nothing new.
//!
//! The steps never follow the workflow's cancellation: a hold that is already on its way must
//! land (or the release could miss it), and settle/release must run after a cancellation.

use std::time::Duration;

use temporalio_common::RetryPolicy;
use temporalio_workflow::{
    ActivityOptions, WorkflowCancellationToken, WorkflowContext, WorkflowTermination,
};

use crate::billing::{
    BillingActivityDefs, BillingPlan, HoldCredits, ReleaseCredits, SagaStep, SettleCredits,
    ledger_key,
};
use crate::errors::ErrorKind;
use crate::queues;

/// A hold taken for one job: settle or release it exactly once.
#[derive(Debug)]
pub struct Saga {
    workflow_id: String,
    hold_key: String,
    plan: BillingPlan,
}

/// Billing steps retry until the store answers (a down billing worker or database delays the
/// job, it never skips a charge or a release); only contradictions fail fast.
fn billing_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .task_queue(queues::BILLING.to_string())
        .cancellation_token(WorkflowCancellationToken::new())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(500))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(10))
                .non_retryable_error_types(ErrorKind::non_retryable_names())
                .build(),
        )
        .build()
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
        ctx.execute_activity(BillingActivityDefs::hold_credits, input, billing_options())
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
        ctx.execute_activity(
            BillingActivityDefs::settle_credits,
            input,
            billing_options(),
        )
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
            billing_options(),
        )
        .await?;
        Ok(())
    }
}
