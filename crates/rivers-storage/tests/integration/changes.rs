//! The change feed: committed events and run changes reach subscribers, from any connection.

use std::time::Duration;

use crate::common::{Auth, new_run, start_server, successful_step};
use rivers_core::{EventType, RunStatus};
use rivers_storage::{Change, ChangeFeed, RemoteTarget, Storage};

/// A change must arrive within this; the feed is push-based, so this only bounds a failure.
const DELIVERY: Duration = Duration::from_secs(10);

async fn next(feed: &mut ChangeFeed) -> Change {
    tokio::time::timeout(DELIVERY, feed.next()).await.expect("no change arrived").expect("feed ended").unwrap()
}

/// Writes a run and one successful step through `writer`, reads them back from `feed`.
async fn observe_a_run(writer: &Storage, feed: &mut ChangeFeed) {
    writer.create_run(new_run("r")).await.unwrap();
    let Change::Run(run) = next(feed).await else { panic!("expected the new run first") };
    assert_eq!((run.run_id.as_str(), run.status), ("r", RunStatus::Running));

    writer.attach_run("r");
    successful_step(writer, "r", "a");
    writer.flush_run("r").await.unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        match next(feed).await {
            Change::Events(batch) => events.extend(batch),
            // The batch also bumps the run's event counter.
            Change::Run(run) => assert_eq!(run.run_id, "r"),
        }
    }
    // Batches may be delivered out of commit order; a run's own numbering orders its events.
    events.sort_by_key(|e| e.run_seq);
    let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(types, [EventType::StepStart, EventType::Materialization, EventType::StepSuccess]);

    writer.set_run_outcome("r", RunStatus::Success, 1, 1, None).await.unwrap();
    loop {
        if let Change::Run(run) = next(feed).await
            && run.status == RunStatus::Success
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_changes_reach_subscribers() {
    let storage = Storage::memory().await.unwrap();
    let mut feed = storage.subscribe().await.unwrap();
    observe_a_run(&storage, &mut feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_changes_reach_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::embedded(dir.path()).await.unwrap();
    let mut feed = storage.subscribe().await.unwrap();
    observe_a_run(&storage, &mut feed).await;
    drop(feed);
    storage.close().await.unwrap();
    assert!(Storage::embedded(dir.path()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_changes_from_another_connection_reach_subscribers() {
    let server = start_server(Auth::None);
    let target = RemoteTarget {
        endpoint: server.endpoint.clone(),
        namespace: "rivers".into(),
        database: "main".into(),
        credentials: None,
    };
    let reader = Storage::connect(&target).await.unwrap();
    let mut feed = reader.subscribe().await.unwrap();
    let writer = Storage::connect(&target).await.unwrap();
    observe_a_run(&writer, &mut feed).await;
}
