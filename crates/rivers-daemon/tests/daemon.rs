//! The daemon's loops in pure Rust: a fake code location and launcher, memory storage and a
//! virtual clock, so hours of ticks pass without sleeping. Each test waits on what the fakes
//! report (an evaluation, a launch) rather than on time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use rivers_core::{AutomationStatus, AutomationType, CronSchedule, EventType, LaunchedBy, RunStatus, TickStatus};
use rivers_daemon::{
    Automations, BackfillRequest, CodeLocation, Daemon, DaemonConfig, Evaluation, EvaluationError, Request,
    RunLauncher, RunQueueConfig, RunRequest, ScheduleSpec, SensorContext, SensorSpec, TagConcurrencyLimit,
    VirtualClock,
};
use rivers_storage::{RunRecord, Storage};
use tokio::sync::{Semaphore, mpsc};

type SensorFn = Box<dyn Fn(SensorContext) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> + Send + Sync>;
type ScheduleFn = Box<dyn Fn(DateTime<Tz>) -> Result<Evaluation, EvaluationError> + Send + Sync>;

/// A code location whose evaluations are closures; every call is reported on a channel.
struct FakeLocation {
    sensors: HashMap<String, SensorFn>,
    schedules: HashMap<String, ScheduleFn>,
    calls: mpsc::UnboundedSender<String>,
}

impl CodeLocation for FakeLocation {
    fn evaluate_schedule(
        &self,
        name: &str,
        scheduled: DateTime<Tz>,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        let _ = self.calls.send(format!("{name}@{}", scheduled.to_rfc3339()));
        let result = self.schedules[name](scheduled);
        Box::pin(async move { result })
    }

    fn evaluate_sensor(
        &self,
        name: &str,
        context: SensorContext,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        let _ =
            self.calls.send(format!("{name} cursor={:?} last={}", context.cursor, context.last_tick_time.is_some()));
        self.sensors[name](context)
    }

    fn submit_backfill(
        &self,
        request: BackfillRequest,
        launched_by: LaunchedBy,
    ) -> BoxFuture<'static, Result<String, EvaluationError>> {
        let _ = self.calls.send(format!("backfill {:?} by {}", request.selection, launched_by.kind()));
        Box::pin(async { Ok("backfill-1".to_owned()) })
    }
}

/// A launcher that records launches and fails those whose job is `broken`.
struct FakeLauncher {
    launched: mpsc::UnboundedSender<RunRecord>,
}

impl RunLauncher for FakeLauncher {
    fn launch(&self, run: RunRecord) -> BoxFuture<'static, Result<(), String>> {
        let broken = run.job_name.as_deref() == Some("broken");
        let _ = self.launched.send(run);
        Box::pin(async move { if broken { Err("no executor for job broken".to_owned()) } else { Ok(()) } })
    }
}

struct Harness {
    storage: Storage,
    clock: VirtualClock,
    calls: mpsc::UnboundedReceiver<String>,
    launched: mpsc::UnboundedReceiver<RunRecord>,
    location: Arc<FakeLocation>,
    launcher: Arc<FakeLauncher>,
}

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

async fn harness(sensors: Vec<(&str, SensorFn)>, schedules: Vec<(&str, ScheduleFn)>) -> Harness {
    harness_on(Storage::memory().await.unwrap(), sensors, schedules)
}

fn harness_on(storage: Storage, sensors: Vec<(&str, SensorFn)>, schedules: Vec<(&str, ScheduleFn)>) -> Harness {
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let (launched_tx, launched) = mpsc::unbounded_channel();
    let location = Arc::new(FakeLocation {
        sensors: sensors.into_iter().map(|(name, f)| (name.to_owned(), f)).collect(),
        schedules: schedules.into_iter().map(|(name, f)| (name.to_owned(), f)).collect(),
        calls: calls_tx,
    });
    Harness {
        storage,
        clock: VirtualClock::new(start_time()),
        calls,
        launched,
        location,
        launcher: Arc::new(FakeLauncher { launched: launched_tx }),
    }
}

