//! `list_voices`: the voice catalog (a fast tool, no workflow).

use rmcp::handler::server::wrapper::Json;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use crate::mcp::AvbServer;
use avb_workflows::speech::VoiceInfo;

#[derive(Debug, Serialize, JsonSchema)]
pub struct VoiceList {
    pub voices: Vec<VoiceInfo>,
    pub default_voice: String,
}

#[tool_router(router = speech_tools, vis = "pub(crate)")]
impl AvbServer {
    /// The voices `generate_speech` accepts: id, name, language and gender.
    #[tool(
        name = "list_voices",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_voices(&self) -> Json<VoiceList> {
        Json(VoiceList {
            voices: self.state.voices.as_ref().clone(),
            default_voice: avb_workflows::speech::DEFAULT_VOICE.to_string(),
        })
    }
}
