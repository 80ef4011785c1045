//! Partition state shared by writers: the latest materialization of each partition moves only
//! forward, concurrent writers of one asset lose nothing, in-progress positions belong to their
//! run, and a changed definition never deletes history. Handles on a SurrealDB server are
//! separate connections, as separate processes are.

use std::time::Duration;

use futures::future::join_all;
use rivers_core::partitions::{Partitions, RangeSet};
use rivers_core::{EventType, RunStatus};
use rivers_storage::{
    FailBatches, NewEvent, PartitionSpan, PartitionStatusChange, PartitionTransition, Storage, definition_fingerprint,
};

use crate::common::{self, new_run, step_event};

fn daily_from(day: u32) -> Partitions {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, day).unwrap().and_hms_opt(0, 0, 0).unwrap();
    Partitions::daily(start, None, None).unwrap()
}

async fn handles(n: usize) -> (common::Server, Vec<Storage>) {
    let server = common::start_server(common::Auth::None);
    let handles = server.connect(n).await;
    (server, handles)
}

/// A materialization of `positions` of asset "a" on `grid` (compact unless it is one day).
fn days(run_id: &str, grid: &str, positions: &str, version: &str) -> NewEvent {
    let positions: RangeSet = positions.parse().unwrap();
    NewEvent {
        data_version: Some(version.into()),
        span: Some(PartitionSpan { definition: grid.into(), positions, derived_versions: false }),
        ..step_event(EventType::Materialization, run_id, "a")
    }
}

async fn version_of(storage: &Storage, day: &str) -> Option<String> {
    storage.get_latest_materialization("a", Some(day)).await.unwrap().and_then(|e| e.data_version)
}

