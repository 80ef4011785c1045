//! Daemon-executed backfills. A schedule's or sensor's `BackfillRequest` is stored
//! `requested`; this loop claims it (one daemon of the store wins), has the code location plan
//! its runs, and submits them all at once, `Queued`, launched by the backfill, with its tags and
//! priority [`rivers_core::BACKFILL_PRIORITY`] unless `rivers/priority` says otherwise. The run queue admits
//! them, at most `max_concurrency` of one backfill at once; without a run queue this loop
//! launches them itself, up to that number. Their outcomes are followed on the change feed and
//! counted on the backfill's record until the last run ends.
//!
//! A restarted daemon recounts the backfills it followed from their runs, launches again the
//! runs its predecessor had launched but no executor started, and goes on. A claimed backfill
//! whose daemon died before submitting goes back to `requested` after
//! [`rivers_storage::BACKFILL_CLAIM_GRACE`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures::FutureExt;
use rivers_core::{
    BACKFILL_PRIORITY, BackfillState, FailurePolicy, LaunchedBy, RunBackendKind, RunStatus, run_priority,
};
use rivers_engine::{tally_run, terminal_state};
use rivers_storage::{BACKFILL_CLAIM_GRACE, BackfillProgress, BackfillRecord, Change, FeedEntry, NewRun, QueuedRun};

use crate::daemon::{Context, launch, next_entry};

/// How often requested backfills are looked for when nothing announced one.
const POLL: Duration = Duration::from_secs(1);

/// How often stalled claims are requeued, and followed runs re-read whole (in case the feed
/// dropped a change).
const RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Requested backfills claimed per pass.
const CLAIMS_PER_PASS: usize = 16;

/// Feed entries applied together before the counters are written.
const ENTRIES_PER_WRITE: usize = 256;

/// Runs read per statement when a backfill's runs are recounted.
const RECOUNT_CHUNK: usize = 1_000;

/// A backfill this daemon follows.
struct Followed {
    failure_policy: FailurePolicy,
    max_concurrency: usize,
    /// The queue priority its runs were submitted with.
    priority: i64,
    /// Its runs in plan order.
    run_ids: Vec<String>,
    /// Each run's partitions (display keys), by run index.
    keys: Vec<Vec<String>>,
    /// Runs that have not ended, with their index.
    open: HashMap<String, usize>,
    /// Without a run queue: queued runs this loop launches, in plan order.
    waiting: VecDeque<usize>,
    /// Without a run queue: runs this loop launched that have not ended.
    in_flight: HashSet<usize>,
    /// Outcomes not yet written to the record.
    pending: BackfillProgress,
    /// Partitions failed, as written to the record.
    failed: u64,
    /// Some process asked the backfill to stop.
    cancelled: bool,
    /// `failure_policy="stop_on_failure"` tripped.
    stopped_by_failure: bool,
    /// Its queued runs were canceled.
    queue_emptied: bool,
    /// Its admitted runs were asked to stop.
    runs_cancelled: bool,
}

impl Followed {
    fn new(record: &BackfillRecord, priority: i64, run_ids: Vec<String>, keys: Vec<Vec<String>>) -> Self {
        Followed {
            failure_policy: record.failure_policy,
            max_concurrency: usize::try_from(record.max_concurrency).unwrap_or(usize::MAX).max(1),
            priority,
            open: run_ids.iter().enumerate().map(|(index, run_id)| (run_id.clone(), index)).collect(),
            waiting: VecDeque::new(),
            in_flight: HashSet::new(),
            run_ids,
            keys,
            pending: BackfillProgress::default(),
            failed: record.failed,
            cancelled: record.cancel_requested,
            stopped_by_failure: false,
            queue_emptied: false,
            runs_cancelled: false,
        }
    }

    /// Counts a run that ended; a run already counted is ignored.
    fn settle(&mut self, run_id: &str, status: RunStatus, failed_partitions: &[String]) {
        let Some(index) = self.open.remove(run_id) else { return };
        self.in_flight.remove(&index);
        let status = if self.cancelled && status != RunStatus::Success { RunStatus::Canceled } else { status };
        tally_run(&mut self.pending, status, failed_partitions, &self.keys[index]);
        if !matches!(status, RunStatus::Success | RunStatus::Canceled)
            && self.failure_policy == FailurePolicy::StopOnFailure
        {
            self.stopped_by_failure = true;
        }
    }

