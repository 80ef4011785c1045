//! The backfill coordinator over in-memory storage: counters and per-partition outcomes, the
//! failure policies, and cancellation through the stored marker (as another process leaves it).
//! Each test has its own backfill id: the registry of live backfills is per process.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivers_core::partitions::BackfillStrategy;
use rivers_core::{AssetGraph, BackfillState, ExecutorKind, FailurePolicy, LaunchedBy, NodeDef, Plan, PlanOptions};
use rivers_engine::testing::{FakeRunner, failure, materialized};
use rivers_engine::{BackfillJob, BackfillRuns, RunOptions, StepRunner, coordinate_backfill, register_live_backfill};
use rivers_storage::{BackfillRecord, Storage};

/// Runs whose index is in `failing` fail; every run's step is held for `hold`.
struct Runs {
    failing: HashSet<usize>,
    hold: Duration,
}

impl BackfillRuns for Runs {
    fn prepare(&self, index: usize) -> Result<(Arc<dyn StepRunner>, RunOptions), String> {
        let fails = self.failing.contains(&index);
        let runner: Arc<dyn StepRunner> =
            FakeRunner::holding(
                self.hold,
                move |request| if fails { Err(failure("no data")) } else { materialized(request) },
            );
        Ok((runner, RunOptions::manual(format!("run-{index}"), 1)))
    }

    fn run_keys(&self, index: usize) -> Vec<String> {
        vec![format!("p{}", index + 1)]
    }
}

fn plan() -> Plan {
    let graph = AssetGraph::build(vec![NodeDef::asset("a")], &[], HashMap::new()).unwrap();
    graph
        .plan(None, false, &PlanOptions { executor: ExecutorKind::InProcess, run_retry: None, default_retry: None })
        .unwrap()
}

async fn submit(storage: &Storage, id: &str, runs: usize, policy: FailurePolicy) -> BackfillJob {
    let record = BackfillRecord {
        num_partitions: runs as u64,
        num_runs: runs as u64,
        ..BackfillRecord::new(id, BackfillState::InProgress, BackfillStrategy::MultiRun, policy, LaunchedBy::MANUAL)
    };
    storage.create_backfill(&record).await.unwrap();
    BackfillJob { backfill_id: id.into(), plan: plan(), num_runs: runs, failure_policy: policy, max_concurrency: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_outcomes_add_up_and_failures_go_on_under_continue() {
    let storage = Storage::memory().await.unwrap();
    let job = submit(&storage, "bf-continue", 4, FailurePolicy::Continue).await;
    let runs = Arc::new(Runs { failing: HashSet::from([1]), hold: Duration::ZERO });
    let outcome = coordinate_backfill(storage.clone(), job, runs, register_live_backfill("bf-continue")).await.unwrap();
    assert_eq!((outcome.status, outcome.completed, outcome.failed, outcome.canceled), (BackfillState::Failed, 3, 1, 0));
    let record = storage.get_backfill("bf-continue").await.unwrap().unwrap();
    assert_eq!((record.status, record.completed, record.failed, record.canceled), (BackfillState::Failed, 3, 1, 0));
    assert_eq!(record.failed_keys, ["p2"]);
    assert_eq!(record.run_ids, ["run-0", "run-1", "run-2", "run-3"]);
    assert!(!rivers_engine::is_live_backfill("bf-continue"), "the registry forgets an ended backfill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_on_failure_launches_nothing_more_and_counts_the_rest_canceled() {
    let storage = Storage::memory().await.unwrap();
    let job = submit(&storage, "bf-stop", 4, FailurePolicy::StopOnFailure).await;
    let runs = Arc::new(Runs { failing: HashSet::from([0]), hold: Duration::ZERO });
    let outcome = coordinate_backfill(storage.clone(), job, runs, register_live_backfill("bf-stop")).await.unwrap();
    assert_eq!((outcome.status, outcome.failed, outcome.canceled), (BackfillState::Failed, 1, 3));
    let record = storage.get_backfill("bf-stop").await.unwrap().unwrap();
    assert_eq!(record.run_ids, ["run-0"]);
    assert_eq!(record.canceled_keys, ["p2", "p3", "p4"], "never-started partitions count as canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_cancel_marker_stops_the_coordinator_within_a_second() {
    let storage = Storage::memory().await.unwrap();
    let job = submit(&storage, "bf-marker", 20, FailurePolicy::Continue).await;
    let runs = Arc::new(Runs { failing: HashSet::new(), hold: Duration::from_millis(100) });
    let coordinator =
        tokio::spawn(coordinate_backfill(storage.clone(), job, runs, register_live_backfill("bf-marker")));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(storage.request_backfill_cancel("bf-marker").await.unwrap());
    let requested = Instant::now();
    let outcome = coordinator.await.unwrap().unwrap();
    assert!(requested.elapsed() < Duration::from_secs(1), "took {:?}", requested.elapsed());
    assert_eq!(outcome.status, BackfillState::Canceled);
    assert_eq!(outcome.completed + outcome.failed + outcome.canceled, 20);
    assert!(outcome.canceled >= 14, "{outcome:?}");
    let record = storage.get_backfill("bf-marker").await.unwrap().unwrap();
    assert_eq!(record.canceled_keys.len() as u64, record.canceled);
    assert!(!storage.request_backfill_cancel("bf-marker").await.unwrap(), "an ended backfill takes no marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_in_this_process_signals_the_live_coordinator() {
    let storage = Storage::memory().await.unwrap();
    let job = submit(&storage, "bf-live", 10, FailurePolicy::Continue).await;
    let runs = Arc::new(Runs { failing: HashSet::new(), hold: Duration::from_millis(50) });
    let registration = register_live_backfill("bf-live");
    let coordinator = tokio::spawn(coordinate_backfill(storage.clone(), job, runs, registration));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(rivers_engine::cancel_live_backfill("bf-live"));
    let outcome = coordinator.await.unwrap().unwrap();
    assert_eq!(outcome.status, BackfillState::Canceled);
    assert!(!rivers_engine::cancel_live_backfill("bf-live"));
    assert_eq!(storage.get_backfill("bf-live").await.unwrap().unwrap().status, BackfillState::Canceled);
}
