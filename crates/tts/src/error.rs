//! Errors of the speech engine. Each variant knows whether retrying can help, so the Temporal
//! activity wrapper can mark bad input non-retryable on purpose.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TtsError {
    /// A request field is out of bounds (empty text, text too long, speed out of range).
    #[error("invalid input: {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// The voice id is not in the catalog.
    #[error("unknown voice '{voice_id}'; nearest valid ids: {}", nearest.join(", "))]
    UnknownVoice {
        voice_id: String,
        nearest: Vec<String>,
    },
    /// Assets or runtime library missing or unusable: an operator must fix the installation.
    #[error("configuration error: {0}")]
    Config(String),
    /// A word could not be phonemized by the lexicon nor by the espeak-ng fallback.
    #[error("cannot phonemize word '{word}': {reason}")]
    Phonemize { word: String, reason: String },
    /// ONNX Runtime failed while running the model; possibly transient.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The caller asked to stop between chunks.
    #[error("synthesis cancelled after {chunks_done} of {chunks_total} chunks")]
    Cancelled {
        chunks_done: usize,
        chunks_total: usize,
    },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl TtsError {
    /// Stable type name used as the Temporal application-failure type.
    pub fn kind(&self) -> &'static str {
        match self {
            TtsError::InvalidInput { .. } => "InvalidInput",
            TtsError::UnknownVoice { .. } => "UnknownVoice",
            TtsError::Config(_) => "ConfigurationError",
            TtsError::Phonemize { .. } => "PhonemizeError",
            TtsError::Inference(_) => "InferenceError",
            TtsError::Cancelled { .. } => "Cancelled",
            TtsError::Io(_) => "IoError",
        }
    }

    /// Whether another attempt may succeed. Bad input and broken installations never heal by
    /// themselves; inference and i/o faults might.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TtsError::Inference(_) | TtsError::Io(_))
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        TtsError::InvalidInput {
            field,
            message: message.into(),
        }
    }
}
