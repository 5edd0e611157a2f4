//! Smart-home commands end to end (issue 7): `smart_home_control` over MCP runs a
//! `DeviceCommand` workflow whose activities on `avb-devices` talk to a real mosquitto where the
//! Zigbee2MQTT-behaving simulator of a demo home answers (a simulator, not Zigbee hardware).

use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::{call, text_of};
use crate::support::mosquitto::Mosquitto;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

#[tokio::test]
async fn a_command_is_confirmed_by_the_devices_and_bad_or_offline_ones_fail_clearly() {
    let broker = Mosquitto::start();
    let sim = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    let url = broker.url();
    let system = TestSystem::start_with(|c| c.devices.mqtt_url = Some(url)).await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");

    // The seed's example: the living room lights to 30 %, warm white.
    let r = call(
        &client,
        "smart_home_control",
        json!({"action": "set_lights", "room": "living_room", "brightness": 30,
               "color": "warm_white"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.clone().expect("structured");
    let devices = out["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 2, "{out}");
    for d in devices {
        assert_eq!(d["state"]["state"], "ON", "{d}");
        assert_eq!(d["state"]["brightness"], 76, "30 % of 254: {d}");
        assert_eq!(d["state"]["color_temp"], 370, "warm white: {d}");
    }

    // Bad commands: refused before anything is sent, naming the field.
    for (args, needle) in [
        (
            json!({"action": "turn_on", "room": "attic"}),
            "room: unknown room \"attic\"",
        ),
        (
            json!({"action": "set_lights", "room": "kitchen", "brightness": 150}),
            "brightness: 150 is out of range; use 0 to 100",
        ),
        (
            json!({"action": "dance", "room": "kitchen"}),
            "action: unknown action \"dance\"",
        ),
    ] {
        let r = call(&client, "smart_home_control", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(text_of(&r).contains(needle), "{args}: {}", text_of(&r));
    }

    // An offline device: a clear failure, at once (not retried).
    rumqttc_publish(
        broker.port,
        "zigbee2mqtt-sim/offline",
        "kitchen/coffee_plug",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = call(
        &client,
        "smart_home_control",
        json!({"action": "turn_on", "device": "kitchen/coffee_plug"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("\"kitchen/coffee_plug\" is offline"),
        "{}",
        text_of(&r)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    client.cancel().await.ok();
    system.stop().await;
    sim.abort();
}

async fn rumqttc_publish(port: u16, topic: &str, payload: &str) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new("avb-test-hand", "127.0.0.1", port), 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = events.poll().await {
            return;
        }
    }
    panic!("no PUBACK");
}
