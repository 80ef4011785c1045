//! The daemon of one code location: a task per schedule and per sensor, the run-queue
//! coordinator, run monitoring, runtime statuses, and the tick writer they share.
//! `start` spawns them and returns; `stop` signals them and returns once they have ended and
//! the pending ticks are written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rivers_core::{AutomationStatus, AutomationType, RunBackendKind};
use rivers_engine::Liveness;
use rivers_storage::{QueuedRun, RunRecord, Storage, StoredTick};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::location::{CodeLocation, RunLauncher};
use crate::queue::RunQueueConfig;
use crate::specs::Automations;
use crate::ticks::{TickWriter, tick_batch_size};

/// How often runtime statuses (pause / resume) are read from storage.
const STATUS_REFRESH: Duration = Duration::from_secs(1);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Ticks kept per automation; `None` keeps all.
    pub max_ticks_retained: Option<usize>,
    /// The run queue; `None` launches requested runs at once.
    pub run_queue: Option<RunQueueConfig>,
    /// Ticks written together; `None` reads `RIVERS_TICK_BATCH_SIZE` or the storage default.
    pub tick_batch_size: Option<usize>,
    /// Time between two automation-condition passes.
    pub condition_eval_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            max_ticks_retained: None,
            run_queue: None,
            tick_batch_size: None,
            condition_eval_interval: DEFAULT_CONDITION_EVAL_INTERVAL,
        }
    }
}

/// The default `condition_eval_interval`.
pub const DEFAULT_CONDITION_EVAL_INTERVAL: Duration = Duration::from_secs(30);

type Statuses = HashMap<(AutomationType, String), AutomationStatus>;

/// What every task of the daemon shares.
pub(crate) struct Context {
    pub(crate) storage: Storage,
    pub(crate) location: Arc<dyn CodeLocation>,
    pub(crate) launcher: Arc<dyn RunLauncher>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) automations: Automations,
    pub(crate) queue: Option<RunQueueConfig>,
    pub(crate) wake_coordinator: Notify,
    /// Wakes the backfill loop: this daemon requested a backfill.
    pub(crate) wake_backfills: Notify,
    /// Runs this daemon queued, for the coordinator's in-memory queue.
    pub(crate) queued: mpsc::UnboundedSender<QueuedRun>,
    ticks: TickWriter,
    statuses: watch::Sender<Statuses>,
    shutdown: watch::Receiver<bool>,
    /// Identifies this daemon as the holder of the admission lock.
    id: String,
}

impl Context {
    /// Identifies this daemon, as the holder of the admission lock.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Sleeps until `deadline`; `false` when the daemon stops first.
    pub(crate) async fn sleep_until(&self, deadline: DateTime<Utc>) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            () = self.clock.sleep_until(deadline) => !*self.shutdown.borrow(),
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        }
    }

    /// Whether the daemon ticks this automation now: its runtime status, else its default.
    pub(crate) fn is_running(&self, automation_type: AutomationType, name: &str, default: AutomationStatus) -> bool {
        self.statuses.borrow().get(&(automation_type, name.to_owned())).copied().unwrap_or(default)
            == AutomationStatus::Running
    }

    /// Waits until this automation is running; `false` when the daemon stops first.
    pub(crate) async fn wait_until_running(
        &self,
        automation_type: AutomationType,
        name: &str,
        default: AutomationStatus,
    ) -> bool {
        let mut statuses = self.statuses.subscribe();
        let mut shutdown = self.shutdown.clone();
        let key = (automation_type, name.to_owned());
        tokio::select! {
            running = statuses.wait_for(|all| all.get(&key).copied().unwrap_or(default) == AutomationStatus::Running) => {
                running.is_ok() && !*self.shutdown.borrow()
            }
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        }
    }

    /// Queues a tick for the next batch.
    pub(crate) fn record_tick(&self, tick: StoredTick) {
        self.ticks.write(tick);
    }

    /// Records the tick of a schedule or sensor evaluation: one that moved the sensor's cursor
    /// or created runs or backfills is stored before the loop goes on (a daemon killed right
    /// after must not evaluate again from an older cursor), any other waits for the batch.
    pub(crate) async fn record_evaluation_tick(&self, tick: StoredTick, moved_cursor: bool) {
        if !moved_cursor && tick.run_ids.is_empty() && tick.backfill_ids.is_empty() {
            return self.record_tick(tick);
        }
        let name = tick.automation_name.clone();
        if let Err(error) = self.ticks.write_durably(tick).await {
            tracing::error!(automation = name, %error, "writing a tick failed");
        }
    }

    /// Reads the runtime statuses from storage now.
    pub(crate) async fn refresh_statuses(&self) {
        match self.storage.automation_statuses().await {
            Ok(statuses) => {
                self.statuses.send_if_modified(|current| {
                    let changed = *current != statuses;
                    *current = statuses;
                    changed
                });
            }
            Err(error) => tracing::warn!(%error, "reading schedule and sensor statuses failed"),
        }
    }
}

