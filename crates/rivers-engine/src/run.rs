//! The run loop.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use rivers_core::{EventType, ExecutorKind, FailureReason, LaunchedBy, Plan, PlanGrowth, PlanStep, RunStatus, StepKey};
use rivers_storage::{NewEvent, NewRun, PartitionStatusChange, PartitionTransition, Storage, StorageKind};

use crate::error::Result;
use crate::fan_out::{FanIn, FanOuts};
use crate::partitions::{RunPartition, StepScope, run_env, step_scope};
use crate::runner::{CapturedOutput, Materialized, StepFailure, StepOutput, StepRequest, StepRunner};
use rivers_core::partitions::{PartitionEnv, RangeSet};

/// How often the engine asks storage whether another process requested cancellation; local
/// requests (through the same handle) are seen at once.
const REMOTE_CANCEL_POLL: Duration = Duration::from_millis(500);
/// How often a run with steps in flight looks for a cancellation requested through this
/// handle (requests from other processes are polled every `REMOTE_CANCEL_POLL`).
const CANCEL_CHECK: Duration = Duration::from_millis(100);
/// Granularity at which a backoff wait notices cancellation.
const BACKOFF_TICK: Duration = Duration::from_millis(50);

/// Per-run settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run id (fresh or `run_id_override`).
    pub run_id: String,
    /// Job name; `None` for ad-hoc runs.
    pub job_name: Option<String>,
    /// Run tags.
    pub tags: Vec<(String, String)>,
    /// Run priority.
    pub priority: i64,
    /// The partition the run targets.
    pub partition: Option<RunPartition>,
    /// Skip steps that already succeeded in this run.
    pub resume: bool,
    /// Stop starting steps after the first final failure.
    pub stop_on_failure: bool,
    /// Concurrent sync steps of the parallel executor.
    pub max_workers: usize,
    /// Concurrent async steps; `None` = unbounded.
    pub max_async_concurrent: Option<usize>,
    /// Origin of the run.
    pub launched_by: LaunchedBy,
}

impl RunOptions {
    /// The run's partition in display form, when it is one individual partition: what its
    /// step events carry. A run over many partitions (a key with several values, a batched
    /// backfill group) tags its step events with none; its materializations carry theirs.
    pub fn partition_display(&self) -> Option<String> {
        self.partition.as_ref().filter(|p| p.key.is_individual()).map(|p| p.key.to_string())
    }
}

/// The asset keys a step writes: its selected outputs, or its node's own name.
fn step_assets(step: &PlanStep) -> impl Iterator<Item = &str> {
    let own = step.outputs.is_empty().then_some(step.node_name.as_str());
    own.into_iter().chain(step.outputs.iter().map(String::as_str))
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Run id.
    pub run_id: String,
    /// Terminal status.
    pub status: RunStatus,
    /// Step keys attempted (succeeded, failed or satisfied by resume), in plan order; a
    /// multi-asset step is listed as its selected outputs.
    pub attempted: Vec<String>,
    /// `(step_key, message)` of failed steps, in the order they failed (a multi-asset step as
    /// one entry per selected output).
    pub failed: Vec<(String, String)>,
    /// Display forms of the partitions step bodies marked failed, without duplicates.
    pub failed_partitions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepState {
    Pending,
    Running,
    /// Waiting out a retry backoff, holding no executor slot.
    BackingOff,
    Succeeded,
    Failed,
    Skipped,
}

/// Which concurrency cap a step counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Lane {
    InProcess,
    Workers,
    Async,
    Pods,
}

fn lane(step: &PlanStep) -> Lane {
    match step.executor {
        ExecutorKind::InProcess => Lane::InProcess,
        ExecutorKind::Parallel if step.is_async => Lane::Async,
        ExecutorKind::Parallel => Lane::Workers,
        ExecutorKind::Kubernetes => Lane::Pods,
    }
}