    /// Re-reads the runs that have not ended and counts those that did. Returns the runs still
    /// open, by status.
    async fn recount(&mut self, context: &Context) -> rivers_storage::Result<HashMap<String, RunStatus>> {
        let open: Vec<String> = self.open.keys().cloned().collect();
        let mut statuses = HashMap::new();
        for chunk in open.chunks(RECOUNT_CHUNK) {
            for run in context.storage.run_endings(chunk).await? {
                if run.status.is_terminal() {
                    self.settle(&run.run_id, run.status, &run.failed_partitions);
                } else {
                    statuses.insert(run.run_id, run.status);
                }
            }
        }
        Ok(statuses)
    }

    /// Stops the backfill's remaining runs once it was cancelled (queued runs are canceled,
    /// admitted ones asked to stop) or its failure policy tripped (queued runs are canceled,
    /// admitted ones finish); then, without a run queue, launches queued runs up to
    /// `max_concurrency`.
    async fn advance(&mut self, context: &Context) -> rivers_storage::Result<()> {
        let storage = &context.storage;
        if (self.cancelled || self.stopped_by_failure) && !self.queue_emptied {
            self.queue_emptied = true;
            self.waiting.clear();
            for run_id in self.open.keys() {
                storage.cancel_queued_run(run_id).await?;
            }
        }
        if self.cancelled && !self.runs_cancelled {
            self.runs_cancelled = true;
            for run_id in self.open.keys() {
                storage.request_cancellation(run_id).await?;
            }
        }
        if context.queue.is_some() {
            return Ok(());
        }
        while self.in_flight.len() < self.max_concurrency
            && let Some(index) = self.waiting.pop_front()
        {
            let run_id = &self.run_ids[index];
            if storage.dequeue_run(run_id, self.priority).await?
                && let Some(run) = storage.get_run(run_id).await?
            {
                self.in_flight.insert(index);
                launch(context, run).await;
            }
        }
        Ok(())
    }

    /// Writes the outcomes counted since the last write.
    async fn write(&mut self, context: &Context, backfill_id: &str) {
        if self.pending.is_empty() {
            return;
        }
        match context.storage.record_backfill_progress(backfill_id, &self.pending).await {
            Ok(()) => self.failed += std::mem::take(&mut self.pending).failed,
            Err(error) => tracing::warn!(backfill_id, %error, "recording a backfill's progress failed"),
        }
    }

    /// Records the terminal status of a backfill whose runs have all ended.
    async fn finish(&mut self, context: &Context, backfill_id: &str) {
        self.write(context, backfill_id).await;
        let status = terminal_state(false, self.cancelled, self.failed + self.pending.failed);
        if let Err(error) = context.storage.set_backfill_state(backfill_id, status, None).await {
            tracing::error!(backfill_id, %error, "recording a backfill's end failed");
        }
    }
}

