//! Automation conditions in the daemon, in pure Rust: memory storage, a fake launcher and a
//! virtual clock. Each test drives passes by moving the clock one `condition_eval_interval` and
//! waits for the pass's ticks (written one at a time) before asserting.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures::future::BoxFuture;
use rivers_core::condition::Condition;
use rivers_core::partitions::{PartitionMapping, Partitions, RangeSet};
use rivers_core::{EventType, LaunchedBy, RunStatus, TickStatus};
use rivers_daemon::{
    AssetDep, Automations, BackfillRequest, CodeLocation, ConditionAsset, ConditionAssets, Daemon, DaemonConfig,
    Evaluation, EvaluationError, SensorContext, VirtualClock,
};
use rivers_storage::{NewEvent, PartitionSpan, RunRecord, Storage, definition_fingerprint};
use tokio::sync::mpsc;

mod support;
use support::RecordingLauncher;

const INTERVAL: Duration = Duration::from_secs(30);

/// A location with no schedules or sensors; observations are reported on a channel.
struct ObservingLocation {
    observed: mpsc::UnboundedSender<Vec<String>>,
}

impl CodeLocation for ObservingLocation {
    fn evaluate_schedule(
        &self,
        name: &str,
        _: DateTime<chrono_tz::Tz>,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        let name = name.to_owned();
        Box::pin(async move { Err(EvaluationError(format!("no schedule {name}"))) })
    }

    fn evaluate_sensor(&self, name: &str, _: SensorContext) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        let name = name.to_owned();
        Box::pin(async move { Err(EvaluationError(format!("no sensor {name}"))) })
    }

    fn submit_backfill(
        &self,
        _: BackfillRequest,
        _: LaunchedBy,
    ) -> BoxFuture<'static, Result<String, EvaluationError>> {
        Box::pin(async { Err(EvaluationError("no backfills".into())) })
    }

    fn observe(&self, assets: Vec<String>) -> BoxFuture<'static, Result<(), EvaluationError>> {
        let _ = self.observed.send(assets);
        Box::pin(async { Ok(()) })
    }
}

struct Harness {
    storage: Storage,
    clock: VirtualClock,
    launched: mpsc::UnboundedReceiver<RunRecord>,
    observed: mpsc::UnboundedReceiver<Vec<String>>,
    location: Arc<ObservingLocation>,
    launcher: Arc<RecordingLauncher>,
}

impl Harness {
    async fn new(start: DateTime<Utc>) -> Self {
        let (launcher, launched) = RecordingLauncher::new();
        let (observed_tx, observed) = mpsc::unbounded_channel();
        Harness {
            storage: Storage::memory().await.unwrap(),
            clock: VirtualClock::new(start),
            launched,
            observed,
            location: Arc::new(ObservingLocation { observed: observed_tx }),
            launcher: Arc::new(launcher),
        }
    }

    async fn start(&self, assets: &[ConditionAsset]) -> Daemon {
        let automations =
            Automations { conditions: ConditionAssets::new(assets.iter().cloned()), ..Automations::default() };
        let config =
            DaemonConfig { tick_batch_size: Some(1), condition_eval_interval: INTERVAL, ..DaemonConfig::default() };
        Daemon::start(
            self.storage.clone(),
            self.location.clone(),
            self.launcher.clone(),
            Arc::new(self.clock.clone()),
            automations,
            config,
        )
        .await
    }

    /// Waits until `asset` has `count` condition ticks; returns the newest.
    async fn ticks(&self, asset: &str, count: usize) -> rivers_storage::StoredTick {
        loop {
            let ticks = self.storage.get_ticks(asset, 1000).await.unwrap();
            if ticks.len() >= count {
                return ticks[0].clone();
            }
            tokio::task::yield_now().await;
        }
    }

    /// The next pass: moves the clock one interval and waits for `asset`'s tick `count`.
    async fn pass(&self, asset: &str, count: usize) -> rivers_storage::StoredTick {
        self.clock.advance(TimeDelta::from_std(INTERVAL).unwrap());
        self.ticks(asset, count).await
    }