struct Shared {
    storage: Storage,
    runner: Arc<dyn StepRunner>,
    options: RunOptions,
    /// Latest data version per asset key, for the input data versions of materializations.
    versions: Mutex<HashMap<String, String>>,
    /// The run's individual partition in display form (its step events carry it).
    partition_display: Option<String>,
    /// The clock and dynamic key sets partitions are read in.
    partition_env: PartitionEnv,
    /// Partitions step bodies marked failed.
    marked_partitions: Mutex<Vec<String>>,
    /// The store outlives the process: step completions are flushed before dependents start.
    durable: bool,
    /// The scheduler saw the run cancelled (through any handle, or another process).
    cancelled: AtomicBool,
    /// No further attempt may start (cancelled, or `stop_on_failure` tripped).
    stopping: AtomicBool,
}

/// Executes `plan` as run `options.run_id`, recording the run and its events in `storage`.
///
/// Creates the run record, or attaches to an existing one with the same id. Step failures are
/// reported in the outcome, never as errors.
///
/// # Errors
/// Only storage failures.
pub async fn execute_run(
    storage: &Storage,
    plan: &Plan,
    runner: Arc<dyn StepRunner>,
    options: RunOptions,
) -> Result<RunOutcome> {
    let run_id = options.run_id.clone();
    if storage.get_run(&run_id).await?.is_some() {
        storage.set_run_status(&run_id, RunStatus::Running).await?;
    } else {
        storage
            .create_run(NewRun {
                run_id: run_id.clone(),
                job_name: options.job_name.clone(),
                status: RunStatus::Running,
                tags: options.tags.clone(),
                node_names: plan.node_names(),
                priority: options.priority,
                partition_key: options.partition.as_ref().and_then(|p| serde_json::to_value(&p.key).ok()),
                launched_by: options.launched_by.clone(),
            })
            .await?;
    }
    storage.attach_run(&run_id).await?;
    let outcome = drive_run(storage, plan, runner, options).await;
    storage.detach_run(&run_id);
    outcome
}

async fn drive_run(
    storage: &Storage,
    plan: &Plan,
    runner: Arc<dyn StepRunner>,
    options: RunOptions,
) -> Result<RunOutcome> {
    let run_id = options.run_id.clone();
    let already_done = if options.resume {
        storage.succeeded_steps(&run_id, options.partition_display().as_deref()).await?
    } else {
        Default::default()
    };
    let versions = initial_versions(storage, plan).await?;
    let partition_env = run_env(storage, plan).await?;
    let durable = storage.kind() != StorageKind::Memory;
    let partition_display = options.partition_display();
    let shared = Arc::new(Shared {
        storage: storage.clone(),
        runner,
        options,
        versions: Mutex::new(versions),
        partition_display,
        partition_env,
        marked_partitions: Mutex::new(Vec::new()),
        durable,
        cancelled: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
    });
    shared.event(EventType::RunStart, None, Vec::new());

    let mut scheduler = Scheduler::new(plan.clone(), &shared, already_done);
    scheduler.drive().await;

    let Scheduler { plan, states, failed, storage_error, .. } = scheduler;
    let status = if storage_error.is_some() {
        RunStatus::Failure
    } else if shared.cancelled.load(Ordering::SeqCst) {
        RunStatus::Canceled
    } else if states.iter().any(|s| *s != StepState::Succeeded) {
        RunStatus::Failure
    } else {
        RunStatus::Success
    };
    let terminal_event = match status {
        RunStatus::Success => EventType::RunSuccess,
        RunStatus::Canceled => EventType::RunCanceled,
        _ => EventType::RunFailure,
    };
    shared.event(terminal_event, None, Vec::new());
    let completed = states.iter().filter(|s| **s == StepState::Succeeded).count() as i64;
    let total = plan.len() as i64;
    let message = failed.first().map(|(step, msg)| format!("step '{step}' failed: {msg}"));
    let recorded = match storage_error {
        Some(err) => Err(err),
        None => storage.set_run_outcome(&run_id, status, completed, total, message.as_deref()).await,
    };
    if let Err(err) = recorded {
        // Some of the run's events are not stored: the run did not succeed, whatever its steps
        // did. Record that (the store may be reachable again) and report the storage error.
        let message = format!("storage error: {err}");
        if let Err(second) =
            storage.write_run_outcome(&run_id, RunStatus::Failure, completed, total, Some(&message)).await
        {
            tracing::error!(run_id, error = %second, "could not record the failure of a run whose events were lost");
        }
        return Err(err.into());
    }
    let attempted = plan
        .steps()
        .iter()
        .zip(&states)
        .filter(|(_, s)| matches!(s, StepState::Succeeded | StepState::Failed))
        .flat_map(|(step, _)| outcome_names(step))
        .collect();
    let failed = failed
        .into_iter()
        .flat_map(|(key, message)| {
            let names: Vec<String> = match plan.step(&StepKey::from(key.as_str())) {
                Some(step) => outcome_names(step).collect(),
                None => vec![key],
            };
            names.into_iter().map(move |name| (name, message.clone()))
        })
        .collect();
    let mut failed_partitions = std::mem::take(&mut *shared.marked_partitions.lock());
    failed_partitions.sort_unstable();
    failed_partitions.dedup();
    Ok(RunOutcome { run_id, status, attempted, failed, failed_partitions })
}

