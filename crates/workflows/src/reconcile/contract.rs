//! The reconciliation contract: the schedule, the run's input and report, the activity's
//! definition and the lifecycle events it writes.

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;

use crate::provision::ServerBilling;

pub const RECONCILE_WORKFLOW: &str = "ReconcileMcpServers";
pub const RECONCILE_ACTIVITY: &str = "reconcile_servers";
/// The schedule's id (one per namespace).
pub const RECONCILE_SCHEDULE_ID: &str = "avb-reconcile-mcp-servers";

pub const EVENT_ORPHAN_REMOVED: &str = "mcp.server.orphan.removed";
pub const EVENT_DRIFT: &str = "mcp.server.drift";
pub const EVENT_RECOVERED: &str = "mcp.server.recovered";
pub const EVENT_CREDITS_EXHAUSTED: &str = "mcp.server.credits.exhausted";
/// A failed or deleted server's record removed after the retention period (the events stay).
pub const EVENT_RECORD_PURGED: &str = "mcp.server.record.purged";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileInput {
    /// Only report orphans, do not remove them.
    #[serde(default)]
    pub dry_run: bool,
    /// The host whose engine and records this run checks (on its queue); `None`: the run on
    /// `avb-provisioning`, which also pays blocks, purges records and names the hosts to visit.
    #[serde(default)]
    pub host: Option<String>,
}

/// A replica no live record accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    pub server_id: String,
    pub tenant: String,
    pub replica: u32,
    /// Container or process id.
    pub id: String,
    /// Why it is an orphan: no record, record deleted/failed, replica beyond the record's count.
    pub reason: String,
    pub removed: bool,
}

/// A recorded running server whose replicas are not all there and running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub server_id: String,
    pub tenant: String,
    /// e.g. "replica 1 is missing", "replica 0 is exited (exit code 137)".
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// `docker` or `process`.
    pub backend: String,
    /// Records looked at (not deleted).
    pub records: u32,
    /// Managed replicas the engine has.
    pub replicas: u32,
    pub orphans: Vec<Orphan>,
    pub drift: Vec<Drift>,
    /// Servers that were degraded and are whole again.
    pub recovered: Vec<String>,
    /// Blocks of container-minutes paid by this run.
    #[serde(default)]
    pub paid_blocks: u32,
    /// Servers whose tenant cannot pay their next block: the run deletes them.
    #[serde(default)]
    pub exhausted: Vec<ExhaustedServer>,
    /// Failed or deleted servers whose records passed the retention period and were purged.
    #[serde(default)]
    pub purged: Vec<String>,
    /// Hosts that run replicas of recorded servers: each gets a run of its own, merged here.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Hosts whose run did not happen (no worker of that host took it in time), with why.
    #[serde(default)]
    pub unreachable: Vec<UnreachableHost>,
}

/// A host the reconciliation could not visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableHost {
    pub host: String,
    pub error: String,
}

impl ReconcileReport {
    /// Adds what the run of one host found.
    pub fn absorb(&mut self, host: Self) {
        self.records += host.records;
        self.replicas += host.replicas;
        self.orphans.extend(host.orphans);
        self.drift.extend(host.drift);
        self.recovered.extend(host.recovered);
    }
}

/// A server whose tenant ran out of credits for its next block of container-minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExhaustedServer {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    /// The block that could not be paid.
    pub block: i64,
    pub billing: Option<ServerBilling>,
    /// The host its replicas run on.
    #[serde(default)]
    pub host: Option<String>,
}

pub struct ReconcileActivityDefs;

#[activity_definitions]
impl ReconcileActivityDefs {
    #[activity(name = RECONCILE_ACTIVITY)]
    pub fn reconcile_servers(
        input: ReconcileInput,
    ) -> Result<ReconcileReport, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`.
pub mod activity {
    pub use super::reconcile_activity_defs::ReconcileServers;
}
