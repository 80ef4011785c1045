//! Execution plans: the steps of one run, their in-plan edges, levels and effective executors.

use std::collections::HashSet;

use crate::definition::NodeKind;
use crate::error::{Error, Result};
use crate::graph::AssetGraph;
use crate::retry::RetryPolicy;
use crate::vocab::ExecutorKind;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStep {
    /// Step key: the node name.
    pub key: String,
    /// Node id in the graph.
    pub node: usize,
    /// Indices (into `Plan::steps`) of in-plan upstream steps.
    pub upstream_steps: Vec<usize>,
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

/// The steps of one run, in dispatch order (level, then registration order).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Steps in dispatch order; upstream steps always come first.
    pub steps: Vec<PlanStep>,
    /// Some step overrides the run executor: run level by level, one executor batch at a time.
    pub level_grouping: bool,
}

impl Plan {
    /// Planned node names in plan order.
    pub fn node_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.key.clone()).collect()
    }
}

impl AssetGraph {
    /// Builds an ephemeral plan from a selection of asset names (`None` = every non-external
    /// asset). External assets are never steps.
    ///
    /// # Errors
    /// `AssetNotFound` for a selected name that is not registered.
    pub fn plan(&self, selection: Option<&[String]>, include_upstream: bool, options: &PlanOptions) -> Result<Plan> {
        let mut chosen: Vec<usize> = match selection {
            None => (0..self.len()).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    self.node_id(name).ok_or_else(|| {
                        Error::AssetNotFound(format!(
                            "selection names '{name}', which is not a registered asset; registered assets: [{}]",
                            self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?,
        };
        if include_upstream {
            let ancestors = self.ancestors(&chosen);
            chosen.extend(ancestors);
        }
        Ok(self.plan_nodes(&chosen, options))
    }

    /// Builds a plan over exactly these node ids (duplicates and external assets dropped).
    pub fn plan_nodes(&self, ids: &[usize], options: &PlanOptions) -> Plan {
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
        let mut position = vec![usize::MAX; self.len()];
        for (pos, &id) in members.iter().enumerate() {
            position[id] = pos;
        }

        let mut level_grouping = false;
        let steps = members
            .iter()
            .map(|&id| {
                let node = &self.nodes[id];
                let declared = self.executors[id];
                level_grouping |= declared.is_some_and(|kind| kind != options.executor);
                let mut executor = declared.unwrap_or(options.executor);
                if executor == ExecutorKind::Parallel && node.pinned_in_process && !node.is_async {
                    executor = ExecutorKind::InProcess;
                }
                let upstream = &self.upstream[id];
                PlanStep {
                    key: node.name.clone(),
                    node: id,
                    upstream_steps: upstream
                        .iter()
                        .filter(|e| in_plan.contains(&e.upstream))
                        .map(|e| position[e.upstream])
                        .collect(),
                    level: levels[id].unwrap_or(0),
                    executor,
                    is_async: node.is_async,
                    retry: self.retries[id]
                        .clone()
                        .or_else(|| options.run_retry.clone())
                        .or_else(|| options.default_retry.clone()),
                    upstream_assets: upstream.iter().map(|e| self.nodes[e.upstream].name.clone()).collect(),
                }
            })
            .collect();
        Plan { steps, level_grouping }
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
    use crate::definition::NodeDef;

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
        assert_eq!(plan.steps.iter().map(|s| s.level).collect::<Vec<_>>(), vec![0, 1, 1, 2]);
        assert_eq!(plan.steps[3].upstream_steps, vec![1, 2]);
    }

    #[test]
    fn selection_with_and_without_upstream() {
        let g = diamond();
        let only = g.plan(Some(&["d".into()]), false, &options()).unwrap();
        assert_eq!(only.node_names(), vec!["d"]);
        assert_eq!(only.steps[0].level, 0);
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
        assert_eq!(plan.steps[0].executor, ExecutorKind::Parallel);
    }
}
