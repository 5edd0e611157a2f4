//! A speech job's audio sent while it is being made. The TTS worker stores each chunk in the
//! artifact store as the engine finishes it ([`avb_artifacts::stream`]); here the chunks are read
//! in order as they appear, encoded incrementally and handed to the connection.
//!
//! The job does not belong to the connection: a client that leaves mid-stream (or whose
//! connection drops) stops only its sending task; the job runs on, is charged once, and its
//! audio is fetched later from `/api/v2/audio/{job_id}`. To stop the job, cancel it.
//!
//! Chunks are a short-lived cache of the final WAV: a reader that falls behind the worker's keep
//! time, or starts after the job ended, reads the remaining samples from the WAV.

use std::time::{Duration, Instant};

use avb_audio::AudioFormat;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::mpsc;

use super::{TOOL, output_as};
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::JobScope;
use crate::jobs::view::{failure_of, get_job};
use crate::state::ApiState;
use avb_workflows::speech::SpeechArtifact;

/// The engine's sample rate: every chunk is 24 kHz mono.
pub const SAMPLE_RATE: u32 = 24_000;
/// First wait between looks for the next chunk; it grows to [`POLL_MAX`] while none comes. A
/// look is one small read of the artifact store; the cap bounds the delay it adds to a chunk.
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(40);
/// How often a reader that finds no chunk asks Temporal whether the job ended.
const ASK_JOB_EVERY: Duration = Duration::from_secs(1);
/// Encoded bytes queued for a slow client before reading waits for it.
const QUEUED_PARTS: usize = 8;

/// Reads a job's PCM (16-bit LE, mono, 24 kHz) chunk after chunk, as the worker stores them.
pub struct PcmReader {
    state: ApiState,
    scope: JobScope,
    job_id: String,
    next: u32,
    samples_read: u64,
    last_asked: Instant,
    done: bool,
}

impl PcmReader {
    /// A reader of the job `job_id` from its first sample. The job's ownership is checked by
    /// the caller (the reader asks the job only within `scope`).
    pub fn new(state: ApiState, scope: JobScope, job_id: String) -> Self {
        Self {
            state,
            scope,
            job_id,
            next: 0,
            samples_read: 0,
            // The job is asked only once chunks are late: a running job's first chunk needs
            // no round trip to Temporal.
            last_asked: Instant::now(),
            done: false,
        }
    }

    /// The next part of the audio; `None` after the last. Waits for the worker.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Problem> {
        let unavailable = |e: avb_artifacts::ArtifactError| {
            Problem::new(ErrorKind::ArtifactUnavailable, e.to_string())
        };
        let mut poll = POLL_FIRST;
        while !self.done {
            let artifacts = &self.state.artifacts;
            if let Some(pcm) = artifacts
                .stream_chunk(&self.job_id, self.next)
                .await
                .map_err(unavailable)?
            {
                self.next += 1;
                self.samples_read += pcm.len() as u64 / 2;
                return Ok(Some(pcm));
            }
            if let Some(end) = artifacts
                .stream_end(&self.job_id)
                .await
                .map_err(unavailable)?
            {
                if end.chunks <= self.next {
                    self.done = true;
                    return Ok(None);
                }
                // Chunks removed before this reader got to them: the rest is in the WAV.
                return self.rest_from_wav(&end.audio).await;
            }
            if self.last_asked.elapsed() >= ASK_JOB_EVERY {
                self.last_asked = Instant::now();
                let record = get_job(&self.state, &self.scope, &self.job_id).await?;
                match record.outcome {
                    Some(Ok(output)) => {
                        let artifact: SpeechArtifact = output_as(output)?;
                        return self.rest_from_wav(&artifact.audio).await;
                    }
                    Some(Err(e)) => {
                        let failure = failure_of(&e);
                        return Err(Problem::new(
                            ErrorKind::Conflict,
                            format!(
                                "job {} is {}: {}",
                                self.job_id,
                                record.view.status.as_str(),
                                failure.message
                            ),
                        ));
                    }
                    None => {}
                }
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 3 / 2).min(POLL_MAX);
        }
        Ok(None)
    }

    /// The samples of the finished WAV this reader has not sent yet.
    async fn rest_from_wav(
        &mut self,
        audio: &avb_workflows::artifact::ArtifactRef,
    ) -> Result<Option<Bytes>, Problem> {
        self.done = true;
        let wav = self
            .state
            .artifacts
            .get(audio)
            .await
            .map_err(|e| Problem::new(ErrorKind::ArtifactUnavailable, e.to_string()))?;
        let (samples, _) =
            avb_audio::read_wav(&wav).map_err(|e| Problem::internal(e.to_string()))?;
        let from = usize::try_from(self.samples_read)
            .unwrap_or(usize::MAX)
            .min(samples.len());
        self.samples_read = samples.len() as u64;
        let rest: Vec<u8> = samples[from..]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        Ok((!rest.is_empty()).then(|| Bytes::from(rest)))
    }
}

