//! The one list of workflows: workers register it on the `avb-workflows` queue and the replay
//! tests register it on the replayer, so a workflow added here is served and replay-checked.
//! The device workflows are also served on the devices queue ([`register_on_devices`]), where
//! their steps are local activities.
//!
//! This crate does not depend on the worker SDK: [`WorkflowRegistry`] is what a worker's options
//! or a replayer's options must do, and the `sdk` feature implements it for
//! `temporalio_sdk::WorkerOptions` and `temporalio_sdk::workflow_replayer::WorkflowReplayerOptions`.

use temporalio_common::WorkflowDefinition;
use temporalio_workflow::workflows::WorkflowImplementation;

use crate::devices::{DeviceCommandWorkflow, DeviceReadWorkflow};
use crate::echo::DurableEchoWorkflow;
use crate::provision::{DeleteMcpServerWorkflow, ProvisionMcpServerWorkflow};
use crate::reconcile::ReconcileMcpServersWorkflow;
use crate::speech::GenerateSpeechWorkflow;
use crate::upstream::{UpstreamBatchWorkflow, UpstreamCallWorkflow};

/// Where workflows are registered: a worker's options or a replayer's.
pub trait WorkflowRegistry {
    type Error;

    /// Registers one workflow type.
    fn register<W>(&mut self) -> Result<(), Self::Error>
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send;
}

/// Workflow type names of [`register_all`], in its order.
pub const WORKFLOW_TYPES: &[&str] = &[
    "GenerateSpeech",
    "DurableEcho",
    "ProvisionMcpServer",
    "DeleteMcpServer",
    "ReconcileMcpServers",
    "DeviceCommand",
    "DeviceRead",
    "UpstreamCall",
    "UpstreamBatch",
];

/// Registers every workflow of this crate on `registry`.
pub fn register_all<R: WorkflowRegistry + ?Sized>(registry: &mut R) -> Result<(), R::Error> {
    registry.register::<GenerateSpeechWorkflow>()?;
    registry.register::<DurableEchoWorkflow>()?;
    registry.register::<ProvisionMcpServerWorkflow>()?;
    registry.register::<DeleteMcpServerWorkflow>()?;
    registry.register::<ReconcileMcpServersWorkflow>()?;
    registry.register::<DeviceCommandWorkflow>()?;
    registry.register::<DeviceReadWorkflow>()?;
    registry.register::<UpstreamCallWorkflow>()?;
    registry.register::<UpstreamBatchWorkflow>()?;
    Ok(())
}

/// Registers the workflows the devices workers run (started on `avb-devices` with
/// `local_activities`, next to the activities they call).
pub fn register_on_devices<R: WorkflowRegistry + ?Sized>(registry: &mut R) -> Result<(), R::Error> {
    registry.register::<DeviceCommandWorkflow>()?;
    registry.register::<DeviceReadWorkflow>()?;
    Ok(())
}

#[cfg(feature = "sdk")]
mod sdk {
    use temporalio_common::WorkflowDefinition;
    use temporalio_sdk::workflow_replayer::WorkflowReplayerOptions;
    use temporalio_sdk::{WorkerOptions, WorkflowRegistrationError};
    use temporalio_workflow::workflows::WorkflowImplementation;

    use super::WorkflowRegistry;

    impl WorkflowRegistry for WorkerOptions {
        type Error = WorkflowRegistrationError;

        fn register<W>(&mut self) -> Result<(), Self::Error>
        where
            W: WorkflowImplementation,
            <W::Run as WorkflowDefinition>::Input: Send,
        {
            self.register_workflow::<W>().map(|_| ())
        }
    }

    impl WorkflowRegistry for WorkflowReplayerOptions {
        type Error = WorkflowRegistrationError;

        fn register<W>(&mut self) -> Result<(), Self::Error>
        where
            W: WorkflowImplementation,
            <W::Run as WorkflowDefinition>::Input: Send,
        {
            self.register_workflow::<W>().map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the registered type names.
    struct Names(Vec<&'static str>);

    impl WorkflowRegistry for Names {
        type Error = std::convert::Infallible;

        fn register<W>(&mut self) -> Result<(), Self::Error>
        where
            W: WorkflowImplementation,
            <W::Run as WorkflowDefinition>::Input: Send,
        {
            self.0.push(W::name());
            Ok(())
        }
    }

    #[test]
    fn the_list_names_every_workflow_once() {
        let mut names = Names(Vec::new());
        let Ok(()) = register_all(&mut names);
        assert_eq!(names.0, WORKFLOW_TYPES);
    }
}
