//! The scheduler of one run: which steps are ready, which lanes have room, what a finished
//! step unblocks or skips, retries after their backoff, growth of the plan (fan-out), and the
//! run loop that waits for attempts, backoffs and durable writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rivers_core::{EventType, FailureReason, Plan, PlanGrowth, StepKey};

use super::{Attempt, CANCEL_CHECK, Lane, Shared, StepState, lane};
use crate::fan_out::{FanOuts, Needs};
use crate::pools::{Acquired, HeldSlots, step_claims};
use crate::runner::StepFailure;

/// What the scheduler waits for: an attempt finished, a backoff ended, or a finished step's
/// events were written (or could not be).
enum Completion {
    Body(usize, Result<Attempt, tokio::task::JoinError>),
    /// The backoff before `attempt` ended: `Ok` to run it, `Err(message)` when the run was
    /// cancelled meanwhile and the step has been recorded as failed.
    BackoffOver {
        index: usize,
        attempt: u32,
        outcome: std::result::Result<(), String>,
    },
    Durable(usize, rivers_storage::Result<()>),
    /// A pooled step's wait for its pool slots ended: with its slots, or without them when
    /// the run stopped starting steps meanwhile.
    Claimed(usize, Option<HeldSlots>),
    /// A pooled step did not get its slots (timeout, store failure) and has been recorded as
    /// failed with this message.
    ClaimFailed(usize, String),
}

pub(super) struct Scheduler {
    /// The run's plan, growing as steps add fan-out instances; the vectors below are indexed
    /// by plan position and grow with it.
    pub(super) plan: Plan,
    shared: Arc<Shared>,
    pub(super) states: Vec<StepState>,
    waiting_on: Vec<usize>,
    downstream: Vec<Vec<usize>>,
    /// Ready steps by lane, in plan order within a lane: starting steps stops scanning a lane
    /// once it is full, so a wide fan-out costs no scan per start.
    ready: BTreeSet<(Lane, usize)>,
    /// Unfinished (pending, running or backing off) steps per plan level: the level gate.
    unfinished: std::collections::BTreeMap<u32, usize>,
    running: HashMap<Lane, usize>,
    pub(super) failed: Vec<(String, String)>,
    /// Events of the run could not be written: the run stops and ends `Failure`.
    pub(super) storage_error: Option<rivers_storage::Error>,
    /// The attempt number a step resumes at after a backoff.
    attempts: HashMap<usize, u32>,
    /// Steps that succeeded in an earlier attempt of this run (resume). Growth is not stored:
    /// a resumed run does not re-add the steps its producers grew before.
    already_done: std::collections::HashSet<String>,
    fan_outs: FanOuts,
    /// Graph steps failing because an internal step failed, with that step's key: the run loop
    /// records their failure.
    member_failures: Vec<(usize, StepKey)>,
    /// Pooled steps holding their slots, ready to start when their lane has room.
    slots: HashMap<usize, HeldSlots>,
    /// Pooled steps waiting for their slots, per lane. They hold no executor slot; a lane
    /// starts no more waits than it has free slots, so few steps hold pool slots idly.
    claiming: HashMap<Lane, usize>,
}

impl Scheduler {
    pub(super) fn new(plan: Plan, shared: &Arc<Shared>, already_done: std::collections::HashSet<String>) -> Self {
        let steps = plan.len();
        let mut scheduler = Scheduler {
            plan,
            shared: Arc::clone(shared),
            states: Vec::new(),
            waiting_on: Vec::new(),
            downstream: Vec::new(),
            ready: BTreeSet::new(),
            unfinished: std::collections::BTreeMap::new(),
            running: HashMap::new(),
            failed: Vec::new(),
            storage_error: None,
            attempts: HashMap::new(),
            already_done,
            fan_outs: FanOuts::default(),
            member_failures: Vec::new(),
            slots: HashMap::new(),
            claiming: HashMap::new(),
        };
        scheduler.track(0..steps);
        scheduler
    }

