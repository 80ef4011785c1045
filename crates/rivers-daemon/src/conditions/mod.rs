//! Automation conditions in the daemon: evaluation passes over every asset's condition, the
//! runs they launch, their ticks and the state they persist.
//!
//! A pass reads its facts in a few batched queries ([`facts`]), evaluates every condition in
//! topological order over position ranges (`rivers_core::condition::evaluate_pass`), launches
//! what fired — one joint run per partition key (or one for the unpartitioned assets), and an
//! observation for external assets — then writes the states that changed, the pass's checkpoint
//! and an evaluation record per asset in one transaction, and a tick per evaluated asset.
//!
//! Passes run right after the daemon starts, every `condition_eval_interval`, and when the
//! change feed reports a materialization, an observation or a run reaching a terminal status
//! (coalesced: at most one pass per [`MIN_PASS_GAP`]). The daemon's own launches only create
//! runs that have not ended, which do not wake it.

mod assets;
mod facts;
mod positions;
mod simulate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rivers_core::condition::{AssetEvaluation, ConditionState, EvaluationClock, Explanation, evaluate_pass};
use rivers_core::partitions::PartitionKey;
use rivers_core::{AutomationType, EventType, LaunchedBy, TickStatus};
use rivers_storage::{Change, ConditionCheckpoint, ConditionEvaluationRecord, Storage, StoredTick};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use assets::{AssetDep, ConditionAsset, ConditionAssets};
use facts::PassFacts;
pub use simulate::{MAX_SIMULATION_STEPS, SimulateError, SimulatedRequest, simulate_automation};

use crate::daemon::Context;
use crate::submit::{RunTarget, create_run};

/// The variable bounding the evaluation records kept per asset.
pub const MAX_CONDITION_EVALS_VAR: &str = "RIVERS_MAX_CONDITION_EVALS";

/// Evaluation records kept per asset unless `RIVERS_MAX_CONDITION_EVALS` says otherwise.
pub const DEFAULT_MAX_CONDITION_EVALS: usize = 100;

/// The least time between the starts of two passes woken by the change feed: a burst of
/// materializations (a backfill landing) makes one pass, not one per commit.
pub const MIN_PASS_GAP: Duration = Duration::from_millis(100);

/// Evaluation records kept per asset: `RIVERS_MAX_CONDITION_EVALS` when it is a positive
/// integer, else [`DEFAULT_MAX_CONDITION_EVALS`].
pub fn max_condition_evals() -> usize {
    evals_kept(std::env::var(MAX_CONDITION_EVALS_VAR).ok().as_deref())
}

