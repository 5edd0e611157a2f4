//! Tool results, rendered one way for every path that reports a job: a direct call, a task's
//! `tasks/get` once it completes, and `get_job`. A task's result is exactly the direct call's.

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use crate::jobs::JobError;
use crate::jobs::output::{GenerateSpeechOutput, JobOutput, resource_uri, status_url};
use crate::jobs::view::failure_of;
use crate::state::ApiState;

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

/// A successful tool result: one line for people and the same facts as structured content.
pub(crate) fn structured<T: serde::Serialize>(text: String, value: &T) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = serde_json::to_value(value).ok();
    r
}

/// The result of a finished job, as the tool that started it returns it.
pub(crate) async fn job_result(
    state: &ApiState,
    job_id: &str,
    outcome: Result<JobOutput, JobError>,
) -> CallToolResult {
    match outcome {
        Ok(JobOutput::Speech(artifact)) => {
            let wav = match state.artifacts.get(&artifact.audio).await {
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
            let public_url = state.config.public_url();
            let out = GenerateSpeechOutput::completed(job_id, &artifact, &public_url);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&wav);
            let mut r = CallToolResult::success(vec![
                ContentBlock::audio(b64, "audio/wav"),
                ContentBlock::text(format!(
                    "Generated {:.2}s of speech with voice {} (job {job_id}). Download: {}",
                    artifact.duration_secs,
                    artifact.voice_id,
                    out.audio_url.as_deref().unwrap_or_default()
                )),
            ]);
            r.structured_content = serde_json::to_value(out).ok();
            r
        }
        Ok(JobOutput::Echo(out)) => {
            CallToolResult::structured(serde_json::to_value(out).unwrap_or_default())
        }
        Ok(out @ JobOutput::Batch(_)) => {
            let value = out.structured(job_id, &state.config.public_url());
            structured(format!("Job {job_id}: batch completed"), &value)
        }
        Ok(JobOutput::Upstream(value)) => match crate::upstream::result_of(value) {
            Ok(result) => result,
            Err(e) => tool_error(
                "Unavailable",
                None,
                &e.to_string(),
                json!({ "job_id": job_id }),
            ),
        },
        Ok(JobOutput::Device(out)) => {
            let out = crate::devices::DeviceJobOutput::completed(job_id, &out);
            let names: Vec<_> = out.devices.iter().map(|d| d.device.as_str()).collect();
            structured(
                format!("Job {job_id}: confirmed by {}", names.join(", ")),
                &out,
            )
        }
        Err(e) => {
            let failure = failure_of(&e);
            let mut details = json!({ "job_id": job_id });
            if let (Some(extra), Some(map)) = (
                failure.details.as_ref().and_then(|d| d.as_object()),
                details.as_object_mut(),
            ) {
                map.extend(extra.clone());
            }
            tool_error(&failure.kind, None, &failure.message, details)
        }
    }
}

/// A speech job still running when the call's wait budget ran out: a handle to find it again.
pub(crate) fn running_result(state: &ApiState, job_id: &str, voice_id: &str) -> CallToolResult {
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
