//! The OpenAI-compatible speech API through the official `openai` Python client (installed by
//! deploy/install-deps.sh), with a real API key: every format (and a streamed response) decodes
//! with ffprobe to the audio's duration and rate, each request is a `generate_speech` job of the
//! key's tenant and is billed, a weighted blend of voices speaks, bad requests get OpenAI-shaped 400s naming the parameter and cost
//! nothing, a wrong key is refused.

use std::process::Command;

use crate::python_sdk_client::python;
use crate::support::{TestSystem, repo_root};
use avb_store::Role;
use serde_json::Value;

/// Duration (s) and sample rate of an audio file, as ffprobe decodes it (`raw`: 16-bit mono PCM
/// at 24 kHz, which has no header to read).
pub(crate) fn probe(path: &str, raw: bool) -> (f64, u32) {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if raw {
        cmd.args(["-f", "s16le", "-ar", "24000", "-ac", "1"]);
    }
    let out = cmd
        .args([
            "-show_entries",
            "stream=sample_rate,duration:format=duration",
            "-of",
            "json",
            path,
        ])
        .output()
        .expect("ffprobe (Debian ffmpeg; deploy/install-deps.sh)");
    assert!(
        out.status.success(),
        "ffprobe {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let rate = v["streams"][0]["sample_rate"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("sample rate");
    let duration = v["format"]["duration"]
        .as_str()
        .or_else(|| v["streams"][0]["duration"].as_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration for {path}: {v}"));
    (duration, rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_gets_every_format_and_openai_shaped_errors() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let store = system.store();
    let tenant = system.tenant_id("local").await;
    let key = store
        .create_key(&tenant, Role::Agent, "openai client")
        .await
        .expect("key");
    let out = tempfile::tempdir().expect("out dir");
    let text = "The quick brown fox jumps over the lazy dog, twice, for good measure.";
    let before = store.balance(&tenant).await.expect("balance").available;
    let run = |api_key: String| {
        let base = format!("{}/v1", system.base_url);
        let out = out.path().display().to_string();
        async move {
            tokio::process::Command::new(python())
                .arg(repo_root().join("tests/python/openai_speech_check.py"))
                .args(["--base-url", &base, "--api-key", &api_key, "--out", &out])
                .args(["--text", text])
                .output()
                .await
                .expect("run the openai client")
        }
    };
    let output = run(key.token.clone()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openai client failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON report");

    // Every format decodes to the same speech: the WAV's duration, at 24 kHz (Opus decodes at
    // its fixed 48 kHz).
    let files = &report["files"];
    let (wav_secs, wav_rate) = probe(files["wav"]["path"].as_str().expect("wav"), false);
    assert_eq!(wav_rate, 24_000);
    assert!(wav_secs > 2.0, "{wav_secs}");
    for (format, mime, rate) in [
        ("mp3", "audio/mpeg", 24_000),
        ("opus", "audio/ogg; codecs=opus", 48_000),
        ("flac", "audio/flac", 24_000),
        ("pcm", "audio/pcm", 24_000),
    ] {
        let file = &files[format];
        assert_eq!(file["content_type"], mime, "{file}");
        let (secs, got_rate) = probe(file["path"].as_str().expect("path"), format == "pcm");
        assert_eq!(got_rate, rate, "{format}");
        assert!(
            (secs - wav_secs).abs() < 0.15,
            "{format}: {secs}s against the WAV's {wav_secs}s"
        );
    }
    // A blend of two voices by weight speaks like its voices do (same length, within reason).
    let (blend_secs, _) = probe(files["blend"]["path"].as_str().expect("path"), false);
    assert!(
        (blend_secs - wav_secs).abs() < wav_secs * 0.3,
        "blend {blend_secs}s vs {wav_secs}s"
    );
    let blend_wav = std::fs::read(files["blend"]["path"].as_str().expect("path")).expect("read");
    let plain_wav = std::fs::read(files["wav"]["path"].as_str().expect("path")).expect("read");
    assert_ne!(blend_wav, plain_wav, "a blend is its own voice");
    let streamed = &files["streamed"];
    let (streamed_secs, _) = probe(streamed["path"].as_str().expect("path"), false);
    assert!(
        streamed_secs > 1.0 && streamed_secs < wav_secs,
        "bf_emma at 1.2x is shorter: {streamed_secs} vs {wav_secs}"
    );

    // Each request was a job of the key's tenant, billed.
    let job_ids: Vec<&str> = ["mp3", "opus", "flac", "wav", "pcm", "streamed", "blend"]
        .iter()
        .map(|f| files[*f]["job_id"].as_str().expect("x-avb-job-id"))
        .collect();
    let http = reqwest::Client::new();
    for id in &job_ids {
        let job: Value = http
            .get(format!("{}/api/v2/jobs/{id}", system.base_url))
            .bearer_auth(&key.token)
            .send()
            .await
            .expect("GET job")
            .json()
            .await
            .expect("json");
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["tool"], "generate_speech", "{job}");
    }
    // Seven jobs charged once each at the tool's price; the bad requests below cost nothing.
    let plan = avb_api::speech::speech_billing(
        &system.config.billing,
        &avb_workflows::speech::GenerateSpeechInput {
            text: text.into(),
            voice_id: "af_alloy".into(),
            speed: 1.0,
            format: None,
            language: None,
        },
    )
    .expect("speech is priced");
    let after = store.balance(&tenant).await.expect("balance").available;
    assert_eq!(
        before - after,
        plan.credits * i64::try_from(job_ids.len()).unwrap_or(0),
        "each job charged once, nothing else"
    );

    // Bad requests: 400, OpenAI's shape, the parameter named; nothing started (nor charged:
    // the balance above moved by exactly the good jobs).
    let errors = &report["errors"];
    for (name, param) in [
        ("voice", "voice"),
        ("blend", "voice"),
        ("blend_voice", "voice"),
        ("format", "response_format"),
        ("empty", "input"),
        ("speed", "speed"),
        ("model", "model"),
        ("long", "input"),
        ("language", "language"),
    ] {
        let e = &errors[name];
        assert_eq!(e["status"], 400, "{name}: {e}");
        assert_eq!(e["type"], "invalid_request_error", "{name}: {e}");
        assert_eq!(e["param"], param, "{name}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    assert!(
        errors["voice"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("af_nobody")),
        "{errors}"
    );
    assert!(
        errors["blend_voice"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("af_nobody")),
        "{errors}"
    );
    let jobs: Value = http
        .get(format!(
            "{}/api/v2/jobs?tool=generate_speech",
            system.base_url
        ))
        .bearer_auth(&key.token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        jobs["jobs"].as_array().map(Vec::len),
        Some(job_ids.len()),
        "bad requests started nothing: {jobs}"
    );
    assert!(
        report["models"]
            .as_array()
            .is_some_and(|m| m.iter().any(|id| id == "kokoro") && m.iter().any(|id| id == "tts-1")),
        "{report}"
    );

    // A wrong key: the client's AuthenticationError, no job.
    let refused = run("avb_not_a_key".into()).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("AuthenticationError"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    system.stop().await;
}

/// `generate_speech(format=…)` over MCP: the inline audio block is in that format (decodes to
/// the speech's duration), the download URL and the `avb://audio` resource serve it too (also
/// when the audio is over the inline limit), and an unknown format names the argument.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_speech_comes_in_the_format_asked_for() {
    use crate::support::mcp::{call, error_of, session, text_of};
    use base64::Engine as _;
    use rmcp::model::{ContentBlock, ReadResourceRequestParams, ResourceContents};
    use serde_json::json;

    let system = TestSystem::start_with(|c| c.mcp.max_inline_audio_bytes = 20_000).await;
    let client = session(system.mcp_url()).await;
    let dir = tempfile::tempdir().expect("dir");
    let probe_bytes = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        probe(path.to_str().expect("path"), false)
    };

    let short = json!({"text": "Hello there, how are you?", "format": "mp3"});
    let r = call(&client, "generate_speech", short).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.clone().expect("structured");
    assert_eq!(out["format"], "mp3", "{out}");
    let secs = out["duration_secs"].as_f64().expect("duration");
    let audio = r
        .content
        .iter()
        .find_map(ContentBlock::as_audio)
        .expect("inline audio");
    assert_eq!(audio.mime_type, "audio/mpeg");
    let mp3 = base64::engine::general_purpose::STANDARD
        .decode(&audio.data)
        .expect("base64");
    let (got, rate) = probe_bytes("inline.mp3", &mp3);
    assert_eq!(rate, 24_000);
    assert!((got - secs).abs() < 0.15, "{got} vs {secs}");
    let url = out["audio_url"].as_str().expect("audio_url");
    assert!(url.ends_with("?format=mp3"), "{url}");
    let downloaded = reqwest::get(url)
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(
        downloaded.as_ref(),
        mp3.as_slice(),
        "the download is the same mp3"
    );

    // Over the inline limit: a link whose resource is the Opus file.
    let long = json!({"text": "This sentence is long enough that its Opus file passes twenty kilobytes, \
                                 which takes several seconds of speech to reach at thirty two kilobits.",
                      "format": "opus"});
    let r = call(&client, "generate_speech", long).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(
        r.content.iter().all(|c| c.as_audio().is_none()),
        "not inline"
    );
    let link = r
        .content
        .iter()
        .find_map(ContentBlock::as_resource_link)
        .expect("link");
    assert_eq!(link.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
    let read = client
        .read_resource(ReadResourceRequestParams::new(link.uri.clone()))
        .await
        .expect("resources/read");
    let ResourceContents::BlobResourceContents {
        blob, mime_type, ..
    } = &read.contents[0]
    else {
        panic!("not a blob")
    };
    assert_eq!(mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
    let opus = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .expect("base64");
    assert_eq!(Some(opus.len() as u64), link.size);
    let (got, rate) = probe_bytes("linked.ogg", &opus);
    assert_eq!(rate, 48_000);
    let secs = r.structured_content.as_ref().expect("structured")["duration_secs"]
        .as_f64()
        .expect("duration");
    assert!((got - secs).abs() < 0.15, "{got} vs {secs}");

    let bad = call(
        &client,
        "generate_speech",
        json!({"text": "hi", "format": "aac"}),
    )
    .await;
    let e = error_of(&bad);
    assert_eq!(e["field"], "format", "{e}");
    client.cancel().await.ok();
    system.stop().await;
}
