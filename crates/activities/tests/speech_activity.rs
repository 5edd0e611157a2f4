//! The `synthesize_speech` activity in the SDK's activity test environment, with the real engine
//! and a real artifact store on disk: heartbeats, cancellation, stored audio, failure types.

mod common;

use std::sync::{Arc, Mutex};

use avb_activities::speech_activity::TtsActivities;
use avb_artifacts::ArtifactStore;
use avb_workflows::speech::{GenerateSpeechInput, SpeechProgress, SynthesizeSpeech};
use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::testing::{ActivityEnvironment, ActivityEnvironmentError};

fn input(text: &str, voice: &str) -> SynthesizeSpeech {
    SynthesizeSpeech {
        job_id: "job-test".into(),
        request: GenerateSpeechInput {
            text: text.into(),
            voice_id: voice.into(),
            speed: 1.0,
            format: None,
            language: None,
        },
    }
}

/// Short, so the tests see the stream removed.
const STREAM_KEEP: std::time::Duration = std::time::Duration::from_millis(500);

/// Waits (up to 5 s) until nothing is stored under `streams/`.
async fn streams_removed(store: &ArtifactStore) -> bool {
    for _ in 0..50 {
        if store.streams().await.expect("list streams").is_empty() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

fn activities(dir: &std::path::Path) -> (TtsActivities, ArtifactStore) {
    let store = ArtifactStore::local(dir).expect("store");
    let acts = TtsActivities {
        engine: Arc::new(common::engine()),
        artifacts: store.clone(),
        stream_keep: STREAM_KEEP,
    };
    (acts, store)
}

#[tokio::test]
async fn stores_wav_and_heartbeats_after_each_chunk() {
    let dir = tempfile::tempdir().expect("tmp");
    let (acts, store) = activities(dir.path());
    let beats: Arc<Mutex<Vec<SpeechProgress>>> = Arc::default();
    let seen = beats.clone();
    let env = ActivityEnvironment::builder()
        .register_activities(acts)
        .on_heartbeat(move |d| {
            if let Ok(p) = d.downcast::<SpeechProgress>() {
                seen.lock().expect("lock").push(*p);
            }
        })
        .build();
    let text = "First sentence is here. A second one follows it, with a clause that goes on for a while \
        so that the chunker has to start a new chunk. And a third sentence, long enough to matter, finishes the job.";
    let out = env
        .run(TtsActivities::synthesize_speech, input(text, "af_heart"))
        .await
        .expect("activity");
    let beats = beats.lock().expect("lock").clone();
    assert_eq!(beats.first().map(|b| b.chunks_done), Some(0));
    assert_eq!(
        beats.last(),
        Some(&SpeechProgress {
            chunks_done: out.chunks,
            chunks_total: out.chunks
        })
    );
    let dones: Vec<u32> = beats.iter().map(|b| b.chunks_done).collect();
    assert!(
        dones.windows(2).all(|w| w[0] <= w[1]),
        "progress must not go backwards: {dones:?}"
    );
    for n in 1..=out.chunks {
        assert!(
            dones.contains(&n),
            "no heartbeat after chunk {n}: {dones:?}"
        );
    }
    assert!(out.chunks >= 2);

    let wav = store.get(&out.audio).await.expect("stored audio");
    assert_eq!(out.audio.size_bytes, wav.len() as u64);
    assert!(out.audio.key.starts_with("audio/") && out.audio.key.ends_with(".wav"));
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).expect("valid wav");
    assert_eq!(
        (
            reader.spec().sample_rate,
            reader.spec().channels,
            reader.spec().bits_per_sample
        ),
        (24_000, 1, 16)
    );
    assert_eq!(u64::from(reader.duration()), out.sample_count);
    assert!((out.duration_secs - out.sample_count as f64 / 24_000.0).abs() < 1e-9);

    // The stream: every chunk stored, in order, together exactly the WAV's samples; the end
    // marker names the WAV; all of it removed once the keep time is over.
    let end = store
        .stream_end("job-test")
        .await
        .expect("read end")
        .expect("end marker");
    assert_eq!(
        (end.chunks, end.samples, &end.audio),
        (out.chunks, out.sample_count, &out.audio)
    );
    let mut streamed = Vec::new();
    for i in 0..end.chunks {
        let chunk = store
            .stream_chunk("job-test", i)
            .await
            .expect("read chunk")
            .unwrap_or_else(|| panic!("chunk {i} not stored"));
        streamed.extend_from_slice(&chunk);
    }
    let wav = store.get(&out.audio).await.expect("wav");
    assert!(streamed == wav[44..], "the chunks are the WAV's samples");
    assert!(
        streams_removed(&store).await,
        "stream kept after its keep time"
    );
}

#[tokio::test]
async fn cancellation_stops_between_chunks() {
    let dir = tempfile::tempdir().expect("tmp");
    let (acts, store) = activities(dir.path());
    let engine = acts.engine.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SpeechProgress>();
    let env = Arc::new(
        ActivityEnvironment::builder()
            .register_activities(acts)
            .on_heartbeat(move |d| {
                if let Ok(p) = d.downcast::<SpeechProgress>() {
                    let _ = tx.send(*p);
                }
            })
            .build(),
    );
    let text = "This sentence is the first chunk. ".repeat(2)
        + &"Then a great many more words follow, far too many to finish before the cancel arrives. ".repeat(30);
    let canceller = {
        let env = env.clone();
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if p.chunks_done >= 1 {
                    env.cancel();
                    return;
                }
            }
        })
    };
    let result = env
        .run(TtsActivities::synthesize_speech, input(&text, "af_heart"))
        .await;
    canceller.await.expect("canceller");
    let total = engine
        .plan(&input(&text, "af_heart").request)
        .expect("plan")
        .chunks
        .len();
    assert!(total >= 3, "text should need several chunks, got {total}");
    match result {
        Err(ActivityEnvironmentError::Activity(ActivityError::Cancelled { .. })) => {}
        other => panic!("expected cancellation, got {other:?}"),
    }
    assert!(
        !dir.path().join("audio").exists(),
        "a cancelled job must not store audio"
    );
    assert!(
        streams_removed(&store).await,
        "a cancelled job's stream chunks must be removed"
    );
}

#[tokio::test]
async fn bad_input_is_non_retryable_with_stable_type() {
    let dir = tempfile::tempdir().expect("tmp");
    let (acts, _store) = activities(dir.path());
    let env = ActivityEnvironment::builder()
        .register_activities(acts)
        .build();
    for (inp, kind, needle) in [
        (input("hello", "af_nope"), "UnknownVoice", "af_"),
        (input("", "af_heart"), "InvalidInput", "text"),
    ] {
        match env.run(TtsActivities::synthesize_speech, inp).await {
            Err(ActivityEnvironmentError::Activity(ActivityError::Application(f))) => {
                assert_eq!(f.type_name(), Some(kind));
                assert!(f.is_non_retryable(), "{kind} must not be retried");
                assert!(format!("{f}").contains(needle), "{f}");
            }
            other => panic!("expected {kind}, got {other:?}"),
        }
    }
}
