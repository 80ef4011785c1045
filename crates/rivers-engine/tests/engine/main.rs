//! The engine driven by a closure-backed `StepRunner` over in-memory storage (one test binary:
//! `collect_stream` is a module of it).

mod backfill;
mod collect_stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rivers_core::{
    AssetGraph, Backoff, EventType, ExecutorKind, Gather, NodeDef, Plan, PlanGrowth, PlanOptions, PlanStep, RetryOn,
    RetryPolicy, RetrySpec, RunStatus, StepKey,
};
use rivers_engine::testing::{FakeRunner, failure, materialized};
use rivers_engine::{RunOptions, execute_run};
use rivers_storage::{FailBatches, Storage};

/// Requests cancellation of `run_id` from inside a (synchronous) step body, as another
/// client of the store would.
fn cancel_from_a_step(storage: &Storage, run_id: &str) {
    let (storage, run_id) = (storage.clone(), run_id.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(storage.request_cancellation(&run_id)).unwrap()
    })
    .join()
    .unwrap();
}

fn options(run_id: &str) -> RunOptions {
    RunOptions::manual(run_id, 2)
}

/// a -> b -> c, plus an independent d.
fn chain_plan(retry: Option<RetryPolicy>) -> Plan {
    let mut b = NodeDef::asset("b").with_param("a");
    b.retry = retry.map(RetrySpec::Policy);
    let graph = AssetGraph::build(
        vec![NodeDef::asset("a"), b, NodeDef::asset("c").with_param("b"), NodeDef::asset("d")],
        &[],
        HashMap::new(),
    )
    .unwrap();
    graph
        .plan(None, false, &PlanOptions { executor: ExecutorKind::InProcess, run_retry: None, default_retry: None })
        .unwrap()
}

async fn event_types(storage: &Storage, run_id: &str) -> Vec<(EventType, Option<String>)> {
    storage.get_events_for_run(run_id).await.unwrap().into_iter().map(|e| (e.event_type, e.asset_key)).collect()
}

#[tokio::test]
async fn successful_run_writes_the_lifecycle_in_order() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(materialized);
    let outcome = execute_run(&storage, &chain_plan(None), runner.clone(), options("r1")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(outcome.attempted, vec!["a", "d", "b", "c"]);
    let events = event_types(&storage, "r1").await;
    assert_eq!(events.first().unwrap().0, EventType::RunStart);
    assert_eq!(events.last().unwrap().0, EventType::RunSuccess);
    let for_b: Vec<EventType> = events.iter().filter(|(_, k)| k.as_deref() == Some("b")).map(|(t, _)| *t).collect();
    assert_eq!(for_b, vec![EventType::StepStart, EventType::Materialization, EventType::StepSuccess]);
    let record = storage.get_run("r1").await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Success);
    assert!(record.end_time.is_some());
    let c = storage.get_latest_materialization("c", None).await.unwrap().unwrap();
    let b_version = storage.get_asset_record("b").await.unwrap().unwrap().last_data_version.unwrap();
    assert_eq!(c.input_data_versions, vec![("b".to_string(), b_version)]);
}

#[tokio::test]
async fn failure_skips_downstream_and_keeps_independent_steps() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(|r| if r.step_key == "b" { Err(failure("boom")) } else { materialized(r) });
    let outcome = execute_run(&storage, &chain_plan(None), runner.clone(), options("r2")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(outcome.failed, vec![("b".to_string(), "boom".to_string())]);
    assert!(!runner.called().contains(&"c".to_string()));
    assert!(runner.called().contains(&"d".to_string()));
    let events = event_types(&storage, "r2").await;
    assert!(events.contains(&(EventType::StepSkipped, Some("c".into()))));
    assert!(!events.contains(&(EventType::StepStart, Some("c".into()))));
    assert_eq!(events.last().unwrap().0, EventType::RunFailure);
    assert_eq!(runner.failure_hooks(), 1);
}

