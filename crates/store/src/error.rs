use std::path::PathBuf;

/// What a store operation can fail with. `Invalid`, `Conflict` and `NotFound` carry a sentence
/// naming the offending value; only `Database` is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad input (tenant name, amount, idempotency key, URL); the message names the problem.
    #[error("{0}")]
    Invalid(String),
    /// A unique name is taken, an idempotency key was used for another operation, or a hold is
    /// already closed.
    #[error("{0}")]
    Conflict(String),
    /// An unknown tenant or hold.
    #[error("{0}")]
    NotFound(String),
    /// A hold larger than the available balance; nothing was held.
    #[error("insufficient credits: balance {balance}, needed {needed} (short {})", .needed - .balance)]
    InsufficientCredits { balance: i64, needed: i64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

impl StoreError {
    /// Transient failures (connection, lock timeout): the same call may succeed later. Every
    /// other error will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Database(_))
    }
}
