//! `generate_speech`: validated here (bad input never starts a workflow), then a durable
//! `GenerateSpeech` workflow on Temporal; progress notifications while it runs.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::json;

use super::AvbServer;
use super::results::{job_result, running_result, tool_error};
use crate::jobs::output::{GenerateSpeechOutput, JobOutput};
use crate::jobs::{self, JobError};
use avb_workflows::speech::GenerateSpeechInput;
use avb_workflows::voices::nearest_ids;

#[tool_router(router = speech_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Speak text with Kokoro-82M: returns a WAV (24 kHz mono, base64 `audio/wav`) and a download
    /// link. Runs as a durable job; long texts report progress. Costs credits per character
    /// (get_balance): held before synthesis, charged once on success, returned on failure or
    /// cancellation; too few credits is an InsufficientCredits error before any work.
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
    /// The checks every `generate_speech` passes before a workflow starts (direct and as a
    /// task): bad input never becomes a job.
    pub(crate) fn check_speech_input(
        &self,
        input: &GenerateSpeechInput,
    ) -> Result<(), CallToolResult> {
        let state = &self.state;
        if let Err(e) = input.validate(state.config.tts.max_text_chars) {
            return Err(tool_error(
                "InvalidInput",
                Some(e.field),
                &e.message,
                json!({}),
            ));
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
            return Err(tool_error(
                "UnknownVoice",
                Some("voice_id"),
                &msg,
                json!({ "nearest": nearest }),
            ));
        }
        Ok(())
    }

    async fn generate_speech_inner(
        &self,
        input: GenerateSpeechInput,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let state = &self.state;
        if let Err(r) = self.check_speech_input(&input) {
            return r;
        }
        let voice_id = input.voice_id.clone();
        let billing = jobs::speech_billing(&state.config.billing, &input);
        let (job_id, handle) =
            match jobs::start_speech(&state.temporal, self.tenant(), input, billing).await {
                Ok(h) => h,
                Err(e) => return tool_error("Unavailable", None, &e.to_string(), json!({})),
            };
        tracing::info!(job_id = %job_id, workflow_id = %job_id, tool = "generate_speech", tenant = self.tenant(), "job started");
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
        let outcome = match wait {
            Ok(None) => return running_result(state, &job_id, &voice_id),
            Ok(Some(artifact)) => Ok(JobOutput::Speech(artifact)),
            Err(e) => Err(e),
        };
        let status = match &outcome {
            Ok(_) => "completed",
            Err(JobError::Cancelled) => "cancelled",
            Err(JobError::Terminated) => "terminated",
            Err(_) => "failed",
        };
        state
            .metrics
            .job_outcomes
            .with_label_values(&["generate_speech", status])
            .inc();
        job_result(state, &job_id, outcome).await
    }
}