    /// Starts tracking the plan steps at `positions` (new ones, each after its upstreams).
    fn track(&mut self, positions: impl IntoIterator<Item = usize>) {
        for position in positions {
            debug_assert_eq!(position, self.states.len());
            self.states.push(StepState::Pending);
            *self.unfinished.entry(self.plan.steps()[position].level).or_default() += 1;
            self.downstream.push(Vec::new());
            let mut waiting = 0;
            let mut blocked = false;
            for up in &self.plan.steps()[position].upstream_steps {
                let up = self.plan.position(up).expect("plan upstreams are in the plan");
                self.downstream[up].push(position);
                match (self.states[up], self.needs(up, position)) {
                    (_, Needs::Nothing) | (StepState::Succeeded, _) => {}
                    (StepState::Failed | StepState::Skipped, Needs::End) => {}
                    (StepState::Failed | StepState::Skipped, Needs::Success) => blocked = true,
                    _ => waiting += 1,
                }
            }
            self.waiting_on.push(waiting);
            let step = &self.plan.steps()[position];
            // A fan-out template runs again on resume: it re-reads its producer and re-adds
            // the instances, of which those that succeeded before are satisfied.
            if !step.is_fan_out_template() && self.already_done.contains(step.key.as_str()) {
                self.finish(position, StepState::Succeeded);
            } else if blocked {
                self.finish(position, StepState::Skipped);
                self.skipped_event(position);
            } else if waiting == 0 {
                self.make_ready(position);
            }
        }
    }

    fn ready_key(&self, index: usize) -> (Lane, usize) {
        (lane(&self.plan.steps()[index]), index)
    }

    fn make_ready(&mut self, index: usize) {
        self.ready.insert(self.ready_key(index));
    }

    fn unready(&mut self, index: usize) {
        self.ready.remove(&self.ready_key(index));
    }

    /// Step `index` reached a final state (from an unfinished one).
    fn settled(&mut self, index: usize) {
        let level = self.plan.steps()[index].level;
        if let Some(count) = self.unfinished.get_mut(&level) {
            *count -= 1;
            if *count == 0 {
                self.unfinished.remove(&level);
            }
        }
    }

    /// Growth can deepen existing steps: count the unfinished steps per level again.
    fn recount_levels(&mut self) {
        self.unfinished.clear();
        for (step, state) in self.plan.steps().iter().zip(&self.states) {
            if matches!(state, StepState::Pending | StepState::Running | StepState::BackingOff) {
                *self.unfinished.entry(step.level).or_default() += 1;
            }
        }
    }

    /// Adds what step `producer` grew to the plan. Fan-in targets must not have started.
    fn grow(&mut self, producer: usize, mut growth: PlanGrowth) -> std::result::Result<(), String> {
        // Resume: a step that succeeded in an earlier attempt of the run has nothing to wait
        // for (a stream consumer may have succeeded while an instance went on to fail).
        growth.fan_in.retain(|(target, _)| {
            !(self.already_done.contains(target.as_str())
                && self.plan.position(target).is_some_and(|p| self.states[p] == StepState::Succeeded))
        });
        let mut new_edges = Vec::new();
        for (target, ups) in &growth.fan_in {
            let position = self.plan.position(target).ok_or_else(|| format!("fan-in names unknown step '{target}'"))?;
            if self.states[position] != StepState::Pending || self.attempts.contains_key(&position) {
                return Err(format!("step '{target}' cannot wait for new steps: it has started already"));
            }
            let existing = &self.plan.steps()[position].upstream_steps;
            new_edges.extend(ups.iter().filter(|up| !existing.contains(up)).map(|up| (position, up.clone())));
        }
        let added = self.plan.grow(growth).map_err(|err| err.to_string())?;
        tracing::debug!(
            step = %self.plan.steps()[producer].key,
            added = added.len(),
            "the plan grew"
        );
        self.fan_outs.placed(&self.plan, &added);
        self.shared.storage.enqueue_plan_growth(
            &self.shared.options.run_id,
            self.plan.steps()[producer].key.as_str(),
            self.shared.partition_display.clone(),
            added.len(),
        );
        self.track(added);
        self.recount_levels();
        for (target, up) in new_edges {
            let up = self.plan.position(&up).expect("grown plans hold their fan-in upstreams");
            self.downstream[up].push(target);
            match (self.states[up], self.needs(up, target)) {
                (_, Needs::Nothing) | (StepState::Succeeded, _) => {}
                (StepState::Failed | StepState::Skipped, Needs::End) => {}
                (StepState::Failed | StepState::Skipped, Needs::Success) => {
                    if self.states[target] == StepState::Pending {
                        self.finish(target, StepState::Skipped);
                        self.skipped_event(target);
                    }
                }
                _ => {
                    self.waiting_on[target] += 1;
                    self.unready(target);
                }
            }
        }
        Ok(())
    }