impl Harness {
    async fn start(&self, automations: Automations, config: DaemonConfig) -> Daemon {
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

    async fn next_call(&mut self) -> String {
        self.calls.recv().await.expect("the location is alive")
    }
}

fn jobs(names: &[&str]) -> HashMap<String, Vec<String>> {
    names.iter().map(|name| ((*name).to_owned(), vec![format!("{name}_asset")])).collect()
}

fn sensor(name: &str, interval_secs: u64) -> SensorSpec {
    SensorSpec {
        name: name.into(),
        job_name: Some("refresh".into()),
        asset_selection: vec![],
        minimum_interval: Duration::from_secs(interval_secs),
        default_status: AutomationStatus::Running,
        tags: vec![("team".into(), "core".into())],
        eval_timeout: None,
    }
}

fn schedule(name: &str, cron: &str, tz: Option<&str>) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cron: CronSchedule::parse(cron, tz).unwrap(),
        job_name: "refresh".into(),
        default_status: AutomationStatus::Running,
        tags: vec![],
        eval_timeout: None,
        has_evaluation_fn: true,
    }
}

fn ok(evaluation: Evaluation) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
    Box::pin(async move { Ok(evaluation) })
}

fn run_request(key: Option<&str>, tags: &[(&str, &str)]) -> Request {
    Request::Run(RunRequest {
        run_key: key.map(Into::into),
        tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        ..RunRequest::default()
    })
}

#[tokio::test]
async fn a_schedule_ticks_at_each_cron_instant_in_its_zone_and_launches_its_job() {
    let scheduled: ScheduleFn = Box::new(|at| {
        Ok(Evaluation { requests: vec![run_request(Some(&at.to_rfc3339()), &[])], ..Evaluation::default() })
    });
    let mut h = harness(vec![], vec![("nightly", scheduled)]).await;
    let automations = Automations {
        schedules: vec![schedule("nightly", "30 2 * * *", Some("Europe/Berlin"))],
        jobs: jobs(&["refresh"]),
        ..Automations::default()
    };
    let daemon = h.start(automations, DaemonConfig::default()).await;
    // 02:30 in Berlin is 01:30 UTC in March before the switch.
    h.clock.advance(TimeDelta::hours(3));
    assert_eq!(h.next_call().await, "nightly@2026-03-01T02:30:00+01:00");
    let run = h.launched.recv().await.unwrap();
    assert_eq!(run.launched_by, LaunchedBy::Schedule { name: "nightly".into() });
    assert_eq!(run.job_name.as_deref(), Some("refresh"));
    assert_eq!(run.node_names, ["refresh_asset"]);
    assert_eq!(run.status, RunStatus::NotStarted);
    h.clock.advance(TimeDelta::days(1));
    assert_eq!(h.next_call().await, "nightly@2026-03-02T02:30:00+01:00");
    h.launched.recv().await.unwrap();
    daemon.stop().await;
    let ticks = h.storage.get_ticks("nightly", 10).await.unwrap();
    assert_eq!(ticks.len(), 2);
    assert!(ticks.iter().all(|t| t.status == TickStatus::Success && t.automation_type == AutomationType::Schedule));
    assert_eq!(ticks[0].run_ids.len(), 1);
    assert!(ticks[0].timestamp > ticks[1].timestamp, "newest first");
}

#[tokio::test]
async fn missed_ticks_are_not_caught_up_and_the_first_tick_is_the_next_future_instant() {
    let scheduled: ScheduleFn = Box::new(|_| Ok(Evaluation::default()));
    let mut h = harness(vec![], vec![("every_minute", scheduled)]).await;
    let automations =
        Automations { schedules: vec![schedule("every_minute", "* * * * *", None)], ..Automations::default() };
    let daemon = h.start(automations, DaemonConfig::default()).await;
    // Ten minutes pass at once: one tick, at the first instant, then the next is after now.
    h.clock.advance(TimeDelta::minutes(10));
    assert_eq!(h.next_call().await, "every_minute@2026-03-01T00:01:00+00:00");
    h.clock.advance(TimeDelta::minutes(1));
    assert_eq!(h.next_call().await, "every_minute@2026-03-01T00:11:00+00:00");
    daemon.stop().await;
    let ticks = h.storage.get_ticks("every_minute", 10).await.unwrap();
    assert_eq!(ticks.len(), 2);
    assert!(ticks.iter().all(|t| t.status == TickStatus::Skipped));
}

