//! The run-queue coordinator loop. This code location's queue is held in memory, in admission
//! order: loaded once, then kept current from the storage change feed (runs queued, canceled or
//! admitted by any process) and from this daemon's own submissions, and reloaded whole every
//! [`RESYNC_INTERVAL`] so that nothing is lost. A pass therefore reads only the store's
//! active runs (few: they are bounded by the limits) under the admission lock, decides in
//! memory, and writes only what changed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rivers_core::{LaunchedBy, RunStatus};
use rivers_storage::{Change, QueuedRun, RunRecord};
use tokio::sync::mpsc;

use crate::daemon::{Context, launch, next_entry};
use crate::queue::{RunQueueConfig, admit, unstarted_past_timeout};

/// How long a pass may hold the store-wide admission lock at most.
const ADMISSION_LEASE: Duration = Duration::from_secs(10);

/// How often the in-memory queue is reloaded whole from storage.
const RESYNC_INTERVAL: Duration = Duration::from_secs(60);

type Order = (Reverse<i64>, i64, String);

/// This code location's queued runs in admission order: priority descending, then queue time.
#[derive(Debug, Default)]
pub(crate) struct QueueView {
    runs: BTreeMap<Order, QueuedRun>,
    order: HashMap<String, Order>,
}

impl QueueView {
    fn load(runs: Vec<QueuedRun>) -> Self {
        let mut view = Self::default();
        for run in runs {
            view.insert(run);
        }
        view
    }

    fn insert(&mut self, run: QueuedRun) {
        self.remove(&run.run_id);
        let key = (Reverse(run.priority), run.queued_at, run.run_id.clone());
        self.order.insert(run.run_id.clone(), key.clone());
        self.runs.insert(key, run);
    }

    fn remove(&mut self, run_id: &str) {
        if let Some(key) = self.order.remove(run_id) {
            self.runs.remove(&key);
        }
    }

    /// Follows a change of a run record: a queued run of `location` is (re)inserted, any
    /// other status removes it.
    fn apply(&mut self, run: &RunRecord, location: &str) {
        if run.status == RunStatus::Queued && run.code_location.as_deref() == Some(location) {
            self.insert(QueuedRun {
                run_id: run.run_id.clone(),
                priority: run.priority,
                queued_at: run.start_time,
                tags: run.tags.clone(),
                block_reason: run.block_reason.clone(),
                backfill_id: match &run.launched_by {
                    LaunchedBy::Backfill { backfill_id } => Some(backfill_id.clone()),
                    _ => None,
                },
            });
        } else {
            self.remove(&run.run_id);
        }
    }

    fn set_block_reason(&mut self, run_id: &str, reason: Option<String>) {
        if let Some(run) = self.order.get(run_id).and_then(|key| self.runs.get_mut(key)) {
            run.block_reason = reason;
        }
    }

    fn ordered(&self) -> impl Iterator<Item = &QueuedRun> {
        self.runs.values()
    }
}

/// The coordinator loop: a pass every `dequeue_interval`, when this daemon queued runs, and
/// when the feed shows a run reach a terminal status.
pub(crate) async fn run(context: Arc<Context>, mut submitted: mpsc::UnboundedReceiver<QueuedRun>) {
    let Some(config) = context.queue.clone() else { return };
    let Ok(location) = context.storage.code_location().for_writing(|| "the run queue").map(str::to_owned) else {
        tracing::error!("the run queue needs a code location identity (RIVERS_CODE_LOCATION_ID); it is not run");
        return;
    };
    let mut feed = match context.storage.subscribe_to_runs().await {
        Ok(feed) => Some(feed),
        Err(error) => {
            tracing::warn!(%error, "the change feed cannot be read; the run queue reloads on every pass");
            None
        }
    };
    let step = TimeDelta::from_std(config.dequeue_interval).unwrap_or_default();
    let resync = TimeDelta::from_std(RESYNC_INTERVAL).unwrap_or_default();
    let mut view: Option<QueueView> = None;
    let mut backfill_limits = HashMap::new();
    let mut next_resync = context.clock.now();
    loop {
        if feed.is_none() || context.clock.now() >= next_resync {
            view = None;
            backfill_limits.clear();
            next_resync = context.clock.now() + resync;
        }
        let current = match &mut view {
            Some(view) => view,
            None => match context.storage.queued_runs_here().await {
                Ok(runs) => view.insert(QueueView::load(runs)),
                Err(error) => {
                    tracing::warn!(%error, "reading the run queue failed");
                    if !context.sleep_until(context.clock.now() + step).await {
                        return;
                    }
                    continue;
                }
            },
        };
        while let Ok(run) = submitted.try_recv() {
            current.insert(run);
        }
        if let Err(error) = pass(&context, &config, &location, current, &mut backfill_limits).await {
            tracing::warn!(%error, "a run-queue pass failed");
        }
        // Wait for the timer, a submission, or a run change; changes read meanwhile are
        // applied before the next pass.
        loop {
            tokio::select! {
                keep_going = context.sleep_until(context.clock.now() + step) => {
                    if !keep_going { return }
                    break;
                }
                () = context.wake_coordinator.notified() => break,
                entry = next_entry(&mut feed) => {
                    let Some(entry) = entry else { feed = None; break };
                    let mut ended = false;
                    for change in &entry.changes {
                        if let Change::Run(run) = change {
                            ended |= run.status.is_terminal();
                            if let Some(view) = &mut view {
                                view.apply(run, &location);
                            }
                        }
                    }
                    if ended {
                        break;
                    }
                }
            }
        }
    }
}

