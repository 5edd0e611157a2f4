//! Stable failure type names (Temporal application-failure types) shared by activities, workflows
//! and the api. Retryability is decided by type: these never heal on retry.

pub const INVALID_INPUT: &str = "InvalidInput";
pub const UNKNOWN_VOICE: &str = "UnknownVoice";
pub const CONFIGURATION_ERROR: &str = "ConfigurationError";
pub const PHONEMIZE_ERROR: &str = "PhonemizeError";

pub const NON_RETRYABLE_KINDS: &[&str] = &[
    INVALID_INPUT,
    UNKNOWN_VOICE,
    CONFIGURATION_ERROR,
    PHONEMIZE_ERROR,
];
