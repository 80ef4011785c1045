//! One evaluation pass: every asset's condition, in topological order, over position ranges.
//!
//! The value of a node for an asset is the set of the asset's positions where it holds. Every
//! operator is a set operation on [`RangeSet`]s, and stateful operators (`newly_true`, `since`)
//! persist range sets, so a pass costs in the number of ranges, never in the number of
//! partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::facts::{ConditionFacts, EvaluationClock, RunPositions};
use super::tree::{Condition, Kind, Lookback, TagFilter};
use crate::partitions::RangeSet;

/// What a pass persists per asset so that the next pass (and a restarted daemon) continues
/// where this one left off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionState {
    /// [`Condition::tree_hash`] of the condition that wrote the state: node values of another
    /// tree are discarded and `initial_evaluation()` holds again.
    pub tree_hash: u64,
    /// Positions the daemon requested at this evaluation (`newly_requested`,
    /// `since_last_handled` at the next one).
    pub requested: RangeSet,
    /// Values of stateful nodes (`newly_true`: the previous value; `since`: the latch), by
    /// node path and then by the asset the node inspected.
    #[serde(default)]
    pub node_values: BTreeMap<String, BTreeMap<String, RangeSet>>,
}

/// One evaluated node: what it is, for which asset, where it held, and the facts behind that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The node's description (its label, when labelled).
    pub description: String,
    /// The asset the node inspected.
    pub subject: String,
    /// Positions of `subject` where the node held.
    pub true_positions: RangeSet,
    /// Short statements of the facts the node used, e.g. "upstream `orders` updated".
    pub facts: Vec<String>,
    /// The operands' explanations; for dependency aggregates one per dep, for `on_selected`
    /// one per selected asset.
    pub children: Vec<Explanation>,
}

impl Explanation {
    /// How many positions the node held for.
    pub fn true_count(&self) -> u128 {
        self.true_positions.len()
    }

    fn write_indented(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let count = self.true_count();
        let plural = if count == 1 { "" } else { "s" };
        write!(
            f,
            "{:indent$}{} [{}]: true for {count} partition{plural}",
            "",
            self.description,
            self.subject,
            indent = depth * 2
        )?;
        if !self.facts.is_empty() {
            write!(f, " ({})", self.facts.join("; "))?;
        }
        writeln!(f)?;
        self.children.iter().try_for_each(|child| child.write_indented(f, depth + 1))
    }
}

/// The indented tree `explain_automation` prints.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_indented(f, 0)
    }
}

/// The outcome of one asset's evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetEvaluation {
    /// The asset wearing the condition.
    pub asset: String,
    /// Positions to launch.
    pub requested: RangeSet,
    /// The state to persist for the next pass.
    pub state: ConditionState,
    /// How the root and every node below it evaluated.
    pub explanation: Explanation,
}

/// Evaluates every asset of `conditions` once, deps before dependents, against `facts` and
/// the states the previous pass persisted. Returns the evaluations in evaluation order.
pub fn evaluate_pass(
    conditions: &BTreeMap<String, Condition>,
    previous_states: &BTreeMap<String, ConditionState>,
    facts: &impl ConditionFacts,
    clock: EvaluationClock,
) -> Vec<AssetEvaluation> {
    let mut requested_this_pass: BTreeMap<String, RangeSet> = BTreeMap::new();
    let mut evaluations = Vec::with_capacity(conditions.len());
    for asset in topological_order(conditions, facts) {
        let condition = &conditions[&asset];
        let tree_hash = condition.tree_hash();
        let previous = previous_states.get(&asset);
        let evaluation = {
            let mut evaluator = AssetEvaluator {
                facts,
                clock,
                root: &asset,
                has_state: previous.is_some(),
                previous_nodes: previous.filter(|state| state.tree_hash == tree_hash).map(|state| &state.node_values),
                previous_states,
                requested_this_pass: &requested_this_pass,
                node_values: BTreeMap::new(),
                candidates: HashMap::new(),
            };
            let explanation = evaluator.evaluate(condition, "0", &Subject::root(&asset));
            let requested = explanation.true_positions.clone();
            let state = ConditionState { tree_hash, requested: requested.clone(), node_values: evaluator.node_values };
            AssetEvaluation { asset: asset.clone(), requested, state, explanation }
        };
        requested_this_pass.insert(asset, evaluation.requested.clone());
        evaluations.push(evaluation);
    }
    evaluations
}

