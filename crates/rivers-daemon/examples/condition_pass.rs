//! The automation-condition pass at scale, on memory and embedded storage:
//!
//! - **5,000 assets wearing `eager()` with nothing to do**: 500 layers of 10 assets, each
//!   reading two assets of the layer above, all materialized before the daemon starts;
//! - **one asset of 1,000,000 minutely partitions** wearing `eager()` over a same-partitioned
//!   upstream, ten of whose partitions (from ten runs) were materialized before each pass; the
//!   pass launches ten runs, which are finished before the next one.
//!
//! A pass is what the daemon's evaluation loop does: gather the facts, evaluate, launch, write
//! the states and evaluation records, queue the ticks. The example starts a real [`Daemon`] on
//! a clock that moves only when told to and times each pass from the clock's move to the
//! moment the loop goes back to sleep (its clock sees a deadline of one interval after the
//! pass's start, which no other loop asks for). The first pass, which writes every state, is
//! reported apart; then the median, min and max of the steady passes. Ticks are written after
//! each pass outside the timed region; tick persistence is measured on its own, as throughput
//! through the daemon's batching tick writer.
//!
//! `cargo run -p rivers-daemon --example condition_pass [-- PASSES [many|million]]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use rivers_core::condition::Condition;
use rivers_core::partitions::{PartitionEnv, PartitionKey, PartitionMapping, Partitions, RangeSet};
use rivers_core::{AutomationType, EventType, LaunchedBy, RunStatus, TickStatus};
use rivers_daemon::{
    AssetDep, Automations, BackfillRequest, Clock, CodeLocation, ConditionAsset, ConditionAssets, Daemon, DaemonConfig,
    Evaluation, EvaluationError, RunLauncher, SensorContext, TickWriter, VirtualClock, tick_batch_size,
};
use rivers_storage::{NewEvent, PartitionSpan, RunRecord, Storage, StoredTick, definition_fingerprint};
use tokio::sync::mpsc;

/// The evaluation interval, also the step the clock moves per pass. Equal to the least gap
/// between passes woken by the change feed, so a pass woken by the materializations written
/// before it starts at the same move.
const INTERVAL: Duration = Duration::from_millis(100);

/// A clock that moves only when told to, and reports every deadline a loop sleeps until.
struct ReportingClock {
    clock: VirtualClock,
    deadlines: mpsc::UnboundedSender<DateTime<Utc>>,
}

impl Clock for ReportingClock {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let _ = self.deadlines.send(deadline);
        self.clock.sleep_until(deadline)
    }
}

/// A location without schedules, sensors or external assets.
struct NoUserCode;

impl CodeLocation for NoUserCode {
    fn evaluate_schedule(
        &self,
        name: &str,
        _: DateTime<chrono_tz::Tz>,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        let error = EvaluationError(format!("no schedule {name}"));
        Box::pin(async move { Err(error) })
    }

    fn evaluate_sensor(&self, name: &str, _: SensorContext) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        let error = EvaluationError(format!("no sensor {name}"));
        Box::pin(async move { Err(error) })
    }

    fn submit_backfill(
        &self,
        _: BackfillRequest,
        _: LaunchedBy,
    ) -> BoxFuture<'static, Result<String, EvaluationError>> {
        Box::pin(async { Err(EvaluationError("no backfills".into())) })
    }

    fn observe(&self, _: Vec<String>) -> BoxFuture<'static, Result<(), EvaluationError>> {
        Box::pin(async { Err(EvaluationError("no external assets".into())) })
    }
}

/// Hands the launched runs to the workload, which finishes them between passes.
struct CollectingLauncher {
    launched: mpsc::UnboundedSender<RunRecord>,
}

impl RunLauncher for CollectingLauncher {
    fn launch(&self, run: RunRecord) -> BoxFuture<'static, Result<(), String>> {
        let _ = self.launched.send(run);
        Box::pin(async { Ok(()) })
    }
}

/// A daemon evaluating `assets` on a clock of its own, one pass at a time.
struct Bench {
    storage: Storage,
    clock: VirtualClock,
    deadlines: mpsc::UnboundedReceiver<DateTime<Utc>>,
    launched: mpsc::UnboundedReceiver<RunRecord>,
    daemon: Daemon,
    /// The asset whose ticks tell that a pass's ticks are written.
    last_asset: String,
    passes: usize,
    /// How long the first pass (from the daemon's start) took.
    first: Duration,
}

