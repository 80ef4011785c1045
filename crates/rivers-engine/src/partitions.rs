//! Partitions in a run: the run's key, the environment keys are read in (the clock and the
//! dynamic key sets in storage, read once per run), and what each step covers and reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rivers_core::Plan;
use rivers_core::partitions::{
    Coords, MappedInput, PartitionEnv, PartitionKey, PartitionMapping, Partitions, RangeSet, StepPartitions, map_keys,
};
use rivers_storage::{Storage, definition_fingerprint};

/// The partition a run targets.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPartition {
    /// The run's key, as recorded on the run (`RunRecord.partition_key`).
    pub key: PartitionKey,
    /// What partitioned steps see as `context.partition.keys`: `[key]` for a run launched with
    /// one key, a batched backfill group's individual keys otherwise.
    pub context_keys: Arc<[PartitionKey]>,
}

impl RunPartition {
    /// A run for one key (which may hold several values).
    pub fn single(key: PartitionKey) -> Self {
        Self { context_keys: Arc::from([key.clone()]), key }
    }
}

/// What one input of a step reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputScope {
    /// These upstream partitions, in upstream order.
    Keys(Arc<[PartitionKey]>),
    /// The whole (unpartitioned) upstream.
    Whole,
    /// Nothing: the parameter receives `None`.
    Nothing,
}

/// What a step covers and reads.
#[derive(Debug, Clone, PartialEq)]
pub struct StepScope {
    /// `context.partition.keys`; empty for an unpartitioned step. Shared with the run (a batched
    /// run's group can hold a million keys).
    pub keys: Arc<[PartitionKey]>,
    /// The individual partitions the step covers, in enumeration order (the same allocation as
    /// `keys` when those are already individual and ordered: a single-run backfill's keys).
    pub covered: Arc<[PartitionKey]>,
    /// Their grid positions (partition status is kept in positions), index for index.
    pub positions: Vec<u128>,
    /// Selected multi-asset outputs with definitions of their own: the same partitions'
    /// positions on each output's grid, index for index with `covered`.
    pub output_positions: Vec<(String, Vec<u128>)>,
    /// Upstream name → what it reads, for the partitioned inputs.
    pub inputs: Vec<(String, InputScope)>,
    /// Why the step cannot run for these partitions (a mapping that leaves the upstream's
    /// range): the step fails with this message.
    pub error: Option<String>,
}

impl StepScope {
    /// The positions of the covered partitions `keep` accepts (by index into `covered`), on
    /// the step's grid.
    pub fn positions_where(&self, keep: impl Fn(usize) -> bool) -> RangeSet {
        select(&self.positions, keep)
    }

    /// The same on output `asset_key`'s own grid; `None` when the output shares the step's.
    pub fn output_positions_where(&self, asset_key: &str, keep: impl Fn(usize) -> bool) -> Option<RangeSet> {
        let (_, positions) = self.output_positions.iter().find(|(output, _)| output == asset_key)?;
        Some(select(positions, keep))
    }
}

fn select(positions: &[u128], keep: impl Fn(usize) -> bool) -> RangeSet {
    RangeSet::from_positions(positions.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, p)| *p))
}

impl Default for StepScope {
    fn default() -> Self {
        Self {
            keys: Arc::from([]),
            covered: Arc::from([]),
            positions: Vec::new(),
            output_positions: Vec::new(),
            inputs: Vec::new(),
            error: None,
        }
    }
}

/// The environment of a run: now, and the current keys of every dynamic set its steps use.
///
/// # Errors
/// A storage error reading the dynamic key sets.
pub async fn run_env(storage: &Storage, plan: &Plan) -> rivers_storage::Result<PartitionEnv> {
    let mut names = BTreeSet::new();
    for step in plan.steps() {
        if let Some(partitions) = &step.partitions {
            partitions.definition.iter().for_each(|d| dynamic_names(d, &mut names));
            for input in &partitions.inputs {
                input.definition.iter().for_each(|d| dynamic_names(d, &mut names));
            }
        }
    }
    let mut env = PartitionEnv::at(chrono::Local::now().naive_local());
    for name in names {
        let keys = storage.dynamic_keys(&name).await?;
        env = env.with_dynamic(name, keys);
    }
    Ok(env)
}

