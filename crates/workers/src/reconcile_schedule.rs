//! The reconciliation schedule (`avb-reconcile-mcp-servers`): every worker that serves
//! `avb-provisioning` makes sure it exists with the configured interval (created, or updated
//! when it is already there), or pauses it when the interval is 0.

use std::time::Duration;

use avb_workflows::queues;
use avb_workflows::reconcile::{
    RECONCILE_SCHEDULE_ID, ReconcileInput, ReconcileMcpServersWorkflow,
};
use temporalio_client::Client;
use temporalio_client::schedules::{
    CreateScheduleOptions, ScheduleAction, ScheduleError, ScheduleOverlapPolicy, ScheduleSpec,
};

fn action() -> ScheduleAction {
    ScheduleAction::start_workflow(
        ReconcileMcpServersWorkflow::run,
        ReconcileInput::default(),
        queues::WORKFLOWS,
        "reconcile-mcp-servers",
    )
}

/// Creates or updates the schedule; `every_secs` 0 pauses it.
pub async fn ensure_reconcile_schedule(client: &Client, every_secs: u64) -> anyhow::Result<()> {
    // A Temporal server that has just started (or is busy) may fail a schedule call with an
    // empty status; a worker should not die of it. Five tries over about 8 s, then the error.
    const TRIES: u32 = 5;
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ensure_once(client, every_secs).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < TRIES => {
                tracing::warn!(attempt, error = ?e, "creating the reconciliation schedule failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(e.context(format!("after {TRIES} tries"))),
        }
    }
}

async fn ensure_once(client: &Client, every_secs: u64) -> anyhow::Result<()> {
    let paused = every_secs == 0;
    let every = Duration::from_secs(every_secs.max(1));
    let note = if paused {
        "paused: provisioning.reconcile_every_secs = 0"
    } else {
        "compares recorded MCP servers with the engine, removes orphans, reports drift"
    };
    let options = CreateScheduleOptions::builder()
        .action(action())
        .spec(ScheduleSpec::from_interval(every))
        .overlap_policy(ScheduleOverlapPolicy::Skip)
        .paused(paused)
        .note(note)
        .build();
    match client.create_schedule(RECONCILE_SCHEDULE_ID, options).await {
        Ok(_) => {
            tracing::info!(every_secs, paused, "reconciliation schedule created");
            Ok(())
        }
        Err(ScheduleError::Rpc(status)) if status.code() == tonic::Code::AlreadyExists => {
            client
                .get_schedule_handle(RECONCILE_SCHEDULE_ID)
                .update(
                    move |u| {
                        u.set_spec(ScheduleSpec::from_interval(every))
                            .set_action(action())
                            .set_overlap_policy(ScheduleOverlapPolicy::Skip)
                            .set_paused(paused)
                            .set_note(note);
                    },
                    Default::default(),
                )
                .await?;
            tracing::info!(every_secs, paused, "reconciliation schedule updated");
            Ok(())
        }
        // The status' own message may be empty: its debug form names the code.
        Err(e) => Err(anyhow::anyhow!("{e:?}")),
    }
}
