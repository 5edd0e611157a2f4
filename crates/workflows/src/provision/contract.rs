//! The provisioning contract: `ProvisionMcpServer` and `DeleteMcpServer` inputs and outputs,
//! container-minute billing, lifecycle event names, and the `avb-provisioning` activities'
//! inputs and definitions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;

use crate::billing::BillingPlan;

pub const PLACE_REPLICAS: &str = "place_replicas";
pub const CREATE_REPLICA: &str = "create_replica";
pub const WAIT_REPLICA_READY: &str = "wait_replica_ready";
pub const REMOVE_REPLICAS: &str = "remove_replicas";
pub const RECORD_SERVER: &str = "record_server";
pub const SETTLE_SERVER_MINUTES: &str = "settle_server_minutes";

/// The tool container-minutes are billed under (`[billing.prices.create_mcp_server]`).
pub const BILLED_TOOL: &str = "create_mcp_server";
pub const BILLED_UNIT: &str = "container-minute";

pub const EVENT_CREATE_REQUESTED: &str = "mcp.server.create.requested";
pub const EVENT_CREATED: &str = "mcp.server.created";
pub const EVENT_FAILED: &str = "mcp.server.failed";
pub const EVENT_DELETE_REQUESTED: &str = "mcp.server.delete.requested";
pub const EVENT_DELETED: &str = "mcp.server.deleted";

/// Workflow input of `ProvisionMcpServer` (validated by the api before it starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionServerJob {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub environment: BTreeMap<String, String>,
    pub replicas: u32,
    /// Container-minute billing (none when billing is off, and in jobs recorded before it).
    #[serde(default)]
    pub billing: Option<ServerBilling>,
    /// Replicas go to one host: a `place_replicas` step on `avb-provisioning` names the host of
    /// the worker that takes it (when its engine is host-local) and every replica step runs on
    /// that host's queue. Jobs recorded before hosts were named have `false`: every step on
    /// `avb-provisioning`.
    #[serde(default)]
    pub on_host: bool,
}

/// How a server's container-minutes are paid: in blocks of `block_secs`, each prepaid when it
/// starts (block 0 through the billing saga before anything is created; later ones by the
/// reconciliation runs), the unused whole minutes of the last block refunded on delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBilling {
    /// Block 0: `replicas` x the block's minutes at the tariff.
    pub plan: BillingPlan,
    pub block_secs: u64,
}

impl ServerBilling {
    /// The tariff `price` (credits per 1 000 container-minutes) for `replicas` in blocks of
    /// `block_secs` (billed in whole minutes, rounded up).
    pub fn new(replicas: u32, price: i64, block_secs: u64) -> Self {
        let minutes = i64::try_from(block_secs.div_ceil(60)).unwrap_or(i64::MAX);
        Self {
            plan: BillingPlan::new(
                BILLED_TOOL,
                BILLED_UNIT,
                minutes.saturating_mul(i64::from(replicas)),
                price,
            ),
            block_secs,
        }
    }
}

/// Input of `settle_server_minutes`: bill the blocks up to `ended_at_ms` not yet paid and refund
/// the unused whole minutes of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleServerMinutes {
    pub server_id: String,
    pub tenant: String,
    pub replicas: u32,
    pub billing: ServerBilling,
    /// When the replicas were removed (workflow time: the same on every retry and replay).
    pub ended_at_ms: i64,
}

/// Input of `place_replicas`: which server is being placed (for the worker's log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceReplicas {
    pub server_id: String,
}

/// One replica to create (the activity resolves the template from its config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateReplica {
    pub job: ProvisionServerJob,
    pub replica: u32,
}

/// Where a replica answers MCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoint {
    pub replica: u32,
    /// Container id or process id.
    pub id: String,
    pub host_port: u16,
    /// `http://127.0.0.1:<port>/mcp`
    pub url: String,
}

/// Remove every replica of a server (`replicas` is the most there can be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReplicas {
    pub server_id: String,
    pub replicas: u32,
}

/// Write the server's record and, with it, one lifecycle event (keyed by `event_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordServer {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    pub status: String,
    pub endpoints: Vec<Endpoint>,
    pub error: Option<String>,
    pub event: String,
    pub event_key: String,
    pub detail: serde_json::Value,
    /// The host its replicas run on, once placed (`None` keeps what the record has).
    #[serde(default)]
    pub host: Option<String>,
}

/// Workflow input of `DeleteMcpServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteServerJob {
    pub server_id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: u32,
    /// The tariff in force when it is deleted (none when billing is off).
    #[serde(default)]
    pub billing: Option<ServerBilling>,
    /// The host its replicas run on: they are removed through that host's queue (`None`: on
    /// `avb-provisioning`, an engine every worker reaches or a server recorded before hosts).
    #[serde(default)]
    pub host: Option<String>,
}

/// Declarations of the provisioning activities (implemented in `avb-activities`).
pub struct ProvisioningActivityDefs;

#[activity_definitions]
impl ProvisioningActivityDefs {
    /// The host this worker's replicas live on, `None` when its engine is reached alike from
    /// every worker.
    #[activity(name = PLACE_REPLICAS)]
    pub fn place_replicas(
        input: PlaceReplicas,
    ) -> Result<Option<String>, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = CREATE_REPLICA)]
    pub fn create_replica(
        input: CreateReplica,
    ) -> Result<Endpoint, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = WAIT_REPLICA_READY)]
    pub fn wait_replica_ready(input: Endpoint) -> Result<(), temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = REMOVE_REPLICAS)]
    pub fn remove_replicas(input: RemoveReplicas) -> Result<u32, temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = RECORD_SERVER)]
    pub fn record_server(input: RecordServer) -> Result<(), temporalio_common::ActivityError> {
        unimplemented!()
    }

    #[activity(name = SETTLE_SERVER_MINUTES)]
    pub fn settle_server_minutes(
        input: SettleServerMinutes,
    ) -> Result<(), temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`.
pub mod activity {
    pub use super::provisioning_activity_defs::{
        CreateReplica, PlaceReplicas, RecordServer, RemoveReplicas, SettleServerMinutes,
        WaitReplicaReady,
    };
}
