//! Fast-path tools (no workflow): platform status and the voice catalog.

use rmcp::handler::server::wrapper::Json;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use super::AvbServer;
use crate::health::{ComponentHealth, cached_components};
use avb_workflows::voices::VoiceInfo;

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerStatus {
    /// "AgentVoiceBox Platform is ONLINE" (or DEGRADED when a component is down).
    pub message: String,
    pub version: String,
    pub components: Vec<ComponentHealth>,
    /// Upstream MCP servers (`[mcp_servers]`): up, down (its tools withdrawn) or disabled.
    pub upstreams: Vec<avb_upstream::UpstreamStatus>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VoiceList {
    pub voices: Vec<VoiceInfo>,
    pub default_voice: String,
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
        let timer = self
            .state
            .metrics
            .tool_latency
            .with_label_values(&["get_server_status"])
            .start_timer();
        let components = cached_components(&self.state).await;
        let online = components.iter().all(|c| c.healthy);
        let message = if online {
            "AgentVoiceBox Platform is ONLINE".to_string()
        } else {
            "AgentVoiceBox Platform is DEGRADED".to_string()
        };
        timer.observe_duration();
        self.state
            .metrics
            .tool_calls
            .with_label_values(&["get_server_status", "ok"])
            .inc();
        Json(ServerStatus {
            message,
            version: env!("CARGO_PKG_VERSION").to_string(),
            components,
            upstreams: self.state.upstreams.statuses_for(self.tenant()),
        })
    }

    /// The voices `generate_speech` accepts: id, name, language and gender.
    #[tool(
        name = "list_voices",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_voices(&self) -> Json<VoiceList> {
        self.state
            .metrics
            .tool_calls
            .with_label_values(&["list_voices", "ok"])
            .inc();
        Json(VoiceList {
            voices: self.state.voices.as_ref().clone(),
            default_voice: avb_workflows::voices::DEFAULT_VOICE.to_string(),
        })
    }
}
