//! `generate_speech`: validated here (bad input never starts a workflow), then a durable
//! `GenerateSpeech` workflow on Temporal; progress notifications while it runs.

use base64::Engine as _;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::AvbServer;
use crate::jobs::{self, JobError};
use avb_workflows::speech::{GenerateSpeechInput, SpeechArtifact};
use avb_workflows::voices::nearest_ids;

/// Structured result of `generate_speech` (the audio itself is the `audio/wav` content block).
#[derive(Debug, Serialize, JsonSchema)]
pub struct GenerateSpeechOutput {
    pub job_id: String,
    /// `completed`, or `running` when the call's wait budget ran out first.
    pub status: String,
    /// Download link for the WAV (`GET /api/v2/audio/{job_id}`).
    pub audio_url: Option<String>,
    pub duration_secs: Option<f64>,
    pub sample_rate: Option<u32>,
    pub voice_id: String,
    pub sha256: Option<String>,
    /// Job status resource, for polling when `status` is `running`.
    pub resource_uri: String,
}

/// An `isError` tool result that names the problem, with the same facts as structured content.
pub(crate) fn tool_error(
    kind: &str,
    field: Option<&str>,
    message: &str,
    extra: serde_json::Value,
) -> CallToolResult {
    let text = match field {
        Some(f) => format!("{kind}: {f}: {message}"),
        None => format!("{kind}: {message}"),
    };
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    r.structured_content = Some(
        json!({ "error": { "kind": kind, "field": field, "message": message, "details": extra } }),
    );
    r
}

#[tool_router(router = speech_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Speak text with Kokoro-82M: returns a WAV (24 kHz mono, base64 `audio/wav`) and a download
    /// link. Runs as a durable job; long texts report progress.
    #[tool(name = "generate_speech", output_schema = schema_for_output::<GenerateSpeechOutput>())]
    async fn generate_speech(
        &self,
        Parameters(input): Parameters<GenerateSpeechInput>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let metrics = &self.state.metrics;
        let timer = metrics
            .tool_latency
            .with_label_values(&["generate_speech"])
            .start_timer();
        let result = self.generate_speech_inner(input, ctx).await;
        timer.observe_duration();
        let outcome = if result.is_error == Some(true) {
            "error"
        } else {
            "ok"
        };
        metrics
            .tool_calls
            .with_label_values(&["generate_speech", outcome])
            .inc();
        result
    }
}

impl AvbServer {
    async fn generate_speech_inner(
        &self,
        input: GenerateSpeechInput,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let state = &self.state;
        if let Err(e) = input.validate(state.config.tts.max_text_chars) {
            return tool_error("InvalidInput", Some(e.field), &e.message, json!({}));
        }
        if state.voice(&input.voice_id).is_none() {
            let nearest = nearest_ids(
                &input.voice_id,
                state.voices.iter().map(|v| v.id.as_str()),
                3,
            );
            let msg = format!(
                "unknown voice '{}'; nearest valid ids: {}; the default is {} (list_voices has all {})",
                input.voice_id,
                nearest.join(", "),
                avb_workflows::voices::DEFAULT_VOICE,
                state.voices.len()
            );
            return tool_error(
                "UnknownVoice",
                Some("voice_id"),
                &msg,
                json!({ "nearest": nearest }),
            );
        }
        let voice_id = input.voice_id.clone();
        let (job_id, handle) =
            match jobs::start_speech(&state.temporal, state.tenant(), input).await {
                Ok(h) => h,
                Err(e) => return tool_error("Unavailable", None, &e.to_string(), json!({})),
            };
        tracing::info!(job_id = %job_id, workflow_id = %job_id, tool = "generate_speech", tenant = state.tenant(), "job started");
        let token = ctx.meta.get_progress_token();
        let peer = ctx.peer.clone();
        let wait = jobs::wait_speech(&handle, state.config.wait_budget(), move |p| {
            let (peer, token) = (peer.clone(), token.clone());
            Box::pin(async move {
                if let Some(t) = token {
                    let note = ProgressNotificationParam::new(t, f64::from(p.chunks_done));
                    // A total of 0 means the text is still being planned.
                    let note = if p.chunks_total > 0 {
                        note.with_total(f64::from(p.chunks_total))
                    } else {
                        note
                    };
                    let _ = peer.notify_progress(note.with_message(p.describe())).await;
                }
            })
        })
        .await;
        let resource_uri = format!("avb://jobs/{job_id}");
        match wait {
            Ok(Some(artifact)) => {
                state
                    .metrics
                    .job_outcomes
                    .with_label_values(&["generate_speech", "completed"])
                    .inc();
                self.speech_result(&job_id, &artifact, resource_uri).await
            }
            Ok(None) => {
                let status_url = format!("{}/api/v2/jobs/{job_id}", state.config.public_url());
                let out = GenerateSpeechOutput {
                    job_id: job_id.clone(),
                    status: "running".into(),
                    audio_url: None,
                    duration_secs: None,
                    sample_rate: None,
                    voice_id,
                    sha256: None,
                    resource_uri: resource_uri.clone(),
                };
                let mut r = CallToolResult::success(vec![ContentBlock::text(format!(
                    "Job {job_id} is still running; it will finish on its own. Poll {status_url} or read {resource_uri}."
                ))]);
                r.structured_content = serde_json::to_value(out).ok();
                r
            }
            Err(e) => {
                let (kind, status) = match &e {
                    JobError::Failed { kind, .. } => {
                        (kind.clone().unwrap_or_else(|| "JobFailed".into()), "failed")
                    }
                    JobError::Cancelled => ("Cancelled".into(), "cancelled"),
                    JobError::Terminated => ("Terminated".into(), "terminated"),
                    _ => ("Unavailable".into(), "failed"),
                };
                state
                    .metrics
                    .job_outcomes
                    .with_label_values(&["generate_speech", status])
                    .inc();
                tool_error(&kind, None, &e.to_string(), json!({ "job_id": job_id }))
            }
        }
    }

    async fn speech_result(
        &self,
        job_id: &str,
        artifact: &SpeechArtifact,
        resource_uri: String,
    ) -> CallToolResult {
        let wav = match self.state.artifacts.get(&artifact.audio).await {
            Ok(b) => b,
            Err(e) => {
                return tool_error(
                    "ArtifactUnavailable",
                    None,
                    &e.to_string(),
                    json!({ "job_id": job_id }),
                );
            }
        };
        let audio_url = format!("{}/api/v2/audio/{job_id}", self.state.config.public_url());
        let out = GenerateSpeechOutput {
            job_id: job_id.to_string(),
            status: "completed".into(),
            audio_url: Some(audio_url.clone()),
            duration_secs: Some(artifact.duration_secs),
            sample_rate: Some(artifact.sample_rate),
            voice_id: artifact.voice_id.clone(),
            sha256: Some(artifact.audio.sha256.clone()),
            resource_uri,
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&wav);
        let mut r = CallToolResult::success(vec![
            ContentBlock::audio(b64, "audio/wav"),
            ContentBlock::text(format!(
                "Generated {:.2}s of speech with voice {} (job {job_id}). Download: {audio_url}",
                artifact.duration_secs, artifact.voice_id
            )),
        ]);
        r.structured_content = serde_json::to_value(out).ok();
        r
    }
}
