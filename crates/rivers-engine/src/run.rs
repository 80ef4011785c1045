//! The run loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rivers_core::{
    EventType, ExecutorKind, FailureReason, LaunchedBy, Plan, PlanStep, RunBackendKind, RunStatus, StepKey,
};
use rivers_storage::{
    NewEvent, NewRun, PartitionSpan, PartitionStatusChange, PartitionTransition, PlanRegistration, RunClaim, RunOwner,
    Storage, StorageKind,
};

use crate::error::Result;
use crate::fan_out::FanIn;
use crate::liveness::{Heartbeat, Liveness};
use crate::partitions::{RunPartition, StepScope, run_env, run_grids, step_scope};
use crate::pools::{ClaimSettings, HeldSlots, SlotClaimant};
use crate::runner::{CapturedOutput, Materialized, StepFailure, StepOutput, StepRequest, StepRunner};
use rivers_core::partitions::PartitionEnv;
use scheduler::Scheduler;

mod scheduler;

/// How often a run with steps in flight looks for a cancellation request among those its
/// storage handle knows of: made through it, or by another process and read from the change
/// feed (`Storage::watch_cancellations`).
const CANCEL_CHECK: Duration = Duration::from_millis(50);
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
    /// Where the run executes (who recovers it if this process dies).
    pub backend: RunBackendKind,
    /// Heartbeat settings while this process owns the run.
    pub liveness: Liveness,
    /// The run's launcher created its record (`NotStarted`) before handing it to this
    /// process: it is claimed and its steps registered in one transaction.
    pub created: bool,
}

impl RunOptions {
    /// Options of an ad-hoc manual run: no job, tags or partition, priority 0, not resumed,
    /// going on after a failure, at most `max_workers` sync steps at once on the parallel
    /// executor and no bound on async ones.
    pub fn manual(run_id: impl Into<String>, max_workers: usize) -> Self {
        RunOptions {
            run_id: run_id.into(),
            job_name: None,
            tags: Vec::new(),
            priority: 0,
            partition: None,
            resume: false,
            stop_on_failure: false,
            max_workers,
            max_async_concurrent: None,
            launched_by: LaunchedBy::MANUAL,
            backend: RunBackendKind::Local,
            liveness: Liveness::default(),
            created: false,
        }
    }

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
    /// Live `collect_stream()` consumers: they run in this process on a thread of their own and
    /// mostly wait for their instances, so they hold no executor slot (holding one could leave
    /// none for the instances they wait for).
    Stream,
}

fn lane(step: &PlanStep) -> Lane {
    if step.streams_live {
        return Lane::Stream;
    }
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
    /// The grid (definition fingerprint) of each partitioned asset the run writes.
    grids: HashMap<String, String>,
    /// Partitions step bodies marked failed.
    marked_partitions: Mutex<Vec<String>>,
    /// The store outlives the process: step completions are flushed before dependents start.
    durable: bool,
    /// The scheduler saw the run cancelled (through any handle, or another process).
    cancelled: AtomicBool,
    /// No further attempt may start (cancelled, or `stop_on_failure` tripped).
    stopping: AtomicBool,
    /// How pooled steps wait for their slots.
    claim_settings: ClaimSettings,
}

