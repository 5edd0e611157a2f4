//! `reconcile_servers` on `avb-provisioning`: recorded deployments against the engine's labelled
//! replicas. Records are looked up by the server ids the engine reports (and, for drift and
//! billing, by status), never through a window of the newest records: a running server is
//! never taken for an orphan because many newer records exist. An orphan is a managed replica
//! whose server has no record, a deleted or failed record, or a replica number beyond its
//! record's count; replicas of servers being created or deleted belong to a workflow at work and
//! are left alone. Drift is a running server with a replica missing or not running. Failed and
//! deleted records older than the retention period are purged, each with an audit event.
//!
//! A run for a host (`ReconcileInput::host`, on that host's queue) judges drift of the servers
//! placed on it only; the run without one judges servers recorded without a host, and alone
//! pays blocks, purges records and names the hosts to visit (so each happens once per run).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use avb_provisioning::{ContainerBackend, ListFilter, ManagedReplica};
use avb_store::{ServerRecord, now_ms};
use avb_workflows::provision::ServerBilling;
use avb_workflows::reconcile::activity as defs;
use avb_workflows::reconcile::{
    Drift, EVENT_CREDITS_EXHAUSTED, EVENT_DRIFT, EVENT_ORPHAN_REMOVED, EVENT_RECORD_PURGED,
    EVENT_RECOVERED, ExhaustedServer, Orphan, ReconcileInput, ReconcileReport,
};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::server_billing::pay_started_blocks;
use crate::server_events::ServerEvents;

/// Most records one run purges (the rest go in the next runs).
const MAX_PURGED: usize = 1_000;

pub struct ReconcileActivities {
    pub backend: Arc<dyn ContainerBackend>,
    pub events: Arc<ServerEvents>,
    /// Container-minute tariff (credits per 1 000) and block length; `None` when billing is off.
    pub tariff: Option<(i64, u64)>,
    /// Failed and deleted records older than this are purged; `None`: kept forever.
    pub retention: Option<std::time::Duration>,
}

fn retryable(e: impl std::error::Error + Send + Sync + 'static) -> ActivityError {
    ActivityError::from(anyhow::Error::new(e))
}

/// Why `replica` is an orphan, or `None` when a record accounts for it.
fn orphan_reason(replica: &ManagedReplica, record: Option<&ServerRecord>) -> Option<String> {
    let Some(record) = record else {
        return Some("no record of this server".into());
    };
    match record.status.as_str() {
        "deleted" | "failed" => Some(format!("its server is {}", record.status)),
        "creating" | "deleting" => None,
        _ if i64::from(replica.replica) >= record.replicas => Some(format!(
            "replica {} is beyond the server's {} replicas",
            replica.replica, record.replicas
        )),
        _ => None,
    }
}

/// What is wrong with a running (or degraded) server's replicas; empty when it is whole.
fn problems(record: &ServerRecord, replicas: &[&ManagedReplica]) -> Vec<String> {
    let mut out = Vec::new();
    for n in 0..u32::try_from(record.replicas).unwrap_or(0) {
        match replicas.iter().find(|r| r.replica == n) {
            None => out.push(format!("replica {n} is missing")),
            Some(r) if !r.state.is_running() => out.push(match r.exit_code {
                Some(code) => format!("replica {n} is {:?} (exit code {code})", r.state),
                None => format!("replica {n} is {:?}", r.state),
            }),
            Some(_) => {}
        }
    }
    out
}

impl ReconcileActivities {
    async fn set_status(
        &self,
        record: &ServerRecord,
        status: &str,
        error: Option<String>,
    ) -> Result<(), ActivityError> {
        let updated = ServerRecord {
            status: status.into(),
            error,
            updated_at_ms: now_ms(),
            ..record.clone()
        };
        self.events
            .store()
            .upsert_server(&updated)
            .await
            .map_err(retryable)
    }

    /// Prepays the blocks of container-minutes that started; servers whose tenant cannot pay
    /// go to `report.exhausted`.
    async fn pay_blocks(
        &self,
        records: &BTreeMap<String, ServerRecord>,
        price: i64,
        block_secs: u64,
        now: i64,
        report: &mut ReconcileReport,
    ) -> Result<(), ActivityError> {
        for record in records
            .values()
            .filter(|r| matches!(r.status.as_str(), "running" | "degraded"))
        {
            let replicas = u32::try_from(record.replicas).unwrap_or(0);
            let billing = ServerBilling::new(replicas, price, block_secs);
            let billed = pay_started_blocks(self.events.store(), record, &billing, now)
                .await
                .map_err(retryable)?;
            report.paid_blocks += u32::try_from(billed.paid_blocks.len()).unwrap_or(0);
            if let Some(block) = billed.unpaid_block {
                let detail = serde_json::json!({
                    "block": block,
                    "credits": billing.plan.credits,
                    "action": "deleting the server",
                });
                let key = format!("{}/exhausted/{block}", record.id);
                self.event(key, record, EVENT_CREDITS_EXHAUSTED, detail)
                    .await?;
                tracing::warn!(server_id = %record.id, block, "credits exhausted: deleting the server");
                report.exhausted.push(ExhaustedServer {
                    server_id: record.id.clone(),
                    tenant: record.tenant.clone(),
                    service_name: record.service_name.clone(),
                    template: record.template.clone(),
                    replicas,
                    block,
                    billing: Some(billing),
                    host: record.host.clone(),
                });
            }
        }
        Ok(())
    }

