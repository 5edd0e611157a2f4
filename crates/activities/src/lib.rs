//! Activities: one module per family. The engines are plain library code (the speech engine is
//! the `avb-tts` crate); the Temporal activity
//! wrappers translate their errors into retryable / non-retryable failures.

pub mod billing_activity;
pub mod device_activity;
pub mod echo_activity;
pub mod provisioning_activity;
pub mod reconcile_activity;
pub mod server_billing;
pub mod server_events;
pub mod speech_activity;
pub mod upstream_activity;

use avb_workflows::errors::ErrorKind;
use temporalio_sdk::activities::ActivityError;

/// A failure Temporal must not retry, of type `kind` (retryability is decided by type).
pub(crate) fn non_retryable(kind: ErrorKind, message: String) -> ActivityError {
    ActivityError::application(kind.failure(message))
}