/// The backfill loop of one daemon.
pub(crate) async fn run(context: Arc<Context>) {
    let Ok(location) = context.storage.code_location().for_writing(|| "backfills").map(str::to_owned) else {
        tracing::error!("backfills need a code location identity (RIVERS_CODE_LOCATION_ID); they are not run");
        return;
    };
    // Subscribed before anything is read, so that no change after the reads is missed.
    let mut feed = match context.storage.subscribe_to_runs().await {
        Ok(feed) => Some(feed),
        Err(error) => {
            tracing::warn!(%error, "the change feed cannot be read; backfill runs are re-read every pass");
            None
        }
    };
    let mut followed = resume(&context).await;
    let recheck = TimeDelta::from_std(RECHECK_INTERVAL).unwrap_or_default();
    let poll = TimeDelta::from_std(POLL).unwrap_or_default();
    let mut next_recheck = context.clock.now() + recheck;
    let mut next_poll = context.clock.now();
    let mut pick_up_now = true;
    loop {
        let now = context.clock.now();
        if now >= next_recheck || feed.is_none() {
            next_recheck = now + recheck;
            match context.storage.requeue_stalled_backfills(BACKFILL_CLAIM_GRACE).await {
                Ok(requeued) if !requeued.is_empty() => {
                    tracing::warn!(backfills = ?requeued, "requeued backfills whose daemon died before submitting runs");
                    pick_up_now = true;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "requeueing stalled backfills failed"),
            }
            for (backfill_id, backfill) in &mut followed {
                if let Err(error) = backfill.recount(&context).await {
                    tracing::warn!(backfill_id, %error, "re-reading a backfill's runs failed");
                }
            }
        }
        if pick_up_now || now >= next_poll {
            pick_up_now = false;
            next_poll = now + poll;
            pick_up(&context, &mut followed).await;
        }
        for (backfill_id, backfill) in &mut followed {
            if let Err(error) = backfill.advance(&context).await {
                tracing::warn!(backfill_id, %error, "launching or stopping a backfill's runs failed");
            }
            backfill.write(&context, backfill_id).await;
        }
        let ended: Vec<String> =
            followed.iter().filter(|(_, backfill)| backfill.open.is_empty()).map(|(id, _)| id.clone()).collect();
        for backfill_id in ended {
            if let Some(mut backfill) = followed.remove(&backfill_id) {
                backfill.finish(&context, &backfill_id).await;
            }
        }
        tokio::select! {
            keep_going = context.sleep_until(next_poll.min(next_recheck)) => {
                if !keep_going { break }
            }
            () = context.wake_backfills.notified() => pick_up_now = true,
            entry = next_entry(&mut feed) => {
                let Some(entry) = entry else { feed = None; continue };
                pick_up_now |= apply(&entry, &mut followed, &location);
                // Entries already read are applied together, so that a burst of ended runs is
                // one write.
                for _ in 0..ENTRIES_PER_WRITE {
                    let Some(Some(entry)) = next_entry(&mut feed).now_or_never() else { break };
                    pick_up_now |= apply(&entry, &mut followed, &location);
                }
            }
        }
    }
    for (backfill_id, backfill) in &mut followed {
        backfill.write(&context, backfill_id).await;
    }
}

/// Applies one feed entry to the followed backfills; `true` when it shows a backfill of
/// `location` requested.
fn apply(entry: &FeedEntry, followed: &mut HashMap<String, Followed>, location: &str) -> bool {
    let mut requested = false;
    for change in &entry.changes {
        match change {
            Change::Run(run) if run.status.is_terminal() => {
                if let LaunchedBy::Backfill { backfill_id } = &run.launched_by
                    && let Some(backfill) = followed.get_mut(backfill_id)
                {
                    backfill.settle(&run.run_id, run.status, &run.failed_partitions);
                }
            }
            Change::Backfill(record) => match followed.get_mut(&record.backfill_id) {
                Some(backfill) => backfill.cancelled |= record.cancel_requested,
                None => {
                    requested |=
                        record.status == BackfillState::Requested && record.code_location.as_deref() == Some(location);
                }
            },
            Change::Run(_) | Change::Events(_) => {}
        }
    }
    requested
}

/// Claims this code location's requested backfills and submits their runs.
async fn pick_up(context: &Context, followed: &mut HashMap<String, Followed>) {
    let requested = match context.storage.requested_backfills(CLAIMS_PER_PASS).await {
        Ok(requested) => requested,
        Err(error) => return tracing::warn!(%error, "reading requested backfills failed"),
    };
    for record in requested {
        let backfill_id = record.backfill_id.clone();
        match context.storage.claim_backfill(&backfill_id).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::warn!(backfill_id, %error, "claiming a backfill failed");
                continue;
            }
        }
        match submit(context, &record).await {
            Ok(backfill) => {
                followed.insert(backfill_id, backfill);
            }
            Err(error) => {
                tracing::error!(backfill_id, error, "a requested backfill failed");
                if let Err(error) =
                    context.storage.set_backfill_state(&backfill_id, BackfillState::Failed, Some(&error)).await
                {
                    tracing::error!(backfill_id, %error, "recording a backfill's failure failed");
                }
            }
        }
    }
}

