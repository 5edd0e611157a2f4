//! The demo home `avb dev` runs when no smart home is configured, so the first run has devices
//! to command: a Zigbee2MQTT **simulator** (not Zigbee hardware) on a private mosquitto
//! (Debian `mosquitto`, installed by deploy/install-deps.sh) and a **simulator** of Home
//! Assistant's REST API, both on loopback. Configured backends are used as they are. The broker
//! is supervised: if it dies it is started again on the same port (the simulator and the
//! workers reconnect), and given up on only after repeated failures.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use avb_config::AvbConfig;
use avb_devices::ha_sim::HaSimulator;
use avb_devices::sim::Simulator;
use avb_runtime::devserver::free_port;
use avb_runtime::supervise::{RestartPolicy, Supervised, supervise};

pub struct DemoHome {
    broker: Option<Supervised>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One line per simulated backend, for the start banner.
    pub lines: Vec<String>,
}

fn mosquitto_program() -> Option<&'static str> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Writes the broker's configuration for a free loopback port: its path and the port.
fn mosquitto_conf(data_dir: &Path) -> anyhow::Result<(std::path::PathBuf, u16)> {
    let port = free_port()?;
    let conf = data_dir.join("demo-mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"),
    )
    .with_context(|| format!("writing {}", conf.display()))?;
    Ok((conf, port))
}

/// Starts the broker with `conf` and waits until it listens on `port`; its output goes to `log`.
async fn start_mosquitto(
    program: &'static str,
    conf: &Path,
    port: u16,
    log: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = tokio::process::Command::new(program)
        .arg("-c")
        .arg(conf)
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "{program} exited at start ({status}); see {}",
                log.display()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{program} did not listen on 127.0.0.1:{port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
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
            let (conf, port) = mosquitto_conf(&config.data_dir)?;
            let log = config.data_dir.join("logs/mosquitto.log");
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let child = start_mosquitto(program, &conf, port, &log).await?;
            let url = format!("mqtt://127.0.0.1:{port}");
            let sim = Simulator::demo(&devices.z2m_base_topic);
            home.tasks.push(sim.connect(&url)?);
            let restart_log = log.clone();
            home.broker = Some(supervise(
                "the demo home's mosquitto",
                child,
                Some(log),
                RestartPolicy::default(),
                move || {
                    let (conf, log) = (conf.clone(), restart_log.clone());
                    async move {
                        start_mosquitto(program, &conf, port, &log)
                            .await
                            .map_err(|e| e.to_string())
                    }
                },
            ));
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
    /// Resolves (naming it and why) if the broker was given up on; never when there is none.
    pub async fn failed(&self) -> String {
        match &self.broker {
            Some(b) => b.failed().await,
            None => std::future::pending().await,
        }
    }

    /// Stops the simulators and the broker.
    pub async fn stop(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(b) = self.broker.take() {
            b.stop().await;
        }
    }
}
