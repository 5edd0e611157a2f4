//! The artifact store: large results (audio) live here, content-addressed, and workflows pass
//! references. Where, is chosen by `artifacts.url` ([`ArtifactLocation`]):
//!
//! - a directory on this host (`file://`), through `object_store`'s local file system;
//! - the installation's database, in fixed-size chunks ([`avb_store::StoredArtifact`]): hosts
//!   that share a PostgreSQL database share artifacts with nothing else deployed;
//! - S3-compatible object storage (`s3://`), through `object_store`, trusting the same roots as
//!   every other outbound https call (`avb_tls`).
//!
//! Every backend streams a range without reading the rest ([`ArtifactStore::open`]) and checks a
//! whole read against the artifact's sha256 ([`ArtifactStore::get`]).

pub mod stream;

use std::path::Path;
use std::sync::Arc;

use avb_config::{ArtifactLocation, AvbConfig};
use avb_store::{Store, StoredArtifact};
use avb_workflows::artifact::ArtifactRef;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use sha2::{Digest, Sha256};

/// Chunk size of artifacts kept in the database: a range read fetches at most one chunk it
/// does not need at each end, and a row stays far below PostgreSQL's 1 GB value limit.
pub const DATABASE_CHUNK_BYTES: u64 = 256 * 1024;

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
    #[error("artifact store (database): {0}")]
    Database(#[from] avb_store::StoreError),
    #[error("artifact store i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A byte range outside the artifact (`size` is the artifact's length).
    #[error("bytes {start}-{end} are outside the artifact's {size} bytes")]
    BadRange { start: u64, end: u64, size: u64 },
    /// The store cannot be used as configured (the message names the setting).
    #[error("artifact store unavailable: {0}")]
    Unavailable(String),
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
enum Backend {
    Objects(Arc<dyn ObjectStore>),
    Database(Store),
    /// Configured but not usable in this process; every call fails with the reason.
    Unavailable(Arc<str>),
}

#[derive(Clone)]
pub struct ArtifactStore {
    backend: Backend,
    description: String,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("store", &self.description)
            .finish()
    }
}

/// Builds `object_store`'s http clients from `avb_tls`, so S3 over https trusts the platform's
/// roots and `tls.ca_file` like every other outbound call.
#[derive(Debug)]
struct TrustedConnector;

impl object_store::client::HttpConnector for TrustedConnector {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        use object_store::ClientConfigKey;
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v == "true");
        let client = avb_tls::client_builder()
            // Plain http only when asked for (AWS_ALLOW_HTTP): it would carry the audio and
            // the request signatures in the clear.
            .https_only(!allow_http)
            // As `object_store` does by default: S3 servers speak HTTP/1.1.
            .http1_only()
            .connect_timeout(std::time::Duration::from_secs(5))
            // Per read, not per request: a long download keeps going while bytes arrive.
            .read_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

impl ArtifactStore {
    /// The store `config` names ([`AvbConfig::artifact_location`]). `database` is the
    /// installation's database, needed when artifacts are kept there.
    pub fn configured(config: &AvbConfig, database: Option<&Store>) -> Result<Self, ArtifactError> {
        match config.artifact_location() {
            ArtifactLocation::Directory(dir) => Self::local(&dir),
            ArtifactLocation::Database => match database {
                Some(store) => Ok(Self::in_database(store.clone())),
                None => Err(ArtifactError::Unavailable(
                    "artifacts.url is the database, and this process has not opened it".into(),
                )),
            },
            ArtifactLocation::S3 { bucket, prefix } => Self::s3(&bucket, &prefix, &[]),
        }
    }

