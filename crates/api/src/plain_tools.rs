//! Tools over plain HTTP, for devices and scripts that do not speak MCP: `POST /tools/list`
//! answers the MCP tool list as JSON; `POST /tools/call` `{name, arguments}` answers
//! `application/x-ndjson`: a `progress` line for each progress notification, then one `result`
//! line (the `CallToolResult` an MCP client gets) or one `error` line (a JSON-RPC error).
//!
//! Each request is one stateless (2026-07-28) MCP request to this process's own MCP service, made
//! for the authenticated caller: the same tools, auth, tenants, rate limits and billing, no
//! second implementation of any tool.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth::Caller;
use crate::core::problem::Problem;

/// The MCP revision the plain requests speak (stateless: no session to open).
const REVISION: &str = "2026-07-28";

/// `/tools/list` and `/tools/call`, forwarding to `mcp` (a router serving MCP at `/mcp`).
pub fn router(mcp: Router) -> Router {
    Router::new()
        .route("/tools/list", post(list))
        .route("/tools/call", post(call))
        .with_state(mcp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    name: String,
    #[serde(default)]
    arguments: serde_json::Map<String, Value>,
}

/// The JSON-RPC request for `method` as a stateless MCP request of `caller`, with the Host of
/// the original request (the MCP service checks it).
fn mcp_request(
    original: &axum::http::HeaderMap,
    caller: Caller,
    method: &str,
    name: Option<&str>,
    mut params: Value,
) -> Result<Request, Problem> {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": REVISION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "avb-plain-http", "version": "1"},
        "progressToken": "plain",
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut builder = axum::http::Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", REVISION)
        .header("mcp-method", method);
    if let Some(name) = name {
        builder = builder.header("mcp-name", name);
    }
    if let Some(host) = original.get(header::HOST) {
        builder = builder.header(header::HOST, host);
    }
    let mut request = builder
        .body(Body::from(body.to_string()))
        .map_err(|e| Problem::internal(format!("building the MCP request: {e}")))?;
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// The JSON-RPC messages of an MCP response, as they arrive (a JSON body is one message; an
/// event stream one per `data:` line).
fn messages(response: Response) -> impl futures::Stream<Item = Value> + Send {
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = response.into_body().into_data_stream();
    let state = (
        body,
        String::new(),
        std::collections::VecDeque::<Value>::new(),
        false,
    );
    futures::stream::unfold(
        state,
        move |(mut body, mut buffer, mut ready, mut ended)| async move {
            loop {
                if let Some(v) = ready.pop_front() {
                    return Some((v, (body, buffer, ready, ended)));
                }
                if ended {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        buffer.push_str(&String::from_utf8_lossy(&chunk));
                        if event_stream {
                            while let Some(end) = buffer.find('\n') {
                                let line: String = buffer.drain(..=end).collect();
                                if let Some(data) = line.trim_end().strip_prefix("data:")
                                    && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                                {
                                    ready.push_back(v);
                                }
                            }
                        }
                    }
                    _ => {
                        ended = true;
                        if !event_stream && let Ok(v) = serde_json::from_str::<Value>(&buffer) {
                            ready.push_back(v);
                        }
                    }
                }
            }
        },
    )
}

/// Sends `request` to the MCP service: `Ok(answer)` for a 200, `Err(response)` for any other
/// status, which is passed on to the client as it is.
async fn forward(mcp: Router, request: Request) -> Result<Result<Response, Response>, Problem> {
    let response = mcp
        .oneshot(request)
        .await
        .map_err(|e| Problem::internal(format!("the MCP service failed: {e}")))?;
    Ok(if response.status() == StatusCode::OK {
        Ok(response)
    } else {
        Err(response)
    })
}

async fn list(
    State(mcp): State<Router>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let request = mcp_request(&headers, caller, "tools/list", None, json!({}))?;
    let response = match forward(mcp, request).await? {
        Ok(r) => r,
        Err(other) => return Ok(other),
    };
    let mut stream = Box::pin(messages(response));
    while let Some(message) = stream.next().await {
        if message.get("id").is_some() {
            let answer = message
                .get("result")
                .cloned()
                .unwrap_or_else(|| json!({ "error": message.get("error") }));
            return Ok(axum::Json(answer).into_response());
        }
    }
    Err(Problem::internal("the MCP service answered nothing"))
}

async fn call(
    State(mcp): State<Router>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let parsed: CallBody = serde_json::from_slice(&body).map_err(|e| {
        Problem::invalid(
            "body",
            format!("expected {{\"name\": \"tool\", \"arguments\": {{…}}}}: {e}"),
        )
    })?;
    let params = json!({"name": parsed.name, "arguments": parsed.arguments});
    let request = mcp_request(&headers, caller, "tools/call", Some(&parsed.name), params)?;
    let response = match forward(mcp, request).await? {
        Ok(r) => r,
        Err(other) => return Ok(other),
    };
    // One line per message, as it arrives: progress while the tool runs, then the answer. A
    // client that goes away drops the stream; the job (if any) goes on as a job.
    let lines = messages(response).filter_map(|m| async move {
        let line = if m.get("method").and_then(Value::as_str) == Some("notifications/progress") {
            let p = &m["params"];
            json!({"type": "progress", "progress": p["progress"], "total": p["total"],
                   "message": p["message"]})
        } else if let Some(result) = m.get("result") {
            json!({"type": "result", "result": result})
        } else if let Some(error) = m.get("error") {
            json!({"type": "error", "error": error})
        } else {
            return None;
        };
        Some(Ok::<_, std::convert::Infallible>(Bytes::from(format!(
            "{line}\n"
        ))))
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
