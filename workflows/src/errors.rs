//! Stable failure type names (Temporal application-failure types) shared by activities, workflows
//! and the api. Retryability is decided by type: these never heal on retry.

pub const INVALID_INPUT: &str = "InvalidInput";
pub const UNKNOWN_VOICE: &str = "UnknownVoice";
pub const CONFIGURATION_ERROR: &str = "ConfigurationError";
pub const PHONEMIZE_ERROR: &str = "PhonemizeError";
/// The tenant cannot pay for the job; nothing was held (details: `InsufficientCreditsDetails`).
pub const INSUFFICIENT_CREDITS: &str = "InsufficientCredits";
/// The job's tenant is not in the store (deleted, or a store other than the api's).
pub const UNKNOWN_TENANT: &str = "UnknownTenant";
/// A ledger operation contradicts an earlier one (e.g. settling a released hold).
pub const LEDGER_CONFLICT: &str = "LedgerConflict";

pub const NON_RETRYABLE_KINDS: &[&str] = &[
    INVALID_INPUT,
    UNKNOWN_VOICE,
    CONFIGURATION_ERROR,
    PHONEMIZE_ERROR,
    INSUFFICIENT_CREDITS,
    UNKNOWN_TENANT,
    LEDGER_CONFLICT,
];
