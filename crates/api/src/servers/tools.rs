//! `create_mcp_server`, `get_mcp_server`, `list_mcp_servers`, `delete_mcp_server`: MCP servers
//! provisioned from templates by durable workflows (see `crate::servers`).

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::core::problem::Problem;
use crate::mcp::AvbServer;
use crate::mcp::results::structured;
use crate::servers::{self, CreateServerInput, ServerError, ServerList, ServerView};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerIdInput {
    /// `srv_` + 32 hex digits, from create_mcp_server or list_mcp_servers.
    pub server_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListServersInput {}

fn server_error(e: ServerError) -> CallToolResult {
    Problem::from(e).into_tool_result()
}

fn describe(v: &ServerView) -> String {
    let urls: Vec<_> = v.endpoints.iter().map(|e| e.url.as_str()).collect();
    let mut text = format!(
        "MCP server {} ({}, template {}): {}, {} replica(s)",
        v.service_name, v.server_id, v.template, v.status, v.replicas
    );
    if !urls.is_empty() {
        text.push_str(&format!(" at {}", urls.join(", ")));
    }
    if let Some(e) = &v.error {
        text.push_str(&format!("; error: {e}"));
    }
    text
}

#[tool_router(router = server_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Provision an MCP server from a template (durable: containers, or local processes, are
    /// created, checked to answer MCP, and removed again if anything fails). Returns its id,
    /// status and endpoints.
    #[tool(
        name = "create_mcp_server",
        output_schema = schema_for_output::<ServerView>()
    )]
    async fn create_mcp_server(
        &self,
        Parameters(input): Parameters<CreateServerInput>,
    ) -> CallToolResult {
        match servers::create(&self.state, self.tenant(), input).await {
            Ok(v) if v.status == "failed" => {
                let mut r = server_error(ServerError::Unavailable(describe(&v)));
                r.structured_content = serde_json::to_value(&v).ok();
                r
            }
            Ok(v) => structured(describe(&v), &v),
            Err(e) => server_error(e),
        }
    }

    /// One of your MCP servers: status, endpoints and its lifecycle events.
    #[tool(
        name = "get_mcp_server",
        output_schema = schema_for_output::<ServerView>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_mcp_server(&self, Parameters(input): Parameters<ServerIdInput>) -> CallToolResult {
        match servers::get(&self.state, self.tenant(), &input.server_id).await {
            Ok(v) => structured(describe(&v), &v),
            Err(e) => server_error(e),
        }
    }

    /// Your MCP servers that are not deleted, newest first.
    #[tool(
        name = "list_mcp_servers",
        output_schema = schema_for_output::<ServerList>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_mcp_servers(
        &self,
        Parameters(_input): Parameters<ListServersInput>,
    ) -> CallToolResult {
        match servers::list(&self.state, self.tenant()).await {
            Ok(l) => structured(format!("{} MCP server(s)", l.servers.len()), &l),
            Err(e) => server_error(e),
        }
    }

    /// Remove an MCP server: every replica is stopped and removed (durable; repeating it is
    /// safe).
    #[tool(
        name = "delete_mcp_server",
        output_schema = schema_for_output::<ServerView>(),
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn delete_mcp_server(
        &self,
        Parameters(input): Parameters<ServerIdInput>,
    ) -> CallToolResult {
        match servers::delete(&self.state, self.tenant(), &input.server_id).await {
            Ok(v) => structured(describe(&v), &v),
            Err(e) => server_error(e),
        }
    }
}

/// `avb://mcp-servers/{server_id}`: the server's record and its audit trail as JSON.
pub const SERVER_URI_PREFIX: &str = "avb://mcp-servers/";

impl AvbServer {
    pub(crate) fn server_template() -> rmcp::model::ResourceTemplate {
        rmcp::model::ResourceTemplate::new(
            format!("{SERVER_URI_PREFIX}{{server_id}}"),
            "mcp-server",
        )
        .with_title("Provisioned MCP server")
        .with_description(
            "Status, endpoints and the lifecycle audit trail (events, oldest first) of an \
                 MCP server created with create_mcp_server (JSON).",
        )
        .with_mime_type("application/json")
    }

    /// Reads `avb://mcp-servers/{server_id}` for the caller's tenant; `None` for other URIs.
    pub(crate) async fn read_server_resource(
        &self,
        uri: &str,
    ) -> Option<Result<rmcp::model::ReadResourceResult, rmcp::ErrorData>> {
        let server_id = uri.strip_prefix(SERVER_URI_PREFIX)?;
        Some(
            match servers::get(&self.state, self.tenant(), server_id).await {
                Ok(view) => serde_json::to_string_pretty(&view)
                    .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
                    .map(|text| {
                        rmcp::model::ReadResourceResult::new(vec![
                            rmcp::model::ResourceContents::TextResourceContents {
                                uri: uri.to_string(),
                                mime_type: Some("application/json".into()),
                                text,
                                meta: None,
                            },
                        ])
                    }),
                Err(ServerError::NotFound(m)) => Err(rmcp::ErrorData::resource_not_found(
                    format!("{uri}: {m}"),
                    None,
                )),
                Err(e) => Err(rmcp::ErrorData::internal_error(e.to_string(), None)),
            },
        )
    }
}
