//! The mounted catalog: every offered tool of every reachable upstream, named `<namespace>_<tool>`,
//! filtered by `allowed_tools`. When two servers offer the same name, the lower `priority` wins
//! (then the server name, so the choice never depends on timing); AgentVoiceBox's own tools always
//! win over upstream ones.

use std::collections::BTreeMap;

use avb_config::UpstreamServer;
use rmcp::model::Tool;
use serde::Serialize;

/// `_meta` key naming where a mounted tool comes from.
pub const UPSTREAM_META: &str = "io.agentvoicebox/upstream";

#[derive(Debug, Clone, PartialEq)]
pub struct MountedTool {
    /// The server that serves it and the tool's name there.
    pub server: String,
    pub upstream_tool: String,
    /// Whether a failed call may be tried again: the tool says it is read-only or idempotent,
    /// or the server's `retry_tools` lists it.
    pub retry: bool,
    /// The server's `require_approval` covers this tool.
    pub approval: bool,
    /// The definition agents see (renamed; schemas and annotations as the upstream gave them).
    pub definition: Tool,
}

/// A tool name two sources offered, and who lost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shadowed {
    pub name: String,
    /// `server` whose tool was not mounted.
    pub server: String,
    /// The winner: a server name, or `agentvoicebox` for our own tools.
    pub served_by: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub tools: BTreeMap<String, MountedTool>,
    pub shadowed: Vec<Shadowed>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&MountedTool> {
        self.tools.get(name)
    }

    pub fn definitions(&self) -> impl Iterator<Item = &Tool> {
        self.tools.values().map(|t| &t.definition)
    }

    /// Tools of one server in this catalog.
    pub fn count_of(&self, server: &str) -> usize {
        self.tools.values().filter(|t| t.server == server).count()
    }
}

/// Builds the catalog from each reachable server's tool list.
pub fn mount(
    servers: &BTreeMap<String, UpstreamServer>,
    listed: &BTreeMap<String, Vec<Tool>>,
    is_own_tool: &dyn Fn(&str) -> bool,
) -> Catalog {
    let mut catalog = Catalog::default();
    // Best first: lower priority value, then server name.
    let mut order: Vec<(&String, &UpstreamServer)> = servers
        .iter()
        .filter(|(name, s)| s.enabled && listed.contains_key(*name))
        .collect();
    order.sort_by(|(an, a), (bn, b)| a.priority.cmp(&b.priority).then(an.cmp(bn)));
    for (server, settings) in order {
        for tool in &listed[server] {
            if !settings.offers(&tool.name) {
                continue;
            }
            let name = format!("{}_{}", settings.namespace(server), tool.name);
            if is_own_tool(&name) {
                catalog.shadowed.push(Shadowed {
                    name,
                    server: server.clone(),
                    served_by: "agentvoicebox".into(),
                });
                continue;
            }
            if let Some(winner) = catalog.tools.get(&name) {
                catalog.shadowed.push(Shadowed {
                    name,
                    server: server.clone(),
                    served_by: winner.server.clone(),
                });
                continue;
            }
            let hints = tool.annotations.as_ref();
            let hinted_safe = hints
                .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
            let retry = (settings.trust_hints && hinted_safe)
                || settings.retry_tools.iter().any(|t| *t == tool.name);
            let mut definition = tool.clone();
            definition.name = name.clone().into();
            let origin = match &settings.description {
                Some(d) => format!("[{server}: {d}]"),
                None => format!("[upstream {server}]"),
            };
            definition.description = Some(match &tool.description {
                Some(d) => format!("{d} {origin}").into(),
                None => origin.into(),
            });
            let mut meta = definition.meta.clone().unwrap_or_default();
            meta.insert(
                UPSTREAM_META.to_string(),
                serde_json::json!({ "server": server, "tool": tool.name }),
            );
            definition.meta = Some(meta);
            catalog.tools.insert(
                name,
                MountedTool {
                    server: server.clone(),
                    upstream_tool: tool.name.to_string(),
                    retry,
                    approval: settings.require_approval.requires(&tool.name),
                    definition,
                },
            );
        }
    }
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ToolAnnotations;
    use std::sync::Arc;

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_string(), "d", Arc::new(serde_json::Map::new()))
    }

    fn server(text: &str) -> UpstreamServer {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn tools_are_namespaced_filtered_and_conflicts_go_to_the_lower_priority() {
        let servers = BTreeMap::from([
            (
                "fs".to_string(),
                server("command = \"x\"\nallowed_tools = [\"read\"]\n"),
            ),
            (
                "remote".to_string(),
                server("server_url = \"http://h\"\nnamespace = \"fs\"\npriority = 10\n"),
            ),
            (
                "local".to_string(),
                server("command = \"y\"\nnamespace = \"fs\"\npriority = 20\n"),
            ),
            ("get".to_string(), server("command = \"z\"\n")),
        ]);
        let mut read_only = tool("stat");
        read_only.annotations = Some(ToolAnnotations::new().read_only(true));
        let listed = BTreeMap::from([
            ("fs".to_string(), vec![tool("read"), tool("write")]),
            ("remote".to_string(), vec![tool("read"), read_only.clone()]),
            ("local".to_string(), vec![tool("read"), tool("stat")]),
            ("get".to_string(), vec![tool("job")]),
        ]);
        let own = |n: &str| n == "get_job";
        let c = mount(&servers, &listed, &own);
        let names: Vec<&str> = c.tools.keys().map(String::as_str).collect();
        assert_eq!(names, ["fs_read", "fs_stat"]);
        assert_eq!(c.tools["fs_read"].server, "remote", "priority 10 wins");
        assert_eq!(c.tools["fs_read"].upstream_tool, "read");
        assert!(c.tools["fs_stat"].retry, "read-only tools retry");
        assert!(!c.tools["fs_read"].retry);
        assert!(
            c.shadowed.iter().any(|s| s.name == "get_job"
                && s.server == "get"
                && s.served_by == "agentvoicebox")
        );
        assert!(
            c.shadowed
                .iter()
                .any(|s| s.name == "fs_read" && s.server == "local" && s.served_by == "remote")
        );
        let meta = c.tools["fs_read"].definition.meta.clone().expect("meta");
        assert_eq!(meta[UPSTREAM_META]["server"], "remote");
    }

    #[test]
    fn an_unlisted_or_disabled_server_mounts_nothing() {
        let servers = BTreeMap::from([
            (
                "a".to_string(),
                server("command = \"x\"\nenabled = false\n"),
            ),
            ("b".to_string(), server("command = \"x\"\n")),
        ]);
        let listed = BTreeMap::from([("a".to_string(), vec![tool("t")])]);
        assert!(mount(&servers, &listed, &|_| false).tools.is_empty());
    }
}