#[tokio::test]
async fn a_schedule_without_an_evaluation_function_requests_one_run_of_its_job_per_tick() {
    let mut h = harness(vec![], vec![]).await;
    let mut spec = schedule("plain", "*/1 * * * * *", None);
    spec.has_evaluation_fn = false;
    let automations = Automations { schedules: vec![spec], jobs: jobs(&["refresh"]), ..Automations::default() };
    let daemon = h.start(automations, DaemonConfig::default()).await;
    h.clock.advance(TimeDelta::seconds(1));
    let run = h.launched.recv().await.unwrap();
    assert_eq!(run.job_name.as_deref(), Some("refresh"));
    daemon.stop().await;
}

#[tokio::test]
async fn a_sensor_keeps_its_cursor_and_last_tick_time_across_a_restart() {
    let evaluate: SensorFn = Box::new(|context: SensorContext| {
        let next = context.cursor.as_deref().map_or(1, |c| c.parse::<u32>().unwrap() + 1);
        ok(Evaluation {
            cursor: Some(next.to_string()),
            skip_reason: Some("nothing new".into()),
            ..Evaluation::default()
        })
    });
    let mut h = harness(vec![("inbox", evaluate)], vec![]).await;
    let automations = || Automations { sensors: vec![sensor("inbox", 30)], ..Automations::default() };
    let daemon = h.start(automations(), DaemonConfig::default()).await;
    assert_eq!(h.next_call().await, "inbox cursor=None last=false");
    h.clock.advance(TimeDelta::seconds(29));
    h.clock.advance(TimeDelta::seconds(1));
    assert_eq!(h.next_call().await, "inbox cursor=Some(\"1\") last=true");
    daemon.stop().await;
    h.clock.advance(TimeDelta::seconds(1));

    let daemon = h.start(automations(), DaemonConfig::default()).await;
    assert_eq!(h.next_call().await, "inbox cursor=Some(\"2\") last=true");
    daemon.stop().await;
    let ticks = h.storage.get_ticks("inbox", 10).await.unwrap();
    assert_eq!(ticks.iter().map(|t| t.cursor.as_deref().unwrap()).collect::<Vec<_>>(), ["3", "2", "1"]);
    assert!(ticks.iter().all(|t| t.status == TickStatus::Skipped && t.skip_reason.as_deref() == Some("nothing new")));
}

#[tokio::test]
async fn a_failing_evaluation_records_a_failure_keeps_the_cursor_and_the_sensor_goes_on() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let evaluate: SensorFn = Box::new(move |_| {
        let mut n = counter.lock();
        *n += 1;
        let n = *n;
        Box::pin(async move {
            match n {
                1 => Ok(Evaluation { cursor: Some("c1".into()), ..Evaluation::default() }),
                2 => Err(EvaluationError("ValueError: the feed is down".into())),
                _ => Ok(Evaluation::default()),
            }
        })
    });
    let mut h = harness(vec![("feed", evaluate)], vec![]).await;
    let daemon = h
        .start(Automations { sensors: vec![sensor("feed", 5)], ..Automations::default() }, DaemonConfig::default())
        .await;
    for _ in 0..3 {
        h.next_call().await;
        h.clock.advance(TimeDelta::seconds(5));
    }
    daemon.stop().await;
    let ticks = h.storage.get_ticks("feed", 10).await.unwrap();
    let statuses: Vec<TickStatus> = ticks.iter().rev().map(|t| t.status).collect();
    assert_eq!(&statuses[..3], [TickStatus::Skipped, TickStatus::Failure, TickStatus::Skipped]);
    let failure = &ticks[ticks.len() - 2];
    assert_eq!(failure.error.as_deref(), Some("ValueError: the feed is down"));
    assert_eq!(failure.cursor.as_deref(), Some("c1"), "a failure carries the cursor forward");
}