/// Hands an admitted run to the launcher; a run it cannot launch fails with `RunLaunchFailed`.
pub(crate) async fn launch(context: &Context, run: RunRecord) {
    let run_id = run.run_id.clone();
    if let Err(error) = context.launcher.launch(run).await {
        let message = format!("launching the run failed: {error}");
        if let Err(error) = context.storage.fail_unstarted_run(&run_id, &message).await {
            tracing::error!(run_id, %error, "recording a failed launch failed");
        }
    }
}

/// The next entry of the change feed, skipping read errors; `None` when the feed ended.
/// Without a feed, never resolves.
pub(crate) async fn next_entry(feed: &mut Option<rivers_storage::ChangeFeed>) -> Option<rivers_storage::FeedEntry> {
    match feed {
        Some(feed) => loop {
            match feed.next().await? {
                Ok(entry) => return Some(entry),
                Err(error) => tracing::warn!(%error, "reading the change feed failed"),
            }
        },
        None => std::future::pending().await,
    }
}

/// A running daemon.
pub struct Daemon {
    context: Arc<Context>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    ticks: JoinHandle<()>,
}

impl Daemon {
    /// Starts every loop on the current tokio runtime and returns at once.
    pub async fn start(
        storage: Storage,
        location: Arc<dyn CodeLocation>,
        launcher: Arc<dyn RunLauncher>,
        clock: Arc<dyn Clock>,
        automations: Automations,
        config: DaemonConfig,
    ) -> Self {
        let batch = config.tick_batch_size.unwrap_or_else(|| tick_batch_size(&storage));
        let (ticks, writer) = TickWriter::start(storage.clone(), clock.clone(), batch, config.max_ticks_retained);
        let (shutdown, stopping) = watch::channel(false);
        let (queued, submitted) = mpsc::unbounded_channel();
        let context = Arc::new(Context {
            storage,
            location,
            launcher,
            clock,
            automations,
            queue: config.run_queue,
            wake_coordinator: Notify::new(),
            wake_backfills: Notify::new(),
            queued,
            ticks,
            statuses: watch::Sender::new(Statuses::new()),
            shutdown: stopping,
            id: uuid::Uuid::now_v7().to_string(),
        });
        // The first tick of a schedule is its first cron instant after this moment.
        let started = context.clock.now();
        // Statuses are known before the first tick.
        context.refresh_statuses().await;
        let mut tasks = Vec::new();
        for spec in context.automations.schedules.clone() {
            tasks.push(tokio::spawn(crate::schedules::run_schedule(context.clone(), spec, started)));
        }
        for spec in context.automations.sensors.clone() {
            tasks.push(tokio::spawn(crate::sensors::run_sensor(context.clone(), spec)));
        }
        tasks.push(tokio::spawn(refresh_statuses(context.clone())));
        tasks.push(tokio::spawn(monitor_runs(context.clone())));
        tasks.push(tokio::spawn(crate::backfills::run(context.clone())));
        if context.queue.is_some() {
            tasks.push(tokio::spawn(crate::coordinator::run(context.clone(), submitted)));
        }
        if context.automations.conditions.has_conditions() {
            tasks.extend(crate::conditions::spawn(context.clone(), config.condition_eval_interval));
        }
        Self { context, shutdown, tasks, ticks: writer }
    }

    /// Reads runtime statuses (pause / resume) from storage now instead of at the next
    /// periodic refresh.
    pub async fn refresh_statuses(&self) {
        self.context.refresh_statuses().await;
    }

    /// Runs one coordinator pass now.
    pub async fn coordinate_now(&self) {
        self.context.wake_coordinator.notify_one();
    }

    /// Stops every loop, waits for them to end (an evaluation in progress is not waited
    /// for once its loop is told to stop), then writes the pending ticks. Runs already
    /// launched go on.
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.context.ticks.close();
        let _ = self.ticks.await;
    }
}

async fn refresh_statuses(context: Arc<Context>) {
    let step = TimeDelta::from_std(STATUS_REFRESH).unwrap_or_default();
    while context.sleep_until(context.clock.now() + step).await {
        context.refresh_statuses().await;
    }
}

/// Fails local runs whose owner stopped heart-beating (killed, out of memory, a lost node) and
/// frees their pool slots, and deletes expired pool leases (which no capacity check counts
/// anyway), every heartbeat interval.
async fn monitor_runs(context: Arc<Context>) {
    let liveness = Liveness::from_env().unwrap_or_default();
    let step = TimeDelta::from_std(liveness.interval).unwrap_or_default();
    loop {
        if let Err(error) = monitor_pass(&context.storage, liveness.dead_after).await {
            tracing::warn!(%error, "run monitoring failed");
        }
        if !context.sleep_until(context.clock.now() + step).await {
            return;
        }
    }
}

async fn monitor_pass(storage: &Storage, dead_after: Duration) -> rivers_storage::Result<()> {
    let failed = storage.fail_stale_runs(dead_after, Some(RunBackendKind::Local)).await?;
    if !failed.is_empty() {
        tracing::warn!(runs = ?failed, "failed runs whose process died");
    }
    for run_id in &failed {
        storage.free_concurrency_slots_for_run(run_id).await?;
    }
    storage.free_expired_leases().await?;
    Ok(())
}
