//! `avb-zigbee-sim [--mqtt mqtt://127.0.0.1:1883] [--base zigbee2mqtt]`: a simulator (not a
//! Zigbee device) that behaves like Zigbee2MQTT with a demo home of lights, plugs and a
//! thermostat, so AgentVoiceBox has devices to command without hardware. Exits on SIGTERM/Ctrl-C.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let mut url = std::env::var("AVB_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let mut base = "zigbee2mqtt".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--mqtt", Some(v)) => url = v,
            ("--base", Some(v)) => base = v,
            _ => {
                eprintln!("usage: avb-zigbee-sim [--mqtt mqtt://host:1883] [--base zigbee2mqtt]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let task = match avb_devices::sim::run(&url, &base) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("avb-zigbee-sim: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    eprintln!("avb-zigbee-sim: demo home on {url} under {base}/ (a simulator)");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("avb-zigbee-sim: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    task.abort();
    std::process::ExitCode::SUCCESS
}
