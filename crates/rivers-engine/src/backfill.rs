//! The backfill coordinator: launches a planned backfill's runs, up to its concurrency, keeps
//! its counters and per-partition outcome in its storage record, applies its failure policy,
//! and stops when it is cancelled, from this process or from any other.
//!
//! A partition is completed when its run succeeded and no step marked it failed, failed when
//! its run failed or a step marked it, and canceled when its run never finished (cancelled, or
//! never started because the backfill stopped). The counters always add up to the backfill's
//! partitions once it ends.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use rivers_core::{BackfillState, FailurePolicy, Plan, RunStatus};
use rivers_storage::{BackfillProgress, Storage};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::run::{RunOptions, RunOutcome, execute_run};
use crate::runner::StepRunner;

/// How stale the stored counters of a running backfill may be: runs of a large backfill end
/// faster than a record write.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Provides the runs of a backfill (the Python layer builds each run's step runner).
pub trait BackfillRuns: Send + Sync {
    /// The step runner and options of run `index`, whose partitions are the plan's run `index`
    /// (`options.run_id` is the new run's id). Called on a blocking thread.
    ///
    /// # Errors
    /// Why the run cannot be prepared; the backfill then fails with that error.
    fn prepare(&self, index: usize) -> Result<(Arc<dyn StepRunner>, RunOptions), String>;

    /// Display keys of run `index`'s partitions, read when the run ends (or never starts), so
    /// that a large backfill does not hold every run's keys at once.
    fn run_keys(&self, index: usize) -> Vec<String>;
}

/// A backfill to coordinate, already stored (`Storage::create_backfill`).
pub struct BackfillJob {
    /// The backfill's id.
    pub backfill_id: String,
    /// The plan every run executes.
    pub plan: Plan,
    /// Runs planned.
    pub num_runs: usize,
    /// What a failed partition does to the rest.
    pub failure_policy: FailurePolicy,
    /// Most runs executing at once.
    pub max_concurrency: usize,
}

/// How a coordinated backfill ended, as its record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillOutcome {
    /// Terminal status.
    pub status: BackfillState,
    /// Partitions completed.
    pub completed: u64,
    /// Partitions failed.
    pub failed: u64,
    /// Partitions canceled.
    pub canceled: u64,
    /// Runs created, in launch order.
    pub run_ids: Vec<String>,
}

/// A backfill coordinated in this process: `cancel_live_backfill` signals it directly.
struct LiveBackfill {
    cancelled: AtomicBool,
    wake: Notify,
}

