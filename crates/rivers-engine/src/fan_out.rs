//! Dynamic fan-out: a template step reports the keys of its producer's elements, the engine
//! adds one instance step per key (`node[key]`), makes the template's dependents wait for
//! every instance, caps how many instances run at once, and tells each dependent the keys in
//! producer order and in completion order.
//!
//! A `collect_stream()` consumer also gets the instances' outcomes as they end, through an
//! [`InstanceFeed`]: the engine appends each instance's final outcome (success, or failure after
//! its retries) to one log per fan-out, and every reader keeps its own position in it, so a
//! retried consumer reads the log again from the start. A log rather than a queue because a
//! consumer may start after some instances ended (it is not told twice, nor too late).

use std::collections::{HashMap, HashSet};

use rivers_core::{Plan, PlanGrowth, PlanStep, StepKey};
use tokio::sync::watch;

/// The instance keys of one fan-out, as a dependent step receives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanIn {
    /// Node name of the template (`graph/task`).
    pub template: String,
    /// Instance keys in producer element order.
    pub keys: Vec<String>,
    /// Keys of the instances that succeeded, in the order they did (so far, for a live reader).
    pub completed: Vec<String>,
    /// A `collect_stream()` consumer: every instance's outcome, in the order they ended; `None`
    /// for `collect()` consumers and graph steps.
    pub outcomes: Option<InstanceFeed>,
    /// The step reads `outcomes` while instances still run, so it must run in the process that
    /// drives the run (the feed does not cross processes). When `false`, every instance has
    /// ended by the time the step starts.
    pub live: bool,
}

/// How one fan-out instance ended, for good (after its retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceOutcome {
    /// The instance succeeded; its output is stored under `node[key]`.
    Succeeded {
        /// Instance key.
        key: String,
    },
    /// The instance failed, or will never run (the run stopped starting steps).
    Failed {
        /// Instance key.
        key: String,
        /// Why: the step's failure message.
        message: String,
    },
}

impl InstanceOutcome {
    /// The instance key.
    pub fn key(&self) -> &str {
        match self {
            InstanceOutcome::Succeeded { key } | InstanceOutcome::Failed { key, .. } => key,
        }
    }

    /// The failure message; `None` when the instance succeeded.
    pub fn failure(&self) -> Option<&str> {
        match self {
            InstanceOutcome::Succeeded { .. } => None,
            InstanceOutcome::Failed { message, .. } => Some(message),
        }
    }
}

/// The outcomes of one fan-out's instances in the order they ended, as a `collect_stream()`
/// consumer reads them while the instances run. Cloning is cheap; clones read the same log.
#[derive(Debug, Clone)]
pub struct InstanceFeed {
    outcomes: watch::Receiver<Vec<InstanceOutcome>>,
}

impl PartialEq for InstanceFeed {
    /// Two feeds are equal when they read the same fan-out's log.
    fn eq(&self, other: &Self) -> bool {
        self.outcomes.same_channel(&other.outcomes)
    }
}

impl Eq for InstanceFeed {}

impl InstanceFeed {
    /// The `index`-th outcome to be delivered (0-based, in the order instances ended), waiting
    /// for it; `None` when it never will be: the run ended first. The number of outcomes a
    /// fan-out delivers is its number of keys ([`FanIn::keys`]).
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed, the same `index` can be asked for again.
    pub async fn outcome(&self, index: usize) -> Option<InstanceOutcome> {
        let mut outcomes = self.outcomes.clone();
        let delivered = outcomes.wait_for(|log| log.len() > index).await.ok()?;
        delivered.get(index).cloned()
    }

    /// The outcomes delivered so far, in the order instances ended.
    pub fn delivered(&self) -> Vec<InstanceOutcome> {
        self.outcomes.borrow().clone()
    }
}

/// What a step needs of one of its upstreams before it may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Its success; its failure skips the step.
    Success,
    /// Its end, success or failure: a barrier `collect_stream()` consumer of a fan-out
    /// instance, which meets a failed instance in its stream instead of being skipped.
    End,
    /// Nothing: a live `collect_stream()` consumer reads the instance's outcome as it comes.
    Nothing,
}

