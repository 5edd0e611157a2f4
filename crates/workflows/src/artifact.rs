//! References to large results kept outside workflow history (audio in the artifact store).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A content-addressed blob in the artifact store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactRef {
    /// Store key, e.g. `audio/<sha256>.wav`.
    pub key: String,
    /// Hex sha256 of the content (also the content address).
    pub sha256: String,
    pub size_bytes: u64,
    pub content_type: String,
}
