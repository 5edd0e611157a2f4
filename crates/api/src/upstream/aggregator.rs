//! Higher-order tools over the whole catalog: `search_tools` finds tools (ours and mounted ones)
//! by words, `batch_execute` runs several mounted tools' calls as one durable job.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Tool};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BATCH_TOOL, start_batch};
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::durable::{DurableTool, Started, ToolCall, definition, output_as};
use crate::jobs::output::resource_uri;
use crate::mcp::AvbServer;
use crate::mcp::results::structured;
use crate::state::ApiState;
use avb_upstream::catalog::UPSTREAM_META;
use avb_workflows::upstream::BatchItem;

/// Most calls one `batch_execute` takes.
pub const MAX_BATCH: usize = 20;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchToolsInput {
    /// Words to look for in tool names and descriptions, e.g. "read file".
    pub query: String,
    /// Most tools returned, 1–50 (default 10).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FoundTool {
    pub name: String,
    pub description: String,
    /// `agentvoicebox`, or the upstream server it is mounted from.
    pub source: String,
    /// How many of the query's words it matched.
    pub score: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchToolsOutput {
    pub tools: Vec<FoundTool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BatchCallInput {
    /// A mounted upstream tool (`<server>_<tool>`, see `search_tools` / tools/list).
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BatchExecuteInput {
    /// The calls, run one after the other (1–20); one failing does not stop the others.
    pub calls: Vec<BatchCallInput>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchExecuteOutput {
    pub job_id: String,
    /// `completed`, or `running` when the call's wait budget ran out first.
    pub status: String,
    /// One per call, in order (when completed).
    pub results: Vec<BatchItem>,
    pub resource_uri: String,
}

/// Scores `text` by how many of `words` it contains.
fn score(words: &[String], text: &str) -> u32 {
    let text = text.to_lowercase();
    words.iter().filter(|w| text.contains(w.as_str())).count() as u32
}

#[tool_router(router = aggregator_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Finds tools by words in their names and descriptions, across AgentVoiceBox's own tools
    /// and every tool mounted from upstream MCP servers; best matches first.
    #[tool(
        name = "search_tools",
        output_schema = schema_for_output::<SearchToolsOutput>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn search_tools(
        &self,
        Parameters(input): Parameters<SearchToolsInput>,
    ) -> CallToolResult {
        let words: Vec<String> = input
            .query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if words.is_empty() {
            return Problem::invalid("query", "give at least one word to look for")
                .into_tool_result();
        }
        let limit = input.limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return Problem::invalid("limit", format!("{limit} is out of range; use 1 to 50"))
                .into_tool_result();
        }
        let mut found: Vec<FoundTool> = self
            .all_tools()
            .into_iter()
            .filter_map(|t| {
                let description = t.description.as_deref().unwrap_or_default().to_string();
                // Name words count twice: `read_text_file` is about reading files.
                let s = 2 * score(&words, &t.name.replace(['_', '-'], " "))
                    + score(&words, &description);
                let source = t
                    .meta
                    .as_ref()
                    .and_then(|m| m.get(UPSTREAM_META))
                    .and_then(|u| u["server"].as_str())
                    .unwrap_or("agentvoicebox")
                    .to_string();
                (s > 0).then(|| FoundTool {
                    name: t.name.to_string(),
                    description,
                    source,
                    score: s,
                })
            })
            .collect();
        found.sort_by(|a, b| b.score.cmp(&a.score).then(a.name.cmp(&b.name)));
        found.truncate(limit as usize);
        let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
        let text = format!("{} tools match: {}", found.len(), names.join(", "));
        structured(text, &SearchToolsOutput { tools: found })
    }
}

/// `batch_execute`: several mounted tools' calls as one durable `UpstreamBatch` job.
pub struct Batch;

#[async_trait::async_trait]
impl DurableTool for Batch {
    fn names(&self) -> &'static [&'static str] {
        &[BATCH_TOOL]
    }

    fn definitions(&self) -> Vec<Tool> {
        vec![definition::<BatchExecuteInput, BatchExecuteOutput>(
            BATCH_TOOL,
            "Runs several calls of tools mounted from upstream MCP servers as one durable job, \
             one\nafter the other, and returns every result in order.",
        )]
    }

    fn takes_tasks(&self) -> bool {
        false
    }

    async fn start(&self, call: &ToolCall<'_>) -> Result<Started, Problem> {
        let input: BatchExecuteInput = call.input()?;
        if input.calls.is_empty() || input.calls.len() > MAX_BATCH {
            return Err(Problem::invalid(
                "calls",
                format!("{} calls; a batch has 1 to {MAX_BATCH}", input.calls.len()),
            ));
        }
        let state = call.state;
        let catalog = state.upstreams.catalog_for(call.tenant());
        let mut calls = Vec::with_capacity(input.calls.len());
        for (i, c) in input.calls.into_iter().enumerate() {
            let field = format!("calls[{i}].tool");
            let Some(tool) = catalog.get(&c.tool).cloned() else {
                let why =
                    if state.tools.family(&c.tool).is_some() || state.own_tools.contains(&c.tool) {
                        format!("{} is AgentVoiceBox's own tool: call it directly", c.tool)
                    } else {
                        format!("no mounted upstream tool is called {:?}", c.tool)
                    };
                return Err(Problem::invalid(field, why));
            };
            if tool.approval {
                return Err(Problem::new(
                    ErrorKind::ApprovalRequired,
                    format!(
                        "mcp_servers.{}.require_approval covers {}; call it on its own",
                        tool.server, tool.upstream_tool
                    ),
                )
                .with_field(field));
            }
            calls.push((c.tool, tool, c.arguments));
        }
        let job_id = start_batch(state, call.caller, calls).await?;
        let out = BatchExecuteOutput {
            resource_uri: resource_uri(&job_id),
            job_id: job_id.clone(),
            status: "running".into(),
            results: Vec::new(),
        };
        Ok(Started::Running {
            still_running: structured(
                format!("Job {job_id} is still running; follow it with get_job"),
                &out,
            ),
            job_id,
        })
    }

    fn structured(&self, _state: &ApiState, job_id: &str, output: Value) -> Result<Value, Problem> {
        let results: Vec<BatchItem> = output_as(output)?;
        serde_json::to_value(BatchExecuteOutput {
            resource_uri: resource_uri(job_id),
            job_id: job_id.to_string(),
            status: "completed".into(),
            results,
        })
        .map_err(|e| Problem::internal("the job's result cannot be encoded").with_source(e))
    }

    async fn render(&self, state: &ApiState, job_id: &str, output: Value) -> CallToolResult {
        match self.structured(state, job_id, output) {
            Ok(value) => {
                let results = value["results"].as_array().map_or(&[][..], Vec::as_slice);
                let failed = results.iter().filter(|r| !r["error"].is_null()).count();
                let text = format!(
                    "Job {job_id}: {} calls, {failed} without a result",
                    results.len()
                );
                structured(text, &value)
            }
            Err(p) => p.into_tool_result(),
        }
    }
}