#[tokio::test]
async fn an_evaluation_past_eval_timeout_fails_its_tick_and_the_next_waits_for_it() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let first = Arc::new(Mutex::new(true));
    let evaluate: SensorFn = Box::new(move |_| {
        let hang = std::mem::replace(&mut *first.lock(), false);
        let gate = held.clone();
        Box::pin(async move {
            if hang {
                let _ = gate.acquire().await;
            }
            Ok(Evaluation::default())
        })
    });
    let mut h = harness(vec![("slow", evaluate)], vec![]).await;
    let mut spec = sensor("slow", 1);
    spec.eval_timeout = Some(Duration::from_secs(5));
    let daemon = h.start(Automations { sensors: vec![spec], ..Automations::default() }, DaemonConfig::default()).await;
    h.next_call().await;
    h.clock.advance(TimeDelta::seconds(5));
    // The timed-out tick is written; later ticks wait for the hanging evaluation.
    h.clock.advance(TimeDelta::seconds(60));
    tokio::task::yield_now().await;
    assert!(h.calls.try_recv().is_err(), "no second evaluation while the first one runs");
    gate.add_permits(1);
    h.next_call().await;
    daemon.stop().await;
    let ticks = h.storage.get_ticks("slow", 10).await.unwrap();
    let failure = ticks.last().unwrap();
    assert_eq!(failure.status, TickStatus::Failure);
    assert!(failure.error.as_deref().unwrap().contains("eval_timeout (5s)"), "{:?}", failure.error);
}

#[tokio::test]
async fn a_run_key_launches_one_run_per_automation_even_after_a_restart() {
    let evaluate: SensorFn =
        Box::new(|_| ok(Evaluation { requests: vec![run_request(Some("2026-03-01"), &[])], ..Evaluation::default() }));
    let mut h = harness(vec![("daily", evaluate)], vec![]).await;
    let automations =
        || Automations { sensors: vec![sensor("daily", 10)], jobs: jobs(&["refresh"]), ..Automations::default() };
    let daemon = h.start(automations(), DaemonConfig::default()).await;
    h.next_call().await;
    let run = h.launched.recv().await.unwrap();
    h.clock.advance(TimeDelta::seconds(10));
    h.next_call().await;
    daemon.stop().await;
    let daemon = h.start(automations(), DaemonConfig::default()).await;
    h.next_call().await;
    daemon.stop().await;
    assert!(h.launched.try_recv().is_err(), "the key was used: no second run");
    let ticks = h.storage.get_ticks("daily", 10).await.unwrap();
    assert_eq!(
        ticks.iter().map(|t| t.status).collect::<Vec<_>>(),
        [TickStatus::Skipped, TickStatus::Skipped, TickStatus::Success]
    );
    assert_eq!(ticks[2].run_ids, std::slice::from_ref(&run.run_id));
    assert_eq!(run.tags, [("team".to_owned(), "core".to_owned())]);
}

#[tokio::test]
async fn request_tags_merge_over_the_sensor_tags_and_an_unknown_job_fails_the_tick() {
    let evaluate: SensorFn = Box::new(|_| {
        ok(Evaluation {
            requests: vec![
                run_request(None, &[("team", "data"), ("rivers/priority", "7")]),
                Request::Run(RunRequest { job_name: Some("missing".into()), ..RunRequest::default() }),
                run_request(None, &[]),
            ],
            ..Evaluation::default()
        })
    });
    let mut h = harness(vec![("mixed", evaluate)], vec![]).await;
    let daemon = h
        .start(
            Automations { sensors: vec![sensor("mixed", 10)], jobs: jobs(&["refresh"]), ..Automations::default() },
            DaemonConfig::default(),
        )
        .await;
    let run = h.launched.recv().await.unwrap();
    daemon.stop().await;
    assert_eq!(run.tags, [("team".to_owned(), "data".to_owned()), ("rivers/priority".to_owned(), "7".to_owned())]);
    assert_eq!(run.priority, 7);
    let tick = &h.storage.get_ticks("mixed", 1).await.unwrap()[0];
    assert_eq!(tick.status, TickStatus::Failure);
    assert_eq!(tick.run_ids, std::slice::from_ref(&run.run_id), "runs created before the failure stay listed");
    let error = tick.error.as_deref().unwrap();
    assert!(error.contains("job 'missing'") && error.contains("[refresh]"), "{error}");
    assert!(h.launched.try_recv().is_err(), "requests after the failing one are not submitted");
}