impl Bench {
    async fn start(storage: Storage, start: DateTime<Utc>, assets: ConditionAssets) -> Self {
        let (deadlines_tx, deadlines) = mpsc::unbounded_channel();
        let (launched_tx, launched) = mpsc::unbounded_channel();
        let clock = VirtualClock::new(start);
        let conditions = assets.iter().filter(|asset| asset.condition.is_some()).count();
        let last_asset =
            assets.iter().filter(|asset| asset.condition.is_some()).last().expect("a condition").key.clone();
        let config = DaemonConfig {
            // The Python default.
            max_ticks_retained: Some(100),
            // A pass's ticks make one batch, written right after it (and waited for untimed).
            tick_batch_size: Some(conditions),
            condition_eval_interval: INTERVAL,
            ..DaemonConfig::default()
        };
        let started = Instant::now();
        let daemon = Daemon::start(
            storage.clone(),
            Arc::new(NoUserCode),
            Arc::new(CollectingLauncher { launched: launched_tx }),
            Arc::new(ReportingClock { clock: clock.clone(), deadlines: deadlines_tx }),
            Automations { conditions: assets, ..Automations::default() },
            config,
        )
        .await;
        let mut bench =
            Bench { storage, clock, deadlines, launched, daemon, last_asset, passes: 0, first: Duration::ZERO };
        bench.pass_ended().await;
        bench.first = started.elapsed();
        bench.ticks_written().await;
        bench
    }

    /// Waits until the evaluation loop sleeps after the pass that started at the clock's
    /// current time.
    async fn pass_ended(&mut self) {
        let after_pass = self.clock.now() + TimeDelta::from_std(INTERVAL).expect("interval");
        while let Some(deadline) = self.deadlines.recv().await {
            if deadline == after_pass {
                self.passes += 1;
                return;
            }
        }
        panic!("the daemon stopped");
    }

    /// One pass, timed.
    async fn pass(&mut self) -> Duration {
        // Deadlines other loops asked for earlier may equal this pass's: only those asked for
        // from now on tell.
        while self.deadlines.try_recv().is_ok() {}
        let started = Instant::now();
        self.clock.advance(TimeDelta::from_std(INTERVAL).expect("interval"));
        self.pass_ended().await;
        let took = started.elapsed();
        self.ticks_written().await;
        took
    }