/// The names a step reports in a run's outcome: a multi-asset step's selected outputs, else
/// its key.
fn outcome_names(step: &PlanStep) -> impl Iterator<Item = String> + '_ {
    let own = step.outputs.is_empty().then(|| step.key.to_string());
    own.into_iter().chain(step.outputs.iter().cloned())
}

/// Latest data versions of the plan's upstream assets, read once per run (only those rows:
/// a small selection in a large repository reads little).
async fn initial_versions(storage: &Storage, plan: &Plan) -> Result<HashMap<String, String>> {
    let mut upstreams: Vec<String> = plan.steps().iter().flat_map(|s| s.upstream_assets.iter().cloned()).collect();
    upstreams.sort_unstable();
    upstreams.dedup();
    Ok(storage.current_data_versions(&upstreams).await?.into_iter().collect())
}

impl Shared {
    fn event(&self, kind: EventType, asset_key: Option<String>, metadata: Vec<(String, String)>) {
        self.storage.enqueue_event(NewEvent {
            asset_key,
            partition_key: self.partition_display.clone(),
            metadata,
            ..NewEvent::new(kind, self.options.run_id.clone())
        });
    }

    /// Whether the run is cancelled as far as this process knows: seen by the scheduler (from
    /// any process), or requested through this handle.
    fn cancel_requested(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst) || self.storage.is_cancel_requested_locally(&self.options.run_id)
    }

    fn record_success(&self, step: &PlanStep, scope: Option<&StepScope>, output: StepOutput) {
        let marked: HashMap<&str, &str> =
            output.failed_partitions.iter().map(|(key, message)| (key.as_str(), message.as_str())).collect();
        // Display forms of the covered partitions, rendered once when the body marked some.
        let displays: Vec<String> = match scope {
            Some(scope) if !marked.is_empty() => scope.covered.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        };
        let is_marked = |i: usize| displays.get(i).is_some_and(|key| marked.contains_key(key.as_str()));
        self.record_materializations(step, scope, |i| !is_marked(i), output.materializations);
        if let Some(scope) = scope {
            self.partition_status(step, scope.positions_where(|i| !is_marked(i)), PartitionTransition::Materialized);
            if !marked.is_empty() {
                self.partition_status(step, scope.positions_where(is_marked), PartitionTransition::Failed);
            }
        }
        self.marked_partitions.lock().extend(output.failed_partitions.iter().map(|(key, _)| key.clone()));
        for (key, message) in &output.failed_partitions {
            for asset_key in step_assets(step) {
                self.storage.enqueue_event(NewEvent {
                    asset_key: Some(asset_key.to_string()),
                    partition_key: Some(key.clone()),
                    metadata: vec![("rivers/error".into(), message.clone())],
                    ..NewEvent::new(EventType::PartitionFailure, self.options.run_id.clone())
                });
            }
        }
        self.event(EventType::StepSuccess, Some(step.key.to_string()), Vec::new());
    }

    /// One materialization event per persisted value and covered partition `keep` accepts
    /// (by index into `scope.covered`); an unpartitioned step's events carry no partition.
    fn record_materializations(
        &self,
        step: &PlanStep,
        scope: Option<&StepScope>,
        keep: impl Fn(usize) -> bool,
        materializations: Vec<Materialized>,
    ) {
        let partitions: Vec<Option<String>> = match scope.filter(|s| !s.covered.is_empty()) {
            Some(scope) => {
                scope.covered.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, k)| Some(k.to_string())).collect()
            }
            None => vec![None],
        };
        for mat in materializations {
            // Inputs are read once per persisted value; each partition gets its own version.
            let inputs: Vec<(String, String)> = {
                let versions = self.versions.lock();
                step.upstream_assets.iter().filter_map(|up| versions.get(up).map(|v| (up.clone(), v.clone()))).collect()
            };
            let mut last_version = None;
            for partition_key in &partitions {
                let data_version = mat.data_version.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                last_version = Some(data_version.clone());
                self.storage.enqueue_event(NewEvent {
                    event_type: EventType::Materialization,
                    asset_key: Some(mat.asset_key.clone()),
                    run_id: self.options.run_id.clone(),
                    partition_key: partition_key.clone(),
                    metadata: mat.metadata.clone(),
                    data_version: Some(data_version),
                    code_version: mat.code_version.clone(),
                    input_data_versions: inputs.clone(),
                });
            }
            if let Some(version) = last_version {
                self.versions.lock().insert(mat.asset_key, version);
            }
        }
    }

    /// Records what happened to the partitions of every asset the step writes.
    fn partition_status(&self, step: &PlanStep, positions: RangeSet, transition: PartitionTransition) {
        if positions.is_empty() {
            return;
        }
        for asset_key in step_assets(step) {
            self.storage.enqueue_partition_status(PartitionStatusChange {
                asset_key: asset_key.to_string(),
                transition,
                positions: positions.clone(),
            });
        }
    }

    fn store_captured(&self, step: &PlanStep, captured: Option<CapturedOutput>) {
        if let Some(CapturedOutput { stdout, stderr, logs }) = captured {
            self.storage.enqueue_run_log(&self.options.run_id, step.key.as_str(), stdout, stderr, logs);
        }
    }

    fn request(&self, step: &PlanStep, attempt: u32, fan_in: Vec<FanIn>) -> StepRequest {
        let partition = step
            .partitions
            .as_ref()
            .map(|partitions| Arc::new(step_scope(partitions, self.options.partition.as_ref(), &self.partition_env)));
        StepRequest {
            run_id: self.options.run_id.clone(),
            step_key: step.key.clone(),
            node_name: step.node_name.clone(),
            mapping_key: step.mapping_key.clone(),
            partition,
            output_selection: step.outputs.clone(),
            fan_in,
            attempt,
            executor: step.executor,
            is_async: step.is_async,
            retry_class_filter: step.retry.as_ref().and_then(|p| match &p.retry_on {
                rivers_core::RetryOn::List { class_filter, .. } => *class_filter,
                _ => None,
            }),
        }
    }

    /// Runs one attempt of a step. A retryable failure is handed back to the scheduler, which
    /// frees the step's executor slot for the backoff (R39).
    async fn run_attempt(self: Arc<Self>, step: Arc<PlanStep>, attempt: u32, fan_in: Vec<FanIn>) -> Attempt {
        let request = self.request(&step, attempt, fan_in);
        if attempt == 1 {
            self.event(EventType::StepStart, Some(step.key.to_string()), Vec::new());
            if let Some(scope) = &request.partition {
                self.partition_status(&step, scope.positions_where(|_| true), PartitionTransition::Started);
            }
        }
        match self.runner.run_step(request.clone()).await {
            Ok(mut output) => {
                let captured = output.captured.take();
                self.store_captured(&step, captured);
                // Recorded by the scheduler once the plan took the step's growth.
                Attempt::Succeeded(Box::new(output), request.partition)
            }
            Err(mut failure) => {
                let captured = failure.captured.take();
                self.store_captured(&step, captured.map(|c| *c));
                let persisted = std::mem::take(&mut failure.materializations);
                self.record_materializations(&step, request.partition.as_deref(), |_| true, persisted);
                if self.cancel_requested() {
                    // A step interrupted by cancellation failed because of it (R47).
                    failure.reason = FailureReason::Canceled;
                }
                match self.retry_delay(&step, attempt, &failure) {
                    Some(delay) => {
                        self.event(
                            EventType::StepRetry,
                            Some(step.key.to_string()),
                            vec![
                                ("rivers/attempt".into(), attempt.to_string()),
                                ("rivers/failure_reason".into(), failure.reason.as_str().into()),
                                ("rivers/next_delay_ms".into(), delay.as_millis().to_string()),
                            ],
                        );
                        Attempt::Retry { delay, request: Box::new(request), failure }
                    }
                    None => Attempt::Failed(self.fail_step(&step, request, failure).await),
                }
            }
        }
    }

    /// Records a step's final failure (failure hooks, `StepFailure`); returns its message.
    async fn fail_step(&self, step: &PlanStep, request: StepRequest, failure: StepFailure) -> String {
        if let Some(scope) = &request.partition {
            let transition = match failure.reason {
                FailureReason::Canceled => PartitionTransition::Abandoned,
                _ => PartitionTransition::Failed,
            };
            self.partition_status(step, scope.positions_where(|_| true), transition);
        }
        self.runner.on_final_failure(request, failure.clone()).await;
        self.step_failure_event(&step.key, failure.reason, &failure.message);
        failure.message
    }

    fn step_failure_event(&self, step_key: &StepKey, reason: FailureReason, message: &str) {
        self.event(
            EventType::StepFailure,
            Some(step_key.to_string()),
            vec![
                ("rivers/failure_reason".into(), reason.as_str().into()),
                ("rivers/error".into(), message.to_string()),
            ],
        );
    }

    fn retry_delay(&self, step: &PlanStep, attempt: u32, failure: &StepFailure) -> Option<Duration> {
        if failure.reason == FailureReason::Canceled {
            return None;
        }
        let policy = step.retry.as_ref()?;
        if attempt > policy.max_retries || !policy.allows(failure.reason, failure.matched_retry_class) {
            return None;
        }
        Some(policy.backoff.as_ref().map_or(Duration::ZERO, |b| b.delay(attempt, fastrand::f64())))
    }

    /// Sleeps for a backoff; `false` when the run was cancelled meanwhile (through this
    /// handle: at once; from another process: within `REMOTE_CANCEL_POLL`).
    async fn wait_backoff(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut next_remote_check = Instant::now() + REMOTE_CANCEL_POLL;
        loop {
            if self.cancel_requested() {
                return false;
            }
            if Instant::now() >= next_remote_check {
                next_remote_check = Instant::now() + REMOTE_CANCEL_POLL;
                if self.storage.is_cancelled(&self.options.run_id).await.unwrap_or(false) {
                    return false;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            tokio::time::sleep((deadline - now).min(BACKOFF_TICK)).await;
        }
    }
}

/// How one attempt of a step ended.
enum Attempt {
    /// The step succeeded; its output is recorded once the plan took its growth.
    Succeeded(Box<StepOutput>, Option<Arc<StepScope>>),
    /// A retryable failure: wait `delay`, then run the next attempt.
    Retry { delay: Duration, request: Box<StepRequest>, failure: StepFailure },
    /// The final failure, with its message.
    Failed(String),
}

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
}