#[tokio::test]
async fn a_backfill_request_is_submitted_through_the_location_and_listed_on_the_tick() {
    let evaluate: SensorFn = Box::new(|_| {
        ok(Evaluation {
            requests: vec![Request::Backfill(BackfillRequest {
                selection: vec!["orders".into()],
                partitions: rivers_daemon::BackfillPartitions::All,
                strategy: None,
                failure_policy: rivers_core::FailurePolicy::Continue,
                max_concurrency: 4,
                tags: vec![],
            })],
            ..Evaluation::default()
        })
    });
    let mut h = harness(vec![("repair", evaluate)], vec![]).await;
    let daemon = h
        .start(Automations { sensors: vec![sensor("repair", 10)], ..Automations::default() }, DaemonConfig::default())
        .await;
    h.next_call().await;
    assert_eq!(h.next_call().await, "backfill [\"orders\"] by sensor");
    daemon.stop().await;
    let tick = &h.storage.get_ticks("repair", 1).await.unwrap()[0];
    assert_eq!((tick.status, tick.backfill_ids.clone()), (TickStatus::Success, vec!["backfill-1".to_owned()]));
}

#[tokio::test]
async fn a_stopped_sensor_is_not_ticked_until_it_is_resumed_at_runtime() {
    let evaluate: SensorFn = Box::new(|_| ok(Evaluation::default()));
    let mut h = harness(vec![("paused", evaluate)], vec![]).await;
    let mut spec = sensor("paused", 10);
    spec.default_status = AutomationStatus::Stopped;
    let daemon = h.start(Automations { sensors: vec![spec], ..Automations::default() }, DaemonConfig::default()).await;
    h.clock.advance(TimeDelta::minutes(5));
    tokio::task::yield_now().await;
    assert!(h.calls.try_recv().is_err());
    h.storage.set_automation_status(AutomationType::Sensor, "paused", AutomationStatus::Running).await.unwrap();
    let statuses = h.storage.automation_statuses().await.unwrap();
    assert_eq!(statuses[&(AutomationType::Sensor, "paused".to_owned())], AutomationStatus::Running);
    daemon.refresh_statuses().await;
    h.next_call().await;
    daemon.stop().await;
}

#[tokio::test]
async fn ticks_are_pruned_to_max_ticks_retained() {
    let evaluate: SensorFn = Box::new(|_| ok(Evaluation::default()));
    let mut h = harness(vec![("busy", evaluate)], vec![]).await;
    let config = DaemonConfig { max_ticks_retained: Some(3), tick_batch_size: Some(2), ..DaemonConfig::default() };
    let daemon = h.start(Automations { sensors: vec![sensor("busy", 1)], ..Automations::default() }, config).await;
    for _ in 0..7 {
        h.next_call().await;
        h.clock.advance(TimeDelta::seconds(1));
    }
    daemon.stop().await;
    assert_eq!(h.storage.get_ticks("busy", 100).await.unwrap().len(), 3);
}

fn queue(max: Option<usize>, limits: Vec<TagConcurrencyLimit>) -> DaemonConfig {
    DaemonConfig {
        run_queue: Some(RunQueueConfig { max_concurrent_runs: max, tag_limits: limits, ..RunQueueConfig::default() }),
        ..DaemonConfig::default()
    }
}

#[tokio::test]
async fn queued_runs_are_admitted_under_the_global_limit_with_queue_events() {
    let evaluate: SensorFn = Box::new(|_| {
        ok(Evaluation {
            requests: vec![run_request(Some("a"), &[]), run_request(Some("b"), &[("rivers/priority", "3")])],
            ..Evaluation::default()
        })
    });
    let mut h = harness(vec![("burst", evaluate)], vec![]).await;
    let daemon = h
        .start(
            Automations { sensors: vec![sensor("burst", 60)], jobs: jobs(&["refresh"]), ..Automations::default() },
            queue(Some(1), vec![]),
        )
        .await;
    let first = h.launched.recv().await.unwrap();
    assert_eq!(first.priority, 3, "the higher priority is admitted first");
    h.clock.advance(TimeDelta::seconds(1));
    daemon.coordinate_now().await;
    tokio::task::yield_now().await;
    assert!(h.launched.try_recv().is_err(), "the limit holds while the first run is not finished");
    let queued = h.storage.get_queued_runs().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0].block_reason.as_deref().unwrap().contains("max_concurrent_runs (1)"));
    let events = h.storage.get_events_for_run(&first.run_id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.metadata.clone())).collect();
    assert_eq!(kinds[0], (EventType::RunQueued, vec![("priority".into(), "3".into())]));
    assert_eq!(kinds[1], (EventType::RunDequeued, vec![("priority".into(), "3".into())]));
    // The first run ends: the second is admitted with its block reason cleared.
    h.storage.transition_run(&first.run_id, RunStatus::Running).await.unwrap();
    h.storage.transition_run(&first.run_id, RunStatus::Success).await.unwrap();
    daemon.coordinate_now().await;
    let second = h.launched.recv().await.unwrap();
    assert_eq!(second.status, RunStatus::NotStarted);
    assert_eq!(second.block_reason, None);
    daemon.stop().await;
}

