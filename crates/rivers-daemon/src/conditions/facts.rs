//! The facts of one pass, read from storage in a fixed number of batched queries whatever the
//! number of assets: the evaluation states and checkpoint, the change feed since the previous
//! pass (what was materialized, observed or failed since), the assets' latest materializations,
//! their partition-status grids, the unfinished runs and the active backfills. Every fact is a
//! range set of positions; nothing enumerates partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use rivers_core::EventType;
use rivers_core::condition::{ConditionFacts, RunPositions};
use rivers_core::partitions::{BackfillTarget, PartitionEnv, PartitionKey, RangeSet};
use rivers_storage::{
    AssetConditionState, AssetLatest, Change, ConditionCheckpoint, FeedCursor, Storage, StoredEvent,
    definition_fingerprint,
};

use super::assets::{ConditionAsset, ConditionAssets};
use super::positions;

/// Commits read from the change feed per query.
const FEED_PAGE: usize = 256;

/// What one asset's positions look like at this pass.
#[derive(Debug, Default)]
struct AssetFacts {
    env: Option<PartitionEnv>,
    candidates: RangeSet,
    materialized: RangeSet,
    failed: RangeSet,
    in_progress: RangeSet,
    backfill: RangeSet,
    /// Positions updated since the previous pass, per run that updated them.
    updated: Vec<(String, RangeSet)>,
    data_changed: RangeSet,
    code_changed: RangeSet,
    /// Runs holding the latest materialization of some positions.
    latest_runs: Vec<(String, RangeSet)>,
    /// The (unpartitioned) asset's latest execution failed.
    failed_flag: bool,
    data_version: Option<String>,
    /// Facts in words, for explanations: when it was last updated, which run holds it.
    notes: Vec<String>,
}

/// The facts of one pass and where the change feed was read to.
pub(crate) struct PassFacts<'a> {
    assets: &'a ConditionAssets,
    facts: BTreeMap<String, AssetFacts>,
    runs: HashMap<String, (Vec<String>, BTreeMap<String, String>)>,
    /// The change-feed commit the facts include.
    pub(crate) cursor: Option<FeedCursor>,
    /// Where the previous pass stopped.
    pub(crate) checkpoint: ConditionCheckpoint,
    /// The states the previous pass left.
    pub(crate) states: BTreeMap<String, AssetConditionState>,
}

/// The changes since the previous pass, per asset.
#[derive(Default)]
struct FeedDelta {
    /// Materialization (external assets: observation) events, in commit order.
    updates: BTreeMap<String, Vec<StoredEvent>>,
    /// Last step outcome per asset key: `true` failed, `false` materialized.
    outcomes: BTreeMap<String, bool>,
}

