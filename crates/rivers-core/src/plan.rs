//! Execution plans: the step instances of one run, keyed by step key, their in-plan edges,
//! levels and effective executors. A plan can grow while its run executes ([`PlanGrowth`]):
//! the seam that fan-out and per-partition step instances build on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::definition::{MapDef, NodeKind, PoolClaim};
use crate::error::{Error, Result};
use crate::graph::AssetGraph;
use crate::partitions::StepPartitions;
use crate::retry::RetryPolicy;
use crate::vocab::ExecutorKind;

/// The key of one step instance: the node name, or `node[mapping_key]` for an instance added
/// by fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepKey(String);

impl StepKey {
    /// The key of a node's single step.
    pub fn node(name: impl Into<String>) -> Self {
        StepKey(name.into())
    }

    /// The key of one fan-out instance of a node.
    pub fn mapped(node: &str, mapping_key: &str) -> Self {
        StepKey(format!("{node}[{mapping_key}]"))
    }

    /// The key as stored in events and run records.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for StepKey {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for StepKey {
    fn from(key: &str) -> Self {
        StepKey(key.to_string())
    }
}

/// One step instance of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStep {
    /// Step key, unique in the plan.
    pub key: StepKey,
    /// Node id in the graph.
    pub node: usize,
    /// Node (asset) name.
    pub node_name: String,
    /// Fan-out mapping key of this instance, if it is one.
    pub mapping_key: Option<String>,
    /// The step's partitions and its partitioned inputs; `None` when partitions play no part.
    pub partitions: Option<StepPartitions>,
    /// Keys of the in-plan steps this one waits for.
    pub upstream_steps: Vec<StepKey>,
    /// 0 for steps without in-plan upstreams, else 1 + the deepest in-plan upstream.
    pub level: u32,
    /// Executor that runs this step.
    pub executor: ExecutorKind,
    /// The step body is a coroutine.
    pub is_async: bool,
    /// Effective retry policy (node > run > repository default).
    pub retry: Option<RetryPolicy>,
    /// Every upstream asset key (in or out of the plan), for input data versions.
    pub upstream_assets: Vec<String>,
    /// The outputs of a multi-asset step that are selected, in declaration order; empty for
    /// every other step (which writes its node's own value).
    pub outputs: Vec<String>,
    /// A fan-out template and its instances: the node's map settings.
    pub map: Option<MapDef>,
    /// A graph asset's own step: when one of its internal steps fails, it fails too (running
    /// its failure hooks) instead of being skipped.
    pub fails_with_members: bool,
    /// Fan-out templates (node names) whose instances this step reads with `collect_stream()`
    /// (and not also with `collect()`): the step runs whatever its instances' outcomes, and its
    /// stream raises at a failed one instead of the step being skipped.
    pub streams: Vec<String>,
    /// The step reads [`PlanStep::streams`] while the instances run: it is ready once the
    /// templates reported their keys. Only sync steps whose executor is the parallel one, in
    /// plans without level grouping; the others wait for every instance to end.
    pub streams_live: bool,
    /// The concurrency pools the step holds slots of while it executes, each once (a pool a
    /// node lists twice, as a multi-asset's outputs may, with its largest count).
    pub pools: Vec<PoolClaim>,
}

impl PlanStep {
    /// A fan-out template: its step reads the producer and reports the instance keys.
    pub fn is_fan_out_template(&self) -> bool {
        self.map.is_some() && self.mapping_key.is_none()
    }

    /// A fan-out instance of this step: keyed `node[mapping_key]`, waiting for
    /// `upstream_steps`, otherwise alike (executor, retry policy, upstream assets).
    pub fn mapped_instance(&self, mapping_key: &str, upstream_steps: Vec<StepKey>) -> PlanStep {
        PlanStep {
            key: StepKey::mapped(&self.node_name, mapping_key),
            mapping_key: Some(mapping_key.to_string()),
            upstream_steps,
            ..self.clone()
        }
    }
}

