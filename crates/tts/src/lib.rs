//! Kokoro-82M speech synthesis on ONNX Runtime: text → phonemes → tokens → chunks → audio.
//! No Temporal types here: `avb_activities::speech_activity` wraps the engine as an activity;
//! `avb speak` (which the engine benchmarks in `bench/` run) calls it directly.
//!
//! # Layout
//! - [`engine`]: sessions, chunk planning and synthesis ([`TtsEngine`]); [`feed`] carries chunk
//!   plans to the sessions.
//! - [`text`], [`phonemes`], [`tokens`]: normalisation, grapheme-to-phoneme, token ids and chunking.
//! - [`model`]: loading the ONNX model; [`onnx_graph`]: the int8 convolution rewrite applied
//!   to the graph before it is loaded.
//! - [`voices`], [`assets`]: voice packs and the asset files; [`wav`]: encoding.

pub mod assets;
pub mod engine;
pub mod error;
pub mod feed;
pub mod japanese;
pub mod mandarin;
pub mod model;
pub mod onnx_graph;
pub mod phonemes;
pub mod text;
pub mod tokens;
pub mod voices;
pub mod wav;

pub use engine::{ChunkDone, SpeechAudio, SpeechPlan, TtsConfig, TtsEngine};
pub use error::TtsError;
