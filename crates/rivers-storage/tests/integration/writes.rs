//! The batched writer: group commit, per-run numbering, and failures that are never silent.

use crate::common::{new_run, step_event, successful_step};
use rivers_core::EventType;
use rivers_storage::{Error, FailBatches, Storage};

#[tokio::test]
async fn events_are_numbered_per_run_and_read_back_in_run_order() {
    let storage = Storage::memory().await.unwrap();
    storage.create_run(new_run("r1")).await.unwrap();
    storage.create_run(new_run("r2")).await.unwrap();
    storage.attach_run("r1");
    storage.attach_run("r2");
    successful_step(&storage, "r1", "a");
    successful_step(&storage, "r2", "a");
    successful_step(&storage, "r1", "b");
    storage.flush_run("r1").await.unwrap();
    let events = storage.get_events_for_run("r1").await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.run_seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert!(events.iter().all(|e| e.run_id == "r1"));
    assert_eq!(storage.get_run("r1").await.unwrap().unwrap().run_id, "r1");
}

#[tokio::test]
async fn a_resumed_run_continues_its_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::embedded(dir.path()).await.unwrap();
    storage.create_run(new_run("r")).await.unwrap();
    storage.attach_run("r");
    successful_step(&storage, "r", "a");
    storage.flush_run("r").await.unwrap();
    storage.close().await.unwrap();

    let storage = Storage::embedded(dir.path()).await.unwrap();
    storage.attach_run("r");
    successful_step(&storage, "r", "b");
    storage.flush_run("r").await.unwrap();
    let events = storage.get_events_for_run("r").await.unwrap();
    let order: Vec<(i64, Option<&str>)> = events.iter().map(|e| (e.run_seq, e.asset_key.as_deref())).collect();
    assert_eq!(order, [(1, Some("a")), (2, Some("a")), (3, Some("a")), (4, Some("b")), (5, Some("b")), (6, Some("b"))]);
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_nothing_is_lost() {
    let storage = Storage::memory().await.unwrap();
    storage.create_run(new_run("r")).await.unwrap();
    storage.attach_run("r");
    storage.fail_batches(FailBatches { first: 1, attempts: 2 });
    successful_step(&storage, "r", "a");
    storage.flush_run("r").await.unwrap();
    let types: Vec<EventType> = storage.get_events_for_run("r").await.unwrap().iter().map(|e| e.event_type).collect();
    assert_eq!(types, [EventType::StepStart, EventType::Materialization, EventType::StepSuccess]);
    assert!(storage.get_latest_materialization("a", None).await.unwrap().is_some());
}

#[tokio::test]
async fn a_batch_that_keeps_failing_is_reported_to_every_waiter_and_the_run() {
    let storage = Storage::memory().await.unwrap();
    storage.create_run(new_run("r")).await.unwrap();
    storage.attach_run("r");
    successful_step(&storage, "r", "a");
    storage.flush_run("r").await.unwrap();

    storage.fail_batches(FailBatches { first: 1, attempts: u64::MAX });
    storage.enqueue_event(step_event(EventType::StepStart, "r", "b"));
    storage.enqueue_event(step_event(EventType::StepSuccess, "r", "b"));
    // Two flushes waiting on the same failed batch both hear of it.
    let (first, second) = tokio::join!(storage.flush_run("r"), storage.flush());
    let Err(Error::EventsNotWritten { run_id, count, events, source }) = first else {
        panic!("expected EventsNotWritten, got {first:?}")
    };
    assert_eq!((run_id.as_str(), count), ("r", 2));
    assert_eq!(events, "StepStart of 'b', StepSuccess of 'b'");
    assert!(matches!(*source, Error::Injected { batch: 1 }), "the cause is kept as the source: {source:?}");
    let Err(Error::BatchNotWritten { source: shared }) = second else {
        panic!("expected BatchNotWritten, got {second:?}")
    };
    assert!(std::sync::Arc::ptr_eq(&source, &shared), "waiters of one batch share its cause");

    // The run stays marked as having lost events, even once the store recovers...
    storage.fail_batches(FailBatches { first: 1, attempts: 0 });
    assert!(matches!(storage.flush_run("r").await, Err(Error::EventsNotWritten { .. })));
    // ... while other work goes on, and what was written before stays.
    storage.flush().await.unwrap();
    let stored: Vec<Option<String>> =
        storage.get_events_for_run("r").await.unwrap().into_iter().map(|e| e.asset_key).collect();
    assert_eq!(stored, vec![Some("a".to_string()); 3]);
    assert_eq!(storage.succeeded_steps("r", None).await.unwrap().into_iter().collect::<Vec<_>>(), ["a"]);
    // Attaching the run again (a resume) starts it clean.
    storage.attach_run("r");
    storage.flush_run("r").await.unwrap();
}

#[tokio::test]
async fn captured_logs_go_through_the_writer() {
    let storage = Storage::memory().await.unwrap();
    storage.enqueue_run_log("r", "a", Some("out".into()), None, None);
    storage.enqueue_run_log("r", "b", None, Some("err".into()), None);
    storage.enqueue_run_log("other", "a", None, None, Some("log".into()));
    let logs = storage.get_run_logs("r").await.unwrap();
    let rows: Vec<(&str, Option<&str>, Option<&str>)> =
        logs.iter().map(|l| (l.step_key.as_str(), l.stdout.as_deref(), l.stderr.as_deref())).collect();
    assert_eq!(rows, [("a", Some("out"), None), ("b", None, Some("err"))]);
}
