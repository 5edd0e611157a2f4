//! The MCP server factory: one `AvbServer` type serves every transport (Streamable HTTP, legacy
//! HTTP+SSE, stdio) with the same toolset, one tool router per tool family combined with `+`.
//! Test builds can add the conformance suite's fixtures (`fixtures`, feature
//! `conformance-fixtures`, config `mcp.conformance_fixtures`).

pub mod core_tasks;
#[cfg(feature = "conformance-fixtures")]
mod fixtures;
mod resources;
pub(crate) mod results;
pub mod schema;
pub mod sessions;
pub mod shared_sessions;
pub mod sse;
pub mod tasks;

use rmcp::ErrorData as McpError;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult,
    Implementation, ListResourceTemplatesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, TASKS_EXTENSION_ID, UnsubscribeRequestParams,
    UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{RoleServer, ServerHandler, tool_handler};

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::handler::server::tool::ToolCallContext;

use crate::auth::{Caller, Role};
use crate::jobs::durable::{self, Registry, ToolCall};
use crate::state::ApiState;

pub const SERVER_NAME: &str = "AgentVoiceBox";

#[derive(Clone)]
pub struct AvbServer {
    pub(crate) state: ApiState,
    pub(crate) tool_router: ToolRouter<AvbServer>,
    subscriptions: resources::Subscriptions,
    /// Whom this session acts for: fixed for stdio and legacy SSE, set by `initialize` on
    /// Streamable HTTP (from the key the auth middleware checked). Every later request must
    /// come from the same tenant.
    caller: Arc<OnceLock<Caller>>,
    /// The conformance fixtures, when this build has them and the config turns them on.
    #[cfg(feature = "conformance-fixtures")]
    fixtures: Option<fixtures::Session>,
}

impl AvbServer {
    /// A session that acts for `caller` (stdio, legacy SSE: authenticated when it opened).
    pub fn for_caller(state: ApiState, caller: Caller) -> Self {
        let server = Self::new(state);
        let _ = server.caller.set(caller);
        server
    }

    /// A session whose caller comes with its requests (Streamable HTTP).
    pub fn new(state: ApiState) -> Self {
        #[allow(unused_mut)]
        let mut tool_router = Self::product_tools(&state.tools);
        #[cfg(feature = "conformance-fixtures")]
        let fixtures = fixtures::Session::for_config(&state.config);
        #[cfg(feature = "conformance-fixtures")]
        if fixtures.is_some() {
            tool_router += Self::all_fixture_tools();
        }
        Self {
            state,
            tool_router,
            subscriptions: resources::Subscriptions::default(),
            caller: Arc::default(),
            #[cfg(feature = "conformance-fixtures")]
            fixtures,
        }
    }

    /// Every product tool: the fast tools (one router per family) and the registry's durable
    /// tools, those that take tasks declaring it in `_meta` under the extension's id.
    fn product_tools(registry: &Registry) -> ToolRouter<AvbServer> {
        let mut tool_router = Self::status_tools()
            + Self::speech_tools()
            + Self::job_tools()
            + Self::billing_tools()
            + Self::server_tools()
            + Self::device_tools()
            + Self::approval_tools()
            + Self::aggregator_tools();
        for family in registry.families() {
            for mut tool in family.definitions() {
                if family.takes_tasks() {
                    let mut meta = tool.meta.clone().unwrap_or_default();
                    meta.insert(
                        TASKS_EXTENSION_ID.to_string(),
                        serde_json::json!({ "taskSupport": "optional" }),
                    );
                    tool.meta = Some(meta);
                }
                tool_router.add_route(ToolRoute::new_dyn(
                    tool,
                    |tcc: ToolCallContext<'_, AvbServer>| {
                        Box::pin(async move { Ok(tcc.service.call_durable(tcc).await) })
                    },
                ));
            }
        }
        // Every client reads the same schemas: written once in the portable spelling.
        for route in tool_router.map.values_mut() {
            let tool = &mut route.attr;
            tool.input_schema = std::sync::Arc::new(portable_object(&tool.input_schema));
            if let Some(output) = &tool.output_schema {
                tool.output_schema = Some(std::sync::Arc::new(portable_object(output)));
            }
        }
        tool_router
    }

    /// A direct call of a durable tool: start, wait with progress notifications, render.
    async fn call_durable(&self, tcc: ToolCallContext<'_, Self>) -> CallToolResponse {
        let Some(family) = self.state.tools.family(&tcc.name).cloned() else {
            return crate::core::problem::Problem::not_found(format!("no tool {}", tcc.name))
                .into_tool_result()
                .into();
        };
        let Some(caller) = self.caller.get() else {
            return crate::core::problem::Problem::new(
                crate::core::problem::ErrorKind::Forbidden,
                "unauthenticated request",
            )
            .into_tool_result()
            .into();
        };
        let token = tcc.request_context.meta.get_progress_token();
        let peer = tcc.request_context.peer.clone();
        let call = ToolCall {
            state: &self.state,
            caller,
            name: &tcc.name,
            arguments: tcc.arguments.unwrap_or_default(),
            client: tasks::client_input(
                &tcc.request_context,
                tcc.input_responses,
                tcc.request_state,
            ),
        };
        durable::call(family.as_ref(), call, move |p| {
            let (peer, token) = (peer.clone(), token.clone());
            Box::pin(async move {
                if let Some(t) = token {
                    let note = rmcp::model::ProgressNotificationParam::new(t, f64::from(p.done));
                    let note = match p.total {
                        Some(total) => note.with_total(f64::from(total)),
                        None => note,
                    };
                    let _ = peer.notify_progress(note.with_message(p.message)).await;
                }
            })
        })
        .await
    }
}

