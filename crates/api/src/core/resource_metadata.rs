//! OAuth 2.0 Protected Resource Metadata (RFC 9728), which the MCP authorization spec requires
//! of a server: how an OAuth-capable MCP client, refused with a 401, finds out which
//! authorization server issues tokens for us. The 401's `WWW-Authenticate` names the metadata
//! of the endpoint that was called (`resource_metadata="…"`); the metadata names the resource
//! (the endpoint's public URL, the audience a token must be for) and the configured issuer.
//! API keys keep working as before: they are bearer tokens that need no discovery.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::core::state::ApiState;
use crate::mcp::sse::{MESSAGES_PATH, SSE_PATH};

/// Where the metadata of the server as a whole is; an endpoint's is this plus its path.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The routes of the metadata documents (public: a client reads them before it has a token).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(WELL_KNOWN, get(|s| document(s, "")))
        .route(&format!("{WELL_KNOWN}/mcp"), get(|s| document(s, "/mcp")))
        .route(
            &format!("{WELL_KNOWN}{SSE_PATH}"),
            get(|s| document(s, SSE_PATH)),
        )
        .with_state(state)
}

async fn document(State(state): State<ApiState>, path: &'static str) -> axum::Json<Value> {
    axum::Json(metadata(&state.config, path))
}

/// The metadata of the resource at `path` (`""`: the server as a whole).
pub fn metadata(config: &avb_config::AvbConfig, path: &str) -> Value {
    let mut doc = json!({
        "resource": format!("{}{path}", config.public_url()),
        "resource_name": "AgentVoiceBox",
        "bearer_methods_supported": ["header"],
    });
    // Without OIDC only API keys are accepted: no authorization server to name.
    if let Some(oidc) = &config.auth.oidc {
        doc["authorization_servers"] = json!([oidc.issuer]);
        doc["scopes_supported"] = json!([
            crate::core::oidc::AGENT_SCOPE,
            crate::core::oidc::OPERATOR_SCOPE
        ]);
    }
    doc
}

/// The URLs a token may name as its audience (RFC 8707 resource indicators): the MCP endpoints
/// and the server, under the public URL.
pub fn resources(config: &avb_config::AvbConfig) -> Vec<String> {
    let base = config.public_url();
    vec![
        format!("{base}/mcp"),
        format!("{base}{}", crate::mcp::sse::SSE_PATH),
        base,
    ]
}

/// The metadata URL for a request to `request_path`: that of the MCP endpoint it belongs to,
/// else the server's.
pub fn metadata_url(config: &avb_config::AvbConfig, request_path: &str) -> String {
    let resource = if request_path == "/mcp" || request_path.starts_with("/mcp/") {
        "/mcp"
    } else if request_path == SSE_PATH || request_path == MESSAGES_PATH {
        SSE_PATH
    } else {
        ""
    };
    format!("{}{WELL_KNOWN}{resource}", config.public_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(oidc: bool) -> avb_config::AvbConfig {
        let mut c = avb_config::AvbConfig {
            public_url: Some("https://voice.example.com".into()),
            ..avb_config::AvbConfig::default()
        };
        if oidc {
            c.auth.oidc = Some(avb_config::OidcSettings {
                issuer: "https://sso.example.com/realms/avb".into(),
                ..avb_config::OidcSettings::default()
            });
        }
        c
    }

    #[test]
    fn each_endpoint_names_itself_and_the_issuer() {
        let doc = metadata(&config(true), "/mcp");
        assert_eq!(doc["resource"], "https://voice.example.com/mcp");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://sso.example.com/realms/avb"])
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            doc["scopes_supported"],
            json!(["avb:agent", "avb:operator"])
        );
        let doc = metadata(&config(false), "");
        assert_eq!(doc["resource"], "https://voice.example.com");
        assert!(doc.get("authorization_servers").is_none(), "{doc}");
    }

    #[test]
    fn a_refusal_points_at_the_metadata_of_the_endpoint_called() {
        let c = config(true);
        let base = "https://voice.example.com/.well-known/oauth-protected-resource";
        assert_eq!(metadata_url(&c, "/mcp"), format!("{base}/mcp"));
        assert_eq!(metadata_url(&c, SSE_PATH), format!("{base}{SSE_PATH}"));
        assert_eq!(metadata_url(&c, MESSAGES_PATH), format!("{base}{SSE_PATH}"));
        assert_eq!(metadata_url(&c, "/api/v2/jobs"), base);
        assert_eq!(metadata_url(&c, "/mcpx"), base);
    }
}