/// The assets of `conditions`, each after every condition-bearing ancestor and every asset its
/// condition selects (ties by name).
fn topological_order(conditions: &BTreeMap<String, Condition>, facts: &impl ConditionFacts) -> Vec<String> {
    let mut order = Vec::with_capacity(conditions.len());
    let mut visited: BTreeSet<String> = BTreeSet::new();
    for start in conditions.keys() {
        // Iterative depth-first post-order: a deep chain of assets must not exhaust the stack.
        let mut stack = vec![(start.clone(), false)];
        while let Some((asset, expanded)) = stack.pop() {
            if expanded {
                if conditions.contains_key(&asset) {
                    order.push(asset);
                }
                continue;
            }
            if !visited.insert(asset.clone()) {
                continue;
            }
            stack.push((asset.clone(), true));
            // Assets a condition selects go first too, so `will_be_requested().on_selected(...)`
            // sees them fire in the same pass.
            let selected = conditions.get(&asset).map(|c| c.selected_keys()).unwrap_or_default();
            let before = facts.deps(&asset).into_iter().chain(selected);
            stack.extend(before.filter(|dep| !visited.contains(dep)).map(|dep| (dep, false)));
        }
    }
    order
}

/// The asset a node inspects, and how it relates to the asset wearing the condition.
struct Subject<'a> {
    key: &'a str,
    relation: Relation,
}

#[derive(Clone, Copy)]
enum Relation {
    Root,
    Upstream,
    Selected,
}

impl<'a> Subject<'a> {
    fn root(key: &'a str) -> Self {
        Subject { key, relation: Relation::Root }
    }

    /// `text` about this subject, as an explanation fact.
    fn fact(&self, text: &str) -> String {
        match self.relation {
            Relation::Root => text.to_owned(),
            Relation::Upstream => format!("upstream `{}` {text}", self.key),
            Relation::Selected => format!("`{}` {text}", self.key),
        }
    }
}

struct AssetEvaluator<'a, F> {
    facts: &'a F,
    clock: EvaluationClock,
    root: &'a str,
    /// Whether the root was evaluated before (by any tree).
    has_state: bool,
    /// Node values persisted by the same tree; `None` at an initial evaluation.
    previous_nodes: Option<&'a BTreeMap<String, BTreeMap<String, RangeSet>>>,
    previous_states: &'a BTreeMap<String, ConditionState>,
    requested_this_pass: &'a BTreeMap<String, RangeSet>,
    node_values: BTreeMap<String, BTreeMap<String, RangeSet>>,
    candidates: HashMap<String, RangeSet>,
}

