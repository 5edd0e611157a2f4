//! The `echo` activity behind `durable_echo`.

use avb_workflows::echo::activity as defs;
use avb_workflows::echo::{EchoInput, EchoOutput};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct EchoActivities;

#[activities]
impl EchoActivities {
    #[activity(definition = defs::Echo)]
    pub async fn echo(ctx: ActivityContext, input: EchoInput) -> Result<EchoOutput, ActivityError> {
        Ok(EchoOutput {
            message: input.message,
            attempt: ctx.info().attempt,
        })
    }
}
