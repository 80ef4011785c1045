//! One run, several writers: each handle here is its own connection to a real SurrealDB
//! server, as separate processes are (the multi-process tests with killed processes are in
//! tests/storage/).

use std::time::Duration;

use futures::future::join_all;
use rivers_core::{EventType, RunBackendKind, RunStatus};
use rivers_storage::{Error, FailBatches, NewEvent, PlanRegistration, RunClaim, RunOwner, Storage};

use crate::common::{self, new_run, step_event, successful_step};

const ALIVE: Duration = Duration::from_secs(30);

/// `n` handles opened at once on an empty database: every one of them bootstraps it.
async fn writers(server: &common::Server, n: usize) -> Vec<Storage> {
    server.connect(n).await
}

#[tokio::test]
async fn handles_opening_an_empty_store_at_once_wait_for_one_bootstrap() {
    let server = common::start_server(common::Auth::None);
    let handles = writers(&server, 6).await;
    // Concurrent migrations of a current store wait for each other and change nothing.
    let target = server.target();
    for outcome in join_all((0..4).map(|_| Storage::migrate_remote(&target))).await {
        outcome.unwrap();
    }
    handles[0].create_run(new_run("r")).await.unwrap();
    assert!(handles[5].get_run("r").await.unwrap().is_some());
}

#[tokio::test]
async fn events_of_one_run_from_several_writers_get_unique_numbers_in_commit_order() {
    let server = common::start_server(common::Auth::None);
    let handles = writers(&server, 4).await;
    handles[0].create_run(new_run("r")).await.unwrap();
    let steps_per_writer = 40;
    join_all(handles.iter().enumerate().map(|(w, storage)| async move {
        for step in 0..steps_per_writer {
            successful_step(storage, "r", &format!("w{w}-s{step}"));
            if step % 7 == 0 {
                storage.flush_run("r").await.unwrap();
            }
        }
        storage.flush_run("r").await.unwrap();
    }))
    .await;
    let events = handles[1].get_events_for_run("r").await.unwrap();
    assert_eq!(events.len(), 4 * steps_per_writer * 3);
    let numbers: Vec<i64> = events.iter().map(|e| e.run_seq).collect();
    assert_eq!(numbers, (1..=events.len() as i64).collect::<Vec<_>>(), "gap-free and unique");
    // Each writer's events keep the order it wrote them in.
    for w in 0..4 {
        let mine: Vec<&str> = events
            .iter()
            .filter_map(|e| e.asset_key.as_deref())
            .filter(|key| key.starts_with(&format!("w{w}-")))
            .collect();
        let expected: Vec<String> =
            (0..steps_per_writer).flat_map(|s| std::iter::repeat_n(format!("w{w}-s{s}"), 3)).collect();
        assert_eq!(mine, expected);
    }
}

