//! Task queue names: one for workflow tasks, one per activity family, so each family scales on
//! dedicated workers.

/// Workflow tasks (deterministic orchestration; cheap).
pub const WORKFLOWS: &str = "avb-workflows";
/// Speech synthesis (CPU heavy, ~630 MB per worker).
pub const TTS: &str = "avb-tts";
pub const BILLING: &str = "avb-billing";
pub const PROVISIONING: &str = "avb-provisioning";
pub const DEVICES: &str = "avb-devices";
/// Calls to upstream MCP servers (sessions and stdio children live on these workers).
pub const UPSTREAM: &str = "avb-upstream";

/// Every queue a worker can serve, in the order `avb worker --queues all` starts them.
pub const ALL: &[&str] = &[WORKFLOWS, TTS, BILLING, PROVISIONING, DEVICES, UPSTREAM];

/// The provisioning queue of one host (`avb-provisioning@<host>`): replicas of a host-local
/// engine (processes, a Docker socket) are created, checked and removed by that host's workers.
pub fn provisioning_on(host: &str) -> String {
    format!("{PROVISIONING}@{host}")
}
