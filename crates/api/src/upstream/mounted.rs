//! Tools mounted from upstream MCP servers, beside our own: listed after ours, called through
//! the registry's `Mounted` family (durably by default), and announced with `notifications/tools/list_changed`
//! whenever the catalog changes — on the session for clients of session protocols, on their
//! `subscriptions/listen` stream for clients of 2026-07-28.

use avb_upstream::MountedTool;
use rmcp::RoleServer;
use rmcp::model::Tool;
use rmcp::service::{Peer, SubscriptionContext};

use crate::mcp::AvbServer;

/// How often a session's tool-change watcher checks that its session is still there.
const SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a call or a tool list that arrives before the first upstream check waits for it
/// (a check has its own timeouts; this only bounds a wedged one).
const FIRST_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl AvbServer {
    /// Waits for the first upstream check, so that a replica that has just started does not
    /// list its tools without the mounted ones or call one of them "not found".
    pub(crate) async fn upstreams_checked(&self) {
        self.state.upstreams.first_check(FIRST_CHECK_WAIT).await;
    }

    /// Every tool the caller's tenant can call: ours (device tools only where a home serves the
    /// tenant), then the mounted ones.
    pub(crate) fn all_tools(&self) -> Vec<Tool> {
        let mut tools = self.tool_router.list_all();
        tools.retain(|t| crate::devices::offered_to(&self.state, self.tenant(), &t.name));
        tools.extend(
            self.state
                .upstreams
                .catalog_for(self.tenant())
                .definitions()
                .cloned(),
        );
        tools
    }

    /// The mounted tool called `name`, unless it is one of ours.
    pub(crate) fn mounted(&self, name: &str) -> Option<MountedTool> {
        if self.tool_router.map.contains_key(name) {
            return None;
        }
        self.state
            .upstreams
            .catalog_for(self.tenant())
            .get(name)
            .cloned()
    }

    /// Tells a session-protocol client of every catalog change until it goes away.
    pub(crate) fn announce_tool_changes(&self, peer: Peer<RoleServer>) {
        if !self.state.upstreams.has_servers() && self.state.config.source_file.is_none() {
            return;
        }
        let mut changes = self.state.upstreams.subscribe();
        changes.mark_unchanged();
        tokio::spawn(async move {
            loop {
                // Wakes now and then to notice a session that ended without another change.
                match tokio::time::timeout(SESSION_CHECK, changes.changed()).await {
                    Ok(Ok(())) => {
                        if peer.notify_tool_list_changed().await.is_err() {
                            break;
                        }
                    }
                    Ok(Err(_)) => break,
                    Err(_) if peer.is_transport_closed() => break,
                    Err(_) => {}
                }
            }
        });
    }

    /// One `subscriptions/listen` stream's share: tool list changes, if the client asked.
    pub(crate) async fn listen_tool_changes(&self, context: &SubscriptionContext) {
        if context.accepted().tools_list_changed != Some(true) {
            return;
        }
        let mut changes = self.state.upstreams.subscribe();
        changes.mark_unchanged();
        let sink = context.sink().clone();
        let announce = async {
            while changes.changed().await.is_ok() {
                if sink.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            () = context.cancelled() => {}
            () = announce => {}
        }
    }
}
