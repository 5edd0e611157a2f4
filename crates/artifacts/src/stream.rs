//! A speech job's audio while it is being made: the worker stores each chunk's samples (16-bit
//! little-endian PCM, mono) under `streams/<job_id>/<index>.pcm` as soon as the engine has it,
//! and, once the whole WAV is stored, an end marker naming the chunk count and the WAV. Readers
//! anywhere (the api on another host) send chunk after chunk as they appear.
//!
//! The chunks are a cache of the final WAV: they are removed a while after the end marker is
//! written ([`ArtifactStore::remove_stream`]); a reader that comes late finds the WAV through the
//! marker (or the job's result) and reads the rest of the samples from it.

use avb_workflows::artifact::ArtifactRef;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ArtifactError, ArtifactStore};

/// The folder every job's stream lives in.
pub const STREAMS: &str = "streams";

/// Written after the last chunk, once the job's WAV is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// Chunks written, `0..chunks`.
    pub chunks: u32,
    /// Samples in all chunks together (= in the WAV).
    pub samples: u64,
    pub sample_rate: u32,
    /// The job's whole audio.
    pub audio: ArtifactRef,
}

fn folder(job_id: &str) -> String {
    format!("{STREAMS}/{job_id}")
}

fn chunk_key(job_id: &str, index: u32) -> String {
    format!("{STREAMS}/{job_id}/{index:06}.pcm")
}

fn end_key(job_id: &str) -> String {
    format!("{STREAMS}/{job_id}/end.json")
}

impl ArtifactStore {
    /// Stores chunk `index` of `job_id`'s audio (16-bit LE PCM).
    pub async fn put_stream_chunk(
        &self,
        job_id: &str,
        index: u32,
        pcm: Bytes,
    ) -> Result<(), ArtifactError> {
        self.put_named(&chunk_key(job_id, index), "audio/L16", pcm)
            .await
    }

    /// Chunk `index` of `job_id`'s audio, if it is stored (yet, or still).
    pub async fn stream_chunk(
        &self,
        job_id: &str,
        index: u32,
    ) -> Result<Option<Bytes>, ArtifactError> {
        self.get_named(&chunk_key(job_id, index)).await
    }

    /// Marks `job_id`'s stream complete.
    pub async fn put_stream_end(&self, job_id: &str, end: &StreamEnd) -> Result<(), ArtifactError> {
        let json = serde_json::to_vec(end).map_err(|e| ArtifactError::Io(e.into()))?;
        self.put_named(&end_key(job_id), "application/json", Bytes::from(json))
            .await
    }

    /// The end marker of `job_id`'s stream, once written (and until removed).
    pub async fn stream_end(&self, job_id: &str) -> Result<Option<StreamEnd>, ArtifactError> {
        let Some(bytes) = self.get_named(&end_key(job_id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ArtifactError::Io(e.into()))
    }

    /// Removes everything stored for `job_id`'s stream; the number of objects removed.
    pub async fn remove_stream(&self, job_id: &str) -> Result<usize, ArtifactError> {
        let mut removed = 0;
        // Chunks first, the marker last: a reader that sees no marker keeps looking for chunks
        // or asks the job.
        let keys = self.keys_under(&folder(job_id)).await?;
        let (ends, chunks): (Vec<_>, Vec<_>) = keys.iter().partition(|k| k.ends_with("end.json"));
        for key in chunks.into_iter().chain(ends) {
            if self.delete_named(key).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Jobs whose stream is complete (end marker written) and still stored: what a worker that
    /// stopped before removing them left behind.
    pub async fn finished_streams(&self) -> Result<Vec<String>, ArtifactError> {
        let keys = self.keys_under(STREAMS).await?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_suffix("/end.json"))
            .filter_map(|k| k.strip_prefix(&format!("{STREAMS}/")))
            .map(str::to_owned)
            .collect())
    }

    /// Every job with anything stored under [`STREAMS`].
    pub async fn streams(&self) -> Result<Vec<String>, ArtifactError> {
        let keys = self.keys_under(STREAMS).await?;
        let mut jobs: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&format!("{STREAMS}/")))
            .filter_map(|k| k.split_once('/').map(|(job, _)| job.to_owned()))
            .collect();
        jobs.dedup();
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_are_read_by_index_and_removed_with_their_marker() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::local(dir.path()).expect("store");
        assert_eq!(store.stream_chunk("job-1", 0).await.expect("read"), None);
        assert!(store.streams().await.expect("list").is_empty());
        for i in 0..3u8 {
            store
                .put_stream_chunk("job-1", u32::from(i), Bytes::from(vec![i; 4]))
                .await
                .expect("put");
        }
        assert_eq!(
            store.stream_chunk("job-1", 2).await.expect("read"),
            Some(Bytes::from(vec![2u8; 4]))
        );
        assert_eq!(store.stream_chunk("job-1", 3).await.expect("read"), None);
        assert!(store.finished_streams().await.expect("list").is_empty());
        let audio = store
            .put("audio", "wav", "audio/wav", Bytes::from_static(b"RIFF"))
            .await
            .expect("wav");
        let end = StreamEnd {
            chunks: 3,
            samples: 6,
            sample_rate: 24_000,
            audio,
        };
        store.put_stream_end("job-1", &end).await.expect("end");
        store
            .put_stream_chunk("job-2", 0, Bytes::from_static(b"xx"))
            .await
            .expect("put");
        assert_eq!(store.stream_end("job-1").await.expect("end"), Some(end));
        assert_eq!(store.finished_streams().await.expect("list"), ["job-1"]);
        assert_eq!(store.streams().await.expect("list"), ["job-1", "job-2"]);
        assert_eq!(store.remove_stream("job-1").await.expect("remove"), 4);
        assert_eq!(store.stream_end("job-1").await.expect("end"), None);
        assert_eq!(store.stream_chunk("job-1", 0).await.expect("read"), None);
        assert_eq!(store.streams().await.expect("list"), ["job-2"]);
    }
}
