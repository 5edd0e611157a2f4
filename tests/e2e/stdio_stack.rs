//! `avb mcp --transport stdio` from an IDE's MCP config alone: the official Python SDK client
//! (tests/python/stdio_session.py) spawns it with the data folder and its ports set, nothing
//! else running and no API key. The first process starts the folder's stack (Temporal dev
//! server, workers, demo home), acts for the folder's local AGENT key, and everything stops once
//! the last client has exited; two clients at once share one stack; with `avb dev` running on
//! the folder, a client starts nothing and its jobs are `avb dev`'s.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dev_supervision::{Dev, command_lines, stop};
use crate::python_sdk_client::python;
use crate::support::repo_root;

/// One stdio session of the Python SDK with `env`, holding `hold` seconds before it speaks.
async fn session(env: &[(String, String)], hold: f64) -> Value {
    let out = tokio::process::Command::new(python())
        .arg(repo_root().join("tests/python/stdio_session.py"))
        .args([
            "--command",
            env!("CARGO_BIN_EXE_avb"),
            "--hold",
            &hold.to_string(),
        ])
        .args(["--", "mcp", "--transport", "stdio"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run the stdio session");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdio session failed\n{stderr}");
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["audio_bytes"].as_u64().unwrap_or(0) > 24_000,
        "{result}"
    );
    result
}

/// Temporal dev servers of the data folder `data` (their database is in it).
fn dev_servers(data: &std::path::Path) -> usize {
    let db = data.join("temporal.db").display().to_string();
    command_lines()
        .iter()
        .filter(|(_, cmdline)| cmdline.contains(&db))
        .count()
}

/// Processes whose environment names this data folder (the stack and its children), other
/// than `except`.
fn stack_processes(dev: &Dev, except: Option<u32>) -> Vec<String> {
    let needle = format!("AVB_DATA_DIR={}", dev.data.path().display());
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(p.path().join("environ")).ok()?;
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            (Some(pid) != except && environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .then(|| {
                    format!(
                        "{pid}: {}",
                        String::from_utf8_lossy(&cmdline).replace('\0', " ")
                    )
                })
        })
        .collect()
}

/// Waits until nothing of the stack is left (it stops a moment after its last client).
async fn stack_gone(dev: &Dev) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = [stack_processes(dev, None), dev.children_left()].concat();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_clients_start_share_and_stop_the_folders_stack() {
    // Nothing running: the client starts the stack, speaks as the local AGENT key, and the
    // stack stops when it leaves.
    let dev = Dev::new();
    let env = dev.env();
    let first = session(&env, 0.0).await;
    assert!(first["tools"].as_u64().unwrap_or(0) >= 10, "{first}");
    assert!(
        dev.data.path().join("dev-keys.json").exists(),
        "the stack made the folder's keys"
    );
    for log in ["logs/mcp-stdio.log", "logs/stack.log"] {
        assert!(dev.data.path().join(log).exists(), "{log}");
    }
    stack_gone(&dev).await;

    // Two at once: one dev server; the first to leave does not end the second's stack.
    let watching = {
        let counts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sampled, path) = (counts.clone(), dev.data.path().to_path_buf());
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            while !stopped.is_cancelled() {
                sampled.lock().expect("samples").push(dev_servers(&path));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        (counts, stop, task)
    };
    let (short, long) = tokio::join!(session(&env, 0.0), session(&env, 10.0));
    assert_ne!(short["job_id"], long["job_id"]);
    let (counts, stop_watching, task) = watching;
    stop_watching.cancel();
    task.await.expect("sampler");
    let most = counts.lock().expect("samples").iter().copied().max();
    assert_eq!(most, Some(1), "dev servers seen at once");
    stack_gone(&dev).await;

    // With avb dev running on the folder: the client starts nothing, and its job is avb dev's.
    let avb = dev.start().await;
    let mut env = dev.env();
    env.push(("AVB_AUTH_REQUIRED".into(), "false".into()));
    env.push(("AVB_BILLING_ENABLED".into(), "false".into()));
    let spoken = session(&env, 0.0).await;
    assert_eq!(
        dev_servers(dev.data.path()),
        1,
        "the client started a dev server"
    );
    let job = spoken["job_id"].as_str().expect("job id");
    let view: Value = reqwest::get(format!("{}/api/v2/jobs/{job}", dev.url()))
        .await
        .expect("job")
        .json()
        .await
        .expect("json");
    assert_eq!(view["status"], "completed", "{view}");
    let avb_pid = avb.id();
    stop(avb).await;
    assert_eq!(stack_processes(&dev, avb_pid), Vec::<String>::new());
}