#[tokio::test]
async fn the_latest_materialization_of_a_partition_moves_only_forward() {
    let (_server, handles) = handles(2).await;
    let (slow, fast) = (&handles[0], &handles[1]);
    let daily = daily_from(1);
    slow.register_partitions(vec![("a".into(), daily.clone())]).await.unwrap();
    let grid = definition_fingerprint(&daily);
    // The older ten-day materialization's batch fails once and commits after its retry wait,
    // well after a newer materialization of one of its days.
    slow.fail_batches(FailBatches { first: 1, attempts: 1 });
    slow.enqueue_event(days("old", &grid, "0-9", "old"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    fast.enqueue_event(NewEvent { partition_key: Some("2024-01-05".into()), ..days("new", &grid, "4", "new") });
    fast.flush().await.unwrap();
    slow.flush().await.unwrap();

    assert_eq!(version_of(fast, "2024-01-05").await.as_deref(), Some("new"));
    assert_eq!(version_of(fast, "2024-01-01").await.as_deref(), Some("old"));
    assert_eq!(version_of(fast, "2024-01-10").await.as_deref(), Some("old"));
    assert_eq!(fast.get_partition_status("a").await.unwrap().materialized.to_string(), "0-9");
}

#[tokio::test]
async fn concurrent_writers_of_one_asset_lose_no_partition() {
    let (_server, handles) = handles(6).await;
    let daily = daily_from(1);
    handles[0].register_partitions(vec![("a".into(), daily.clone())]).await.unwrap();
    let grid = definition_fingerprint(&daily);
    // Six writers, each a week of days, three times over, all at once.
    let writes = handles.iter().enumerate().map(|(i, storage)| {
        let grid = grid.clone();
        async move {
            for round in 0..3 {
                let (first, last) = (i * 7, i * 7 + 6);
                storage.enqueue_event(days(
                    &format!("w{i}"),
                    &grid,
                    &format!("{first}-{last}"),
                    &format!("w{i}-{round}"),
                ));
                storage.flush().await.unwrap();
            }
        }
    });
    join_all(writes).await;
    let reader = &handles[0];
    assert_eq!(reader.get_partition_status("a").await.unwrap().materialized.to_string(), "0-41");
    for i in 0..6 {
        let day = (chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(i * 7 + 3)).to_string();
        assert_eq!(version_of(reader, &day).await, Some(format!("w{i}-2")), "{day}");
    }
}

#[tokio::test]
async fn in_progress_partitions_belong_to_their_run() {
    let storage = Storage::memory().await.unwrap();
    let daily = daily_from(1);
    storage.register_partitions(vec![("a".into(), daily.clone())]).await.unwrap();
    let grid = definition_fingerprint(&daily);
    let change = |run: &str, transition, positions: &str| PartitionStatusChange {
        asset_key: "a".into(),
        run_id: run.into(),
        definition: grid.clone(),
        transition,
        positions: positions.parse().unwrap(),
    };
    for run in ["first", "second", "killed"] {
        storage.create_run(new_run(run)).await.unwrap();
    }
    storage.enqueue_partition_status(change("first", PartitionTransition::Started, "0-9"));
    storage.enqueue_partition_status(change("second", PartitionTransition::Started, "5-14"));
    storage.enqueue_partition_status(change("killed", PartitionTransition::Started, "20-24"));
    let in_progress = async || storage.get_partition_status("a").await.unwrap().in_progress.to_string();
    assert_eq!(in_progress().await, "0-14,20-24");
    // The first run ends its steps: the overlapping second run still covers its own.
    storage.enqueue_event(days("first", &grid, "0-7", "v"));
    storage.enqueue_partition_status(change("first", PartitionTransition::Failed, "8-9"));
    assert_eq!(in_progress().await, "5-14,20-24");
    let status = storage.get_partition_status("a").await.unwrap();
    assert_eq!((status.materialized.to_string(), status.failed.to_string()), ("0-7".into(), "8-9".into()));
    // A run that died without a word stops counting once it is failed (run monitoring).
    assert!(storage.transition_run("killed", RunStatus::Failure).await.unwrap());
    assert_eq!(in_progress().await, "5-14");
    assert!(storage.runs_kept_in_progress("a").await.unwrap().contains("killed"), "until the next write");
    storage.enqueue_partition_status(change("second", PartitionTransition::Abandoned, "5-14"));
    assert_eq!(in_progress().await, "");
    // The next write of the record dropped the ended run's entry: records do not grow with
    // the runs that died on them.
    assert!(storage.runs_kept_in_progress("a").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_narrowed_definition_hides_history_and_a_widened_one_shows_it_again() {
    let storage = Storage::memory().await.unwrap();
    let (from_first, from_fifth) = (daily_from(1), daily_from(5));
    storage.register_partitions(vec![("a".into(), from_first.clone())]).await.unwrap();
    storage.enqueue_event(days("r1", &definition_fingerprint(&from_first), "0-9", "v1"));
    let materialized = async || storage.get_partition_status("a").await.unwrap().materialized.to_string();
    assert_eq!(materialized().await, "0-9");

    storage.register_partitions(vec![("a".into(), from_fifth.clone())]).await.unwrap();
    assert_eq!(materialized().await, "0-5", "2024-01-05..10 on the new grid");
    assert_eq!(version_of(&storage, "2024-01-07").await.as_deref(), Some("v1"));
    // Written on the narrowed grid meanwhile: 2024-01-11.
    storage.enqueue_event(NewEvent {
        partition_key: Some("2024-01-11".into()),
        ..days("r2", &definition_fingerprint(&from_fifth), "6", "v2")
    });

    storage.register_partitions(vec![("a".into(), from_first.clone())]).await.unwrap();
    assert_eq!(materialized().await, "0-10", "the old days show again, with the new one");
    assert_eq!(version_of(&storage, "2024-01-02").await.as_deref(), Some("v1"));
    assert_eq!(version_of(&storage, "2024-01-11").await.as_deref(), Some("v2"));
    // Registering the same definition again changes nothing.
    storage.register_partitions(vec![("a".into(), from_first)]).await.unwrap();
    assert_eq!(materialized().await, "0-10");
}

#[tokio::test]
async fn concurrent_registrations_of_changed_definitions_keep_the_status_whole() {
    let (_server, handles) = handles(4).await;
    let daily = daily_from(1);
    handles[0].register_partitions(vec![("a".into(), daily.clone())]).await.unwrap();
    handles[0].enqueue_event(days("r", &definition_fingerprint(&daily), "0-9", "v"));
    handles[0].flush().await.unwrap();
    // Four processes resolve at once, two with each definition.
    let registrations = handles.iter().enumerate().map(|(i, storage)| {
        let definition = if i % 2 == 0 { daily_from(3) } else { daily.clone() };
        async move { storage.register_partitions(vec![("a".into(), definition)]).await }
    });
    for outcome in join_all(registrations).await {
        outcome.unwrap();
    }
    let status = handles[0].get_partition_status("a").await.unwrap();
    let expected = if status.definition.as_deref() == Some(&daily) { "0-9" } else { "0-7" };
    assert_eq!(status.materialized.to_string(), expected);
}
