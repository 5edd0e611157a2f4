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
    /// The voices' languages and whether the engine reads text in each (a voice reads its own
    /// language unless `generate_speech` names another).
    pub languages: Vec<LanguageInfo>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LanguageInfo {
    /// BCP-47 tag, as `generate_speech`'s `language` takes it.
    pub tag: String,
    pub name: String,
    /// Whether text in this language can be read.
    pub spoken: bool,
    /// How text becomes phonemes: `misaki` (English lexicons), `espeak-ng`, `jieba+pinyin`
    /// (Mandarin), `mecab+cutlet` (Japanese), or `none`.
    pub g2p: String,
}

/// The catalog's languages, as `list_voices` and `GET /api/v2/voices` show them.
pub fn languages() -> Vec<LanguageInfo> {
    use avb_workflows::speech::voices::{G2p, LANGUAGES};
    LANGUAGES
        .iter()
        .map(|l| LanguageInfo {
            tag: l.tag.to_owned(),
            name: l.name.to_owned(),
            spoken: l.is_spoken(),
            g2p: match l.g2p {
                G2p::English { .. } => "misaki",
                G2p::Espeak(_) => "espeak-ng",
                G2p::Mandarin => "jieba+pinyin",
                G2p::Japanese => "mecab+cutlet",
                G2p::NotSpoken => "none",
            }
            .to_owned(),
        })
        .collect()
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
            languages: languages(),
        })
    }
}
