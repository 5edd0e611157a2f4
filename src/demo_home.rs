//! The demo home `avb dev` runs when no smart home is configured, so the first run has devices
//! to command: a Zigbee2MQTT **simulator** (not Zigbee hardware) on a private mosquitto
//! (Debian `mosquitto`, installed by deploy/install-deps.sh) and a **simulator** of Home
//! Assistant's REST API, both on loopback. Configured backends are used as they are.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use avb_config::AvbConfig;
use avb_devices::ha_sim::HaSimulator;
use avb_devices::sim::Simulator;
use avb_runtime::devserver::free_port;

pub struct DemoHome {
    broker: Option<tokio::process::Child>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One line per simulated backend, for the start banner.
    pub lines: Vec<String>,
}

fn mosquitto_program() -> Option<&'static str> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

async fn start_mosquitto(
    data_dir: &Path,
    program: &str,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let port = free_port()?;
    let conf = data_dir.join("demo-mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"),
    )
    .with_context(|| format!("writing {}", conf.display()))?;
    let child = tokio::process::Command::new(program)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{program} did not listen on 127.0.0.1:{port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((child, format!("mqtt://127.0.0.1:{port}")))
}

/// Starts the simulators for the backends `config` leaves unset and points `config` at them.
pub async fn start(config: &mut AvbConfig) -> anyhow::Result<DemoHome> {
    let mut home = DemoHome {
        broker: None,
        tasks: Vec::new(),
        lines: Vec::new(),
    };
    let devices = &mut config.devices;
    match (&devices.mqtt_url, mosquitto_program()) {
        (Some(url), _) => home.lines.push(format!("Zigbee2MQTT at {url}")),
        (None, None) => home.lines.push(
            "no Zigbee2MQTT (set devices.mqtt_url, or install mosquitto for the demo home)".into(),
        ),
        (None, Some(program)) => {
            let (child, url) = start_mosquitto(&config.data_dir, program).await?;
            let sim = Simulator::demo(&devices.z2m_base_topic);
            home.tasks.push(sim.connect(&url)?);
            home.broker = Some(child);
            home.lines.push(format!(
                "demo home: simulated Zigbee2MQTT (7 devices, 4 rooms) on mosquitto {url}"
            ));
            devices.mqtt_url = Some(url);
        }
    }
    let ha = &mut devices.home_assistant;
    match &ha.url {
        Some(url) => home.lines.push(format!("Home Assistant at {url}")),
        None => {
            let token = uuid::Uuid::new_v4().simple().to_string();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            home.tasks.push(HaSimulator::demo(&token).serve(listener));
            home.lines.push(format!(
                "demo home: simulated Home Assistant REST API at {url}"
            ));
            ha.url = Some(url);
            ha.token = Some(token.into());
        }
    }
    Ok(home)
}

impl DemoHome {
    pub async fn stop(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(mut b) = self.broker.take() {
            let _ = b.kill().await;
        }
    }
}
