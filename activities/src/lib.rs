//! Activities: one module per family. The engines are plain library code; the Temporal activity
//! wrappers translate their errors into retryable / non-retryable failures.

pub mod billing_activity;
pub mod device_activity;
pub mod echo_activity;
pub mod provisioning_activity;
pub mod reconcile_activity;
pub mod server_billing;
pub mod server_events;
pub mod speech_activity;
pub mod tts;
pub mod upstream_activity;

use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

/// A failure Temporal must not retry, of type `kind` (retryability is decided by type).
pub(crate) fn non_retryable(kind: &str, message: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(kind.to_owned())
            .non_retryable(true)
            .build(),
    )
}
