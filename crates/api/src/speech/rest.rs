//! REST of speech: the voice catalog and the audio of a finished speech job.

use avb_audio::AudioFormat;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/voices", get(voices))
        .route("/api/v2/audio/{job_id}", get(get_audio))
        .route("/api/v2/audio/{job_id}/stream", get(stream_audio))
}

/// The audio of a speech job while it is being made (`?format=`, default wav with open
/// sizes): chunked, each part sent as soon as the worker has stored it; for a finished job, the
/// whole audio the same way. Leaving mid-stream leaves the job running.
async fn stream_audio(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    Query(query): Query<AudioQuery>,
) -> Result<Response, Problem> {
    let format = match query.format.as_deref() {
        Some(name) => {
            AudioFormat::parse(name).map_err(|e| Problem::invalid("format", e.message))?
        }
        None => AudioFormat::Wav,
    };
    super::stream::speech_job(&state, &caller.scope(), &job_id).await?;
    let parts = super::stream::send_encoded(state, caller.scope(), job_id.clone(), format);
    let body = super::stream::streamed_body(parts).await?;
    Ok(super::stream::audio_response(body, format, &job_id))
}

async fn voices(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "voices": state.voices.as_ref(),
        "languages": super::tools::languages(),
    }))
}

/// The audio of a finished speech job (`?format=` encodes it: mp3, opus, flac, pcm): streamed, with `Range` (one range, 206) and
/// `If-None-Match` (the sha256 ETag, 304) for players and resumed downloads.
async fn get_audio(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    Query(query): Query<AudioQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let artifact = super::finished_audio(&state, &caller.scope(), &job_id).await?;
    if let Some(name) = query.format.as_deref() {
        let format = AudioFormat::parse(name).map_err(|e| Problem::invalid("format", e.message))?;
        if format != AudioFormat::Wav {
            return encoded_audio(&state, &artifact, format, &job_id, &headers).await;
        }
    }
    let etag = format!("\"{}\"", artifact.audio.sha256);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let size = artifact.audio.size_bytes;
    let wanted = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) => match byte_range(spec, size) {
            Some(r) => Some(r),
            None => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                    format!("{spec:?} is not a satisfiable range of the audio's {size} bytes"),
                )
                    .into_response());
            }
        },
        None => None,
    };
    // Streamed from the store as it is sent: one download never holds the whole audio.
    let part = state
        .artifacts
        .open(&artifact.audio, wanted.clone())
        .await
        .map_err(|e| Problem::new(ErrorKind::ArtifactUnavailable, e.to_string()))?;
    let range = part.range.clone();
    let mut response = Response::new(Body::from_stream(part.stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{job_id}.wav\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if wanted.is_some() {
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

#[derive(Debug, serde::Deserialize)]
struct AudioQuery {
    /// wav (the stored file, the default), mp3, opus, flac or pcm.
    format: Option<String>,
}

/// The audio encoded to `format` (in memory: at most `MAX_TRANSCODE_BYTES` of WAV), with one
/// `Range` served from it.
async fn encoded_audio(
    state: &ApiState,
    artifact: &avb_workflows::speech::SpeechArtifact,
    format: AudioFormat,
    job_id: &str,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let bytes = super::audio_in(state, artifact, format).await?;
    let size = bytes.len() as u64;
    let wanted = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) => Some(byte_range(spec, size).ok_or_else(|| {
            Problem::new(
                ErrorKind::InvalidInput,
                format!("{spec:?} is not a satisfiable range of the audio's {size} bytes"),
            )
        })?),
        None => None,
    };
    let range = wanted.clone().unwrap_or(0..size);
    let start = usize::try_from(range.start).unwrap_or(0);
    let end = usize::try_from(range.end).unwrap_or(bytes.len());
    let mut response = Response::new(Body::from(bytes[start..end].to_vec()));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.mime_type()),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{job_id}.{}\"",
        format.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if wanted.is_some() {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// One range of `Range: bytes=…` (`a-b`, `a-`, `-n`) as `start..end` within `size` bytes;
/// `None` when it is not one satisfiable range (several ranges are not served).
fn byte_range(spec: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let n: u64 = last.parse().ok()?;
        size.saturating_sub(n)..size
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size
        } else {
            last.parse::<u64>().ok()?.checked_add(1)?.min(size)
        };
        start..end
    };
    (range.start < range.end && range.start < size).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(0..100));
        assert_eq!(byte_range("bytes=900-", 1000), Some(900..1000));
        assert_eq!(byte_range("bytes=-100", 1000), Some(900..1000));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some(990..1000));
        for bad in [
            "bytes=1000-",
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=x-",
        ] {
            assert_eq!(byte_range(bad, 1000), None, "{bad}");
        }
    }
}
