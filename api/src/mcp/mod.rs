//! The MCP server factory: one `AvbServer` type serves every transport (Streamable HTTP, legacy
//! HTTP+SSE, stdio) with the same toolset, one tool router per tool family combined with `+`.

mod echo_tools;
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
}

impl AvbServer {
    pub fn new(state: ApiState) -> Self {
        let mut tool_router =
            Self::status_tools() + Self::speech_tools() + Self::echo_tools() + Self::job_tools();
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
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AvbServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tasks()
                .build(),
        )
        .with_server_info(
            Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")).with_title("AgentVoiceBox"),
        )
        .with_instructions(
            "AgentVoiceBox: durable tools. generate_speech turns text into speech (Kokoro, 54 voices; \
             see list_voices); each call runs as a Temporal workflow and survives crashes and retries. \
             Long calls return a job id: follow it with get_job, list_jobs, cancel_job, the resource \
             avb://jobs/{job_id}, or as an MCP task.",
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
        Ok(Self::job_templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
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
}
