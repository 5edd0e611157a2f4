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
    /// A byte range outside the artifact (`size` is the artifact's length).
    #[error("bytes {start}-{end} are outside the artifact's {size} bytes")]
    BadRange { start: u64, end: u64, size: u64 },
}

/// Part (or all) of an artifact, read as it is sent: a long job's audio is never held whole in
/// memory to answer one download.
pub struct ArtifactStream {
    /// The artifact's whole length.
    pub size: u64,
    /// The bytes this stream carries, `start..end`.
    pub range: std::ops::Range<u64>,
    pub stream: futures::stream::BoxStream<'static, Result<Bytes, ArtifactError>>,
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

    /// Streams `range` of the artifact (all of it when `None`; an end past the artifact is cut
    /// to its length). Unlike [`get`](Self::get) the hash is not checked: a part cannot be, and
    /// the artifact's sha256 is the download's ETag for the client to check.
    pub async fn open(
        &self,
        artifact: &ArtifactRef,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ArtifactStream, ArtifactError> {
        use futures::StreamExt as _;
        let path = StorePath::parse(&artifact.key)
            .map_err(|_| ArtifactError::BadKey(artifact.key.clone()))?;
        let size = artifact.size_bytes;
        let range = match range {
            Some(r) if r.start >= size || r.start >= r.end => {
                return Err(ArtifactError::BadRange {
                    start: r.start,
                    end: r.end,
                    size,
                });
            }
            Some(r) => r.start..r.end.min(size),
            None => 0..size,
        };
        let options = object_store::GetOptions {
            range: (range != (0..size)).then(|| object_store::GetRange::Bounded(range.clone())),
            ..Default::default()
        };
        let got = match self.store.get_opts(&path, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound(artifact.key.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ArtifactStream {
            size,
            range,
            stream: got
                .into_stream()
                .map(|r| r.map_err(ArtifactError::from))
                .boxed(),
        })
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

    #[tokio::test]
    async fn parts_are_streamed_as_asked() {
        use futures::TryStreamExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::local(dir.path()).expect("store");
        let content: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let a = store
            .put("audio", "wav", "audio/wav", Bytes::from(content.clone()))
            .await
            .expect("put");
        let read = |range| {
            let (store, a) = (store.clone(), a.clone());
            async move {
                let s = store.open(&a, range).await?;
                let parts: Vec<Bytes> = s.stream.try_collect().await?;
                Ok::<_, ArtifactError>((s.range, parts.concat()))
            }
        };
        let (range, all) = read(None).await.expect("all");
        assert_eq!((range, all.as_slice()), (0..100_000, content.as_slice()));
        let (range, part) = read(Some(10..20)).await.expect("part");
        assert_eq!((range, part.as_slice()), (10..20, &content[10..20]));
        let (range, tail) = read(Some(99_990..200_000)).await.expect("tail");
        assert_eq!(
            (range, tail.as_slice()),
            (99_990..100_000, &content[99_990..])
        );
        assert!(matches!(
            read(Some(100_000..100_001)).await,
            Err(ArtifactError::BadRange { size: 100_000, .. })
        ));
    }
}
