//! Named activity profiles: where each family's activities run (task queue), how long one attempt
//! may take, and how Temporal retries them. Workflows take their options from here instead of
//! building them inline, so every timeout and retry value is in one place.
//!
//! The values are part of the recorded histories' commands (an `ActivityTaskScheduled` event
//! carries them), so changing one changes new jobs only; the `profiles_keep_their_values` test
//! pins them. Every profile that lists non-retryable kinds lists exactly
//! [`ErrorKind::non_retryable_names`].

use std::time::Duration;

use temporalio_common::RetryPolicy;
use temporalio_workflow::{
    ActivityCancellationType, ActivityOptions, LocalActivityOptions, WorkflowCancellationToken,
};

use crate::errors::ErrorKind;
use crate::queues;

/// Retries from `initial`, doubling up to `max`, at most `attempts` times (0: until it
/// succeeds); never on the kinds that do not heal on retry.
fn doubling(initial: Duration, max: Duration, attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(initial)
        .backoff_coefficient(2.0)
        .maximum_interval(max)
        .maximum_attempts(attempts)
        .non_retryable_error_types(ErrorKind::non_retryable_names())
        .build()
}

/// `synthesize_speech` on `avb-tts`: one attempt may take `budget` (see
/// `speech::synthesis_budget`), heartbeats every few seconds (30 s timeout), and a cancelled job
/// waits for the worker to stop between chunks. Five attempts, 1 s doubling to 30 s.
pub fn tts(budget: Duration) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(budget)
        .task_queue(queues::TTS.to_string())
        .heartbeat_timeout(Duration::from_secs(30))
        // A cancelled job ends only once the worker has stopped (it learns of the
        // cancellation from its next heartbeat, between chunks), so "cancelled" means stopped.
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(doubling(Duration::from_secs(1), Duration::from_secs(30), 5))
        .build()
}

/// The billing saga's steps on `avb-billing` (hold, settle, release). They retry until the
/// store answers (a down billing worker or database delays the job, it never skips a charge or
/// a release); only contradictions fail fast. They never follow the workflow's cancellation (a
/// token of their own): a hold already on its way must land, settle/release run after a
/// cancellation.
pub fn ledger() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .task_queue(queues::BILLING.to_string())
        .cancellation_token(WorkflowCancellationToken::new())
        .retry_policy(doubling(
            Duration::from_millis(500),
            Duration::from_secs(10),
            0,
        ))
        .build()
}

/// Device activities: `timeout` per attempt, at most `attempts`, 0.5 s doubling to 5 s
/// (unconfirmed changes and broker outages retry; an offline device fails at once).
fn devices_retry(attempts: u32) -> RetryPolicy {
    doubling(Duration::from_millis(500), Duration::from_secs(5), attempts)
}

/// Device activities dispatched to `avb-devices` (jobs recorded before device workflows ran
/// on the devices queue, or with `AVB_DEVICE_LOCAL_ACTIVITIES=false`).
fn devices(timeout: Duration, attempts: u32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(timeout)
        .task_queue(queues::DEVICES.to_string())
        .retry_policy(devices_retry(attempts))
        .build()
}

/// Device activities as local activities, in the devices worker that runs the workflow: the
/// same timeout and retries without a dispatch through Temporal per step.
fn devices_local(timeout: Duration, attempts: u32) -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .start_to_close_timeout(timeout)
        .retry_policy(devices_retry(attempts))
        .build()
}

const DEVICE_COMMAND: (Duration, u32) = (Duration::from_secs(30), 6);
const DEVICE_READ: (Duration, u32) = (Duration::from_secs(15), 3);

/// Planning and sending a device command: 30 s per attempt, six attempts.
pub fn device_command() -> ActivityOptions {
    devices(DEVICE_COMMAND.0, DEVICE_COMMAND.1)
}

/// [`device_command`] as a local activity.
pub fn device_command_local() -> LocalActivityOptions {
    devices_local(DEVICE_COMMAND.0, DEVICE_COMMAND.1)
}

/// Device reads are cheap to repeat but callers wait for them: 15 s per attempt, three attempts.
pub fn device_read() -> ActivityOptions {
    devices(DEVICE_READ.0, DEVICE_READ.1)
}

/// [`device_read`] as a local activity.
pub fn device_read_local() -> LocalActivityOptions {
    devices_local(DEVICE_READ.0, DEVICE_READ.1)
}

