//! `generate_speech`: validated here (bad input never starts a workflow), priced per character,
//! then a durable `GenerateSpeech` workflow whose synthesis runs on the `avb-tts` worker; progress
//! from the synthesis heartbeats. Also the voice catalog (`list_voices`, `GET /api/v2/voices`)
//! and the audio download (`GET /api/v2/audio/{job_id}`).

pub mod rest;
pub mod stream;
pub mod tools;
pub mod ws;

use std::time::Duration;

use avb_audio::AudioFormat;
use avb_config::BillingSettings;
use avb_workflows::billing::BillingPlan;
use avb_workflows::speech::{
    GenerateSpeechInput, GenerateSpeechJob, GenerateSpeechWorkflow, SpeechArtifact, SpeechProgress,
    nearest_ids,
};
use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, Resource, Tool};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowHandle};

use crate::core::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::durable::{DurableTool, Started, ToolCall, definition, output_as};
use crate::jobs::output::{audio_url, resource_uri, status_url};
use crate::jobs::view::JobProgress;
use crate::jobs::{JobError, job_start_options, map_result, new_job_id};
use crate::state::ApiState;

pub const TOOL: &str = "generate_speech";

/// The MCP resource of a finished speech job's audio (`resources/read` gives the WAV as a blob).
pub const AUDIO_URI_PREFIX: &str = "avb://audio/";

pub fn audio_resource_uri(job_id: &str) -> String {
    format!("{AUDIO_URI_PREFIX}{job_id}")
}

/// Structured result of `generate_speech` (the audio itself is the `audio/wav` content block).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GenerateSpeechOutput {
    pub job_id: String,
    /// `completed`, or `running` when the call's wait budget ran out first.
    pub status: String,
    /// Download link for the audio (`GET /api/v2/audio/{job_id}`, `?format=` when not WAV).
    pub audio_url: Option<String>,
    /// The audio's format: wav, mp3, opus, flac or pcm.
    pub format: String,
    pub duration_secs: Option<f64>,
    pub sample_rate: Option<u32>,
    pub voice_id: String,
    pub sha256: Option<String>,
    /// Job status resource, for polling when `status` is `running`.
    pub resource_uri: String,
}

impl GenerateSpeechOutput {
    pub fn completed(job_id: &str, artifact: &SpeechArtifact, public_url: &str) -> Self {
        Self {
            job_id: job_id.to_string(),
            status: "completed".into(),
            audio_url: Some(match job_format(artifact) {
                AudioFormat::Wav => audio_url(public_url, job_id),
                f => format!("{}?format={}", audio_url(public_url, job_id), f.name()),
            }),
            format: job_format(artifact).name().into(),
            duration_secs: Some(artifact.duration_secs),
            sample_rate: Some(artifact.sample_rate),
            voice_id: artifact.voice_id.clone(),
            sha256: Some(artifact.audio.sha256.clone()),
            resource_uri: resource_uri(job_id),
        }
    }

    pub fn running(job_id: &str, voice_id: &str) -> Self {
        Self {
            job_id: job_id.to_string(),
            status: "running".into(),
            audio_url: None,
            format: String::new(),
            duration_secs: None,
            sample_rate: None,
            voice_id: voice_id.to_string(),
            sha256: None,
            resource_uri: resource_uri(job_id),
        }
    }
}

/// The speech family.
pub struct Speech;

