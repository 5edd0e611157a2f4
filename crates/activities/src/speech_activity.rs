//! The `synthesize_speech` activity on the `avb-tts` queue: runs the engine on a blocking thread,
//! heartbeats progress after each chunk (and periodically during long chunks), stops between
//! chunks when Temporal cancels, stores each chunk's samples as it is made (the job's audio
//! stream, [`avb_artifacts::stream`]) and finally the WAV in the artifact store.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use avb_artifacts::stream::StreamEnd;
use avb_artifacts::{ArtifactError, ArtifactStore};
use avb_workflows::speech::activity as defs;
use avb_workflows::speech::{SpeechArtifact, SpeechProgress, SynthesizeSpeech};
use bytes::Bytes;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio::sync::mpsc;

use avb_tts::wav::{encode_wav, to_pcm16le};
use avb_tts::{TtsEngine, TtsError};

/// Heartbeat at least this often while a chunk is being synthesized, well inside the
/// workflow's 30 s heartbeat timeout.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub struct TtsActivities {
    pub engine: Arc<TtsEngine>,
    pub artifacts: ArtifactStore,
    /// How long a finished job's stream chunks stay for readers still sending them.
    pub stream_keep: Duration,
}

/// A chunk the engine finished: its progress and its samples as 16-bit PCM.
struct ChunkMade {
    progress: SpeechProgress,
    index: u32,
    pcm: Bytes,
}

/// Maps engine errors to Temporal failures: bad input and broken installs are non-retryable with
/// a stable type name; inference and i/o faults are retried by the workflow's policy.
pub fn to_activity_error(e: TtsError) -> ActivityError {
    if let TtsError::Cancelled { .. } = e {
        return ActivityError::cancelled();
    }
    let failure = ApplicationFailure::builder(e.to_string())
        .type_name(e.kind().to_string())
        .non_retryable(!e.is_retryable())
        .build();
    ActivityError::application(failure)
}