#[tokio::test]
async fn latest_state_moves_only_forward_whatever_order_batches_commit_in() {
    let server = common::start_server(common::Auth::None);
    let handles = writers(&server, 2).await;
    let (slow, fast) = (&handles[0], &handles[1]);
    slow.create_run(new_run("old")).await.unwrap();
    fast.create_run(new_run("new")).await.unwrap();
    // The older materialization's batch fails once and commits after its retry wait, well
    // after the newer one.
    slow.fail_batches(FailBatches { first: 1, attempts: 1 });
    let old = NewEvent { data_version: Some("old".into()), ..step_event(EventType::Materialization, "old", "a") };
    slow.enqueue_event(old);
    slow.enqueue_event(step_event(EventType::StepSuccess, "old", "a"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = NewEvent { data_version: Some("new".into()), ..step_event(EventType::Materialization, "new", "a") };
    let newer_id = fast.enqueue_event(newer);
    fast.flush().await.unwrap();
    slow.flush().await.unwrap();

    let latest = fast.get_latest_materialization("a", None).await.unwrap().unwrap();
    assert_eq!((latest.id.as_str(), latest.data_version.as_deref()), (newer_id.as_str(), Some("new")));
    let versions = fast.current_data_versions(&["a".to_string()]).await.unwrap();
    assert_eq!(versions, [("a".to_string(), "new".to_string())]);
    // The late batch's own step state is still recorded: it is the newest for its run.
    assert_eq!(fast.succeeded_steps("old", None).await.unwrap().into_iter().collect::<Vec<_>>(), ["a"]);
}

#[tokio::test]
async fn exactly_one_of_several_processes_opening_a_new_run_owns_it() {
    let server = common::start_server(common::Auth::None);
    let handles = writers(&server, 6).await;
    let owners: Vec<RunOwner> = (0..6).map(|_| RunOwner::for_this_process()).collect();
    let claims = join_all(
        handles.iter().zip(&owners).map(|(storage, owner)| storage.open_run(new_run("r"), owner, false, ALIVE)),
    )
    .await;
    let claims: Vec<RunClaim> = claims.into_iter().map(Result::unwrap).collect();
    let owned = claims.iter().filter(|c| matches!(c, RunClaim::Owned { .. })).count();
    assert_eq!(owned, 1, "{claims:?}");
    assert_eq!(claims.iter().filter(|c| matches!(c, RunClaim::Attached { .. })).count(), 5);
    assert_eq!(handles[0].get_runs(10, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn only_the_owner_finishes_a_run_and_a_finished_run_can_be_claimed_again() {
    let storage = Storage::memory().await.unwrap();
    let (first, second) = (RunOwner::for_this_process(), RunOwner::for_this_process());
    assert_eq!(storage.open_run(new_run("r"), &first, false, ALIVE).await.unwrap(), RunClaim::Owned { previous: None });
    let attached = storage.open_run(new_run("r"), &second, false, ALIVE).await.unwrap();
    assert!(matches!(attached, RunClaim::Attached { ref owner_process } if owner_process == first.process()));
    let refused = storage.finish_run("r", &second, RunStatus::Success, None).await.unwrap_err();
    assert!(matches!(refused, Error::RunTakenOver { .. }), "{refused}");
    storage.finish_run("r", &first, RunStatus::Failure, Some("step 'a' failed")).await.unwrap();
    let again = storage.finish_run("r", &first, RunStatus::Success, None).await.unwrap_err();
    assert!(matches!(again, Error::RunTakenOver { .. }), "a finished run is not finished twice: {again}");
    // A re-execution claims the finished run and moves it back to Running.
    let RunClaim::Owned { previous: Some(previous) } =
        storage.open_run(new_run("r"), &second, false, ALIVE).await.unwrap()
    else {
        panic!("the finished run was not claimed")
    };
    assert_eq!(previous.status, RunStatus::Failure);
    let run = storage.get_run("r").await.unwrap().unwrap();
    assert_eq!((run.status, run.message), (RunStatus::Running, None));
    assert_eq!(run.owner_process.as_deref(), Some(second.process()));
}

#[tokio::test]
async fn a_queued_run_cannot_be_opened_and_is_cancelled_only_while_queued() {
    let storage = Storage::memory().await.unwrap();
    storage.create_run(rivers_storage::NewRun { status: RunStatus::Queued, ..new_run("q") }).await.unwrap();
    let duplicate = storage.create_run(new_run("q")).await.unwrap_err();
    assert!(matches!(duplicate, Error::AlreadyExists { .. }), "{duplicate}");
    let owner = RunOwner::for_this_process();
    let refused = storage.open_run(new_run("q"), &owner, false, ALIVE).await.unwrap_err();
    assert!(refused.to_string().contains("run 'q' is queued"), "{refused}");
    // Along the lifecycle only: a queued run cannot start or succeed directly.
    assert!(!storage.transition_run("q", RunStatus::Running).await.unwrap());
    assert!(!storage.transition_run("q", RunStatus::Success).await.unwrap());
    assert!(storage.transition_run("q", RunStatus::NotStarted).await.unwrap());
    assert!(!storage.cancel_queued_run("q").await.unwrap(), "dequeued runs are not cancelled as queued");
    let claim = storage.open_run(new_run("q"), &owner, false, ALIVE).await.unwrap();
    assert!(
        matches!(claim, RunClaim::Owned { previous: Some(ref p) } if p.status == RunStatus::NotStarted),
        "the process the queue launched claims the dequeued run: {claim:?}"
    );
    storage.create_run(rivers_storage::NewRun { status: RunStatus::Queued, ..new_run("q2") }).await.unwrap();
    assert!(storage.cancel_queued_run("q2").await.unwrap());
    assert!(!storage.cancel_queued_run("q2").await.unwrap());
    assert_eq!(storage.get_run("q2").await.unwrap().unwrap().status, RunStatus::Canceled);
    let outcome = storage.set_run_outcome("missing", RunStatus::Success, 0, 0, None).await.unwrap_err();
    assert!(outcome.to_string().contains("no such run"), "{outcome}");
}

#[tokio::test]
async fn a_run_whose_owner_stopped_heart_beating_is_listed_failed_and_claimable() {
    let storage = Storage::memory().await.unwrap();
    let owner = RunOwner::for_this_process();
    let k8s = rivers_storage::NewRun { backend: RunBackendKind::Kubernetes, ..new_run("pod") };
    storage.open_run(new_run("local"), &owner, false, ALIVE).await.unwrap();
    storage.open_run(k8s, &owner, false, ALIVE).await.unwrap();
    assert!(storage.stale_runs(Duration::from_secs(60), None).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(120)).await;
    let dead_after = Duration::from_millis(100);
    let stale: Vec<String> =
        storage.stale_runs(dead_after, None).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(stale, ["local", "pod"]);
    let local_only = storage.stale_runs(dead_after, Some(RunBackendKind::Local)).await.unwrap();
    assert_eq!(local_only.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["local"]);

    // A heartbeat keeps a run alive.
    assert!(storage.heartbeat_run("pod", &owner).await.unwrap());
    assert_eq!(storage.fail_stale_runs(dead_after, None).await.unwrap(), ["local"]);
    let failed = storage.get_run("local").await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failure);
    assert!(failed.message.as_deref().unwrap().contains("stopped sending heartbeats"), "{:?}", failed.message);
    let events = storage.get_events_for_run("local").await.unwrap();
    assert_eq!(events.last().map(|e| e.event_type), Some(EventType::RunFailure));
    // The old owner learns it lost the run; a new process claims it.
    assert!(!storage.heartbeat_run("local", &owner).await.unwrap());
    let err = storage.finish_run("local", &owner, RunStatus::Success, None).await.unwrap_err();
    assert!(matches!(err, Error::RunTakenOver { .. }), "{err}");
    let successor = RunOwner::for_this_process();
    assert!(matches!(
        storage.open_run(new_run("local"), &successor, true, ALIVE).await.unwrap(),
        RunClaim::Owned { previous: Some(_) }
    ));
    // A Running run with a dead owner is claimed directly too.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(matches!(
        storage.open_run(new_run("pod"), &successor, true, dead_after).await.unwrap(),
        RunClaim::Owned { previous: Some(ref previous) } if previous.status == RunStatus::Running
    ));
}

#[tokio::test]
async fn progress_counts_each_planned_step_once_across_writers() {
    let server = common::start_server(common::Auth::None);
    let handles = writers(&server, 2).await;
    let (owner_handle, step_handle) = (&handles[0], &handles[1]);
    let owner = RunOwner::for_this_process();
    owner_handle.open_run(new_run("r"), &owner, false, ALIVE).await.unwrap();
    let keys = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>();
    owner_handle.register_run_steps("r", &keys(&["a", "b"]), PlanRegistration::Add).await.unwrap();
    // A step process plans one step the owner planned and one it did not.
    step_handle.register_run_steps("r", &keys(&["b", "c"]), PlanRegistration::Add).await.unwrap();
    assert_eq!(owner_handle.get_run_progress("r").await.unwrap(), (0, 3));
    successful_step(owner_handle, "r", "a");
    successful_step(step_handle, "r", "b");
    successful_step(step_handle, "r", "c");
    // A repeated success of a step (a retried write, a second execution) counts once.
    step_handle.enqueue_event(step_event(EventType::StepSuccess, "r", "c"));
    owner_handle.flush_run("r").await.unwrap();
    step_handle.flush_run("r").await.unwrap();
    assert_eq!(owner_handle.get_run_progress("r").await.unwrap(), (3, 3));
    // A step executed again in the run (its state goes Running, then Success) still counts once.
    successful_step(step_handle, "r", "b");
    step_handle.flush_run("r").await.unwrap();
    assert_eq!(owner_handle.get_run_progress("r").await.unwrap(), (3, 3));
    // A step that adds steps to the plan (fan-out instances) adds them to the total once,
    // however often it is executed.
    owner_handle.enqueue_plan_growth("r", "a", None, 2);
    owner_handle.enqueue_plan_growth("r", "a", None, 2);
    successful_step(owner_handle, "r", "a[0]");
    owner_handle.flush_run("r").await.unwrap();
    assert_eq!(owner_handle.get_run_progress("r").await.unwrap(), (4, 5));
    successful_step(owner_handle, "r", "a[0]");
    owner_handle.flush_run("r").await.unwrap();
    assert_eq!(owner_handle.get_run_progress("r").await.unwrap(), (4, 5));
}

#[tokio::test]
async fn a_run_key_of_many_values_is_stored_apart_from_the_run_and_read_with_it() {
    let server = common::start_server(common::Auth::None);
    let storage = server.connect(1).await.remove(0);
    let values: Vec<String> =
        (0..1_000).map(|minute| format!("2024-01-01-{:02}:{:02}", minute / 60, minute % 60)).collect();
    let big = serde_json::json!({"Single": {"key": values}});
    let small = serde_json::json!({"Single": {"key": ["2024-01-01"]}});
    let owner = RunOwner::for_this_process();
    let batched = rivers_storage::NewRun { partition_key: Some(big.clone()), ..new_run("batched") };
    storage.open_run(batched, &owner, false, ALIVE).await.unwrap();
    let created = storage.create_run(rivers_storage::NewRun { partition_key: Some(big.clone()), ..new_run("created") });
    assert!(created.await.unwrap().partition_key.as_ref() == Some(&big), "create_run answers with the whole key");
    storage.create_run(rivers_storage::NewRun { partition_key: Some(small.clone()), ..new_run("one") }).await.unwrap();
    assert!(storage.heartbeat_run("batched", &owner).await.unwrap());

    // The run's own record, which heartbeats and status changes rewrite, does not hold a big key.
    let db = surrealdb::engine::any::connect(server.endpoint.as_str()).await.unwrap();
    db.use_ns("rivers").use_db("main").await.unwrap();
    let inline: Vec<serde_json::Value> =
        db.query("SELECT VALUE partition_key FROM [run:batched, run:created, run:one]").await.unwrap().take(0).unwrap();
    assert_eq!(inline, [serde_json::Value::Null, serde_json::Value::Null, small.clone()]);

    // Every reader of runs sees the whole key.
    assert!(storage.get_run("batched").await.unwrap().unwrap().partition_key.as_ref() == Some(&big));
    let page = storage.get_runs_page(&rivers_storage::RunFilter::All, 10, None).await.unwrap();
    // (Compared by name: a failed assertion prints its values.)
    let named = |key: Option<&serde_json::Value>| match key {
        Some(key) if *key == big => "big",
        Some(key) if *key == small => "small",
        _ => "other",
    };
    let keys: Vec<(&str, &str)> =
        page.items.iter().map(|run| (run.run_id.as_str(), named(run.partition_key.as_ref()))).collect();
    assert_eq!(keys, [("one", "small"), ("created", "big"), ("batched", "big")]);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let stale = storage.stale_runs(Duration::from_millis(50), None).await.unwrap();
    let keys: Vec<(&str, &str)> =
        stale.iter().map(|run| (run.run_id.as_str(), named(run.partition_key.as_ref()))).collect();
    assert_eq!(keys, [("batched", "big"), ("created", "big"), ("one", "small")]);
    storage.finish_run("batched", &owner, RunStatus::Success, None).await.unwrap();
    assert!(storage.get_run("batched").await.unwrap().unwrap().partition_key.as_ref() == Some(&big));
}

#[tokio::test]
async fn a_handle_rereads_a_dynamic_set_only_after_another_process_changed_it() {
    let server = common::start_server(common::Auth::None);
    let handles = writers(&server, 2).await;
    let (reader, other) = (&handles[0], &handles[1]);
    let keys = |names: &[&str]| names.iter().map(|name| (*name).to_string()).collect::<Vec<_>>();
    other.add_dynamic_partitions("files", &keys(&["a", "b"])).await.unwrap();
    let first = reader.dynamic_keys("files").await.unwrap();
    assert_eq!(first.keys(), keys(&["a", "b"]));
    assert!(std::sync::Arc::ptr_eq(&first, &reader.dynamic_keys("files").await.unwrap()), "unchanged: reused");

    other.add_dynamic_partitions("files", &keys(&["c"])).await.unwrap();
    assert_eq!(reader.dynamic_keys("files").await.unwrap().keys(), keys(&["a", "b", "c"]));
    other.delete_dynamic_partition("files", "a").await.unwrap();
    assert_eq!(reader.dynamic_keys("files").await.unwrap().keys(), keys(&["b", "c"]));
    // Adding keys that exist changes nothing, and the set is not read again.
    let settled = reader.dynamic_keys("files").await.unwrap();
    other.add_dynamic_partitions("files", &keys(&["b"])).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&settled, &reader.dynamic_keys("files").await.unwrap()));
}