impl<'a> PassFacts<'a> {
    /// Reads the facts of a pass at `now` for `assets`, as `code_location`'s evaluator.
    ///
    /// # Errors
    /// A failed storage read.
    pub(crate) async fn gather(
        storage: &Storage,
        assets: &'a ConditionAssets,
        code_location: &str,
        now: DateTime<Utc>,
    ) -> rivers_storage::Result<Self> {
        let conditions = assets.conditions();
        let mut keys: BTreeSet<String> = BTreeSet::new();
        for (key, condition) in conditions {
            keys.insert(key.clone());
            keys.extend(condition.selected_keys());
            if let Some(asset) = assets.get(key) {
                keys.extend(asset.deps.iter().map(|dep| dep.key.clone()));
            }
        }
        let keys: Vec<String> = keys.into_iter().filter(|key| assets.get(key).is_some()).collect();
        let condition_keys: Vec<String> = conditions.keys().cloned().collect();
        let (checkpoint, states) = storage.condition_states(code_location, &condition_keys).await?;
        let (delta, cursor) = read_feed(storage, &checkpoint).await?;

        let wall_clock = now.with_timezone(&chrono::Local).naive_local();
        let mut envs: HashMap<String, PartitionEnv> = HashMap::new();
        let mut grids = Vec::new();
        for asset in keys.iter().filter_map(|key| assets.get(key)) {
            let Some(definition) = &asset.partitions else { continue };
            let fingerprint = definition_fingerprint(definition);
            if !envs.contains_key(&fingerprint) {
                let mut env = storage.partition_env(definition).await?;
                env.now = wall_clock;
                envs.insert(fingerprint.clone(), env);
            }
            grids.push((asset.key.clone(), fingerprint));
        }
        let latest: HashMap<String, AssetLatest> =
            storage.latest_of_assets(&keys).await?.into_iter().map(|l| (l.asset_key.clone(), l)).collect();
        let grid_statuses = storage.grid_statuses(&grids).await?;
        let unfinished = storage.unfinished_runs().await?;
        let backfills = storage.active_backfills().await?;
        // The runs behind this pass's updates; the latest run of every asset only when a
        // condition asks for its tags (a no-op pass over thousands of assets reads no runs).
        let tags_asked = assets.reads_latest_run_tags();
        let latest_runs = latest.values().filter(|l| tags_asked || delta.updates.contains_key(&l.asset_key));
        let run_ids: BTreeSet<String> = delta
            .updates
            .values()
            .flatten()
            .map(|event| event.run_id.clone())
            .chain(latest_runs.filter_map(|l| l.last_run_id.clone()))
            .collect();
        let run_ids: Vec<String> = run_ids.into_iter().collect();
        let runs = storage
            .run_targets(&run_ids)
            .await?
            .into_iter()
            .map(|run| (run.run_id, (run.node_names, run.tags.into_iter().collect())))
            .collect();
        let unfinished_ids: BTreeSet<&str> = unfinished.iter().map(|run| run.run_id.as_str()).collect();

        let mut facts = BTreeMap::new();
        for asset in keys.iter().filter_map(|key| assets.get(key)) {
            let definition = asset.partitions.as_deref();
            let env = definition.and_then(|d| envs.get(&definition_fingerprint(d))).cloned();
            let mut fact = AssetFacts {
                candidates: positions::candidates(definition, &env_or_now(&env, wall_clock)),
                ..AssetFacts::default()
            };
            let previous = states.get(&asset.key);
            let latest = latest.get(&asset.key);
            fact.data_version = latest.and_then(|l| l.data_version.clone());
            let updated_at = latest.and_then(|l| if asset.is_external { l.observed_at } else { l.materialized_at });
            if let Some(at) = updated_at {
                fact.notes.push(format!("last updated at {}", format_ns(at)));
            }
            // What changed since the previous pass, run by run.
            for event in delta.updates.get(&asset.key).into_iter().flatten() {
                let wanted = if asset.is_external { EventType::Observation } else { EventType::Materialization };
                if event.event_type != wanted {
                    continue;
                }
                let touched = event_positions(asset, event, env.as_ref());
                match fact.updated.iter_mut().find(|(run, _)| *run == event.run_id) {
                    Some((_, positions)) => *positions = positions.union(&touched),
                    None => fact.updated.push((event.run_id.clone(), touched)),
                }
            }
            match (definition, &env) {
                (Some(definition), Some(env)) => {
                    let grid = grid_statuses.get(&asset.key).cloned().unwrap_or_default();
                    fact.materialized = grid.materialized;
                    fact.failed = grid.failed;
                    fact.in_progress = grid
                        .in_progress
                        .iter()
                        .filter(|(run, _)| unfinished_ids.contains(run.as_str()))
                        .fold(RangeSet::new(), |all, (_, positions)| all.union(positions));
                    for run in unfinished.iter().filter(|run| run.node_names.contains(&asset.key)) {
                        let key = run
                            .partition_key
                            .as_ref()
                            .and_then(|key| serde_json::from_value::<PartitionKey>(key.clone()).ok());
                        if let Some(key) = key {
                            fact.in_progress =
                                fact.in_progress.union(&positions::positions_of_key(definition, &key, env));
                            fact.notes.push(format!("in flight in run {}", run.run_id));
                        }
                    }
                    fact.data_changed = fact.updated.iter().fold(RangeSet::new(), |all, (_, p)| all.union(p));
                    fact.latest_runs = fact.updated.clone();
                }
                _ => {
                    let whole = RangeSet::span(0, 0);
                    if updated_at.is_some() {
                        fact.materialized = whole.clone();
                    }
                    fact.failed_flag = match delta.outcomes.get(&asset.key) {
                        Some(failed) => *failed,
                        None => previous.is_some_and(|state| state.failed),
                    };
                    if fact.failed_flag {
                        fact.failed = whole.clone();
                    }
                    if let Some(run) = unfinished.iter().find(|run| run.node_names.contains(&asset.key)) {
                        fact.in_progress = whole.clone();
                        fact.notes.push(format!("in flight in run {}", run.run_id));
                    }
                    if previous.is_some_and(|state| state.data_version != fact.data_version) {
                        fact.data_changed = whole.clone();
                    }
                    if let Some(run) = latest.and_then(|l| l.last_run_id.clone()) {
                        fact.latest_runs = vec![(run, whole)];
                    }
                }
            }
            if latest.is_some_and(|l| {
                l.materialized_at.is_some() && !asset.is_external && l.code_version != asset.code_version
            }) {
                fact.code_changed = fact.materialized.clone();
            }
            for backfill in &backfills {
                let targets_asset = backfill.selection.as_ref().is_none_or(|selection| selection.contains(&asset.key));
                if !targets_asset {
                    continue;
                }
                let covered = match (definition, &env, &backfill.target) {
                    (Some(definition), Some(env), Some(BackfillTarget::Keys(keys))) => {
                        keys.iter().fold(RangeSet::new(), |all, key| {
                            all.union(&positions::positions_of_key(definition, key, env))
                        })
                    }
                    (Some(definition), Some(env), Some(BackfillTarget::Range(range))) => {
                        positions::positions_of_range(definition, range, env)
                    }
                    _ => fact.candidates.clone(),
                };
                fact.backfill = fact.backfill.union(&covered);
                fact.notes.push(format!("in flight in backfill {}", backfill.backfill_id));
            }
            fact.env = env;
            facts.insert(asset.key.clone(), fact);
        }
        Ok(Self { assets, facts, runs, cursor, checkpoint, states })
    }