/// The grid (definition fingerprint) of every partitioned asset the plan's steps write, with
/// the definitions stored so that the run's events on them can be read.
///
/// # Errors
/// A storage error storing the definitions.
pub(crate) async fn run_grids(storage: &Storage, plan: &Plan) -> rivers_storage::Result<HashMap<String, String>> {
    let mut grids = HashMap::new();
    let mut definitions: BTreeMap<String, &Partitions> = BTreeMap::new();
    // Steps share their definitions (`Arc`s of the graph): each is fingerprinted once. (A block,
    // so that the map of pointers is gone before the await.)
    {
        let mut fingerprints: HashMap<*const Partitions, String> = HashMap::new();
        for step in plan.steps() {
            let Some(partitions) = &step.partitions else { continue };
            let Some(definition) = &partitions.definition else { continue };
            let assets = step.outputs.is_empty().then_some(&step.node_name).into_iter().chain(&step.outputs);
            for asset in assets {
                let own = partitions.other_outputs.iter().find(|(output, _)| output == asset).map(|(_, d)| d);
                let definition: &Partitions = own.unwrap_or(definition);
                let fingerprint = fingerprints
                    .entry(std::ptr::from_ref(definition))
                    .or_insert_with(|| definition_fingerprint(definition))
                    .clone();
                definitions.insert(fingerprint.clone(), definition);
                grids.insert(asset.clone(), fingerprint);
            }
        }
    }
    let definitions: Vec<&Partitions> = definitions.into_values().collect();
    storage.register_partition_definitions(&definitions).await?;
    Ok(grids)
}

fn dynamic_names(partitions: &Partitions, names: &mut BTreeSet<String>) {
    for (_, dim) in partitions.dimensions() {
        if let Partitions::Dynamic(dynamic) = dim {
            names.insert(dynamic.name.clone());
        }
    }
}

/// The scope of a step of a run targeting `run` (`None`: an unpartitioned run).
pub(crate) fn step_scope(partitions: &StepPartitions, run: Option<&RunPartition>, env: &PartitionEnv) -> StepScope {
    let mut scope = StepScope::default();
    let mut covered: Vec<Coords> = Vec::new();
    if let (Some(definition), Some(run)) = (&partitions.definition, run) {
        for key in run.context_keys.iter() {
            match definition.individuals(key, env) {
                Ok(coords) => covered.extend(coords),
                Err(why) => {
                    scope.error = Some(format!("partition '{key}' is not valid here: {why}"));
                    return scope;
                }
            }
        }
        covered.sort_unstable();
        covered.dedup();
        scope.keys = run.context_keys.clone();
        // Keys are created only where they differ from the run's keys.
        let mut own: Option<Vec<PartitionKey>> = None;
        for coords in &covered {
            if let (Some(key), Some(position)) = (definition.key_of(coords, env), definition.position(coords, env)) {
                let index = scope.positions.len();
                match &mut own {
                    Some(keys) => keys.push(key),
                    None if scope.keys.get(index) == Some(&key) => {}
                    None => own = Some(scope.keys[..index].iter().cloned().chain([key]).collect()),
                }
                scope.positions.push(position);
            }
        }
        scope.covered = match own {
            Some(keys) => keys.into(),
            None if scope.positions.len() == scope.keys.len() => Arc::clone(&scope.keys),
            None => scope.keys[..scope.positions.len()].into(),
        };
        for (output, own) in &partitions.other_outputs {
            let on_own_grid = |key: &PartitionKey| match own.individuals(key, env)?.as_slice() {
                [coords] => own.position(coords, env).ok_or_else(|| format!("'{key}' has no position")),
                _ => Err(format!("'{key}' is not one partition")),
            };
            match scope.covered.iter().map(on_own_grid).collect::<Result<Vec<u128>, String>>() {
                Ok(positions) => scope.output_positions.push((output.clone(), positions)),
                Err(why) => {
                    scope.error = Some(format!("output '{output}': partition {why}"));
                    return scope;
                }
            }
        }
    }
    for input in &partitions.inputs {
        let mapped =
            map_keys(&input.mapping, input.definition.as_deref(), partitions.definition.as_deref(), &covered, env);
        let read = match mapped {
            Ok(MappedInput::Whole) => InputScope::Whole,
            Ok(MappedInput::Nothing) => InputScope::Nothing,
            // Identity reads exactly the step's keys (a key with several values stays one key).
            Ok(MappedInput::Partitions(_)) if input.mapping == PartitionMapping::Identity => {
                InputScope::Keys(scope.keys.clone())
            }
            Ok(MappedInput::Partitions(coords)) => {
                let upstream = input.definition.as_deref();
                InputScope::Keys(
                    coords.iter().filter_map(|c| upstream.and_then(|u| u.key_of(c, env))).collect::<Vec<_>>().into(),
                )
            }
            Err(why) => {
                scope.error = Some(format!("input '{}': {why}", input.upstream));
                return scope;
            }
        };
        scope.inputs.push((input.upstream.clone(), read));
    }
    scope
}
