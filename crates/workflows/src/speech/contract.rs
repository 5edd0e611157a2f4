//! The `generate_speech` contract: input, bounds and validation shared by the api (which rejects
//! bad input before starting a workflow) and the TTS engine (which checks again); the workflow's
//! input and result, and the TTS activity's definition.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;

use super::voices::{
    DEFAULT_VOICE, LANGUAGES, SpeechLanguage, language_of_tag, language_of_voice, spoken_tags,
};
use crate::artifact::ArtifactRef;
use crate::billing::BillingPlan;

pub const MIN_SPEED: f32 = 0.5;
pub const MAX_SPEED: f32 = 2.0;
/// Default limit on `text`, in characters; configurable per deployment.
pub const DEFAULT_MAX_TEXT_CHARS: usize = 20_000;

fn default_voice() -> String {
    DEFAULT_VOICE.to_string()
}

fn default_speed() -> f32 {
    1.0
}

/// Arguments of `generate_speech`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpeechInput {
    /// The text to speak (English). At most 20 000 characters unless configured otherwise.
    pub text: String,
    /// Voice id from `list_voices`, or a blend of voices by weight, e.g. `af_bella(2)+af_sky(1)`
    /// (language and dialect follow the first).
    #[serde(default = "default_voice")]
    pub voice_id: String,
    /// Speaking rate, 0.5 (slow) to 2.0 (fast).
    #[serde(default = "default_speed")]
    pub speed: f32,
    /// Audio format of the result: `wav` (the default), `mp3`, `opus` (Ogg), `flac` or `pcm`
    /// (16-bit little-endian mono at 24 kHz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Language of the text, a tag from `list_voices` (`en-US`, `en-GB`, `es`, `fr-FR`, `hi`,
    /// `it`, `pt-BR`); default: the voice's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A field of the input is out of bounds; `field` names it, `message` says which bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    pub field: &'static str,
    pub message: String,
}

impl GenerateSpeechInput {
    /// Checks text and speed bounds (the voice is checked against the catalog separately).
    pub fn validate(&self, max_text_chars: usize) -> Result<(), InputError> {
        if self.text.trim().is_empty() {
            return Err(InputError {
                field: "text",
                message: "must not be empty".into(),
            });
        }
        let chars = self.text.chars().count();
        if chars > max_text_chars {
            return Err(InputError {
                field: "text",
                message: format!("is {chars} characters; the limit is {max_text_chars}"),
            });
        }
        if !self.speed.is_finite() || !(MIN_SPEED..=MAX_SPEED).contains(&self.speed) {
            return Err(InputError {
                field: "speed",
                message: format!(
                    "is {}; it must be between {MIN_SPEED} and {MAX_SPEED}",
                    self.speed
                ),
            });
        }
        self.speech_language()?;
        Ok(())
    }

    /// The language the text is read in: `language` if given, else the voice's. A language
    /// without a G2P in this build is an error naming it and the voice, never read as another.
    pub fn speech_language(&self) -> Result<&'static SpeechLanguage, InputError> {
        let language = match self.language.as_deref() {
            Some(tag) => language_of_tag(tag).ok_or_else(|| InputError {
                field: "language",
                message: format!(
                    "unknown language {tag:?}; the voices speak {}",
                    LANGUAGES
                        .iter()
                        .map(|l| l.tag)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?,
            // An unknown voice is reported by the voice check; read as American English here.
            None => language_of_voice(&self.voice_id).unwrap_or(&LANGUAGES[0]),
        };
        if !language.is_spoken() {
            return Err(InputError {
                field: "language",
                message: format!(
                    "{} ({}) text cannot be read yet (voice {}): this build has no \
                     grapheme-to-phoneme conversion for it; the engine reads {}",
                    language.name,
                    language.tag,
                    self.voice_id,
                    spoken_tags()
                ),
            });
        }
        Ok(language)
    }
}

/// What the TTS activity returns: a reference to the audio, never the audio itself (it would
/// bloat workflow history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpeechArtifact {
    pub audio: ArtifactRef,
    pub duration_secs: f64,
    pub sample_count: u64,
    pub sample_rate: u32,
    pub chunks: u32,
    pub voice_id: String,
    /// The format the caller asked for (the stored audio is always WAV); `None`: WAV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Heartbeat details of the TTS activity (and the job's progress as shown to clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpeechProgress {
    pub chunks_done: u32,
    /// 0 while the rest of the text is still being planned.
    pub chunks_total: u32,
}

impl SpeechProgress {
    /// One line for people: progress notifications, job status.
    pub fn describe(&self) -> String {
        if self.chunks_total == 0 {
            format!(
                "synthesized {} chunks (planning the rest)",
                self.chunks_done
            )
        } else {
            format!(
                "synthesized {} of {} chunks",
                self.chunks_done, self.chunks_total
            )
        }
    }
}

/// Input of the TTS activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthesizeSpeech {
    pub job_id: String,
    pub request: GenerateSpeechInput,
}

/// Workflow input: the validated tool arguments and who asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateSpeechJob {
    pub job_id: String,
    pub tenant: String,
    pub request: GenerateSpeechInput,
    /// The price, when billing is on. Jobs recorded before billing existed have none, so their
    /// histories replay without billing activities (no patch marker needed: the input decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

/// Activity type names, shared by the declaration here and the implementation in `avb-activities`.
pub const SYNTHESIZE_SPEECH: &str = "synthesize_speech";

/// Declarations of the TTS activities (implemented in `avb-activities`).
pub struct TtsActivityDefs;

#[activity_definitions]
impl TtsActivityDefs {
    #[activity(name = SYNTHESIZE_SPEECH)]
    pub fn synthesize_speech(
        input: SynthesizeSpeech,
    ) -> Result<SpeechArtifact, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`
/// (the implementation then has the definition's name, input and output, checked at compile
/// time).
pub mod activity {
    pub use super::tts_activity_defs::SynthesizeSpeech;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str, speed: f32) -> GenerateSpeechInput {
        GenerateSpeechInput {
            text: text.into(),
            voice_id: DEFAULT_VOICE.into(),
            speed,
            format: None,
            language: None,
        }
    }

    #[test]
    fn bounds_name_the_field() {
        assert_eq!(
            input("  ", 1.0).validate(10).map_err(|e| e.field),
            Err("text")
        );
        let e = input("abcdefghijk", 1.0)
            .validate(10)
            .expect_err("too long");
        assert_eq!(e.to_string(), "text: is 11 characters; the limit is 10");
        let e = input("hi", 2.5).validate(10).expect_err("too fast");
        assert_eq!(e.to_string(), "speed: is 2.5; it must be between 0.5 and 2");
        assert!(input("hi", f32::NAN).validate(10).is_err());
        assert!(input("hi", 0.5).validate(10).is_ok());
    }

    #[test]
    fn defaults_apply() {
        let v: GenerateSpeechInput = serde_json::from_str(r#"{"text":"hi"}"#).expect("parse");
        assert_eq!((v.voice_id.as_str(), v.speed), ("af_heart", 1.0));
    }
}