impl Needs {
    /// What `down` needs of its upstream `up`.
    pub(crate) fn of(up: &PlanStep, down: &PlanStep) -> Needs {
        if up.mapping_key.is_none() || !down.streams.contains(&up.node_name) {
            Needs::Success
        } else if down.streams_live {
            Needs::Nothing
        } else {
            Needs::End
        }
    }
}

#[derive(Debug)]
struct Expansion {
    keys: Vec<String>,
    completed: Vec<String>,
    /// A dependent reads it with `collect_stream()`: outcomes are logged for it. A fan-out
    /// only `collect()`ed needs nothing but `completed`.
    streamed: bool,
    /// Keys of the instances whose outcome was delivered (streamed fan-outs only).
    ended: HashSet<String>,
    outcomes: watch::Sender<Vec<InstanceOutcome>>,
    running: usize,
    /// Plan positions of the first and last instance (instances occupy consecutive positions).
    first_position: Option<usize>,
    last_position: usize,
}

impl Expansion {
    fn new(keys: Vec<String>, streamed: bool) -> Self {
        Expansion {
            keys,
            completed: Vec::new(),
            streamed,
            ended: HashSet::new(),
            outcomes: watch::Sender::new(Vec::new()),
            running: 0,
            first_position: None,
            last_position: 0,
        }
    }
}

/// The fan-outs of one run, keyed by template node name.
#[derive(Debug, Default)]
pub(crate) struct FanOuts {
    expansions: HashMap<String, Expansion>,
}

impl FanOuts {
    /// What template `template` adds for `keys`: one instance per key (after the template),
    /// and every step that waits for the template now waits for all instances too.
    pub(crate) fn growth(&mut self, plan: &Plan, template: &PlanStep, keys: Vec<String>) -> Result<PlanGrowth, String> {
        let mut seen = HashSet::with_capacity(keys.len());
        if let Some(duplicate) = keys.iter().find(|key| !seen.insert(key.as_str())) {
            return Err(format!("fan-out key '{duplicate}' appears twice; instance keys must be unique"));
        }
        let steps: Vec<PlanStep> =
            keys.iter().map(|key| template.mapped_instance(key, vec![template.key.clone()])).collect();
        let instance_keys: Vec<StepKey> = steps.iter().map(|s| s.key.clone()).collect();
        let dependents = plan.steps().iter().filter(|step| step.upstream_steps.contains(&template.key));
        let streamed = dependents.clone().any(|step| step.streams.contains(&template.node_name));
        let fan_in = dependents.map(|step| (step.key.clone(), instance_keys.clone())).collect();
        self.expansions.insert(template.node_name.clone(), Expansion::new(keys, streamed));
        Ok(PlanGrowth { steps, fan_in })
    }

    /// Records where the instances just added to the plan sit (`added`: their positions).
    pub(crate) fn placed(&mut self, plan: &Plan, added: &[usize]) {
        for &position in added {
            let step = &plan.steps()[position];
            if step.mapping_key.is_some()
                && let Some(expansion) = self.expansions.get_mut(&step.node_name)
            {
                expansion.first_position.get_or_insert(position);
                expansion.last_position = expansion.last_position.max(position);
            }
        }
    }

    /// `None` when instance `step` may start under its map's `max_concurrency`; else the plan
    /// position of the map's last instance, none of which may start either.
    pub(crate) fn blocked_until(&self, step: &PlanStep) -> Option<usize> {
        let cap = step.map.and_then(|m| m.max_concurrency)?;
        step.mapping_key.as_ref()?;
        let expansion = self.expansions.get(&step.node_name)?;
        (expansion.running >= cap as usize).then_some(expansion.last_position)
    }

    /// An attempt of `step` started (`+1`) or ended (`-1`).
    pub(crate) fn track_running(&mut self, step: &PlanStep, started: bool) {
        if step.mapping_key.is_none() || step.map.is_none() {
            return;
        }
        if let Some(expansion) = self.expansions.get_mut(&step.node_name) {
            if started {
                expansion.running += 1;
            } else {
                expansion.running = expansion.running.saturating_sub(1);
            }
        }
    }

