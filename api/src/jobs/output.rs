//! What a finished job produced, as the tool that started it reports it. The same structured
//! output is the MCP tool result, the `result` of a task and of `get_job`, and the REST `result`.

use avb_workflows::echo_workflow::EchoOutput;
use avb_workflows::speech::SpeechArtifact;
use schemars::JsonSchema;
use serde::Serialize;

/// Structured result of `generate_speech` (the audio itself is the `audio/wav` content block).
#[derive(Debug, Clone, Serialize, JsonSchema)]
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

impl GenerateSpeechOutput {
    pub fn completed(job_id: &str, artifact: &SpeechArtifact, public_url: &str) -> Self {
        Self {
            job_id: job_id.to_string(),
            status: "completed".into(),
            audio_url: Some(audio_url(public_url, job_id)),
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
            duration_secs: None,
            sample_rate: None,
            voice_id: voice_id.to_string(),
            sha256: None,
            resource_uri: resource_uri(job_id),
        }
    }
}

/// The typed result of a completed job, by tool.
#[derive(Debug, Clone)]
pub enum JobOutput {
    Speech(SpeechArtifact),
    Echo(EchoOutput),
    Device(avb_workflows::devices::DeviceCommandOutput),
    /// A mounted upstream tool's `CallToolResult`, as the upstream sent it.
    Upstream(serde_json::Value),
    /// `batch_execute`: each call's outcome, in order.
    Batch(Vec<avb_workflows::upstream::BatchItem>),
}

impl JobOutput {
    /// The tool's structured output (what a direct call returns as `structuredContent`).
    pub fn structured(&self, job_id: &str, public_url: &str) -> serde_json::Value {
        let value = match self {
            Self::Speech(a) => {
                serde_json::to_value(GenerateSpeechOutput::completed(job_id, a, public_url))
            }
            Self::Echo(o) => serde_json::to_value(o),
            Self::Upstream(result) => Ok(result.clone()),
            Self::Batch(items) => Ok(serde_json::json!({
                "job_id": job_id,
                "status": "completed",
                "results": items,
                "resource_uri": resource_uri(job_id),
            })),
            Self::Device(o) => {
                serde_json::to_value(crate::devices::DeviceJobOutput::completed(job_id, o))
            }
        };
        value.unwrap_or_default()
    }
}

pub fn resource_uri(job_id: &str) -> String {
    format!("avb://jobs/{job_id}")
}

pub fn status_url(public_url: &str, job_id: &str) -> String {
    format!("{public_url}/api/v2/jobs/{job_id}")
}

pub fn audio_url(public_url: &str, job_id: &str) -> String {
    format!("{public_url}/api/v2/audio/{job_id}")
}