/// A node's pool claims with each pool once, at its largest count, in first-listed order.
fn step_pools(claims: &[PoolClaim]) -> Vec<PoolClaim> {
    let mut pools: Vec<PoolClaim> = Vec::with_capacity(claims.len());
    for claim in claims {
        match pools.iter_mut().find(|seen| seen.pool == claim.pool) {
            Some(seen) => seen.slots = seen.slots.max(claim.slots),
            None => pools.push(claim.clone()),
        }
    }
    pools
}

/// What a finished step adds to its run's plan: new step instances (their upstreams may be
/// existing steps or other new ones, listed first) and existing steps that must now also wait
/// for some of the new ones (fan-in).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanGrowth {
    /// New step instances, upstreams before their dependents.
    pub steps: Vec<PlanStep>,
    /// `(existing step, new upstreams)`: steps not started yet that gain upstreams.
    pub fan_in: Vec<(StepKey, Vec<StepKey>)>,
}

impl PlanGrowth {
    /// Nothing to add.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.fan_in.is_empty()
    }
}

/// Options that shape a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The run's executor.
    pub executor: ExecutorKind,
    /// Run- or job-level retry default.
    pub run_retry: Option<RetryPolicy>,
    /// Repository-wide retry default.
    pub default_retry: Option<RetryPolicy>,
}

/// The step instances of one run. Initial steps are in dispatch order (level, then
/// registration order); steps added by growth follow, each after its upstreams.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Shared so that handing a step to its attempt costs a reference count, not a copy.
    steps: Vec<Arc<PlanStep>>,
    positions: HashMap<StepKey, usize>,
    /// Some step overrides the run executor: run level by level, one executor batch at a time.
    pub level_grouping: bool,
}

impl Plan {
    /// A plan over `steps`, which must list upstreams before dependents.
    ///
    /// # Errors
    /// `Configuration` for a duplicate step key or an upstream that is not listed before.
    pub fn from_steps(steps: Vec<PlanStep>, level_grouping: bool) -> Result<Self> {
        let mut plan = Plan { steps: Vec::with_capacity(steps.len()), positions: HashMap::new(), level_grouping };
        for step in steps {
            plan.push(step)?;
        }
        Ok(plan)
    }

    /// Steps in plan order.
    pub fn steps(&self) -> &[Arc<PlanStep>] {
        &self.steps
    }

    /// Number of step instances.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the plan has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step with this key.
    pub fn step(&self, key: &StepKey) -> Option<&PlanStep> {
        self.positions.get(key).map(|&i| &*self.steps[i])
    }

    /// Position of the step with this key in [`Plan::steps`].
    pub fn position(&self, key: &StepKey) -> Option<usize> {
        self.positions.get(key).copied()
    }

