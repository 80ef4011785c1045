//! Daemon-executed backfills in pure Rust: a requested backfill stored the way a code location
//! stores one, a fake location that plans one run per key, a launcher that only records
//! launches (each test plays the executor by moving the runs through storage), memory storage
//! and a virtual clock. Tests wait on launches and on the change feed, never on time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use rivers_core::partitions::{BackfillStrategy, BackfillTarget, PartitionKey};
use rivers_core::{BACKFILL_PRIORITY, BackfillState, FailurePolicy, LaunchedBy, RunStatus};
use rivers_daemon::{
    Automations, BackfillRequest, BackfillRunPlan, CodeLocation, Daemon, DaemonConfig, Evaluation, EvaluationError,
    PlannedRun, RunQueueConfig, SensorContext, VirtualClock,
};
use rivers_storage::{BackfillRecord, Change, ChangeFeed, RunRecord, Storage};
use tokio::sync::mpsc;

mod support;
use support::RecordingLauncher;

/// Plans one run per requested key; refuses a backfill whose selection names `broken`.
struct PlanningLocation;

impl CodeLocation for PlanningLocation {
    fn evaluate_schedule(&self, _: &str, _: DateTime<Tz>) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        unreachable!("no schedules here")
    }

    fn evaluate_sensor(&self, _: &str, _: SensorContext) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        unreachable!("no sensors here")
    }

    fn submit_backfill(
        &self,
        _: BackfillRequest,
        _: LaunchedBy,
    ) -> BoxFuture<'static, Result<String, EvaluationError>> {
        unreachable!("backfills are stored by the tests")
    }

    fn plan_backfill(&self, backfill: &BackfillRecord) -> BoxFuture<'static, Result<BackfillRunPlan, EvaluationError>> {
        let selection = backfill.selection.clone().unwrap_or_default();
        let planned = match &backfill.target {
            _ if selection.iter().any(|name| name == "broken") => {
                Err(EvaluationError("asset 'broken' is not partitioned".into()))
            }
            Some(BackfillTarget::Keys(keys)) => Ok(BackfillRunPlan {
                node_names: selection,
                runs: keys
                    .iter()
                    .map(|key| PlannedRun { partition_key: key.clone(), keys: vec![key.to_string()] })
                    .collect(),
            }),
            other => Err(EvaluationError(format!("unexpected target {other:?}"))),
        };
        Box::pin(async move { planned })
    }
}

struct Harness {
    storage: Storage,
    launched: mpsc::UnboundedReceiver<RunRecord>,
    launcher: Arc<RecordingLauncher>,
    feed: ChangeFeed,
}

async fn harness() -> Harness {
    let storage = Storage::memory().await.unwrap();
    let feed = storage.subscribe().await.unwrap();
    let (launcher, launched) = RecordingLauncher::new();
    Harness { storage, launched, launcher: Arc::new(launcher), feed }
}

fn queue() -> Option<RunQueueConfig> {
    Some(RunQueueConfig { max_concurrent_runs: Some(10), ..RunQueueConfig::default() })
}

impl Harness {
    async fn start(&self, run_queue: Option<RunQueueConfig>) -> Daemon {
        let clock =
            VirtualClock::new(DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap().with_timezone(&Utc));
        Daemon::start(
            self.storage.clone(),
            Arc::new(PlanningLocation),
            self.launcher.clone(),
            Arc::new(clock),
            Automations::default(),
            DaemonConfig { run_queue, ..DaemonConfig::default() },
        )
        .await
    }

    /// Stores a requested backfill over `keys` of asset `selection`, as a sensor's request.
    async fn request(&self, id: &str, selection: &str, keys: &[&str], configure: impl FnOnce(&mut BackfillRecord)) {
        let mut record = BackfillRecord {
            selection: Some(vec![selection.into()]),
            target: Some(BackfillTarget::Keys(keys.iter().map(|key| PartitionKey::single(*key)).collect())),
            num_partitions: keys.len() as u64,
            num_runs: keys.len() as u64,
            ..BackfillRecord::new(
                id,
                BackfillState::Requested,
                BackfillStrategy::MultiRun,
                FailurePolicy::Continue,
                LaunchedBy::Sensor { name: "repair".into() },
            )
        };
        configure(&mut record);
        self.storage.create_backfill(&record).await.unwrap();
    }