    /// Instance `step` ended for good: `Ok` when it succeeded, else the failure message.
    /// Delivered to stream readers once; later calls for the same instance are ignored.
    pub(crate) fn instance_ended(&mut self, step: &PlanStep, outcome: Result<(), String>) {
        let (Some(key), Some(_)) = (&step.mapping_key, step.map) else { return };
        let Some(expansion) = self.expansions.get_mut(&step.node_name) else { return };
        if !expansion.streamed {
            if outcome.is_ok() {
                expansion.completed.push(key.clone());
            }
            return;
        }
        if !expansion.ended.insert(key.clone()) {
            return;
        }
        let outcome = match outcome {
            Ok(()) => {
                expansion.completed.push(key.clone());
                InstanceOutcome::Succeeded { key: key.clone() }
            }
            Err(message) => InstanceOutcome::Failed { key: key.clone(), message },
        };
        expansion.outcomes.send_modify(|log| log.push(outcome));
    }

    /// Plan positions of the instances that have not ended, for the run to tell their readers
    /// they never will when it stops starting steps.
    pub(crate) fn unended(&self, plan: &Plan) -> Vec<usize> {
        let mut positions = Vec::new();
        for expansion in self.expansions.values() {
            let Some(first) = expansion.first_position else { continue };
            if !expansion.streamed || expansion.ended.len() == expansion.keys.len() {
                continue;
            }
            positions.extend((first..=expansion.last_position).filter(|&position| {
                plan.steps()[position].mapping_key.as_ref().is_some_and(|key| !expansion.ended.contains(key))
            }));
        }
        positions
    }

    /// The fan-ins `step` reads: one per upstream template it gathers (not its own template,
    /// for an instance, whose element comes from its mapping key).
    pub(crate) fn fan_in_for(&self, plan: &Plan, step: &PlanStep) -> Vec<FanIn> {
        if self.expansions.is_empty() {
            return Vec::new();
        }
        step.upstream_steps
            .iter()
            .filter_map(|up| plan.step(up))
            .filter(|up| up.is_fan_out_template() && !(step.mapping_key.is_some() && step.node_name == up.node_name))
            .filter_map(|up| {
                let expansion = self.expansions.get(&up.node_name)?;
                let streams = step.streams.contains(&up.node_name);
                Some(FanIn {
                    template: up.node_name.clone(),
                    keys: expansion.keys.clone(),
                    completed: expansion.completed.clone(),
                    outcomes: streams.then(|| InstanceFeed { outcomes: expansion.outcomes.subscribe() }),
                    live: streams && step.streams_live,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn succeeded(key: &str) -> InstanceOutcome {
        InstanceOutcome::Succeeded { key: key.into() }
    }

    #[tokio::test]
    async fn a_feed_waits_for_each_outcome_and_ends_with_its_run() {
        let sender = watch::Sender::new(Vec::new());
        let feed = InstanceFeed { outcomes: sender.subscribe() };
        let reader = feed.clone();
        let second = tokio::spawn(async move { reader.outcome(1).await });
        sender.send_modify(|log| log.push(succeeded("b")));
        assert_eq!(feed.outcome(0).await, Some(succeeded("b")));
        let failed = InstanceOutcome::Failed { key: "a".into(), message: "broke".into() };
        sender.send_modify(|log| log.push(failed.clone()));
        assert_eq!(second.await.unwrap(), Some(failed.clone()));
        assert_eq!(failed.failure(), Some("broke"));
        assert_eq!(feed.delivered().iter().map(InstanceOutcome::key).collect::<Vec<_>>(), vec!["b", "a"]);
        drop(sender);
        assert_eq!(feed.outcome(1).await.map(|o| o.key().to_string()), Some("a".into()), "still readable");
        assert_eq!(feed.outcome(2).await, None, "no sender: nothing more will come");
    }
}
