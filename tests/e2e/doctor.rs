//! `avb doctor` against a running system: every check passes and one real `generate_speech`
//! comes back as a WAV; with a dead database and broker the exit status is non-zero and the
//! failures are named, without printing the database password.

use crate::support::TestSystem;
use serde_json::Value;

async fn doctor(system: &TestSystem, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new(avb_testkit::system::avb_bin())
        .arg("doctor")
        .args(args)
        .envs(system.child_env())
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("avb doctor runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn doctor_passes_on_a_healthy_system_and_runs_real_speech() {
    let system = TestSystem::start().await;
    let (success, out) = doctor(&system, &["--json"], &[]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(success, "{report:#}");
    assert_eq!(report["ok"], true);
    for name in [
        "temporal",
        "temporal.namespace",
        "temporal.search_attributes",
        "workers:avb-workflows",
        "workers:avb-tts",
        "database",
        "artifacts",
        "tts.assets",
        "tts.espeak",
        "speech",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    let speech = check(&report, "speech")["detail"].as_str().expect("detail");
    assert!(
        speech.contains("s of audio") && speech.contains("job job_"),
        "{speech}"
    );
    assert_eq!(check(&report, "devices.mqtt")["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn doctor_names_what_is_down_and_exits_non_zero() {
    let system = TestSystem::start().await;
    let dead = avb_testkit::free_port();
    let database = format!("postgres://avb:hunter2@127.0.0.1:{dead}/avb");
    let broker = format!("mqtt://127.0.0.1:{dead}");
    let (success, out) = doctor(
        &system,
        &["--no-speech"],
        &[("DATABASE_URL", &database), ("AVB_MQTT_URL", &broker)],
    )
    .await;
    assert!(!success, "{out}");
    let last = out.lines().last().expect("a summary");
    assert!(last.starts_with("failed: "), "{out}");
    for name in ["database", "artifacts", "devices.mqtt"] {
        assert!(last.contains(name), "{name} not named: {out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("FAILED")
            && l.contains("database")
            && l.contains("DATABASE_URL")),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "the password was printed: {out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok") && l.contains("temporal")),
        "{out}"
    );
}