/// Provisioning activities on `avb-provisioning`. Engine faults retry (a stopped engine delays
/// the job; the status shows the attempt), bad templates and images fail fast: 20 attempts, 1 s
/// doubling to 15 s. Compensation must run after a cancellation too, so the steps never follow
/// the workflow's cancellation.
fn provisioning(start_to_close: Duration, heartbeat: Option<Duration>) -> ActivityOptions {
    let builder = ActivityOptions::with_start_to_close_timeout(start_to_close)
        .task_queue(queues::PROVISIONING.to_string())
        // Compensation must run after a cancellation too.
        .cancellation_token(WorkflowCancellationToken::new())
        .retry_policy(doubling(
            Duration::from_secs(1),
            Duration::from_secs(15),
            20,
        ));
    match heartbeat {
        Some(h) => builder.heartbeat_timeout(h).build(),
        None => builder.build(),
    }
}

/// Quick provisioning steps (records, events, settlement): 30 s per attempt.
pub fn provisioning_step() -> ActivityOptions {
    provisioning(Duration::from_secs(30), None)
}

/// Creating or removing replicas: 120 s per attempt.
pub fn provisioning_replicas() -> ActivityOptions {
    provisioning(Duration::from_secs(120), None)
}

/// Waiting for a replica to answer MCP: 120 s per attempt, heartbeats within 10 s.
pub fn provisioning_readiness() -> ActivityOptions {
    provisioning(Duration::from_secs(120), Some(Duration::from_secs(10)))
}

/// `options` on the queue of `host` (`avb-provisioning@<host>`), or unchanged without one: the
/// replica steps of a server placed on a host run where its replicas are. They wait for that
/// host's workers as long as it takes (a host that is gone for good: start a provisioning
/// worker with its name anywhere; it finds none of its replicas and the steps finish).
pub fn on_host(mut options: ActivityOptions, host: Option<&str>) -> ActivityOptions {
    if let Some(host) = host {
        options.task_queue = Some(queues::provisioning_on(host));
    }
    options
}

/// How long the reconciliation waits for a host's workers to take its run before reporting
/// the host unreachable (the other hosts are visited anyway; the next run tries again).
pub const RECONCILE_HOST_WAIT: Duration = Duration::from_secs(30);

/// [`reconcile`] on the queue of `host`, given up when no worker of it takes the run within
/// [`RECONCILE_HOST_WAIT`].
pub fn reconcile_on_host(host: &str) -> ActivityOptions {
    let mut options = on_host(reconcile(), Some(host));
    options.schedule_to_start_timeout = Some(RECONCILE_HOST_WAIT);
    options
}

/// The reconciliation run on `avb-provisioning`: 120 s, a few quick retries (three attempts
/// from 2 s; the next scheduled run tries again anyway). No kinds are listed as non-retryable.
pub fn reconcile() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
        .task_queue(queues::PROVISIONING.to_string())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(2))
                .maximum_attempts(3)
                .build(),
        )
        .build()
}

/// A call of an upstream tool on `avb-upstream`: the server's own timeout (`timeout_secs`) plus
/// 30 s (the pool's timeout fires first and says which tool it was; this one only catches a
/// worker that died mid-call); six attempts, 0.5 s doubling to 5 s. Whether a failure may be
/// retried at all is decided by the activity (the kinds it fails with).
pub fn upstream(timeout_secs: u64) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs + 30))
        .task_queue(queues::UPSTREAM.to_string())
        .retry_policy(doubling(
            Duration::from_millis(500),
            Duration::from_secs(5),
            6,
        ))
        .build()
}

/// The echo activity as a regular activity on the workflow queue (dispatched eagerly): 10 s,
/// the server's default retries.
pub fn echo() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
        .task_queue(queues::WORKFLOWS.to_string())
        .build()
}

