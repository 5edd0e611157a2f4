//! A minimal MCP client over Streamable HTTP (JSON-RPC POSTs; answers as JSON or as an SSE
//! stream): enough to tell that a replica speaks MCP (`wait_until_mcp_ready`) and to call it in
//! tests (`McpClient`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backend::ContainerBackend;
use crate::error::ProvisionError;
use crate::spec::{ReplicaHandle, ReplicaState, replica_name};

/// The protocol version the probe asks for (the server may answer with another it supports).
pub const PROBE_PROTOCOL_VERSION: &str = "2025-06-18";

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// An initialized MCP session with one server.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    protocol_version: String,
    next_id: u64,
    /// The server's `initialize` result.
    pub initialize_result: Value,
}

impl McpClient {
    /// `initialize` + `notifications/initialized`; each request times out after `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, ProvisionError> {
        let http = avb_tls::client_builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| mcp_error(url, "initialize", e.to_string()))?;
        let mut client = McpClient {
            http,
            url: url.to_string(),
            session: None,
            protocol_version: PROBE_PROTOCOL_VERSION.to_string(),
            next_id: 1,
            initialize_result: Value::Null,
        };
        let params = json!({
            "protocolVersion": PROBE_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "avb-provisioning-probe", "version": env!("CARGO_PKG_VERSION")},
        });
        let (result, session) = client.request_raw("initialize", params).await?;
        if let Some(version) = result.get("protocolVersion").and_then(Value::as_str) {
            client.protocol_version = version.to_string();
        }
        client.session = session;
        client.initialize_result = result;
        client.notify("notifications/initialized").await?;
        Ok(client)
    }

    /// The server's name from `initialize` (`serverInfo.name`).
    pub fn server_name(&self) -> Option<&str> {
        self.initialize_result
            .pointer("/serverInfo/name")
            .and_then(Value::as_str)
    }

    /// `tools/list`: the tool descriptions.
    pub async fn list_tools(&mut self) -> Result<Vec<Value>, ProvisionError> {
        let result = self.request("tools/list", json!({})).await?;
        Ok(result
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `tools/call`: the whole result (`content`, `isError`, ...).
    pub async fn call_tool(
        &mut self,
        name: &str,
        arguments: Value,
    ) -> Result<Value, ProvisionError> {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    /// Ends the session (best effort).
    pub async fn close(self) {
        if let Some(session) = &self.session {
            let _ = self
                .http
                .delete(&self.url)
                .header(SESSION_HEADER, session)
                .send()
                .await;
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ProvisionError> {
        self.request_raw(method, params).await.map(|(r, _)| r)
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(session) = &self.session {
            req = req
                .header(SESSION_HEADER, session)
                .header(VERSION_HEADER, &self.protocol_version);
        }
        req
    }

    async fn notify(&mut self, method: &str) -> Result<(), ProvisionError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let resp = self
            .post(&body)
            .send()
            .await
            .map_err(|e| mcp_error(&self.url, method, e.to_string()))?;
        if !resp.status().is_success() {
            return Err(mcp_error(
                &self.url,
                method,
                format!("HTTP {}", resp.status()),
            ));
        }
        Ok(())
    }

    /// One JSON-RPC request; returns its `result` and the session id header, if any.
    async fn request_raw(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<(Value, Option<String>), ProvisionError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let err = |message: String| mcp_error(&self.url, method, message);
        let mut resp = self
            .post(&body)
            .send()
            .await
            .map_err(|e| err(error_chain(&e)))?;
        let status = resp.status();
        let session = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(err(format!("HTTP {status}: {}", truncate(&text, 300))));
        }
        let message = if content_type.starts_with("text/event-stream") {
            // Read events until the response to our id arrives (the stream may stay open).
            let mut buffer = String::new();
            let mut found = None;
            while found.is_none() {
                let chunk = resp.chunk().await.map_err(|e| err(error_chain(&e)))?;
                let Some(chunk) = chunk else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                found = find_sse_response(&buffer, id);
            }
            found.ok_or_else(|| err("event stream ended without a response".into()))?
        } else {
            let text = resp.text().await.map_err(|e| err(error_chain(&e)))?;
            serde_json::from_str(&text)
                .map_err(|e| err(format!("not JSON ({e}): {}", truncate(&text, 300))))?
        };
        if let Some(error) = message.get("error") {
            return Err(err(format!("JSON-RPC error {error}")));
        }
        let result = message.get("result").cloned().ok_or_else(|| {
            err(format!(
                "no result in {}",
                truncate(&message.to_string(), 300)
            ))
        })?;
        Ok((result, session))
    }
}

/// Polls `url` with MCP `initialize` until it answers with a result (HTTP 200) or `timeout`
/// passes; returns the `initialize` result. `NotReady` (retryable) names the last failure.
pub async fn wait_until_mcp_ready(url: &str, timeout: Duration) -> Result<Value, ProvisionError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let attempt = McpClient::connect(
            url,
            left.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        )
        .await;
        let last_error = match attempt {
            Ok(client) => {
                let result = client.initialize_result.clone();
                client.close().await;
                return Ok(result);
            }
            Err(e) => e.to_string(),
        };
        if start.elapsed() + delay >= timeout {
            return Err(ProvisionError::NotReady {
                url: url.to_string(),
                timeout,
                last_error,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// Like [`wait_until_mcp_ready`] for a replica of `backend`, but fails fast (non-retryable
/// `ReplicaExited`, with its exit code and last output) when the replica ends or disappears
/// instead of waiting for the timeout. Checks the replica's state at most every 500 ms.
pub async fn wait_replica_ready(
    backend: &dyn ContainerBackend,
    handle: &ReplicaHandle,
    timeout: Duration,
) -> Result<Value, ProvisionError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut last_check: Option<Instant> = None;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let attempt = McpClient::connect(
            &handle.url,
            left.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        )
        .await;
        let (answered, last_error) = match attempt {
            Ok(client) => {
                let result = client.initialize_result.clone();
                client.close().await;
                (Some(result), String::new())
            }
            Err(e) => (None, e.to_string()),
        };
        // After an answer, always confirm the replica still runs: a port freed by a replica
        // that died can be taken by another server, which would answer in its place.
        if answered.is_some()
            || last_check.is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            last_check = Some(Instant::now());
            if let Some(failure) = replica_failure(backend, handle).await {
                return Err(failure);
            }
        }
        if let Some(result) = answered {
            return Ok(result);
        }
        if start.elapsed() + delay >= timeout {
            return Err(ProvisionError::NotReady {
                url: handle.url.clone(),
                timeout,
                last_error,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// `ReplicaExited` when the replica has ended or is gone. An engine hiccup is not the
/// replica's fault: `None` then.
async fn replica_failure(
    backend: &dyn ContainerBackend,
    handle: &ReplicaHandle,
) -> Option<ProvisionError> {
    let name = replica_name(&handle.server_id, handle.replica);
    match backend
        .replica_status(&handle.server_id, handle.replica)
        .await
    {
        Ok(Some(r)) if matches!(r.state, ReplicaState::Exited | ReplicaState::Dead) => {
            let logs = backend
                .replica_logs(&handle.server_id, handle.replica, 10)
                .await
                .unwrap_or_default();
            Some(ProvisionError::ReplicaExited {
                name,
                exit_code: r.exit_code,
                detail: if logs.trim().is_empty() {
                    String::new()
                } else {
                    format!("last output: {}", logs.trim())
                },
            })
        }
        Ok(None) => Some(ProvisionError::ReplicaExited {
            name,
            exit_code: None,
            detail: "it no longer exists (removed, or ended while starting)".into(),
        }),
        _ => None,
    }
}

/// The names of the tools `url` offers (a fresh session).
pub async fn list_tool_names(url: &str, timeout: Duration) -> Result<Vec<String>, ProvisionError> {
    let mut client = McpClient::connect(url, timeout).await?;
    let tools = client.list_tools().await;
    client.close().await;
    Ok(tools?
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
        .collect())
}

fn mcp_error(url: &str, method: &str, message: String) -> ProvisionError {
    ProvisionError::Mcp {
        url: url.to_string(),
        method: method.to_string(),
        message,
    }
}

/// reqwest's Display hides the cause ("error sending request"): add the sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The JSON-RPC response with `id` among the complete SSE events in `buffer`.
fn find_sse_response(buffer: &str, id: u64) -> Option<Value> {
    let normalized = buffer.replace("\r\n", "\n");
    // Only complete events (terminated by a blank line).
    let complete = &normalized[..normalized.rfind("\n\n")?];
    complete.split("\n\n").find_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return None;
        }
        let value: Value = serde_json::from_str(&data.join("\n")).ok()?;
        (value.get("id").and_then(Value::as_u64) == Some(id)).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_response_is_found_among_events() {
        let stream = "id: 0\nretry: 3000\ndata:\n\n\
                      data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                      event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"ok\":true}}\r\n\r\n";
        let found = find_sse_response(stream, 7).expect("response");
        assert_eq!(found["result"]["ok"], true);
        assert!(find_sse_response(stream, 8).is_none());
        // An incomplete event is not parsed yet.
        assert!(
            find_sse_response("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", 1).is_none()
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_not_ready_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let err = wait_until_mcp_ready(&url, Duration::from_millis(300))
            .await
            .expect_err("nothing listens");
        assert!(err.is_retryable());
        assert_eq!(err.kind(), "NotReady");
        assert!(err.to_string().contains(&url), "{err}");
    }
}