    /// The state to persist for `asset` with its evaluation state `state`.
    pub(crate) fn next_state(&self, asset: &str, state: rivers_core::condition::ConditionState) -> AssetConditionState {
        let fact = self.facts.get(asset);
        AssetConditionState {
            asset_key: asset.to_owned(),
            state,
            failed: fact.is_some_and(|f| f.failed_flag),
            data_version: fact.and_then(|f| f.data_version.clone()),
        }
    }

    /// The partition environment of a partitioned asset.
    pub(crate) fn env(&self, asset: &str) -> Option<&PartitionEnv> {
        self.facts.get(asset)?.env.as_ref()
    }

    /// Facts about `asset` in words.
    pub(crate) fn notes(&self, asset: &str) -> &[String] {
        self.facts.get(asset).map_or(&[], |fact| fact.notes.as_slice())
    }

    /// Moves the facts to `now` (`simulate_automation`): time windows that opened since exist.
    pub(crate) fn advance_to(&mut self, now: DateTime<Utc>) {
        let wall_clock = now.with_timezone(&chrono::Local).naive_local();
        for (key, fact) in &mut self.facts {
            let Some(env) = fact.env.as_mut() else { continue };
            env.now = wall_clock;
            let definition = self.assets.get(key).and_then(|asset| asset.partitions.as_deref());
            fact.candidates = positions::candidates(definition, env);
        }
    }

    /// Starts the next simulated pass: what was updated before is no longer new.
    pub(crate) fn clear_updates(&mut self) {
        for fact in self.facts.values_mut() {
            fact.updated.clear();
            fact.data_changed = RangeSet::new();
        }
    }