#[tokio::test]
async fn a_failed_launch_and_an_unstarted_run_past_start_timeout_fail_with_run_launch_failed() {
    let evaluate: SensorFn = Box::new(|_| {
        ok(Evaluation {
            requests: vec![
                Request::Run(RunRequest { job_name: Some("broken".into()), ..RunRequest::default() }),
                run_request(None, &[]),
            ],
            ..Evaluation::default()
        })
    });
    let mut h = harness(vec![("launches", evaluate)], vec![]).await;
    // Storage stamps runs with the system clock: start the virtual one there, so that moving
    // it on makes the admitted run older than start_timeout.
    h.clock = VirtualClock::new(Utc::now());
    let mut config = queue(None, vec![]);
    config.run_queue.as_mut().unwrap().start_timeout = Duration::from_secs(60);
    let daemon = h
        .start(
            Automations {
                sensors: vec![sensor("launches", 3600)],
                jobs: jobs(&["refresh", "broken"]),
                ..Automations::default()
            },
            config,
        )
        .await;
    let broken = h.launched.recv().await.unwrap();
    let idle = h.launched.recv().await.unwrap();
    h.clock.advance(TimeDelta::seconds(61));
    daemon.coordinate_now().await;
    let failed = |run_id: String, storage: Storage| async move {
        loop {
            let run = storage.get_run(&run_id).await.unwrap().unwrap();
            if run.status == RunStatus::Failure {
                return run;
            }
            tokio::task::yield_now().await;
        }
    };
    let broken = failed(broken.run_id, h.storage.clone()).await;
    assert!(broken.message.as_deref().unwrap().contains("no executor for job broken"));
    let idle = failed(idle.run_id, h.storage.clone()).await;
    assert!(idle.message.as_deref().unwrap().contains("start_timeout"));
    for run in [&broken, &idle] {
        let events = h.storage.get_events_for_run(&run.run_id).await.unwrap();
        let failed =
            events.iter().find(|e| e.event_type == EventType::RunLaunchFailed).expect("a RunLaunchFailed event");
        assert!(failed.metadata.iter().any(|(key, _)| key == "error"));
    }
    daemon.stop().await;
}

#[tokio::test]
async fn tag_limits_keep_runs_queued_with_a_reason_naming_the_tag() {
    let evaluate: SensorFn = Box::new(|_| {
        ok(Evaluation {
            requests: vec![
                run_request(None, &[("tenant", "acme")]),
                run_request(None, &[("tenant", "acme")]),
                run_request(None, &[("tenant", "globex")]),
            ],
            ..Evaluation::default()
        })
    });
    let mut h = harness(vec![("tenants", evaluate)], vec![]).await;
    let limits = vec![TagConcurrencyLimit { key: "tenant".into(), limit: 1, value: None, per_unique_value: true }];
    let daemon = h
        .start(
            Automations { sensors: vec![sensor("tenants", 3600)], jobs: jobs(&["refresh"]), ..Automations::default() },
            queue(None, limits),
        )
        .await;
    let mut tenants = vec![];
    for _ in 0..2 {
        let run = h.launched.recv().await.unwrap();
        tenants.push(run.tags.iter().find(|(key, _)| key == "tenant").unwrap().1.clone());
    }
    tenants.sort();
    assert_eq!(tenants, ["acme", "globex"]);
    let queued = h.storage.get_queued_runs().await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(queued[0].block_reason.as_deref().unwrap().contains("tenant=acme"));
    daemon.stop().await;
}