    async fn event(
        &self,
        key: String,
        record: &ServerRecord,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<(), ActivityError> {
        self.events
            .append(&key, &record.id, &record.tenant, kind, &detail)
            .await
            .map_err(retryable)
    }
}

#[activities]
impl ReconcileActivities {
    #[activity(definition = defs::ReconcileServers)]
    pub async fn reconcile_servers(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ReconcileInput,
    ) -> Result<ReconcileReport, ActivityError> {
        // The clock first: a server deleted after the records are read ends later than this, so
        // blocks paid here are ones its deletion pays too (the same keys, paid once).
        let now = now_ms();
        // The engine's replicas next, then the records of exactly those servers: a replica
        // created after the listing is not judged in this run, and one created between the
        // listing and the record read belongs to a record that is `creating`, never an orphan.
        let managed = self
            .backend
            .list_managed(&ListFilter::default())
            .await
            .map_err(retryable)?;
        let store = self.events.store();
        let ids: Vec<String> = managed
            .iter()
            .map(|m| m.server_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut records: BTreeMap<String, ServerRecord> = store
            .servers_by_ids(&ids)
            .await
            .map_err(retryable)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for r in store.live_servers().await.map_err(retryable)? {
            records.entry(r.id.clone()).or_insert(r);
        }
        // Events of one run are keyed by it: a retried activity writes each once.
        let info = ctx.info();
        let run = match (&info.workflow_id, &info.workflow_run_id) {
            (Some(w), Some(r)) => format!("{w}/{r}"),
            _ => now.to_string(),
        };
        // The servers whose replicas this run's engine holds: those placed on its host.
        let here = |r: &ServerRecord| r.host == input.host;
        let mut report = ReconcileReport {
            backend: self.backend.kind().into(),
            records: u32::try_from(
                records
                    .values()
                    .filter(|r| r.status != "deleted" && here(r))
                    .count(),
            )
            .unwrap_or(u32::MAX),
            replicas: u32::try_from(managed.len()).unwrap_or(u32::MAX),
            ..ReconcileReport::default()
        };

        for replica in &managed {
            let record = records.get(&replica.server_id);
            let Some(reason) = orphan_reason(replica, record) else {
                continue;
            };
            let removed = !input.dry_run;
            if removed {
                self.backend
                    .remove_replica(&replica.server_id, replica.replica)
                    .await
                    .map_err(retryable)?;
                if let Some(record) = record {
                    let detail = serde_json::json!({
                        "replica": replica.replica, "id": replica.id, "reason": reason,
                    });
                    let key = format!("{}/orphan/{}/{}", record.id, replica.replica, replica.id);
                    self.event(key, record, EVENT_ORPHAN_REMOVED, detail)
                        .await?;
                }
            }
            tracing::warn!(server_id = %replica.server_id, replica = replica.replica, id = %replica.id, %reason, removed, "orphan replica");
            report.orphans.push(Orphan {
                server_id: replica.server_id.clone(),
                tenant: replica.tenant.clone(),
                replica: replica.replica,
                id: replica.id.clone(),
                reason,
                removed,
            });
        }

        let known: BTreeSet<&str> = report.orphans.iter().map(|o| o.id.as_str()).collect();
        for record in records
            .values()
            .filter(|r| matches!(r.status.as_str(), "running" | "degraded") && here(r))
        {
            let replicas: Vec<&ManagedReplica> = managed
                .iter()
                .filter(|m| m.server_id == record.id && !known.contains(m.id.as_str()))
                .collect();
            let found = problems(record, &replicas);
            if found.is_empty() {
                if record.status == "degraded" {
                    self.set_status(record, "running", None).await?;
                    let key = format!("{}/recovered/{run}", record.id);
                    self.event(key, record, EVENT_RECOVERED, serde_json::json!({}))
                        .await?;
                    report.recovered.push(record.id.clone());
                }
                continue;
            }
            tracing::warn!(server_id = %record.id, problems = ?found, "mcp server drift");
            if record.status == "running" {
                self.set_status(record, "degraded", Some(found.join("; ")))
                    .await?;
            }
            let key = format!("{}/drift/{run}", record.id);
            self.event(
                key,
                record,
                EVENT_DRIFT,
                serde_json::json!({ "problems": found }),
            )
            .await?;
            report.drift.push(Drift {
                server_id: record.id.clone(),
                tenant: record.tenant.clone(),
                problems: found,
            });
        }
        if input.host.is_some() {
            tracing::info!(host = ?input.host, orphans = report.orphans.len(), drift = report.drift.len(), "reconciled a host");
            return Ok(report);
        }
        report.hosts = store.server_hosts().await.map_err(retryable)?;
        if let Some((price, block_secs)) = self.tariff {
            self.pay_blocks(&records, price, block_secs, now, &mut report)
                .await?;
        }
        if let Some(retention) = self.retention
            && !input.dry_run
        {
            let before =
                now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            // The audit event first: a retry after the removal still finds it written.
            for record in store
                .expired_servers(before, MAX_PURGED)
                .await
                .map_err(retryable)?
            {
                let detail = serde_json::json!({
                    "status": record.status,
                    "service_name": record.service_name,
                    "retention_days": retention.as_secs() / 86_400,
                });
                let key = format!("{}/purged", record.id);
                self.event(key, &record, EVENT_RECORD_PURGED, detail)
                    .await?;
                store.purge_server(&record.id).await.map_err(retryable)?;
                report.purged.push(record.id);
            }
        }
        tracing::info!(
            paid_blocks = report.paid_blocks,
            exhausted = report.exhausted.len(),
            orphans = report.orphans.len(),
            drift = report.drift.len(),
            recovered = report.recovered.len(),
            purged = report.purged.len(),
            "reconciled mcp servers"
        );
        Ok(report)
    }
}
