//! Dynamic fan-out: a template step reports the keys of its producer's elements, the engine
//! adds one instance step per key (`node[key]`), makes the template's dependents wait for
//! every instance, caps how many instances run at once, and tells each dependent the keys in
//! producer order and in completion order.

use std::collections::HashMap;

use rivers_core::{Plan, PlanGrowth, PlanStep, StepKey};

/// The instance keys of one fan-out, as a dependent step receives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanIn {
    /// Node name of the template (`graph/task`).
    pub template: String,
    /// Instance keys in producer element order.
    pub keys: Vec<String>,
    /// Keys of the instances that succeeded, in the order they did.
    pub completed: Vec<String>,
}

#[derive(Debug, Default)]
struct Expansion {
    keys: Vec<String>,
    completed: Vec<String>,
    running: usize,
    /// Plan position of the last instance (instances occupy consecutive positions).
    last_position: usize,
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
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        if let Some(duplicate) = keys.iter().find(|key| !seen.insert(key.as_str())) {
            return Err(format!("fan-out key '{duplicate}' appears twice; instance keys must be unique"));
        }
        let steps: Vec<PlanStep> =
            keys.iter().map(|key| template.mapped_instance(key, vec![template.key.clone()])).collect();
        let instance_keys: Vec<StepKey> = steps.iter().map(|s| s.key.clone()).collect();
        let fan_in = plan
            .steps()
            .iter()
            .filter(|step| step.upstream_steps.contains(&template.key))
            .map(|step| (step.key.clone(), instance_keys.clone()))
            .collect();
        self.expansions.insert(template.node_name.clone(), Expansion { keys, ..Default::default() });
        Ok(PlanGrowth { steps, fan_in })
    }

    /// Records where the instances just added to the plan sit (`added`: their positions).
    pub(crate) fn placed(&mut self, plan: &Plan, added: &[usize]) {
        for &position in added {
            let step = &plan.steps()[position];
            if step.mapping_key.is_some()
                && let Some(expansion) = self.expansions.get_mut(&step.node_name)
            {
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

    /// Instance `step` succeeded.
    pub(crate) fn instance_succeeded(&mut self, step: &PlanStep) {
        if let (Some(key), Some(_)) = (&step.mapping_key, step.map)
            && let Some(expansion) = self.expansions.get_mut(&step.node_name)
        {
            expansion.completed.push(key.clone());
        }
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
                self.expansions.get(&up.node_name).map(|e| FanIn {
                    template: up.node_name.clone(),
                    keys: e.keys.clone(),
                    completed: e.completed.clone(),
                })
            })
            .collect()
    }
}
