//! The Zigbee2MQTT backend against a real mosquitto and the demo-home simulator (a simulator of
//! Zigbee2MQTT, not a device): registry, a command confirmed by the device's state, an offline
//! device failing at once, a broker restart survived, bad commands refused before anything is
//! sent.

use std::time::{Duration, Instant};

use avb_devices::DeviceError;
use avb_devices::command::{ControlInput, plan};
use avb_devices::model::DeviceKind;
use avb_devices::z2m::Zigbee2Mqtt;
use avb_testkit::mosquitto::Mosquitto;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(4);

fn input(action: &str) -> ControlInput {
    ControlInput {
        action: action.into(),
        room: None,
        device: None,
        brightness: None,
        color: None,
        color_temp: None,
        temperature: None,
    }
}

/// Publishes one message with a throwaway client (as a test's hand on the broker).
async fn publish(port: u16, topic: &str, payload: &str) {
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new("avb-test-hand", "127.0.0.1", port), 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = events.poll().await {
            return;
        }
    }
    panic!("no PUBACK for {topic}");
}

#[tokio::test]
async fn commands_are_confirmed_by_state_and_offline_devices_fail_at_once() {
    let broker = Mosquitto::start();
    let sim = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    let home = Zigbee2Mqtt::connect(&broker.url(), "zigbee2mqtt", Duration::from_secs(10))
        .await
        .expect("device list");
    let devices = home.devices();
    assert_eq!(devices.len(), 7, "{devices:?}");
    let ceiling = devices
        .iter()
        .find(|d| d.name == "living_room/ceiling")
        .expect("ceiling");
    assert_eq!(
        (
            ceiling.room.as_str(),
            ceiling.kind,
            ceiling.dimmable,
            ceiling.color_xy
        ),
        ("living_room", DeviceKind::Light, true, true)
    );
    assert_eq!(ceiling.color_temp, Some((153, 500)));

    // A typical command: living room lights to 30 %, warm white.
    let mut cmd = input("set_lights");
    cmd.room = Some("living_room".into());
    cmd.brightness = Some(30);
    cmd.color = Some("warm_white".into());
    let p = plan(&cmd, &devices).expect("plan");
    assert_eq!(p.sets.len(), 2, "two lights in the living room: {p:?}");
    for (name, set) in &p.sets {
        let state = home.command(name, set, WAIT).await.expect("confirmed");
        assert_eq!(state["state"], "ON", "{name}: {state}");
        assert_eq!(state["brightness"], 76, "30 % of 254: {state}");
        assert_eq!(state["color_temp"], 370, "{state}");
    }
    let state = home
        .state("living_room/floor_lamp", WAIT)
        .await
        .expect("state");
    assert_eq!(state["brightness"], 76);

    // A device out of range: Zigbee2MQTT says offline; the command fails at once, not retried.
    publish(
        broker.port,
        "zigbee2mqtt-sim/offline",
        "kitchen/coffee_plug",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while home.online("kitchen/coffee_plug") != Some(false) {
        assert!(Instant::now() < deadline, "availability never went offline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let e = home
        .command("kitchen/coffee_plug", &json!({"state": "ON"}), WAIT)
        .await
        .expect_err("offline");
    assert!(matches!(e, DeviceError::Offline(_)), "{e}");
    assert!(!e.is_retryable());
    assert!(
        e.to_string().contains("kitchen/coffee_plug is offline")
            || e.to_string().contains("\"kitchen/coffee_plug\" is offline"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    sim.abort();
}

#[tokio::test]
async fn a_broker_restart_is_survived() {
    let mut broker = Mosquitto::start();
    let sim = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    let home = Zigbee2Mqtt::connect(&broker.url(), "zigbee2mqtt", Duration::from_secs(10))
        .await
        .expect("device list");
    broker.stop();
    let e = home
        .command(
            "kitchen/ceiling",
            &json!({"state": "ON"}),
            Duration::from_secs(1),
        )
        .await
        .expect_err("no broker");
    assert!(e.is_retryable(), "{e}");
    broker.start_again();
    // Both sides reconnect and subscribe again; the command then goes through.
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        match home
            .command(
                "kitchen/ceiling",
                &json!({"state": "ON", "brightness": 200}),
                WAIT,
            )
            .await
        {
            Ok(s) => break s,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("not back after the restart: {e}"),
        }
    };
    assert_eq!(state["brightness"], 200);
    sim.abort();
}

#[test]
fn bad_commands_name_the_field_and_plan_nothing() {
    let devices: Vec<_> = avb_devices::sim::Simulator::demo("zigbee2mqtt")
        .bridge_devices_for_tests()
        .iter()
        .filter_map(avb_devices::model::Device::from_bridge)
        .collect();
    let cases: Vec<(ControlInput, &str, &str)> = vec![
        (
            ControlInput {
                room: Some("attic".into()),
                ..input("turn_on")
            },
            "room",
            "unknown room \"attic\"; rooms: bedroom, hallway, kitchen, living_room",
        ),
        (
            ControlInput {
                device: Some("garage/door".into()),
                ..input("turn_on")
            },
            "device",
            "unknown device \"garage/door\"",
        ),
        (
            ControlInput {
                room: Some("kitchen".into()),
                brightness: Some(150),
                ..input("set_lights")
            },
            "brightness",
            "150 is out of range; use 0 to 100",
        ),
        (
            ControlInput {
                room: Some("kitchen".into()),
                ..input("dance")
            },
            "action",
            "unknown action \"dance\"; use one of set_lights, turn_on, turn_off, set_temperature",
        ),
        (
            ControlInput {
                room: Some("kitchen".into()),
                color: Some("chartreuse".into()),
                ..input("set_lights")
            },
            "color",
            "unknown colour \"chartreuse\"",
        ),
        (
            ControlInput {
                room: Some("hallway".into()),
                temperature: Some(45.0),
                ..input("set_temperature")
            },
            "temperature",
            "45 °C is out of range; use 5 to 30",
        ),
        (
            ControlInput {
                room: Some("hallway".into()),
                ..input("set_lights")
            },
            "room",
            "no light there for set_lights",
        ),
    ];
    for (cmd, field, needle) in cases {
        let e = plan(&cmd, &devices).expect_err("refused");
        assert_eq!(e.field, field, "{cmd:?}: {e}");
        assert!(e.message.contains(needle), "{cmd:?}: {e}");
    }
}
