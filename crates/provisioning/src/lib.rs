//! Container backends for MCP servers: one trait ([`ContainerBackend`]) over the
//! Docker Engine API ([`DockerBackend`], bollard; Docker or Podman) and local subprocesses
//! ([`ProcessBackend`]). A replica is named `avb-<server_id>-<replica>`, labelled
//! (`avb.managed`, `avb.tenant`, `avb.server_id`, `avb.replica`, `avb.template`,
//! `avb.spec_hash`), reachable on a loopback port; [`wait_until_mcp_ready`] tells when it speaks
//! MCP ([`wait_replica_ready`] also fails fast when the replica dies). Errors say whether a
//! retry can help ([`ProvisionError::is_retryable`]).
//!
//! The crate also builds `avb-demo-mcp`, a tiny MCP server (tools `echo`, `add`), and
//! [`build_image_from_binary`] turns such a binary into an image without a registry.

mod backend;
mod docker;
mod error;
mod image;
mod mcp_probe;
mod process;
mod spec;

pub use backend::ContainerBackend;
pub use docker::{DockerBackend, DockerEndpoint};
pub use error::ProvisionError;
pub use image::{
    IMAGE_BIN_DIR, ImageContents, build_image, build_image_from_binary, rootfs_tar, rootfs_tar_of,
    shared_libraries,
};
pub use mcp_probe::{
    McpClient, PROBE_PROTOCOL_VERSION, list_tool_names, wait_replica_ready, wait_until_mcp_ready,
};
pub use process::ProcessBackend;
pub use spec::{
    LABEL_HOST, LABEL_INSTANCE, LABEL_MANAGED, LABEL_REPLICA, LABEL_SERVER_ID, LABEL_SPEC_HASH,
    LABEL_TEMPLATE, LABEL_TENANT, ListFilter, MAX_REPLICAS, MAX_SERVER_ID_LEN, ManagedReplica,
    PORT_ENV, ReplicaHandle, ReplicaState, ServerSpec, TemplateSpec, Transport, replica_name,
    replica_url,
};

/// Re-exported so callers can use [`DockerBackend::client`] without depending on bollard.
pub use bollard;