struct Scheduler {
    /// The run's plan, growing as steps add fan-out instances; the vectors below are indexed
    /// by plan position and grow with it.
    plan: Plan,
    shared: Arc<Shared>,
    states: Vec<StepState>,
    waiting_on: Vec<usize>,
    downstream: Vec<Vec<usize>>,
    /// Ready steps by lane, in plan order within a lane: starting steps stops scanning a lane
    /// once it is full, so a wide fan-out costs no scan per start.
    ready: BTreeSet<(Lane, usize)>,
    /// Unfinished (pending, running or backing off) steps per plan level: the level gate.
    unfinished: std::collections::BTreeMap<u32, usize>,
    running: HashMap<Lane, usize>,
    failed: Vec<(String, String)>,
    /// Events of the run could not be written: the run stops and ends `Failure`.
    storage_error: Option<rivers_storage::Error>,
    /// The attempt number a step resumes at after a backoff.
    attempts: HashMap<usize, u32>,
    /// Steps that succeeded in an earlier attempt of this run (resume). Growth is not stored:
    /// a resumed run does not re-add the steps its producers grew before.
    already_done: std::collections::HashSet<String>,
    last_remote_cancel_check: Instant,
    fan_outs: FanOuts,
    /// Graph steps failing because an internal step failed, with that step's key: the run loop
    /// records their failure.
    member_failures: Vec<(usize, StepKey)>,
}