#[tokio::test]
async fn retries_until_success_with_retry_events() {
    let storage = Storage::memory().await.unwrap();
    let policy = RetryPolicy {
        max_retries: 2,
        backoff: Some(Backoff::Constant { delay: 0.001, jitter: 0.0, max_delay: None }),
        retry_on: RetryOn::All,
        escalate_on: vec![],
    };
    let runner =
        FakeRunner::new(|r| if r.step_key == "b" && r.attempt < 3 { Err(failure("flaky")) } else { materialized(r) });
    let outcome = execute_run(&storage, &chain_plan(Some(policy)), runner.clone(), options("r3")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    let retries: Vec<Vec<(String, String)>> = storage
        .get_events_for_run("r3")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EventType::StepRetry)
        .map(|e| e.metadata)
        .collect();
    assert_eq!(retries.len(), 2);
    assert!(retries[0].contains(&("rivers/attempt".into(), "1".into())));
    assert!(retries[1].contains(&("rivers/attempt".into(), "2".into())));
    assert_eq!(runner.failure_hooks(), 0);
}

#[tokio::test]
async fn transient_policy_does_not_retry_plain_errors() {
    let storage = Storage::memory().await.unwrap();
    let policy = RetryPolicy { max_retries: 3, backoff: None, retry_on: RetryOn::Transient, escalate_on: vec![] };
    let runner = FakeRunner::new(|r| if r.step_key == "b" { Err(failure("bad value")) } else { materialized(r) });
    execute_run(&storage, &chain_plan(Some(policy)), runner.clone(), options("r4")).await.unwrap();
    assert_eq!(runner.called().iter().filter(|k| *k == "b").count(), 1);
}

#[tokio::test]
async fn resume_skips_steps_that_already_succeeded() {
    let storage = Storage::memory().await.unwrap();
    let first = FakeRunner::new(|r| if r.step_key == "c" { Err(failure("crash")) } else { materialized(r) });
    execute_run(&storage, &chain_plan(None), first, options("r5")).await.unwrap();
    let second = FakeRunner::new(materialized);
    let mut resume = options("r5");
    resume.resume = true;
    let outcome = execute_run(&storage, &chain_plan(None), second.clone(), resume).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(second.called(), vec!["c"]);
    assert_eq!(outcome.attempted.len(), 4);
    let mats = storage
        .get_events_for_run("r5")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EventType::Materialization)
        .count();
    assert_eq!(mats, 4, "each asset materialized exactly once across both attempts of the run");
}

#[tokio::test]
async fn cancellation_stops_new_steps() {
    let storage = Storage::memory().await.unwrap();
    let handle = storage.clone();
    let runner = FakeRunner::new(move |r| {
        if r.step_key == "a" {
            // Request cancellation from inside the first step, like a user or the UI would.
            cancel_from_a_step(&handle, &r.run_id);
        }
        materialized(r)
    });
    let outcome = execute_run(&storage, &chain_plan(None), runner.clone(), options("r6")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Canceled);
    assert_eq!(runner.called(), vec!["a"]);
    assert_eq!(event_types(&storage, "r6").await.last().unwrap().0, EventType::RunCanceled);
    // The runner was told once, so that it can interrupt what is still running.
    assert_eq!(runner.cancellations(), vec!["r6"]);
}

#[tokio::test]
async fn stop_on_failure_starts_no_further_steps() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(|r| if r.step_key == "a" { Err(failure("first")) } else { materialized(r) });
    let mut opts = options("r7");
    opts.stop_on_failure = true;
    let outcome = execute_run(&storage, &chain_plan(None), runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(runner.called(), vec!["a"]);
}

/// The step `b` makes every later write batch fail, as a store that goes away would.
fn store_fails_during_b(storage: &Storage) -> Arc<FakeRunner> {
    let handle = storage.clone();
    FakeRunner::new(move |r| {
        if r.step_key == "b" {
            handle.fail_batches(FailBatches { first: 1, attempts: u64::MAX });
        }
        materialized(r)
    })
}

