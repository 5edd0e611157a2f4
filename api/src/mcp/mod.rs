//! The MCP server factory: one `AvbServer` type serves every transport (Streamable HTTP, legacy
//! HTTP+SSE, stdio) with the same toolset, one tool router per tool family combined with `+`.
//! Test builds can add the conformance suite's fixtures (`fixtures`, feature
//! `conformance-fixtures`, config `mcp.conformance_fixtures`).

mod echo_tools;
#[cfg(feature = "conformance-fixtures")]
mod fixtures;
mod job_tools;
mod resources;
mod results;
mod speech_tools;
pub mod sse;
mod status_tools;
pub mod tasks;

use rmcp::ErrorData as McpError;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult,
    Implementation, ListResourceTemplatesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    SubscriptionFilter, TASKS_EXTENSION_ID, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{RoleServer, ServerHandler, tool_handler};

use crate::state::ApiState;

pub const SERVER_NAME: &str = "AgentVoiceBox";

#[derive(Clone)]
pub struct AvbServer {
    pub(crate) state: ApiState,
    tool_router: ToolRouter<AvbServer>,
    subscriptions: resources::Subscriptions,
    /// The conformance fixtures, when this build has them and the config turns them on.
    #[cfg(feature = "conformance-fixtures")]
    fixtures: Option<fixtures::Session>,
}

impl AvbServer {
    pub fn new(state: ApiState) -> Self {
        let mut tool_router =
            Self::status_tools() + Self::speech_tools() + Self::echo_tools() + Self::job_tools();
        #[cfg(feature = "conformance-fixtures")]
        let fixtures = fixtures::Session::for_config(&state.config);
        #[cfg(feature = "conformance-fixtures")]
        if fixtures.is_some() {
            tool_router += Self::fixture_tools();
        }
        // Tools declare task support in their `_meta` under the extension's id.
        for name in tasks::TASK_TOOLS {
            if let Some(route) = tool_router.map.get_mut(*name) {
                let mut meta = route.attr.meta.clone().unwrap_or_default();
                meta.insert(
                    TASKS_EXTENSION_ID.to_string(),
                    serde_json::json!({ "taskSupport": "optional" }),
                );
                route.attr.meta = Some(meta);
            }
        }
        Self {
            state,
            tool_router,
            subscriptions: resources::Subscriptions::default(),
            #[cfg(feature = "conformance-fixtures")]
            fixtures,
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AvbServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tasks()
            .build();
        #[cfg(feature = "conformance-fixtures")]
        let capabilities = self.with_fixture_capabilities(capabilities);
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                    .with_title("AgentVoiceBox"),
            )
            .with_instructions(
                "AgentVoiceBox: durable tools. generate_speech turns text into speech (Kokoro, 54 \
                 voices; see list_voices); each call runs as a Temporal workflow and survives \
                 crashes and retries. Long calls return a job id: follow it with get_job, \
                 list_jobs, cancel_job, the resource avb://jobs/{job_id}, or as an MCP task.",
            )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call_tool_or_task(request, context).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        Ok(GetTaskResult::new(self.task_state(&request.task_id).await?))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.cancel_task_by_id(&request.task_id).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let templates = Self::job_templates();
        #[cfg(feature = "conformance-fixtures")]
        let templates = self.with_fixture_templates(templates);
        Ok(templates)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        #[cfg(feature = "conformance-fixtures")]
        if let Some(fixture) = self.read_fixture_resource(&request.uri) {
            return Ok(fixture.into());
        }
        self.read_job_resource(&request.uri).await.map(Into::into)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(Self::job_subscription_filter(requested))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        self.listen_jobs(context).await;
        Ok(())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        #[cfg(feature = "conformance-fixtures")]
        if self.is_fixture_subscription(&request.uri) {
            return Ok(());
        }
        self.subscribe_job(&request.uri, context).await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.unsubscribe_job(&request.uri);
        Ok(())
    }

    // Conformance fixtures only (absent in production builds, where rmcp's defaults answer:
    // method not found, and an empty resource list). Off by config, they answer the same.

    #[cfg(feature = "conformance-fixtures")]
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, McpError> {
        let items = match self.fixtures {
            Some(_) => fixtures::resources(),
            None => Vec::new(),
        };
        Ok(rmcp::model::ListResourcesResult::with_all_items(items))
    }

    #[cfg(feature = "conformance-fixtures")]
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, McpError> {
        self.fixtures_or_not_found::<rmcp::model::ListPromptsRequestMethod>()?;
        Ok(fixtures::prompts())
    }

    #[cfg(feature = "conformance-fixtures")]
    async fn get_prompt(
        &self,
        request: rmcp::model::GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, McpError> {
        self.fixtures_or_not_found::<rmcp::model::GetPromptRequestMethod>()?;
        fixtures::get_prompt(&request).map(Into::into)
    }

    #[cfg(feature = "conformance-fixtures")]
    async fn complete(
        &self,
        request: rmcp::model::CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CompleteResult, McpError> {
        self.fixtures_or_not_found::<rmcp::model::CompleteRequestMethod>()?;
        fixtures::complete(&request)
    }

    #[cfg(feature = "conformance-fixtures")]
    #[allow(deprecated)] // logging (SEP-2577); protocol 2025-11-25 still has it
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.fixtures_or_not_found::<rmcp::model::SetLevelRequestMethod>()?
            .set_log_level(request.level);
        Ok(())
    }
}
