//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, driven by
//! `deploy/conformance.sh`) against the real api: Streamable HTTP on `/mcp`, the real server
//! factory with the suite's fixtures turned on (`mcp.conformance_fixtures`; test builds have
//! the `conformance-fixtures` feature), a real Temporal dev server and workers behind it.
//! Two versions of the suite: the pinned one (the 2026-07-28 set, the Tasks extension and the
//! multi round-trip scenarios) and 0.1.16 (the 2025-11-25 set). Each passes when exactly the
//! scenarios in `tests/conformance/expected-failures.txt` fail.

use std::time::Duration;

use crate::support::{TestSystem, repo_root};

/// Runs `deploy/conformance.sh` against `url`; `version`: another version of the suite.
async fn run_suite(url: &str, version: Option<&str>) {
    let script = repo_root().join("deploy/conformance.sh");
    // AVB_CACHE_DIR (Node and the suite are installed and cached there) is inherited.
    let mut command = tokio::process::Command::new(&script);
    command.arg(url).current_dir(repo_root()).kill_on_drop(true);
    match version {
        Some(v) => command.env("AVB_CONFORMANCE_VERSION", v),
        None => command.env_remove("AVB_CONFORMANCE_VERSION"),
    };
    // 65 scenarios of a few seconds each at most, plus a first-time npm install.
    let out = tokio::time::timeout(Duration::from_secs(840), command.output())
        .await
        .expect("conformance suite finished within 14 min")
        .expect("run deploy/conformance.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "deploy/conformance.sh ({}) failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        version.unwrap_or("pinned version"),
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_passes_but_for_listed_failures() {
    let system = TestSystem::start_with(|c| c.mcp.conformance_fixtures = true).await;
    run_suite(&system.mcp_url(), None).await;
    run_suite(&system.mcp_url(), Some("0.1.16")).await;
    system.stop().await;
}
