//! The billing saga's activities on the `avb-billing` queue: thin wrappers over the store's
//! ledger, whose idempotency keys make every step safe to retry. Retryability is decided by
//! error type: database faults retry (plain `?`), contradictions and a short balance do not.

use std::sync::Arc;

use crate::non_retryable;
use avb_store::{Store, StoreError, Usage};
use avb_workflows::billing::activity as defs;
use avb_workflows::billing::{
    HoldCredits, InsufficientCreditsDetails, LedgerReceipt, ReleaseCredits, SettleCredits,
};
use avb_workflows::errors::ErrorKind;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct BillingActivities {
    pub store: Store,
}

/// Store errors that will not heal become non-retryable ledger conflicts; the rest retry.
fn to_activity_error(e: StoreError) -> ActivityError {
    if e.is_retryable() {
        ActivityError::from(anyhow::Error::new(e))
    } else {
        non_retryable(ErrorKind::LedgerConflict, e.to_string())
    }
}

fn receipt(entry: &avb_store::LedgerEntry) -> LedgerReceipt {
    LedgerReceipt {
        entry_id: entry.id.clone(),
        amount: entry.amount,
    }
}

#[activities]
impl BillingActivities {
    #[activity(definition = defs::HoldCredits)]
    pub async fn hold_credits(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: HoldCredits,
    ) -> Result<LedgerReceipt, ActivityError> {
        let tenant = self
            .store
            .tenant_by_name(&input.tenant)
            .await
            .map_err(to_activity_error)?
            .ok_or_else(|| {
                non_retryable(
                    ErrorKind::UnknownTenant,
                    format!("no tenant named {:?} in the store", input.tenant),
                )
            })?;
        let plan = &input.plan;
        match self
            .store
            .hold(&tenant.id, plan.credits, &input.hold_key, &input.job_id)
            .await
        {
            Ok(entry) => {
                tracing::info!(job_id = %input.job_id, tenant = %input.tenant, credits = entry.amount, "credits held");
                Ok(receipt(&entry))
            }
            Err(StoreError::InsufficientCredits { balance, needed }) => {
                let details = InsufficientCreditsDetails {
                    tool: plan.tool.clone(),
                    unit: plan.unit.clone(),
                    quantity: plan.quantity,
                    price: plan.price,
                    needed,
                    balance,
                    shortfall: needed - balance,
                };
                tracing::info!(job_id = %input.job_id, tenant = %input.tenant, needed, balance, "insufficient credits; job refused");
                Err(ActivityError::application(
                    ApplicationFailure::builder(details.message())
                        .type_name(ErrorKind::InsufficientCredits.as_str().to_owned())
                        .non_retryable(true)
                        .details(details)
                        .build(),
                ))
            }
            Err(e) => Err(to_activity_error(e)),
        }
    }

    #[activity(definition = defs::SettleCredits)]
    pub async fn settle_credits(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SettleCredits,
    ) -> Result<LedgerReceipt, ActivityError> {
        let usage = Usage {
            tool: input.plan.tool.clone(),
            unit: input.plan.unit.clone(),
            quantity: input.plan.quantity,
            price: input.plan.price,
        };
        let entry = self
            .store
            .settle(
                &input.hold_key,
                input.credits,
                &input.idempotency_key,
                &usage,
            )
            .await
            .map_err(to_activity_error)?;
        tracing::info!(hold = %input.hold_key, credits = entry.amount, "credits settled");
        Ok(receipt(&entry))
    }

    #[activity(definition = defs::ReleaseCredits)]
    pub async fn release_credits(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ReleaseCredits,
    ) -> Result<LedgerReceipt, ActivityError> {
        match self
            .store
            .release(&input.hold_key, &input.idempotency_key)
            .await
        {
            Ok(entry) => {
                tracing::info!(hold = %input.hold_key, credits = entry.amount, reason = %input.reason, "credits released");
                Ok(receipt(&entry))
            }
            // The hold never landed (e.g. refused): there is nothing to give back.
            Err(StoreError::NotFound(_)) => Ok(LedgerReceipt {
                entry_id: String::new(),
                amount: 0,
            }),
            Err(e) => Err(to_activity_error(e)),
        }
    }
}
