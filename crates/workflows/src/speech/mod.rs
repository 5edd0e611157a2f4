//! Speech: `generate_speech` (workflow `GenerateSpeech`, activity `synthesize_speech` on
//! `avb-tts`) and the voice catalog `list_voices` serves.

pub mod contract;
pub mod voices;
pub mod workflow;

pub use contract::*;
pub use voices::{DEFAULT_VOICE, MAX_BLEND_VOICES, VoiceInfo, nearest_ids, parse_blend};
pub use workflow::{GenerateSpeechWorkflow, synthesis_budget};
