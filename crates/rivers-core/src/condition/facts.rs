//! What the evaluator needs to know about assets, as position ranges: the seam the daemon
//! implements from storage's indexed state (partition status ranges, runs, backfills).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::partitions::RangeSet;

/// The positions a run covers, with that run's tags. Tag leaves ask per run, not per
/// partition: a run that materialized a million partitions is one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunPositions {
    /// Positions of the asset this run materialized.
    pub positions: RangeSet,
    /// The run's tags.
    pub tags: BTreeMap<String, String>,
}

/// When this pass runs, and when the previous one ran (`None` before the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvaluationClock {
    /// This pass's evaluation time.
    pub now: DateTime<Utc>,
    /// The previous pass's evaluation time.
    pub previous: Option<DateTime<Utc>>,
}

/// Facts about assets at the time of a pass, each as a set of partition positions of the asset
/// (an unpartitioned asset has the single position 0).
///
/// Every answer is a range set so that evaluation costs in the number of ranges, not of
/// partitions: implementations answer from range-encoded state and never enumerate keys.
/// Positions outside [`ConditionFacts::candidates`] are ignored.
pub trait ConditionFacts {
    /// The asset's current positions: every key of its partitions definition, dynamic keys
    /// included; `{0}` when unpartitioned.
    fn candidates(&self, asset: &str) -> RangeSet;

    /// Positions materialized at least once (external assets: observed).
    fn materialized(&self, asset: &str) -> RangeSet;

    /// Positions whose latest execution failed (a failed step, or marked failed).
    fn execution_failed(&self, asset: &str) -> RangeSet;

    /// Positions in a run whose status is not terminal (`Queued` included).
    fn in_progress(&self, asset: &str) -> RangeSet;

    /// Positions targeted by an active (requested or in-progress) backfill.
    fn backfill_in_progress(&self, asset: &str) -> RangeSet;

    /// Positions materialized (external assets: observed) since the previous pass.
    fn updated_since_previous_evaluation(&self, asset: &str) -> RangeSet;

    /// Positions whose data version differs from the one seen at the previous pass.
    fn data_version_changed(&self, asset: &str) -> RangeSet;

    /// Positions whose last materialization has a code version other than the declared one.
    fn code_version_changed(&self, asset: &str) -> RangeSet;

    /// The start of the latest time window of the asset's time dimension; `None` when it has
    /// none (unpartitioned, or partitioned without time windows).
    fn latest_time_window_start(&self, asset: &str) -> Option<NaiveDateTime>;

    /// Positions whose time window starts at or after `start`.
    fn positions_starting_from(&self, asset: &str, start: NaiveDateTime) -> RangeSet;

    /// The asset's direct upstream assets (inputs, lineage-only deps, external assets; not a
    /// self dependency).
    fn deps(&self, asset: &str) -> Vec<String>;

    /// The positions of `asset` that read at least one of `dep_positions` through the edge's
    /// partition mapping (the pre-image of the mapping). Identity, time-window and
    /// all-partitions mappings answer this range by range.
    fn downstream_positions(&self, asset: &str, dep: &str, dep_positions: &RangeSet) -> RangeSet;

    /// For each run that holds the latest materialization of some positions: those positions
    /// and the run's tags.
    fn latest_materialization_runs(&self, asset: &str) -> Vec<RunPositions>;

    /// For each run behind materializations new since the previous pass: the positions it
    /// materialized and its tags.
    fn new_materialization_runs(&self, asset: &str) -> Vec<RunPositions>;

    /// Positions of `dep` whose latest run also targeted `target`.
    fn latest_run_includes(&self, dep: &str, target: &str) -> RangeSet;
}