#[async_trait::async_trait]
impl DurableTool for Speech {
    fn names(&self) -> &'static [&'static str] {
        &[TOOL]
    }

    fn definitions(&self) -> Vec<Tool> {
        vec![definition::<GenerateSpeechInput, GenerateSpeechOutput>(
            TOOL,
            "Speak text with Kokoro-82M: returns a WAV (24 kHz mono, base64 `audio/wav`) and a \
             download\nlink; audio longer than the inline limit (1 MiB, about 21 s, by default) \
             comes as a\nresource link (avb://audio/{job_id}, readable with resources/read) \
             and the download link. Runs as a durable job; long texts report progress. Costs credits \
             per character\n(get_balance): held before synthesis, charged once on success, \
             returned on failure or\ncancellation; too few credits is an InsufficientCredits \
             error before any work.",
        )]
    }

    async fn start(&self, call: &ToolCall<'_>) -> Result<Started, Problem> {
        let state = call.state;
        let input: GenerateSpeechInput = call.input()?;
        check_input(state, &input)?;
        let voice_id = input.voice_id.clone();
        let billing = speech_billing(&state.config.billing, &input);
        let (job_id, _) = start_speech(&state.temporal, call.caller, input, billing).await?;
        tracing::info!(job_id = %job_id, workflow_id = %job_id, tool = TOOL, tenant = call.tenant(), "job started");
        Ok(Started::Running {
            still_running: running_result(state, &job_id, &voice_id),
            job_id,
        })
    }

    fn progress(&self, heartbeat: &Value) -> Option<JobProgress> {
        let p: SpeechProgress = serde_json::from_value(heartbeat.clone()).ok()?;
        Some(JobProgress {
            done: p.chunks_done,
            // A total of 0 means the text is still being planned.
            total: (p.chunks_total > 0).then_some(p.chunks_total),
            message: p.describe(),
            attempt: 1,
        })
    }

    fn structured(&self, state: &ApiState, job_id: &str, output: Value) -> Result<Value, Problem> {
        let artifact: SpeechArtifact = output_as(output)?;
        let out = GenerateSpeechOutput::completed(job_id, &artifact, &state.config.public_url());
        serde_json::to_value(out)
            .map_err(|e| Problem::internal("the job's result cannot be encoded").with_source(e))
    }

    async fn render(&self, state: &ApiState, job_id: &str, output: Value) -> CallToolResult {
        let artifact: SpeechArtifact = match output_as(output) {
            Ok(a) => a,
            Err(p) => return p.into_tool_result(),
        };
        let out = GenerateSpeechOutput::completed(job_id, &artifact, &state.config.public_url());
        let url = out.audio_url.clone().unwrap_or_default();
        let format = job_format(&artifact);
        let limit = state.config.mcp.max_inline_audio_bytes;
        // The audio, when it may fit inline: WAV judged by its stored size (nothing read when
        // it is too long), another format once encoded.
        let candidate = match format {
            AudioFormat::Wav if artifact.audio.size_bytes > limit => None,
            AudioFormat::Wav => Some(artifact.audio.size_bytes),
            _ if artifact.audio.size_bytes > MAX_TRANSCODE_BYTES => None,
            _ => Some(0),
        };
        let audio = match candidate {
            Some(_) => match audio_in(state, &artifact, format).await {
                Ok(bytes) => Some(bytes),
                Err(p) => {
                    return p
                        .with_details(json!({ "job_id": job_id }))
                        .into_tool_result();
                }
            },
            None => None,
        };
        let size = match (&audio, format) {
            (Some(bytes), _) => Some(bytes.len() as u64),
            (None, AudioFormat::Wav) => Some(artifact.audio.size_bytes),
            (None, _) => None,
        };
        if let Some(bytes) = audio.filter(|b| b.len() as u64 <= limit) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let mut r = CallToolResult::success(vec![
                ContentBlock::audio(b64, format.mime_type()),
                ContentBlock::text(format!(
                    "Generated {:.2}s of speech with voice {} (job {job_id}). Download: {}",
                    artifact.duration_secs, artifact.voice_id, url
                )),
            ]);
            r.structured_content = serde_json::to_value(out).ok();
            return r;
        }
        // Too long to inline: a link to the audio resource (and the download in the text).
        let mut link = Resource::new(
            audio_resource_uri(job_id),
            format!("{job_id}.{}", format.extension()),
        )
        .with_mime_type(format.mime_type())
        .with_description(format!(
            "{:.2}s of speech, voice {}",
            artifact.duration_secs, artifact.voice_id
        ));
        if let Some(size) = size {
            link = link.with_size(size);
        }
        let mut r = CallToolResult::success(vec![
            ContentBlock::resource_link(link),
            ContentBlock::text(format!(
                "Generated {:.2}s of speech with voice {} (job {job_id}): {}, more than is \
                 sent inline ({limit} bytes, mcp.max_inline_audio_bytes). Read it as the \
                 resource {} (resources/read), or download it with your API key: {url} (Range \
                 requests work).",
                artifact.duration_secs,
                artifact.voice_id,
                size.map_or_else(
                    || format!("{} bytes as WAV", artifact.audio.size_bytes),
                    |s| format!("{s} bytes of {}", format.name())
                ),
                audio_resource_uri(job_id)
            )),
        ]);
        r.structured_content = serde_json::to_value(out).ok();
        r
    }
}

