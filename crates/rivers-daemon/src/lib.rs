//! The rivers automation daemon: schedules, sensors, the run queue and run monitoring of one
//! code location.
//!
//! The daemon knows nothing about Python: it reaches user code through the [`CodeLocation`]
//! seam and starts runs through a [`RunLauncher`], and reads time from a [`Clock`], so the
//! whole of it is tested in Rust with fakes and a [`VirtualClock`].

mod backfills;
mod clock;
mod conditions;
mod coordinator;
mod daemon;
mod evaluation;
mod location;
mod queue;
mod requests;
mod schedules;
mod sensors;
mod specs;
mod submit;
mod ticks;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use conditions::{
    AssetDep, ConditionAsset, ConditionAssets, ConditionReport, DEFAULT_MAX_CONDITION_EVALS, ExplainError,
    MAX_CONDITION_EVALS_VAR, MAX_SIMULATION_STEPS, MIN_PASS_GAP, SimulateError, SimulatedRequest, explain_condition,
    max_condition_evals, simulate_automation,
};
pub use daemon::{DEFAULT_CONDITION_EVAL_INTERVAL, Daemon, DaemonConfig};
pub use location::{BackfillRunPlan, CodeLocation, EvaluationError, PlannedRun, RunLauncher, SensorContext};
pub use queue::{Admission, GLOBAL_BLOCK_REASONS, RunQueueConfig, TagConcurrencyLimit, admit};
pub use requests::{BackfillPartitions, BackfillRequest, Evaluation, Request, RunRequest};
pub use specs::{Automations, DEFAULT_SENSOR_INTERVAL, ScheduleSpec, SensorSpec};
pub use ticks::{TICK_BATCH_SIZE_VAR, TICK_FLUSH_INTERVAL, TickWriter, tick_batch_size};
