//! The one error vocabulary: every failure a caller can see has an [`ErrorKind`], the same name
//! as a Temporal application-failure type (set by activities and workflows), as the `kind` of an
//! MCP error result and as the `code` family of a REST error. Retryability is decided by kind:
//! a kind that never heals on retry is [`ErrorKind::retryable`] = false, and every activity's
//! retry policy lists those kinds as non-retryable.

use serde::{Deserialize, Serialize};
use temporalio_common::error::ApplicationFailure;

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $kind:ident => retryable: $retry:literal, status: $status:literal; )*) => {
        /// Stable failure kinds. `as_str` is the wire name (`InvalidInput`, …); adding a kind is
        /// one line here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum ErrorKind {
            $( $(#[$doc])* $kind, )*
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind),*];

            /// The wire name: the Temporal failure type, the MCP `error.kind`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorKind::$kind => stringify!($kind),)* }
            }

            /// Whether Temporal may retry an activity that failed with this kind.
            pub const fn retryable(self) -> bool {
                match self { $(ErrorKind::$kind => $retry,)* }
            }

            /// The HTTP status a REST caller gets for this kind.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorKind::$kind => $status,)* }
            }
        }
    };
}

error_kinds! {
    /// An argument is malformed or out of range (`field` names it).
    InvalidInput => retryable: false, status: 400;
    /// `voice_id` names no voice of the catalog.
    UnknownVoice => retryable: false, status: 400;
    /// A device id that no backend knows.
    UnknownDevice => retryable: false, status: 404;
    /// The device does not answer (Zigbee2MQTT reports it offline).
    DeviceOffline => retryable: false, status: 503;
    /// The device did not confirm the change in time.
    NotConfirmed => retryable: true, status: 504;
    /// Home Assistant refused the service call.
    HomeAssistantRefused => retryable: false, status: 502;
    /// A mounted tool's server is no longer configured.
    UnknownServer => retryable: false, status: 404;
    /// The job's tenant is not in the store (deleted, or a store other than the api's).
    UnknownTenant => retryable: false, status: 404;
    /// The installation's configuration cannot serve the request (a missing model, a backend
    /// without URL).
    ConfigurationError => retryable: false, status: 500;
    /// Text that the phonemizer cannot turn into speech.
    PhonemizeError => retryable: false, status: 422;
    /// ONNX Runtime failed while synthesizing (may heal on another worker).
    InferenceError => retryable: true, status: 500;
    /// A file or disk operation failed (may heal).
    IoError => retryable: true, status: 500;
    /// The tenant cannot pay for the job; nothing was held (details: needed, balance, …).
    InsufficientCredits => retryable: false, status: 402;
    /// A ledger operation contradicts an earlier one (e.g. settling a released hold).
    LedgerConflict => retryable: false, status: 409;
    /// The caller's role may not do this (e.g. an AGENT key granting credits).
    Forbidden => retryable: false, status: 403;
    /// The backend's policy does not offer this tool.
    ToolNotAllowed => retryable: false, status: 403;
    /// No such job, server or record visible to the caller (another tenant's is the same).
    NotFound => retryable: false, status: 404;
    /// The request contradicts the current state (a name in use, a settled record).
    Conflict => retryable: false, status: 409;
    /// The job has already ended and cannot be cancelled.
    AlreadyFinished => retryable: false, status: 409;
    /// An approval decision for a job that does not wait for one.
    NotAwaitingApproval => retryable: false, status: 409;
    /// The call needs a person's approval and cannot run inside a batch.
    ApprovalRequired => retryable: false, status: 409;
    /// A person rejected the job.
    ApprovalRejected => retryable: false, status: 409;
    /// Nobody approved the job in time.
    ApprovalExpired => retryable: false, status: 409;
    /// The approval named other arguments than the job's.
    ApprovalMismatch => retryable: false, status: 409;
    /// Too many calls: wait `retry_after_secs`.
    RateLimited => retryable: true, status: 429;
    /// A dependency (Temporal, the store, a worker) cannot be reached now.
    Unavailable => retryable: true, status: 503;
    /// The job's audio is not in the artifact store.
    ArtifactUnavailable => retryable: true, status: 503;
    /// The upstream MCP server refused the call (an error result or a protocol error).
    UpstreamRefused => retryable: false, status: 502;
    /// The upstream call failed where a retry is not safe (the tool is not idempotent).
    UpstreamNotRetried => retryable: false, status: 502;
    /// The upstream server is disabled by its configuration.
    ServerDisabled => retryable: false, status: 503;
    /// The upstream server cannot be reached.
    UpstreamUnreachable => retryable: true, status: 502;
    /// The upstream's connection broke during the call.
    UpstreamConnectionLost => retryable: true, status: 502;
    /// The upstream did not answer in time.
    UpstreamTimeout => retryable: true, status: 504;
    /// The job was cancelled.
    Cancelled => retryable: false, status: 409;
    /// An operator terminated the job.
    Terminated => retryable: false, status: 409;
    /// The job ran out of time.
    TimedOut => retryable: false, status: 504;
    /// The job failed without a kind of ours (a bug or an unexpected fault).
    JobFailed => retryable: false, status: 500;
    /// A fault inside AgentVoiceBox.
    Internal => retryable: false, status: 500;
}

impl ErrorKind {
    /// The kind called `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// The kinds that never heal on retry: every activity's `non_retryable_error_types`.
    pub fn non_retryable() -> impl Iterator<Item = ErrorKind> {
        Self::ALL.iter().copied().filter(|k| !k.retryable())
    }

    /// The names of [`Self::non_retryable`], as retry policies take them.
    pub fn non_retryable_names() -> Vec<String> {
        Self::non_retryable()
            .map(|k| k.as_str().to_string())
            .collect()
    }

    /// An application failure of this kind (non-retryable unless the kind heals on retry):
    /// what activities and workflows fail with.
    pub fn failure(self, message: impl Into<String>) -> ApplicationFailure {
        ApplicationFailure::builder(message.into())
            .type_name(self.as_str().to_owned())
            .non_retryable(!self.retryable())
            .build()
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(*kind));
            assert!(seen.insert(kind.as_str()), "{kind} twice");
            let json = serde_json::to_string(kind).expect("serializes");
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(ErrorKind::parse("NoSuchKind"), None);
    }

    #[test]
    fn input_faults_never_retry_and_transient_faults_do() {
        for k in [
            ErrorKind::InvalidInput,
            ErrorKind::UnknownVoice,
            ErrorKind::InsufficientCredits,
            ErrorKind::LedgerConflict,
        ] {
            assert!(!k.retryable(), "{k}");
            assert!(ErrorKind::non_retryable_names().contains(&k.to_string()));
        }
        for k in [ErrorKind::Unavailable, ErrorKind::UpstreamTimeout] {
            assert!(k.retryable(), "{k}");
        }
        assert_eq!(ErrorKind::InsufficientCredits.http_status(), 402);
        assert_eq!(ErrorKind::RateLimited.http_status(), 429);
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
    }
}
