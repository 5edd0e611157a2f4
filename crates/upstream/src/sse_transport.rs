//! The legacy HTTP+SSE MCP transport (protocol 2024-11-05), client side — rmcp has only its
//! server side. We GET the event stream; its first event, `endpoint`, names the URL our messages
//! are POSTed to; every `message` event is one JSON-RPC message from the server. The session ends
//! when the stream does: there is no resume, so our retry policy decides what a break means.

use futures::StreamExt;
use http::HeaderValue;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum SseTransportError {
    #[error("GET {url}: {message}")]
    Connect { url: String, message: String },
    #[error("POST {url}: {message}")]
    Post { url: String, message: String },
}

/// One legacy SSE session with a server.
pub struct SseClientTransport {
    http: reqwest::Client,
    post_url: reqwest::Url,
    authorization: Option<HeaderValue>,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl SseClientTransport {
    /// Opens the event stream at `sse_url` and waits for its `endpoint` event.
    pub async fn connect(
        sse_url: &str,
        authorization: Option<HeaderValue>,
    ) -> Result<Self, SseTransportError> {
        let failed = |message: String| SseTransportError::Connect {
            url: sse_url.to_string(),
            message,
        };
        let base = reqwest::Url::parse(sse_url).map_err(|e| failed(e.to_string()))?;
        let http = avb_tls::client_builder()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let mut request = http
            .get(base.clone())
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some(auth) = &authorization {
            request = request.header(http::header::AUTHORIZATION, auth.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| failed(avb_tls::with_causes(&e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        let mut body = response.bytes_stream();
        let mut events = EventParser::default();
        // Events after the endpoint in its chunk are the reader's first.
        let (endpoint, mut pending) = loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(failed(e.to_string())),
                None => return Err(failed("the stream ended before its endpoint event".into())),
            };
            let mut ready = events.push(&chunk);
            if let Some(at) = ready.iter().position(|e| e.name == "endpoint") {
                let rest = ready.split_off(at + 1);
                let endpoint = ready.pop().map(|e| e.data).unwrap_or_default();
                break (endpoint, rest);
            }
        };
        let post_url = base
            .join(endpoint.trim())
            .map_err(|e| failed(format!("endpoint {endpoint:?}: {e}")))?;
        // A server may not send our messages (and our Authorization header) elsewhere.
        if post_url.origin() != base.origin() {
            return Err(failed(format!(
                "endpoint {post_url} is not on the stream's origin"
            )));
        }
        let (to_us, incoming) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            loop {
                for event in pending.drain(..) {
                    if event.name != "message" || event.data.is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<ServerJsonRpcMessage>(&event.data) {
                        Ok(message) => {
                            if to_us.send(message).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "upstream sent a non-MCP message"),
                    }
                }
                match body.next().await {
                    Some(Ok(chunk)) => pending = events.push(&chunk),
                    // The stream broke or ended: the session is over.
                    Some(Err(_)) | None => return,
                }
            }
        });
        Ok(Self {
            http,
            post_url,
            authorization,
            incoming,
            reader,
        })
    }
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let mut request = self.http.post(self.post_url.clone()).json(&item);
        if let Some(auth) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, auth.clone());
        }
        let url = self.post_url.to_string();
        async move {
            let response = request.send().await.map_err(|e| SseTransportError::Post {
                url: url.clone(),
                message: e.to_string(),
            })?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseTransportError::Post {
                    url,
                    message: format!("answered {}", response.status()),
                })
            }
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        Ok(())
    }
}

impl Drop for SseClientTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One server-sent event.
#[derive(Debug, PartialEq)]
struct SseEvent {
    name: String,
    data: String,
}

/// Splits an event stream into events as its bytes arrive (in chunks cut anywhere).
#[derive(Default)]
struct EventParser {
    line: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
    ready: Vec<SseEvent>,
}

impl EventParser {
    /// Takes `chunk`; returns the events it completed.
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        for &byte in chunk {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.line);
                let line = String::from_utf8_lossy(&line);
                self.line_done(line.strip_suffix('\r').unwrap_or(&line));
            } else {
                self.line.push(byte);
            }
        }
        std::mem::take(&mut self.ready)
    }

    fn line_done(&mut self, line: &str) {
        if line.is_empty() {
            // A blank line ends the event; one without data is no event.
            let name = self.name.take();
            if let Some(data) = self.data.take() {
                self.ready.push(SseEvent {
                    name: name.unwrap_or_else(|| "message".into()),
                    data,
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // id, retry: no resume here
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            name: name.into(),
            data: data.into(),
        }
    }

    /// A one-shot HTTP server that answers the GET with `body` as an event stream and keeps the
    /// connection open; returns its stream URL.
    async fn serve_once(body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 2048];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
            let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        format!("http://{addr}/sse")
    }

    #[tokio::test]
    async fn an_endpoint_on_another_origin_is_refused() {
        let url = serve_once("event: endpoint\ndata: http://127.0.0.2:9/message\n\n").await;
        let Err(e) = SseClientTransport::connect(&url, None).await else {
            panic!("connected to a foreign endpoint");
        };
        assert!(e.to_string().contains("not on the stream's origin"), "{e}");
    }

    #[tokio::test]
    async fn a_relative_endpoint_resolves_against_the_stream() {
        let url = serve_once("event: endpoint\ndata: /message?sessionId=7\n\n").await;
        let transport = SseClientTransport::connect(&url, None)
            .await
            .expect("connects");
        assert_eq!(
            transport.post_url.as_str(),
            url.replace("/sse", "/message?sessionId=7")
        );
    }

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let stream = b"event: endpoint\r\ndata: /message?sessionId=1\r\n\r\n: ping\n\n\
                       data: {\"a\":\ndata: 1}\n\nevent: message\ndata:x\n\n";
        // Every cut point gives the same events.
        for cut in 0..stream.len() {
            let mut parser = EventParser::default();
            let mut events = parser.push(&stream[..cut]);
            events.extend(parser.push(&stream[cut..]));
            assert_eq!(
                events,
                vec![
                    event("endpoint", "/message?sessionId=1"),
                    event("message", "{\"a\":\n1}"),
                    event("message", "x"),
                ],
                "cut at {cut}"
            );
        }
    }
}