impl LiveBackfill {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

static LIVE: LazyLock<Mutex<HashMap<String, Arc<LiveBackfill>>>> = LazyLock::new(Default::default);

/// Signals backfill `backfill_id` if this process coordinates it: it stops launching runs and
/// asks its running ones to stop between steps. `false` when it does not run here.
pub fn cancel_live_backfill(backfill_id: &str) -> bool {
    let live = LIVE.lock().get(backfill_id).cloned();
    live.inspect(|live| live.cancel()).is_some()
}

/// Whether this process coordinates backfill `backfill_id`.
pub fn is_live_backfill(backfill_id: &str) -> bool {
    LIVE.lock().contains_key(backfill_id)
}

/// Removes a backfill from the live registry when its coordinator ends, however it ends.
struct Registration(String);

impl Drop for Registration {
    fn drop(&mut self) {
        LIVE.lock().remove(&self.0);
    }
}

/// Registers `backfill_id` as coordinated here; call before returning to a caller that may
/// cancel it, then pass the registration to [`coordinate_backfill`].
pub fn register_live_backfill(backfill_id: &str) -> LiveRegistration {
    let live = Arc::new(LiveBackfill { cancelled: AtomicBool::new(false), wake: Notify::new() });
    LIVE.lock().insert(backfill_id.to_string(), Arc::clone(&live));
    LiveRegistration { live, _registration: Registration(backfill_id.to_string()) }
}

/// A backfill's entry in the live registry (see [`register_live_backfill`]).
pub struct LiveRegistration {
    live: Arc<LiveBackfill>,
    _registration: Registration,
}

/// Launches the runs of `job` and records their outcomes until every run ended or the
/// backfill stopped, then records its terminal status.
///
/// # Errors
/// Storage failures while recording the backfill (its record is then moved to `Failed` with
/// the error, if the store still answers).
pub async fn coordinate_backfill(
    storage: Storage,
    job: BackfillJob,
    runs: Arc<dyn BackfillRuns>,
    registration: LiveRegistration,
) -> Result<BackfillOutcome> {
    let backfill_id = job.backfill_id.clone();
    // Before the marker is read, so that a request stored meanwhile is learned from the feed.
    storage.watch_cancellations().await?;
    let mut coordinator = Coordinator::new(storage.clone(), job, registration);
    let watcher = coordinator.watch_cancel_marker();
    let driven = coordinator.drive(Arc::clone(&runs)).await;
    // Awaited, so that its storage handle is gone when this returns.
    watcher.abort();
    let _ = watcher.await;
    let outcome = coordinator.finish(runs.as_ref(), driven.as_ref().err().map(ToString::to_string)).await;
    driven?;
    outcome.inspect_err(|err| tracing::error!(backfill_id, error = %err, "could not record a backfill's end"))
}

/// Adds a backfill run that ended (or will never start) to `progress`: its partitions `keys`
/// are completed when it succeeded, except those its steps marked failed
/// (`failed_partitions`); canceled when it was canceled; failed otherwise.
pub fn tally_run(progress: &mut BackfillProgress, status: RunStatus, failed_partitions: &[String], keys: &[String]) {
    match status {
        RunStatus::Success => {
            let marked: HashSet<&str> = failed_partitions.iter().map(String::as_str).collect();
            for key in keys {
                if marked.contains(key.as_str()) {
                    progress.failed += 1;
                    progress.failed_keys.push(key.clone());
                } else {
                    progress.completed += 1;
                }
            }
        }
        RunStatus::Canceled => {
            progress.canceled += keys.len() as u64;
            progress.canceled_keys.extend(keys.iter().cloned());
        }
        _ => {
            progress.failed += keys.len() as u64;
            progress.failed_keys.extend(keys.iter().cloned());
        }
    }
}

/// How a backfill ends: failed when it errored, canceled when it was cancelled, failed when a
/// partition failed, completed otherwise.
pub fn terminal_state(errored: bool, cancelled: bool, failed_partitions: u64) -> BackfillState {
    if errored {
        BackfillState::Failed
    } else if cancelled {
        BackfillState::Canceled
    } else if failed_partitions > 0 {
        BackfillState::Failed
    } else {
        BackfillState::Completed
    }
}

struct Coordinator {
    storage: Storage,
    job: BackfillJob,
    live: Arc<LiveBackfill>,
    _registration: Registration,
    /// Not yet written to the record.
    pending: BackfillProgress,
    last_write: Instant,
    /// Everything recorded so far.
    totals: BackfillProgress,
    /// Runs executing, by run index.
    running: HashMap<usize, String>,
    /// Runs that ended (or will never start), by run index.
    settled: HashSet<usize>,
    /// `failure_policy="stop_on_failure"` tripped.
    stopped_by_failure: bool,
}

impl Coordinator {
    fn new(storage: Storage, job: BackfillJob, registration: LiveRegistration) -> Self {
        let LiveRegistration { live, _registration } = registration;
        Coordinator {
            storage,
            job,
            live,
            _registration,
            pending: BackfillProgress::default(),
            last_write: Instant::now(),
            totals: BackfillProgress::default(),
            running: HashMap::new(),
            settled: HashSet::new(),
            stopped_by_failure: false,
        }
    }

    fn cancelled(&self) -> bool {
        self.live.cancelled.load(Ordering::SeqCst)
    }