impl<F: ConditionFacts> AssetEvaluator<'_, F> {
    fn candidates(&mut self, asset: &str) -> RangeSet {
        if let Some(known) = self.candidates.get(asset) {
            return known.clone();
        }
        let positions = self.facts.candidates(asset);
        self.candidates.insert(asset.to_owned(), positions.clone());
        positions
    }

    fn previous_value(&self, path: &str, subject: &str) -> RangeSet {
        self.previous_nodes.and_then(|nodes| nodes.get(path)?.get(subject)).cloned().unwrap_or_default()
    }

    fn store_value(&mut self, path: &str, subject: &str, value: RangeSet) {
        self.node_values.entry(path.to_owned()).or_default().insert(subject.to_owned(), value);
    }

    fn requested_previously(&self, asset: &str) -> RangeSet {
        self.previous_states.get(asset).map(|state| state.requested.clone()).unwrap_or_default()
    }

    fn evaluate(&mut self, node: &Condition, path: &str, subject: &Subject<'_>) -> Explanation {
        let all = self.candidates(subject.key);
        let mut children = Vec::new();
        let (value, fact) = match node.kind() {
            Kind::And { operands } | Kind::Or { operands } => {
                let is_and = matches!(node.kind(), Kind::And { .. });
                let mut value = if is_and { all.clone() } else { RangeSet::new() };
                for (i, operand) in operands.iter().enumerate() {
                    let child = self.evaluate(operand, &format!("{path}.{i}"), subject);
                    value = if is_and {
                        value.intersection(&child.true_positions)
                    } else {
                        value.union(&child.true_positions)
                    };
                    children.push(child);
                }
                (value, None)
            }
            Kind::Not { operand } => {
                let child = self.evaluate(operand, &format!("{path}.0"), subject);
                let value = all.difference(&child.true_positions);
                children.push(child);
                (value, None)
            }
            Kind::NewlyTrue { operand } => {
                let child = self.evaluate(operand, &format!("{path}.0"), subject);
                let now = child.true_positions.clone();
                let value = now.difference(&self.previous_value(path, subject.key));
                self.store_value(path, subject.key, now);
                children.push(child);
                (value, None)
            }
            Kind::Since { trigger, reset } => {
                let trigger = self.evaluate(trigger, &format!("{path}.0"), subject);
                let reset = self.evaluate(reset, &format!("{path}.1"), subject);
                let latch = self
                    .previous_value(path, subject.key)
                    .union(&trigger.true_positions)
                    .difference(&reset.true_positions)
                    .intersection(&all);
                self.store_value(path, subject.key, latch.clone());
                children.extend([trigger, reset]);
                (latch, None)
            }
            Kind::SinceLastHandled { operand } => {
                let child = self.evaluate(operand, &format!("{path}.0"), subject);
                let handled = self.requested_previously(subject.key);
                let value = child.true_positions.difference(&handled);
                let fact = (!handled.intersection(&child.true_positions).is_empty())
                    .then(|| subject.fact("requested at the previous evaluation"));
                children.push(child);
                (value, fact)
            }
            Kind::OnSelected { operand, keys } => {
                let mut any = false;
                for key in keys {
                    let selected = Subject { key, relation: Relation::Selected };
                    let child = self.evaluate(operand, &format!("{path}.0"), &selected);
                    any |= !child.true_positions.is_empty();
                    children.push(child);
                }
                (if any { all.clone() } else { RangeSet::new() }, None)
            }
            Kind::AnyDepsMatch { operand } => {
                let mut value = RangeSet::new();
                for dep in self.facts.deps(subject.key) {
                    let child = self.evaluate(
                        operand,
                        &format!("{path}.0"),
                        &Subject { key: &dep, relation: Relation::Upstream },
                    );
                    let reading = self.facts.downstream_positions(subject.key, &dep, &child.true_positions);
                    value = value.union(&reading.intersection(&all));
                    children.push(child);
                }
                (value, None)
            }
            Kind::AllDepsMatch { operand } => {
                let mut value = all.clone();
                for dep in self.facts.deps(subject.key) {
                    let child = self.evaluate(
                        operand,
                        &format!("{path}.0"),
                        &Subject { key: &dep, relation: Relation::Upstream },
                    );
                    let failing = self.candidates(&dep).difference(&child.true_positions);
                    value = value.difference(&self.facts.downstream_positions(subject.key, &dep, &failing));
                    children.push(child);
                }
                (value, None)
            }
            leaf => {
                let (value, text) = self.leaf(leaf, subject.key, &all);
                let value = value.intersection(&all);
                let fact = (!value.is_empty()).then(|| subject.fact(text));
                (value, fact)
            }
        };
        Explanation {
            description: node.description(),
            subject: subject.key.to_owned(),
            true_positions: value,
            facts: fact.into_iter().collect(),
            children,
        }
    }

    /// A leaf's positions (before clipping to the candidates) and the fact it states when true.
    fn leaf(&mut self, leaf: &Kind, asset: &str, all: &RangeSet) -> (RangeSet, &'static str) {
        let facts = self.facts;
        match leaf {
            Kind::Missing => (all.difference(&facts.materialized(asset)), "never materialized"),
            Kind::InProgress => (facts.in_progress(asset), "in a run that has not finished"),
            Kind::ExecutionFailed => (facts.execution_failed(asset), "latest execution failed"),
            Kind::NewlyUpdated => {
                // The first evaluation has nothing to compare with: nothing is "new" yet.
                let updated = if self.has_state { facts.updated_since_previous_evaluation(asset) } else { RangeSet::new() };
                (updated, "updated")
            }
            Kind::NewlyRequested => (self.requested_previously(asset), "requested at the previous evaluation"),
            Kind::CodeVersionChanged => (facts.code_version_changed(asset), "code version changed"),
            Kind::DataVersionChanged => (facts.data_version_changed(asset), "data version changed"),
            Kind::CronTickPassed { cron } => {
                let passed = self.has_state
                    && self.clock.previous.is_some_and(|previous| {
                        cron.schedule.next_after(previous).is_some_and(|tick| tick <= self.clock.now)
                    });
                (if passed { all.clone() } else { RangeSet::new() }, "cron tick passed since the previous evaluation")
            }
            Kind::InLatestTimeWindow { lookback_delta } => match facts.latest_time_window_start(asset) {
                None => (all.clone(), "not time-partitioned"),
                Some(latest) => {
                    let lookback = lookback_delta.map_or(TimeDelta::zero(), |Lookback(seconds)| {
                        // Sub-millisecond precision cannot move a window boundary.
                        TimeDelta::milliseconds((seconds * 1000.0) as i64)
                    });
                    let from = latest.checked_sub_signed(lookback).unwrap_or(latest);
                    (facts.positions_starting_from(asset, from), "in the latest time window")
                }
            },
            Kind::InitialEvaluation => {
                let initial = self.previous_nodes.is_none();
                (if initial { all.clone() } else { RangeSet::new() }, "first evaluation of this condition")
            }
            Kind::BackfillInProgress => (facts.backfill_in_progress(asset), "in an active backfill"),
            Kind::WillBeRequested => {
                (self.requested_this_pass.get(asset).cloned().unwrap_or_default(), "requested in this pass")
            }
            Kind::LastRunIncludesTarget => {
                (facts.latest_run_includes(asset, self.root), "latest run also targeted the evaluated asset")
            }
            Kind::LastExecutedWithTags { tags } => {
                (matching(&facts.latest_materialization_runs(asset), tags), "last run has the tags")
            }
            Kind::HasRunWithTags { tags } => {
                (matching(&facts.new_materialization_runs(asset), tags), "updated by a run with the tags")
            }
            Kind::AllRunsHaveTags { tags } => {
                let runs = facts.new_materialization_runs(asset);
                let rejected = runs.iter().filter(|run| !tags.matches(&run.tags)).collect::<Vec<_>>();
                let value = rejected.iter().fold(all.clone(), |value, run| value.difference(&run.positions));
                (value, "every new materialization came from a run with the tags")
            }
            Kind::And { .. }
            | Kind::Or { .. }
            | Kind::Not { .. }
            | Kind::NewlyTrue { .. }
            | Kind::Since { .. }
            | Kind::SinceLastHandled { .. }
            | Kind::OnSelected { .. }
            | Kind::AnyDepsMatch { .. }
            // Operators are combined by `evaluate` and never reach this function.
            | Kind::AllDepsMatch { .. } => (RangeSet::new(), "operator"),
        }
    }
}

/// Positions covered by a run whose tags pass `filter`.
fn matching(runs: &[RunPositions], filter: &TagFilter) -> RangeSet {
    runs.iter().filter(|run| filter.matches(&run.tags)).fold(RangeSet::new(), |value, run| value.union(&run.positions))
}
