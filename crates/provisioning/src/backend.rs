//! The one trait every engine implements. Object-safe (`Arc<dyn ContainerBackend>`).

use async_trait::async_trait;

use crate::error::ProvisionError;
use crate::spec::{ListFilter, ManagedReplica, ReplicaHandle, ServerSpec};

#[async_trait]
pub trait ContainerBackend: Send + Sync {
    /// `"docker"` or `"process"`.
    fn kind(&self) -> &'static str;

    /// Whether the engine's replicas live on this host only (processes, a Docker socket), so
    /// another host's workers can neither reach nor remove them; `false` for an engine every
    /// worker reaches alike (a Docker daemon over TCP).
    fn host_local(&self) -> bool;

    /// Is the engine there? `EngineUnavailable` (retryable) when not.
    async fn ping(&self) -> Result<(), ProvisionError>;

    /// Makes sure `image` exists before a replica needs it: an engine without it gets one built
    /// from `program` (a local binary, see [`crate::build_image_from_binary`]) when given.
    /// Returns whether it built one. Backends without images do nothing.
    async fn prepare_image(
        &self,
        _image: &str,
        _program: Option<&std::path::Path>,
    ) -> Result<bool, ProvisionError> {
        Ok(false)
    }

    /// Creates and starts replica `replica` of `spec` (named `avb-<server_id>-<replica>`,
    /// labelled, port published on loopback, limits applied) and returns where it listens. It
    /// does not wait for MCP: see [`crate::wait_until_mcp_ready`].
    ///
    /// Idempotent: when the replica already exists with the same spec it is started if needed
    /// and returned; a leftover of the same server and replica with another spec is replaced;
    /// a name held by anything else is a `NameConflict`. A non-retryable failure leaves nothing
    /// behind.
    async fn create_replica(
        &self,
        spec: &ServerSpec,
        replica: u32,
    ) -> Result<ReplicaHandle, ProvisionError>;

    /// Stops and removes the replica. Idempotent: absent is success.
    async fn remove_replica(&self, server_id: &str, replica: u32) -> Result<(), ProvisionError>;

    /// Every replica carrying the `avb.managed=true` label (env, for processes) that matches
    /// `filter`, sorted by server id and replica.
    async fn list_managed(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<ManagedReplica>, ProvisionError>;

    /// One replica's state, `None` when it does not exist.
    async fn replica_status(
        &self,
        server_id: &str,
        replica: u32,
    ) -> Result<Option<ManagedReplica>, ProvisionError>;

    /// The last `tail` lines the replica wrote (stdout and stderr), empty when the backend
    /// keeps none (the process backend without a log directory) or the replica is gone.
    async fn replica_logs(
        &self,
        _server_id: &str,
        _replica: u32,
        _tail: usize,
    ) -> Result<String, ProvisionError> {
        Ok(String::new())
    }

    /// Removes every replica of `server_id` (whatever their number): compensation and delete.
    /// Returns how many were removed.
    async fn remove_server(&self, server_id: &str) -> Result<usize, ProvisionError> {
        let replicas = self.list_managed(&ListFilter::server(server_id)).await?;
        for r in &replicas {
            self.remove_replica(&r.server_id, r.replica).await?;
        }
        Ok(replicas.len())
    }
}

pub(crate) fn sort_replicas(replicas: &mut [ManagedReplica]) {
    replicas.sort_by(|a, b| {
        (a.server_id.as_str(), a.replica, a.id.as_str()).cmp(&(
            b.server_id.as_str(),
            b.replica,
            b.id.as_str(),
        ))
    });
}
