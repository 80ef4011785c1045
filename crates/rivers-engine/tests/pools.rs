//! Concurrency pools in the engine: limits across runs and lanes, waiting outside the lanes,
//! claim timeouts, lease renewal, releases around retries, mapped instances, and the
//! `StepSlot*` events.
//!
//! A test binary of its own: the claim settings come from the environment, which every test
//! here sets (to the same values) before it runs anything.

use std::collections::HashMap;
use std::sync::Once;
use std::time::Duration;

use rivers_core::{
    AssetGraph, Backoff, EventType, ExecutorKind, MapDef, NodeDef, NodeKind, ParamDef, ParamRole, Plan, PlanOptions,
    PoolClaim, RetryOn, RetryPolicy, RetrySpec, RunStatus,
};
use rivers_engine::testing::{FakeRunner, failure, materialized};
use rivers_engine::{CLAIM_POLL_INTERVAL_VAR, CLAIM_POLL_JITTER_VAR, CLAIM_TIMEOUT_VAR, RunOptions, execute_run};
use rivers_storage::{DEFAULT_POOL_LEASE, Storage, StoredEvent};

const HOLD: Duration = Duration::from_millis(60);

fn claim_settings() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY: every test of this binary calls this before anything reads the environment,
        // and `Once` makes the others wait until it is done: no read runs concurrently.
        unsafe {
            std::env::set_var(CLAIM_TIMEOUT_VAR, "3s");
            std::env::set_var(CLAIM_POLL_INTERVAL_VAR, "10ms");
            std::env::set_var(CLAIM_POLL_JITTER_VAR, "5ms");
        }
    });
}

fn pooled(name: &str, pools: &[(&str, i64)]) -> NodeDef {
    let mut node = NodeDef::asset(name);
    node.pools = pools.iter().map(|(pool, slots)| PoolClaim { pool: (*pool).into(), slots: *slots }).collect();
    node
}

fn plan_of(nodes: Vec<NodeDef>, executor: ExecutorKind) -> Plan {
    let graph = AssetGraph::build(nodes, &[], HashMap::new()).unwrap();
    graph.plan(None, false, &PlanOptions { executor, run_retry: None, default_retry: None }).unwrap()
}

fn options(run_id: &str, workers: usize) -> RunOptions {
    RunOptions::manual(run_id, workers)
}

async fn step_events(storage: &Storage, run_id: &str, step: &str) -> Vec<StoredEvent> {
    let events = storage.get_events_for_run(run_id).await.unwrap();
    events.into_iter().filter(|e| e.asset_key.as_deref() == Some(step)).collect()
}

