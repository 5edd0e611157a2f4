//! The contract crate: what the api, the activities and the workers agree on (tool inputs and
//! outputs, workflow inputs, activity definitions, signals, task queues, error kinds), and the
//! deterministic workflow code. No I/O crates here: the api and the workers both depend on this
//! crate.
//!
//! # Layout
//!
//! One folder per family, each with the same three files, and `pub use` of both in `mod.rs` so
//! callers write `avb_workflows::<family>::Name`:
//!
//! - `contract.rs`: inputs and outputs, activity definitions (`#[activity_definitions]` traits
//!   with their type names, and an `activity` module with the definitions as types for
//!   `#[activity(definition = …)]` in `avb-activities`), signals, constants;
//! - `workflow.rs`: the deterministic workflow code;
//! - `mod.rs`: what the family is, and its re-exports.
//!
//! Families: [`speech`], [`echo`], [`billing`] (the saga every billed job runs in),
//! [`approval`] (waiting for a person; used by devices and upstream), [`devices`],
//! [`provision`] (provisioned MCP servers), [`reconcile`], [`upstream`]. Shared: [`errors`] (the
//! one error vocabulary), [`policy`] (named activity profiles: queue, timeouts, retries),
//! [`queues`], [`search`] (search attributes), [`artifact`] (references to blobs), and
//! [`register_all`], the one list of workflows that workers serve and the replay test checks.
//!
//! # Workflow rules
//!
//! Workflow code runs again from the start whenever a worker replays a job's history (after a
//! restart, a cache eviction, or in `tests/replay.rs`), and must then issue the very same
//! commands. So in every `workflow.rs`:
//!
//! - **No I/O.** No files, network, database, environment variables or logging that decides
//!   anything; every effect is an activity (`ctx.execute_activity`) on its family's queue.
//! - **No wall-clock time.** No `SystemTime::now`, `Instant::now` or `tokio::time`. Durations are
//!   timers (`ctx.timer`); "now" is `ctx.workflow_time()` (the time of the workflow task, the
//!   same on replay). Wall-clock values a job needs (expiry timestamps such as
//!   `ApprovalGate::expires_at`, job and server ids, prices) are computed by the api and passed
//!   in the workflow's input.
//! - **No randomness.** No `rand`, no `Uuid::new_v4`; ids come in the input (or, if ever needed,
//!   from `ctx.random()` / `ctx.uuid4()`, which replay identically).
//! - **No tokio or futures combinators.** No `tokio::select!`, `tokio::spawn`,
//!   `futures::join!`: only the SDK's `temporalio_workflow::{select, join, join_all}`, which
//!   poll in a deterministic order.
//! - **No iteration order that can change.** `BTreeMap`, not `HashMap`, where the order decides
//!   the order of commands.
//! - **Options from [`policy`].** Timeouts, retries and queues of activities are named profiles,
//!   not literals in the workflow.
//!
//! # Versioning
//!
//! A running job replays its recorded history against the code of whatever worker picks it up,
//! so a change must keep old histories replaying:
//!
//! 1. **New data first as an optional input field** (`#[serde(default)]`, usually an `Option`):
//!    histories recorded without it deserialize to the old behaviour. That is how billing was
//!    added (`GenerateSpeechJob::billing`: no price, no billing activities), with no marker.
//! 2. **Changed control flow behind `ctx.patched("<id>")`**: when the same input must now issue
//!    other commands (another activity, another order, a new timer), branch on
//!    `if ctx.patched("my-change") { new } else { old }`; new jobs record the marker, old ones
//!    replay the old branch. Once no job without the marker can still run, switch to
//!    `ctx.deprecate_patch("my-change")` and then drop the old branch.
//! 3. **Never rename** a workflow type, an activity type, a signal or a task queue, and never
//!    change the meaning of an existing input field.
//!
//! `cargo test -p avb-workflows` replays every history in `tests/histories` (no server needed),
//! so a change that breaks one fails there. To record them again (a live system: Temporal,
//! workers and the api, as `deploy/test.sh` sets up), run the end-to-end tests that write them:
//!
//! ```text
//! AVB_RECORD_HISTORIES=1 ./deploy/test.sh -E \
//!   'binary(e2e) & (test(/^replay::/) | test(/^upstream::mounted_tools_are_namespaced/))'
//! ```
//!
//! `generate_speech.json` predates billing and is never re-recorded (it proves old jobs still
//! replay); every other file is rewritten by that run. Commit the new files with the change.

pub mod approval;
pub mod artifact;
pub mod billing;
pub mod devices;
pub mod echo;
pub mod errors;
pub mod policy;
pub mod provision;
pub mod queues;
pub mod reconcile;
mod registry;
pub mod search;
pub mod speech;
pub mod upstream;

pub use registry::{WORKFLOW_TYPES, WorkflowRegistry, register_all};
