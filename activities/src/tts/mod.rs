//! Kokoro-82M speech synthesis on ONNX Runtime. No Temporal types here: the activity wrapper
//! lives in `crate::speech_activity`.

pub mod assets;
pub mod engine;
pub mod error;
pub mod feed;
pub mod model;
pub mod onnx_graph;
pub mod phonemes;
pub mod text;
pub mod tokens;
pub mod voices;
pub mod wav;

pub use engine::{ChunkDone, SpeechAudio, SpeechPlan, TtsConfig, TtsEngine};
pub use error::TtsError;
