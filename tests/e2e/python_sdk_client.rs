//! A second, independent client: the official Python MCP SDK (`pip install mcp`, installed by
//! deploy/install-deps.sh) over stdio, legacy SSE and Streamable HTTP.

use std::path::PathBuf;

use crate::support::{TestSystem, repo_root};

fn python() -> PathBuf {
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
