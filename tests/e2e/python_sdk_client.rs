//! A second, independent client: the official Python MCP SDK (`pip install mcp`, installed by
//! deploy/install-deps.sh) over stdio, legacy SSE and Streamable HTTP; and the teaching example
//! built on it (examples/speech_client), so that the example cannot rot.

use std::path::PathBuf;

use crate::support::{TestSystem, repo_root};

pub(crate) fn python() -> PathBuf {
    let cache = std::env::var_os("AVB_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/avb")
        });
    let py = cache.join("venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run deploy/install-deps.sh",
        py.display()
    );
    py
}

async fn check(system: &TestSystem, args: &[&str]) {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(repo_root().join("tests/python/mcp_client_check.py"))
        .args(["--timeout", "120"])
        .args(args);
    for (k, v) in system.child_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client {args:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last).expect("JSON summary line");
    assert_eq!(summary["ok"], true, "{summary}");
    let secs = summary["duration_secs"].as_f64().expect("duration");
    assert!((0.8..6.0).contains(&secs), "{secs}");
}

#[tokio::test]
async fn python_sdk_over_all_three_transports() {
    let system = TestSystem::start().await;
    check(
        &system,
        &["--transport", "streamable-http", "--url", &system.mcp_url()],
    )
    .await;
    check(&system, &["--transport", "sse", "--url", &system.sse_url()]).await;
    check(
        &system,
        &[
            "--transport",
            "stdio",
            "--command",
            env!("CARGO_BIN_EXE_avb"),
            "--",
            "mcp",
            "--transport",
            "stdio",
        ],
    )
    .await;
    system.stop().await;
}

/// Runs examples/speech_client/speak.py (the teaching example) with `args`, the system's
/// environment and `AVB_API_KEY=key`; returns its exit status, stderr and the last stdout line.
async fn speech_example(
    system: &TestSystem,
    key: &str,
    args: &[&str],
) -> (bool, String, serde_json::Value) {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(repo_root().join("examples/speech_client/speak.py"))
        .args(["--url", &system.mcp_url(), "--timeout", "150"])
        .args(args);
    for (k, v) in system.child_env() {
        cmd.env(k, v);
    }
    cmd.env("AVB_API_KEY", key);
    let out = cmd.output().await.expect("run the speech client example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("no JSON summary line ({e})\nstdout: {stdout}\nstderr: {stderr}")
    });
    (out.status.success(), stderr, summary)
}

/// The WAV at `path`: 24 kHz mono 16-bit, `secs` long (± a frame), between `min` and 8 s.
fn assert_speech_wav(path: &std::path::Path, secs: f64, min: f64) {
    let reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a WAV: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 24_000, "{spec:?}");
    assert_eq!(spec.channels, 1, "{spec:?}");
    assert_eq!(spec.bits_per_sample, 16, "{spec:?}");
    let duration = f64::from(reader.duration()) / f64::from(spec.sample_rate);
    assert!((min..8.0).contains(&duration), "{duration} s");
    assert!(
        (duration - secs).abs() < 0.01,
        "file {duration} s, summary {secs} s"
    );
}

/// The teaching example `examples/speech_client` against the real system with authentication
/// on: it lists the tools, runs `generate_speech` as an MCP task (and, with --no-tasks, as a
/// direct call), writes the WAV; a wrong key is a clear error.
#[tokio::test]
async fn speech_client_example_speaks_as_a_task() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    // An AGENT key of the `local` tenant (the one with the test credits), as `avb dev` makes.
    let store = system.store.as_ref().expect("the system has a store");
    let local = store
        .tenant_by_name("local")
        .await
        .expect("tenant lookup")
        .expect("local tenant");
    let key = store
        .create_key(&local.id, avb_store::Role::Agent, "speech client example")
        .await
        .expect("key")
        .token;
    let dir = tempfile::tempdir().expect("tempdir");

    let wav = dir.path().join("out/hello.wav");
    let (ok, stderr, summary) = speech_example(
        &system,
        &key,
        &[
            "--text",
            "Hello from the speech client example.",
            "--out",
            wav.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    assert!(ok, "{summary}\n{stderr}");
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["mode"], "task", "{summary}\n{stderr}");
    assert!(summary["polls"].as_u64().expect("polls") >= 1, "{summary}");
    let job_id = summary["job_id"].as_str().expect("job_id");
    assert!(job_id.starts_with("job_"), "{summary}");
    assert!(
        stderr.contains(&format!("became task {job_id}")),
        "{stderr}"
    );
    assert_eq!(summary["sample_rate"], 24_000, "{summary}");
    assert_eq!(summary["channels"], 1, "{summary}");
    let secs = summary["duration_secs"].as_f64().expect("duration_secs");
    assert_speech_wav(&wav, secs, 0.8);

    let direct = dir.path().join("direct.wav");
    let (ok, stderr, summary) = speech_example(
        &system,
        &key,
        &[
            "--no-tasks",
            "--voice",
            "am_adam",
            "--text",
            "Direct call.",
            "--out",
            direct.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    assert!(ok, "{summary}\n{stderr}");
    assert_eq!(summary["mode"], "direct", "{summary}");
    assert_eq!(summary["voice_id"], "am_adam", "{summary}");
    let secs = summary["duration_secs"].as_f64().expect("duration_secs");
    assert_speech_wav(&direct, secs, 0.3);

    let (ok, _, summary) = speech_example(
        &system,
        "avb_nope_notakey",
        &[
            "--out",
            dir.path().join("never.wav").to_str().expect("path"),
        ],
    )
    .await;
    assert!(!ok, "{summary}");
    let error = summary["error"].as_str().expect("error");
    assert!(error.contains("refused the API key (401"), "{error}");
    assert!(!dir.path().join("never.wav").exists());
    system.stop().await;
}