    fn capacity(&self, lane: Lane) -> usize {
        let options = &self.shared.options;
        match lane {
            Lane::InProcess => 1,
            Lane::Workers => options.max_workers.max(1),
            Lane::Async => options.max_async_concurrent.unwrap_or(usize::MAX),
            Lane::Pods | Lane::Stream => usize::MAX,
        }
    }

    fn skipped_event(&self, index: usize) {
        self.shared.event(EventType::StepSkipped, Some(self.plan.steps()[index].key.to_string()), Vec::new());
    }

    fn finish(&mut self, index: usize, state: StepState) {
        let was_unfinished =
            matches!(self.states[index], StepState::Pending | StepState::Running | StepState::BackingOff);
        self.states[index] = state;
        self.unready(index);
        if was_unfinished && matches!(state, StepState::Succeeded | StepState::Failed | StepState::Skipped) {
            self.settled(index);
        }
        match state {
            StepState::Succeeded => {
                self.fan_outs.instance_ended(&self.plan.steps()[index], Ok(()));
                for position in 0..self.downstream[index].len() {
                    let down = self.downstream[index][position];
                    if self.needs(index, down) != Needs::Nothing {
                        self.upstream_over(down);
                    }
                }
            }
            StepState::Failed | StepState::Skipped => {
                if self.plan.steps()[index].mapping_key.is_some() {
                    // After `step_failed`, which told the readers with the message, a no-op.
                    let message = "it did not run: a step it depends on did not succeed".to_string();
                    self.fan_outs.instance_ended(&self.plan.steps()[index], Err(message));
                }
                let cause = self.plan.steps()[index].key.clone();
                let mut stack: Vec<(usize, usize)> = self.downstream[index].iter().map(|&d| (index, d)).collect();
                while let Some((up, down)) = stack.pop() {
                    if self.states[down] != StepState::Pending {
                        continue;
                    }
                    match self.needs(up, down) {
                        Needs::Nothing => continue,
                        // A stream consumer runs whatever its instances' outcomes.
                        Needs::End => {
                            self.upstream_over(down);
                            continue;
                        }
                        Needs::Success => {}
                    }
                    self.unready(down);
                    if self.plan.steps()[down].fails_with_members {
                        // A graph asset fails with its internal steps; its own failure (hooks,
                        // event) is recorded by the run loop, and cascades from there.
                        self.states[down] = StepState::Running;
                        self.member_failures.push((down, cause.clone()));
                        continue;
                    }
                    self.states[down] = StepState::Skipped;
                    self.settled(down);
                    self.skipped_event(down);
                    stack.extend(self.downstream[down].iter().map(|&d| (down, d)));
                }
            }
            StepState::Pending | StepState::Running | StepState::BackingOff => {}
        }
    }

    /// What step `down` needs of its upstream `up` before it may start.
    fn needs(&self, up: usize, down: usize) -> Needs {
        Needs::of(&self.plan.steps()[up], &self.plan.steps()[down])
    }

    /// One upstream of pending step `down` is over as far as `down` is concerned.
    fn upstream_over(&mut self, down: usize) {
        self.waiting_on[down] -= 1;
        if self.waiting_on[down] == 0 && self.states[down] == StepState::Pending {
            self.make_ready(down);
        }
    }

    /// The run starts no further step: instances that have not started never will, and the
    /// stream consumers waiting for them learn it now instead of waiting forever.
    fn abandon_unstarted_instances(&mut self) {
        for position in self.fan_outs.unended(&self.plan) {
            if self.states[position] == StepState::Pending {
                let message = "it did not run: the run stopped starting steps".to_string();
                self.fan_outs.instance_ended(&self.plan.steps()[position], Err(message));
            }
        }
    }

