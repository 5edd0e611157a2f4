//! Children a process owns (the Temporal dev server and the demo home's broker under `avb dev`)
//! kept running. One that exits is logged with its exit status and the last lines of its
//! output, then started again after a pause that doubles (half a second up to eight); after
//! five restarts within five minutes it is given up on ([`RestartPolicy`]), and
//! [`Supervised::failed`] resolves with its name and why, so the owner can exit non-zero instead
//! of running on half-started.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often, and how soon, a child is started again.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Restarts allowed within `window` before the child is given up on.
    pub max_restarts: usize,
    pub window: Duration,
    /// The pause before the first restart; it doubles with each restart in the window.
    pub first_pause: Duration,
    pub longest_pause: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(300),
            first_pause: Duration::from_millis(500),
            longest_pause: Duration::from_secs(8),
        }
    }
}
/// Lines of the child's output logged when it exits.
const LAST_LINES: usize = 10;

/// A running child process.
pub trait Child: Send + 'static {
    /// Resolves when the process exits, with its exit status as people read it.
    fn exited(&mut self) -> impl Future<Output = String> + Send;
    /// Stops it and waits for it to exit.
    fn stop(self) -> impl Future<Output = ()> + Send;
}

/// A child under supervision.
pub struct Supervised {
    name: &'static str,
    given_up: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Supervises `child`, started by `start` (called again for every restart) and writing its
/// output to `log`, until [`Supervised::stop`].
pub fn supervise<C, F, Fut>(
    name: &'static str,
    child: C,
    log: Option<PathBuf>,
    policy: RestartPolicy,
    start: F,
) -> Supervised
where
    C: Child,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<C, String>> + Send + 'static,
{
    let given_up = CancellationToken::new();
    let reason = Arc::new(Mutex::new(None));
    let stop = CancellationToken::new();
    let outcome = Outcome {
        stop: stop.clone(),
        given_up: given_up.clone(),
        reason: reason.clone(),
    };
    let task = tokio::spawn(keep_running(name, child, log, policy, start, outcome));
    Supervised {
        name,
        given_up,
        reason,
        stop,
        task,
    }
}

impl Supervised {
    /// Resolves when the child was given up on; the message names it and why.
    pub async fn failed(&self) -> String {
        self.given_up.cancelled().await;
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        format!("{} {reason}", self.name)
    }

    /// Stops the child (no more restarts) and waits for it to exit.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// How the supervising task is told to stop, and tells that it gave up and why.
struct Outcome {
    stop: CancellationToken,
    given_up: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

async fn keep_running<C, F, Fut>(
    name: &'static str,
    mut child: C,
    log: Option<PathBuf>,
    policy: RestartPolicy,
    start: F,
    outcome: Outcome,
) where
    C: Child,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<C, String>> + Send + 'static,
{
    let Outcome {
        stop,
        given_up,
        reason,
    } = outcome;
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    loop {
        let status = tokio::select! {
            status = child.exited() => status,
            () = stop.cancelled() => {
                child.stop().await;
                return;
            }
        };
        let last_output = log.as_deref().map(last_lines).unwrap_or_default();
        tracing::warn!(child = name, %status, %last_output, "exited; restarting it");
        let mut last_error = status;
        child = loop {
            while restarts
                .front()
                .is_some_and(|t| t.elapsed() > policy.window)
            {
                restarts.pop_front();
            }
            if restarts.len() >= policy.max_restarts {
                let why = format!(
                    "exited {} times within {} s and was given up on (last: {last_error}){}",
                    policy.max_restarts + 1,
                    policy.window.as_secs(),
                    log.as_deref()
                        .map(|l| format!("; see {}", l.display()))
                        .unwrap_or_default()
                );
                tracing::error!(child = name, "{why}");
                *reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                given_up.cancel();
                return;
            }
            let pause = policy
                .first_pause
                .saturating_mul(1 << restarts.len().min(8))
                .min(policy.longest_pause);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => return,
            }
            restarts.push_back(Instant::now());
            match start().await {
                Ok(c) => {
                    tracing::info!(child = name, restarts = restarts.len(), "restarted");
                    break c;
                }
                Err(e) => {
                    tracing::warn!(child = name, error = %e, "restart failed");
                    last_error = e;
                }
            }
        };
    }
}

/// The last lines of a log file, joined with ` | ` (one log line).
fn last_lines(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(LAST_LINES)..].join(" | ")
}

/// A plain child process.
impl Child for tokio::process::Child {
    async fn exited(&mut self) -> String {
        match self.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("cannot wait for it: {e}"),
        }
    }

    async fn stop(mut self) {
        let _ = self.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sh(script: &str) -> Result<tokio::process::Child, String> {
        tokio::process::Command::new("sh")
            .args(["-c", script])
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn an_exited_child_is_restarted_and_given_up_on_after_the_limit() {
        let policy = RestartPolicy {
            first_pause: Duration::from_millis(10),
            longest_pause: Duration::from_millis(40),
            ..RestartPolicy::default()
        };
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let supervised = supervise(
            "flaky",
            sh("exit 3").expect("sh"),
            None,
            policy,
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { sh("exit 3") }
            },
        );
        let why = tokio::time::timeout(Duration::from_secs(30), supervised.failed())
            .await
            .expect("given up on within the backoff");
        assert_eq!(starts.load(Ordering::SeqCst), policy.max_restarts);
        assert!(
            why.starts_with("flaky exited 6 times") && why.contains("exit status: 3"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn a_running_child_is_stopped_and_not_restarted() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let policy = RestartPolicy::default();
        let supervised = supervise(
            "sleeper",
            sh("exec sleep 30").expect("sh"),
            None,
            policy,
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { sh("exec sleep 30") }
            },
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::timeout(Duration::from_secs(5), supervised.stop())
            .await
            .expect("stopped at once");
        assert_eq!(starts.load(Ordering::SeqCst), 0);
    }
}