/// Names of AgentVoiceBox's own tools (an upstream tool never shadows one).
pub fn own_tool_names(registry: &Registry) -> HashSet<String> {
    AvbServer::product_tools(registry)
        .list_all()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

impl AvbServer {
    /// The caller of one request: the one the auth middleware attached to its HTTP request,
    /// else the session's. A request from another tenant than the session's is refused.
    pub(crate) fn request_caller(
        &self,
        extensions: &rmcp::model::Extensions,
    ) -> Result<Caller, McpError> {
        let from_http = extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned();
        match (from_http, self.caller.get()) {
            (Some(c), Some(s)) if c.tenant != s.tenant => Err(McpError::invalid_request(
                "this MCP session belongs to another tenant: start a new session with your key",
                None,
            )),
            (Some(c), _) => Ok(c),
            (None, Some(s)) => Ok(s.clone()),
            (None, None) => Err(McpError::invalid_request("unauthenticated request", None)),
        }
    }

    /// This server acting for `caller` (tool code reads `self.tenant()`).
    pub(crate) fn bound(&self, caller: Caller) -> Cow<'_, Self> {
        if self.caller.get() == Some(&caller) {
            return Cow::Borrowed(self);
        }
        let mut server = self.clone();
        server.caller = Arc::new(OnceLock::from(caller));
        Cow::Owned(server)
    }

    /// Counts one `method` request of `caller` against its rate limit: reads of jobs, tasks and
    /// resources are cheap for a client and cost the server a Temporal call each.
    pub(crate) async fn count_request(
        &self,
        caller: &Caller,
        method: &str,
    ) -> Result<(), McpError> {
        self.state
            .limiter
            .check_method(caller, method)
            .await
            .map_err(|limited| {
                tracing::info!(caller = %caller.rate_limit_id(), %limited, "MCP request rate-limited");
                McpError::new(
                    rmcp::model::ErrorCode::INVALID_REQUEST,
                    limited.to_string(),
                    Some(limited.details()),
                )
            })
    }

    /// The caller's tenant; none (matching no job) on a server not bound to a caller.
    pub(crate) fn tenant(&self) -> &str {
        self.caller.get().map_or("", |c| c.tenant.as_str())
    }

    /// Whose jobs the caller sees; nothing on a server not bound to a caller.
    pub(crate) fn scope(&self) -> crate::jobs::JobScope {
        self.caller
            .get()
            .map_or_else(crate::jobs::JobScope::nothing, Caller::scope)
    }

    /// The caller this server acts for, if bound.
    pub(crate) fn caller_of_session(&self) -> Option<Caller> {
        self.caller.get().cloned()
    }

    /// The caller's role; none on a server not bound to a caller.
    pub(crate) fn role(&self) -> Option<Role> {
        self.caller.get().map(|c| c.role)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AvbServer {
    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, McpError> {
        if let Ok(caller) = self.request_caller(&context.extensions) {
            let _ = self.caller.set(caller);
        }
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
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
                 list_jobs, cancel_job, the resource avb://jobs/{job_id}, or as an MCP task. \
                 Credits: get_balance and get_usage (your tenant); operators (HUMAN keys) \
                 grant_credits.",
            )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call_tool_or_task(request, context).await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let server = self.bound(self.request_caller(&context.extensions)?);
        server.upstreams_checked().await;
        let mut result = ListToolsResult::with_all_items(server.all_tools());
        // Upstream tools come and go: clients of 2026-07-28 must not cache the list.
        if context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28)
        {
            result.ttl_ms = Some(0);
        }
        Ok(result)
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tool_router
            .get(name)
            .cloned()
            .or_else(|| self.mounted(name).map(|t| t.definition))
    }

    async fn on_custom_notification(
        &self,
        notification: rmcp::model::CustomNotification,
        context: NotificationContext<RoleServer>,
    ) {
        if notification.method == core_tasks::FOLLOW_TASK
            && let Some(task_id) = notification
                .params
                .as_ref()
                .and_then(|p| p["taskId"].as_str())
        {
            self.follow_task(task_id.to_string(), context.peer);
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.announce_tool_changes(context.peer);
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        #[cfg(feature = "conformance-fixtures")]
        if let Some(task) = self.fixture_task(|| fixtures::tasks::get(&request.task_id)) {
            return task.map(GetTaskResult::new);
        }
        let caller = self.request_caller(&context.extensions)?;
        self.count_request(&caller, "tasks/get").await?;
        let server = self.bound(caller);
        Ok(GetTaskResult::new(
            server.task_state(&request.task_id).await?,
        ))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        #[cfg(feature = "conformance-fixtures")]
        if let Some(done) = self.fixture_task(|| fixtures::tasks::cancel(&request.task_id)) {
            return done;
        }
        let server = self.bound(self.request_caller(&context.extensions)?);
        server.cancel_task_by_id(&request.task_id).await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        #[cfg(feature = "conformance-fixtures")]
        if let Some(done) = self.fixture_task(|| {
            fixtures::tasks::update(&request.task_id, request.input_responses.clone())
        }) {
            return done;
        }
        let server = self.bound(self.request_caller(&context.extensions)?);
        server
            .update_task_by_id(&request.task_id, &request.input_responses)
            .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut templates = Self::job_templates();
        templates.resource_templates.push(Self::server_template());
        #[cfg(feature = "conformance-fixtures")]
        let templates = self.with_fixture_templates(templates);
        Ok(templates)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        #[cfg(feature = "conformance-fixtures")]
        if let Some(fixture) = self.read_fixture_resource(&request.uri) {
            return Ok(fixture.into());
        }
        let caller = self.request_caller(&context.extensions)?;
        self.count_request(&caller, "resources/read").await?;
        let server = self.bound(caller);
        if let Some(read) = server.read_server_resource(&request.uri).await {
            return read.map(Into::into);
        }
        if let Some(read) = server.read_audio_resource(&request.uri).await {
            return read.map(Into::into);
        }
        server.read_job_resource(&request.uri).await.map(Into::into)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = Self::job_subscription_filter(requested);
        accepted.tools_list_changed = requested.tools_list_changed.filter(|on| *on);
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let caller = self.request_caller(&context.request_context().extensions)?;
        self.count_request(&caller, "subscriptions/listen").await?;
        let server = self.bound(caller);
        futures::join!(
            server.listen_jobs(&context),
            server.listen_tool_changes(&context)
        );
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
        let caller = self.request_caller(&context.extensions)?;
        self.count_request(&caller, "resources/subscribe").await?;
        let server = self.bound(caller);
        server.subscribe_job(&request.uri, context).await
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
        fixtures::get_prompt_response(&request)
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

/// A tool schema (always an object) in the portable spelling ([`schema::portable`]).
fn portable_object(schema: &rmcp::model::JsonObject) -> rmcp::model::JsonObject {
    let mut value = serde_json::Value::Object(schema.clone());
    schema::portable(&mut value);
    match value {
        serde_json::Value::Object(map) => map,
        _ => schema.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tools as agents see them (names, descriptions, input and output schemas, `_meta`)
    /// are a contract: a change to them must show up in review as a change to
    /// `tools.snapshot.json`. `AVB_UPDATE_SNAPSHOTS=1` rewrites it.
    #[test]
    fn tool_schemas_match_the_snapshot() {
        let tools = AvbServer::product_tools(&crate::registry::durable_tools()).list_all();
        let actual = serde_json::to_string_pretty(&tools).expect("tools serialize") + "\n";
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mcp/tools.snapshot.json");
        if std::env::var_os("AVB_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &actual).expect("write snapshot");
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "tool schemas changed; review and run AVB_UPDATE_SNAPSHOTS=1 cargo test -p avb-api \
             tool_schemas to accept:\n{actual}"
        );
    }
}