#[tokio::test]
async fn lost_step_events_fail_the_run_and_resume_reruns_exactly_the_unfinished_steps() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::embedded(dir.path()).await.unwrap();
    let plan = chain_plan(None);
    let err = execute_run(&storage, &plan, store_fails_during_b(&storage), options("lost")).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("were not written") && message.contains("StepSuccess of 'b'"), "{message}");

    // The store recovers: what is stored is consistent, and says the run failed.
    storage.fail_batches(FailBatches { first: 1, attempts: 0 });
    let record = storage.get_run("lost").await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Failure);
    assert!(record.message.unwrap().contains("storage error"));
    let events = event_types(&storage, "lost").await;
    assert!(events.contains(&(EventType::StepSuccess, Some("a".into()))));
    assert!(!events.contains(&(EventType::StepSuccess, Some("b".into()))));
    assert!(!events.iter().any(|(t, _)| *t == EventType::RunSuccess));
    let done = storage.succeeded_steps("lost", None).await.unwrap();
    assert!(done.contains("a") && !done.contains("b") && !done.contains("c"));

    let second = FakeRunner::new(materialized);
    let mut resume = options("lost");
    resume.resume = true;
    let outcome = execute_run(&storage, &plan, second.clone(), resume).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    let mut expected: Vec<String> =
        ["a", "b", "c", "d"].into_iter().filter(|k| !done.contains(*k)).map(str::to_owned).collect();
    let mut rerun = second.called();
    expected.sort();
    rerun.sort();
    assert_eq!(rerun, expected);
    let materialized_once = storage
        .get_events_for_run("lost")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EventType::Materialization)
        .filter_map(|e| e.asset_key)
        .collect::<Vec<_>>();
    // Lost materializations are not stored, so every asset has exactly one across both runs.
    let mut assets = materialized_once.clone();
    assets.sort();
    assets.dedup();
    assert_eq!((assets.len(), materialized_once.len()), (4, 4), "{materialized_once:?}");
}

#[tokio::test]
async fn lost_events_on_memory_storage_fail_the_run_at_its_end() {
    let storage = Storage::memory().await.unwrap();
    let err = execute_run(&storage, &chain_plan(None), store_fails_during_b(&storage), options("mem-lost"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("were not written"), "{err}");
    storage.fail_batches(FailBatches { first: 1, attempts: 0 });
    let record = storage.get_run("mem-lost").await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Failure);
}

/// Two independent steps: `x` (with `retry`) and `y`, registered in that order.
fn pair_plan(retry: RetryPolicy) -> Plan {
    let mut x = NodeDef::asset("x");
    x.retry = Some(RetrySpec::Policy(retry));
    let graph = AssetGraph::build(vec![x, NodeDef::asset("y")], &[], HashMap::new()).unwrap();
    graph
        .plan(None, false, &PlanOptions { executor: ExecutorKind::InProcess, run_retry: None, default_retry: None })
        .unwrap()
}

fn constant_backoff(seconds: f64) -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        backoff: Some(Backoff::Constant { delay: seconds, jitter: 0.0, max_delay: None }),
        retry_on: RetryOn::All,
        escalate_on: vec![],
    }
}

#[tokio::test]
async fn a_step_waiting_out_a_backoff_releases_its_executor_slot() {
    let storage = Storage::memory().await.unwrap();
    let runner =
        FakeRunner::new(|r| if r.step_key == "x" && r.attempt == 1 { Err(failure("flaky")) } else { materialized(r) });
    let outcome =
        execute_run(&storage, &pair_plan(constant_backoff(0.2)), runner.clone(), options("slot")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    // In-process runs one step at a time: y ran during x's backoff, not after its retry.
    assert_eq!(runner.calls(), [("x".to_string(), 1), ("y".to_string(), 1), ("x".to_string(), 2)]);
}

#[tokio::test]
async fn cancellation_interrupts_a_backoff_and_classifies_the_step_canceled() {
    let storage = Storage::memory().await.unwrap();
    let handle = storage.clone();
    let runner = FakeRunner::new(move |r| match r.step_key.as_str() {
        "x" => Err(failure("flaky")),
        _ => {
            // y runs during x's one-minute backoff and cancels the run.
            cancel_from_a_step(&handle, &r.run_id);
            materialized(r)
        }
    });
    let plan = pair_plan(constant_backoff(60.0));
    let run = execute_run(&storage, &plan, runner.clone(), options("cancel-wait"));
    let outcome =
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("the backoff was not interrupted").unwrap();
    assert_eq!(outcome.status, RunStatus::Canceled);
    let failure = storage
        .get_events_for_run("cancel-wait")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == EventType::StepFailure)
        .unwrap();
    assert_eq!(failure.asset_key.as_deref(), Some("x"));
    assert!(failure.metadata.contains(&("rivers/failure_reason".into(), "canceled".into())));
    assert_eq!(runner.failure_hooks(), 1);
}