    /// Waits until every pass so far has its tick stored.
    async fn ticks_written(&self) {
        loop {
            let ticks = self.storage.get_ticks(&self.last_asset, 100).await.expect("ticks");
            if ticks.len() >= self.passes.min(100) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn stop(self) {
        self.daemon.stop().await;
    }
}

fn materialization(asset: &str, run_id: &str) -> NewEvent {
    let mut event = NewEvent::new(EventType::Materialization, run_id);
    event.asset_key = Some(asset.into());
    event
}

fn unpartitioned(key: String, deps: Vec<String>) -> ConditionAsset {
    ConditionAsset {
        key,
        condition: Some(Condition::eager()),
        partitions: None,
        deps: deps.into_iter().map(|key| AssetDep { key, mapping: None }).collect(),
        is_external: false,
        code_version: None,
    }
}

/// 500 layers × 10 assets, each reading two assets of the layer above, all materialized.
fn layered(layers: usize) -> Vec<ConditionAsset> {
    let name = |layer: usize, i: usize| format!("asset_{layer:03}_{i}");
    (0..layers)
        .flat_map(|layer| {
            (0..10).map(move |i| {
                let deps = if layer == 0 { vec![] } else { vec![name(layer - 1, i), name(layer - 1, (i + 1) % 10)] };
                unpartitioned(name(layer, i), deps)
            })
        })
        .collect()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `(median, min, max)` in milliseconds.
fn spread(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    (ms(samples[samples.len() / 2]), ms(samples[0]), ms(samples[samples.len() - 1]))
}

async fn many_assets(label: &str, storage: Storage, passes: usize) {
    let assets = layered(500);
    for asset in &assets {
        storage.enqueue_event(materialization(&asset.key, "history"));
    }
    storage.flush().await.expect("history");
    let count = assets.len();
    let start = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").expect("time").with_timezone(&Utc);
    let mut bench = Bench::start(storage.clone(), start, ConditionAssets::new(assets)).await;
    let first = bench.first;
    let mut samples = Vec::with_capacity(passes);
    for _ in 0..passes {
        samples.push(bench.pass().await);
    }
    assert!(bench.launched.try_recv().is_err(), "nothing to do, nothing launched");
    bench.stop().await;
    let (median, min, max) = spread(samples);
    println!(
        "{label}: {count} assets with eager(), nothing to do: pass median {median:.2} ms (min {min:.2}, max {max:.2}) \
         over {passes} passes; first pass {:.0} ms",
        ms(first)
    );
    tick_throughput(label, &storage, count).await;
}

/// Writes one condition tick per asset through the batching tick writer with the storage's
/// default batch size, twice, and reports ticks per second.
async fn tick_throughput(label: &str, storage: &Storage, assets: usize) {
    let batch = tick_batch_size(storage);
    let clock = Arc::new(VirtualClock::new(Utc::now()));
    let (writer, task) = TickWriter::start(storage.clone(), clock, batch, Some(100));
    let started = Instant::now();
    for round in 0..2 {
        for asset in 0..assets {
            writer.write(StoredTick {
                id: uuid::Uuid::now_v7().to_string(),
                automation_name: format!("tick_bench_{asset}"),
                automation_type: AutomationType::Condition,
                status: TickStatus::Skipped,
                timestamp: round,
                run_ids: Vec::new(),
                backfill_ids: Vec::new(),
                skip_reason: None,
                error: None,
                cursor: None,
            });
        }
        writer.flush().await.expect("ticks written");
    }
    let took = started.elapsed();
    writer.close();
    task.await.expect("tick writer");
    println!(
        "{label}: tick persistence, {} condition ticks in batches of {batch}: {:.0} ticks/s",
        2 * assets,
        (2 * assets) as f64 / took.as_secs_f64()
    );
}

async fn million_partitions(label: &str, storage: Storage, passes: usize) {
    let grid_start: NaiveDateTime =
        NaiveDate::from_ymd_opt(2024, 1, 1).expect("date").and_hms_opt(0, 0, 0).expect("time");
    let end = grid_start + TimeDelta::minutes(1_000_000);
    let minutely =
        Arc::new(Partitions::time_window(grid_start, Some("* * * * *".into()), None, Some(end), None).expect("grid"));
    let env = PartitionEnv::at(end + TimeDelta::days(30));
    assert_eq!(minutely.dim_count(&env), 1_000_000);
    storage.register_partition_definitions(&[&minutely]).await.expect("definitions");
    let partitioned = |key: &str, deps: Vec<AssetDep>, condition: Option<Condition>| ConditionAsset {
        key: key.into(),
        condition,
        partitions: Some(minutely.clone()),
        deps,
        is_external: false,
        code_version: None,
    };
    let assets = ConditionAssets::new([
        partitioned("ticks", vec![], None),
        partitioned(
            "bars",
            vec![AssetDep { key: "ticks".into(), mapping: Some(PartitionMapping::Identity) }],
            Some(Condition::eager()),
        ),
    ]);
    for asset in ["ticks", "bars"] {
        let mut history = materialization(asset, "history");
        history.span = Some(PartitionSpan {
            definition: definition_fingerprint(&minutely),
            positions: RangeSet::span(0, 999_999),
            derived_versions: true,
        });
        storage.enqueue_event(history);
    }
    storage.flush().await.expect("history");
    let start = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").expect("time").with_timezone(&Utc);
    let mut bench = Bench::start(storage.clone(), start, assets).await;
    let first = bench.first;
    let mut samples = Vec::with_capacity(passes);
    for pass in 0..passes {
        // Ten runs each materialized one partition of the upstream, spread over the grid.
        for i in 0..10u128 {
            let position = (pass as u128 * 10 + i) * 6_007 % 1_000_000;
            let key = minutely.recorded_key_at(position, &env).expect("key");
            let mut event = materialization("ticks", &format!("landing-{pass}-{i}"));
            event.partition_key = Some(key.to_string());
            storage.enqueue_event(event);
        }
        storage.flush().await.expect("landing");
        samples.push(bench.pass().await);
        // The ten runs the pass launched materialize their partition and succeed.
        for _ in 0..10 {
            let run = bench.launched.recv().await.expect("a launched run");
            let key = run.partition_key.clone().and_then(|key| serde_json::from_value::<PartitionKey>(key).ok());
            storage.transition_run(&run.run_id, RunStatus::Running).await.expect("running");
            let mut event = materialization("bars", &run.run_id);
            event.partition_key = key.map(|key| key.to_string());
            storage.enqueue_event(event);
            storage.flush().await.expect("bars");
            storage.transition_run(&run.run_id, RunStatus::Success).await.expect("success");
        }
    }
    assert!(bench.launched.try_recv().is_err(), "ten runs per pass");
    bench.stop().await;
    let (median, min, max) = spread(samples);
    println!(
        "{label}: 1 asset of 1,000,000 minutely partitions, 10 upstream partitions updated: pass median {median:.2} ms \
         (min {min:.2}, max {max:.2}) over {passes} passes, 10 runs launched per pass; first pass {:.0} ms",
        ms(first)
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let passes = args.next().and_then(|n| n.parse().ok()).unwrap_or(15);
    let only = args.next();
    let runs = |workload: &str| only.as_deref().is_none_or(|only| only == workload);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("condition passes, {profile} build");
    let dir = std::env::temp_dir().join(format!("rivers-condition-pass-{}", std::process::id()));
    if runs("many") {
        many_assets("memory", Storage::memory().await.expect("memory storage"), passes).await;
        many_assets("embedded", Storage::embedded(&dir.join("many")).await.expect("embedded storage"), passes).await;
    }
    if runs("million") {
        million_partitions("memory", Storage::memory().await.expect("memory storage"), passes).await;
        let storage = Storage::embedded(&dir.join("million")).await.expect("embedded storage");
        million_partitions("embedded", storage, passes).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