/// Plans a claimed backfill's runs and submits them in one transaction.
async fn submit(context: &Context, record: &BackfillRecord) -> Result<Followed, String> {
    let plan = context
        .location
        .plan_backfill(record)
        .await
        .map_err(|error| format!("planning the backfill's runs failed: {error}"))?;
    let priority = run_priority(&record.tags, BACKFILL_PRIORITY);
    let launched_by = LaunchedBy::Backfill { backfill_id: record.backfill_id.clone() };
    let mut keys = Vec::with_capacity(plan.runs.len());
    let runs: Vec<NewRun> = plan
        .runs
        .into_iter()
        .map(|run| {
            keys.push(run.keys);
            NewRun {
                run_id: uuid::Uuid::now_v7().to_string(),
                job_name: None,
                status: RunStatus::Queued,
                tags: record.tags.clone(),
                node_names: plan.node_names.clone(),
                priority,
                partition_key: serde_json::to_value(&run.partition_key).ok(),
                launched_by: launched_by.clone(),
                backend: RunBackendKind::Local,
            }
        })
        .collect();
    let run_ids: Vec<String> = runs.iter().map(|run| run.run_id.clone()).collect();
    context
        .storage
        .submit_backfill_runs(&record.backfill_id, runs)
        .await
        .map_err(|error| format!("submitting the backfill's runs failed: {error}"))?;
    let mut backfill = Followed::new(record, priority, run_ids, keys);
    if context.queue.is_some() {
        let queued_at = rivers_storage::now_ns();
        for run_id in &backfill.run_ids {
            let _ = context.queued.send(QueuedRun {
                run_id: run_id.clone(),
                priority,
                queued_at,
                tags: record.tags.clone(),
                block_reason: None,
                backfill_id: Some(record.backfill_id.clone()),
            });
        }
        context.wake_coordinator.notify_one();
    } else {
        backfill.waiting = (0..backfill.run_ids.len()).collect();
    }
    Ok(backfill)
}

/// Follows again the backfills this code location's daemon was following when it stopped: each
/// is recounted from its runs (the record's counters are replaced by what the runs add up to),
/// and its runs that were launched but never started are launched again.
async fn resume(context: &Context) -> HashMap<String, Followed> {
    let records = match context.storage.submitted_backfills_here().await {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(%error, "reading the backfills in progress failed; they are not followed");
            return HashMap::new();
        }
    };
    let mut followed = HashMap::new();
    for record in records {
        let backfill_id = record.backfill_id.clone();
        match follow_again(context, record).await {
            Ok(backfill) => {
                followed.insert(backfill_id, backfill);
            }
            Err(error) => {
                tracing::error!(backfill_id, error, "a backfill in progress cannot be followed again");
                let _ = context.storage.set_backfill_state(&backfill_id, BackfillState::Failed, Some(&error)).await;
            }
        }
    }
    followed
}

async fn follow_again(context: &Context, record: BackfillRecord) -> Result<Followed, String> {
    let plan = context
        .location
        .plan_backfill(&record)
        .await
        .map_err(|error| format!("the daemon restarted and could not plan the backfill again: {error}"))?;
    if plan.runs.len() != record.run_ids.len() {
        return Err(format!(
            "the daemon restarted and the backfill now plans {} runs where {} were submitted",
            plan.runs.len(),
            record.run_ids.len()
        ));
    }
    let keys = plan.runs.into_iter().map(|run| run.keys).collect();
    let priority = run_priority(&record.tags, BACKFILL_PRIORITY);
    let mut backfill = Followed { failed: 0, ..Followed::new(&record, priority, record.run_ids.clone(), keys) };
    let failure = |error: rivers_storage::Error| format!("re-reading the backfill's runs failed: {error}");
    let open = backfill.recount(context).await.map_err(failure)?;
    let totals = std::mem::take(&mut backfill.pending);
    context.storage.set_backfill_totals(&record.backfill_id, &totals).await.map_err(failure)?;
    backfill.failed = totals.failed;
    for (index, run_id) in backfill.run_ids.iter().enumerate() {
        match open.get(run_id) {
            Some(RunStatus::Queued) if context.queue.is_none() => backfill.waiting.push_back(index),
            Some(RunStatus::NotStarted) => {
                if context.queue.is_none() {
                    backfill.in_flight.insert(index);
                }
                if let Some(run) = context.storage.get_run(run_id).await.map_err(failure)? {
                    launch(context, run).await;
                }
            }
            Some(RunStatus::Running) if context.queue.is_none() => {
                backfill.in_flight.insert(index);
            }
            _ => {}
        }
    }
    Ok(backfill)
}
