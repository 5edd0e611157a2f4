//! `get_server_status`: platform status (a fast tool, no workflow).

use rmcp::handler::server::wrapper::Json;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use crate::health::{ComponentHealth, cached_components};
use crate::mcp::AvbServer;

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerStatus {
    /// "AgentVoiceBox Platform is ONLINE" (or DEGRADED when a component is down).
    pub message: String,
    pub version: String,
    pub components: Vec<ComponentHealth>,
    /// Upstream MCP servers (`[mcp_servers]`): up, down (its tools withdrawn) or disabled.
    pub upstreams: Vec<avb_upstream::UpstreamStatus>,
}

#[tool_router(router = status_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Platform status: whether AgentVoiceBox is online, each component's health, and each
    /// upstream MCP server whose tools are mounted here.
    #[tool(
        name = "get_server_status",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_server_status(&self) -> Json<ServerStatus> {
        let components = cached_components(&self.state).await;
        let online = components.iter().all(|c| c.healthy);
        let message = if online {
            "AgentVoiceBox Platform is ONLINE".to_string()
        } else {
            "AgentVoiceBox Platform is DEGRADED".to_string()
        };
        Json(ServerStatus {
            message,
            version: env!("CARGO_PKG_VERSION").to_string(),
            components,
            upstreams: self.state.upstreams.statuses_for(self.tenant()),
        })
    }
}
