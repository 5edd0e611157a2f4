//! Artifacts kept in the database: a row per artifact and its bytes in fixed-size chunks, so
//! every host sharing the database reads what any worker wrote, and a byte range is read chunk
//! by chunk without loading the rest.

use sqlx::Row;

use crate::db::now_ms;
use crate::{Store, StoreError};

/// What the database knows of one stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub key: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub content_type: String,
    /// Every chunk but the last holds exactly this many bytes.
    pub chunk_bytes: u64,
}

impl StoredArtifact {
    /// The chunk numbers holding bytes `range` (empty range → none).
    pub fn chunks_of(&self, range: &std::ops::Range<u64>) -> std::ops::Range<u64> {
        if range.start >= range.end || self.chunk_bytes == 0 {
            return 0..0;
        }
        range.start / self.chunk_bytes..range.end.div_ceil(self.chunk_bytes)
    }
}

fn to_i64(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} {n} is too large")))
}

impl Store {
    /// Stores `content` under `artifact.key` in chunks of `artifact.chunk_bytes`, in one
    /// transaction: readers see all of it or nothing. Keys are content-addressed, so a key that
    /// exists already holds these bytes: returns false and writes nothing (a retried activity
    /// stores once).
    pub async fn put_artifact(
        &self,
        artifact: &StoredArtifact,
        content: &[u8],
    ) -> Result<bool, StoreError> {
        if artifact.chunk_bytes == 0 {
            return Err(StoreError::Invalid(
                "artifact chunk size must be > 0".into(),
            ));
        }
        if artifact.size_bytes != content.len() as u64 {
            return Err(StoreError::Invalid(format!(
                "artifact {} says {} bytes but has {}",
                artifact.key,
                artifact.size_bytes,
                content.len()
            )));
        }
        let chunk_bytes = usize::try_from(artifact.chunk_bytes)
            .map_err(|_| StoreError::Invalid("artifact chunk size is too large".into()))?;
        let mut w = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO artifacts (key, sha256, size_bytes, content_type, chunk_bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&artifact.key)
        .bind(&artifact.sha256)
        .bind(to_i64(artifact.size_bytes, "artifact size")?)
        .bind(&artifact.content_type)
        .bind(to_i64(artifact.chunk_bytes, "artifact chunk size")?)
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            w.rollback().await?;
            return Ok(false);
        }
        for (seq, chunk) in content.chunks(chunk_bytes).enumerate() {
            sqlx::query("INSERT INTO artifact_chunks (key, seq, data) VALUES ($1, $2, $3)")
                .bind(&artifact.key)
                .bind(seq as i64)
                .bind(chunk.to_vec())
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await?;
        Ok(true)
    }

    /// The artifact stored under `key`, if any.
    pub async fn artifact(&self, key: &str) -> Result<Option<StoredArtifact>, StoreError> {
        let row = sqlx::query(
            "SELECT key, sha256, size_bytes, content_type, chunk_bytes FROM artifacts \
             WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let count = |column: &str| -> Result<u64, StoreError> {
            let n: i64 = row.try_get(column)?;
            u64::try_from(n).map_err(|_| StoreError::Invalid(format!("negative {column}")))
        };
        Ok(Some(StoredArtifact {
            key: row.try_get("key")?,
            sha256: row.try_get("sha256")?,
            size_bytes: count("size_bytes")?,
            content_type: row.try_get("content_type")?,
            chunk_bytes: count("chunk_bytes")?,
        }))
    }

    /// Chunk `seq` of the artifact under `key` (None when either is missing).
    pub async fn artifact_chunk(&self, key: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT data FROM artifact_chunks WHERE key = $1 AND seq = $2")
            .bind(key)
            .bind(to_i64(seq, "chunk number")?)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("data")?),
            None => None,
        })
    }

    /// Keys of the artifacts whose key starts with `prefix`, in key order.
    pub async fn artifact_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT key FROM artifacts ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        // Filtered here rather than with LIKE: '_' and '%' in a prefix would be wildcards.
        let mut keys = Vec::new();
        for row in rows {
            let key: String = row.try_get("key")?;
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Deletes the artifact under `key` and its chunks; false when there was none.
    pub async fn delete_artifact(&self, key: &str) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query("DELETE FROM artifact_chunks WHERE key = $1")
            .bind(key)
            .execute(&mut *w.tx)
            .await?;
        let n = sqlx::query("DELETE FROM artifacts WHERE key = $1")
            .bind(key)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(n == 1)
    }
}