/// Executes `plan` as run `options.run_id`, recording the run and its events in `storage`.
///
/// Creates the run record, owned by this process, or opens an existing one with the same id
/// (`Storage::open_run`): this process claims it when no live process owns it, and otherwise
/// attaches to it, appending only its steps' events while the owner records the run's start
/// and outcome (docs/runs.md). Step failures are reported in the outcome, never as errors.
///
/// # Errors
/// Storage failures, a queued run, or a run this process lost to another one while executing.
pub async fn execute_run(
    storage: &Storage,
    plan: &Plan,
    runner: Arc<dyn StepRunner>,
    options: RunOptions,
) -> Result<RunOutcome> {
    let run_id = options.run_id.clone();
    let owner = Arc::new(RunOwner::for_this_process());
    let new_run = NewRun {
        run_id: run_id.clone(),
        job_name: options.job_name.clone(),
        status: RunStatus::Running,
        tags: options.tags.clone(),
        node_names: plan.node_names(),
        priority: options.priority,
        partition_key: options.partition.as_ref().and_then(|p| serde_json::to_value(&p.key).ok()),
        launched_by: options.launched_by.clone(),
        backend: options.backend,
    };
    // Before the run exists, so that no request stored for it can be missed.
    storage.watch_cancellations().await?;
    let step_keys: Vec<String> = plan.steps().iter().map(|step| step.key.to_string()).collect();
    let created = if options.created && !options.resume {
        storage.claim_created_run(&run_id, &owner, &step_keys).await?
    } else {
        None
    };
    let role = match created {
        Some(cancel_requested) => {
            storage.attach_run(&run_id);
            if cancel_requested {
                storage.request_cancellation(&run_id).await?;
            }
            Role::Owner { owner, restarting: false }
        }
        None => open_and_register(storage, new_run, owner, &options, &step_keys).await?,
    };
    let heartbeat = match &role {
        Role::Owner { owner, .. } => {
            Some(Heartbeat::start(storage.clone(), run_id.clone(), Arc::clone(owner), options.liveness.interval))
        }
        Role::Attached => None,
    };
    let outcome = drive_run(storage, plan, runner, options, &role).await;
    if let Some(heartbeat) = heartbeat {
        heartbeat.stop().await;
    }
    outcome
}

/// Creates or claims the run (or attaches to it when another live process owns it) and
/// registers this process's steps.
async fn open_and_register(
    storage: &Storage,
    new_run: NewRun,
    owner: Arc<RunOwner>,
    options: &RunOptions,
    step_keys: &[String],
) -> Result<Role> {
    let run_id = new_run.run_id.clone();
    let claim = storage.open_run(new_run, &owner, options.resume, options.liveness.dead_after).await?;
    storage.attach_run(&run_id);
    let role = match claim {
        RunClaim::Owned { previous } => {
            let restarting = previous.is_some() && !options.resume;
            if let Some(previous) = previous {
                // Resuming a cancelled run withdraws the request that ended it; a request
                // pending on a run that has not ended (made from any process) survives the
                // restart, which then starts cancelled instead of waiting for its first poll.
                if options.resume && previous.status == RunStatus::Canceled {
                    storage.clear_cancellation(&run_id).await?;
                } else if previous.cancel_requested {
                    storage.request_cancellation(&run_id).await?;
                }
            }
            Role::Owner { owner, restarting }
        }
        RunClaim::Attached { owner_process } => {
            tracing::info!(run_id, owner = owner_process, "attached to a run another live process owns");
            Role::Attached
        }
    };
    // A re-execution from the start (an existing run, without `resume`) counts its progress
    // from zero; a new, resumed or attached execution adds to it.
    let registration = match &role {
        Role::Owner { restarting: true, .. } => PlanRegistration::Restart,
        _ => PlanRegistration::Add,
    };
    storage.register_run_steps(&run_id, step_keys, registration).await?;
    Ok(role)
}

/// How this process takes part in a run.
enum Role {
    /// It owns the run: it records the run's start and its outcome. `restarting`: it executes
    /// a run that existed again from the start.
    Owner { owner: Arc<RunOwner>, restarting: bool },
    /// Another live process owns the run: this one only appends its steps' events.
    Attached,
}

