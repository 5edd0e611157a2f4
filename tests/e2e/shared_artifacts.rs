//! Audio made on one machine is read on another: the TTS worker runs as its own process with its
//! own data folder (another host, as far as files go), and the api serves its results from the
//! shared artifact store — the PostgreSQL database (the default when the database is
//! PostgreSQL) or S3-compatible object storage (moto's server, started for the test).

use std::path::Path;
use std::time::Duration;

use crate::support::TestSystem;
use crate::support::mcp::{audio_of, call, session, text_of};
use avb_testkit::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use avb_testkit::system::{other_host_data_dir, wait_until_ok, wav_files};
use serde_json::json;

/// Neither the worker's nor the api's data folder holds audio: it went to the shared store.
fn assert_no_audio_on_disk(worker_host: &Path, system: &TestSystem) {
    assert_eq!(wav_files(worker_host), 0, "nothing on the worker's disk");
    assert_eq!(
        wav_files(system.data_dir.path()),
        0,
        "nothing on the api's disk"
    );
}

/// Speech through the MCP endpoint at `base`: the audio inline, and the same audio downloaded
/// in part (a range) from `/api/v2/audio/{job}`; returns the WAV.
async fn speak_and_download(base: &str) -> Vec<u8> {
    let client = session(format!("{base}/mcp")).await;
    let r = call(
        &client,
        "generate_speech",
        json!({"text": "Made on one machine, heard on another.", "voice_id": "af_heart"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let wav = audio_of(&r).await;
    assert_eq!(&wav[..4], b"RIFF");
    let job = r.structured_content.as_ref().expect("structured")["job_id"]
        .as_str()
        .expect("job id")
        .to_string();
    let part = reqwest::Client::new()
        .get(format!("{base}/api/v2/audio/{job}"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("range download");
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.expect("part"), wav[100..200]);
    client.cancel().await.expect("close");
    wav
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_made_on_one_host_is_read_on_another_through_postgres() {
    let system = TestSystem::start_on_postgres(|_| {}, "avb-workflows,avb-billing").await;
    let worker_host = other_host_data_dir();
    let worker_dir = worker_host.path().display().to_string();
    let _worker = system.spawn_avb(
        &["worker", "--queues", "avb-tts"],
        &[("AVB_DATA_DIR", &worker_dir)],
    );
    speak_and_download(&system.base_url).await;

    let store = system.store.as_ref().expect("store");
    let keys = store.artifact_keys("audio/").await.expect("keys");
    assert_eq!(keys.len(), 1, "the audio is in the database: {keys:?}");
    assert_no_audio_on_disk(worker_host.path(), &system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_made_on_one_host_is_read_on_another_through_s3() {
    let s3 = S3Server::start("avb-audio");
    let system = TestSystem::start_custom(|_| {}, "avb-workflows,avb-billing").await;
    let endpoint = s3.endpoint();
    let s3_env = [
        ("AVB_ARTIFACTS_URL", "s3://avb-audio/speech"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    ];
    let worker_host = other_host_data_dir();
    let worker_dir = worker_host.path().display().to_string();
    let mut worker_env = s3_env.to_vec();
    worker_env.push(("AVB_DATA_DIR", &worker_dir));
    let _worker = system.spawn_avb(&["worker", "--queues", "avb-tts"], &worker_env);

    // An api of its own reading the bucket (the in-process one keeps its default directory).
    let addr = format!("127.0.0.1:{}", avb_testkit::free_port());
    let base = format!("http://{addr}");
    let mut api_env = s3_env.to_vec();
    api_env.push(("AVB_PUBLIC_URL", &base));
    let _api = system.spawn_avb(&["serve", "--http", &addr], &api_env);
    wait_until_ok(
        &format!("{base}/healthz"),
        "the api",
        Duration::from_secs(60),
    )
    .await;
    speak_and_download(&base).await;

    let in_bucket: Vec<String> = s3
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("speech/audio/") && k.ends_with(".wav"))
        .collect();
    assert_eq!(
        in_bucket.len(),
        1,
        "the audio is in the bucket: {:?}",
        s3.keys()
    );
    assert_no_audio_on_disk(worker_host.path(), &system);
    let status = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        status.status(),
        200,
        "the bucket passes the readiness check"
    );
}
