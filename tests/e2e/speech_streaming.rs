//! Speech audio sent while it is made: through the official `openai` client (streamed by
//! default, `stream: false` whole), the chunked `/api/v2/audio/{id}/stream`, and the `/api/v2/ws`
//! WebSocket (speak, follow, cancel; job events and binary audio). A client that leaves
//! mid-stream stops only its own sending: the job completes, is charged once, its audio stays
//! downloadable, no stream stays open and the stored chunks are removed after their keep time.

use std::time::{Duration, Instant};

use avb_artifacts::ArtifactStore;
use avb_store::Role;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::openai_speech::probe;
use crate::python_sdk_client::python;
use crate::support::{TestSystem, repo_root};

/// Long enough for several chunks: the first is out well before the last is made.
const LONG_TEXT: &str = "Streaming starts with the first sentence. The second sentence follows \
    while the first one is already playing. A third one, somewhat longer than the others, keeps \
    the engine busy for a while. And the fourth sentence closes the paragraph, so that the whole \
    job takes several chunks to finish.";

async fn run_check(system: &TestSystem, key: &str, out: &std::path::Path, mode: &str) -> Value {
    let output = tokio::process::Command::new(python())
        .arg(repo_root().join("tests/python/openai_stream_check.py"))
        .args(["--base-url", &system.base_url, "--api-key", key])
        .args(["--out", &out.display().to_string(), "--text", LONG_TEXT])
        .args(["--mode", mode])
        .output()
        .await
        .expect("run the openai client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openai client ({mode}) failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON report")
}