    /// With level grouping, the only level that may start steps.
    fn level_gate(&self) -> Option<u32> {
        if !self.plan.level_grouping {
            return None;
        }
        self.unfinished.keys().next().copied()
    }

    /// The lane with steps running, if any (with level grouping, the active batch).
    fn active_lane(&self) -> Option<Lane> {
        self.running.iter().find(|(_, n)| **n > 0).map(|(lane, _)| *lane)
    }

    fn check_cancellation(&mut self) {
        if self.shared.cancelled.load(Ordering::SeqCst) {
            return;
        }
        if self.shared.cancel_requested() {
            self.shared.cancelled.store(true, Ordering::SeqCst);
            self.stop();
            self.shared.runner.cancel_running(&self.shared.options.run_id);
        }
    }

    pub(super) async fn drive(&mut self) {
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Completion>> = FuturesUnordered::new();
        // Cancellation is also looked for while steps run, not only when one finishes, so
        // that long-running steps can be interrupted.
        let mut cancel_check = tokio::time::interval(CANCEL_CHECK);
        cancel_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.check_cancellation();
            if !self.shared.stopping.load(Ordering::SeqCst) {
                self.start_ready(&mut in_flight);
            } else {
                self.abandon_unstarted_instances();
            }
            self.fail_graphs_of_failed_members(&mut in_flight);
            if in_flight.is_empty() {
                break;
            }
            let completion = tokio::select! {
                completion = in_flight.next() => completion,
                _ = cancel_check.tick(), if !self.shared.cancelled.load(Ordering::SeqCst) => continue,
            };
            let Some(completion) = completion else { break };
            match completion {
                Completion::Durable(index, Ok(())) => self.finish(index, StepState::Succeeded),
                Completion::Durable(index, Err(err)) => self.lost_success(index, err),
                Completion::BackoffOver { index, attempt, outcome: Ok(()) } => {
                    self.states[index] = StepState::Pending;
                    self.attempts.insert(index, attempt);
                    self.make_ready(index);
                }
                Completion::BackoffOver { index, outcome: Err(message), .. } => self.step_failed(index, message),
                Completion::Claimed(index, slots) => self.claim_over(index, slots),
                Completion::ClaimFailed(index, message) => {
                    self.claim_over(index, None);
                    self.step_failed(index, message);
                }
                Completion::Body(index, outcome) => {
                    let step = Arc::clone(&self.plan.steps()[index]);
                    if let Some(n) = self.running.get_mut(&lane(&step)) {
                        *n -= 1;
                    }
                    self.fan_outs.track_running(&step, false);
                    self.attempt_over(index, outcome, &mut in_flight);
                }
            }
        }
        // Claimed by steps the run never started (it was cancelled or stopped meanwhile).
        for (_, slots) in self.slots.drain() {
            slots.release().await;
        }
    }

    /// A pooled step may start claiming its slots: its lane has a free slot besides the
    /// running steps and the other waiting ones.
    fn may_claim(&self, lane: Lane) -> bool {
        let busy = self.running.get(&lane).copied().unwrap_or(0) + self.claiming.get(&lane).copied().unwrap_or(0);
        busy < self.capacity(lane)
    }

    /// Starts waiting for a ready pooled step's slots, outside its lane: the run's other
    /// steps keep executing meanwhile.
    fn begin_claim(
        &mut self,
        index: usize,
        lane: Lane,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        *self.claiming.entry(lane).or_default() += 1;
        self.ready.remove(&(lane, index));
        // Not pending: a claiming step takes no new upstreams and is not skipped.
        self.states[index] = StepState::Running;
        let shared = Arc::clone(&self.shared);
        let step = Arc::clone(&self.plan.steps()[index]);
        // A retry claims again before its attempt.
        let attempt = self.attempts.get(&index).copied().unwrap_or(1);
        in_flight.push(Box::pin(async move {
            let claimant = shared.slot_claimant(&step);
            let stopped = || shared.stopping.load(Ordering::SeqCst) || shared.cancel_requested();
            let acquired = claimant.acquire(step_claims(&step), shared.claim_settings, stopped).await;
            let failure = match acquired {
                Acquired::TimedOut(message) => StepFailure::new(message, FailureReason::Timeout),
                Acquired::Failed(message) => StepFailure::new(message, FailureReason::Infrastructure),
                Acquired::Held(slots) => return Completion::Claimed(index, Some(slots)),
                Acquired::Stopped => return Completion::Claimed(index, None),
            };
            // The attempt never started: the step fails (hooks, `StepFailure`) without it.
            let request = shared.request(&step, attempt, Vec::new());
            Completion::ClaimFailed(index, shared.fail_step(&step, request, failure).await)
        }));
    }

    /// A step's wait for its slots ended: with them it is ready to start; without them it
    /// stays pending (a step that failed is recorded by the caller).
    fn claim_over(&mut self, index: usize, slots: Option<HeldSlots>) {
        let lane = lane(&self.plan.steps()[index]);
        if let Some(n) = self.claiming.get_mut(&lane) {
            *n -= 1;
        }
        self.states[index] = StepState::Pending;
        if let Some(slots) = slots {
            self.slots.insert(index, slots);
            self.make_ready(index);
        }
    }

    /// Records the failure of graph steps whose internal steps failed (failure hooks, then the
    /// `StepFailure`), as if their own attempt had failed.
    fn fail_graphs_of_failed_members(&mut self, in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>) {
        for (index, cause) in std::mem::take(&mut self.member_failures) {
            let shared = Arc::clone(&self.shared);
            let step = Arc::clone(&self.plan.steps()[index]);
            in_flight.push(Box::pin(async move {
                let message = format!("internal step '{cause}' of graph asset '{}' failed", step.node_name);
                let request = shared.request(&step, 1, Vec::new());
                let message = shared.fail_step(&step, request, StepFailure::new(message, FailureReason::Error)).await;
                Completion::BackoffOver { index, attempt: 1, outcome: Err(message) }
            }));
        }
    }

    /// Starts every ready step the lanes (and, with level grouping, the active level) allow.
    fn start_ready(&mut self, in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>) {
        let gate = self.level_gate();
        for lane in [Lane::InProcess, Lane::Workers, Lane::Async, Lane::Pods, Lane::Stream] {
            if gate.is_some() && self.active_lane().is_some_and(|active| active != lane) {
                continue;
            }
            let mut from = 0;
            while self.running.get(&lane).copied().unwrap_or(0) < self.capacity(lane) {
                let Some(&(_, index)) = self.ready.range((lane, from)..=(lane, usize::MAX)).next() else { break };
                from = index + 1;
                let step = &self.plan.steps()[index];
                // Grown steps follow the initial ones whatever their level: skip, not stop.
                if gate.is_some_and(|level| step.level != level) {
                    continue;
                }
                if let Some(last) = self.fan_outs.blocked_until(step) {
                    from = last + 1; // the other instances of a capped map wait as well
                    continue;
                }
                if !step_claims(step).is_empty() && !self.slots.contains_key(&index) {
                    if self.may_claim(lane) {
                        self.begin_claim(index, lane, in_flight);
                    }
                    continue;
                }
                self.start(index, lane, in_flight);
            }
        }
    }

    fn start(&mut self, index: usize, lane: Lane, in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>) {
        *self.running.entry(lane).or_default() += 1;
        let step = Arc::clone(&self.plan.steps()[index]);
        self.fan_outs.track_running(&step, true);
        let fan_in = self.fan_outs.fan_in_for(&self.plan, &step);
        self.ready.remove(&(lane, index));
        self.states[index] = StepState::Running;
        let attempt = self.attempts.remove(&index).unwrap_or(1);
        let slots = self.slots.remove(&index);
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(shared.run_attempt(step, attempt, fan_in, slots));
        in_flight.push(Box::pin(async move { Completion::Body(index, task.await) }));
    }

    fn attempt_over(
        &mut self,
        index: usize,
        outcome: Result<Attempt, tokio::task::JoinError>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        match outcome {
            Ok(Attempt::Succeeded(mut output, scope)) => {
                let mut growth = std::mem::take(&mut output.growth);
                if let Some(keys) = output.fan_out.take() {
                    let template = Arc::clone(&self.plan.steps()[index]);
                    match self.fan_outs.growth(&self.plan, &template, keys) {
                        Ok(expansion) => {
                            growth.steps.extend(expansion.steps);
                            growth.fan_in.extend(expansion.fan_in);
                        }
                        Err(problem) => {
                            self.shared.step_failure_event(&template.key, FailureReason::Error, &problem);
                            self.step_failed(index, problem);
                            return;
                        }
                    }
                }
                if !growth.is_empty()
                    && let Err(problem) = self.grow(index, growth)
                {
                    // Nothing of the step is recorded as succeeded: its values are not
                    // materializations of this run.
                    let message = format!("the step added steps the plan cannot take: {problem}");
                    self.shared.step_failure_event(&self.plan.steps()[index].key, FailureReason::Error, &message);
                    self.step_failed(index, message);
                    return;
                }
                self.shared.record_success(&self.plan.steps()[index], scope.as_deref(), *output);
                if self.shared.durable {
                    // A step counts as done (for dependents, and for `resume` after a crash)
                    // only once its StepSuccess is stored. The executor slot is free already,
                    // so independent steps run while the commit happens; in-memory stores die
                    // with the process and skip the wait.
                    let storage = self.shared.storage.clone();
                    let run_id = self.shared.options.run_id.clone();
                    in_flight
                        .push(Box::pin(async move { Completion::Durable(index, storage.flush_run(&run_id).await) }));
                } else {
                    self.finish(index, StepState::Succeeded);
                }
            }
            Ok(Attempt::Retry { delay, request, failure }) => {
                // The slot is released for the wait (R39) and claimed again by the retry.
                self.states[index] = StepState::BackingOff;
                let shared = Arc::clone(&self.shared);
                let step = Arc::clone(&self.plan.steps()[index]);
                let attempt = request.attempt + 1;
                in_flight.push(Box::pin(async move {
                    let waited = shared.wait_backoff(delay).await;
                    let outcome = if !waited || shared.cancel_requested() {
                        // Cancelled during the backoff: the step ends here, classified canceled.
                        Err(shared
                            .fail_step(&step, *request, StepFailure { reason: FailureReason::Canceled, ..failure })
                            .await)
                    } else if shared.stopping.load(Ordering::SeqCst) {
                        // The run starts no further attempt: the last failure is the step's.
                        Err(shared.fail_step(&step, *request, failure).await)
                    } else {
                        Ok(())
                    };
                    Completion::BackoffOver { index, attempt, outcome }
                }));
            }
            Ok(Attempt::Failed(message)) => self.step_failed(index, message),
            Err(join_error) => {
                // A panicking runner is a bug; the step fails (and the run with it) instead of
                // hanging or being guessed successful.
                let message = format!("the step runner panicked: {join_error}");
                let key = &self.plan.steps()[index].key;
                tracing::error!(step = %key, "{message}");
                self.shared.step_failure_event(key, FailureReason::Infrastructure, &message);
                self.step_failed(index, message);
            }
        }
    }

    /// Starts no further step or attempt; steps waiting out a backoff end when it is over.
    fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
    }

    fn step_failed(&mut self, index: usize, message: String) {
        if self.plan.steps()[index].mapping_key.is_some() {
            self.fan_outs.instance_ended(&self.plan.steps()[index], Err(message.clone()));
        }
        self.failed.push((self.plan.steps()[index].key.to_string(), message));
        self.finish(index, StepState::Failed);
        if self.shared.options.stop_on_failure {
            self.stop();
        }
    }

    /// The step ran, but its success is not on record: it has not succeeded (resume will run
    /// it again), and nothing more of this run can be trusted to the store.
    fn lost_success(&mut self, index: usize, err: rivers_storage::Error) {
        let message = format!("the step's events were not stored: {err}");
        self.shared.step_failure_event(&self.plan.steps()[index].key, FailureReason::Infrastructure, &message);
        self.step_failed(index, message);
        self.stop();
        self.storage_error.get_or_insert(err);
    }
}