impl Scheduler {
    fn new(plan: Plan, shared: &Arc<Shared>, already_done: std::collections::HashSet<String>) -> Self {
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
            last_remote_cancel_check: Instant::now(),
            fan_outs: FanOuts::default(),
            member_failures: Vec::new(),
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
                match self.states[up] {
                    StepState::Succeeded => {}
                    StepState::Failed | StepState::Skipped => blocked = true,
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
    fn grow(&mut self, producer: usize, growth: PlanGrowth) -> std::result::Result<(), String> {
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
        self.track(added);
        self.recount_levels();
        for (target, up) in new_edges {
            let up = self.plan.position(&up).expect("grown plans hold their fan-in upstreams");
            self.downstream[up].push(target);
            match self.states[up] {
                StepState::Succeeded => {}
                StepState::Failed | StepState::Skipped => {
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
            Lane::Pods => usize::MAX,
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
                self.fan_outs.instance_succeeded(&self.plan.steps()[index]);
                for position in 0..self.downstream[index].len() {
                    let down = self.downstream[index][position];
                    self.waiting_on[down] -= 1;
                    if self.waiting_on[down] == 0 && self.states[down] == StepState::Pending {
                        self.make_ready(down);
                    }
                }
            }
            StepState::Failed | StepState::Skipped => {
                let cause = self.plan.steps()[index].key.clone();
                let mut stack = self.downstream[index].clone();
                while let Some(down) = stack.pop() {
                    if self.states[down] != StepState::Pending {
                        continue;
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
                    stack.extend(self.downstream[down].iter().copied());
                }
            }
            StepState::Pending | StepState::Running | StepState::BackingOff => {}
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

    async fn check_cancellation(&mut self) {
        // After a lost write the run is ending anyway, and polling a store that is gone would
        // only hold the loop up.
        if self.shared.cancelled.load(Ordering::SeqCst) || self.storage_error.is_some() {
            return;
        }
        let remote_due = self.last_remote_cancel_check.elapsed() >= REMOTE_CANCEL_POLL;
        let requested = self.shared.cancel_requested()
            || (remote_due
                && {
                    self.last_remote_cancel_check = Instant::now();
                    // A store that cannot be read cannot say the run was cancelled; whatever made
                    // it unreachable surfaces through the run's writes, which name what was lost.
                    self.shared.storage.is_cancelled(&self.shared.options.run_id).await.unwrap_or_else(|err| {
                    tracing::warn!(run_id = %self.shared.options.run_id, error = %err, "could not check for cancellation");
                    false
                })
                });
        if requested {
            self.shared.cancelled.store(true, Ordering::SeqCst);
            self.stop();
            self.shared.runner.cancel_running(&self.shared.options.run_id);
        }
    }

    async fn drive(&mut self) {
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Completion>> = FuturesUnordered::new();
        // Cancellation is also looked for while steps run, not only when one finishes, so
        // that long-running steps can be interrupted.
        let mut cancel_check = tokio::time::interval(CANCEL_CHECK);
        cancel_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.check_cancellation().await;
            if !self.shared.stopping.load(Ordering::SeqCst) {
                self.start_ready(&mut in_flight);
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
        for lane in [Lane::InProcess, Lane::Workers, Lane::Async, Lane::Pods] {
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
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(shared.run_attempt(step, attempt, fan_in));
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
