//! The operator-facing edges: `avb speak` and the asset fetch script's verification.

use crate::support;
use std::process::Command;

use crate::support::{assets_dir, repo_root};

#[test]
fn speak_writes_a_wav_and_fails_with_a_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink(assets_dir(), data.join("assets")).expect("link");
    let out = dir.path().join("hello.wav");
    let ok = Command::new(env!("CARGO_BIN_EXE_avb"))
        .args([
            "speak",
            "Hello from the command line.",
            "--voice",
            "bf_emma",
            "--threads",
            "1",
            "--sessions",
            "1",
            "--out",
        ])
        .arg(&out)
        .env("AVB_DATA_DIR", &data)
        .output()
        .expect("run avb speak");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (rate, channels, secs) = support::wav_facts(&std::fs::read(&out).expect("wav written"));
    assert_eq!((rate, channels), (24_000, 1));
    assert!((1.0..6.0).contains(&secs), "{secs}");

    let bad = Command::new(env!("CARGO_BIN_EXE_avb"))
        .args(["speak", "Hello.", "--voice", "bf_emmma", "--out"])
        .arg(dir.path().join("x.wav"))
        .env("AVB_DATA_DIR", &data)
        .output()
        .expect("run avb speak");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown voice 'bf_emmma'") && err.contains("bf_emma"),
        "{err}"
    );
    assert!(!dir.path().join("x.wav").exists(), "no file on failure");
}

#[test]
fn fetch_script_names_missing_and_corrupt_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(assets.join("voices")).expect("mkdir");
    std::fs::write(assets.join("vocab.json"), b"{}").expect("write");
    let out = Command::new("python3")
        .arg(repo_root().join("deploy/fetch_assets.py"))
        .args(["--check", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run fetch_assets.py");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt (sha256 mismatch)") && err.contains("vocab.json"),
        "{err}"
    );
    assert!(
        err.contains("missing") && err.contains("kokoro-v1.0.int8.onnx"),
        "{err}"
    );
    assert!(
        err.contains("run `python3 deploy/fetch_assets.py`"),
        "{err}"
    );
    // And the real data directory verifies clean.
    let ok = Command::new("python3")
        .arg(repo_root().join("deploy/fetch_assets.py"))
        .args(["--check", "--data-dir"])
        .arg(assets_dir().parent().expect("data dir"))
        .output()
        .expect("run fetch_assets.py");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