    async fn materialize(&self, asset: &str, run_id: &str, span: Option<PartitionSpan>) {
        let mut event = NewEvent::new(EventType::Materialization, run_id);
        event.asset_key = Some(asset.into());
        event.span = span;
        self.storage.enqueue_event(event);
        self.storage.flush().await.unwrap();
    }

    async fn finish(&self, run_id: &str, status: RunStatus) {
        self.storage.transition_run(run_id, RunStatus::Running).await.unwrap();
        self.storage.transition_run(run_id, status).await.unwrap();
    }
}

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn asset(key: &str, deps: &[&str], condition: Option<Condition>) -> ConditionAsset {
    ConditionAsset {
        key: key.into(),
        condition,
        partitions: None,
        deps: deps.iter().map(|dep| AssetDep { key: (*dep).into(), mapping: None }).collect(),
        is_external: false,
        code_version: None,
    }
}

#[tokio::test]
async fn eager_fires_after_the_upstream_updates_never_while_in_flight_and_not_after_a_failure() {
    let mut h = Harness::new(start_time()).await;
    let daemon = h.start(&[asset("orders", &[], None), asset("report", &["orders"], Some(Condition::eager()))]).await;
    // The first pass: the upstream is missing, so the missing downstream waits.
    assert_eq!(h.ticks("report", 1).await.status, TickStatus::Skipped);

    h.materialize("orders", "manual-1", None).await;
    let tick = h.pass("report", 2).await;
    assert_eq!(tick.status, TickStatus::Success);
    let run = h.launched.recv().await.unwrap();
    assert_eq!(tick.run_ids, std::slice::from_ref(&run.run_id));
    assert_eq!((run.launched_by.clone(), run.job_name.clone()), (LaunchedBy::Condition, None));
    assert_eq!(run.node_names, ["report"]);

    // The run has not ended: no second run, whatever the upstream does.
    h.materialize("orders", "manual-2", None).await;
    assert_eq!(h.pass("report", 3).await.status, TickStatus::Skipped);
    assert_eq!(h.pass("report", 4).await.status, TickStatus::Skipped);

    // The run fails: a failed asset is not retried.
    let mut failure = NewEvent::new(EventType::StepFailure, run.run_id.clone());
    failure.asset_key = Some("report".into());
    h.storage.enqueue_event(failure);
    h.finish(&run.run_id, RunStatus::Failure).await;
    assert_eq!(h.pass("report", 5).await.status, TickStatus::Skipped);
    daemon.stop().await;
    assert!(h.launched.try_recv().is_err(), "one run in all");
    let records = h.storage.condition_evaluations("report", 10).await.unwrap();
    assert_eq!(records.len(), 5);
    assert!(records[0].explanation.contains("execution_failed"), "{}", records[0].explanation);
}

#[tokio::test]
async fn a_cascade_fires_in_one_joint_run_which_does_not_trigger_the_downstream_again_even_after_a_restart() {
    let mut h = Harness::new(start_time()).await;
    let assets = [asset("raw", &[], Some(Condition::eager())), asset("clean", &["raw"], Some(Condition::eager()))];
    let daemon = h.start(&assets).await;
    let tick = h.ticks("clean", 1).await;
    let run = h.launched.recv().await.unwrap();
    assert_eq!(run.node_names, ["raw", "clean"], "both missing: one joint run, upstream first");
    assert_eq!(tick.run_ids, std::slice::from_ref(&run.run_id));
    assert_eq!(h.ticks("raw", 1).await.run_ids, std::slice::from_ref(&run.run_id));

    h.materialize("raw", &run.run_id, None).await;
    h.materialize("clean", &run.run_id, None).await;
    h.finish(&run.run_id, RunStatus::Success).await;
    // The upstream updated in a run that covered the downstream too.
    assert_eq!(h.pass("clean", 2).await.status, TickStatus::Skipped);
    daemon.stop().await;

    // A restart with the state intact is not an initial evaluation: nothing fires.
    let daemon = h.start(&assets).await;
    assert_eq!(h.ticks("clean", 3).await.status, TickStatus::Skipped);
    assert_eq!(h.pass("clean", 4).await.status, TickStatus::Skipped);
    daemon.stop().await;
    assert!(h.launched.try_recv().is_err());
}

