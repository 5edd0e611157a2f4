//! The MCP server factory: one `AvbServer` type serves every transport (Streamable HTTP, legacy
//! HTTP+SSE, stdio) with the same toolset, one tool router per tool family combined with `+`.

mod echo_tools;
mod speech_tools;
pub mod sse;
mod status_tools;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};

use crate::state::ApiState;

pub const SERVER_NAME: &str = "AgentVoiceBox";

#[derive(Clone)]
pub struct AvbServer {
    pub(crate) state: ApiState,
    tool_router: ToolRouter<AvbServer>,
}

impl AvbServer {
    pub fn new(state: ApiState) -> Self {
        Self {
            state,
            tool_router: Self::status_tools() + Self::speech_tools() + Self::echo_tools(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AvbServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")).with_title("AgentVoiceBox"))
            .with_instructions(
                "AgentVoiceBox: durable tools. generate_speech turns text into speech (Kokoro, 54 voices; see list_voices); \
                 each call runs as a Temporal workflow and survives crashes and retries.",
            )
    }
}
