//! The `avb://jobs/{job_id}` resource: a job's view as JSON, readable by URI and subscribable,
//! through `subscriptions/listen` (protocol 2026-07-28) or the legacy `resources/subscribe`:
//! while subscribed, every change of status or progress sends `notifications/resources/updated`,
//! and the watch of a job ends when the job does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::RoleServer;
use rmcp::model::{
    ListResourceTemplatesResult, ReadResourceResult, ResourceContents, ResourceTemplate,
    ResourceUpdatedNotificationParam, SubscriptionFilter,
};
use rmcp::service::{Peer, RequestContext, SubscriptionContext, SubscriptionSink};
use tokio_util::sync::CancellationToken;

use super::AvbServer;
use crate::jobs::view::{LookupError, get_job};

pub const JOB_URI_PREFIX: &str = "avb://jobs/";
/// How often a subscription re-reads its job.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Live subscriptions of one MCP session, by URI.
#[derive(Clone, Default)]
pub struct Subscriptions(Arc<Mutex<HashMap<String, CancellationToken>>>);

impl Subscriptions {
    fn insert(&self, uri: &str) -> Option<CancellationToken> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.contains_key(uri) {
            return None;
        }
        let token = CancellationToken::new();
        map.insert(uri.to_string(), token.clone());
        Some(token)
    }

    fn remove(&self, uri: &str) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = map.remove(uri) {
            t.cancel();
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        // The last clone going away means the session ended: stop its watchers.
        if Arc::strong_count(&self.0) == 1 {
            let map = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.values().for_each(CancellationToken::cancel);
        }
    }
}

fn job_id_of(uri: &str) -> Result<&str, McpError> {
    uri.strip_prefix(JOB_URI_PREFIX).ok_or_else(|| {
        McpError::resource_not_found(
            format!("unknown resource {uri}; this server serves {JOB_URI_PREFIX}{{job_id}}"),
            None,
        )
    })
}

fn lookup_error(uri: &str, e: LookupError) -> McpError {
    match e {
        LookupError::Unavailable(m) => {
            McpError::internal_error(format!("Temporal is unavailable: {m}"), None)
        }
        other => McpError::resource_not_found(format!("{uri}: {other}"), None),
    }
}

impl AvbServer {
    pub(crate) fn job_templates() -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{JOB_URI_PREFIX}{{job_id}}"), "job")
                .with_title("Durable job")
                .with_description(
                    "Status, progress and result of a job started by a tool call (JSON); \
                     subscribe for updates until it ends.",
                )
                .with_mime_type("application/json"),
        ])
    }

    pub(crate) async fn read_job_resource(
        &self,
        uri: &str,
    ) -> Result<ReadResourceResult, McpError> {
        let job_id = job_id_of(uri)?;
        let state = &self.state;
        let record = get_job(state, state.tenant(), job_id)
            .await
            .map_err(|e| lookup_error(uri, e))?;
        let text = serde_json::to_string_pretty(&record.view)
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::TextResourceContents {
                uri: uri.to_string(),
                mime_type: Some("application/json".into()),
                text,
                meta: None,
            },
        ]))
    }

    pub(crate) async fn subscribe_job(
        &self,
        uri: &str,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let job_id = job_id_of(uri)?.to_string();
        let state = self.state.clone();
        // Fail now for unknown jobs rather than watching nothing.
        let first = get_job(&state, state.tenant(), &job_id)
            .await
            .map_err(|e| lookup_error(uri, e))?;
        let Some(stop) = self.subscriptions.insert(uri) else {
            return Ok(()); // already subscribed
        };
        let subs = self.subscriptions.clone();
        let (uri, notify) = (uri.to_string(), Notifier::Legacy(context.peer.clone()));
        let last = fingerprint(&first.view);
        tokio::spawn(async move {
            let done = watch(&state, &job_id, &uri, &notify, &stop, last).await;
            tracing::debug!(%uri, ?done, "job subscription ended");
            subs.remove(&uri);
        });
        Ok(())
    }

    pub(crate) fn unsubscribe_job(&self, uri: &str) {
        self.subscriptions.remove(uri);
    }

    /// Of a `subscriptions/listen` filter, the job resources (their existence is checked when
    /// the watch starts: an unknown job's watch ends at once).
    pub(crate) fn job_subscription_filter(requested: &SubscriptionFilter) -> SubscriptionFilter {
        let uris = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|u| u.starts_with(JOB_URI_PREFIX))
            .cloned();
        SubscriptionFilter::builder()
            .resource_subscriptions(uris)
            .build()
    }

    /// Runs one `subscriptions/listen` stream: watches every accepted job until the client
    /// cancels the stream or all of them ended.
    pub(crate) async fn listen_jobs(&self, context: SubscriptionContext) {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let stop = CancellationToken::new();
        let watches = uris.into_iter().map(|uri| {
            let (state, stop) = (self.state.clone(), stop.clone());
            let notify = Notifier::Listen(context.sink().clone());
            async move {
                if let Some(job_id) = uri.strip_prefix(JOB_URI_PREFIX) {
                    watch(&state, job_id, &uri, &notify, &stop, String::new()).await;
                }
            }
        });
        let all = futures::future::join_all(watches);
        tokio::select! {
            () = context.cancelled() => stop.cancel(),
            _ = all => {}
        }
    }
}

/// Where updates go: the session (legacy subscribe) or one listen stream.
enum Notifier {
    Legacy(Peer<RoleServer>),
    Listen(SubscriptionSink),
}

impl Notifier {
    /// False once nobody can hear it any more.
    async fn updated(&self, uri: &str) -> bool {
        match self {
            Self::Legacy(peer) => peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.to_string()))
                .await
                .is_ok(),
            Self::Listen(sink) => sink.notify_resource_updated(uri.to_string()).await.is_ok(),
        }
    }
}

/// What a subscriber is told about: a change of status or progress.
fn fingerprint(view: &crate::jobs::view::JobView) -> String {
    format!(
        "{}|{:?}|{}",
        view.status.as_str(),
        view.progress.as_ref().map(|p| (p.done, p.total, p.attempt)),
        view.cancel_requested
    )
}

async fn watch(
    state: &crate::state::ApiState,
    job_id: &str,
    uri: &str,
    notify: &Notifier,
    stop: &CancellationToken,
    mut last: String,
) -> &'static str {
    loop {
        tokio::select! {
            () = stop.cancelled() => return "unsubscribed",
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let record = match get_job(state, state.tenant(), job_id).await {
            Ok(r) => r,
            Err(LookupError::NotFound(_)) => return "no such job",
            Err(_) => continue, // Temporal briefly away: keep watching
        };
        let now = fingerprint(&record.view);
        if now != last {
            last = now;
            if !notify.updated(uri).await {
                return "session closed";
            }
        }
        if record.view.status.is_terminal() {
            return "job ended";
        }
    }
}