/// Most WAV bytes transcoded to answer one request in memory (about 5.8 minutes of speech);
/// longer audio in another format is served as a link only.
pub const MAX_TRANSCODE_BYTES: u64 = 16 * 1024 * 1024;

/// The format a job's caller asked for (WAV when none, or one this build does not know).
pub fn job_format(artifact: &SpeechArtifact) -> AudioFormat {
    artifact
        .format
        .as_deref()
        .and_then(|f| AudioFormat::parse(f).ok())
        .unwrap_or(AudioFormat::Wav)
}

/// The job's audio in `format`: the stored WAV as is, or encoded off the request threads.
pub async fn audio_in(
    state: &ApiState,
    artifact: &SpeechArtifact,
    format: AudioFormat,
) -> Result<Vec<u8>, Problem> {
    let wav = state
        .artifacts
        .get(&artifact.audio)
        .await
        .map_err(|e| Problem::new(ErrorKind::ArtifactUnavailable, e.to_string()))?;
    if format == AudioFormat::Wav {
        return Ok(wav.to_vec());
    }
    if artifact.audio.size_bytes > MAX_TRANSCODE_BYTES {
        return Err(Problem::new(
            ErrorKind::Conflict,
            format!(
                "the audio is {} bytes of WAV; at most {MAX_TRANSCODE_BYTES} are encoded to {} \
                 on request: download the WAV",
                artifact.audio.size_bytes,
                format.name()
            ),
        ));
    }
    tokio::task::spawn_blocking(move || {
        let (samples, rate) = avb_audio::read_wav(&wav)?;
        avb_audio::encode(format, &samples, rate)
    })
    .await
    .map_err(|e| Problem::internal(format!("encoding stopped: {e}")))?
    .map_err(|e| Problem::internal(e.to_string()))
}

/// The audio of the finished speech job `job_id` in `scope`: not found for jobs outside it and
/// jobs of other tools, a conflict while it runs or when it did not complete.
pub async fn finished_audio(
    state: &ApiState,
    scope: &crate::jobs::JobScope,
    job_id: &str,
) -> Result<SpeechArtifact, Problem> {
    let record = crate::jobs::view::get_job(state, scope, job_id).await?;
    match record.outcome {
        Some(Ok(output)) if record.view.tool == TOOL => output_as(output),
        Some(Ok(_)) => Err(Problem::not_found(format!(
            "job {job_id} is a {} job; it has no audio",
            record.view.tool
        ))),
        _ => Err(Problem::new(
            ErrorKind::Conflict,
            format!(
                "job {job_id} is {}; audio exists only for completed speech jobs",
                record.view.status.as_str()
            ),
        )),
    }
}

