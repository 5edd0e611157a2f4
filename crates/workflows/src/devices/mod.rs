//! Devices: `DeviceCommand` (plan on `avb-devices`, wait for approval where policy says so, hold
//! credits, send each device its change and wait for its confirmation) and `DeviceRead`.

pub mod contract;
pub mod inputs;
pub mod workflow;

pub use contract::*;
pub use inputs::*;
pub use workflow::{DeviceCommandWorkflow, DeviceReadWorkflow};