#[activities]
impl TtsActivities {
    #[activity(definition = defs::SynthesizeSpeech)]
    pub async fn synthesize_speech(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: SynthesizeSpeech,
    ) -> Result<SpeechArtifact, ActivityError> {
        let engine = self.engine.clone();
        tracing::info!(job_id = %input.job_id, voice = %input.request.voice_id, "synthesis started");
        // The total is unknown (0) until the engine has planned the whole text; synthesis of
        // the first sentence starts before that.
        let mut total = 0;
        ctx.record_heartbeat(SpeechProgress {
            chunks_done: 0,
            chunks_total: total,
        })
        .await?;

        let cancel = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<ChunkMade>();
        let worker = {
            let cancel = cancel.clone();
            let request = input.request.clone();
            tokio::task::spawn_blocking(move || {
                engine.synthesize(&request, |done| {
                    let _ = progress_tx.send(ChunkMade {
                        progress: SpeechProgress {
                            chunks_done: as_u32(done.index + 1),
                            chunks_total: done.total.map_or(0, as_u32),
                        },
                        index: as_u32(done.index),
                        pcm: Bytes::from(to_pcm16le(done.samples)),
                    });
                    if cancel.load(Ordering::Relaxed) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
            })
        };
        let mut done = 0;
        let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
        tokio::pin!(worker);
        let audio = loop {
            tokio::select! {
                result = &mut worker => {
                    break result.map_err(|e| ActivityError::from(anyhow::anyhow!("synthesis task failed: {e}")))?;
                }
                Some(made) = progress_rx.recv() => {
                    self.store_chunk(&input.job_id, &made).await;
                    (done, total) = (made.progress.chunks_done, made.progress.chunks_total);
                    ctx.record_heartbeat(SpeechProgress { chunks_done: done, chunks_total: total }).await?;
                }
                _ = ticker.tick() => {
                    ctx.record_heartbeat(SpeechProgress { chunks_done: done, chunks_total: total }).await?;
                }
                () = ctx.cancelled(), if !cancel.load(Ordering::Relaxed) => {
                    tracing::info!(job_id = %input.job_id, chunks_done = done, "cancellation requested; stopping after the current chunk");
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        };
        // The final chunk may still be queued when the worker finishes.
        while let Ok(made) = progress_rx.try_recv() {
            self.store_chunk(&input.job_id, &made).await;
            (done, total) = (made.progress.chunks_done, made.progress.chunks_total);
        }
        ctx.record_heartbeat(SpeechProgress {
            chunks_done: done,
            chunks_total: total,
        })
        .await?;
        let audio = match audio {
            Ok(audio) => audio,
            Err(e) => {
                // A retry writes the same chunks again; a job that ends here has no more use
                // for them (its readers learn of the end from the job).
                if matches!(e, TtsError::Cancelled { .. }) || !e.is_retryable() {
                    self.remove_stream_later(&input.job_id, Duration::ZERO);
                }
                return Err(to_activity_error(e));
            }
        };
        let wav = encode_wav(&audio.samples, audio.sample_rate).map_err(to_activity_error)?;
        let stored = self
            .artifacts
            .put("audio", "wav", "audio/wav", Bytes::from(wav))
            .await
            .map_err(anyhow::Error::from)?;
        let end = StreamEnd {
            chunks: as_u32(audio.chunks),
            samples: audio.samples.len() as u64,
            sample_rate: audio.sample_rate,
            audio: stored.clone(),
        };
        match self.artifacts.put_stream_end(&input.job_id, &end).await {
            Ok(()) => self.remove_stream_later(&input.job_id, self.stream_keep),
            // Readers then learn of the end from the job's result.
            Err(e) => {
                tracing::warn!(job_id = %input.job_id, error = %e, "could not mark the audio stream finished")
            }
        }
        tracing::info!(job_id = %input.job_id, sha256 = %stored.sha256, secs = audio.duration_secs(), "synthesis finished");
        Ok(SpeechArtifact {
            audio: stored,
            duration_secs: audio.duration_secs(),
            sample_count: audio.samples.len() as u64,
            sample_rate: audio.sample_rate,
            chunks: as_u32(audio.chunks),
            voice_id: input.request.voice_id,
            // Kept for the result's rendering: the api encodes the WAV to it when read.
            format: input.request.format,
        })
    }
}

impl TtsActivities {
    /// Stores a chunk for the job's stream readers. A failure costs only the stream (readers then
    /// wait for the WAV), not the job.
    async fn store_chunk(&self, job_id: &str, made: &ChunkMade) {
        if let Err(e) = self
            .artifacts
            .put_stream_chunk(job_id, made.index, made.pcm.clone())
            .await
        {
            tracing::warn!(%job_id, chunk = made.index, error = %e, "could not store an audio chunk for streaming");
        }
    }

    /// Removes the job's stream after `delay`, on its own task: the job does not wait for it.
    /// Streams a stopped worker left behind are removed when a TTS worker starts
    /// ([`remove_finished_streams`]).
    fn remove_stream_later(&self, job_id: &str, delay: Duration) {
        let (artifacts, job_id) = (self.artifacts.clone(), job_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match artifacts.remove_stream(&job_id).await {
                Ok(n) => tracing::debug!(%job_id, removed = n, "audio stream removed"),
                Err(e) => tracing::warn!(%job_id, error = %e, "could not remove the audio stream"),
            }
        });
    }
}

/// Removes the streams of finished jobs (their WAV is stored): those a worker that stopped
/// within its keep time left behind. Streams of jobs still running are left alone.
pub async fn remove_finished_streams(artifacts: &ArtifactStore) -> Result<usize, ArtifactError> {
    let mut removed = 0;
    for job_id in artifacts.finished_streams().await? {
        removed += artifacts.remove_stream(&job_id).await?;
    }
    Ok(removed)
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