/// The checks every `generate_speech` passes before a workflow starts: bad input never becomes
/// a job.
pub fn check_input(state: &ApiState, input: &GenerateSpeechInput) -> Result<(), Problem> {
    if let Err(e) = input.validate(state.config.tts.max_text_chars) {
        return Err(Problem::invalid(e.field, e.message));
    }
    if let Some(f) = &input.format {
        AudioFormat::parse(f).map_err(|e| Problem::invalid("format", e.message))?;
    }
    // A plain id, or a blend of ids by weight (`af_bella(2)+af_sky(1)`): each must exist.
    let voices = if state.voice(&input.voice_id).is_some() {
        vec![input.voice_id.clone()]
    } else {
        avb_workflows::speech::parse_blend(&input.voice_id)
            .map_err(|message| {
                Problem::invalid(
                    "voice_id",
                    format!("{message} (a voice id, or a blend like af_bella(2)+af_sky(1))"),
                )
            })?
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    if let Some(unknown) = voices.iter().find(|v| state.voice(v).is_none()) {
        let nearest = nearest_ids(unknown, state.voices.iter().map(|v| v.id.as_str()), 3);
        let msg = format!(
            "unknown voice '{}'; nearest valid ids: {}; the default is {} (list_voices has all {})",
            unknown,
            nearest.join(", "),
            avb_workflows::speech::DEFAULT_VOICE,
            state.voices.len()
        );
        return Err(Problem::new(ErrorKind::UnknownVoice, msg)
            .with_field("voice_id")
            .with_details(json!({ "nearest": nearest })));
    }
    Ok(())
}

/// A speech job still running when the call's wait budget ran out: a handle to find it again.
fn running_result(state: &ApiState, job_id: &str, voice_id: &str) -> CallToolResult {
    let status_url = status_url(&state.config.public_url(), job_id);
    let uri = resource_uri(job_id);
    let out = GenerateSpeechOutput::running(job_id, voice_id);
    let mut r = CallToolResult::success(vec![ContentBlock::text(format!(
        "Job {job_id} is still running; it will finish on its own. Poll {status_url}, read {uri} \
         or call get_job."
    ))]);
    r.structured_content = serde_json::to_value(out).ok();
    r
}

pub type SpeechHandle = WorkflowHandle<Client, GenerateSpeechWorkflow>;

/// What a speech job costs under `billing`: its characters at the `generate_speech` tariff;
/// none when billing is off or speech is free.
pub fn speech_billing(
    billing: &BillingSettings,
    request: &GenerateSpeechInput,
) -> Option<BillingPlan> {
    let price = billing.price_of(TOOL)?;
    let chars = i64::try_from(request.text.chars().count()).unwrap_or(i64::MAX);
    let plan = BillingPlan::new(TOOL, &price.unit, chars, price.credits_per_1000);
    (plan.credits > 0).then_some(plan)
}

/// Starts a `GenerateSpeech` job; with a `billing` plan its workflow holds the credits before
/// synthesis and settles them after.
pub async fn start_speech(
    client: &Client,
    caller: &Caller,
    request: GenerateSpeechInput,
    billing: Option<BillingPlan>,
) -> Result<(String, SpeechHandle), JobError> {
    let job_id = new_job_id();
    let job = GenerateSpeechJob {
        job_id: job_id.clone(),
        tenant: caller.tenant.clone(),
        request,
        billing,
    };
    let opts = job_start_options(TOOL, caller, &job_id, false);
    client
        .start_workflow(GenerateSpeechWorkflow::run, job, opts)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    Ok((
        job_id.clone(),
        client.get_workflow_handle::<GenerateSpeechWorkflow>(job_id),
    ))
}

/// Waits up to `budget` for a speech job's audio (benchmarks and tests that start jobs with
/// [`start_speech`]). `Ok(None)` = still running when the budget ran out.
pub async fn wait_speech(
    handle: &SpeechHandle,
    budget: Duration,
) -> Result<Option<SpeechArtifact>, JobError> {
    match tokio::time::timeout(
        budget,
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    {
        Ok(r) => map_result(r).map(Some),
        Err(_) => Ok(None),
    }
}
