//! `/api/v2/ws`: one WebSocket for a UI — start speech, follow jobs, hear audio as it is made,
//! cancel. Authenticated like every other route (`Authorization: Bearer …`, or, from a browser,
//! the subprotocols `avb.v1, bearer.<key>`).
//!
//! The client sends JSON text messages:
//! - `{"type":"speak","text":…,"voice":…,"speed"?:…,"format"?:"pcm|wav|mp3|opus|flac"}` starts
//!   a `generate_speech` job (same checks, rate limit and price as the tool), follows it and
//!   streams its audio;
//! - `{"type":"follow","job_id":…,"audio"?:bool,"format"?:…}` follows one of the caller's jobs
//!   (and streams its audio when `audio` is true and it is a speech job);
//! - `{"type":"cancel","job_id":…,"reason"?:…}` cancels one.
//!
//! The server answers with JSON text messages — `{"type":"job","job":<job view>}` on every change
//! of a followed job until it ends; `{"type":"audio_start","job_id","format","mime_type",
//! "sample_rate"}`, then the audio as binary messages, then `{"type":"audio_end","job_id",
//! "bytes"}`; `{"type":"error","kind","message","field"?,"job_id"?}` — and binary messages only
//! for audio. One audio stream runs per connection at a time.
//!
//! Closing the socket stops what it was sending; jobs it started keep running (and are charged
//! once), as over HTTP.

use avb_audio::AudioFormat;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::stream::{SAMPLE_RATE, send_encoded, speech_job};
use super::{TOOL, check_input, speech_billing, start_speech};
use crate::auth::Caller;
use crate::core::problem::Problem;
use crate::jobs::follow::follow;
use crate::jobs::view::cancel_job;
use crate::state::ApiState;
use avb_workflows::speech::GenerateSpeechInput;

/// The subprotocol this endpoint speaks (offered by browsers beside `bearer.<key>`).
pub const PROTOCOL: &str = "avb.v1";
/// Messages queued for a slow client before the senders wait.
const QUEUED: usize = 32;

pub fn router() -> Router<ApiState> {
    Router::new().route("/api/v2/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| session(state, caller, socket))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Speak {
        text: String,
        voice: String,
        #[serde(default)]
        speed: Option<f32>,
        #[serde(default)]
        format: Option<String>,
        #[serde(default)]
        language: Option<String>,
    },
    Follow {
        job_id: String,
        #[serde(default)]
        audio: bool,
        #[serde(default)]
        format: Option<String>,
    },
    Cancel {
        job_id: String,
        #[serde(default)]
        reason: Option<String>,
    },
}

fn error_message(p: &Problem, job_id: Option<&str>) -> Message {
    let mut m = json!({ "type": "error", "kind": p.kind.as_str(), "message": p.message });
    if let Some(f) = &p.field {
        m["field"] = json!(f);
    }
    if let Some(id) = job_id {
        m["job_id"] = json!(id);
    }
    text(&m)
}

fn text(v: &Value) -> Message {
    Message::Text(v.to_string().into())
}

/// What one connection runs: its reader of client messages, and the tasks it started (follows,
/// audio), which all end with it.
struct Session {
    state: ApiState,
    caller: Caller,
    out: mpsc::Sender<Message>,
    tasks: JoinSet<()>,
    audio: Option<tokio::task::AbortHandle>,
}

async fn session(state: ApiState, caller: Caller, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(QUEUED);
    let mut session = Session {
        state,
        caller,
        out,
        tasks: JoinSet::new(),
        audio: None,
    };
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(t))) => {
                    if let Err(p) = session.handle(t.as_str()).await
                        && sink.send(error_message(&p, None)).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let p = Problem::invalid("message", "send JSON text messages; binary messages carry only audio, from the server");
                    if sink.send(error_message(&p, None)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            Some(message) = outgoing.recv() => {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            Some(_) = session.tasks.join_next(), if !session.tasks.is_empty() => {}
        }
    }
    // Dropping the set aborts every follow and audio task of this connection; the jobs run on.
    session.tasks.abort_all();
    tracing::debug!(tenant = %session.caller.tenant, "WebSocket closed");
}

