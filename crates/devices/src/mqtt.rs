//! One MQTT connection (rumqttc) that survives broker restarts: the event loop runs in its own
//! task, reconnects by polling on (with a short pause after an error), subscribes again on
//! every `CONNACK` (clean sessions) and hands each incoming publish to a handler.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::DeviceError;

/// `mqtt://host:port` (port 1883 when absent) → (host, port).
pub fn parse_url(url: &str) -> Result<(String, u16), DeviceError> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| {
            DeviceError::Config(format!("MQTT URL {url:?} must look like mqtt://host:1883"))
        })?;
    let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse()
                .map_err(|_| DeviceError::Config(format!("MQTT URL {url:?}: bad port {p:?}")))?,
        ),
        None => (rest.trim_end_matches('/').to_string(), 1883),
    };
    if host.is_empty() {
        return Err(DeviceError::Config(format!("MQTT URL {url:?} has no host")));
    }
    Ok((host, port))
}

/// What the connection calls: `on_connect` after every (re)connection, `on_publish` for each
/// message (topic, payload).
pub trait Handler: Send + Sync + 'static {
    fn on_connect(&self, client: &AsyncClient) -> impl Future<Output = ()> + Send;
    fn on_publish(
        &self,
        client: &AsyncClient,
        topic: &str,
        payload: &[u8],
    ) -> impl Future<Output = ()> + Send;
}

/// Connects (in the background) and runs `handler` until the returned client's task is aborted.
pub fn connect<H: Handler>(
    url: &str,
    client_id: &str,
    subscriptions: Vec<String>,
    handler: Arc<H>,
) -> Result<(AsyncClient, tokio::task::JoinHandle<()>), DeviceError> {
    let (host, port) = parse_url(url)?;
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 256);
    // Small messages, one at a time: Nagle's algorithm would hold each for a delayed ACK.
    events.network_options.set_tcp_nodelay(true);
    let task_client = client.clone();
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for topic in &subscriptions {
                        if let Err(e) = task_client.subscribe(topic, QoS::AtLeastOnce).await {
                            tracing::warn!(%topic, error = %e, "mqtt subscribe");
                        }
                    }
                    handler.on_connect(&task_client).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    handler.on_publish(&task_client, &p.topic, &p.payload).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "mqtt connection lost; reconnecting");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    });
    Ok((client, task))
}

/// Connects once and waits for the broker's CONNACK within `timeout`, then disconnects: whether
/// a broker answers at `url` (`avb doctor`).
pub async fn check_broker(url: &str, timeout: Duration) -> Result<(), DeviceError> {
    let (host, port) = parse_url(url)?;
    let mut options = MqttOptions::new(
        format!("avb-check-{}", std::process::id()),
        host.clone(),
        port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, 8);
    let connected = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    return Err(DeviceError::Unavailable(format!(
                        "MQTT broker {host}:{port}: {e}"
                    )));
                }
            }
        }
    };
    let outcome = tokio::time::timeout(timeout, connected)
        .await
        .unwrap_or_else(|_| {
            Err(DeviceError::Unavailable(format!(
                "MQTT broker {host}:{port} did not answer within {timeout:?}"
            )))
        });
    let _ = client.try_disconnect();
    outcome
}