#[tokio::test]
async fn a_panicking_runner_fails_its_step_and_the_run() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(|r| if r.step_key == "b" { panic!("runner bug") } else { materialized(r) });
    let outcome = execute_run(&storage, &chain_plan(None), runner.clone(), options("panic")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(outcome.failed.len(), 1);
    assert!(outcome.failed[0].1.contains("panicked"), "{:?}", outcome.failed);
    let events = event_types(&storage, "panic").await;
    assert!(events.contains(&(EventType::StepFailure, Some("b".into()))));
    assert!(events.contains(&(EventType::StepSkipped, Some("c".into()))));
    assert_eq!(events.last().unwrap().0, EventType::RunFailure);
}

/// How long each step of the concurrency tests stays running, so that steps allowed to run
/// together do overlap. The assertions count overlaps; they never measure time.
const HOLD: Duration = Duration::from_millis(30);

fn plan_of(nodes: Vec<NodeDef>, executor: ExecutorKind) -> Plan {
    let graph = AssetGraph::build(nodes, &[], HashMap::new()).unwrap();
    graph.plan(None, false, &PlanOptions { executor, run_retry: None, default_retry: None }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lane_runs_up_to_its_cap() {
    let storage = Storage::memory().await.unwrap();
    let mut nodes: Vec<NodeDef> = (0..6).map(|i| NodeDef::asset(format!("sync_{i}"))).collect();
    nodes.extend((0..6).map(|i| NodeDef { is_async: true, ..NodeDef::asset(format!("async_{i}")) }));
    let runner = FakeRunner::holding(HOLD, materialized);
    let mut opts = options("lanes");
    opts.max_workers = 2;
    opts.max_async_concurrent = Some(3);
    let outcome = execute_run(&storage, &plan_of(nodes, ExecutorKind::Parallel), runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    // Sync steps share the two workers, async steps their own cap of three, side by side.
    assert_eq!(runner.peak_concurrency(ExecutorKind::Parallel), 5);
    assert_eq!(runner.peak_total(), 5);

    let in_process = FakeRunner::holding(HOLD, materialized);
    let nodes = (0..4).map(|i| NodeDef::asset(format!("step_{i}"))).collect();
    execute_run(&storage, &plan_of(nodes, ExecutorKind::InProcess), in_process.clone(), options("serial"))
        .await
        .unwrap();
    assert_eq!(in_process.peak_concurrency(ExecutorKind::InProcess), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_overrides_run_each_level_lane_by_lane() {
    let storage = Storage::memory().await.unwrap();
    // Level 0: `pinned` (in-process override) and `q`, `r` (parallel); level 1: `s` after `q`.
    let pinned = NodeDef { executor_override: Some("in_process".into()), ..NodeDef::asset("pinned") };
    let nodes = vec![pinned, NodeDef::asset("q"), NodeDef::asset("r"), NodeDef::asset("s").with_param("q")];
    let plan = plan_of(nodes, ExecutorKind::Parallel);
    assert!(plan.level_grouping);
    let runner = FakeRunner::holding(HOLD, materialized);
    let mut opts = options("levels");
    opts.max_workers = 4;
    let outcome = execute_run(&storage, &plan, runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    // Within level 0 the in-process step and the parallel pair never overlap...
    assert_eq!(runner.peak_concurrency(ExecutorKind::Parallel), 2);
    assert_eq!(runner.peak_total(), 2);
    // ... and level 1 starts only once level 0 is done.
    assert_eq!(runner.finished().last().map(String::as_str), Some("s"));
}

/// `source -> collect`, where `source` fans out into `work[0..n]` that `collect` then waits
/// for; `work` itself is not planned, only its instances run. Returns the plan and the
/// template step the instances are made from.
fn fan_out_plan() -> (Plan, PlanStep) {
    let nodes = vec![
        NodeDef::asset("source"),
        NodeDef::asset("work").with_param("source"),
        NodeDef::asset("collect").with_param("source"),
    ];
    let graph = AssetGraph::build(nodes, &[], HashMap::new()).unwrap();
    let options = PlanOptions { executor: ExecutorKind::Parallel, run_retry: None, default_retry: None };
    let template = graph.plan(None, false, &options).unwrap().step(&StepKey::node("work")).unwrap().clone();
    let plan = graph.plan(Some(&["source".into(), "collect".into()]), false, &options).unwrap();
    (plan, template)
}

fn fan_out(template: &PlanStep, instances: usize) -> PlanGrowth {
    let steps: Vec<_> =
        (0..instances).map(|i| template.mapped_instance(&i.to_string(), vec![StepKey::node("source")])).collect();
    let keys = steps.iter().map(|s| s.key.clone()).collect();
    PlanGrowth { steps, fan_in: vec![(StepKey::node("collect"), keys)] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_grows_while_it_runs_and_fan_in_waits_for_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    for storage in [Storage::memory().await.unwrap(), Storage::embedded(dir.path()).await.unwrap()] {
        let (plan, template) = fan_out_plan();
        let growth = fan_out(&template, 3);
        let runner = FakeRunner::holding(HOLD, move |r| {
            let mut output = materialized(r)?;
            if r.step_key == "source" {
                output.growth = growth.clone();
            }
            Ok(output)
        });
        let mut opts = options("grows");
        opts.max_workers = 4;
        let outcome = execute_run(&storage, &plan, runner.clone(), opts).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
        let finished = runner.finished();
        assert_eq!(finished.first().map(String::as_str), Some("source"));
        assert_eq!(finished.last().map(String::as_str), Some("collect"));
        for key in ["work[0]", "work[1]", "work[2]"] {
            assert!(outcome.attempted.contains(&key.to_string()), "{key} not attempted: {:?}", outcome.attempted);
        }
        // The instances ran side by side, and carried their mapping key to the runner.
        assert!(runner.peak_concurrency(ExecutorKind::Parallel) >= 3);
        let starts: Vec<_> = event_types(&storage, "grows")
            .await
            .into_iter()
            .filter(|(t, _)| *t == EventType::StepStart)
            .filter_map(|(_, key)| key)
            .collect();
        assert!(starts.contains(&"work[1]".to_string()), "{starts:?}");
        assert_eq!(storage.get_run_progress("grows").await.unwrap(), (5, 5));
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_instance_skips_the_fan_in_step_and_bad_growth_fails_its_producer() {
    let storage = Storage::memory().await.unwrap();
    let (plan, template) = fan_out_plan();
    let growth = fan_out(&template, 2);
    let runner = FakeRunner::new(move |r| {
        if r.step_key == "work[1]" {
            assert_eq!(r.mapping_key.as_deref(), Some("1"));
            return Err(failure("instance broke"));
        }
        let mut output = materialized(r)?;
        if r.step_key == "source" {
            output.growth = growth.clone();
        }
        Ok(output)
    });
    let outcome = execute_run(&storage, &plan, runner.clone(), options("instance-fails")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(outcome.failed, vec![("work[1]".to_string(), "instance broke".to_string())]);
    assert!(!runner.called().contains(&"collect".to_string()));
    assert!(event_types(&storage, "instance-fails").await.contains(&(EventType::StepSkipped, Some("collect".into()))));

    // Growth naming a step that does not exist fails the producer with a message naming it.
    let bad =
        PlanGrowth { steps: vec![template.mapped_instance("x", vec![StepKey::node("nowhere")])], fan_in: Vec::new() };
    let runner = FakeRunner::new(move |r| {
        let mut output = materialized(r)?;
        if r.step_key == "source" {
            output.growth = bad.clone();
        }
        Ok(output)
    });
    let outcome = execute_run(&storage, &plan, runner, options("bad-growth")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    let (step, message) = &outcome.failed[0];
    assert_eq!(step, "source");
    assert!(message.contains("'work[x]'") && message.contains("'nowhere'"), "{message}");
    // The producer's output is not recorded as a materialization of the run it failed.
    let events = event_types(&storage, "bad-growth").await;
    assert!(!events.contains(&(EventType::Materialization, Some("source".into()))), "{events:?}");
    assert!(!events.contains(&(EventType::StepSuccess, Some("source".into()))), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_a_step_waiting_out_a_backoff_with_its_last_failure() {
    let storage = Storage::memory().await.unwrap();
    // x fails once and waits 0.2 s to retry; meanwhile y fails for good and the run stops.
    let runner = FakeRunner::new(|r| match (r.step_key.as_str(), r.attempt) {
        ("x", 1) => Err(failure("flaky")),
        ("y", _) => Err(failure("y broke")),
        _ => materialized(r),
    });
    let mut opts = options("stops");
    opts.stop_on_failure = true;
    let outcome = execute_run(&storage, &pair_plan(constant_backoff(0.2)), runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(runner.calls(), vec![("x".to_string(), 1), ("y".to_string(), 1)]);
    let failed: Vec<(&str, &str)> = outcome.failed.iter().map(|(s, m)| (s.as_str(), m.as_str())).collect();
    assert_eq!(failed, [("y", "y broke"), ("x", "flaky")]);
    assert_eq!(runner.failure_hooks(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launched_run_runs_in_the_background_and_any_number_of_callers_wait_for_it() {
    let storage = Storage::memory().await.unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = parking_lot::Mutex::new(gate);
    let runner = FakeRunner::new(move |r| {
        if r.step_key == "a" {
            gate.lock().recv_timeout(Duration::from_secs(30)).unwrap();
        }
        materialized(r)
    });
    let launched = rivers_engine::launch_run(storage.clone(), chain_plan(None), runner, options("launched"));
    assert_eq!(launched.run_id(), "launched");
    // The run is under way and waits for `a`: a bounded wait gives up, the run goes on.
    assert!(launched.wait(Some(Duration::from_millis(20))).await.is_none());
    assert!(launched.outcome().is_none());
    release.send(()).unwrap();
    let first = launched.wait(None).await.unwrap();
    let second = launched.wait(Some(Duration::ZERO)).await.unwrap();
    let outcome = first.as_ref().as_ref().unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(second.as_ref().as_ref().unwrap(), outcome);
    assert_eq!(storage.get_run("launched").await.unwrap().unwrap().status, RunStatus::Success);
}

/// `sales` produces `orders` and `refunds`; `report` reads `orders`.
fn multi_plan(selection: &[&str]) -> Plan {
    let graph = AssetGraph::build(
        vec![NodeDef::multi("sales", &["orders", "refunds"]), NodeDef::asset("report").with_param("orders")],
        &[],
        HashMap::new(),
    )
    .unwrap();
    let selection: Vec<String> = selection.iter().map(|s| s.to_string()).collect();
    graph
        .plan(
            Some(&selection),
            false,
            &PlanOptions { executor: ExecutorKind::InProcess, run_retry: None, default_retry: None },
        )
        .unwrap()
}

/// Materializes the request's selected outputs, or its node when it has none.
fn materialize_outputs(
    request: &rivers_engine::StepRequest,
) -> Result<rivers_engine::StepOutput, rivers_engine::StepFailure> {
    if request.output_selection.is_empty() {
        return materialized(request);
    }
    Ok(rivers_engine::StepOutput {
        materializations: request
            .output_selection
            .iter()
            .map(|key| rivers_engine::Materialized { asset_key: key.clone(), ..Default::default() })
            .collect(),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_multi_asset_step_is_told_its_selected_outputs_and_reported_by_them() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(materialize_outputs);
    let outcome = execute_run(&storage, &multi_plan(&["refunds"]), runner.clone(), options("m1")).await.unwrap();
    assert_eq!(outcome.attempted, vec!["refunds"], "a multi-asset step is listed as its selected outputs");
    let events = event_types(&storage, "m1").await;
    assert!(events.contains(&(EventType::Materialization, Some("refunds".into()))));
    assert!(!events.iter().any(|(_, key)| key.as_deref() == Some("orders")), "unselected outputs write nothing");
    assert!(events.contains(&(EventType::StepSuccess, Some("sales".into()))), "step events carry the step name");

    let outcome = execute_run(&storage, &multi_plan(&["sales", "report"]), runner, options("m2")).await.unwrap();
    assert_eq!(outcome.attempted, vec!["orders", "refunds", "report"]);
    let report = storage.get_latest_materialization("report", None).await.unwrap().unwrap();
    let orders = storage.get_asset_record("orders").await.unwrap().unwrap().last_data_version.unwrap();
    assert_eq!(report.input_data_versions, vec![("orders".to_string(), orders)], "inputs name the output read");
}

#[tokio::test]
async fn outputs_persisted_before_a_failure_are_recorded_and_the_failure_names_every_selected_output() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(|request| {
        if request.node_name != "sales" {
            return materialized(request);
        }
        let mut failed = failure("the second output could not be computed");
        failed.materializations =
            vec![rivers_engine::Materialized { asset_key: "orders".into(), ..Default::default() }];
        Err(failed)
    });
    let outcome = execute_run(&storage, &multi_plan(&["sales"]), runner, options("m3")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    let failed: Vec<&str> = outcome.failed.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(failed, vec!["orders", "refunds"]);
    let events = event_types(&storage, "m3").await;
    let materialized_at = events.iter().position(|e| *e == (EventType::Materialization, Some("orders".into())));
    let failed_at = events.iter().position(|e| *e == (EventType::StepFailure, Some("sales".into())));
    assert!(materialized_at.unwrap() < failed_at.unwrap(), "{events:?}");
}

/// Graph `g`: `g/items` produces elements, `g/score` is mapped over them (capped at
/// `max_concurrency`), `g/total` gathers the scores (`collect()` without a `gather`, else as
/// `gather` says); the graph step waits for all of them.
fn mapped_graph_plan(max_concurrency: Option<u32>, executor: ExecutorKind, gather: Option<Gather>) -> Plan {
    use rivers_core::{MapDef, NodeKind, ParamDef, ParamRole};
    let internal = |name: &str| NodeDef { graph: Some("g".into()), ..NodeDef::task(name) };
    let wired = |name: &str, source: &str, gather| ParamDef {
        role: ParamRole::Wired,
        source: Some(source.into()),
        gather,
        ..ParamDef::named(name)
    };
    let mut score = internal("g/score");
    score.params.push(wired("item", "g/items", None));
    score.map = Some(MapDef { max_concurrency });
    let mut total = internal("g/total");
    total.params.push(wired("scores", "g/score", gather));
    let graph = NodeDef {
        kind: NodeKind::Graph,
        members: vec!["g/total".into(), "g/items".into(), "g/score".into()],
        ..NodeDef::asset("g")
    };
    AssetGraph::build(vec![internal("g/items"), score, total, graph], &[], HashMap::new())
        .unwrap()
        .plan(None, false, &PlanOptions { executor, run_retry: None, default_retry: None })
        .unwrap()
}

/// A runner whose template `g/score` reports `keys`; everything else succeeds.
fn template_reporting(keys: Vec<&'static str>) -> impl Fn(&rivers_engine::StepRequest) -> StepResult + Send + Sync {
    move |request| {
        let mut output = materialized(request)?;
        if request.step_key == "g/score" {
            output.fan_out = Some(keys.iter().map(|k| k.to_string()).collect());
        }
        Ok(output)
    }
}

type StepResult = Result<rivers_engine::StepOutput, rivers_engine::StepFailure>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_expands_a_template_into_keyed_instances_and_gathers_them_in_order() {
    let storage = Storage::memory().await.unwrap();
    let seen_fan_in = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen_fan_in);
    let body = template_reporting(vec!["north", "south", "west"]);
    let runner = FakeRunner::holding(HOLD, move |request| {
        if request.step_key == "g/total" || request.step_key == "g" {
            record.lock().push((request.step_key.to_string(), request.fan_in.clone()));
        }
        if request.mapping_key.is_some() {
            assert!(request.fan_in.is_empty(), "an instance gets its element by key, not a fan-in");
        }
        body(request)
    });
    let mut opts = options("fan-out");
    opts.max_workers = 4;
    let plan = mapped_graph_plan(None, ExecutorKind::Parallel, None);
    let outcome = execute_run(&storage, &plan, runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    for key in ["g/score[north]", "g/score[south]", "g/score[west]"] {
        assert!(outcome.attempted.contains(&key.to_string()), "{key}: {:?}", outcome.attempted);
    }
    let finished = runner.finished();
    let total_at = finished.iter().position(|k| k == "g/total").unwrap();
    assert!(finished.iter().take(total_at).filter(|k| k.starts_with("g/score[")).count() == 3, "{finished:?}");
    assert_eq!(finished.last().map(String::as_str), Some("g"), "the graph step waits for every instance");
    let seen = seen_fan_in.lock();
    let (_, fan_in) = seen.iter().find(|(key, _)| key == "g/total").unwrap();
    assert_eq!(fan_in.len(), 1);
    assert_eq!(fan_in[0].template, "g/score");
    assert_eq!(fan_in[0].keys, vec!["north", "south", "west"], "element order");
    let mut completed = fan_in[0].completed.clone();
    completed.sort();
    assert_eq!(completed, vec!["north", "south", "west"], "every instance, in completion order");
    assert!(runner.peak_concurrency(ExecutorKind::Parallel) >= 3, "uncapped instances run side by side");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_caps_the_running_instances_of_one_map() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::holding(HOLD, template_reporting(vec!["0", "1", "2", "3", "4", "5"]));
    let mut opts = options("capped");
    opts.max_workers = 6;
    let plan = mapped_graph_plan(Some(2), ExecutorKind::Parallel, None);
    let outcome = execute_run(&storage, &plan, runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    assert_eq!(runner.peak_concurrency(ExecutorKind::Parallel), 2);
}

#[tokio::test]
async fn an_empty_fan_out_runs_its_consumers_with_no_keys_and_duplicate_keys_fail_the_template() {
    let storage = Storage::memory().await.unwrap();
    let runner = FakeRunner::new(template_reporting(vec![]));
    let plan = mapped_graph_plan(None, ExecutorKind::InProcess, None);
    let outcome = execute_run(&storage, &plan, runner.clone(), options("empty")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    assert!(runner.called().contains(&"g/total".to_string()));

    let runner = FakeRunner::new(template_reporting(vec!["a", "a"]));
    let outcome = execute_run(&storage, &plan, runner.clone(), options("duplicates")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(outcome.failed[0].0, "g/score");
    assert!(outcome.failed[0].1.contains("'a' appears twice"), "{:?}", outcome.failed);
    assert!(!runner.called().iter().any(|k| k.starts_with("g/score[")));
}

#[tokio::test]
async fn resume_reruns_the_template_and_only_the_unfinished_instances() {
    let storage = Storage::memory().await.unwrap();
    let plan = mapped_graph_plan(None, ExecutorKind::InProcess, None);
    let body = template_reporting(vec!["0", "1", "2"]);
    let runner = FakeRunner::new(move |request| {
        if request.step_key == "g/score[1]" {
            return Err(failure("instance 1 broke"));
        }
        body(request)
    });
    let outcome = execute_run(&storage, &plan, runner, options("resumed")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);

    let runner = FakeRunner::new(template_reporting(vec!["0", "1", "2"]));
    let mut opts = options("resumed");
    opts.resume = true;
    let outcome = execute_run(&storage, &plan, runner.clone(), opts).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    let called = runner.called();
    assert!(called.contains(&"g/score".to_string()), "the template re-reads its producer");
    assert!(called.contains(&"g/score[1]".to_string()));
    assert!(!called.contains(&"g/score[0]".to_string()), "finished instances are not run again: {called:?}");
    assert!(!called.contains(&"g/items".to_string()));
}

#[tokio::test]
async fn a_graph_step_fails_with_its_internal_step_and_runs_its_failure_hooks() {
    let storage = Storage::memory().await.unwrap();
    let body = template_reporting(vec!["0", "1"]);
    let runner = FakeRunner::new(move |request| {
        if request.step_key == "g/score[1]" {
            return Err(failure("instance 1 broke"));
        }
        body(request)
    });
    let plan = mapped_graph_plan(None, ExecutorKind::InProcess, None);
    let outcome = execute_run(&storage, &plan, runner.clone(), options("graph-fails")).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    let failed: Vec<&str> = outcome.failed.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(failed, vec!["g/score[1]", "g"], "the instance first, then its graph");
    assert!(outcome.failed[1].1.contains("'g/score[1]'"), "{:?}", outcome.failed);
    assert_eq!(runner.failure_hooks(), 2, "the instance's and the graph's failure hooks");
    let events = event_types(&storage, "graph-fails").await;
    assert!(events.contains(&(EventType::StepSkipped, Some("g/total".into()))));
    assert!(events.contains(&(EventType::StepFailure, Some("g".into()))));
    assert!(!runner.called().contains(&"g".to_string()), "the graph's body never runs");
}
