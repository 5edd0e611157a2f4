//! The `avb://audio/{job_id}` resource (a finished speech job's WAV as a blob: what a result
//! too large to inline links to) and the `avb://jobs/{job_id}` resource: a job's view as JSON,
//! readable by URI and subscribable,
//! through `subscriptions/listen` (protocol 2026-07-28) or the legacy `resources/subscribe`:
//! while subscribed, every change of status or progress sends `notifications/resources/updated`,
//! and the watch of a job ends when the job does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::StreamExt;
use rmcp::ErrorData as McpError;
use rmcp::RoleServer;
use rmcp::model::{
    ListResourceTemplatesResult, ReadResourceResult, ResourceContents, ResourceTemplate,
    ResourceUpdatedNotificationParam, SubscriptionFilter,
};
use rmcp::service::{Peer, RequestContext, SubscriptionContext, SubscriptionSink};
use tokio_util::sync::CancellationToken;

use super::AvbServer;
use crate::jobs::follow::follow;
use crate::jobs::view::{JobView, LookupError, get_job};
use crate::state::ApiState;

pub const JOB_URI_PREFIX: &str = "avb://jobs/";

/// Most jobs one `subscriptions/listen` stream, or one session's `resources/subscribe`, watches.
pub const MAX_LISTENED_JOBS: usize = 100;

/// Live legacy subscriptions of one MCP session, by URI. Watchers hold it weakly, so when the
/// session's server goes away the map drops and stops them all.
#[derive(Clone, Default)]
pub struct Subscriptions(Arc<SubscriptionMap>);

#[derive(Default)]
pub struct SubscriptionMap(Mutex<HashMap<String, CancellationToken>>);

impl SubscriptionMap {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remove(&self, uri: &str) {
        if let Some(t) = self.lock().remove(uri) {
            t.cancel();
        }
    }
}

impl Drop for SubscriptionMap {
    fn drop(&mut self) {
        self.lock().values().for_each(CancellationToken::cancel);
    }
}

impl Subscriptions {
    fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// A token for a new subscription to `uri`; `None` when already subscribed.
    fn insert(&self, uri: &str) -> Option<CancellationToken> {
        let mut map = self.0.lock();
        if map.contains_key(uri) {
            return None;
        }
        let token = CancellationToken::new();
        map.insert(uri.to_string(), token.clone());
        Some(token)
    }

    fn remove(&self, uri: &str) {
        self.0.remove(uri);
    }

    fn downgrade(&self) -> Weak<SubscriptionMap> {
        Arc::downgrade(&self.0)
    }
}

fn job_id_of(uri: &str) -> Result<&str, McpError> {
    uri.strip_prefix(JOB_URI_PREFIX).ok_or_else(|| {
        McpError::resource_not_found(
            format!("unknown resource {uri}; this server serves {JOB_URI_PREFIX}{{job_id}}"),
            Some(serde_json::json!({ "uri": uri })),
        )
    })
}