    async fn next_launch(&mut self) -> RunRecord {
        tokio::time::timeout(Duration::from_secs(20), self.launched.recv()).await.expect("a launch").unwrap()
    }

    /// Plays the executor: the run starts and ends with `status`, its steps having marked
    /// `failed_partitions`.
    async fn end_run(&self, run_id: &str, status: RunStatus, failed_partitions: &[&str]) {
        assert!(self.storage.transition_run(run_id, RunStatus::Running).await.unwrap(), "{run_id} starts");
        if !failed_partitions.is_empty() {
            let keys: Vec<String> = failed_partitions.iter().map(|key| (*key).to_owned()).collect();
            self.storage.record_failed_partitions(run_id, &keys).await.unwrap();
        }
        self.storage.set_run_outcome(run_id, status, 1, 1, None).await.unwrap();
    }

    /// Waits until the feed shows backfill `id` ended, and returns its record.
    async fn ended(&mut self, id: &str) -> BackfillRecord {
        let wait = async {
            loop {
                let entry = self.feed.next().await.expect("the feed is open").unwrap();
                for change in entry.changes {
                    if let Change::Backfill(record) = change
                        && record.backfill_id == id
                        && record.status.is_terminal()
                    {
                        return self.storage.get_backfill(id).await.unwrap().unwrap();
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the backfill ends")
    }

    async fn run(&self, run_id: &str) -> RunRecord {
        self.storage.get_run(run_id).await.unwrap().unwrap()
    }
}

#[tokio::test]
async fn a_requested_backfill_runs_through_the_queue_at_backfill_priority_and_max_concurrency() {
    let mut h = harness().await;
    h.request("bf", "daily", &["2026-01-01", "2026-01-02", "2026-01-03"], |record| {
        record.max_concurrency = 2;
        record.tags = vec![("team".into(), "core".into())];
    })
    .await;
    let daemon = h.start(queue()).await;
    let first = h.next_launch().await;
    let second = h.next_launch().await;
    for run in [&first, &second] {
        assert_eq!(run.launched_by, LaunchedBy::Backfill { backfill_id: "bf".into() });
        assert_eq!(run.priority, BACKFILL_PRIORITY);
        assert_eq!(run.tags, [("team".to_owned(), "core".to_owned())]);
        assert_eq!(run.node_names, ["daily"]);
        assert_eq!(run.job_name, None);
        assert_eq!(run.status, RunStatus::NotStarted, "admitted by the queue");
    }
    let record = h.storage.get_backfill("bf").await.unwrap().unwrap();
    assert_eq!(record.status, BackfillState::InProgress);
    assert_eq!(record.run_ids.len(), 3, "every run is submitted at once");
    let third = h.run(&record.run_ids[2]).await;
    assert_eq!(third.status, RunStatus::Queued, "max_concurrency holds the third run in the queue");
    assert!(third.block_reason.as_deref().unwrap_or_default().contains("max_concurrency"), "{third:?}");
    assert_eq!(third.partition_key, Some(serde_json::to_value(PartitionKey::single("2026-01-03")).unwrap()));

    h.end_run(&first.run_id, RunStatus::Success, &[]).await;
    let third = h.next_launch().await;
    assert_eq!(third.run_id, record.run_ids[2], "admitted once a run of the backfill ended");
    h.end_run(&second.run_id, RunStatus::Success, &["2026-01-02"]).await;
    h.end_run(&third.run_id, RunStatus::Success, &[]).await;
    let ended = h.ended("bf").await;
    daemon.stop().await;
    assert_eq!(ended.status, BackfillState::Failed, "a partition marked failed fails the backfill");
    assert_eq!((ended.completed, ended.failed, ended.canceled), (2, 1, 0));
    assert_eq!(ended.failed_keys, ["2026-01-02"]);
}

#[tokio::test]
async fn the_priority_tag_overrides_the_backfill_priority() {
    let mut h = harness().await;
    h.request("urgent", "daily", &["2026-01-01"], |record| {
        record.tags = vec![("rivers/priority".into(), "5".into())];
    })
    .await;
    let daemon = h.start(queue()).await;
    let run = h.next_launch().await;
    assert_eq!(run.priority, 5);
    h.end_run(&run.run_id, RunStatus::Success, &[]).await;
    assert_eq!(h.ended("urgent").await.status, BackfillState::Completed);
    daemon.stop().await;
}

#[tokio::test]
async fn without_a_run_queue_the_daemon_launches_up_to_max_concurrency_and_a_cancel_stops_the_rest() {
    let mut h = harness().await;
    h.request("bf", "daily", &["a", "b", "c"], |record| record.max_concurrency = 1).await;
    let daemon = h.start(None).await;
    let first = h.next_launch().await;
    h.end_run(&first.run_id, RunStatus::Success, &[]).await;
    let second = h.next_launch().await;
    let record = h.storage.get_backfill("bf").await.unwrap().unwrap();
    assert_eq!(h.run(&record.run_ids[2]).await.status, RunStatus::Queued, "waits for its turn");
    assert!(h.storage.transition_run(&second.run_id, RunStatus::Running).await.unwrap());
    assert!(h.storage.request_backfill_cancel("bf").await.unwrap());
    // The running run is asked to stop; it ends canceled, and the queued one never starts.
    let ask = async {
        while !h.run(&second.run_id).await.cancel_requested {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), ask).await.expect("the running run is asked to stop");
    h.storage.set_run_outcome(&second.run_id, RunStatus::Canceled, 0, 1, None).await.unwrap();
    let ended = h.ended("bf").await;
    daemon.stop().await;
    assert_eq!(ended.status, BackfillState::Canceled);
    assert_eq!((ended.completed, ended.failed, ended.canceled), (1, 0, 2));
    assert_eq!(h.run(&record.run_ids[2]).await.status, RunStatus::Canceled);
    assert!(h.launched.try_recv().is_err(), "the third run was never launched");
}

#[tokio::test]
async fn stop_on_failure_cancels_the_queued_runs_and_fails_the_backfill() {
    let mut h = harness().await;
    h.request("bf", "daily", &["a", "b", "c"], |record| {
        record.failure_policy = FailurePolicy::StopOnFailure;
    })
    .await;
    let daemon = h.start(queue()).await;
    let first = h.next_launch().await;
    h.end_run(&first.run_id, RunStatus::Failure, &[]).await;
    let ended = h.ended("bf").await;
    daemon.stop().await;
    assert_eq!(ended.status, BackfillState::Failed);
    assert_eq!((ended.completed, ended.failed, ended.canceled), (0, 1, 2));
    assert_eq!(ended.canceled_keys.len(), 2);
}

#[tokio::test]
async fn a_backfill_its_location_cannot_plan_fails_with_the_reason() {
    let mut h = harness().await;
    h.request("bf", "broken", &["a"], |_| {}).await;
    let daemon = h.start(queue()).await;
    let ended = h.ended("bf").await;
    daemon.stop().await;
    assert_eq!(ended.status, BackfillState::Failed);
    assert!(ended.error.as_deref().unwrap().contains("asset 'broken' is not partitioned"), "{:?}", ended.error);
    assert!(ended.run_ids.is_empty(), "nothing was submitted");
}

#[tokio::test]
async fn a_restarted_daemon_recounts_the_backfill_and_launches_again_what_never_started() {
    let mut h = harness().await;
    h.request("bf", "daily", &["a", "b", "c"], |record| record.max_concurrency = 3).await;
    let daemon = h.start(None).await;
    let launched = [h.next_launch().await, h.next_launch().await, h.next_launch().await];
    // The first run ends while the daemon is down; the others never started.
    daemon.stop().await;
    h.end_run(&launched[0].run_id, RunStatus::Success, &[]).await;
    let daemon = h.start(None).await;
    let mut relaunched = [h.next_launch().await.run_id, h.next_launch().await.run_id];
    relaunched.sort();
    let mut never_started = [launched[1].run_id.clone(), launched[2].run_id.clone()];
    never_started.sort();
    assert_eq!(relaunched, never_started, "the runs nobody started are launched again");
    let record = h.storage.get_backfill("bf").await.unwrap().unwrap();
    assert_eq!((record.completed, record.status), (1, BackfillState::InProgress), "recounted from its runs");
    for run_id in &never_started {
        h.end_run(run_id, RunStatus::Success, &[]).await;
    }
    let ended = h.ended("bf").await;
    daemon.stop().await;
    assert_eq!((ended.status, ended.completed), (BackfillState::Completed, 3));
}