fn kinds(events: &[StoredEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

fn metadata<'a>(event: &'a StoredEvent, key: &str) -> Option<&'a str> {
    event.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_limit_holds_across_concurrent_runs_and_lanes() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 2, DEFAULT_POOL_LEASE).await.unwrap();
    let runner = FakeRunner::holding(HOLD, materialized);
    // Sync steps on the workers and async steps on their own lane, in two runs at once.
    let mut nodes: Vec<NodeDef> = (0..4).map(|i| pooled(&format!("sync_{i}"), &[("db", 1)])).collect();
    nodes.extend((0..4).map(|i| NodeDef { is_async: true, ..pooled(&format!("async_{i}"), &[("db", 1)]) }));
    let plan = plan_of(nodes, ExecutorKind::Parallel);
    let (first, second) = tokio::join!(
        execute_run(&storage, &plan, runner.clone(), options("r1", 4)),
        execute_run(&storage, &plan, runner.clone(), options("r2", 4)),
    );
    for outcome in [first.unwrap(), second.unwrap()] {
        assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    }
    assert_eq!(runner.called().len(), 16);
    assert!(runner.peak_total() <= 2, "{} steps held db slots at once", runner.peak_total());
    assert!(storage.get_pool_slot_holders("db").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_claims_every_pool_with_events_and_releases_after_its_body() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 2, DEFAULT_POOL_LEASE).await.unwrap();
    storage.set_pool_limit("api", 1, DEFAULT_POOL_LEASE).await.unwrap();
    // Another run holds api: the step waits until that holder lets go.
    storage
        .claim_concurrency_slots(&[PoolClaim { pool: "api".into(), slots: 1 }], "other", "x", 0, None)
        .await
        .unwrap();
    let release = {
        let storage = storage.clone();
        tokio::spawn(async move {
            while storage.get_pool_info("api").await.unwrap().pending_count == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            storage.free_concurrency_slots("other", "x").await.unwrap();
        })
    };
    let plan = plan_of(vec![pooled("enriched", &[("db", 2), ("api", 1)])], ExecutorKind::InProcess);
    let outcome = execute_run(&storage, &plan, FakeRunner::new(materialized), options("r", 1)).await.unwrap();
    release.await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    let events = step_events(&storage, "r", "enriched").await;
    assert_eq!(
        kinds(&events),
        [
            EventType::StepSlotWaiting,
            EventType::StepSlotClaimed,
            EventType::StepStart,
            // Released as soon as the body ends; its outcome is recorded after.
            EventType::StepSlotReleased,
            EventType::Materialization,
            EventType::StepSuccess
        ]
    );
    let reason = metadata(&events[0], "reason").unwrap();
    assert!(reason.starts_with("pool_full: pool 'api' has 1 of 1"), "{reason}");
    assert_eq!(metadata(&events[1], "pools"), Some("db,api"));
    assert!(storage.get_pool_slot_holders("db").await.unwrap().is_empty());
    assert_eq!(storage.get_pool_info("api").await.unwrap().pending_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_step_times_out_while_the_runs_other_steps_execute() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("tiny", 1, DEFAULT_POOL_LEASE).await.unwrap();
    // Its demand exceeds the limit: it waits until the claim timeout. The in-process lane
    // (one step at a time) keeps running the other steps meanwhile.
    let nodes = vec![pooled("greedy", &[("tiny", 2)]), NodeDef::asset("b"), NodeDef::asset("c")];
    let runner = FakeRunner::new(materialized);
    let outcome =
        execute_run(&storage, &plan_of(nodes, ExecutorKind::InProcess), runner.clone(), options("t", 1)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failure);
    assert_eq!(runner.called(), ["b", "c"]);
    let (step, message) = &outcome.failed[0];
    assert_eq!(step, "greedy");
    assert!(message.contains("'tiny'") && message.contains("RIVERS_CLAIM_TIMEOUT"), "{message}");
    let events = step_events(&storage, "t", "greedy").await;
    assert_eq!(kinds(&events), [EventType::StepSlotWaiting, EventType::StepFailure]);
    assert_eq!(metadata(&events[1], "rivers/failure_reason"), Some("timeout"));
    assert_eq!(storage.get_pool_info("tiny").await.unwrap().pending_count, 0);
    assert_eq!(runner.failure_hooks(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renewals_keep_a_long_steps_slots_past_its_lease() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    // Renewed every 100 ms; each step runs 500 ms, well past the lease.
    storage.set_pool_limit("db", 1, Duration::from_millis(300)).await.unwrap();
    let runner = FakeRunner::holding(Duration::from_millis(500), materialized);
    let plan = plan_of(vec![pooled("long", &[("db", 1)])], ExecutorKind::InProcess);
    let (first, second) = tokio::join!(
        execute_run(&storage, &plan, runner.clone(), options("l1", 1)),
        execute_run(&storage, &plan, runner.clone(), options("l2", 1)),
    );
    assert_eq!(first.unwrap().status, RunStatus::Success);
    assert_eq!(second.unwrap().status, RunStatus::Success);
    // Had a lease run out, the other run's step would have claimed the slot meanwhile.
    assert_eq!(runner.peak_total(), 1);
    for run in ["l1", "l2"] {
        let renewals = kinds(&step_events(&storage, run, "long").await)
            .into_iter()
            .filter(|kind| *kind == EventType::StepSlotRenewed)
            .count();
        assert!(renewals >= 1, "run {run} renewed {renewals} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_released_for_a_retrys_backoff_and_claimed_again() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 1, DEFAULT_POOL_LEASE).await.unwrap();
    let mut node = pooled("flaky", &[("db", 1)]);
    node.retry = Some(RetrySpec::Policy(RetryPolicy {
        max_retries: 1,
        backoff: Some(Backoff::Constant { delay: 0.05, jitter: 0.0, max_delay: None }),
        retry_on: RetryOn::All,
        escalate_on: vec![],
    }));
    let runner = FakeRunner::new(|r| if r.attempt == 1 { Err(failure("flaky")) } else { materialized(r) });
    let plan = plan_of(vec![node], ExecutorKind::InProcess);
    let outcome = execute_run(&storage, &plan, runner, options("retry", 1)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success);
    let slot_events: Vec<EventType> = kinds(&step_events(&storage, "retry", "flaky").await)
        .into_iter()
        .filter(|kind| matches!(kind, EventType::StepSlotClaimed | EventType::StepSlotReleased | EventType::StepRetry))
        .collect();
    assert_eq!(
        slot_events,
        [
            EventType::StepSlotClaimed,
            EventType::StepSlotReleased,
            EventType::StepRetry,
            EventType::StepSlotClaimed,
            EventType::StepSlotReleased
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_releases_its_slots() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 1, DEFAULT_POOL_LEASE).await.unwrap();
    let runner = FakeRunner::new(|r| if r.step_key == "bad" { Err(failure("boom")) } else { materialized(r) });
    let nodes = vec![pooled("bad", &[("db", 1)]), pooled("good", &[("db", 1)])];
    let outcome =
        execute_run(&storage, &plan_of(nodes, ExecutorKind::InProcess), runner, options("f", 1)).await.unwrap();
    assert_eq!(outcome.failed.len(), 1);
    let bad = kinds(&step_events(&storage, "f", "bad").await);
    assert!(bad.contains(&EventType::StepSlotReleased) && bad.ends_with(&[EventType::StepFailure]), "{bad:?}");
    assert!(kinds(&step_events(&storage, "f", "good").await).contains(&EventType::StepSuccess));
    assert!(storage.get_pool_slot_holders("db").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mapped_instances_claim_each_on_their_own() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 1, DEFAULT_POOL_LEASE).await.unwrap();
    let internal = |name: &str| NodeDef { graph: Some("g".into()), ..NodeDef::task(name) };
    let mut score = internal("g/score");
    score.params.push(ParamDef { role: ParamRole::Wired, source: Some("g/items".into()), ..ParamDef::named("item") });
    score.map = Some(MapDef { max_concurrency: None });
    score.pools = vec![PoolClaim { pool: "db".into(), slots: 1 }];
    let graph =
        NodeDef { kind: NodeKind::Graph, members: vec!["g/items".into(), "g/score".into()], ..NodeDef::asset("g") };
    let plan = plan_of(vec![internal("g/items"), score, graph], ExecutorKind::Parallel);
    let runner = FakeRunner::holding(HOLD, |request| {
        let mut output = materialized(request)?;
        if request.step_key == "g/score" {
            output.fan_out = Some(vec!["a".into(), "b".into(), "c".into()]);
        }
        Ok(output)
    });
    let outcome = execute_run(&storage, &plan, runner.clone(), options("m", 4)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.failed);
    let events = storage.get_events_for_run("m").await.unwrap();
    let mut claimed: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == EventType::StepSlotClaimed)
        .filter_map(|e| e.asset_key.clone())
        .collect();
    claimed.sort();
    assert_eq!(claimed, ["g/score[a]", "g/score[b]", "g/score[c]"]);
    // Only the instances could run side by side (on four workers); the pool lets one at a time.
    assert_eq!(runner.peak_total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_ends_its_steps_wait_for_slots() {
    claim_settings();
    let storage = Storage::memory().await.unwrap();
    // A limit of 0 admits nothing: the step would wait until the claim timeout.
    storage.set_pool_limit("closed", 0, DEFAULT_POOL_LEASE).await.unwrap();
    let canceller = storage.clone();
    let runner = FakeRunner::new(move |request| {
        if request.step_key == "cancel" {
            let (storage, run_id) = (canceller.clone(), request.run_id.clone());
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(storage.request_cancellation(&run_id)).unwrap()
            })
            .join()
            .unwrap();
        }
        materialized(request)
    });
    let nodes = vec![pooled("waiting", &[("closed", 1)]), NodeDef::asset("cancel")];
    let outcome =
        execute_run(&storage, &plan_of(nodes, ExecutorKind::InProcess), runner.clone(), options("c", 1)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Canceled);
    assert_eq!(runner.called(), ["cancel"]);
    assert_eq!(kinds(&step_events(&storage, "c", "waiting").await), [EventType::StepSlotWaiting]);
    assert_eq!(storage.get_pool_info("closed").await.unwrap().pending_count, 0);
}
