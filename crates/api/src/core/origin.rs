//! DNS-rebinding protection on every route that acts for a caller (MCP: `/mcp` and the legacy
//! SSE routes; REST under `/api/v2`): a request whose `Host` is not one of
//! `mcp.allowed_hosts`, or whose `Origin` (sent by browsers) is neither one of
//! `mcp.allowed_origins` nor a page on an allowed host, gets 403 before authentication or
//! anything else runs. Clients that are not browsers send no `Origin` and are not affected.
//! Health, metrics and the OAuth metadata stay open (they are outside the guarded router).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::ApiState;

/// The host of a `Host` value or of an origin's authority, without port or IPv6 brackets.
fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// `*` accepts any Host: said explicitly, never by an empty list (an empty list is refused at
/// start), for deployments behind a proxy that checks the Host itself.
fn host_allowed(host: &str, allowed_hosts: &[String]) -> bool {
    allowed_hosts
        .iter()
        .any(|h| h == "*" || h.eq_ignore_ascii_case(host))
}

/// Why a request must be refused, or `None` when its `Host` and `Origin` may reach MCP.
pub fn refusal(
    host: Option<&str>,
    origin: Option<&str>,
    allowed_hosts: &[String],
    allowed_origins: &[String],
) -> Option<String> {
    if let Some(host) = host
        && !host_allowed(host_of(host), allowed_hosts)
    {
        return Some(format!(
            "Host {host:?} is not allowed here; add it to AVB_MCP_ALLOWED_HOSTS"
        ));
    }
    let origin = origin?;
    let trimmed = origin.trim_end_matches('/');
    if allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(trimmed))
    {
        return None;
    }
    // A page served from a host this server answers to (by default: loopback) may call it,
    // as the MCP Inspector's web UI on localhost does.
    let page_host = trimmed
        .split_once("://")
        .map(|(_, authority)| host_of(authority))
        .filter(|h| !h.is_empty());
    if let Some(page_host) = page_host
        && allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(page_host))
    {
        return None;
    }
    Some(format!(
        "Origin {origin:?} is not allowed to call this MCP server; add it to \
         AVB_MCP_ALLOWED_ORIGINS"
    ))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: refuses requests from hosts and origins that may not call us.
pub async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let mcp = &state.config.mcp;
    let Some(why) = refusal(
        header_str(headers, header::HOST),
        header_str(headers, header::ORIGIN),
        &mcp.allowed_hosts,
        &mcp.allowed_origins,
    ) else {
        return next.run(request).await;
    };
    tracing::warn!(path = %request.uri().path(), %why, "request refused (Host/Origin)");
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32600, "message": why },
    });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Vec<String> {
        avb_config::McpSettings::default().allowed_hosts
    }

    #[test]
    fn browsers_on_other_sites_are_refused_and_loopback_pages_pass() {
        let hosts = loopback();
        let ok = |host: Option<&str>, origin: Option<&str>, origins: &[String]| {
            refusal(host, origin, &hosts, origins).is_none()
        };
        assert!(
            ok(Some("127.0.0.1:8080"), None, &[]),
            "no Origin: not a browser"
        );
        assert!(ok(
            Some("localhost:8080"),
            Some("http://localhost:6274"),
            &[]
        ));
        assert!(ok(Some("[::1]:8080"), Some("http://[::1]:3000"), &[]));
        assert!(!ok(
            Some("127.0.0.1:8080"),
            Some("https://evil.example"),
            &[]
        ));
        assert!(!ok(Some("127.0.0.1:8080"), Some("null"), &[]));
        assert!(
            !ok(Some("evil.example"), None, &[]),
            "rebinding: foreign Host"
        );
        let listed = vec!["https://app.example/".to_string()];
        assert!(ok(Some("127.0.0.1"), Some("https://app.example"), &listed));
        let why = refusal(
            Some("127.0.0.1"),
            Some("https://x.example"),
            &hosts,
            &listed,
        )
        .expect("refused");
        assert!(why.contains("https://x.example") && why.contains("AVB_MCP_ALLOWED_ORIGINS"));
    }

    /// Any Host only when said so with `*`, and even then a foreign page's Origin is refused.
    #[test]
    fn any_host_is_explicit_and_origins_are_still_checked() {
        assert!(refusal(Some("mcp.example.com"), None, &[], &[]).is_some());
        let any = vec!["*".to_string()];
        assert!(refusal(Some("mcp.example.com"), None, &any, &[]).is_none());
        assert!(
            refusal(
                Some("mcp.example.com"),
                Some("https://evil.example"),
                &any,
                &[]
            )
            .is_some()
        );
    }
}