#[tokio::test]
async fn on_missing_fires_once_and_on_cron_once_per_period_after_its_deps_updated() {
    let mut h = Harness::new(start_time()).await;
    let hourly = Condition::on_cron("0 * * * *", None).unwrap();
    let assets = [
        asset("feed", &[], None),
        asset("backlog", &[], Some(Condition::on_missing())),
        asset("digest", &["feed"], Some(hourly)),
    ];
    let daemon = h.start(&assets).await;
    let first = h.launched.recv().await.unwrap();
    assert_eq!(first.node_names, ["backlog"]);
    h.finish(&first.run_id, RunStatus::Failure).await;
    // Still missing after the failure, but handled: on_missing does not fire again.
    assert_eq!(h.pass("backlog", 2).await.status, TickStatus::Skipped);

    // Past the hour, the cron latch arms; it fires once the dep has updated since.
    h.clock.advance(TimeDelta::minutes(60));
    h.ticks("digest", 3).await;
    h.materialize("feed", "manual-1", None).await;
    assert_eq!(h.pass("digest", 4).await.status, TickStatus::Success);
    let digest = h.launched.recv().await.unwrap();
    assert_eq!(digest.node_names, ["digest"]);
    h.finish(&digest.run_id, RunStatus::Success).await;
    h.materialize("feed", "manual-2", None).await;
    assert_eq!(h.pass("digest", 5).await.status, TickStatus::Skipped, "once per period");
    daemon.stop().await;
    assert!(h.launched.try_recv().is_err());
}

#[tokio::test]
async fn a_firing_external_asset_is_observed_instead_of_run() {
    let mut h = Harness::new(start_time()).await;
    let mut external = asset("fx_rates", &[], Some(Condition::on_missing()));
    external.is_external = true;
    let daemon = h.start(&[external]).await;
    assert_eq!(h.observed.recv().await.unwrap(), ["fx_rates"]);
    let tick = h.ticks("fx_rates", 1).await;
    assert_eq!((tick.status, tick.run_ids.len()), (TickStatus::Success, 0));
    daemon.stop().await;
    assert!(h.launched.try_recv().is_err());
}

#[tokio::test]
async fn ten_updated_partitions_of_a_million_fire_ten_runs_one_per_key() {
    let grid_start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let minutely = Arc::new(Partitions::time_window(grid_start, Some("* * * * *".into()), None, None, None).unwrap());
    // A million windows exist at the start of the test, whatever the host's zone.
    let local_start = grid_start.and_local_timezone(chrono::Local).single().unwrap().with_timezone(&Utc);
    let mut h = Harness::new(local_start + TimeDelta::minutes(1_000_000) - TimeDelta::seconds(1)).await;
    let partitioned = |key: &str, deps: Vec<AssetDep>, condition: Option<Condition>| ConditionAsset {
        partitions: Some(minutely.clone()),
        deps,
        ..asset(key, &[], condition)
    };
    let assets = [
        partitioned("ticks", vec![], None),
        partitioned(
            "bars",
            vec![AssetDep { key: "ticks".into(), mapping: Some(PartitionMapping::Identity) }],
            Some(Condition::eager()),
        ),
    ];
    h.storage.register_partition_definitions(&[&minutely]).await.unwrap();
    let span = |positions: RangeSet| {
        Some(PartitionSpan { definition: definition_fingerprint(&minutely), positions, derived_versions: true })
    };
    let all = RangeSet::span(0, 999_999);
    h.materialize("ticks", "history", span(all.clone())).await;
    h.materialize("bars", "history", span(all)).await;
    let daemon = h.start(&assets).await;
    assert_eq!(h.ticks("bars", 1).await.status, TickStatus::Skipped);

    let landed: Vec<u128> = (0..10).map(|i| 1_000 + i * 77_777).collect();
    h.materialize("ticks", "landing", span(RangeSet::from_positions(landed.iter().copied()))).await;
    let tick = h.pass("bars", 2).await;
    assert_eq!(tick.run_ids.len(), 10);
    let mut keys = Vec::new();
    for _ in 0..10 {
        let run = h.launched.recv().await.unwrap();
        assert_eq!((run.node_names.clone(), run.launched_by.clone()), (vec!["bars".to_owned()], LaunchedBy::Condition));
        keys.push(serde_json::to_string(&run.partition_key).unwrap());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10, "one run per key: {keys:?}");
    daemon.stop().await;
    assert!(h.launched.try_recv().is_err());
}

