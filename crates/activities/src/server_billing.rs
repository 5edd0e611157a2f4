//! Container-minutes in the ledger. A server's time is cut into blocks of `block_secs` from
//! `running_since`; block 0 is paid by the provisioning saga (hold before anything is created,
//! settle once running), block k ≥ 1 is prepaid (hold + settle under `srv_…/block/k/…` keys) by
//! the first reconciliation run after it starts, and on delete the blocks still unpaid are paid
//! and the unused whole minutes of the last one refunded (`srv_…/refund`). Every write has a key
//! derived from the server and block alone, so runs that overlap, retry or replay pay once.

use avb_store::{ServerRecord, Store, StoreError, Usage};
use avb_workflows::billing::{SagaStep, credits_for, ledger_key};
use avb_workflows::provision::{BILLED_TOOL, BILLED_UNIT, ServerBilling};

/// The blocks of a server that ran from `since_ms` to `now_ms` (block 0 included).
pub fn blocks_started(since_ms: i64, now_ms: i64, block_secs: u64) -> i64 {
    let block_ms = i64::try_from(block_secs.max(1).saturating_mul(1000)).unwrap_or(i64::MAX);
    (now_ms - since_ms).max(0) / block_ms + 1
}

/// What happened to the blocks a call looked at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Billed {
    /// Blocks paid by this call (not counting ones paid before).
    pub paid_blocks: Vec<i64>,
    /// The tenant could not pay this block (nothing was taken for it).
    pub unpaid_block: Option<i64>,
    pub refunded_credits: i64,
}

async fn tenant_id(store: &Store, tenant: &str) -> Result<String, StoreError> {
    store
        .tenant_by_name(tenant)
        .await?
        .map(|t| t.id)
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant:?}")))
}

/// The ledger key of block `k`'s step (block 0: the provisioning saga's keys).
fn block_key(server_id: &str, k: i64, step: SagaStep) -> String {
    if k == 0 {
        return ledger_key(&format!("{server_id}-create"), step);
    }
    let step = match step {
        SagaStep::Hold => "hold",
        SagaStep::Settle => "settle",
        SagaStep::Release => "release",
    };
    format!("{server_id}/block/{k}/{step}")
}

/// Pays every block of `record` that has started by `now_ms` and is not paid yet (block 0 is
/// the saga's, never paid here). Stops at the first block the tenant cannot pay.
pub async fn pay_started_blocks(
    store: &Store,
    record: &ServerRecord,
    billing: &ServerBilling,
    now_ms: i64,
) -> Result<Billed, StoreError> {
    let mut billed = Billed::default();
    let Some(since) = record.running_since_ms else {
        return Ok(billed);
    };
    let tenant = tenant_id(store, &record.tenant).await?;
    let replicas = u32::try_from(record.replicas).unwrap_or(0);
    let block = ServerBilling::new(replicas, billing.plan.price, billing.block_secs).plan;
    for k in 1..blocks_started(since, now_ms, billing.block_secs) {
        let settle_key = block_key(&record.id, k, SagaStep::Settle);
        if store.entry_by_key(&settle_key).await?.is_some() {
            continue;
        }
        let hold_key = block_key(&record.id, k, SagaStep::Hold);
        match store
            .hold(&tenant, block.credits, &hold_key, &record.id)
            .await
        {
            Ok(_) => {}
            Err(StoreError::InsufficientCredits { .. }) => {
                billed.unpaid_block = Some(k);
                break;
            }
            Err(e) => return Err(e),
        }
        let usage = Usage {
            tool: BILLED_TOOL.into(),
            unit: BILLED_UNIT.into(),
            quantity: block.quantity,
            price: block.price,
        };
        store
            .settle(&hold_key, block.credits, &settle_key, &usage)
            .await?;
        billed.paid_blocks.push(k);
    }
    Ok(billed)
}

/// On delete: pays the blocks started before `ended_at_ms` and refunds the unused whole
/// minutes of the last one (when it was paid).
pub async fn settle_on_delete(
    store: &Store,
    record: &ServerRecord,
    billing: &ServerBilling,
    ended_at_ms: i64,
) -> Result<Billed, StoreError> {
    let mut billed = pay_started_blocks(store, record, billing, ended_at_ms).await?;
    let Some(since) = record.running_since_ms else {
        return Ok(billed);
    };
    let last = blocks_started(since, ended_at_ms, billing.block_secs) - 1;
    if store
        .entry_by_key(&block_key(&record.id, last, SagaStep::Settle))
        .await?
        .is_none()
    {
        return Ok(billed);
    }
    let block_ms = i64::try_from(billing.block_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let last_end = since + (last + 1) * block_ms;
    let unused_minutes = (last_end - ended_at_ms).max(0) / 60_000;
    let replicas = record.replicas.max(0);
    let block_minutes = i64::try_from(billing.block_secs.div_ceil(60)).unwrap_or(i64::MAX);
    let unused = unused_minutes.min(block_minutes).saturating_mul(replicas);
    // Round down: a refund never exceeds what the unused minutes cost.
    let credits = unused.saturating_mul(billing.plan.price) / 1000;
    if credits > 0 && credits <= credits_for(block_minutes * replicas, billing.plan.price) {
        let tenant = tenant_id(store, &record.tenant).await?;
        store
            .refund(
                &tenant,
                credits,
                &format!("{}/refund", record.id),
                &format!(
                    "{unused} unused container-minutes of MCP server {} refunded",
                    record.id
                ),
            )
            .await?;
        billed.refunded_credits = credits;
    }
    Ok(billed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_count_from_running_since() {
        assert_eq!(blocks_started(1_000, 1_000, 60), 1);
        assert_eq!(blocks_started(1_000, 60_999, 60), 1);
        assert_eq!(blocks_started(1_000, 61_000, 60), 2);
        assert_eq!(blocks_started(1_000, 0, 60), 1, "clock behind: block 0");
        assert_eq!(
            block_key("srv_x", 0, SagaStep::Settle),
            "srv_x-create/settle"
        );
        assert_eq!(block_key("srv_x", 3, SagaStep::Hold), "srv_x/block/3/hold");
    }
}
