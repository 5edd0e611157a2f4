//! A minimal legacy HTTP+SSE MCP client transport for tests (rmcp has none): GET the stream,
//! wait for the `endpoint` event, POST client messages there, feed `message` events to rmcp.

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};

pub async fn connect(
    sse_url: &str,
) -> (
    mpsc::Sender<ClientJsonRpcMessage>,
    mpsc::Receiver<ServerJsonRpcMessage>,
) {
    let http = reqwest::Client::new();
    let resp = http
        .get(sse_url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET sse");
    assert!(
        resp.status().is_success(),
        "GET {sse_url} -> {}",
        resp.status()
    );
    let (mut to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(64);
    let (to_server, mut from_client) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let (endpoint_tx, endpoint_rx) = tokio::sync::oneshot::channel::<String>();
    let base = reqwest::Url::parse(sse_url).expect("url");
    tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        let mut endpoint_tx = Some(endpoint_tx);
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let mut name = "message";
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = if v.trim() == "endpoint" {
                            "endpoint"
                        } else {
                            "message"
                        };
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if name == "endpoint" {
                    if let Some(tx) = endpoint_tx.take() {
                        let _ = tx.send(data);
                    }
                } else if !data.is_empty() {
                    let msg: ServerJsonRpcMessage =
                        serde_json::from_str(&data).expect("server message is JSON-RPC");
                    if to_client.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let endpoint = endpoint_rx.await.expect("endpoint event");
    let post_url = base.join(&endpoint).expect("endpoint url");
    tokio::spawn(async move {
        while let Some(msg) = from_client.next().await {
            let r = http
                .post(post_url.clone())
                .json(&msg)
                .send()
                .await
                .expect("POST message");
            assert_eq!(
                r.status().as_u16(),
                202,
                "POST {post_url} -> {}",
                r.status()
            );
        }
    });
    (to_server, from_server)
}
