//! The official MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, run by
//! `deploy/inspector.sh`, installed by `deploy/install-deps.sh`) against `/mcp` in each protocol
//! era it speaks: `legacy` (2025-11-25 `initialize`, declaring the Tasks extension anyway),
//! `auto` and `modern` (2026-07-28, where durable tools become tasks it follows). Durable tools
//! answer with results that validate against their output schemas, errors show the server's
//! message, and the tool list passes `--strict` with no portability error or warning.

use base64::Engine as _;
use serde_json::Value;

use crate::support::{TestSystem, repo_root, wav_facts};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The `{"result": …}` object the CLI prints with `--format json`.
    fn result(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("{\"result\""))
            .unwrap_or_else(|| panic!("no result on stdout\n{self}"));
        let v: Value = serde_json::from_str(line).expect("result is JSON");
        v["result"].clone()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stdout: String = self.stdout.chars().take(2000).collect();
        let stderr: String = self.stderr.chars().take(2000).collect();
        write!(f, "exit {}\nstdout: {stdout}\nstderr: {stderr}", self.code)
    }
}

async fn inspector(url: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(repo_root().join("deploy/inspector.sh"))
        .arg(url)
        .args(["--format", "json"])
        .args(args)
        .output()
        .await
        .expect("run deploy/inspector.sh (Node and npm: deploy/install-deps.sh)");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn call(url: &str, era: &str, tool: &str, args: &[&str]) -> Run {
    let mut all = vec![
        "--protocol-era",
        era,
        "--method",
        "tools/call",
        "--tool-name",
        tool,
    ];
    if !args.is_empty() {
        all.push("--tool-arg");
        all.extend_from_slice(args);
    }
    inspector(url, &all).await
}

/// What the Inspector reports about our schemas while it validates (unknown formats and the
/// like) must be nothing.
fn assert_no_schema_complaints(run: &Run) {
    for needle in [
        "unknown format",
        "must have required property",
        "output schema",
    ] {
        assert!(!run.stderr.contains(needle), "{needle:?} in\n{run}");
        assert!(!run.stdout.contains(needle), "{needle:?} in\n{run}");
    }
}

#[tokio::test]
async fn the_inspector_calls_durable_tools_in_every_protocol_era() {
    let system = TestSystem::start().await;
    let url = system.mcp_url();

    let strict = inspector(&url, &["--method", "tools/list", "--strict"]).await;
    assert_eq!(strict.code, 0, "tools/list --strict\n{strict}");
    assert!(!strict.stderr.contains("Warning"), "{strict}");
    let tools = strict.result();
    assert!(
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "generate_speech")),
        "{tools}"
    );

    for era in ["legacy", "auto", "modern"] {
        let speech = call(
            &url,
            era,
            "generate_speech",
            &["text=Hello from the Inspector."],
        )
        .await;
        assert_eq!(speech.code, 0, "{era}: generate_speech\n{speech}");
        assert_no_schema_complaints(&speech);
        let result = speech.result();
        assert_eq!(result["structuredContent"]["status"], "completed", "{era}");
        let audio = result["content"]
            .as_array()
            .and_then(|c| c.iter().find(|b| b["type"] == "audio"))
            .unwrap_or_else(|| panic!("{era}: no audio block\n{speech}"));
        assert_eq!(audio["mimeType"], "audio/wav");
        let wav = base64::engine::general_purpose::STANDARD
            .decode(audio["data"].as_str().expect("audio data"))
            .expect("base64 audio");
        let (rate, channels, secs) = wav_facts(&wav);
        assert_eq!((rate, channels), (24_000, 1), "{era}");
        assert!((0.5..8.0).contains(&secs), "{era}: {secs} s");

        let job_id = result["structuredContent"]["job_id"]
            .as_str()
            .expect("job_id")
            .to_string();
        let job = call(&url, era, "get_job", &[&format!("job_id={job_id}")]).await;
        assert_eq!(job.code, 0, "{era}: get_job\n{job}");
        assert_no_schema_complaints(&job);
        assert_eq!(job.result()["structuredContent"]["status"], "completed");

        let echo = call(&url, era, "durable_echo", &["message=inspected"]).await;
        assert_eq!(echo.code, 0, "{era}: durable_echo\n{echo}");
        assert_no_schema_complaints(&echo);
        assert_eq!(echo.result()["structuredContent"]["message"], "inspected");

        // The server's message is what the Inspector shows, not a schema complaint about it.
        let bad = call(&url, era, "generate_speech", &["text=hi", "voice_id=nope"]).await;
        assert_ne!(
            bad.code, 0,
            "{era}: an error result fails the CLI call\n{bad}"
        );
        assert_no_schema_complaints(&bad);
        let result = bad.result();
        assert_eq!(result["isError"], true, "{era}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("unknown voice 'nope'") && text.contains("af_heart"),
            "{era}: {text}"
        );
    }

    let voices = call(&url, "legacy", "list_voices", &[]).await;
    assert_eq!(voices.code, 0, "list_voices\n{voices}");
    let listed = voices.result()["structuredContent"]["voices"].clone();
    assert!(
        listed
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["id"] == "af_heart")),
        "{listed}"
    );
}