async fn get(system: &TestSystem, key: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", system.base_url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls the job until it ends; its view.
async fn finished_job(system: &TestSystem, key: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let job: Value = get(system, key, &format!("/api/v2/jobs/{job_id}"))
            .await
            .json()
            .await
            .expect("job json");
        if job["status"] != "running" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} still running: {job}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `avb_audio_streams_open` from `/metrics`.
async fn open_streams(system: &TestSystem) -> i64 {
    let text = reqwest::get(format!("{}/metrics", system.base_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("avb_audio_streams_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no avb_audio_streams_open in /metrics:\n{text}"))
}

/// Waits up to `limit` for `check`.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

fn artifacts(system: &TestSystem) -> ArtifactStore {
    ArtifactStore::configured(&system.config, system.store.as_ref()).expect("artifact store")
}

fn wav_secs(wav: &[u8]) -> f64 {
    avb_testkit::system::wav_facts(wav).2
}

/// A system with keys required and stream chunks kept 1 s, its `local` tenant and an AGENT key.
async fn streaming_system() -> (TestSystem, String, String) {
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.tts.stream_keep_secs = 1;
    })
    .await;
    let tenant = system.tenant_id("local").await;
    let key = system
        .store()
        .create_key(&tenant, Role::Agent, "streaming client")
        .await
        .expect("key")
        .token;
    (system, tenant, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_speech_streams_while_the_job_runs_and_a_client_that_leaves_leaks_nothing() {
    let (system, tenant, key) = streaming_system().await;
    let store = system.store();
    let out = tempfile::tempdir().expect("out");
    let before = store.balance(&tenant).await.expect("balance").available;

    // Streamed: the first bytes come while the job is still running, and the whole stream is
    // the job's audio.
    let streamed = run_check(&system, &key, out.path(), "stream").await;
    assert_eq!(streamed["status_at_first_byte"], "running", "{streamed}");
    assert_eq!(
        streamed["content_length"],
        Value::Null,
        "chunked: {streamed}"
    );
    let first = streamed["first_byte_secs"].as_f64().expect("first byte");
    let total = streamed["total_secs"].as_f64().expect("total");
    assert!(first < total / 2.0, "first byte {first}s of {total}s");
    let job_id = streamed["job_id"].as_str().expect("job id");
    let job = finished_job(&system, &key, job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let wav = get(&system, &key, &format!("/api/v2/audio/{job_id}"))
        .await
        .bytes()
        .await
        .expect("wav");
    let (secs, rate) = probe(streamed["path"].as_str().expect("path"), false);
    assert_eq!(rate, 24_000);
    assert!(
        (secs - wav_secs(&wav)).abs() < 0.15,
        "streamed mp3 {secs}s vs WAV {}s",
        wav_secs(&wav)
    );
    // The chunked stream of the finished job (read from the WAV once its chunks are gone) is
    // its samples exactly.
    let pcm = get(
        &system,
        &key,
        &format!("/api/v2/audio/{job_id}/stream?format=pcm"),
    )
    .await;
    assert_eq!(pcm.status(), 200);
    let pcm = pcm.bytes().await.expect("pcm");
    assert!(pcm[..] == wav[44..], "the stream is the WAV's samples");

    // Not streamed: whole, with its length.
    let whole = run_check(&system, &key, out.path(), "whole").await;
    let length: usize = whole["content_length"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {whole}"));
    assert_eq!(
        std::fs::metadata(whole["path"].as_str().expect("path"))
            .expect("file")
            .len(),
        length as u64
    );

    // A client that leaves after the first bytes: its stream closes at once, the job runs on
    // to completion (charged once), its audio downloads, and the chunks go after their keep
    // time.
    let left = run_check(&system, &key, out.path(), "leave").await;
    assert_eq!(left["status_at_first_byte"], "running", "{left}");
    let left_job = left["job_id"].as_str().expect("job id").to_owned();
    assert!(
        eventually(Duration::from_secs(5), || async {
            open_streams(&system).await == 0
        })
        .await,
        "the stream of the client that left is still open: {}",
        open_streams(&system).await
    );
    let job = finished_job(&system, &key, &left_job).await;
    assert_eq!(job["status"], "completed", "{job}");
    let audio = get(&system, &key, &format!("/api/v2/audio/{left_job}")).await;
    assert_eq!(audio.status(), 200);
    let artifacts = artifacts(&system);
    assert!(
        eventually(Duration::from_secs(15), || async {
            artifacts.streams().await.expect("streams").is_empty()
        })
        .await,
        "stream chunks left: {:?}",
        artifacts.streams().await
    );
    let plan = avb_api::speech::speech_billing(
        &system.config.billing,
        &avb_workflows::speech::GenerateSpeechInput {
            text: LONG_TEXT.into(),
            voice_id: "af_heart".into(),
            speed: 1.0,
            format: None,
            language: None,
        },
    )
    .expect("priced");
    let after = store.balance(&tenant).await.expect("balance").available;
    assert_eq!(
        before - after,
        plan.credits * 3,
        "three jobs, each charged once"
    );
    system.stop().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `/api/v2/ws` with the key in a header (or, as a browser does, in a subprotocol).
async fn connect(system: &TestSystem, key: &str, as_browser: bool) -> Socket {
    let url = format!("{}/api/v2/ws", system.base_url.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    let h = request.headers_mut();
    if as_browser {
        h.insert(
            "sec-websocket-protocol",
            format!("avb.v1, bearer.{key}").parse().expect("header"),
        );
    } else {
        h.insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    let (socket, response) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("WebSocket upgrade within 30 s")
    .expect("WebSocket upgrade");
    if as_browser {
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("avb.v1"),
            "the server picks its protocol, never echoes the token"
        );
    }
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    tokio::time::timeout(
        Duration::from_secs(30),
        socket.send(Message::Text(message.to_string().into())),
    )
    .await
    .unwrap_or_else(|_| panic!("sending {message} took over 30 s"))
    .expect("send");
}

/// `key` asks over the WebSocket to follow and to cancel `job_id`: both are "not found".
pub(crate) async fn websocket_cannot_reach(system: &TestSystem, key: &str, job_id: &str) {
    let mut socket = connect(system, key, false).await;
    for message in [
        json!({"type": "follow", "job_id": job_id, "audio": true}),
        json!({"type": "cancel", "job_id": job_id}),
    ] {
        let e = first_error(&mut socket, message.clone()).await;
        assert_eq!(e["kind"], "NotFound", "{message}: {e}");
    }
}

/// Sends `message` and returns the first error the socket answers with.
async fn first_error(socket: &mut Socket, message: Value) -> Value {
    send(socket, message.clone()).await;
    let heard = listen(socket, |_, _| None).await;
    heard
        .errors
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no error for {message}"))
}

/// What one speech over the socket produced, in arrival order.
#[derive(Default)]
struct Heard {
    job_id: Option<String>,
    audio: Vec<u8>,
    /// Job statuses seen, in order, with how much audio had arrived by then.
    statuses: Vec<(String, usize)>,
    audio_end: Option<Value>,
    errors: Vec<Value>,
}

/// Reads until the audio ended and the job reached a final status (or an error ended it).
/// `on_audio` sees each audio message (and what was heard before it) and may answer.
async fn listen(
    socket: &mut Socket,
    mut on_audio: impl FnMut(&Heard, &[u8]) -> Option<Value>,
) -> Heard {
    let mut heard = Heard::default();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut terminal = false;
    while !(terminal && (heard.audio_end.is_some() || !heard.errors.is_empty())) {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("the socket went quiet")
            .expect("socket open")
            .expect("message");
        match message {
            Message::Binary(b) => {
                let reply = on_audio(&heard, &b);
                heard.audio.extend_from_slice(&b);
                if let Some(reply) = reply {
                    send(socket, reply).await;
                }
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON message");
                match v["type"].as_str() {
                    Some("job") => {
                        let status = v["job"]["status"].as_str().expect("status").to_owned();
                        heard.job_id = v["job"]["job_id"].as_str().map(str::to_owned);
                        terminal = status != "running";
                        heard.statuses.push((status, heard.audio.len()));
                    }
                    Some("audio_start") => {
                        heard.job_id = v["job_id"].as_str().map(str::to_owned);
                    }
                    Some("audio_end") => heard.audio_end = Some(v),
                    Some("error") => {
                        heard.errors.push(v);
                        if heard.job_id.is_none() {
                            return heard;
                        }
                    }
                    other => panic!("unexpected message {other:?}: {v}"),
                }
            }
            Message::Close(_) => panic!("the server closed the socket"),
            _ => {}
        }
    }
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_speaks_follows_and_cancels_with_job_events_and_audio() {
    let (system, _, key) = streaming_system().await;
    let store = system.store();
    let other_tenant = store.create_tenant("someone-else").await.expect("tenant");
    let other_key = store
        .create_key(&other_tenant.id, Role::Agent, "other ui")
        .await
        .expect("key")
        .token;

    // speak: job events and the audio, the first audio while the job still runs; the PCM is
    // the job's WAV samples exactly.
    let mut socket = connect(&system, &key, true).await;
    send(
        &mut socket,
        json!({"type": "speak", "text": LONG_TEXT, "voice": "af_heart", "format": "pcm"}),
    )
    .await;
    let heard = listen(&mut socket, |_, _| None).await;
    assert!(heard.errors.is_empty(), "{:?}", heard.errors);
    let job_id = heard.job_id.clone().expect("job events");
    assert_eq!(
        heard.statuses.last().map(|s| s.0.as_str()),
        Some("completed")
    );
    assert!(
        heard
            .statuses
            .iter()
            .any(|(status, audio)| status == "running" && *audio > 0),
        "audio arrived while the job ran: {:?}",
        heard.statuses
    );
    assert_eq!(
        heard.audio_end.as_ref().map(|e| e["bytes"].clone()),
        Some(json!(heard.audio.len()))
    );
    let wav = get(&system, &key, &format!("/api/v2/audio/{job_id}"))
        .await
        .bytes()
        .await
        .expect("wav");
    assert!(
        heard.audio[..] == wav[44..],
        "streamed PCM = the WAV's samples"
    );

    // Bad messages name what is wrong and start nothing.
    for (message, field) in [
        (
            json!({"type": "speak", "text": "hi", "voice": "af_nobody"}),
            "voice_id",
        ),
        (
            json!({"type": "speak", "text": "hi", "voice": "af_heart", "format": "aac"}),
            "format",
        ),
        (json!({"type": "shout", "text": "hi"}), "message"),
    ] {
        let e = first_error(&mut socket, message.clone()).await;
        assert_eq!(e["field"], field, "{message}: {e}");
    }

    // Another tenant cannot follow (nor cancel) the job: not found, as for an unknown id.
    websocket_cannot_reach(&system, &other_key, &job_id).await;

    // follow with audio, of the finished job: the same audio again, mp3 this time.
    send(
        &mut socket,
        json!({"type": "follow", "job_id": job_id, "audio": true, "format": "mp3"}),
    )
    .await;
    let again = listen(&mut socket, |_, _| None).await;
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert!(
        again.audio.starts_with(b"ID3") || again.audio[0] == 0xff,
        "mp3"
    );

    // cancel while it speaks: the job ends cancelled, the audio stream ends with an error.
    send(
        &mut socket,
        json!({"type": "speak", "text": LONG_TEXT.repeat(3), "voice": "af_heart"}),
    )
    .await;
    let cancelled = listen(&mut socket, |heard, _| {
        // At the first audio: cancel the job the events named.
        (heard.audio.is_empty()).then(
            || json!({"type": "cancel", "job_id": heard.job_id.clone().expect("job event first")}),
        )
    })
    .await;
    assert_eq!(
        cancelled.statuses.last().map(|s| s.0.as_str()),
        Some("cancelled"),
        "{:?}",
        cancelled.statuses
    );
    let e = cancelled
        .errors
        .first()
        .expect("the audio stream ends with an error");
    assert_eq!(e["job_id"], json!(cancelled.job_id), "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled")),
        "{e}"
    );
    assert!(
        cancelled.audio_end.is_none(),
        "a cancelled job's audio does not end normally"
    );

    // Leaving mid-stream: the socket closes after the first audio; nothing stays open and the
    // job completes.
    send(
        &mut socket,
        json!({"type": "speak", "text": LONG_TEXT, "voice": "af_heart"}),
    )
    .await;
    let mut left_job = None;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(other) => panic!("the socket ended before the audio ({other:?}); saw {seen:?}"),
            Err(_) => panic!("no audio for the speak within 180 s; saw {seen:?}"),
        };
        seen.push(match &message {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => format!("{} audio bytes", b.len()),
            other => format!("{other:?}"),
        });
        match message {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "job" {
                    left_job = v["job"]["job_id"].as_str().map(str::to_owned);
                }
            }
            Message::Binary(_) if left_job.is_some() => break,
            _ => {}
        }
    }
    drop(socket);
    let left_job = left_job.expect("job id before the audio");
    assert!(
        eventually(Duration::from_secs(5), || async {
            open_streams(&system).await == 0
        })
        .await,
        "a stream stayed open after the socket closed"
    );
    let job = finished_job(&system, &key, &left_job).await;
    assert_eq!(job["status"], "completed", "{job}");
    system.stop().await;
}