impl Session {
    async fn handle(&mut self, message: &str) -> Result<(), Problem> {
        let message: ClientMessage = serde_json::from_str(message).map_err(|e| {
            Problem::invalid(
                "message",
                format!("not a speak, follow or cancel message: {e}"),
            )
        })?;
        match message {
            ClientMessage::Speak {
                text,
                voice,
                speed,
                format,
                language,
            } => {
                let format = audio_format(format.as_deref())?;
                self.audio_free()?;
                let input = GenerateSpeechInput {
                    text,
                    voice_id: crate::openai::kokoro_voice(&voice),
                    speed: speed.unwrap_or(1.0),
                    format: None,
                    language,
                };
                check_input(&self.state, &input)?;
                self.state.limiter.check_tool(&self.caller, TOOL).await?;
                let billing = speech_billing(&self.state.config.billing, &input);
                let (job_id, _) = start_speech(&self.state.temporal, &self.caller, input, billing)
                    .await
                    .map_err(|e| Problem::from(&e))?;
                tracing::info!(%job_id, tool = TOOL, tenant = %self.caller.tenant, "speech requested over the WebSocket");
                self.follow(job_id.clone());
                self.stream_audio(job_id, format);
            }
            ClientMessage::Follow {
                job_id,
                audio,
                format,
            } => {
                let format = audio_format(format.as_deref())?;
                if audio {
                    self.audio_free()?;
                    speech_job(&self.state, &self.caller.scope(), &job_id).await?;
                } else {
                    // Unknown ids (and jobs outside the caller's scope) are an error now, not a silent end.
                    crate::jobs::view::get_job(&self.state, &self.caller.scope(), &job_id).await?;
                }
                self.follow(job_id.clone());
                if audio {
                    self.stream_audio(job_id, format);
                }
            }
            ClientMessage::Cancel { job_id, reason } => {
                crate::jobs::check_reason(reason.as_deref())?;
                let reason = reason.unwrap_or_else(|| "cancelled by the caller (WebSocket)".into());
                cancel_job(&self.state, &self.caller.scope(), &job_id, &reason).await?;
            }
        }
        Ok(())
    }

    fn audio_free(&self) -> Result<(), Problem> {
        if self.audio.as_ref().is_some_and(|a| !a.is_finished()) {
            return Err(Problem::new(
                crate::core::problem::ErrorKind::Conflict,
                "an audio stream is already running on this connection; wait for its audio_end \
                 or open another connection",
            ));
        }
        Ok(())
    }

    /// Sends `{"type":"job"}` on every change of the job until it ends.
    fn follow(&mut self, job_id: String) {
        let (state, scope, out) = (self.state.clone(), self.caller.scope(), self.out.clone());
        self.tasks.spawn(async move {
            let views = follow(state, scope, job_id, None);
            tokio::pin!(views);
            while let Some(view) = views.next().await {
                if out
                    .send(text(&json!({ "type": "job", "job": view })))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }

    /// Sends the job's audio as binary messages between `audio_start` and `audio_end`.
    fn stream_audio(&mut self, job_id: String, format: AudioFormat) {
        let (state, scope, out) = (self.state.clone(), self.caller.scope(), self.out.clone());
        let handle = self.tasks.spawn(async move {
            let start = json!({
                "type": "audio_start",
                "job_id": job_id,
                "format": format.name(),
                "mime_type": format.mime_type(),
                "sample_rate": if format == AudioFormat::Opus { 48_000 } else { SAMPLE_RATE },
            });
            if out.send(text(&start)).await.is_err() {
                return;
            }
            let mut parts = send_encoded(state, scope, job_id.clone(), format);
            let mut bytes = 0u64;
            while let Some(part) = parts.recv().await {
                let message = match part {
                    Ok(b) if b.is_empty() => continue,
                    Ok(b) => {
                        bytes += b.len() as u64;
                        Message::Binary(b)
                    }
                    Err(p) => {
                        let _ = out.send(error_message(&p, Some(&job_id))).await;
                        return;
                    }
                };
                if out.send(message).await.is_err() {
                    return;
                }
            }
            let end = json!({ "type": "audio_end", "job_id": job_id, "bytes": bytes });
            let _ = out.send(text(&end)).await;
        });
        self.audio = Some(handle);
    }
}

fn audio_format(name: Option<&str>) -> Result<AudioFormat, Problem> {
    match name {
        None => Ok(AudioFormat::Pcm),
        Some(n) => AudioFormat::parse(n).map_err(|e| Problem::invalid("format", e.message)),
    }
}