/// One pass under the admission lock: fail admitted runs past `start_timeout`, admit what
/// the limits allow, record changed block reasons, then launch the admitted runs.
/// `backfill_limits` caches the `max_concurrency` of the backfills whose runs are queued.
async fn pass(
    context: &Context,
    config: &RunQueueConfig,
    location: &str,
    view: &mut QueueView,
    backfill_limits: &mut HashMap<String, usize>,
) -> rivers_storage::Result<()> {
    let storage = &context.storage;
    let unknown: HashSet<String> = view
        .ordered()
        .filter_map(|run| run.backfill_id.as_ref())
        .filter(|backfill_id| !backfill_limits.contains_key(*backfill_id))
        .cloned()
        .collect();
    for backfill_id in unknown {
        let limit = storage.backfill_max_concurrency(&backfill_id).await?.unwrap_or(u32::MAX);
        backfill_limits.insert(backfill_id, usize::try_from(limit).unwrap_or(usize::MAX).max(1));
    }
    storage.free_expired_leases().await?;
    if !storage.lock_run_queue(context.id(), ADMISSION_LEASE).await? {
        return Ok(());
    }
    let admitted = async {
        let active = storage.active_runs().await?;
        let now = context.clock.now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        for run in unstarted_past_timeout(&active, location, config.start_timeout, now) {
            let message = format!(
                "no executor started the run within start_timeout ({} s) after it left the queue",
                config.start_timeout.as_secs()
            );
            storage.fail_unstarted_run(&run.run_id, &message).await?;
        }
        let decision = admit(config, view.ordered(), &active, backfill_limits);
        storage.set_block_reasons(&decision.block_reasons).await?;
        for (run_id, reason) in decision.block_reasons {
            view.set_block_reason(&run_id, reason);
        }
        let mut admitted = Vec::new();
        for (run_id, priority) in decision.admit {
            // Admitted, or canceled or admitted elsewhere meanwhile: out of the queue either way.
            view.remove(&run_id);
            if storage.dequeue_run(&run_id, priority).await? {
                admitted.push(run_id);
            }
        }
        Ok::<_, rivers_storage::Error>(admitted)
    }
    .await;
    storage.unlock_run_queue(context.id()).await?;
    for run_id in admitted? {
        if let Some(run) = storage.get_run(&run_id).await? {
            launch(context, run).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: &str, priority: i64, at: i64) -> QueuedRun {
        QueuedRun { run_id: id.into(), priority, queued_at: at, tags: vec![], block_reason: None, backfill_id: None }
    }

    #[test]
    fn the_view_orders_by_priority_then_queue_time_and_follows_changes() {
        let mut view = QueueView::load(vec![queued("late", 0, 3), queued("urgent", 5, 9), queued("early", 0, 1)]);
        let ids = |view: &QueueView| view.ordered().map(|r| r.run_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&view), ["urgent", "early", "late"]);
        view.insert(queued("early", 9, 1));
        assert_eq!(ids(&view), ["early", "urgent", "late"], "a changed priority moves the run");
        view.remove("urgent");
        assert_eq!(ids(&view), ["early", "late"]);
    }
}
