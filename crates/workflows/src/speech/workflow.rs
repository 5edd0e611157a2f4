//! `GenerateSpeech`: the durable form of the `generate_speech` tool. Small and deterministic: it
//! schedules the synthesis activity on the `avb-tts` queue and returns its reference; a billed
//! job wraps that in the billing saga (hold → synthesize → settle, or release on failure and
//! cancellation; see [`crate::billing::Saga`]).

use std::time::Duration;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{WorkflowContext, WorkflowResult, WorkflowTermination};

use super::contract::{
    GenerateSpeechInput, GenerateSpeechJob, SpeechArtifact, SynthesizeSpeech, TtsActivityDefs,
};
use crate::billing::{Saga, release_reason};
use crate::policy;

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
        let options = policy::tts(synthesis_budget(&job.request));
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
                    saga.release(ctx, release_reason(cancelled)).await?;
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
pub fn synthesis_budget(req: &GenerateSpeechInput) -> Duration {
    let chars = req.text.chars().count() as u64;
    Duration::from_secs(120 + chars / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grows_with_the_text() {
        let req = |text: &str| GenerateSpeechInput {
            text: text.into(),
            voice_id: "af_heart".into(),
            speed: 1.0,
            format: None,
            language: None,
        };
        assert_eq!(synthesis_budget(&req("hi")), Duration::from_secs(120));
        assert_eq!(
            synthesis_budget(&req(&"é".repeat(400))),
            Duration::from_secs(220)
        );
    }
}
