//! The OpenAI-compatible speech API, as OpenAI's own clients call it: `POST /v1/audio/speech`,
//! `GET /v1/models`, `GET /v1/audio/voices`. A request is a `generate_speech` job like any other
//! (same keys, tenant, rate limit and price; visible in `list_jobs` and the Temporal UI); its
//! WAV is encoded to the requested format on the way out. Errors have OpenAI's shape
//! (`{"error": {"message", "type", "param", "code"}}`).

pub mod rest;

use avb_audio::AudioFormat;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::core::problem::{ErrorKind, Problem};

/// The model every request runs; OpenAI's speech models are accepted as its aliases.
pub const MODEL: &str = "kokoro";
pub const MODEL_ALIASES: [&str; 3] = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];

/// OpenAI's voice names and the Kokoro voice each speaks with.
pub const OPENAI_VOICES: [(&str, &str); 13] = [
    ("alloy", "af_alloy"),
    ("ash", "am_adam"),
    ("ballad", "bm_lewis"),
    ("cedar", "am_eric"),
    ("coral", "af_nicole"),
    ("echo", "am_echo"),
    ("fable", "bm_fable"),
    ("marin", "af_heart"),
    ("nova", "af_nova"),
    ("onyx", "am_onyx"),
    ("sage", "af_sarah"),
    ("shimmer", "af_bella"),
    ("verse", "am_michael"),
];

/// The Kokoro voice id for `voice`: one of ours as is, an OpenAI name mapped.
pub fn kokoro_voice(voice: &str) -> String {
    let v = voice.trim();
    OPENAI_VOICES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map_or_else(|| v.to_owned(), |(_, id)| (*id).to_owned())
}

/// Whether `model` names the model (or an alias of it).
pub fn is_model(model: &str) -> bool {
    model == MODEL || MODEL_ALIASES.contains(&model)
}

/// `response_format`, defaulting to mp3 as OpenAI does.
pub fn response_format(name: Option<&str>) -> Result<AudioFormat, OpenAiError> {
    match name {
        None => Ok(AudioFormat::Mp3),
        Some(n) => {
            AudioFormat::parse(n).map_err(|e| OpenAiError::invalid("response_format", e.message))
        }
    }
}

/// A problem in OpenAI's error shape; the status is the problem's.
#[derive(Debug)]
pub struct OpenAiError(pub Problem);

impl OpenAiError {
    /// A bad request naming the parameter.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self(Problem::invalid(param.to_owned(), message.into()))
    }
}

impl From<Problem> for OpenAiError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}

/// OpenAI's `type` for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let problem = self.0;
        let status = problem.kind.http_status();
        let retry_after = (problem.kind == ErrorKind::RateLimited)
            .then(|| {
                problem
                    .details
                    .get("retry_after_secs")
                    .and_then(serde_json::Value::as_u64)
            })
            .flatten();
        let body = json!({ "error": {
            "message": problem.to_string(),
            "type": error_type(status),
            "param": problem.field,
            "code": serde_json::to_value(problem.kind).unwrap_or_default(),
        }});
        let mut response = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response();
        if let Some(v) = retry_after.and_then(|s| s.to_string().parse().ok()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_names_map_to_kokoro_voices_and_ours_pass() {
        assert_eq!(kokoro_voice("alloy"), "af_alloy");
        assert_eq!(kokoro_voice("Nova"), "af_nova");
        assert_eq!(kokoro_voice("bf_emma"), "bf_emma");
        assert!(is_model("tts-1") && is_model("kokoro") && !is_model("whisper-1"));
        assert_eq!(response_format(None).ok(), Some(AudioFormat::Mp3));
        let e = response_format(Some("aac")).expect_err("aac");
        assert_eq!(e.0.field.as_deref(), Some("response_format"));
    }

    #[tokio::test]
    async fn errors_have_openais_shape() {
        let r = OpenAiError::invalid("voice", "unknown voice 'x'").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(r.into_body(), 10_000)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "voice");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown voice")),
            "{v}"
        );
        assert!(v["error"]["code"].is_string(), "{v}");
    }
}