    /// A directory on local disk (created if missing).
    pub fn local(dir: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir)?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            backend: Backend::Objects(Arc::new(fs)),
            description: format!("file://{}", dir.display()),
        })
    }

    /// Chunks in the installation's database.
    pub fn in_database(store: Store) -> Self {
        let description = format!("database ({})", store.backend_name());
        Self {
            backend: Backend::Database(store),
            description,
        }
    }

    /// S3-compatible object storage: `bucket`, keys under `prefix`; endpoint, region and
    /// credentials from the `AWS_*` variables, then `options` (`object_store`'s S3 keys, e.g.
    /// `aws_endpoint`, `aws_access_key_id`, `aws_allow_http`).
    pub fn s3(bucket: &str, prefix: &str, options: &[(&str, &str)]) -> Result<Self, ArtifactError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env();
        for (key, value) in options {
            let key: object_store::aws::AmazonS3ConfigKey = key
                .parse()
                .map_err(|e| ArtifactError::Unavailable(format!("s3 option {key}: {e}")))?;
            builder = builder.with_config(key, *value);
        }
        use object_store::aws::AmazonS3ConfigKey;
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            ))
            .is_some_and(|v| v == "true");
        if let Some(endpoint) = endpoint.filter(|e| e.starts_with("http://"))
            && !allow_http
        {
            return Err(ArtifactError::Unavailable(format!(
                "s3://{bucket}: the endpoint {endpoint} is plain http; set AWS_ALLOW_HTTP=true to \
                 use it (audio and request signatures then travel unencrypted)"
            )));
        }
        let s3 = builder
            .with_bucket_name(bucket)
            .with_http_connector(TrustedConnector)
            .build()
            .map_err(|e| ArtifactError::Unavailable(format!("s3://{bucket}: {e}")))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        let description = match prefix {
            "" => format!("s3://{bucket}"),
            _ => format!("s3://{bucket}/{prefix}"),
        };
        Ok(Self {
            backend: Backend::Objects(store),
            description,
        })
    }

    /// A store every call of which fails with `why` (a process that has no use for artifacts,
    /// or has not opened what they need yet).
    pub fn unavailable(why: impl Into<String>) -> Self {
        let why: String = why.into();
        Self {
            description: format!("unavailable: {why}"),
            backend: Backend::Unavailable(why.into()),
        }
    }

    /// Any `object_store` backend (S3, GCS, Azure, in-memory).
    pub fn from_store(store: Arc<dyn ObjectStore>, description: impl Into<String>) -> Self {
        Self {
            backend: Backend::Objects(store),
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
        self.write(&key, Some(&sha256), content_type, content)
            .await?;
        Ok(ArtifactRef {
            key,
            sha256,
            size_bytes,
            content_type: content_type.to_string(),
        })
    }

    /// Reads an artifact back whole and checks its hash.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Bytes, ArtifactError> {
        let read = self.open(artifact, None).await?;
        let parts: Vec<Bytes> = match read.stream.try_collect().await {
            Ok(parts) => parts,
            Err(e) => return Err(e),
        };
        let bytes = Bytes::from(parts.concat());
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
        let stream = match &self.backend {
            Backend::Objects(store) => {
                let options = object_store::GetOptions {
                    range: (range != (0..size))
                        .then(|| object_store::GetRange::Bounded(range.clone())),
                    ..Default::default()
                };
                let got = match store.get_opts(&path, options).await {
                    Ok(r) => r,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(ArtifactError::NotFound(artifact.key.clone()));
                    }
                    Err(e) => return Err(e.into()),
                };
                got.into_stream()
                    .map(|r| r.map_err(ArtifactError::from))
                    .boxed()
            }
            Backend::Database(store) => {
                let Some(stored) = store.artifact(&artifact.key).await? else {
                    return Err(ArtifactError::NotFound(artifact.key.clone()));
                };
                database_chunks(store.clone(), stored, range.clone())
            }
            Backend::Unavailable(why) => return Err(ArtifactError::Unavailable(why.to_string())),
        };
        Ok(ArtifactStream {
            size,
            range,
            stream,
        })
    }

    /// Deletes an artifact; false when there was none.
    pub async fn delete(&self, artifact: &ArtifactRef) -> Result<bool, ArtifactError> {
        let path = StorePath::parse(&artifact.key)
            .map_err(|_| ArtifactError::BadKey(artifact.key.clone()))?;
        match &self.backend {
            Backend::Objects(store) => match store.head(&path).await {
                Ok(_) => {
                    store.delete(&path).await?;
                    Ok(true)
                }
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
            Backend::Database(store) => Ok(store.delete_artifact(&artifact.key).await?),
            Backend::Unavailable(why) => Err(ArtifactError::Unavailable(why.to_string())),
        }
    }

    /// Stores `content` under `key` itself (not content-addressed): objects others find by
    /// name, such as a job's audio chunks ([`stream`]). A key written before keeps its bytes in
    /// the database backend; object stores overwrite (the bytes are the same for a retry).
    pub async fn put_named(
        &self,
        key: &str,
        content_type: &str,
        content: Bytes,
    ) -> Result<(), ArtifactError> {
        self.write(key, None, content_type, content).await
    }

    /// Writes `content` under `key`; the database keeps its `sha256` (computed when `None`).
    async fn write(
        &self,
        key: &str,
        sha256: Option<&str>,
        content_type: &str,
        content: Bytes,
    ) -> Result<(), ArtifactError> {
        let path = StorePath::parse(key).map_err(|_| ArtifactError::BadKey(key.to_owned()))?;
        match &self.backend {
            Backend::Objects(store) => {
                store.put(&path, PutPayload::from_bytes(content)).await?;
            }
            Backend::Database(store) => {
                let stored = StoredArtifact {
                    key: key.to_owned(),
                    sha256: sha256
                        .map_or_else(|| hex::encode(Sha256::digest(&content)), str::to_owned),
                    size_bytes: content.len() as u64,
                    content_type: content_type.to_string(),
                    chunk_bytes: DATABASE_CHUNK_BYTES,
                };
                store.put_artifact(&stored, &content).await?;
            }
            Backend::Unavailable(why) => return Err(ArtifactError::Unavailable(why.to_string())),
        }
        Ok(())
    }

    /// The object stored under `key` by [`put_named`](Self::put_named), if there is one.
    pub async fn get_named(&self, key: &str) -> Result<Option<Bytes>, ArtifactError> {
        let path = StorePath::parse(key).map_err(|_| ArtifactError::BadKey(key.to_owned()))?;
        match &self.backend {
            Backend::Objects(store) => match store.get(&path).await {
                Ok(got) => Ok(Some(got.bytes().await?)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::Database(store) => {
                let Some(stored) = store.artifact(key).await? else {
                    return Ok(None);
                };
                let size = stored.size_bytes;
                let parts: Vec<Bytes> = database_chunks(store.clone(), stored, 0..size)
                    .try_collect()
                    .await?;
                Ok(Some(Bytes::from(parts.concat())))
            }
            Backend::Unavailable(why) => Err(ArtifactError::Unavailable(why.to_string())),
        }
    }

    /// The keys under `prefix` (a folder: `streams/job-1` lists `streams/job-1/…`), in order.
    pub async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, ArtifactError> {
        let folder = StorePath::parse(prefix).map_err(|_| ArtifactError::BadKey(prefix.into()))?;
        let mut keys = match &self.backend {
            Backend::Objects(store) => {
                let listed: Vec<object_store::ObjectMeta> =
                    match store.list(Some(&folder)).try_collect().await {
                        Ok(listed) => listed,
                        Err(object_store::Error::NotFound { .. }) => Vec::new(),
                        Err(e) => return Err(e.into()),
                    };
                listed.into_iter().map(|m| m.location.to_string()).collect()
            }
            Backend::Database(store) => store.artifact_keys(&format!("{folder}/")).await?,
            Backend::Unavailable(why) => return Err(ArtifactError::Unavailable(why.to_string())),
        };
        keys.sort();
        Ok(keys)
    }

    /// Deletes the object under `key`; false when there was none.
    pub async fn delete_named(&self, key: &str) -> Result<bool, ArtifactError> {
        let path = StorePath::parse(key).map_err(|_| ArtifactError::BadKey(key.to_owned()))?;
        match &self.backend {
            Backend::Objects(store) => match store.delete(&path).await {
                Ok(()) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
            Backend::Database(store) => Ok(store.delete_artifact(key).await?),
            Backend::Unavailable(why) => Err(ArtifactError::Unavailable(why.to_string())),
        }
    }

    /// Writes and reads back a small artifact: used by readiness checks. The probe is
    /// content-addressed and left in place, so concurrent checks of several hosts agree.
    pub async fn check(&self) -> Result<(), ArtifactError> {
        let probe = self
            .put("health", "txt", "text/plain", Bytes::from_static(b"ok"))
            .await?;
        self.get(&probe).await?;
        Ok(())
    }
}

/// The chunks of `stored` that hold `range`, fetched one at a time as the stream is read, cut
/// to the range at both ends.
fn database_chunks(
    store: Store,
    stored: StoredArtifact,
    range: std::ops::Range<u64>,
) -> futures::stream::BoxStream<'static, Result<Bytes, ArtifactError>> {
    let chunks = stored.chunks_of(&range);
    futures::stream::try_unfold(chunks.start, move |seq| {
        let (store, stored, range) = (store.clone(), stored.clone(), range.clone());
        async move {
            if seq >= chunks.end {
                return Ok(None);
            }
            let Some(data) = store.artifact_chunk(&stored.key, seq).await? else {
                return Err(ArtifactError::NotFound(format!(
                    "{} (chunk {seq})",
                    stored.key
                )));
            };
            let chunk_start = seq * stored.chunk_bytes;
            let from = range.start.saturating_sub(chunk_start);
            let to = (range.end - chunk_start).min(data.len() as u64);
            if from > to {
                return Err(ArtifactError::NotFound(format!(
                    "{} (chunk {seq} is shorter than its artifact says)",
                    stored.key
                )));
            }
            let part = Bytes::from(data).slice(from as usize..to as usize);
            Ok(Some((part, seq + 1)))
        }
    })
    .boxed()
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
