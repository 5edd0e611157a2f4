//! The LAN-backend seed's higher-order tools over the whole catalog: `search_tools` finds tools
//! (ours and mounted ones) by words, `batch_execute` runs several mounted tools' calls as one
//! durable job.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::AvbServer;
use super::results::{structured, tool_error};
use crate::jobs::output::resource_uri;
use crate::jobs::view::failure_of;
use crate::upstream::{self, BatchOutcome};
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
            return tool_error(
                "InvalidInput",
                Some("query"),
                "give at least one word to look for",
                json!({}),
            );
        }
        let limit = input.limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return tool_error(
                "InvalidInput",
                Some("limit"),
                &format!("{limit} is out of range; use 1 to 50"),
                json!({}),
            );
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

    /// Runs several calls of tools mounted from upstream MCP servers as one durable job, one
    /// after the other, and returns every result in order.
    #[tool(
        name = "batch_execute",
        output_schema = schema_for_output::<BatchExecuteOutput>()
    )]
    async fn batch_execute(
        &self,
        Parameters(input): Parameters<BatchExecuteInput>,
    ) -> CallToolResult {
        if input.calls.is_empty() || input.calls.len() > MAX_BATCH {
            return tool_error(
                "InvalidInput",
                Some("calls"),
                &format!("{} calls; a batch has 1 to {MAX_BATCH}", input.calls.len()),
                json!({}),
            );
        }
        let mut calls = Vec::with_capacity(input.calls.len());
        for (i, c) in input.calls.into_iter().enumerate() {
            let field = format!("calls[{i}].tool");
            let Some(tool) = self.mounted(&c.tool) else {
                let why = if self.tool_router.map.contains_key(c.tool.as_str()) {
                    format!("{} is AgentVoiceBox's own tool: call it directly", c.tool)
                } else {
                    format!("no mounted upstream tool is called {:?}", c.tool)
                };
                return tool_error("InvalidInput", Some(&field), &why, json!({}));
            };
            if tool.approval {
                return tool_error(
                    "ApprovalRequired",
                    Some(&field),
                    &format!(
                        "mcp_servers.{}.require_approval covers {}; call it on its own",
                        tool.server, tool.upstream_tool
                    ),
                    json!({}),
                );
            }
            calls.push((c.tool, tool, c.arguments));
        }
        match upstream::batch(&self.state, self.tenant(), calls).await {
            Ok(BatchOutcome::Done(job_id, results)) => {
                let failed = results.iter().filter(|r| r.error.is_some()).count();
                let text = format!(
                    "Job {job_id}: {} calls, {failed} without a result",
                    results.len()
                );
                structured(
                    text,
                    &BatchExecuteOutput {
                        resource_uri: resource_uri(&job_id),
                        job_id,
                        status: "completed".into(),
                        results,
                    },
                )
            }
            Ok(BatchOutcome::Running(job_id)) => structured(
                format!("Job {job_id} is still running; follow it with get_job"),
                &BatchExecuteOutput {
                    resource_uri: resource_uri(&job_id),
                    job_id,
                    status: "running".into(),
                    results: Vec::new(),
                },
            ),
            Err(e) => {
                let failure = failure_of(&e);
                tool_error(&failure.kind, None, &failure.message, json!({}))
            }
        }
    }
}