/// The echo activity as a local activity (inside the workflow task): 10 s.
pub fn echo_local() -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .start_to_close_timeout(Duration::from_secs(10))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::ActivityCloseTimeouts;

    /// (start-to-close, queue, heartbeat, initial, backoff, max interval, max attempts, lists
    /// the non-retryable kinds).
    type Expected = (
        Duration,
        &'static str,
        Option<Duration>,
        Duration,
        f64,
        Option<Duration>,
        u32,
        bool,
    );

    fn check(name: &str, o: &ActivityOptions, want: Expected) {
        let retry = o.retry_policy.as_ref().expect("retry policy");
        let got: Expected = (
            match o.close_timeouts {
                ActivityCloseTimeouts::StartToClose(d) => d,
                other => panic!("{name}: {other:?}"),
            },
            match o.task_queue.as_deref() {
                Some(q) if q == queues::TTS => queues::TTS,
                Some(q) if q == queues::BILLING => queues::BILLING,
                Some(q) if q == queues::DEVICES => queues::DEVICES,
                Some(q) if q == queues::PROVISIONING => queues::PROVISIONING,
                Some(q) if q == queues::UPSTREAM => queues::UPSTREAM,
                other => panic!("{name}: queue {other:?}"),
            },
            o.heartbeat_timeout,
            retry.initial_interval(),
            retry.backoff_coefficient(),
            retry.maximum_interval(),
            retry.maximum_attempts(),
            !retry.non_retryable_error_types().is_empty(),
        );
        assert_eq!(got, want, "{name}");
        if want.7 {
            assert_eq!(
                retry.non_retryable_error_types(),
                ErrorKind::non_retryable_names().as_slice(),
                "{name}"
            );
        }
    }

    #[test]
    fn profiles_keep_their_values() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        check(
            "tts",
            &tts(s(125)),
            (
                s(125),
                queues::TTS,
                Some(s(30)),
                s(1),
                2.0,
                Some(s(30)),
                5,
                true,
            ),
        );
        assert_eq!(
            tts(s(1)).cancellation_type,
            ActivityCancellationType::WaitCancellationCompleted
        );
        check(
            "ledger",
            &ledger(),
            (
                s(30),
                queues::BILLING,
                None,
                ms(500),
                2.0,
                Some(s(10)),
                0,
                true,
            ),
        );
        assert!(ledger().cancellation_token.is_some(), "detached");
        check(
            "device_command",
            &device_command(),
            (
                s(30),
                queues::DEVICES,
                None,
                ms(500),
                2.0,
                Some(s(5)),
                6,
                true,
            ),
        );
        check(
            "device_read",
            &device_read(),
            (
                s(15),
                queues::DEVICES,
                None,
                ms(500),
                2.0,
                Some(s(5)),
                3,
                true,
            ),
        );
        let provisioning = |d, h| (d, queues::PROVISIONING, h, s(1), 2.0, Some(s(15)), 20, true);
        check(
            "provisioning_step",
            &provisioning_step(),
            provisioning(s(30), None),
        );
        check(
            "provisioning_replicas",
            &provisioning_replicas(),
            provisioning(s(120), None),
        );
        check(
            "provisioning_readiness",
            &provisioning_readiness(),
            provisioning(s(120), Some(s(10))),
        );
        for o in [
            provisioning_step(),
            provisioning_replicas(),
            provisioning_readiness(),
        ] {
            assert!(o.cancellation_token.is_some(), "detached");
        }
        check(
            "reconcile",
            &reconcile(),
            (
                s(120),
                queues::PROVISIONING,
                None,
                s(2),
                2.0,
                None,
                3,
                false,
            ),
        );
        check(
            "upstream",
            &upstream(60),
            (
                s(90),
                queues::UPSTREAM,
                None,
                ms(500),
                2.0,
                Some(s(5)),
                6,
                true,
            ),
        );
        let placed = on_host(provisioning_replicas(), Some("node-a"));
        assert_eq!(
            placed.task_queue.as_deref(),
            Some("avb-provisioning@node-a")
        );
        assert!(placed.cancellation_token.is_some(), "still detached");
        assert_eq!(
            on_host(provisioning_replicas(), None).task_queue.as_deref(),
            Some(queues::PROVISIONING)
        );
        let visit = reconcile_on_host("node-a");
        assert_eq!(visit.task_queue.as_deref(), Some("avb-provisioning@node-a"));
        assert_eq!(visit.schedule_to_start_timeout, Some(RECONCILE_HOST_WAIT));
        let echo = echo();
        assert_eq!(
            (echo.close_timeouts, echo.task_queue.as_deref()),
            (
                ActivityCloseTimeouts::StartToClose(s(10)),
                Some(queues::WORKFLOWS)
            )
        );
        assert!(echo.retry_policy.is_none());
    }
}