    /// Assumes a run of `targets` materialized `positions` of `asset` at once
    /// (`simulate_automation`): the next pass sees them updated by that run.
    pub(crate) fn assume_materialized(&mut self, asset: &str, positions: &RangeSet, run_id: &str, targets: &[String]) {
        self.runs.insert(run_id.to_owned(), (targets.to_vec(), BTreeMap::new()));
        let Some(fact) = self.facts.get_mut(asset) else { return };
        fact.materialized = fact.materialized.union(positions);
        fact.failed = fact.failed.difference(positions);
        fact.failed_flag = false;
        fact.data_changed = fact.data_changed.union(positions);
        fact.updated.push((run_id.to_owned(), positions.clone()));
        for (_, held) in &mut fact.latest_runs {
            *held = held.difference(positions);
        }
        fact.latest_runs.push((run_id.to_owned(), positions.clone()));
    }

    /// The positions a run with `partition_key` covers of `asset` (`{0}` when unpartitioned).
    pub(crate) fn positions_of(&self, asset: &str, partition_key: Option<&PartitionKey>) -> RangeSet {
        let definition = self.assets.get(asset).and_then(|a| a.partitions.as_deref());
        match (definition, self.env(asset), partition_key) {
            (Some(definition), Some(env), Some(key)) => positions::positions_of_key(definition, key, env),
            (Some(_), ..) => RangeSet::new(),
            (None, ..) => RangeSet::span(0, 0),
        }
    }

    fn of(&self, asset: &str) -> Option<&AssetFacts> {
        self.facts.get(asset)
    }

    fn run_positions(&self, runs: &[(String, RangeSet)]) -> Vec<RunPositions> {
        runs.iter()
            .map(|(run, positions)| RunPositions {
                positions: positions.clone(),
                tags: self.runs.get(run).map(|(_, tags)| tags.clone()).unwrap_or_default(),
            })
            .collect()
    }
}

fn env_or_now(env: &Option<PartitionEnv>, now: NaiveDateTime) -> PartitionEnv {
    env.clone().unwrap_or_else(|| PartitionEnv::at(now))
}