fn lookup_error(uri: &str, e: LookupError) -> McpError {
    match e {
        LookupError::Unavailable(m) => {
            McpError::internal_error(format!("Temporal is unavailable: {m}"), None)
        }
        other => McpError::resource_not_found(
            format!("{uri}: {other}"),
            Some(serde_json::json!({ "uri": uri })),
        ),
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
            ResourceTemplate::new(
                format!("{}{{job_id}}", crate::speech::AUDIO_URI_PREFIX),
                "audio",
            )
            .with_title("Speech audio")
            .with_description(
                "The audio of a finished generate_speech job (24 kHz mono, in the format the call \
                 asked for; WAV by default), as a base64 blob.",
            )
            .with_mime_type("audio/wav"),
        ])
    }

    /// `avb://audio/{job_id}`: the audio of the caller's finished speech job, in the
    /// format the job asked for, base64.
    /// `None` for other URIs.
    pub(crate) async fn read_audio_resource(
        &self,
        uri: &str,
    ) -> Option<Result<ReadResourceResult, McpError>> {
        use base64::Engine as _;
        let job_id = uri.strip_prefix(crate::speech::AUDIO_URI_PREFIX)?;
        let state = &self.state;
        let read = async {
            let artifact = crate::speech::finished_audio(state, &self.scope(), job_id)
                .await
                .map_err(|p| match p.kind {
                    crate::core::problem::ErrorKind::NotFound => McpError::resource_not_found(
                        format!("{uri}: {}", p.message),
                        Some(serde_json::json!({ "uri": uri })),
                    ),
                    _ => McpError::invalid_params(
                        format!("{uri}: {}", p.message),
                        Some(serde_json::json!({ "uri": uri })),
                    ),
                })?;
            let format = crate::speech::job_format(&artifact);
            let wav = crate::speech::audio_in(state, &artifact, format)
                .await
                .map_err(|p| McpError::internal_error(format!("{uri}: {}", p.message), None))?;
            let mut facts = rmcp::model::JsonObject::new();
            facts.insert("size".into(), serde_json::json!(wav.len()));
            facts.insert(
                "durationSecs".into(),
                serde_json::json!(artifact.duration_secs),
            );
            let meta = rmcp::model::MetaObject(facts);
            let blob = base64::engine::general_purpose::STANDARD.encode(&wav);
            Ok(ReadResourceResult::new(vec![
                ResourceContents::blob(blob, uri)
                    .with_mime_type(format.mime_type())
                    .with_meta(meta),
            ]))
        };
        Some(read.await)
    }

    pub(crate) async fn read_job_resource(
        &self,
        uri: &str,
    ) -> Result<ReadResourceResult, McpError> {
        let job_id = job_id_of(uri)?;
        let state = &self.state;
        let record = get_job(state, &self.scope(), job_id)
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
        let scope = self.scope();
        // Fail now for unknown jobs rather than watching nothing.
        let first = get_job(&state, &scope, &job_id)
            .await
            .map_err(|e| lookup_error(uri, e))?;
        if self.subscriptions.len() >= MAX_LISTENED_JOBS {
            return Err(McpError::invalid_params(
                format!(
                    "this session watches {MAX_LISTENED_JOBS} jobs, the most one session may; \
                     unsubscribe from finished ones first"
                ),
                None,
            ));
        }
        let Some(stop) = self.subscriptions.insert(uri) else {
            return Ok(()); // already subscribed
        };
        let subs = self.subscriptions.downgrade();
        let (uri, notify) = (uri.to_string(), Notifier::Legacy(context.peer.clone()));
        tokio::spawn(async move {
            let done = watch(state, scope, job_id, Some(first.view), &uri, &notify, &stop).await;
            tracing::debug!(%uri, done, "job subscription ended");
            if let Some(subs) = subs.upgrade() {
                subs.remove(&uri);
            }
        });
        Ok(())
    }

    pub(crate) fn unsubscribe_job(&self, uri: &str) {
        self.subscriptions.remove(uri);
    }

    /// Of a `subscriptions/listen` filter, the job resources (their existence is checked when
    /// the watch starts: an unknown job's watch ends at once).
    pub(crate) fn job_subscription_filter(requested: &SubscriptionFilter) -> SubscriptionFilter {
        // Each URI is a watch polling Temporal: duplicates are one, and one stream takes at
        // most `MAX_LISTENED_JOBS` (the accepted filter tells the client which).
        let mut uris = std::collections::BTreeSet::new();
        for uri in requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|u| u.starts_with(JOB_URI_PREFIX))
        {
            if uris.len() >= MAX_LISTENED_JOBS {
                break;
            }
            uris.insert(uri.clone());
        }
        SubscriptionFilter::builder()
            .resource_subscriptions(uris)
            .build()
    }

    /// Runs one `subscriptions/listen` stream: watches every accepted job until the client
    /// cancels the stream or all of them ended.
    pub(crate) async fn listen_jobs(&self, context: &SubscriptionContext) {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let stop = CancellationToken::new();
        let watches = uris.into_iter().map(|uri| {
            let (state, stop) = (self.state.clone(), stop.clone());
            let scope = self.scope();
            let notify = Notifier::Listen(context.sink().clone());
            async move {
                if let Some(job_id) = uri.strip_prefix(JOB_URI_PREFIX) {
                    watch(state, scope, job_id.to_string(), None, &uri, &notify, &stop).await;
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

/// Notifies `uri` on every change of the job after the state the subscriber started from.
async fn watch(
    state: ApiState,
    scope: crate::jobs::JobScope,
    job_id: String,
    first: Option<JobView>,
    uri: &str,
    notify: &Notifier,
    stop: &CancellationToken,
) -> &'static str {
    // The first view is the baseline the subscriber already has (or can read): not a change.
    let mut changes = Box::pin(follow(state, scope, job_id, first).skip(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return "unsubscribed",
            next = changes.next() => match next {
                None => return "job ended",
                Some(_) => {
                    if !notify.updated(uri).await {
                        return "session closed";
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listen filter with the same job a thousand times and 300 jobs besides is one watch per
    /// job, at most `MAX_LISTENED_JOBS` of them; other URIs are not watched.
    #[test]
    fn listened_jobs_are_deduplicated_and_capped() {
        let mut uris: Vec<String> = std::iter::repeat_n("avb://jobs/job_same".to_string(), 1000)
            .chain((0..300).map(|i| format!("avb://jobs/job_{i:03}")))
            .collect();
        uris.push("file:///etc/passwd".into());
        let requested = SubscriptionFilter::builder()
            .resource_subscriptions(uris)
            .build();
        let accepted = AvbServer::job_subscription_filter(&requested)
            .resource_subscriptions
            .unwrap_or_default();
        assert_eq!(accepted.len(), MAX_LISTENED_JOBS);
        assert!(accepted.contains(&"avb://jobs/job_same".to_string()));
        let unique: std::collections::BTreeSet<_> = accepted.iter().collect();
        assert_eq!(unique.len(), accepted.len(), "duplicates");
        assert!(accepted.iter().all(|u| u.starts_with(JOB_URI_PREFIX)));
    }
}
