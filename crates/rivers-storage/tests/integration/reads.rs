//! Read paths served from indexed state: latest materializations per asset and partition,
//! step states, runs newest-first.

use crate::common::{new_run, step_event, successful_step};
use rivers_core::{EventType, LaunchedBy, RunStatus};
use rivers_storage::{NewEvent, NewRun, RunFilter, Storage};

fn materialization(run_id: &str, key: &str, partition: Option<&str>, version: &str) -> NewEvent {
    NewEvent {
        partition_key: partition.map(str::to_owned),
        data_version: Some(version.into()),
        ..step_event(EventType::Materialization, run_id, key)
    }
}

#[tokio::test]
async fn latest_materialization_per_asset_and_per_partition() {
    let storage = Storage::memory().await.unwrap();
    storage.enqueue_event(materialization("r1", "a", None, "v1"));
    storage.enqueue_event(materialization("r1", "a", Some("2024-01-01"), "p1"));
    storage.flush().await.unwrap();
    let last = storage.enqueue_event(materialization("r2", "a", Some("2024-01-02"), "p2"));
    storage.enqueue_event(step_event(EventType::StepSuccess, "r2", "a"));

    let latest = storage.get_latest_materialization("a", None).await.unwrap().unwrap();
    assert_eq!(latest.id, last);
    assert_eq!(latest.data_version.as_deref(), Some("p2"));
    let first_day = storage.get_latest_materialization("a", Some("2024-01-01")).await.unwrap().unwrap();
    assert_eq!((first_day.run_id.as_str(), first_day.data_version.as_deref()), ("r1", Some("p1")));
    assert!(storage.get_latest_materialization("a", Some("2024-01-03")).await.unwrap().is_none());
    assert!(storage.get_latest_materialization("missing", None).await.unwrap().is_none());
    assert_eq!(storage.get_materialized_partitions("a").await.unwrap(), ["2024-01-01", "2024-01-02"]);

    let record = storage.get_asset_record("a").await.unwrap().unwrap();
    assert_eq!(record.last_event_id.as_deref(), Some(last.as_str()));
    assert_eq!(record.last_run_id.as_deref(), Some("r2"));
}

#[tokio::test]
async fn observations_update_their_own_state() {
    let storage = Storage::memory().await.unwrap();
    storage.enqueue_event(NewEvent {
        data_version: Some("o1".into()),
        ..step_event(EventType::Observation, "obs", "source")
    });
    let record = storage.get_asset_record("source").await.unwrap().unwrap();
    assert_eq!(record.last_observation_data_version.as_deref(), Some("o1"));
    assert!(record.last_event_id.is_none());
    assert!(storage.get_latest_materialization("source", None).await.unwrap().is_none());
}

#[tokio::test]
async fn succeeded_steps_come_from_step_state() {
    let storage = Storage::memory().await.unwrap();
    successful_step(&storage, "r", "a");
    storage.enqueue_event(step_event(EventType::StepStart, "r", "b"));
    storage.enqueue_event(step_event(EventType::StepFailure, "r", "b"));
    storage.enqueue_event(step_event(EventType::StepSkipped, "r", "c"));
    successful_step(&storage, "other", "b");
    let done = storage.succeeded_steps("r", None).await.unwrap();
    assert_eq!(done.into_iter().collect::<Vec<_>>(), ["a"]);
    assert!(storage.succeeded_steps("r", Some("p")).await.unwrap().is_empty());
}

#[tokio::test]
async fn runs_page_newest_first_with_status_filter() {
    let storage = Storage::memory().await.unwrap();
    for i in 0..30 {
        storage.create_run(new_run(&format!("run-{i:02}"))).await.unwrap();
        if i % 3 == 0 {
            storage.set_run_outcome(&format!("run-{i:02}"), RunStatus::Success, 1, 1, None).await.unwrap();
        }
    }
    let newest: Vec<String> = storage.get_runs(5, None).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(newest, ["run-29", "run-28", "run-27", "run-26", "run-25"]);
    let succeeded: Vec<String> =
        storage.get_runs(3, Some(RunStatus::Success)).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(succeeded, ["run-27", "run-24", "run-21"]);
    assert!(storage.get_runs(10, Some(RunStatus::Queued)).await.unwrap().is_empty());
}

#[tokio::test]
async fn run_tags_and_backfill_are_indexed_companions_not_record_fields() {
    let storage = Storage::memory().await.unwrap();
    let run = NewRun { tags: vec![("team".into(), "data".into())], ..new_run("tagged") };
    storage.create_run(run).await.unwrap();
    let record = storage.get_run("tagged").await.unwrap().unwrap();
    assert_eq!(record.tags, [("team".to_string(), "data".to_string())]);
    assert_eq!(record.status, RunStatus::Running);
}

#[tokio::test]
async fn runs_page_newest_first_by_job_backfill_and_tag() {
    let storage = Storage::memory().await.unwrap();
    for i in 0..12 {
        let run = NewRun {
            job_name: Some(if i % 2 == 0 { "nightly" } else { "hourly" }.into()),
            // `a=b` / `c` and `a` / `b=c` are different tags.
            tags: match i % 3 {
                0 => vec![("team".into(), "data".into()), ("a=b".into(), "c".into())],
                1 => vec![("a".into(), "b=c".into())],
                _ => vec![],
            },
            launched_by: if i % 4 == 0 {
                LaunchedBy::Backfill { backfill_id: "bf-1".into() }
            } else {
                LaunchedBy::Manual
            },
            ..new_run(&format!("run-{i:02}"))
        };
        storage.create_run(run).await.unwrap();
    }
    let page = |filter: RunFilter, limit: usize| {
        let storage = storage.clone();
        async move {
            storage.get_runs_where(&filter, limit).await.unwrap().into_iter().map(|r| r.run_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(RunFilter::Job("nightly".into()), 3).await, ["run-10", "run-08", "run-06"]);
    assert_eq!(page(RunFilter::Backfill("bf-1".into()), 10).await, ["run-08", "run-04", "run-00"]);
    let tagged = RunFilter::Tag { key: "team".into(), value: "data".into() };
    assert_eq!(page(tagged, 2).await, ["run-09", "run-06"]);
    assert!(page(RunFilter::Tag { key: "team".into(), value: "ml".into() }, 5).await.is_empty());
    assert_eq!(page(RunFilter::Tag { key: "a".into(), value: "b=c".into() }, 2).await, ["run-10", "run-07"]);
    assert_eq!(page(RunFilter::All, 2).await, ["run-11", "run-10"]);
}