fn evals_kept(setting: Option<&str>) -> usize {
    setting.and_then(|text| text.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(DEFAULT_MAX_CONDITION_EVALS)
}

/// Starts the evaluation loop and the change-feed watcher that wakes it.
pub(crate) fn spawn(context: Arc<Context>, interval: Duration) -> Vec<JoinHandle<()>> {
    let wake = Arc::new(Notify::new());
    vec![
        tokio::spawn(evaluate_periodically(context.clone(), interval, wake.clone())),
        tokio::spawn(watch_changes(context, wake)),
    ]
}

async fn evaluate_periodically(context: Arc<Context>, interval: Duration, wake: Arc<Notify>) {
    let interval = TimeDelta::from_std(interval).unwrap_or(TimeDelta::MAX);
    let gap = TimeDelta::from_std(MIN_PASS_GAP).unwrap_or_default();
    loop {
        let started = context.clock.now();
        if let Err(error) = pass(&context).await {
            tracing::warn!(%error, "an automation-condition pass failed");
        }
        tokio::select! {
            keep_going = context.sleep_until(started + interval) => if !keep_going { return },
            () = wake.notified() => {
                if !context.sleep_until(started + gap).await {
                    return;
                }
            }
        }
    }
}

/// Wakes the evaluator (and the run-queue coordinator) when storage reports a change a
/// condition may react to.
async fn watch_changes(context: Arc<Context>, wake: Arc<Notify>) {
    let mut feed = match context.storage.subscribe().await {
        Ok(feed) => feed,
        Err(error) => {
            tracing::warn!(%error, "the change feed cannot be read; conditions are evaluated on the timer only");
            return;
        }
    };
    loop {
        let entry = tokio::select! {
            entry = feed.next() => entry,
            // The clock never reaches this deadline: the branch completes when the daemon stops.
            _ = context.sleep_until(DateTime::<Utc>::MAX_UTC) => return,
        };
        let Some(entry) = entry else { return };
        let Ok(entry) = entry else { continue };
        let mut conditions = false;
        let mut coordinator = false;
        for change in &entry.changes {
            match change {
                Change::Events(events) => {
                    conditions |= events
                        .iter()
                        .any(|event| matches!(event.event_type, EventType::Materialization | EventType::Observation));
                }
                Change::Run(run) if run.status.is_terminal() => {
                    conditions = true;
                    coordinator = true;
                }
                Change::Run(_) | Change::Backfill(_) => {}
            }
        }
        if conditions {
            wake.notify_one();
        }
        if coordinator && context.queue.is_some() {
            context.wake_coordinator.notify_one();
        }
    }
}

/// What firing did for one asset.
#[derive(Debug, Default)]
struct Fired {
    run_ids: Vec<String>,
    error: Option<String>,
}

/// One evaluation pass: facts, evaluation, launches, state, ticks.
async fn pass(context: &Context) -> rivers_storage::Result<()> {
    let assets = &context.automations.conditions;
    let storage = &context.storage;
    let location = storage.code_location().for_writing(|| "automation-condition state")?.to_owned();
    let now = context.clock.now();
    let facts = PassFacts::gather(storage, assets, &location, now).await?;
    let mut evaluations = evaluate(assets, &facts, now);
    let fired = fire(context, assets, &facts, &evaluations).await;
    let timestamp = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    // Only the states that changed are written: most of a large pass leaves its assets as
    // they were.
    let states: Vec<_> = evaluations
        .iter()
        .map(|e| facts.next_state(&e.asset, e.state.clone()))
        .filter(|state| facts.states.get(&state.asset_key) != Some(state))
        .collect();
    let records: Vec<ConditionEvaluationRecord> = evaluations
        .iter_mut()
        .map(|evaluation| {
            annotate(&mut evaluation.explanation, &facts);
            ConditionEvaluationRecord {
                asset_key: evaluation.asset.clone(),
                timestamp,
                requested: u64::try_from(evaluation.requested.len()).unwrap_or(u64::MAX),
                run_ids: fired.get(&evaluation.asset).map(|f| f.run_ids.clone()).unwrap_or_default(),
                explanation: evaluation.explanation.to_string(),
            }
        })
        .collect();
    let checkpoint = ConditionCheckpoint { cursor: facts.cursor, evaluated_at: Some(timestamp) };
    storage.write_condition_pass(&location, &checkpoint, &states, &records, max_condition_evals()).await?;
    for evaluation in &evaluations {
        let outcome = fired.get(&evaluation.asset);
        let status = match outcome {
            Some(Fired { error: Some(_), .. }) => TickStatus::Failure,
            Some(_) => TickStatus::Success,
            None => TickStatus::Skipped,
        };
        context.record_tick(StoredTick {
            id: uuid::Uuid::now_v7().to_string(),
            automation_name: evaluation.asset.clone(),
            automation_type: AutomationType::Condition,
            status,
            timestamp,
            run_ids: outcome.map(|f| f.run_ids.clone()).unwrap_or_default(),
            backfill_ids: Vec::new(),
            skip_reason: None,
            error: outcome.and_then(|f| f.error.clone()),
            cursor: None,
        });
    }
    Ok(())
}

/// Evaluates every condition against `facts` at `now`.
fn evaluate(assets: &ConditionAssets, facts: &PassFacts<'_>, now: DateTime<Utc>) -> Vec<AssetEvaluation> {
    let previous = facts.checkpoint.evaluated_at.map(DateTime::from_timestamp_nanos);
    let states: BTreeMap<String, ConditionState> =
        facts.states.iter().map(|(key, state)| (key.clone(), state.state.clone())).collect();
    evaluate_pass(assets.conditions(), &states, facts, EvaluationClock { now, previous })
}

/// What fired in a pass, as runs: the assets sharing each joint run with its partition key
/// (one run per key; the unpartitioned assets share one), and the external assets to observe.
pub(crate) struct Launches {
    pub(crate) joint: Vec<(Option<PartitionKey>, Vec<String>)>,
    pub(crate) observed: Vec<String>,
}

pub(crate) fn launches(assets: &ConditionAssets, facts: &PassFacts<'_>, evaluations: &[AssetEvaluation]) -> Launches {
    let mut joint: BTreeMap<Option<String>, (Option<PartitionKey>, Vec<String>)> = BTreeMap::new();
    let mut observed = Vec::new();
    for evaluation in evaluations.iter().filter(|e| !e.requested.is_empty()) {
        let Some(asset) = assets.get(&evaluation.asset) else { continue };
        if asset.is_external {
            observed.push(asset.key.clone());
            continue;
        }
        match (asset.partitions.as_deref(), facts.env(&asset.key)) {
            (Some(definition), Some(env)) => {
                for position in evaluation.requested.positions() {
                    let Some(key) = positions::key_at(definition, position, env) else { continue };
                    let group = joint.entry(Some(key.to_string())).or_insert_with(|| (Some(key), Vec::new()));
                    group.1.push(asset.key.clone());
                }
            }
            _ => joint.entry(None).or_default().1.push(asset.key.clone()),
        }
    }
    Launches { joint: joint.into_values().collect(), observed }
}

/// Launches what fired: the joint runs, and one observation of the external assets.
async fn fire(
    context: &Context,
    assets: &ConditionAssets,
    facts: &PassFacts<'_>,
    evaluations: &[AssetEvaluation],
) -> BTreeMap<String, Fired> {
    let Launches { joint, observed } = launches(assets, facts, evaluations);
    let mut fired: BTreeMap<String, Fired> = BTreeMap::new();
    let mut created = false;
    for (partition_key, members) in joint {
        let target = RunTarget { job_name: None, node_names: members.clone(), partition_key, tags: Vec::new() };
        let outcome = create_run(context, target, LaunchedBy::Condition, None).await;
        for member in members {
            let entry = fired.entry(member).or_default();
            match &outcome {
                Ok(Some(run_id)) => {
                    entry.run_ids.push(run_id.clone());
                    created = true;
                }
                Ok(None) => {}
                Err(error) => entry.error = Some(error.clone()),
            }
        }
    }
    if created && context.queue.is_some() {
        context.wake_coordinator.notify_one();
    }
    if !observed.is_empty() {
        let outcome = context.location.observe(observed.clone()).await;
        for asset in observed {
            fired.entry(asset).or_default().error = outcome.as_ref().err().map(|error| error.0.clone());
        }
    }
    fired
}

/// Adds to `node` and the nodes below it the facts in words of each asset they inspected,
/// where they explain a leaf (when it was updated, which run or backfill holds it).
fn annotate(node: &mut Explanation, facts: &PassFacts<'_>) {
    let wanted: Option<&str> = match node.description.as_str() {
        "in_progress" | "backfill_in_progress" | "in_flight" => Some("in flight"),
        "newly_updated" | "missing" => Some("last updated"),
        _ => None,
    };
    if let Some(prefix) = wanted.filter(|_| !node.true_positions.is_empty()) {
        node.facts.extend(facts.notes(&node.subject).iter().filter(|note| note.starts_with(prefix)).cloned());
    }
    for child in &mut node.children {
        annotate(child, facts);
    }
}

/// Why [`explain_condition`] cannot explain.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No asset has this key.
    #[error("asset '{0}' is not registered in this code location")]
    UnknownAsset(String),
    /// The asset wears no condition.
    #[error("asset '{0}' has no automation_condition; pass an asset declared with automation_condition=")]
    NoCondition(String),
    /// The partition key does not fit the asset's partitions.
    #[error("partition key '{key}' is not a partition of asset '{asset}'")]
    UnknownPartition {
        /// The asset.
        asset: String,
        /// The key given.
        key: String,
    },
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] rivers_storage::Error),
}

