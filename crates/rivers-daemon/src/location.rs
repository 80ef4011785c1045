//! The seams through which the daemon reaches user code and executors: a [`CodeLocation`]
//! evaluates schedules and sensors and creates backfills (in-process through Python for
//! `rivers dev`, over gRPC for a remote code location), and a [`RunLauncher`] starts the runs
//! the daemon admitted (local execution, or a Kubernetes run pod).

use std::fmt;

use chrono::DateTime;
use chrono_tz::Tz;
use futures::future::BoxFuture;
use rivers_core::LaunchedBy;
use rivers_core::partitions::PartitionKey;
use rivers_storage::{BackfillRecord, RunRecord};

use crate::requests::{BackfillRequest, Evaluation};

/// Why an evaluation produced no result: the user function raised, returned a value that is
/// not a request, or could not be called. The text is what the tick records as its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationError(pub String);

impl fmt::Display for EvaluationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvaluationError {}

/// What a sensor's evaluation receives from its previous tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorContext {
    /// The cursor in force after the previous tick.
    pub cursor: Option<String>,
    /// When the previous tick evaluated, in seconds since the epoch; `None` on the first ever
    /// tick.
    pub last_tick_time: Option<f64>,
}

/// A backfill's runs, as its code location plans them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackfillRunPlan {
    /// The nodes every run executes.
    pub node_names: Vec<String>,
    /// The runs, in plan order.
    pub runs: Vec<PlannedRun>,
}

/// One run of a backfill.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// The run's key: its partitions bundled into one key.
    pub partition_key: PartitionKey,
    /// Display keys of its individual partitions, which the backfill's counters count.
    pub keys: Vec<String>,
}

/// The user code of one code location, as the daemon calls it.
pub trait CodeLocation: Send + Sync + 'static {
    /// Calls schedule `name`'s evaluation function for the tick at `scheduled` (the cron
    /// instant in the schedule's zone). Only called for schedules that have one.
    fn evaluate_schedule(
        &self,
        name: &str,
        scheduled: DateTime<Tz>,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>>;

    /// Calls sensor `name`'s evaluation function.
    fn evaluate_sensor(
        &self,
        name: &str,
        context: SensorContext,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>>;

    /// Submits a backfill for the daemon's backfill coordinator to execute, and returns its
    /// id. The error text is recorded on the tick.
    fn submit_backfill(
        &self,
        request: BackfillRequest,
        launched_by: LaunchedBy,
    ) -> BoxFuture<'static, Result<String, EvaluationError>>;

    /// Plans the runs of a requested backfill that this daemon claimed: what every run
    /// executes, and each run's partitions, in plan order. The error text fails the backfill.
    /// The default refuses: a location whose schedules and sensors request no backfill never
    /// receives the call.
    fn plan_backfill(&self, backfill: &BackfillRecord) -> BoxFuture<'static, Result<BackfillRunPlan, EvaluationError>> {
        let backfill_id = backfill.backfill_id.clone();
        Box::pin(async move { Err(EvaluationError(format!("this code location cannot plan backfill {backfill_id}"))) })
    }

    /// Runs the observe functions of external assets whose automation condition fired. The
    /// error text is recorded on their condition ticks. The default refuses: a location
    /// without external assets never receives the call.
    fn observe(&self, assets: Vec<String>) -> BoxFuture<'static, Result<(), EvaluationError>> {
        Box::pin(async move {
            Err(EvaluationError(format!("this code location cannot observe external assets {assets:?}")))
        })
    }
}

/// Starts runs that the daemon created and admitted. Launching hands the run to an executor
/// and returns; the executor claims the run record (`NotStarted` → `Running`) and owns it from
/// then on.
pub trait RunLauncher: Send + Sync + 'static {
    /// Starts `run`. An error means the run could not be handed to an executor; the daemon
    /// then fails the run with a `RunLaunchFailed` event carrying the text.
    fn launch(&self, run: RunRecord) -> BoxFuture<'static, Result<(), String>>;
}