    /// Cancels the backfill once its record's cancel marker is set, by any process: read once,
    /// then learned from the change feed.
    fn watch_cancel_marker(&self) -> tokio::task::JoinHandle<()> {
        let (storage, live, backfill_id) = (self.storage.clone(), Arc::clone(&self.live), self.job.backfill_id.clone());
        let mut requests = storage.cancellation_requests();
        tokio::spawn(async move {
            match storage.backfill_cancel_requested(&backfill_id).await {
                Ok(true) => return live.cancel(),
                Ok(false) => {}
                Err(err) => tracing::warn!(backfill_id, error = %err, "reading a backfill's cancel marker failed"),
            }
            loop {
                if storage.is_backfill_cancel_seen(&backfill_id) {
                    return live.cancel();
                }
                if requests.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    async fn drive(&mut self, runs: Arc<dyn BackfillRuns>) -> Result<()> {
        let plan = Arc::new(self.job.plan.clone());
        let concurrency = self.job.max_concurrency.max(1);
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0;
        let mut cancel_sent = false;
        let live = Arc::clone(&self.live);
        loop {
            while !self.cancelled()
                && !self.stopped_by_failure
                && in_flight.len() < concurrency
                && next < self.job.num_runs
            {
                let index = next;
                next += 1;
                let source = Arc::clone(&runs);
                let (runner, options) = tokio::task::spawn_blocking(move || source.prepare(index))
                    .await
                    .map_err(|err| Error::BackfillRun(format!("preparing run {index} panicked: {err}")))?
                    .map_err(|why| Error::BackfillRun(format!("cannot prepare run {index}: {why}")))?;
                let run_id = options.run_id.clone();
                self.running.insert(index, run_id.clone());
                self.pending.run_ids.push(run_id);
                let (storage, plan) = (self.storage.clone(), Arc::clone(&plan));
                in_flight.push(async move { (index, execute_run(&storage, &plan, runner, options).await) });
                self.write_progress(false).await?;
            }
            if self.cancelled() && !cancel_sent {
                cancel_sent = true;
                for run_id in self.running.values() {
                    self.storage.request_cancellation(run_id).await?;
                }
            }
            if in_flight.is_empty() {
                break;
            }
            // Pending progress (a launched run's id, say) is written at most one interval late,
            // even while every run in flight blocks.
            let progress_due = tokio::time::Instant::from_std(self.last_write + PROGRESS_INTERVAL);
            tokio::select! {
                Some((index, outcome)) = in_flight.next() => self.run_ended(index, outcome?, &runs.run_keys(index)),
                () = live.wake.notified() => {}
                () = tokio::time::sleep_until(progress_due), if !self.pending.is_empty() => {}
            }
            self.write_progress(false).await?;
        }
        Ok(())
    }

    fn run_ended(&mut self, index: usize, outcome: RunOutcome, keys: &[String]) {
        self.running.remove(&index);
        self.settled.insert(index);
        let status =
            if self.cancelled() && outcome.status != RunStatus::Success { RunStatus::Canceled } else { outcome.status };
        tally_run(&mut self.pending, status, &outcome.failed_partitions, keys);
        if !matches!(status, RunStatus::Success | RunStatus::Canceled)
            && self.job.failure_policy == FailurePolicy::StopOnFailure
        {
            self.stopped_by_failure = true;
        }
    }

    /// Writes what changed since the last write, at most every [`PROGRESS_INTERVAL`] unless
    /// `now`.
    async fn write_progress(&mut self, now: bool) -> Result<()> {
        if self.pending.is_empty() || (!now && self.last_write.elapsed() < PROGRESS_INTERVAL) {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.storage.record_backfill_progress(&self.job.backfill_id, &pending).await?;
        self.last_write = Instant::now();
        self.totals.completed += pending.completed;
        self.totals.failed += pending.failed;
        self.totals.canceled += pending.canceled;
        self.totals.run_ids.extend(pending.run_ids);
        Ok(())
    }

    /// Counts every run that never finished as canceled and records the terminal status.
    async fn finish(&mut self, runs: &dyn BackfillRuns, error: Option<String>) -> Result<BackfillOutcome> {
        for index in (0..self.job.num_runs).filter(|index| !self.settled.contains(index)) {
            let keys = runs.run_keys(index);
            self.pending.canceled += keys.len() as u64;
            self.pending.canceled_keys.extend(keys);
        }
        self.write_progress(true).await?;
        let status = terminal_state(error.is_some(), self.cancelled(), self.totals.failed);
        self.storage.set_backfill_state(&self.job.backfill_id, status, error.as_deref()).await?;
        Ok(BackfillOutcome {
            status,
            completed: self.totals.completed,
            failed: self.totals.failed,
            canceled: self.totals.canceled,
            run_ids: self.totals.run_ids.clone(),
        })
    }
}
