//! `get_balance`, `get_usage`, `grant_credits`: the caller's own tenant's credit account (see
//! `crate::billing`). Granting needs a HUMAN key.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::auth::Role;
use crate::billing::{self, BalanceView, BillingError, GrantInput, GrantView, UsagePage};
use crate::core::problem::Problem;
use crate::mcp::AvbServer;
use crate::mcp::results::structured;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceInput {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageInput {
    /// Records to return, newest first: 1 to 500 (default 50).
    pub limit: Option<u32>,
}

fn billing_error(e: BillingError) -> CallToolResult {
    Problem::from(e).into_tool_result()
}

#[tool_router(router = billing_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Your tenant's credits: available (what new jobs can use) and held (reserved by running
    /// jobs).
    #[tool(
        name = "get_balance",
        output_schema = schema_for_output::<BalanceView>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_balance_tool(
        &self,
        Parameters(_input): Parameters<BalanceInput>,
    ) -> CallToolResult {
        match billing::balance(&self.state, self.tenant()).await {
            Ok(b) => structured(
                format!(
                    "Tenant {}: {} credits available, {} held.",
                    b.tenant, b.available, b.held
                ),
                &b,
            ),
            Err(e) => billing_error(e),
        }
    }

    /// Your tenant's usage records, newest first: per settled job, the tool, units used, price
    /// (credits per 1 000 units) and credits charged.
    #[tool(
        name = "get_usage",
        output_schema = schema_for_output::<UsagePage>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_usage_tool(&self, Parameters(input): Parameters<UsageInput>) -> CallToolResult {
        match billing::usage(&self.state, self.tenant(), input.limit).await {
            Ok(page) => {
                let mut lines: Vec<String> = page
                    .records
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {} {} {}: {} credits",
                            r.created_at, r.job_id, r.tool, r.quantity, r.unit, r.credits
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push(format!("No usage recorded for tenant {}.", page.tenant));
                }
                structured(lines.join("\n"), &page)
            }
            Err(e) => billing_error(e),
        }
    }

    /// Adds credits to your tenant's balance (HUMAN keys only). Pass an idempotency_key to make
    /// retries safe: the same key grants once.
    #[tool(
        name = "grant_credits",
        output_schema = schema_for_output::<GrantView>(),
        annotations(destructive_hint = false)
    )]
    async fn grant_credits_tool(
        &self,
        Parameters(input): Parameters<GrantInput>,
    ) -> CallToolResult {
        let role = self.role().unwrap_or(Role::Agent);
        match billing::grant(&self.state, self.tenant(), role, &input, "MCP").await {
            Ok(g) => {
                let what = if g.replayed {
                    "already granted (same idempotency_key; nothing added)"
                } else {
                    "granted"
                };
                structured(
                    format!(
                        "{} credits {what} to tenant {}: {} available, {} held.",
                        g.credits, g.tenant, g.available, g.held
                    ),
                    &g,
                )
            }
            Err(e) => billing_error(e),
        }
    }
}
