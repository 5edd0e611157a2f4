//! Following one job: its view now and after every change, until it ends. Serves the REST event
//! stream and the `avb://jobs/{id}` subscriptions alike.

use std::time::Duration;

use futures::Stream;

use super::JobScope;
use super::view::{JobView, LookupError, get_job};
use crate::state::ApiState;

/// How often a followed job is re-read.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// What a follower is told about: a change of status, progress or cancellation.
fn fingerprint(view: &JobView) -> String {
    serde_json::to_string(&(&view.status, &view.progress, view.cancel_requested))
        .unwrap_or_default()
}

/// Yields `first` (or the job's view, read now), then the view after every change, and ends
/// after the first terminal view. Ends at once if the job is unknown (in this scope); keeps
/// going while Temporal is briefly unavailable.
pub fn follow(
    state: ApiState,
    scope: JobScope,
    job_id: String,
    first: Option<JobView>,
) -> impl Stream<Item = JobView> {
    struct Follow {
        state: ApiState,
        scope: JobScope,
        job_id: String,
        pending: Option<JobView>,
        last: Option<String>,
        polled: bool,
        ended: bool,
    }
    let start = Follow {
        state,
        scope,
        job_id,
        polled: first.is_some(),
        pending: first,
        last: None,
        ended: false,
    };
    futures::stream::unfold(start, |mut f| async move {
        if f.ended {
            return None;
        }
        loop {
            let view = match f.pending.take() {
                Some(v) => v,
                None => {
                    if f.polled {
                        tokio::time::sleep(FOLLOW_EVERY).await;
                    }
                    f.polled = true;
                    match get_job(&f.state, &f.scope, &f.job_id).await {
                        Ok(r) => r.view,
                        Err(LookupError::NotFound(_)) => return None,
                        Err(_) => continue,
                    }
                }
            };
            let now = fingerprint(&view);
            if f.last.as_ref() != Some(&now) || view.status.is_terminal() {
                f.last = Some(now);
                f.ended = view.status.is_terminal();
                return Some((view, f));
            }
        }
    })
}
