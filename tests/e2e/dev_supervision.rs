//! `avb dev` as a newcomer runs it, a real process with its own data folder: a taken port or an
//! address answered by something that is not Temporal ends start-up at once with one line naming
//! it and leaves nothing running; the embedded Temporal dev server and the demo home's mosquitto,
//! killed with SIGKILL, are restarted — `/readyz` recovers, a long speech job finishes once
//! with its audio, a device command is confirmed once; a dev server that exits at start while
//! its ports are free is started again.

use std::process::Stdio;
use std::time::{Duration, Instant};

use avb_testkit::free_port;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::core_tasks::Session;
use crate::support::mcp::{call, session, text_of};

/// An `avb dev` of its own: data folder, Temporal ports, api port.
pub(crate) struct Dev {
    pub(crate) data: tempfile::TempDir,
    http: u16,
    pub(crate) temporal: u16,
    ui: u16,
}

impl Dev {
    pub(crate) fn new() -> Self {
        Self {
            // The model and voices linked in, as on a machine that fetched them.
            data: avb_testkit::system::other_host_data_dir(),
            http: free_port(),
            temporal: free_port(),
            ui: free_port(),
        }
    }

    fn command(&self) -> tokio::process::Command {
        self.command_on(self.http)
    }

    /// `avb dev` on this folder, its api on `http`.
    fn command_on(&self, http: u16) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_avb"));
        cmd.args(["dev", "--http", &format!("127.0.0.1:{http}")])
            .envs(self.env())
            .env("AVB_PUBLIC_URL", self.url())
            .env("AVB_AUTH_REQUIRED", "false")
            .env("AVB_BILLING_ENABLED", "false")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// The folder and ports, as every process of this installation is given them.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AVB_DATA_DIR".into(),
                self.data.path().display().to_string(),
            ),
            (
                "AVB_TEMPORAL_ADDRESS".into(),
                format!("127.0.0.1:{}", self.temporal),
            ),
            ("AVB_TEMPORAL_UI_PORT".into(), self.ui.to_string()),
            ("AVB_TTS_THREADS".into(), "1".into()),
            ("AVB_TTS_SESSIONS".into(), "1".into()),
            ("AVB_LOG".into(), "warn".into()),
        ]
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// Starts it and waits for its banner (only printed once the api listens and the workers
    /// poll).
    pub(crate) async fn start(&self) -> tokio::process::Child {
        self.start_with_env(&[]).await
    }

    /// As [`Dev::start`], with `extra` variables in its environment.
    async fn start_with_env(&self, extra: &[(&str, &str)]) -> tokio::process::Child {
        let mut child = self
            .command()
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn avb dev");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .expect("the banner within 120 s")
                .expect("read")
                .expect("avb dev exited before its banner");
            if line.starts_with("AgentVoiceBox is running") {
                break;
            }
        }
        let ready: Value = reqwest::get(format!("{}/readyz", self.url()))
            .await
            .expect("readyz")
            .json()
            .await
            .expect("json");
        assert_eq!(ready["ready"], true, "ready once the banner shows: {ready}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child
    }

    /// Processes that name this data folder on their command line (the dev server's database,
    /// the broker's configuration): none may outlive `avb dev`.
    pub(crate) fn children_left(&self) -> Vec<String> {
        let folder = self.data.path().display().to_string();
        command_lines()
            .into_iter()
            .filter(|(_, cmdline)| cmdline.contains(&folder) && !cmdline.contains(" dev --http"))
            .map(|(pid, cmdline)| format!("{pid}: {cmdline}"))
            .collect()
    }

    /// The pid of the process listening on `port`.
    fn listener_pid(port: u16) -> u32 {
        let holder = avb_runtime::ports::holder_of(port)
            .unwrap_or_else(|| panic!("nothing listens on {port}"));
        holder
            .rsplit("pid ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no pid in {holder:?}"))
    }

    async fn ready_within(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let ready = reqwest::get(format!("{}/readyz", self.url()))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "not ready within {limit:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Every process on this machine with its command line (arguments joined by spaces).
pub(crate) fn command_lines() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// Stops `avb dev` as Ctrl-C does (it stops its children) and waits for it.
pub(crate) async fn stop(mut avb: tokio::process::Child) {
    let pid = avb.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -TERM {pid}");
    let exited = tokio::time::timeout(Duration::from_secs(30), avb.wait())
        .await
        .expect("avb dev stops within 30 s")
        .expect("reaped");
    assert!(exited.success(), "avb dev exited with {exited}");
}

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}");
}

