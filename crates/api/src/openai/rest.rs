//! `/v1`: the speech endpoint, the model list and the voice list.

use std::time::Duration;

use avb_audio::AudioFormat;
use avb_workflows::speech::{GenerateSpeechInput, SpeechArtifact};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MODEL, MODEL_ALIASES, OPENAI_VOICES, OpenAiError, is_model, kokoro_voice};
use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::speech::stream::{audio_response, send_encoded, streamed_body};
use crate::speech::{TOOL, audio_in, check_input, speech_billing, start_speech, wait_speech};
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/audio/speech", post(speech))
        .route("/v1/models", get(models))
        .route("/v1/audio/voices", get(voices))
}

/// A voice: a name, or (newer clients) `{"id": name}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Voice {
    Name(String),
    Object { id: String },
}

#[derive(Debug, Deserialize)]
struct SpeechRequest {
    model: String,
    input: String,
    voice: Voice,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
    /// Accepted and ignored: Kokoro has no instructions.
    #[serde(default)]
    #[allow(dead_code)]
    instructions: Option<String>,
    /// `audio` (the default) is served; `sse` is not.
    #[serde(default)]
    stream_format: Option<String>,
    /// Language of the input (an AgentVoiceBox extension: a tag such as `es` or `fr-FR`);
    /// default: the voice's.
    #[serde(default)]
    language: Option<String>,
    /// Send audio while it is made (the default, as OpenAI does); false waits for the whole
    /// file and sends it with its length.
    #[serde(default)]
    stream: Option<bool>,
}

/// A speech request as read: the job's input, the format, and whether to stream.
#[derive(Debug)]
struct Parsed {
    input: GenerateSpeechInput,
    format: AudioFormat,
    stream: bool,
}

/// Our field names as the OpenAI request calls them.
fn openai_param(field: &str) -> &str {
    match field {
        "text" => "input",
        "voice_id" => "voice",
        other => other,
    }
}

fn parse(body: &[u8]) -> Result<Parsed, OpenAiError> {
    let request: SpeechRequest = serde_json::from_slice(body).map_err(|e| {
        // serde names the missing or mistyped field in its message.
        OpenAiError(Problem::new(
            ErrorKind::InvalidInput,
            format!("the request body is not a speech request: {e}"),
        ))
    })?;
    if !is_model(&request.model) {
        return Err(OpenAiError::invalid(
            "model",
            format!(
                "unknown model {:?}; use {MODEL} (or {})",
                request.model,
                MODEL_ALIASES.join(", ")
            ),
        ));
    }
    if let Some(f) = request.stream_format.as_deref()
        && f != "audio"
    {
        return Err(OpenAiError::invalid(
            "stream_format",
            format!("stream_format {f:?} is not served; use audio"),
        ));
    }
    let format = super::response_format(request.response_format.as_deref())?;
    let voice = match request.voice {
        Voice::Name(n) | Voice::Object { id: n } => kokoro_voice(&n),
    };
    let input = GenerateSpeechInput {
        text: request.input,
        voice_id: voice,
        speed: request.speed.unwrap_or(1.0),
        format: None,
        language: request.language,
    };
    Ok(Parsed {
        input,
        format,
        stream: request.stream.unwrap_or(true),
    })
}