#[tokio::test]
async fn a_created_run_is_claimed_with_its_steps_in_one_transaction_only_while_not_started() {
    let storage = Storage::memory().await.unwrap();
    let owner = RunOwner::for_this_process();
    let steps = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(storage.claim_created_run("missing", &owner, &steps).await.unwrap(), None);
    storage.create_run(rivers_storage::NewRun { status: RunStatus::NotStarted, ..new_run("launched") }).await.unwrap();
    storage.request_cancellation("launched").await.unwrap();
    assert_eq!(storage.claim_created_run("launched", &owner, &steps).await.unwrap(), Some(true));
    let run = storage.get_run("launched").await.unwrap().unwrap();
    assert_eq!((run.status, run.owner_process.as_deref()), (RunStatus::Running, Some(owner.process())));
    assert_eq!(storage.get_run_progress("launched").await.unwrap(), (0, 2), "its steps are registered");
    assert_eq!(storage.claim_created_run("launched", &owner, &steps).await.unwrap(), None, "claimed once");
    storage.create_run(rivers_storage::NewRun { status: RunStatus::Queued, ..new_run("queued") }).await.unwrap();
    assert_eq!(storage.claim_created_run("queued", &owner, &steps).await.unwrap(), None);
    assert_eq!(storage.get_run("queued").await.unwrap().unwrap().status, RunStatus::Queued);
    assert_eq!(storage.get_run_progress("queued").await.unwrap(), (0, 0), "nothing is written");
}