    /// Step keys in plan order, as stored on the run record.
    pub fn node_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.key.as_str().to_string()).collect()
    }

    /// Appends one step, checking its key is new and its upstreams exist; its level is derived
    /// from its upstreams.
    fn push(&mut self, mut step: PlanStep) -> Result<usize> {
        if self.positions.contains_key(&step.key) {
            return Err(Error::Configuration(format!("the plan already has a step '{}'", step.key)));
        }
        let mut level = 0;
        for up in &step.upstream_steps {
            let Some(&position) = self.positions.get(up) else {
                return Err(Error::Configuration(format!(
                    "step '{}' waits for step '{up}', which is not in the plan",
                    step.key
                )));
            };
            level = level.max(self.steps[position].level + 1);
        }
        step.level = level;
        let position = self.steps.len();
        self.positions.insert(step.key.clone(), position);
        self.steps.push(Arc::new(step));
        Ok(position)
    }

    /// Adds `growth` to the plan; returns the positions of the new steps. Fan-in targets (and
    /// their dependents) move to a deeper level when a new upstream requires it, so levels
    /// stay increasing along every edge.
    ///
    /// # Errors
    /// `Configuration` naming the step, for a duplicate key or an unknown step; the plan is
    /// unchanged then.
    pub fn grow(&mut self, growth: PlanGrowth) -> Result<Vec<usize>> {
        let mut grown = self.clone();
        let added = growth.steps.into_iter().map(|step| grown.push(step)).collect::<Result<Vec<_>>>()?;
        let mut deepened = Vec::new();
        let mut fan_in_targets = Vec::new();
        for (target, ups) in growth.fan_in {
            let Some(&position) = grown.positions.get(&target) else {
                return Err(Error::Configuration(format!("fan-in names step '{target}', which is not in the plan")));
            };
            fan_in_targets.push(position);
            // A target may gain thousands of upstreams (one per fan-out instance).
            let mut known: HashSet<StepKey> = grown.steps[position].upstream_steps.iter().cloned().collect();
            for up in ups {
                let Some(&up_position) = grown.positions.get(&up) else {
                    return Err(Error::Configuration(format!(
                        "step '{target}' would wait for step '{up}', which is not in the plan"
                    )));
                };
                let needed = grown.steps[up_position].level + 1;
                let target_step = Arc::make_mut(&mut grown.steps[position]);
                if known.insert(up.clone()) {
                    target_step.upstream_steps.push(up);
                }
                if target_step.level < needed {
                    target_step.level = needed;
                    deepened.push(position);
                }
            }
        }
        grown.check_acyclic_from(&fan_in_targets)?;
        grown.deepen_downstream(deepened);
        *self = grown;
        Ok(added)
    }

    fn downstream_map(&self) -> Vec<Vec<usize>> {
        let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); self.steps.len()];
        for (position, step) in self.steps.iter().enumerate() {
            for up in &step.upstream_steps {
                downstream[self.positions[up]].push(position);
            }
        }
        downstream
    }

    /// Fan-in edges can close a cycle (a target told to wait for its own dependents); new
    /// steps cannot, since they only name steps listed before them.
    fn check_acyclic_from(&self, targets: &[usize]) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let downstream = self.downstream_map();
        for &target in targets {
            let mut seen = vec![false; self.steps.len()];
            let mut stack = downstream[target].clone();
            while let Some(position) = stack.pop() {
                if position == target {
                    return Err(Error::Configuration(format!(
                        "step '{}' would wait for one of its own dependents: fan-in must not close a cycle",
                        self.steps[target].key
                    )));
                }
                if !std::mem::replace(&mut seen[position], true) {
                    stack.extend(downstream[position].iter().copied());
                }
            }
        }
        Ok(())
    }

    /// Raises the levels of the dependents of `changed` until every edge goes deeper.
    fn deepen_downstream(&mut self, mut changed: Vec<usize>) {
        if changed.is_empty() {
            return;
        }
        let downstream = self.downstream_map();
        while let Some(position) = changed.pop() {
            let needed = self.steps[position].level + 1;
            for &down in &downstream[position] {
                if self.steps[down].level < needed {
                    Arc::make_mut(&mut self.steps[down]).level = needed;
                    changed.push(down);
                }
            }
        }
    }
}

/// The templates `node` gathers with `collect_stream()` only: a template it also `collect()`s
/// must have every instance succeed first, so that edge wins.
fn streamed_templates(node: &crate::definition::NodeDef) -> Vec<String> {
    let sources = |stream: bool| {
        node.params
            .iter()
            .filter(move |p| p.gather.is_some_and(|g| g.is_stream() == stream))
            .filter_map(|p| p.source.as_deref())
    };
    let collected: HashSet<&str> = sources(false).collect();
    let mut streamed: Vec<String> = Vec::new();
    for source in sources(true) {
        if !collected.contains(source) && !streamed.iter().any(|s| s == source) {
            streamed.push(source.to_string());
        }
    }
    streamed
}

