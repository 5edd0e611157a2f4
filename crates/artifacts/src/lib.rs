//! The artifact store: large results (audio) live here, content-addressed, and workflows pass
//! references. Backed by `object_store`, so the local directory default can be swapped for
//! S3-compatible storage without touching callers.

use std::path::Path;
use std::sync::Arc;

use avb_workflows::artifact::ArtifactRef;
use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact {0} not found")]
    NotFound(String),
    #[error("artifact key '{0}' is not valid")]
    BadKey(String),
    #[error("artifact {key} is corrupt: sha256 is {actual}, expected {expected}")]
    Corrupt {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("artifact store error: {0}")]
    Store(#[from] object_store::Error),
    #[error("artifact store i/o error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    description: String,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("store", &self.description)
            .finish()
    }
}

impl ArtifactStore {
    /// A directory on local disk (created if missing).
    pub fn local(dir: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir)?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(fs),
            description: format!("file://{}", dir.display()),
        })
    }

    /// Any `object_store` backend (S3, GCS, Azure, in-memory).
    pub fn from_store(store: Arc<dyn ObjectStore>, description: impl Into<String>) -> Self {
        Self {
            store,
            description: description.into(),
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Stores `content` under `<prefix>/<sha256>.<ext>`. Idempotent: the same bytes always land at
    /// the same key, so a retried activity does not create a second copy.
    pub async fn put(
        &self,
        prefix: &str,
        ext: &str,
        content_type: &str,
        content: Bytes,
    ) -> Result<ArtifactRef, ArtifactError> {
        let sha256 = hex::encode(Sha256::digest(&content));
        let key = format!("{prefix}/{sha256}.{ext}");
        let size_bytes = content.len() as u64;
        let path = StorePath::parse(&key).map_err(|_| ArtifactError::BadKey(key.clone()))?;
        self.store
            .put(&path, PutPayload::from_bytes(content))
            .await?;
        Ok(ArtifactRef {
            key,
            sha256,
            size_bytes,
            content_type: content_type.to_string(),
        })
    }

    /// Reads an artifact back and checks its hash.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Bytes, ArtifactError> {
        let path = StorePath::parse(&artifact.key)
            .map_err(|_| ArtifactError::BadKey(artifact.key.clone()))?;
        let bytes = match self.store.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound(artifact.key.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != artifact.sha256 {
            return Err(ArtifactError::Corrupt {
                key: artifact.key.clone(),
                expected: artifact.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Round-trips a small object: used by readiness checks.
    pub async fn check(&self) -> Result<(), ArtifactError> {
        let path = StorePath::from("health/probe");
        self.store
            .put(&path, PutPayload::from_static(b"ok"))
            .await?;
        self.store.get(&path).await?.bytes().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_is_content_addressed_and_verified() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::local(dir.path()).expect("store");
        let a = store
            .put("audio", "wav", "audio/wav", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        let b = store
            .put("audio", "wav", "audio/wav", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        assert_eq!(a, b);
        assert_eq!(
            a.key,
            "audio/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.wav"
        );
        assert_eq!(
            store.get(&a).await.expect("get"),
            Bytes::from_static(b"hello")
        );
        std::fs::write(dir.path().join(&a.key), b"tampered").expect("write");
        assert!(matches!(
            store.get(&a).await,
            Err(ArtifactError::Corrupt { .. })
        ));
        let missing = ArtifactRef {
            key: "audio/none.wav".into(),
            ..a
        };
        assert!(matches!(
            store.get(&missing).await,
            Err(ArtifactError::NotFound(_))
        ));
        store.check().await.expect("healthy");
    }
}
