//! Smart-home benchmark (device commands to confirmed state):
//! `cargo run --release -p avb-bench --bin devices -- [--rounds 200]`. Needs `mosquitto` (Debian).
//!
//! Command-to-confirmed-state latency: `smart_home_control` over MCP (Streamable HTTP) — the
//! `DeviceCommand` workflow, planning against the live registry, sending, the device's state
//! message — against `durable_echo` over the same MCP session (the smallest durable job) and a
//! bare MQTT round trip on the same broker to the same simulated device (publish `/set`, wait for
//! the state message that shows it). Two configurations on one dev server: device steps
//! dispatched to `avb-devices` (`AVB_DEVICE_LOCAL_ACTIVITIES=false`) and as local activities on
//! the devices queue (the default). Interleaved rounds alternate the lamp between two brightness
//! levels; p50 and p99 of each, and ratios measured in this run.

use std::time::{Duration, Instant};

use avb_bench::{mcp_client, numeric_flags, summary, tool_call};
use avb_devices::sim::Simulator;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const LAMP: &str = "living_room/floor_lamp";

struct Broker(std::process::Child, std::path::PathBuf);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn start_mosquitto(port: u16) -> Broker {
    let conf = std::env::temp_dir().join(format!("avb-bench-mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"),
    )
    .expect("config");
    let child = std::process::Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto (Debian package; deploy/install-deps.sh)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(child, conf)
}

/// A bare client: publish `/set`, wait for the lamp's state message showing the level.
struct Bare {
    client: AsyncClient,
    states: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Bare {
    async fn connect(port: u16) -> Self {
        let (client, mut events) =
            AsyncClient::new(MqttOptions::new("avb-bench-bare", "127.0.0.1", port), 64);
        events.network_options.set_tcp_nodelay(true);
        client
            .subscribe(format!("zigbee2mqtt/{LAMP}"), QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let (tx, states) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(ev) = events.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev
                    && let Ok(v) = serde_json::from_slice::<Value>(&p.payload)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        Self { client, states }
    }

    async fn round(&mut self, level: u64) -> f64 {
        while self.states.try_recv().is_ok() {}
        let t = Instant::now();
        self.client
            .publish(
                format!("zigbee2mqtt/{LAMP}/set"),
                QoS::AtLeastOnce,
                false,
                json!({"state": "ON", "brightness": level}).to_string(),
            )
            .await
            .expect("publish");
        loop {
            let v = tokio::time::timeout(Duration::from_secs(10), self.states.recv())
                .await
                .expect("a state message")
                .expect("open");
            if v["brightness"] == level {
                return t.elapsed().as_secs_f64() * 1000.0;
            }
        }
    }
}

/// Latencies of one configuration, in milliseconds: (device command, durable_echo, bare MQTT).
type Lanes = (Vec<f64>, Vec<f64>, Vec<f64>);

/// One configuration of the api and workers on the shared dev server and broker: `rounds`
/// interleaved rounds of a device command, a `durable_echo` and a bare MQTT round trip.
async fn phase(
    config: avb_config::AvbConfig,
    client: temporalio_client::Client,
    port: u16,
    rounds: u64,
) -> Lanes {
    let queues = [
        avb_workflows::queues::WORKFLOWS,
        avb_workflows::queues::DEVICES,
    ];
    let lanes = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = lanes.clone();
    avb_bench::with_api_and_workers(config, client, &queues, |mcp_url| async move {
        let mcp = mcp_client(&mcp_url).await;
        let mut bare = Bare::connect(port).await;
        let command = |pct: u64| {
            tool_call(
                "smart_home_control",
                json!({"action": "set_lights", "device": LAMP, "brightness": pct}),
            )
        };
        let echo = || tool_call("durable_echo", json!({"message": "ping"}));
        // Warm-up: workers connect to the broker, the registry arrives, caches fill.
        for pct in [10, 20, 30, 20, 10] {
            let r = mcp.call_tool(command(pct)).await.expect("call");
            assert_ne!(r.is_error, Some(true), "{r:?}");
            let r = mcp.call_tool(echo()).await.expect("echo");
            assert_ne!(r.is_error, Some(true), "{r:?}");
            bare.round(50 + pct).await;
        }
        let (mut devices, mut echoes, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            // 40 % ↔ 60 % (102 ↔ 152 of 254): every round is a real change.
            let pct = if i % 2 == 0 { 40 } else { 60 };
            let t = Instant::now();
            let r = mcp.call_tool(command(pct)).await.expect("call");
            assert_ne!(r.is_error, Some(true), "{r:?}");
            devices.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let r = mcp.call_tool(echo()).await.expect("echo");
            assert_ne!(r.is_error, Some(true), "{r:?}");
            echoes.push(t.elapsed().as_secs_f64() * 1000.0);
            plain.push(bare.round(if i % 2 == 0 { 100 } else { 150 }).await);
        }
        *out.lock().expect("lanes") = Some((devices, echoes, plain));
        mcp.cancel().await.ok();
    })
    .await;
    let taken = lanes.lock().expect("lanes").take();
    taken.expect("the phase ran")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let f = numeric_flags(&[("rounds", 200)]);
    let port = avb_runtime::devserver::free_port().expect("port");
    let _broker = start_mosquitto(port);
    let url = format!("mqtt://127.0.0.1:{port}");
    let sim = Simulator::demo("zigbee2mqtt");
    let sim_task = sim.connect(&url).expect("simulator");

    let data = tempfile::tempdir().expect("tmp");
    let (server, mut config, client) = avb_bench::dev_setup(data.path(), "bench-devices").await;
    config.devices.mqtt_url = Some(url);
    config.rate_limits.enabled = false;
    // The command path alone (billing adds a hold and a settle; see "Billing").
    config.billing.enabled = false;
    config.auth.required = false;
    let rounds = f["rounds"];
    let mut results = Vec::new();
    // Before: the workflow on `avb-workflows`, each step dispatched to `avb-devices`. After: the
    // workflow on `avb-devices`, its steps local activities there.
    for (name, local) in [("dispatched steps", false), ("local activities", true)] {
        let mut config = config.clone();
        config.temporal.device_local_activities = local;
        let lanes = phase(config, client.clone(), port, rounds).await;
        results.push((name, lanes));
    }
    println!("command to confirmed state, {rounds} interleaved rounds per configuration:");
    println!(
        "  {:<18} {:>14} {:>14} {:>14} {:>14} {:>12}",
        "device commands",
        "command p50",
        "command p99",
        "echo p50",
        "bare MQTT p50",
        "command/echo"
    );
    let mut command_p50 = Vec::new();
    for (name, (devices, echoes, plain)) in results {
        let (d50, d99) = summary(devices);
        let (e50, _) = summary(echoes);
        let (b50, _) = summary(plain);
        println!(
            "  {name:<18} {d50:>11.2} ms {d99:>11.2} ms {e50:>11.2} ms {b50:>11.2} ms {:>11.2}x",
            d50 / e50
        );
        command_p50.push(d50);
    }
    println!(
        "  local activities / dispatched steps (command p50): {:.2}x",
        command_p50[1] / command_p50[0]
    );
    server.stop().await;
    sim_task.abort();
}
