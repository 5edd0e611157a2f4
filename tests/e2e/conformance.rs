//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, driven by
//! `deploy/conformance.sh`) against the real api: Streamable HTTP on `/mcp`, the real server
//! factory with the suite's fixtures turned on (`mcp.conformance_fixtures`; test builds have
//! the `conformance-fixtures` feature), a real Temporal dev server and workers behind it.
//! Passes when exactly the scenarios in `tests/conformance/expected-failures.txt` fail.

use std::time::Duration;

use crate::support::{TestSystem, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_passes_but_for_listed_failures() {
    let system = TestSystem::start_with(|c| c.mcp.conformance_fixtures = true).await;
    let script = repo_root().join("deploy/conformance.sh");
    // AVB_CACHE_DIR (Node and the suite are installed and cached there) is inherited.
    let run = tokio::process::Command::new(&script)
        .arg(system.mcp_url())
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output();
    // 32 scenarios of a few seconds each, plus a first-time npm install.
    let out = tokio::time::timeout(Duration::from_secs(840), run)
        .await
        .expect("conformance suite finished within 14 min")
        .expect("run deploy/conformance.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "deploy/conformance.sh failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    system.stop().await;
}
