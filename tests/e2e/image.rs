//! `avb image build` makes a runnable image without a registry (a private dockerd of the test):
//! `avb --version` runs in it, and `avb doctor` inside it — with the Kokoro assets baked in —
//! finds the test system's Temporal, database and api, checks the assets and espeak-ng of the
//! image, and gets real speech back.

use std::process::Output;

use crate::support::TestSystem;
use crate::support::dockerd::TestDockerd;
use serde_json::Value;

fn docker(daemon: &TestDockerd, args: &[&str]) -> Output {
    std::process::Command::new("docker")
        .args(["-H", &daemon.host()])
        .args(args)
        .output()
        .expect("the docker CLI runs (Debian docker.io)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_avb_image_runs_its_own_doctor_against_the_system() {
    let daemon = TestDockerd::start();
    let system = TestSystem::start().await;
    let data = system.data_dir.path().display().to_string();
    let built = tokio::process::Command::new(avb_testkit::system::avb_bin())
        .args(["image", "build", "--tag", "avb:test", "--with-assets"])
        .envs(system.child_env())
        .env("AVB_DOCKER_HOST", daemon.host())
        .output()
        .await
        .expect("avb image build runs");
    assert!(built.status.success(), "{}", text(&built));
    assert!(text(&built).contains("built avb:test"), "{}", text(&built));

    let version = docker(&daemon, &["run", "--rm", "avb:test", "--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert!(
        text(&version).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&version)
    );

    // The system's database file is mounted; everything else is reached over loopback.
    let mount = format!("{data}:/mnt/system");
    let env = |k: &str, v: &str| format!("{k}={v}");
    let doctor = docker(
        &daemon,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "--user",
            "65534:65534",
            "-v",
            &mount,
            "-e",
            &env("AVB_TEMPORAL_ADDRESS", &system.config.temporal.address),
            "-e",
            &env("AVB_PUBLIC_URL", &system.base_url),
            "-e",
            &env("DATABASE_URL", "sqlite:///mnt/system/avb.db"),
            "avb:test",
            "doctor",
            "--json",
        ],
    );
    let out = String::from_utf8_lossy(&doctor.stdout).into_owned();
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {}", text(&doctor)));
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
    };
    for name in [
        "temporal",
        "database",
        "artifacts",
        "tts.assets",
        "tts.espeak",
        "speech",
    ] {
        assert_eq!(status(name), "ok", "{name}: {report:#}");
    }
    assert!(doctor.status.success(), "{report:#}");
}
