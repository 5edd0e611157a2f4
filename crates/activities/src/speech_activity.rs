//! The `synthesize_speech` activity on the `avb-tts` queue: runs the engine on a blocking thread,
//! heartbeats progress after each chunk (and periodically during long chunks), stops between
//! chunks when Temporal cancels, and stores the WAV in the artifact store.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use avb_artifacts::ArtifactStore;
use avb_workflows::speech::activity as defs;
use avb_workflows::speech::{SpeechArtifact, SpeechProgress, SynthesizeSpeech};
use bytes::Bytes;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio::sync::mpsc;

use avb_tts::wav::encode_wav;
use avb_tts::{TtsEngine, TtsError};

/// Heartbeat at least this often while a chunk is being synthesized, well inside the
/// workflow's 30 s heartbeat timeout.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub struct TtsActivities {
    pub engine: Arc<TtsEngine>,
    pub artifacts: ArtifactStore,
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
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<SpeechProgress>();
        let worker = {
            let cancel = cancel.clone();
            let request = input.request.clone();
            tokio::task::spawn_blocking(move || {
                engine.synthesize(&request, |done| {
                    let _ = progress_tx.send(SpeechProgress {
                        chunks_done: as_u32(done.index + 1),
                        chunks_total: done.total.map_or(0, as_u32),
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
                Some(p) = progress_rx.recv() => {
                    (done, total) = (p.chunks_done, p.chunks_total);
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
        // The final chunk's progress may still be queued when the worker finishes.
        while let Ok(p) = progress_rx.try_recv() {
            (done, total) = (p.chunks_done, p.chunks_total);
        }
        ctx.record_heartbeat(SpeechProgress {
            chunks_done: done,
            chunks_total: total,
        })
        .await?;
        let audio = audio.map_err(to_activity_error)?;
        let wav = encode_wav(&audio.samples, audio.sample_rate).map_err(to_activity_error)?;
        let stored = self
            .artifacts
            .put("audio", "wav", "audio/wav", Bytes::from(wav))
            .await
            .map_err(anyhow::Error::from)?;
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

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