impl AssetGraph {
    /// Builds an ephemeral plan from a selection of names (`None` = every non-external asset,
    /// with the internal nodes of graph assets; standalone tasks run only when named). A name
    /// may be a node (a multi-asset's own name selects all its outputs) or a multi-asset output,
    /// which selects that output of its step. External assets are never steps.
    ///
    /// # Errors
    /// `AssetNotFound` for a selected name that is not registered.
    pub fn plan(&self, selection: Option<&[String]>, include_upstream: bool, options: &PlanOptions) -> Result<Plan> {
        // Multi-asset steps that run only some of their outputs.
        let mut subsets: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut whole: HashSet<usize> = HashSet::new();
        let mut chosen: Vec<usize> = match selection {
            None => (0..self.len())
                .filter(|&id| !(self.nodes[id].kind == NodeKind::Task && self.nodes[id].graph.is_none()))
                .collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    if let Some(id) = self.node_id(name) {
                        whole.insert(id);
                        return Ok(id);
                    }
                    let key = self.key(name).ok_or_else(|| {
                        Error::AssetNotFound(format!(
                            "selection names '{name}', which is not a registered asset or task; registered \
                             names: [{}]",
                            self.nodes.iter().flat_map(|n| n.output_names()).collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    if let Some(output) = key.output {
                        subsets.entry(key.node).or_default().push(output);
                    }
                    Ok(key.node)
                })
                .collect::<Result<_>>()?,
        };
        if include_upstream {
            let ancestors = self.ancestors(&chosen);
            whole.extend(ancestors.iter().copied());
            chosen.extend(ancestors);
        }
        subsets.retain(|id, _| !whole.contains(id));
        Ok(self.plan_selected(&self.with_members(chosen), &subsets, options))
    }

    /// Builds a plan over exactly these node ids and the internal nodes of the graph assets
    /// among them (duplicates and external assets dropped; multi-assets with all outputs).
    pub fn plan_nodes(&self, ids: &[usize], options: &PlanOptions) -> Plan {
        self.plan_selected(&self.with_members(ids.to_vec()), &HashMap::new(), options)
    }

    fn plan_selected(&self, ids: &[usize], subsets: &HashMap<usize, Vec<u32>>, options: &PlanOptions) -> Plan {
        let mut members: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&id| self.nodes[id].kind != NodeKind::External)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        members.sort_unstable();
        let in_plan: HashSet<usize> = members.iter().copied().collect();

        let mut levels = vec![None; self.len()];
        for &id in &members {
            self.level_of(id, &in_plan, &mut levels);
        }
        members.sort_by_key(|&id| (levels[id], id));

        let mut level_grouping = false;
        let mut steps: Vec<PlanStep> = members
            .iter()
            .map(|&id| {
                let node = &self.nodes[id];
                let declared = self.executors[id];
                level_grouping |= declared.is_some_and(|kind| kind != options.executor);
                let mut executor = declared.unwrap_or(options.executor);
                // Decided before in-memory pinning: a live consumer runs in the process driving
                // the run whatever its executor. The in-process executor runs one step at a
                // time, so there the consumer waits for every instance to end instead.
                let streams = streamed_templates(node);
                let streams_live = !streams.is_empty() && executor == ExecutorKind::Parallel && !node.is_async;
                if executor == ExecutorKind::Parallel && node.pinned_in_process && !node.is_async {
                    executor = ExecutorKind::InProcess;
                }
                let upstream = &self.upstream[id];
                let outputs: Vec<String> = match subsets.get(&id) {
                    Some(selected) => node
                        .outputs
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| selected.contains(&(*i as u32)))
                        .map(|(_, o)| o.name.clone())
                        .collect(),
                    None => node.outputs.iter().map(|o| o.name.clone()).collect(),
                };
                let retry = if node.never_retried {
                    None
                } else {
                    self.retries[id]
                        .clone()
                        .or_else(|| options.run_retry.clone())
                        .or_else(|| options.default_retry.clone())
                };
                PlanStep {
                    key: StepKey::node(node.name.as_str()),
                    node: id,
                    node_name: node.name.clone(),
                    mapping_key: None,
                    partitions: self.step_partitions(id, &outputs),
                    upstream_steps: {
                        // Edges to several outputs of one multi-asset wait for its one step.
                        let mut ids: Vec<usize> =
                            upstream.iter().map(|e| e.upstream).filter(|u| in_plan.contains(u)).collect();
                        ids.sort_unstable();
                        ids.dedup();
                        ids.into_iter().map(|u| StepKey::node(self.nodes[u].name.as_str())).collect()
                    },
                    level: levels[id].unwrap_or(0),
                    executor,
                    is_async: node.is_async,
                    retry,
                    upstream_assets: if node.kind.is_asset() { self.lineage(id) } else { Vec::new() },
                    outputs,
                    map: node.map,
                    fails_with_members: node.kind == NodeKind::Graph,
                    streams,
                    streams_live,
                    pools: step_pools(&node.pools),
                }
            })
            .collect();
        if level_grouping {
            // Level by level, one executor batch at a time: a consumer at a deeper level than
            // its instances cannot run beside them.
            steps.iter_mut().for_each(|step| step.streams_live = false);
        }
        // Members are sorted by level, so every upstream precedes its dependents.
        Plan::from_steps(steps, level_grouping).expect("graph nodes have unique names and sorted upstreams")
    }

