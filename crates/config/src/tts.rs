//! `[tts]`: how the speech workers run the model, and how much text one job may carry.

use serde::Deserialize;

use super::env::{EnvVar, parse_bool, parse_uint};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsSettings {
    /// ONNX Runtime intra-op threads per session (`AVB_TTS_THREADS`; default: cores / sessions).
    pub threads: Option<usize>,
    /// Sessions per TTS worker synthesizing chunks of one text concurrently (`AVB_TTS_SESSIONS`;
    /// default: one per core, at most 4 — measured fastest, BENCHMARKS.md).
    pub sessions: Option<usize>,
    /// Threads of the lead session that synthesizes each job's first chunk alone
    /// (`AVB_TTS_LEAD_THREADS`; 0 = none; default: all cores when `sessions` > 1, else none).
    pub lead_threads: Option<usize>,
    /// Give the lead its own model instance (`AVB_TTS_SEPARATE_LEAD`, default false: the lead
    /// is the first instance, built with the lead's threads — one copy of the weights fewer,
    /// BENCHMARKS.md).
    pub separate_lead: bool,
    pub max_text_chars: usize,
    pub espeak_program: String,
    /// Run the model's 1-D integer convolutions as int8 matrix products (and its constant
    /// squares as products): bit-identical audio, much faster than the file as it is
    /// (BENCHMARKS.md), used only on CPUs where it is exact, with AVX-512 VNNI
    /// (`AVB_TTS_REWRITE_CONVS`, default true).
    pub rewrite_convs: bool,
    /// Seconds a finished job's streamed chunks stay in the artifact store after its WAV is
    /// stored, for readers still sending them (`AVB_AUDIO_STREAM_KEEP_SECS`, default 60; later
    /// readers read the rest from the WAV).
    pub stream_keep_secs: u64,
}

impl Default for TtsSettings {
    fn default() -> Self {
        Self {
            threads: None,
            sessions: None,
            lead_threads: None,
            separate_lead: false,
            max_text_chars: 20_000,
            espeak_program: "espeak-ng".into(),
            rewrite_convs: true,
            stream_keep_secs: 60,
        }
    }
}

pub const ENV: &[EnvVar<TtsSettings>] = &[
    EnvVar::new(
        "AVB_TTS_THREADS",
        "ONNX Runtime threads per model instance (default cores / instances)",
        |t, v| {
            t.threads = Some(parse_uint(v)?);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TTS_SESSIONS",
        "model instances per TTS worker, on chunks of one text at once (default cores, at most 4)",
        |t, v| {
            t.sessions = Some(parse_uint(v)?);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TTS_LEAD_THREADS",
        "threads of the instance that speaks each job's first chunk alone (0 = none)",
        |t, v| {
            t.lead_threads = Some(parse_uint(v)?);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TTS_SEPARATE_LEAD",
        "give the first-chunk lead its own model instance (more memory; default false)",
        |t, v| {
            t.separate_lead = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MAX_TEXT_CHARS",
        "longest text one speech job accepts (default 20000)",
        |t, v| {
            t.max_text_chars = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_ESPEAK_PROGRAM",
        "the espeak-ng program for words the lexicons lack (default espeak-ng)",
        |t, v| {
            t.espeak_program = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TTS_REWRITE_CONVS",
        "run the model's convolutions as int8 matrix products where exact (default true)",
        |t, v| {
            t.rewrite_convs = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_AUDIO_STREAM_KEEP_SECS",
        "seconds a finished job's streamed audio chunks are kept for readers (default 60)",
        |t, v| {
            t.stream_keep_secs = parse_uint(v)?;
            Ok(())
        },
    ),
];

impl TtsSettings {
    /// Checks the settings; the error is (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_text_chars == 0 {
            return Err(("tts.max_text_chars", "must be at least 1".into()));
        }
        if self.sessions == Some(0) {
            return Err(("tts.sessions", "must be at least 1".into()));
        }
        if self.threads == Some(0) {
            return Err(("tts.threads", "must be at least 1".into()));
        }
        Ok(())
    }
}
