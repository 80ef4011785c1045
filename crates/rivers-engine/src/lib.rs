//! Running a plan: ready-queue scheduling over a [`StepRunner`], per-executor concurrency caps,
//! level grouping for executor overrides, retries with backoff, downstream skipping,
//! cooperative cancellation, resume, concurrency-pool claims, dynamic fan-out (with
//! [`InstanceFeed`]s for streaming consumers), and the run events of the lifecycle.
//!
//! The engine knows nothing about Python: `rivers-python` implements [`StepRunner`] for the
//! in-process and loky executors, and the tests here drive it with plain closures
//! ([`testing::FakeRunner`], behind the `testing` feature).

mod backfill;
mod error;
mod fan_out;
mod launch;
mod liveness;
mod partitions;
mod pools;
mod run;
mod runner;
#[cfg(feature = "testing")]
pub mod testing;

pub use backfill::{
    BackfillJob, BackfillOutcome, BackfillRuns, LiveRegistration, cancel_live_backfill, coordinate_backfill,
    is_live_backfill, register_live_backfill, tally_run, terminal_state,
};
pub use error::{Error, Result};
pub use fan_out::{FanIn, InstanceFeed, InstanceOutcome};
pub use launch::{LaunchOutcome, LaunchedRun, launch_run};
pub use liveness::{HEARTBEAT_INTERVAL_VAR, HEARTBEAT_TIMEOUT_VAR, Liveness};
pub use partitions::{InputScope, RunPartition, StepScope, run_env as partition_env};
pub use pools::{CLAIM_POLL_INTERVAL_VAR, CLAIM_POLL_JITTER_VAR, CLAIM_TIMEOUT_VAR, ClaimSettings};
pub use run::{RunOptions, RunOutcome, execute_run};
pub use runner::{CapturedOutput, Materialized, StepFailure, StepOutput, StepRequest, StepRunner};