/// An asset's condition as it evaluates now.
#[derive(Debug, Clone)]
pub struct ConditionReport {
    /// The evaluated tree.
    pub explanation: Explanation,
    /// The position of the partition asked about, if one was.
    pub position: Option<u128>,
}

/// Evaluates every condition of `assets` at `now` against storage as the daemon's next pass
/// would, and returns the tree of `asset`; nothing is written.
///
/// # Errors
/// [`ExplainError`] naming the unknown asset or partition, the asset without a condition, or
/// the failed storage read.
pub async fn explain_condition(
    storage: &Storage,
    assets: &ConditionAssets,
    asset: &str,
    partition_key: Option<&PartitionKey>,
    now: DateTime<Utc>,
) -> Result<ConditionReport, ExplainError> {
    let wearer = assets.get(asset).ok_or_else(|| ExplainError::UnknownAsset(asset.to_owned()))?;
    if wearer.condition.is_none() {
        return Err(ExplainError::NoCondition(asset.to_owned()));
    }
    let location = storage.code_location().for_writing(|| "automation-condition state")?.to_owned();
    let facts = PassFacts::gather(storage, assets, &location, now).await?;
    let position = match (partition_key, wearer.partitions.as_deref(), facts.env(asset)) {
        (None, ..) => None,
        (Some(key), Some(definition), Some(env)) => {
            let positions = positions::positions_of_key(definition, key, env);
            match positions.ranges() {
                [(first, last)] if first == last => Some(*first),
                _ => return Err(ExplainError::UnknownPartition { asset: asset.to_owned(), key: key.to_string() }),
            }
        }
        (Some(key), ..) => {
            return Err(ExplainError::UnknownPartition { asset: asset.to_owned(), key: key.to_string() });
        }
    };
    let evaluation = evaluate(assets, &facts, now).into_iter().find(|e| e.asset == asset);
    let mut explanation =
        evaluation.map(|e| e.explanation).ok_or_else(|| ExplainError::NoCondition(asset.to_owned()))?;
    annotate(&mut explanation, &facts);
    Ok(ConditionReport { explanation, position })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsable_or_zero_max_condition_evals_falls_back_to_the_default() {
        assert_eq!(evals_kept(Some(" 7 ")), 7);
        for setting in [None, Some("lots"), Some("0"), Some("-3")] {
            assert_eq!(evals_kept(setting), DEFAULT_MAX_CONDITION_EVALS, "{setting:?}");
        }
    }
}