/// Runs `avb dev` to its exit: how long it took, its status and what it printed on stderr.
async fn run_to_exit(dev: &Dev) -> (Duration, std::process::ExitStatus, String) {
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        dev.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("avb dev exits")
    .expect("run avb dev");
    (
        started.elapsed(),
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_taken_port_or_a_foreign_temporal_address_ends_start_up_at_once_with_the_reason() {
    // The api's port is held by another program.
    let dev = Dev::new();
    let held = std::net::TcpListener::bind(("127.0.0.1", dev.http)).expect("hold the port");
    let (took, status, stderr) = run_to_exit(&dev).await;
    assert!(!status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{}", dev.http))
            && stderr.contains(&format!("pid {}", std::process::id()))
            && stderr.contains("--http or AVB_HTTP"),
        "{stderr}"
    );
    assert!(
        !avb_runtime::devserver::reachable(&format!("127.0.0.1:{}", dev.temporal)).await,
        "a Temporal dev server was started"
    );
    assert_eq!(dev.children_left(), Vec::<String>::new());
    drop(held);

    // Something that is not Temporal answers at the Temporal address.
    let dev = Dev::new();
    let impostor = tokio::net::TcpListener::bind(("127.0.0.1", dev.temporal))
        .await
        .expect("bind");
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        while let Ok((mut conn, _)) = impostor.accept().await {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let (took, status, stderr) = run_to_exit(&dev).await;
    assert!(!status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        stderr.contains(&format!(
            "something else listens on 127.0.0.1:{}",
            dev.temporal
        )) && stderr.contains("AVB_TEMPORAL_ADDRESS"),
        "{stderr}"
    );
    assert_eq!(dev.children_left(), Vec::<String>::new());

    // A second avb dev on a data folder in use.
    let dev = Dev::new();
    let first = dev.start().await;
    let mut again = dev.command_on(free_port());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        again.stdout(Stdio::null()).stderr(Stdio::piped()).output(),
    )
    .await
    .expect("exits")
    .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is in use by another avb dev (pid") && stderr.contains("AVB_DATA_DIR"),
        "{stderr}"
    );
    stop(first).await;
    assert_eq!(dev.children_left(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_temporal_dev_server_is_restarted_and_the_running_job_completes_once() {
    let dev = Dev::new();
    let avb = dev.start().await;
    let (mut tasks, _) = Session::open(&format!("{}/mcp", dev.url()), "").await;
    let text =
        "A long story is read while the server under it is killed and comes back. ".repeat(12);
    let created = tasks
        .request(
            "tools/call",
            json!({"name": "generate_speech", "arguments": {"text": text}, "task": {"ttl": 600000}}),
        )
        .await;
    let job = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a task: {created}"))
        .to_string();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old = Dev::listener_pid(dev.temporal);
    kill9(old);
    let back = dev.ready_within(Duration::from_secs(30)).await;
    let new = Dev::listener_pid(dev.temporal);
    assert_ne!(old, new, "the same dev server");
    eprintln!("ready again {back:?} after the kill");

    let deadline = Instant::now() + Duration::from_secs(300);
    let view = loop {
        let view: Value = reqwest::get(format!("{}/api/v2/jobs/{job}", dev.url()))
            .await
            .expect("job")
            .json()
            .await
            .expect("json");
        if !matches!(view["status"].as_str(), Some("running")) {
            break view;
        }
        assert!(Instant::now() < deadline, "job still running: {view}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(view["status"], "completed", "{view}");
    let audio = reqwest::get(format!("{}/api/v2/audio/{job}", dev.url()))
        .await
        .expect("audio");
    assert_eq!(audio.status(), 200);
    let wav = audio.bytes().await.expect("bytes");
    assert!(wav.len() > 24_000 * 2 * 10, "{} bytes", wav.len());
    let jobs: Value = reqwest::get(format!("{}/api/v2/jobs?tool=generate_speech", dev.url()))
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    stop(avb).await;
    assert_eq!(dev.children_left(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_restarted_and_a_device_command_is_confirmed_once() {
    let dev = Dev::new();
    let avb = dev.start().await;
    let conf = std::fs::read_to_string(dev.data.path().join("demo-mosquitto.conf"))
        .expect("the demo broker's configuration");
    let port: u16 = conf
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {conf}"));
    let client = session(format!("{}/mcp", dev.url())).await;
    let command = {
        let url = format!("{}/mcp", dev.url());
        tokio::spawn(async move {
            let client = session(url).await;
            call(
                &client,
                "smart_home_control",
                json!({"action": "turn_on", "device": "kitchen/coffee_plug"}),
            )
            .await
        })
    };
    let old = Dev::listener_pid(port);
    kill9(old);
    let result = command.await.expect("command");
    let text = text_of(&result);
    // Confirmed (sent before the kill, or retried once the broker is back), or a clear failure.
    if result.is_error == Some(true) {
        assert!(text.contains("broker") || text.contains("MQTT"), "{text}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let new = loop {
        if let Some(holder) = avb_runtime::ports::holder_of(port) {
            break holder;
        }
        assert!(Instant::now() < deadline, "the broker did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!new.contains(&format!("pid {old})")), "{new}");
    // The restarted broker serves commands again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = call(
            &client,
            "smart_home_control",
            json!({"action": "turn_off", "device": "kitchen/coffee_plug"}),
        )
        .await;
        if r.is_error != Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text_of(&r));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let state = call(
        &client,
        "get_device_state",
        json!({"device": "kitchen/coffee_plug"}),
    )
    .await;
    assert!(text_of(&state).contains("OFF"), "{}", text_of(&state));
    stop(avb).await;
    assert_eq!(dev.children_left(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_that_exits_at_start_while_its_ports_are_free_is_started_again() {
    use std::os::unix::fs::PermissionsExt as _;
    let dev = Dev::new();
    let real = avb_runtime::devserver::find_temporal_bin().expect("the Temporal CLI");
    // The real CLI behind a wrapper whose first `server start-dev` fails the way a lost race
    // for one of the dev server's own ports does: a Go panic, exit status 2.
    let starts = dev.data.path().join("dev-server-starts");
    let wrapper = dev.data.path().join("temporal-first-start-fails");
    let script = format!(
        r#"#!/bin/sh
if [ "$1 $2" = "server start-dev" ]; then
  echo start >> '{starts}'
  if [ "$(wc -l < '{starts}')" -eq 1 ]; then
    echo 'panic: listen tcp 127.0.0.1:1: bind: address already in use' >&2
    exit 2
  fi
fi
exec '{real}' "$@"
"#,
        starts = starts.display(),
        real = real.display(),
    );
    std::fs::write(&wrapper, script).expect("write the wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let avb = dev
        .start_with_env(&[("AVB_TEMPORAL_BIN", &wrapper.display().to_string())])
        .await;
    let started = std::fs::read_to_string(&starts).expect("the wrapper ran");
    assert_eq!(started.lines().count(), 2, "dev server starts: {started:?}");
    // The failed start's output is kept in the log, before the second start's.
    let log = std::fs::read_to_string(dev.data.path().join("logs/temporal.log")).expect("log");
    assert!(log.contains("panic: listen tcp"), "{log}");
    stop(avb).await;
    assert_eq!(dev.children_left(), Vec::<String>::new());
}