async fn drive_run(
    storage: &Storage,
    plan: &Plan,
    runner: Arc<dyn StepRunner>,
    options: RunOptions,
    role: &Role,
) -> Result<RunOutcome> {
    let run_id = options.run_id.clone();
    let already_done = if options.resume {
        storage.succeeded_steps(&run_id, options.partition_display().as_deref()).await?
    } else {
        Default::default()
    };
    let versions = initial_versions(storage, plan).await?;
    let partition_env = run_env(storage, plan).await?;
    let grids = run_grids(storage, plan).await?;
    let durable = storage.kind() != StorageKind::Memory;
    let partition_display = options.partition_display();
    let shared = Arc::new(Shared {
        storage: storage.clone(),
        runner,
        options,
        versions: Mutex::new(versions),
        partition_display,
        partition_env,
        grids,
        marked_partitions: Mutex::new(Vec::new()),
        durable,
        cancelled: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        claim_settings: ClaimSettings::from_env(),
    });
    if matches!(role, Role::Owner { .. }) {
        shared.event(EventType::RunStart, None, Vec::new());
    }

    let mut scheduler = Scheduler::new(plan.clone(), &shared, already_done);
    scheduler.drive().await;

    let Scheduler { plan, states, failed, storage_error, .. } = scheduler;
    // Defence in depth: whatever a step failed to release (its process kept running) is freed
    // with the run. Runs without pooled steps never touch the pool tables.
    if matches!(role, Role::Owner { .. })
        && plan.steps().iter().any(|step| !step.pools.is_empty())
        && let Err(err) = storage.free_concurrency_slots_for_run(&run_id).await
    {
        tracing::warn!(run_id, error = %err, "could not release the pool slots of a finished run");
    }
    let status = if storage_error.is_some() {
        RunStatus::Failure
    } else if shared.cancelled.load(Ordering::SeqCst) {
        RunStatus::Canceled
    } else if states.iter().any(|s| *s != StepState::Succeeded) {
        RunStatus::Failure
    } else {
        RunStatus::Success
    };
    let message = failed.first().map(|(step, msg)| format!("step '{step}' failed: {msg}"));
    let mut failed_partitions = std::mem::take(&mut *shared.marked_partitions.lock());
    failed_partitions.sort_unstable();
    failed_partitions.dedup();
    let recorded = match role {
        Role::Owner { owner, .. } => {
            let terminal_event = match status {
                RunStatus::Success => EventType::RunSuccess,
                RunStatus::Canceled => EventType::RunCanceled,
                _ => EventType::RunFailure,
            };
            shared.event(terminal_event, None, Vec::new());
            match storage_error {
                Some(err) => Err(err),
                None if failed_partitions.is_empty() => {
                    storage.finish_run(&run_id, owner, status, message.as_deref()).await
                }
                None => match storage.record_failed_partitions(&run_id, &failed_partitions).await {
                    Ok(()) => storage.finish_run(&run_id, owner, status, message.as_deref()).await,
                    Err(err) => Err(err),
                },
            }
        }
        // The owner records the run's outcome; this process only makes its steps' events
        // durable.
        Role::Attached => match storage_error {
            Some(err) => Err(err),
            None => storage.flush_run(&run_id).await,
        },
    };
    if let Err(err) = recorded {
        // Some of the run's events are not stored: the run did not succeed, whatever its steps
        // did. Record that (the store may be reachable again) and report the storage error.
        if let Role::Owner { owner, .. } = role
            && !matches!(err, rivers_storage::Error::RunTakenOver { .. })
        {
            let message = format!("storage error: {err}");
            if let Err(second) = storage.write_finish(&run_id, owner, RunStatus::Failure, Some(&message)).await {
                tracing::error!(run_id, error = %second, "could not record the failure of a run whose events were lost");
            }
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
        // Materialized partitions are recorded from their events.
        self.record_materializations(step, scope, |i| !is_marked(i), output.materializations);
        if let Some(scope) = scope.filter(|_| !marked.is_empty()) {
            self.partition_status(step, scope, is_marked, PartitionTransition::Failed);
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

    /// One materialization event per persisted value: of the covered partitions `keep`
    /// accepts (by index into `scope.covered`), one event naming its partition when there is
    /// one, else one compact event for all of them (read as one event per partition); an
    /// unpartitioned step's events carry no partition.
    fn record_materializations(
        &self,
        step: &PlanStep,
        scope: Option<&StepScope>,
        keep: impl Fn(usize) -> bool,
        materializations: Vec<Materialized>,
    ) {
        let scope = scope.filter(|s| !s.covered.is_empty());
        // Only whether none, one (which) or several partitions are kept matters here.
        let (first_kept, several_kept) = match scope {
            Some(s) => {
                let mut kept = (0..s.covered.len()).filter(|&i| keep(i));
                (kept.next(), kept.next().is_some())
            }
            None => (None, false),
        };
        if scope.is_some() && first_kept.is_none() {
            return;
        }
        for mat in materializations {
            // Inputs are read once per persisted value.
            let inputs: Vec<(String, String)> = {
                let versions = self.versions.lock();
                step.upstream_assets.iter().filter_map(|up| versions.get(up).map(|v| (up.clone(), v.clone()))).collect()
            };
            let (partition_key, span) = match scope {
                Some(scope) => {
                    let partition_key = first_kept.filter(|_| !several_kept).map(|one| scope.covered[one].to_string());
                    let positions = scope
                        .output_positions_where(&mat.asset_key, &keep)
                        .unwrap_or_else(|| scope.positions_where(&keep));
                    let span = self.grids.get(&mat.asset_key).map(|definition| PartitionSpan {
                        definition: definition.clone(),
                        positions,
                        derived_versions: partition_key.is_none() && mat.data_version.is_none(),
                    });
                    (partition_key, span)
                }
                None => (None, None),
            };
            let data_version = mat.data_version.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            // The version downstream steps record as their input: the last partition's.
            let last_version = match &span {
                Some(span) if partition_key.is_none() => {
                    span.positions.last().and_then(|last| span.version_at(Some(&data_version), last))
                }
                _ => Some(data_version.clone()),
            };
            self.storage.enqueue_event(NewEvent {
                event_type: EventType::Materialization,
                asset_key: Some(mat.asset_key.clone()),
                run_id: self.options.run_id.clone(),
                partition_key,
                metadata: mat.metadata,
                data_version: Some(data_version),
                code_version: mat.code_version,
                input_data_versions: inputs,
                span,
            });
            if let Some(version) = last_version {
                self.versions.lock().insert(mat.asset_key, version);
            }
        }
    }

    /// Records what happened to the covered partitions `keep` accepts (by index into
    /// `scope.covered`) of every asset the step writes.
    fn partition_status(
        &self,
        step: &PlanStep,
        scope: &StepScope,
        keep: impl Fn(usize) -> bool,
        transition: PartitionTransition,
    ) {
        // The step's grid is shared by every output without one of its own: computed once.
        let mut shared = None;
        for asset_key in step_assets(step) {
            let Some(definition) = self.grids.get(asset_key) else { continue };
            let positions = match scope.output_positions_where(asset_key, &keep) {
                Some(own) => own,
                None => shared.get_or_insert_with(|| scope.positions_where(&keep)).clone(),
            };
            if !positions.is_empty() {
                self.storage.enqueue_partition_status(PartitionStatusChange {
                    asset_key: asset_key.to_string(),
                    run_id: self.options.run_id.clone(),
                    definition: definition.clone(),
                    transition,
                    positions,
                });
            }
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

    /// Runs one attempt of a step, holding `slots` (its pool slots) until the body ends. A
    /// retryable failure is handed back to the scheduler, which frees the step's executor slot
    /// (and its pool slots) for the backoff (R39).
    async fn run_attempt(
        self: Arc<Self>,
        step: Arc<PlanStep>,
        attempt: u32,
        fan_in: Vec<FanIn>,
        slots: Option<HeldSlots>,
    ) -> Attempt {
        let request = self.request(&step, attempt, fan_in);
        if attempt == 1 {
            self.event(EventType::StepStart, Some(step.key.to_string()), Vec::new());
        }
        // Every attempt: a failed attempt's persisted outputs took their partitions out of
        // progress.
        if let Some(scope) = &request.partition {
            self.partition_status(&step, scope, |_| true, PartitionTransition::Started);
        }
        let outcome = self.runner.run_step(request.clone()).await;
        if let Some(slots) = slots {
            slots.release().await;
        }
        match outcome {
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
            self.partition_status(step, scope, |_| true, transition);
        }
        self.runner.on_final_failure(request, failure.clone()).await;
        self.step_failure_event(&step.key, failure.reason, &failure.message);
        failure.message
    }

    /// The step as its pool claims name it.
    fn slot_claimant(&self, step: &PlanStep) -> SlotClaimant {
        SlotClaimant {
            storage: self.storage.clone(),
            run_id: self.options.run_id.clone(),
            step_key: step.key.to_string(),
            partition: self.partition_display.clone(),
            priority: self.options.priority,
        }
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

    /// Sleeps for a backoff; `false` when the run was cancelled meanwhile.
    async fn wait_backoff(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            if self.cancel_requested() {
                return false;
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