    fn level_of(&self, id: usize, in_plan: &HashSet<usize>, levels: &mut [Option<u32>]) -> u32 {
        if let Some(level) = levels[id] {
            return level;
        }
        // The graph is acyclic (checked at build), so this recursion terminates; depth is
        // bounded by the longest chain, and an explicit stack keeps deep chains safe.
        let mut stack = vec![(id, false)];
        while let Some((node, expanded)) = stack.pop() {
            if levels[node].is_some() {
                continue;
            }
            let ups: Vec<usize> =
                self.upstream[node].iter().map(|e| e.upstream).filter(|u| in_plan.contains(u)).collect();
            if expanded || ups.iter().all(|u| levels[*u].is_some()) {
                let level = ups.iter().filter_map(|u| levels[*u]).map(|l| l + 1).max().unwrap_or(0);
                levels[node] = Some(level);
            } else {
                stack.push((node, true));
                stack.extend(ups.into_iter().filter(|u| levels[*u].is_none()).map(|u| (u, false)));
            }
        }
        levels[id].unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::definition::{NodeDef, ParamDef};

    fn options() -> PlanOptions {
        PlanOptions { executor: ExecutorKind::InProcess, run_retry: None, default_retry: None }
    }

    fn diamond() -> AssetGraph {
        AssetGraph::build(
            vec![
                NodeDef::asset("d").with_param("b").with_param("c"),
                NodeDef::asset("b").with_param("a"),
                NodeDef::asset("c").with_param("a"),
                NodeDef::asset("a"),
            ],
            &[],
            HashMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn steps_are_ordered_by_level_then_registration() {
        let plan = diamond().plan(None, false, &options()).unwrap();
        assert_eq!(plan.node_names(), vec!["a", "b", "c", "d"]);
        assert_eq!(plan.steps().iter().map(|s| s.level).collect::<Vec<_>>(), vec![0, 1, 1, 2]);
        assert_eq!(plan.steps()[3].upstream_steps, vec![StepKey::node("b"), StepKey::node("c")]);
        assert_eq!(plan.step(&"c".into()).map(|s| s.node_name.as_str()), Some("c"));
    }

    #[test]
    fn selection_with_and_without_upstream() {
        let g = diamond();
        let only = g.plan(Some(&["d".into()]), false, &options()).unwrap();
        assert_eq!(only.node_names(), vec!["d"]);
        assert_eq!(only.steps()[0].level, 0);
        let all = g.plan(Some(&["b".into(), "b".into()]), true, &options()).unwrap();
        assert_eq!(all.node_names(), vec!["a", "b"]);
    }

    #[test]
    fn unknown_selection_is_asset_not_found() {
        assert!(matches!(diamond().plan(Some(&["x".into()]), false, &options()), Err(Error::AssetNotFound(_))));
    }

    #[test]
    fn executor_override_turns_on_level_grouping() {
        let mut node = NodeDef::asset("a");
        node.executor_override = Some("parallel".into());
        let g = AssetGraph::build(vec![node, NodeDef::asset("b")], &[], HashMap::new()).unwrap();
        let plan = g.plan(None, false, &options()).unwrap();
        assert!(plan.level_grouping);
        assert_eq!(plan.steps()[0].executor, ExecutorKind::Parallel);
    }

    #[test]
    fn steps_claim_each_pool_once_with_its_largest_count() {
        let mut node = NodeDef::asset("a");
        let claim = |pool: &str, slots| PoolClaim { pool: pool.into(), slots };
        node.pools = vec![claim("db", 1), claim("api", 2), claim("db", 3)];
        let g = AssetGraph::build(vec![node], &[], HashMap::new()).unwrap();
        let plan = g.plan(None, false, &options()).unwrap();
        assert_eq!(plan.steps()[0].pools, [claim("db", 3), claim("api", 2)]);
        assert_eq!(plan.steps()[0].mapped_instance("k", Vec::new()).pools, plan.steps()[0].pools);
    }

    fn mapped(node: &str, key: &str, upstream: &[&str]) -> PlanStep {
        PlanStep {
            key: StepKey::mapped(node, key),
            node: 0,
            node_name: node.into(),
            mapping_key: Some(key.into()),
            partitions: None,
            upstream_steps: upstream.iter().map(|&u| StepKey::from(u)).collect(),
            level: 0,
            executor: ExecutorKind::InProcess,
            is_async: false,
            retry: None,
            upstream_assets: Vec::new(),
            outputs: Vec::new(),
            map: None,
            fails_with_members: false,
            streams: Vec::new(),
            streams_live: false,
            pools: Vec::new(),
        }
    }

    /// `sales` (outputs orders, refunds) feeds `report` through `orders`; graph `g` has the
    /// internal nodes `g/load` (reads `refunds`) and `g/final`; `t` is a standalone task.
    fn kinds() -> AssetGraph {
        let sales = NodeDef::multi("sales", &["orders", "refunds"]);
        let report = NodeDef::asset("report").with_param("orders");
        let load = NodeDef { graph: Some("g".into()), ..NodeDef::task("g/load").with_param("refunds") };
        let mut last = NodeDef { graph: Some("g".into()), ..NodeDef::task("g/final") };
        last.params.push(ParamDef {
            role: crate::definition::ParamRole::Wired,
            source: Some("g/load".into()),
            ..ParamDef::named("rows")
        });
        let graph =
            NodeDef { kind: NodeKind::Graph, members: vec!["g/final".into(), "g/load".into()], ..NodeDef::asset("g") };
        let task = NodeDef::task("t").with_param("report");
        AssetGraph::build(vec![sales, report, load, last, graph, task], &[], HashMap::new()).unwrap()
    }

    fn keys(plan: &Plan) -> Vec<&str> {
        plan.steps().iter().map(|s| s.key.as_str()).collect()
    }

    #[test]
    fn an_output_selects_its_multi_asset_step_with_that_output_only() {
        let g = kinds();
        let plan = g.plan(Some(&["refunds".into()]), false, &options()).unwrap();
        assert_eq!(keys(&plan), vec!["sales"]);
        assert_eq!(plan.steps()[0].outputs, vec!["refunds"]);
        let plan = g.plan(Some(&["refunds".into(), "sales".into()]), false, &options()).unwrap();
        assert_eq!(plan.steps()[0].outputs, vec!["orders", "refunds"], "the multi-asset's name selects all");
        let plan = g.plan(Some(&["report".into()]), true, &options()).unwrap();
        assert_eq!(keys(&plan), vec!["sales", "report"]);
        assert_eq!(plan.steps()[0].outputs, vec!["orders", "refunds"], "upstreams run whole");
        assert_eq!(plan.steps()[1].upstream_assets, vec!["orders"]);
    }

    #[test]
    fn a_graph_asset_brings_its_internal_nodes_and_standalone_tasks_run_only_when_named() {
        let g = kinds();
        let all = g.plan(None, false, &options()).unwrap();
        assert_eq!(keys(&all), vec!["sales", "report", "g/load", "g/final", "g"]);
        let graph = all.step(&StepKey::node("g")).unwrap();
        assert_eq!(graph.upstream_steps.len(), 2, "the graph step waits for every member");
        assert_eq!(graph.upstream_assets, vec!["refunds"], "lineage skips the graph's own nodes");
        let only = g.plan(Some(&["g".into()]), false, &options()).unwrap();
        assert_eq!(keys(&only), vec!["g/load", "g/final", "g"]);
        let inner = g.plan(Some(&["g/final".into()]), false, &options()).unwrap();
        assert_eq!(keys(&inner), vec!["g/final"]);
        let task = g.plan(Some(&["t".into()]), false, &options()).unwrap();
        assert_eq!(keys(&task), vec!["t"]);
        assert!(task.steps()[0].upstream_assets.is_empty(), "tasks record no materializations");
    }

    #[test]
    fn jobs_expand_graph_assets_and_check_their_outside_reads() {
        let g = kinds();
        let err = g.validate_job("j", &["g".into()], false).unwrap_err().to_string();
        assert!(err.contains("graph asset 'g'") && err.contains("'refunds'"), "{err}");
        let ids = g.validate_job("j", &["g".into(), "orders".into()], false).unwrap();
        assert_eq!(g.plan_nodes(&ids, &options()).len(), 4);
    }

    #[test]
    fn multi_asset_outputs_are_asset_keys_with_their_own_lineage() {
        let mut sales = NodeDef::multi("sales", &["orders", "refunds"]).with_param("raw");
        sales.outputs[1].deps.push("audit".into());
        let g = AssetGraph::build(vec![NodeDef::asset("raw"), NodeDef::asset("audit"), sales], &[], HashMap::new())
            .unwrap();
        let entries: Vec<(&str, Vec<String>)> = g.assets().into_iter().map(|e| (e.key, e.upstreams)).collect();
        assert_eq!(entries[2], ("orders", vec!["raw".to_string()]));
        assert_eq!(entries[3], ("refunds", vec!["raw".to_string(), "audit".to_string()]));
        let twice = AssetGraph::build(
            vec![NodeDef::asset("orders"), NodeDef::multi("sales", &["orders"])],
            &[],
            HashMap::new(),
        );
        assert!(matches!(twice, Err(Error::GraphValidation(m)) if m.contains("'orders'")));
        assert!(AssetGraph::build(vec![NodeDef::multi("orders", &["orders"])], &[], HashMap::new()).is_ok());
    }

    #[test]
    fn generator_multi_assets_are_never_retried() {
        let mut node = NodeDef::multi("sales", &["orders"]);
        node.never_retried = true;
        let g = AssetGraph::build(vec![node], &[], HashMap::new()).unwrap();
        let policy =
            RetryPolicy { max_retries: 3, backoff: None, retry_on: crate::RetryOn::Transient, escalate_on: vec![] };
        let options = PlanOptions { default_retry: Some(policy), ..options() };
        assert_eq!(g.plan(None, false, &options).unwrap().steps()[0].retry, None);
    }

    #[test]
    fn growth_adds_instances_and_deepens_fan_in_targets() {
        let mut plan = diamond().plan(None, false, &options()).unwrap();
        // `b` fans out into two instances that `d` (and so nothing else) must wait for.
        let growth = PlanGrowth {
            steps: vec![mapped("m", "1", &["b"]), mapped("m", "2", &["b"]), mapped("n", "1", &["m[1]"])],
            fan_in: vec![(StepKey::node("d"), vec![StepKey::from("m[2]"), StepKey::from("n[1]")])],
        };
        let added = plan.grow(growth).unwrap();
        assert_eq!(added, vec![4, 5, 6]);
        assert_eq!(plan.step(&"m[1]".into()).unwrap().level, 2);
        assert_eq!(plan.step(&"n[1]".into()).unwrap().level, 3);
        let d = plan.step(&"d".into()).unwrap();
        assert_eq!(d.level, 4);
        assert!(d.upstream_steps.contains(&StepKey::from("n[1]")));
        assert_eq!(plan.node_names().len(), 7);
    }

    #[test]
    fn invalid_growth_names_the_step_and_changes_nothing() {
        let mut plan = diamond().plan(None, false, &options()).unwrap();
        let before = plan.clone();
        let unknown = PlanGrowth { steps: vec![mapped("m", "1", &["zz"])], fan_in: Vec::new() };
        let err = plan.grow(unknown).unwrap_err().to_string();
        assert!(err.contains("'m[1]'") && err.contains("'zz'"), "{err}");
        let duplicate =
            PlanGrowth { steps: vec![mapped("m", "1", &["a"]), mapped("m", "1", &["a"])], fan_in: Vec::new() };
        assert!(plan.grow(duplicate).unwrap_err().to_string().contains("already has a step 'm[1]'"));
        // `b` told to wait for `d`, which depends on `b`.
        let cycle = PlanGrowth { steps: Vec::new(), fan_in: vec![(StepKey::node("b"), vec![StepKey::node("d")])] };
        assert!(plan.grow(cycle).unwrap_err().to_string().contains("one of its own dependents"));
        let through_new = PlanGrowth {
            steps: vec![mapped("m", "1", &["b"])],
            fan_in: vec![(StepKey::node("b"), vec![StepKey::from("m[1]")])],
        };
        assert!(plan.grow(through_new).is_err());
        assert_eq!(plan, before);
    }

    /// Graph `g`: `g/score` is mapped over `g/items`; `g/use` gathers it as `gather`, and also
    /// `collect()`s it when `also_collected`.
    fn streaming_graph(gather: crate::Gather, also_collected: bool, is_async: bool) -> AssetGraph {
        use crate::definition::{MapDef, ParamRole};
        let internal = |name: &str| NodeDef { graph: Some("g".into()), ..NodeDef::task(name) };
        let wired = |name: &str, gather: Option<crate::Gather>| ParamDef {
            role: ParamRole::Wired,
            source: Some("g/score".into()),
            gather,
            ..ParamDef::named(name)
        };
        let mut score = internal("g/score");
        score.params.push(ParamDef { source: Some("g/items".into()), gather: None, ..wired("item", None) });
        score.map = Some(MapDef { max_concurrency: None });
        let mut consumer = NodeDef { is_async, ..internal("g/use") };
        consumer.params.push(wired("scores", Some(gather)));
        if also_collected {
            consumer.params.push(wired("listed", Some(crate::Gather::Collect)));
        }
        let graph = NodeDef {
            kind: NodeKind::Graph,
            members: vec!["g/use".into(), "g/items".into(), "g/score".into()],
            ..NodeDef::asset("g")
        };
        AssetGraph::build(vec![internal("g/items"), score, consumer, graph], &[], HashMap::new()).unwrap()
    }

    #[test]
    fn stream_consumers_read_live_only_as_sync_steps_of_the_parallel_executor() {
        use crate::Gather;
        let consumer = |graph: AssetGraph, executor: ExecutorKind| {
            let plan = graph.plan(None, false, &PlanOptions { executor, ..options() }).unwrap();
            let step = plan.step(&"g/use".into()).unwrap();
            (step.streams.clone(), step.streams_live)
        };
        let parallel = ExecutorKind::Parallel;
        let streamed = vec!["g/score".to_string()];
        assert_eq!(consumer(streaming_graph(Gather::Stream, false, false), parallel), (streamed.clone(), true));
        assert_eq!(consumer(streaming_graph(Gather::StreamOrdered, false, false), parallel), (streamed.clone(), true));
        assert_eq!(
            consumer(streaming_graph(Gather::Stream, false, false), ExecutorKind::InProcess),
            (streamed.clone(), false),
            "the in-process executor gathers at the barrier"
        );
        assert_eq!(consumer(streaming_graph(Gather::Stream, false, true), parallel), (streamed, false), "async");
        assert_eq!(consumer(streaming_graph(Gather::Stream, true, false), parallel), (vec![], false), "collect wins");
        assert_eq!(consumer(streaming_graph(Gather::Collect, false, false), parallel), (vec![], false));
    }

    #[test]
    fn gather_modes_parse_from_their_spelling() {
        use crate::Gather;
        for gather in [Gather::Collect, Gather::Stream, Gather::StreamOrdered] {
            assert_eq!(gather.as_str().parse::<Gather>().unwrap(), gather);
        }
        let err = "streamed".parse::<Gather>().unwrap_err().to_string();
        assert!(err.contains("\"streamed\"") && err.contains("stream_ordered"), "{err}");
    }
}