#[tokio::test]
async fn a_simulation_runs_schedules_and_conditions_on_a_virtual_clock_and_writes_nothing() {
    let h = Harness::new(start_time()).await;
    let automations = Automations {
        schedules: vec![rivers_daemon::ScheduleSpec {
            name: "hourly".into(),
            cron: rivers_core::CronSchedule::parse("0 * * * *", None).unwrap(),
            job_name: "refresh".into(),
            default_status: rivers_core::AutomationStatus::Running,
            tags: vec![],
            eval_timeout: None,
            has_evaluation_fn: false,
        }],
        jobs: [("refresh".to_owned(), vec!["orders".to_owned()])].into_iter().collect(),
        conditions: ConditionAssets::new([
            asset("orders", &[], None),
            asset("report", &["orders"], Some(Condition::eager())),
        ]),
        ..Automations::default()
    };
    let end = start_time() + TimeDelta::hours(2);
    let requests = rivers_daemon::simulate_automation(
        &h.storage,
        h.location.as_ref(),
        &automations,
        start_time(),
        end,
        Duration::from_secs(30 * 60),
    )
    .await
    .unwrap();
    let seen: Vec<(i64, String, Vec<String>)> = requests
        .iter()
        .map(|r| ((r.time - start_time()).num_minutes(), r.automation_type.to_string(), r.asset_keys.clone()))
        .collect();
    let expected: Vec<(i64, String, Vec<String>)> = [0, 60, 120]
        .into_iter()
        .flat_map(|minute| {
            [
                (minute, "schedule".to_owned(), vec!["orders".to_owned()]),
                (minute, "condition".to_owned(), vec!["report".to_owned()]),
            ]
        })
        .collect();
    assert_eq!(seen, expected, "each scheduled run lands at once and the downstream follows it");
    assert!(h.storage.get_ticks("report", 10).await.unwrap().is_empty());
    assert!(h.storage.condition_evaluations("report", 10).await.unwrap().is_empty());
    assert!(h.storage.unfinished_runs().await.unwrap().is_empty(), "nothing was launched");
}

#[tokio::test]
async fn a_materialization_wakes_the_evaluator_before_the_interval_has_passed() {
    let mut h = Harness::new(start_time()).await;
    let daemon = h.start(&[asset("orders", &[], None), asset("report", &["orders"], Some(Condition::eager()))]).await;
    h.ticks("report", 1).await;
    h.materialize("orders", "manual-1", None).await;
    // Far less than condition_eval_interval: only the change feed can start this pass.
    h.clock.advance(TimeDelta::from_std(rivers_daemon::MIN_PASS_GAP).unwrap());
    assert_eq!(h.ticks("report", 2).await.status, TickStatus::Success);
    assert_eq!(h.launched.recv().await.unwrap().node_names, ["report"]);
    daemon.stop().await;
}

#[tokio::test]
async fn evaluation_records_are_pruned_to_the_newest_per_asset() {
    let storage = Storage::memory().await.unwrap();
    let checkpoint = rivers_storage::ConditionCheckpoint::default();
    for timestamp in 1..=4 {
        let records: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|asset| rivers_storage::ConditionEvaluationRecord {
                asset_key: asset.into(),
                timestamp,
                requested: 0,
                run_ids: vec![],
                explanation: format!("pass {timestamp}"),
            })
            .collect();
        storage.write_condition_pass("here", &checkpoint, &[], &records, 2).await.unwrap();
    }
    for asset in ["a", "b"] {
        let kept = storage.condition_evaluations(asset, 10).await.unwrap();
        assert_eq!(kept.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [4, 3], "{asset}");
    }
}
