//! Backfills another process executes: submitted `requested`, claimed by exactly one
//! coordinator, runs submitted atomically, stalled claims requeued; targeted updates that never
//! overwrite a cancel marker.

use std::time::Duration;

use futures::future::join_all;
use rivers_core::partitions::BackfillStrategy;
use rivers_core::{BackfillState, FailurePolicy, LaunchedBy, RunStatus};
use rivers_storage::{BackfillProgress, BackfillRecord, Error, NewRun, Storage};

use crate::common::{self, new_run};

fn requested(id: &str) -> BackfillRecord {
    BackfillRecord {
        selection: Some(vec!["daily".into()]),
        max_concurrency: 4,
        tags: vec![("team".into(), "data".into())],
        num_partitions: 2,
        num_runs: 2,
        ..BackfillRecord::new(
            id,
            BackfillState::Requested,
            BackfillStrategy::MultiRun,
            FailurePolicy::Continue,
            LaunchedBy::Sensor { name: "new_files".into() },
        )
    }
}

fn backfill_run(id: &str, backfill: &str) -> NewRun {
    NewRun {
        status: RunStatus::Queued,
        launched_by: LaunchedBy::Backfill { backfill_id: backfill.into() },
        priority: -10,
        ..new_run(id)
    }
}

#[tokio::test]
async fn exactly_one_of_several_coordinators_claims_a_requested_backfill() {
    let server = common::start_server(common::Auth::None);
    let handles = server.connect(4).await;
    handles[0].create_backfill(&requested("bf")).await.unwrap();
    assert_eq!(handles[1].requested_backfills(10).await.unwrap().len(), 1);
    let claims = join_all(handles.iter().map(|storage| storage.claim_backfill("bf"))).await;
    assert_eq!(claims.into_iter().map(Result::unwrap).filter(|claimed| *claimed).count(), 1);
    let record = handles[2].get_backfill("bf").await.unwrap().unwrap();
    assert_eq!(record.status, BackfillState::InProgress);
    assert_eq!(record.launched_by, LaunchedBy::Sensor { name: "new_files".into() });
    assert!(handles[3].requested_backfills(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn runs_are_submitted_all_or_none() {
    let storage = Storage::memory().await.unwrap();
    storage.create_backfill(&requested("bf")).await.unwrap();
    assert!(storage.claim_backfill("bf").await.unwrap());
    storage.create_run(new_run("taken")).await.unwrap();
    let refused = storage
        .submit_backfill_runs("bf", vec![backfill_run("r1", "bf"), backfill_run("taken", "bf")])
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::AlreadyExists { .. }), "{refused}");
    assert!(storage.get_run("r1").await.unwrap().is_none(), "no run of a failed submission is stored");
    assert!(storage.get_backfill("bf").await.unwrap().unwrap().run_ids.is_empty());

    storage.submit_backfill_runs("bf", vec![backfill_run("r1", "bf"), backfill_run("r2", "bf")]).await.unwrap();
    assert_eq!(storage.get_backfill("bf").await.unwrap().unwrap().run_ids, ["r1", "r2"]);
    assert_eq!(storage.get_run("r2").await.unwrap().unwrap().status, RunStatus::Queued);
}

#[tokio::test]
async fn a_claim_that_submitted_nothing_is_requeued_after_the_grace_period() {
    let storage = Storage::memory().await.unwrap();
    storage.create_backfill(&requested("stalled")).await.unwrap();
    storage.create_backfill(&requested("busy")).await.unwrap();
    assert!(storage.claim_backfill("stalled").await.unwrap());
    assert!(storage.claim_backfill("busy").await.unwrap());
    storage.submit_backfill_runs("busy", vec![backfill_run("r1", "busy")]).await.unwrap();
    assert!(storage.requeue_stalled_backfills(Duration::from_secs(60)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(storage.requeue_stalled_backfills(Duration::from_millis(50)).await.unwrap(), ["stalled"]);
    assert_eq!(storage.get_backfill("stalled").await.unwrap().unwrap().status, BackfillState::Requested);
    assert_eq!(storage.get_backfill("busy").await.unwrap().unwrap().status, BackfillState::InProgress);
    assert!(storage.claim_backfill("stalled").await.unwrap(), "a requeued backfill is claimed again");
}

#[tokio::test]
async fn progress_never_overwrites_a_cancel_marker_and_an_ended_backfill_stays_ended() {
    let storage = Storage::memory().await.unwrap();
    storage.create_backfill(&BackfillRecord { status: BackfillState::InProgress, ..requested("bf") }).await.unwrap();
    assert!(storage.request_backfill_cancel("bf").await.unwrap());
    let progress = BackfillProgress {
        completed: 1,
        canceled: 1,
        run_ids: vec!["r1".into()],
        canceled_keys: vec!["2024-01-02".into()],
        ..Default::default()
    };
    storage.record_backfill_progress("bf", &progress).await.unwrap();
    assert!(storage.backfill_cancel_requested("bf").await.unwrap());
    assert!(storage.set_backfill_state("bf", BackfillState::Canceled, None).await.unwrap());
    assert!(!storage.set_backfill_state("bf", BackfillState::Completed, None).await.unwrap());
    let record = storage.get_backfill("bf").await.unwrap().unwrap();
    assert_eq!((record.status, record.completed, record.canceled), (BackfillState::Canceled, 1, 1));
    assert_eq!(record.canceled_keys, ["2024-01-02"]);
    assert!(!storage.request_backfill_cancel("bf").await.unwrap());
    assert!(storage.get_backfill("unknown").await.unwrap().is_none());
}