fn format_ns(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The positions of `asset` an event touched: its span on the asset's current grid, or the
/// partition it names, or the single position of an unpartitioned asset.
fn event_positions(asset: &ConditionAsset, event: &StoredEvent, env: Option<&PartitionEnv>) -> RangeSet {
    let (Some(definition), Some(env)) = (asset.partitions.as_deref(), env) else { return RangeSet::span(0, 0) };
    if let Some(span) = &event.span {
        // A span on another definition's grid was written before the definition changed.
        return if span.definition == definition_fingerprint(definition) {
            span.positions.clone()
        } else {
            RangeSet::new()
        };
    }
    match event.partition_key.as_deref().map(|text| PartitionKey::parse_display(text, text.contains('='))) {
        Some(Ok(key)) => positions::positions_of_key(definition, &key, env),
        _ => RangeSet::new(),
    }
}

/// Reads the change feed from where the previous pass stopped up to its end: what was
/// materialized, observed or failed since. The first pass ever starts at the newest commit
/// (history before it is not "new"); a pass after one that found the feed empty reads it from
/// its start.
async fn read_feed(
    storage: &Storage,
    previous: &ConditionCheckpoint,
) -> rivers_storage::Result<(FeedDelta, Option<FeedCursor>)> {
    let mut delta = FeedDelta::default();
    let mut cursor = match (previous.cursor, previous.evaluated_at) {
        (Some(cursor), _) => Some(cursor),
        (None, Some(_)) => None,
        (None, None) => match storage.feed_head().await? {
            Some(head) => Some(head),
            None => return Ok((delta, None)),
        },
    };
    loop {
        let page = storage.changes_since(cursor, FEED_PAGE).await?;
        for entry in page.entries {
            for change in entry.changes {
                let Change::Events(events) = change else { continue };
                for event in events {
                    let Some(asset) = event.asset_key.clone() else { continue };
                    match event.event_type {
                        EventType::Materialization | EventType::Observation => {
                            delta.outcomes.insert(asset.clone(), false);
                            delta.updates.entry(asset).or_default().push(event);
                        }
                        EventType::StepFailure => {
                            delta.outcomes.insert(asset, true);
                        }
                        _ => {}
                    }
                }
            }
        }
        cursor = page.cursor.or(cursor);
        if !page.more {
            return Ok((delta, cursor));
        }
    }
}

impl ConditionFacts for PassFacts<'_> {
    fn candidates(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.candidates.clone()).unwrap_or_default()
    }
    fn materialized(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.materialized.clone()).unwrap_or_default()
    }
    fn execution_failed(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.failed.clone()).unwrap_or_default()
    }
    fn in_progress(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.in_progress.clone()).unwrap_or_default()
    }
    fn backfill_in_progress(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.backfill.clone()).unwrap_or_default()
    }
    fn updated_since_previous_evaluation(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.updated.iter().fold(RangeSet::new(), |all, (_, p)| all.union(p))).unwrap_or_default()
    }
    fn data_version_changed(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.data_changed.clone()).unwrap_or_default()
    }
    fn code_version_changed(&self, asset: &str) -> RangeSet {
        self.of(asset).map(|f| f.code_changed.clone()).unwrap_or_default()
    }
    fn latest_time_window_start(&self, asset: &str) -> Option<NaiveDateTime> {
        let definition = self.assets.get(asset)?.partitions.as_deref();
        positions::latest_window_start(definition, self.env(asset)?)
    }
    fn positions_starting_from(&self, asset: &str, start: NaiveDateTime) -> RangeSet {
        let definition = self.assets.get(asset).and_then(|a| a.partitions.as_deref());
        match self.env(asset) {
            Some(env) => positions::starting_from(definition, start, env),
            None => self.candidates(asset),
        }
    }
    fn deps(&self, asset: &str) -> Vec<String> {
        self.assets.get(asset).map(|a| a.deps.iter().map(|dep| dep.key.clone()).collect()).unwrap_or_default()
    }
    fn downstream_positions(&self, asset: &str, dep: &str, dep_positions: &RangeSet) -> RangeSet {
        let Some(downstream) = self.assets.get(asset) else { return RangeSet::new() };
        let mapping = downstream.deps.iter().find(|d| d.key == dep).and_then(|d| d.mapping.as_ref());
        let upstream = self.assets.get(dep).and_then(|a| a.partitions.as_deref());
        let downstream_all = self.of(asset).map(|f| &f.candidates);
        let fallback;
        let env = match self.env(asset).or_else(|| self.env(dep)) {
            Some(env) => env,
            None => {
                fallback = PartitionEnv::at(Utc::now().naive_local());
                &fallback
            }
        };
        positions::pre_image(
            mapping,
            upstream,
            downstream.partitions.as_deref(),
            dep_positions,
            downstream_all.unwrap_or(&RangeSet::new()),
            env,
        )
    }
    fn latest_materialization_runs(&self, asset: &str) -> Vec<RunPositions> {
        self.of(asset).map(|f| self.run_positions(&f.latest_runs)).unwrap_or_default()
    }
    fn new_materialization_runs(&self, asset: &str) -> Vec<RunPositions> {
        self.of(asset).map(|f| self.run_positions(&f.updated)).unwrap_or_default()
    }
    fn latest_run_includes(&self, dep: &str, target: &str) -> RangeSet {
        let Some(fact) = self.of(dep) else { return RangeSet::new() };
        fact.latest_runs
            .iter()
            .filter(|(run, _)| self.runs.get(run).is_some_and(|(nodes, _)| nodes.iter().any(|n| n == target)))
            .fold(RangeSet::new(), |all, (_, positions)| all.union(positions))
    }
}
