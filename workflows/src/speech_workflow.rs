//! `GenerateSpeech`: the durable form of the `generate_speech` tool. Small and deterministic: it
//! schedules the synthesis activity on the `avb-tts` queue and returns its reference; a billed
//! job wraps that in the billing saga (hold → synthesize → settle, or release on failure and
//! cancellation; see `crate::saga`).

use std::time::Duration;

use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{
    ActivityCancellationType, ActivityOptions, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use crate::billing::BillingPlan;
use crate::errors::ErrorKind;
use crate::queues;
use crate::saga::Saga;
use crate::speech::{GenerateSpeechInput, SpeechArtifact, SynthesizeSpeech};

/// Activity type names, shared by the declaration here and the implementation in `avb-activities`.
pub const SYNTHESIZE_SPEECH: &str = "synthesize_speech";

/// Declarations of the TTS activities (implemented in `avb-activities`).
pub struct TtsActivityDefs;

#[activity_definitions]
impl TtsActivityDefs {
    #[activity(name = SYNTHESIZE_SPEECH)]
    pub fn synthesize_speech(
        input: SynthesizeSpeech,
    ) -> Result<SpeechArtifact, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// Workflow input: the validated tool arguments and who asked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerateSpeechJob {
    pub job_id: String,
    pub tenant: String,
    pub request: GenerateSpeechInput,
    /// The price, when billing is on. Jobs recorded before billing existed have none, so their
    /// histories replay without billing activities (no patch marker needed: the input decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

#[workflow]
#[derive(Default)]
pub struct GenerateSpeechWorkflow;

#[workflow_methods]
impl GenerateSpeechWorkflow {
    #[run(name = "GenerateSpeech")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        job: GenerateSpeechJob,
    ) -> WorkflowResult<SpeechArtifact> {
        let options = ActivityOptions::with_start_to_close_timeout(synthesis_budget(&job.request))
            .task_queue(queues::TTS.to_string())
            .heartbeat_timeout(Duration::from_secs(30))
            // A cancelled job ends only once the worker has stopped (it learns of the
            // cancellation from its next heartbeat, between chunks), so "cancelled" means stopped.
            .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(30))
                    .maximum_attempts(5)
                    .non_retryable_error_types(ErrorKind::non_retryable_names())
                    .build(),
            )
            .build();
        let saga =
            Saga::hold_if_priced(ctx, &job.tenant, &job.job_id, job.billing.as_ref()).await?;
        if ctx.cancellation_token().is_cancelled() {
            // Cancelled while the hold was being taken: give it back, run nothing.
            if let Some(saga) = saga {
                saga.release(ctx, "cancelled before synthesis").await?;
            }
            return Err(WorkflowTermination::cancelled());
        }
        let input = SynthesizeSpeech {
            job_id: job.job_id,
            request: job.request,
        };
        let result = ctx
            .execute_activity(TtsActivityDefs::synthesize_speech, input, options)
            .await;
        let cancelled = ctx.cancellation_token().is_cancelled();
        match (result, saga) {
            (Ok(artifact), Some(saga)) => {
                saga.settle(ctx).await?;
                Ok(artifact)
            }
            (Ok(artifact), None) => Ok(artifact),
            (Err(e), saga) => {
                if let Some(saga) = saga {
                    let reason = if cancelled { "cancelled" } else { "failed" };
                    saga.release(ctx, reason).await?;
                }
                // The activity stopped because the job was cancelled: cancelled, not failed.
                if cancelled {
                    Err(WorkflowTermination::cancelled())
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

/// Generous wall-clock budget for one attempt: a slow CPU manages ~1 s of audio per second, and
/// speech runs at ~15 characters per second of audio.
fn synthesis_budget(req: &GenerateSpeechInput) -> Duration {
    let chars = req.text.chars().count() as u64;
    Duration::from_secs(120 + chars / 4)
}
