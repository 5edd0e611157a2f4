//! Smart-home commands end to end: `smart_home_control` over MCP runs a
//! `DeviceCommand` workflow whose activities on `avb-devices` talk to a real mosquitto where the
//! Zigbee2MQTT-behaving simulator of a demo home answers (a simulator, not Zigbee hardware).

use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::{call, text_of};
use crate::support::mosquitto::Mosquitto;
use avb_devices::ha_sim::HaSimulator;
use avb_devices::sim::Simulator;
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

    let before = available_credits(&client).await;

    // A typical command: the living room lights to 30 %, warm white.
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
    // Billing: the confirmed command cost one credit (the default tariff); the refused and the
    // failed ones nothing.
    assert_eq!(available_credits(&client).await, before - 1);
    client.cancel().await.ok();
    system.stop().await;
    sim.abort();
}

async fn available_credits(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) -> i64 {
    let b = call(client, "get_balance", json!({})).await;
    let b = b.structured_content.clone().expect("structured");
    assert_eq!(b["held"], 0, "nothing stays held: {b}");
    b["available"].as_i64().expect("available")
}

#[tokio::test]
async fn devices_are_listed_and_read_from_both_backends_and_home_assistant_calls_are_confirmed() {
    let broker = Mosquitto::start();
    let sim = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    let ha = HaSimulator::demo("ha-token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ha_url = format!("http://{}", listener.local_addr().expect("addr"));
    let ha_task = ha.clone().serve(listener);
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.devices.mqtt_url = Some(url);
        c.devices.home_assistant.url = Some(ha_url);
        c.devices.home_assistant.token = Some("ha-token".into());
        // A device whose name does not say its room.
        c.devices
            .rooms
            .insert("kitchen/coffee_plug".into(), "office".into());
    })
    .await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");

    // Both backends in one list; a room narrows it to Zigbee2MQTT devices there.
    let r = call(&client, "list_devices", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.clone().expect("structured");
    let names: Vec<&str> = out["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    for want in [
        "living_room/ceiling",
        "hallway/thermostat",
        "light.porch",
        "climate.hallway",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let in_room = |r: rmcp::model::CallToolResult| -> Vec<String> {
        r.structured_content.expect("structured")["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect()
    };
    let r = call(&client, "list_devices", json!({"room": "kitchen"})).await;
    assert_eq!(in_room(r), ["kitchen/ceiling"]);
    let r = call(&client, "list_devices", json!({"room": "office"})).await;
    assert_eq!(
        in_room(r),
        ["kitchen/coffee_plug"],
        "devices.rooms places it"
    );
    let r = call(
        &client,
        "smart_home_control",
        json!({"action": "turn_on", "room": "office"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));

    // States, asked from the device or Home Assistant.
    let r = call(
        &client,
        "get_device_state",
        json!({"device": "hallway/thermostat"}),
    )
    .await;
    let out = r.structured_content.clone().expect("structured");
    assert_eq!(out["state"]["occupied_heating_setpoint"], 20.0, "{out}");
    let r = call(
        &client,
        "get_device_state",
        json!({"device": "light.porch"}),
    )
    .await;
    assert_eq!(r.structured_content.expect("s")["state"]["state"], "off");
    let r = call(
        &client,
        "get_device_state",
        json!({"device": "garage/door"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("unknown device \"garage/door\""),
        "{}",
        text_of(&r)
    );

    // A service call, confirmed by the entity's new state; a 500 first is retried, and the
    // call is applied once.
    ha.fail_next(2);
    let r = call(
        &client,
        "call_service",
        json!({"domain": "light", "service": "turn_on", "entity_id": "light.porch",
               "data": {"brightness_pct": 40}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.clone().expect("structured");
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["devices"][0]["state"]["state"], "on", "{out}");
    assert_eq!(
        out["devices"][0]["state"]["attributes"]["brightness"], 102,
        "{out}"
    );
    assert_eq!(ha.calls().len(), 1, "{:?}", ha.calls());

    // Home Assistant refuses → not retried, its message shown; bad shapes never reach it.
    let started = Instant::now();
    let r = call(
        &client,
        "call_service",
        json!({"domain": "light", "service": "explode", "entity_id": "light.porch"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let text = text_of(&r);
    assert!(
        text.contains("HomeAssistantRefused") && text.contains("Service light.explode not found."),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    for (args, needle) in [
        (
            json!({"domain": "light", "service": "turn_on", "entity_id": "light.attic"}),
            "entity_id: Home Assistant has no entity \"light.attic\"",
        ),
        (
            json!({"domain": "light", "service": "turn_on", "entity_id": "porch"}),
            "entity_id: \"porch\" is not an entity id",
        ),
    ] {
        let r = call(&client, "call_service", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(text_of(&r).contains(needle), "{args}: {}", text_of(&r));
    }
    assert_eq!(ha.calls().len(), 1, "refused calls changed nothing");

    // The same over REST.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v2/devices/services", system.base_url))
        .json(
            &json!({"domain": "switch", "service": "turn_on", "entity_id": "switch.coffee_maker"}),
        )
        .send()
        .await
        .expect("REST call");
    assert_eq!(resp.status().as_u16(), 200);
    let out: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(out["devices"][0]["state"]["state"], "on", "{out}");
    let resp = http
        .get(format!("{}/api/v2/devices?room=bedroom", system.base_url))
        .send()
        .await
        .expect("REST list");
    let out: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(out["devices"][0]["name"], "bedroom/bedside", "{out}");

    client.cancel().await.ok();
    system.stop().await;
    sim.abort();
    ha_task.abort();
}

#[tokio::test]
async fn a_wrong_home_assistant_token_is_refused_with_a_hint_and_not_retried() {
    let ha = HaSimulator::demo("right-token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ha_url = format!("http://{}", listener.local_addr().expect("addr"));
    let ha_task = ha.clone().serve(listener);
    let system = TestSystem::start_with(|c| {
        c.devices.home_assistant.url = Some(ha_url);
        c.devices.home_assistant.token = Some("wrong-token".into());
    })
    .await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    let r = call(
        &client,
        "call_service",
        json!({"domain": "light", "service": "turn_on", "entity_id": "light.porch"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("AVB_HA_TOKEN"), "{}", text_of(&r));
    // Without Zigbee2MQTT configured, its tool says so.
    let r = call(
        &client,
        "smart_home_control",
        json!({"action": "turn_on", "room": "kitchen"}),
    )
    .await;
    assert!(text_of(&r).contains("devices.mqtt_url"), "{}", text_of(&r));
    client.cancel().await.ok();
    system.stop().await;
    ha_task.abort();
}

#[tokio::test]
async fn a_broker_restart_mid_command_applies_the_command_exactly_once() {
    let mut broker = Mosquitto::start();
    let sim = Simulator::demo("zigbee2mqtt");
    // The lamp answers slowly, so the broker goes down between its change and its report.
    sim.set_reply_delay(Duration::from_millis(1500));
    let sim_task = sim.connect(&broker.url()).expect("simulator");
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.devices.mqtt_url = Some(url);
        c.devices.confirm_secs = 4;
    })
    .await;
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    // Connect the worker to the home first (its registry), then command.
    let r = call(&client, "list_devices", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    const LAMP: &str = "living_room/floor_lamp";
    let command = tokio::spawn(async move {
        let r = call(
            &client,
            "smart_home_control",
            json!({"action": "set_lights", "device": LAMP, "brightness": 80}),
        )
        .await;
        client.cancel().await.ok();
        r
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.sets_received(LAMP) == 0 {
        assert!(
            Instant::now() < deadline,
            "the command never reached the lamp"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.start_again();
    let r = tokio::time::timeout(Duration::from_secs(90), command)
        .await
        .expect("the command finishes")
        .expect("task");
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.expect("structured");
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(
        out["devices"][0]["state"]["brightness"], 203,
        "80 % of 254: {out}"
    );
    assert_eq!(sim.sets_received(LAMP), 1, "applied exactly once");
    system.stop().await;
    sim_task.abort();
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
