//! The durable tools, one line per family. Adding a durable tool: its family folder implements
//! `jobs::durable::DurableTool`, and one line here lists it; `tools/list`, direct calls, MCP
//! tasks, `get_job`/`list_jobs`, the REST jobs and the metrics all read this registry.

use std::sync::Arc;

use crate::jobs::durable::Registry;

/// Built once per process (`ApiState::new`).
pub fn durable_tools() -> Registry {
    Registry::new(
        vec![
            Arc::new(crate::speech::Speech),
            Arc::new(crate::echo::Echo),
            Arc::new(crate::devices::commands::DeviceCommands),
            Arc::new(crate::upstream::aggregator::Batch),
        ],
        // Jobs of tools mounted from upstream servers (names from each tenant's catalog).
        Arc::new(crate::upstream::Mounted),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_tool_has_one_family_and_a_definition() {
        let registry = durable_tools();
        let mut tools = registry.job_tools();
        tools.sort_unstable();
        assert_eq!(
            tools,
            [
                "batch_execute",
                "call_service",
                "durable_echo",
                "generate_speech",
                "smart_home_control"
            ]
        );
        for family in registry.families() {
            let defined: Vec<_> = family
                .definitions()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            assert_eq!(defined, family.names(), "definitions match names");
        }
        let mut tasks = registry.task_tools();
        tasks.sort_unstable();
        assert_eq!(
            tasks,
            [
                "call_service",
                "durable_echo",
                "generate_speech",
                "smart_home_control"
            ]
        );
    }
}
