//! One error type for every backend. `is_retryable` is what an activity turns into a retryable
//! or non-retryable Temporal failure; `kind` is a stable name for the failure type.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The spec cannot be provisioned as written (name rules, env keys, limits, replica index).
    #[error("invalid server spec: {0}")]
    Invalid(String),

    /// The engine does not have the template's image (it cannot be pulled here either).
    #[error("image {image:?} not found in the container engine ({message})")]
    ImageNotFound { image: String, message: String },

    /// The engine could not be reached: socket missing, connection refused, broken connection,
    /// timeout. Transient: retried until the engine is back.
    #[error("container engine unreachable at {endpoint} during {op}: {message}")]
    EngineUnavailable {
        endpoint: String,
        op: &'static str,
        message: String,
    },

    /// The engine answered with an error status. 5xx (and 408, 429) are retryable, other 4xx
    /// mean the request itself is wrong.
    #[error("container engine refused {op} of {target} (HTTP {status}): {message}")]
    Engine {
        op: &'static str,
        target: String,
        status: u16,
        message: String,
    },

    /// The deterministic name is taken by something that is not this replica of this server
    /// (another tenant's or an unmanaged container/process). Never removed automatically.
    #[error("replica name {name} is taken by {owner}; refusing to replace it")]
    NameConflict { name: String, owner: String },

    /// The replica's program ended right after it started (bad command, arguments or
    /// environment; killed for memory). Trying again would end the same way.
    #[error("{}", exited_message(name, *exit_code, detail))]
    ReplicaExited {
        name: String,
        exit_code: Option<i64>,
        /// The engine's reason and the last lines the replica wrote, when known.
        detail: String,
    },

    /// The process backend could not start the program.
    #[error("cannot start {program}: {message}")]
    Spawn {
        program: String,
        message: String,
        retryable: bool,
    },

    /// Building or importing an image failed (files, ldd, the import itself).
    #[error("building image {image}: {message}")]
    ImageBuild { image: String, message: String },

    /// The replica runs but did not answer MCP `initialize` in time. Retryable: a slow start
    /// is the common cause; the workflow's retry policy bounds it.
    #[error("MCP server at {url} not ready after {timeout:?}: {last_error}")]
    NotReady {
        url: String,
        timeout: Duration,
        last_error: String,
    },

    /// An MCP request to a replica failed (transport or JSON-RPC error).
    #[error("MCP request {method} to {url} failed: {message}")]
    Mcp {
        url: String,
        method: String,
        message: String,
    },

    /// A local I/O failure (process table, sockets).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn exited_message(name: &str, exit_code: Option<i64>, detail: &str) -> String {
    let code = exit_code
        .map(|c| format!(" with code {c}"))
        .unwrap_or_default();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    format!(
        "replica {name} exited{code} right after it started; check the template's image, \
         command and environment{detail}"
    )
}

impl ProvisionError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProvisionError::EngineUnavailable { .. }
            | ProvisionError::NotReady { .. }
            | ProvisionError::Mcp { .. }
            | ProvisionError::Io { .. } => true,
            ProvisionError::Engine { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            ProvisionError::Spawn { retryable, .. } => *retryable,
            ProvisionError::Invalid(_)
            | ProvisionError::ImageNotFound { .. }
            | ProvisionError::NameConflict { .. }
            | ProvisionError::ReplicaExited { .. }
            | ProvisionError::ImageBuild { .. } => false,
        }
    }

    /// A stable name for the failure type (Temporal `ApplicationFailure` type, metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            ProvisionError::Invalid(_) => "InvalidServerSpec",
            ProvisionError::ImageNotFound { .. } => "ImageNotFound",
            ProvisionError::EngineUnavailable { .. } => "EngineUnavailable",
            ProvisionError::Engine { .. } => "EngineError",
            ProvisionError::NameConflict { .. } => "NameConflict",
            ProvisionError::ReplicaExited { .. } => "ReplicaExited",
            ProvisionError::Spawn { .. } => "SpawnFailed",
            ProvisionError::ImageBuild { .. } => "ImageBuildFailed",
            ProvisionError::NotReady { .. } => "NotReady",
            ProvisionError::Mcp { .. } => "McpError",
            ProvisionError::Io { .. } => "IoError",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ProvisionError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_by_kind() {
        let engine = |status| ProvisionError::Engine {
            op: "create",
            target: "avb-x-0".into(),
            status,
            message: "m".into(),
        };
        assert!(engine(500).is_retryable());
        assert!(engine(503).is_retryable());
        assert!(engine(429).is_retryable());
        assert!(!engine(400).is_retryable());
        assert!(!engine(404).is_retryable());
        assert!(
            ProvisionError::EngineUnavailable {
                endpoint: "unix:///x".into(),
                op: "ping",
                message: "refused".into()
            }
            .is_retryable()
        );
        let missing = ProvisionError::ImageNotFound {
            image: "nope:1".into(),
            message: "No such image".into(),
        };
        assert!(!missing.is_retryable());
        assert!(missing.to_string().contains("\"nope:1\""));
        assert_eq!(missing.kind(), "ImageNotFound");
        assert!(!ProvisionError::Invalid("x".into()).is_retryable());
        let exited = ProvisionError::ReplicaExited {
            name: "avb-s-0".into(),
            exit_code: Some(2),
            detail: "unknown argument".into(),
        };
        assert!(!exited.is_retryable());
        assert_eq!(
            exited.to_string(),
            "replica avb-s-0 exited with code 2 right after it started; check the template's \
             image, command and environment: unknown argument"
        );
    }
}