/// `POST /v1/audio/speech`: a durable `generate_speech` job; its audio, encoded as asked, is
/// sent while it is made (or, with `"stream": false`, once finished). The job's id comes back in
/// `x-avb-job-id` (its WAV stays at `/api/v2/audio/{id}`). A client that leaves mid-stream
/// leaves the job running (see [`crate::speech::stream`]).
async fn speech(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let Parsed {
        input,
        format,
        stream,
    } = parse(&body)?;
    check_input(&state, &input).map_err(|mut p| {
        if let Some(f) = p.field.take() {
            p.field = Some(openai_param(&f).to_owned());
        }
        OpenAiError(p)
    })?;
    state
        .limiter
        .check_tool(&caller, TOOL)
        .await
        .map_err(|e| OpenAiError(Problem::from(e)))?;
    let billing = speech_billing(&state.config.billing, &input);
    let budget = avb_workflows::speech::synthesis_budget(&input) + Duration::from_secs(60);
    let (job_id, handle) = start_speech(&state.temporal, &caller, input, billing)
        .await
        .map_err(|e| OpenAiError(Problem::from(&e)))?;
    tracing::info!(%job_id, tool = TOOL, tenant = %caller.tenant, format = format.name(), stream, "speech requested over the OpenAI API");
    let with_job = |p: Problem| OpenAiError(p.with_details(json!({ "job_id": job_id })));
    let still_running = || {
        with_job(Problem::new(
            ErrorKind::Unavailable,
            format!(
                "job {job_id} is still running after {}s; fetch it later from \
                 /api/v2/audio/{job_id}",
                budget.as_secs()
            ),
        ))
    };
    let body = if stream {
        let parts = send_encoded(state.clone(), caller.scope(), job_id.clone(), format);
        match tokio::time::timeout(budget, streamed_body(parts)).await {
            Err(_) => return Err(still_running()),
            Ok(body) => body.map_err(with_job)?,
        }
    } else {
        let artifact: SpeechArtifact = match wait_speech(&handle, budget).await {
            Ok(Some(a)) => a,
            Ok(None) => return Err(still_running()),
            Err(e) => return Err(with_job(Problem::from(&e))),
        };
        Body::from(
            audio_in(&state, &artifact, format)
                .await
                .map_err(with_job)?,
        )
    };
    let mut response = audio_response(body, format, &job_id);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{job_id}.{}\"",
        format.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `GET /v1/models`: the model and its aliases, as OpenAI lists models.
async fn models() -> Json<Value> {
    let data: Vec<Value> = std::iter::once(MODEL)
        .chain(MODEL_ALIASES)
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "agentvoicebox"}))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// `GET /v1/audio/voices`: every voice id, and which OpenAI names map to which.
async fn voices(State(state): State<ApiState>) -> Json<Value> {
    let ids: Vec<&str> = state.voices.iter().map(|v| v.id.as_str()).collect();
    let names: serde_json::Map<String, Value> = OPENAI_VOICES
        .iter()
        .map(|(name, id)| ((*name).to_owned(), json!(id)))
        .collect();
    Json(json!({ "voices": ids, "openai_voices": names }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_as_openai_sends_them() {
        let body = br#"{"model":"tts-1","input":"hi","voice":"alloy","response_format":"opus","speed":1.25}"#;
        let parsed = parse(body).expect("parse");
        assert_eq!(parsed.input.voice_id, "af_alloy");
        assert_eq!(parsed.format, AudioFormat::Opus);
        assert!(parsed.stream, "streams unless asked not to");
        assert!((parsed.input.speed - 1.25).abs() < f32::EPSILON);
        let object_voice =
            br#"{"model":"kokoro","input":"hi","voice":{"id":"bf_emma"},"stream":false}"#;
        let parsed = parse(object_voice).expect("parse");
        assert_eq!(parsed.input.voice_id, "bf_emma");
        assert!(!parsed.stream);
        for (body, param) in [
            (
                &br#"{"model":"whisper-1","input":"hi","voice":"alloy"}"#[..],
                Some("model"),
            ),
            (
                br#"{"model":"tts-1","input":"hi","voice":"alloy","response_format":"aac"}"#,
                Some("response_format"),
            ),
            (
                br#"{"model":"tts-1","input":"hi","voice":"alloy","stream_format":"sse"}"#,
                Some("stream_format"),
            ),
            (br#"{"model":"tts-1","voice":"alloy"}"#, None),
        ] {
            let e = parse(body).expect_err("bad");
            assert_eq!(e.0.field.as_deref(), param, "{}", e.0);
        }
    }
}