fn samples_of(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Counts the streams being sent (`avb_audio_streams_open`) for as long as it lives.
struct OpenStream(prometheus::IntGauge);

impl OpenStream {
    fn new(state: &ApiState) -> Self {
        state.metrics.audio_streams_open.inc();
        Self(state.metrics.audio_streams_open.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Sends the speech job `job_id` (of `scope`) encoded as `format`, part after part, on its own task.
/// The first message comes once the first chunk is made (possibly empty bytes, for formats that
/// write at the end) or the job failed; an `Err` ends the stream. Dropping the receiver stops
/// the task at once, whatever it waits for; the job is not touched.
pub fn send_encoded(
    state: ApiState,
    scope: JobScope,
    job_id: String,
    format: AudioFormat,
) -> mpsc::Receiver<Result<Bytes, Problem>> {
    let (tx, rx) = mpsc::channel(QUEUED_PARTS);
    tokio::spawn(async move {
        let _open = OpenStream::new(&state);
        let mut reader = PcmReader::new(state, scope, job_id.clone());
        let sent = tokio::select! {
            () = tx.closed() => Ok(false),
            sent = encode_into(&mut reader, format, &tx) => sent,
        };
        match sent {
            Ok(true) => tracing::debug!(%job_id, "audio stream sent"),
            Ok(false) => tracing::info!(
                %job_id,
                "the client left mid-stream; the job runs on and its audio stays downloadable"
            ),
            Err(p) => {
                tracing::info!(%job_id, error = %p, "audio stream ended by the job");
                let _ = tx.send(Err(p)).await;
            }
        }
    });
    rx
}

/// Encodes the reader's parts into `tx`; false when the receiver went away.
async fn encode_into(
    reader: &mut PcmReader,
    format: AudioFormat,
    tx: &mpsc::Sender<Result<Bytes, Problem>>,
) -> Result<bool, Problem> {
    let internal = |e: avb_audio::AudioError| Problem::internal(e.to_string());
    let mut encoder = avb_audio::encoder(format, SAMPLE_RATE).map_err(internal)?;
    let mut first = true;
    while let Some(pcm) = reader.next().await? {
        let bytes = encoder.push(&samples_of(&pcm)).map_err(internal)?;
        // The first part always goes out: it tells the request that synthesis started.
        if (first || !bytes.is_empty()) && tx.send(Ok(Bytes::from(bytes))).await.is_err() {
            return Ok(false);
        }
        first = false;
    }
    let tail = encoder.finish().map_err(internal)?;
    if (first || !tail.is_empty()) && tx.send(Ok(Bytes::from(tail))).await.is_err() {
        return Ok(false);
    }
    Ok(true)
}

/// The response body of `parts`, once the first part is there: waiting for it lets a job that
/// fails at once still be an error status. An error after that can only cut the body short: the
/// client sees an incomplete response, never a short file that looks whole.
pub async fn streamed_body(
    mut parts: mpsc::Receiver<Result<Bytes, Problem>>,
) -> Result<axum::body::Body, Problem> {
    use futures::StreamExt as _;
    let first = match parts.recv().await {
        Some(Ok(first)) => first,
        Some(Err(p)) => return Err(p),
        None => return Err(Problem::internal("the audio stream stopped")),
    };
    let rest = futures::stream::unfold(parts, |mut parts| async move {
        let part = parts.recv().await?;
        Some((part.map_err(|p| std::io::Error::other(p.message)), parts))
    });
    Ok(axum::body::Body::from_stream(
        futures::stream::once(async move { Ok(first) }).chain(rest),
    ))
}

/// A response of speech audio: its MIME type and the job's id in `x-avb-job-id`.
pub fn audio_response(body: axum::body::Body, format: AudioFormat, job_id: &str) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.mime_type()),
    );
    if let Ok(v) = HeaderValue::from_str(job_id) {
        h.insert("x-avb-job-id", v);
    }
    response
}

/// The job `job_id` of `scope` if it is a speech job (any state): streams are only of speech.
pub async fn speech_job(state: &ApiState, scope: &JobScope, job_id: &str) -> Result<(), Problem> {
    let record = get_job(state, scope, job_id).await?;
    if record.view.tool != TOOL {
        return Err(Problem::not_found(format!(
            "job {job_id} is a {} job; it has no audio",
            record.view.tool
        )));
    }
    Ok(())
}
