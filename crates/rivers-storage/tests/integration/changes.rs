//! The change feed: committed events, run and backfill changes reach subscribers in commit
//! order, from any connection, and a subscriber resumes from a cursor.

use std::time::Duration;

use crate::common::{Auth, new_run, start_server, successful_step};
use rivers_core::{EventType, RunStatus};
use rivers_storage::{Change, ChangeFeed, FeedCursor, FeedEntry, RemoteTarget, Storage};

/// A change must arrive within this; it only bounds a failure.
const DELIVERY: Duration = Duration::from_secs(10);

async fn next_entry(feed: &mut ChangeFeed) -> FeedEntry {
    tokio::time::timeout(DELIVERY, feed.next()).await.expect("no change arrived").expect("feed ended").unwrap()
}

/// The next change, and the cursor of its commit.
async fn next_with_cursor(feed: &mut ChangeFeed, pending: &mut Vec<(FeedCursor, Change)>) -> (FeedCursor, Change) {
    if pending.is_empty() {
        let entry = next_entry(feed).await;
        pending.extend(entry.changes.into_iter().rev().map(|change| (entry.cursor, change)));
    }
    pending.pop().unwrap()
}

/// Writes a run and one successful step through `writer`, reads them back from `feed`.
async fn observe_a_run(writer: &Storage, feed: &mut ChangeFeed) {
    let mut pending = Vec::new();
    let mut cursors = Vec::new();
    let mut next = async |feed: &mut ChangeFeed| {
        let (cursor, change) = next_with_cursor(feed, &mut pending).await;
        cursors.push(cursor);
        change
    };
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
            Change::Backfill(backfill) => panic!("no backfill was written, got {}", backfill.backfill_id),
        }
    }
    // Commits arrive in commit order, and so do the events of one run.
    assert!(events.windows(2).all(|pair| pair[0].run_seq < pair[1].run_seq), "in order");
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
    assert!(cursors.windows(2).all(|pair| pair[0] <= pair[1]), "cursors grow in commit order");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_after_its_cursor_missing_and_repeating_nothing() {
    let server = start_server(Auth::None);
    let reader = server.connect(1).await.remove(0);
    let writer = server.connect(1).await.remove(0);
    let mut feed = reader.subscribe().await.unwrap();
    writer.create_run(new_run("first")).await.unwrap();
    let seen = next_entry(&mut feed).await;
    assert!(matches!(&seen.changes[..], [Change::Run(run)] if run.run_id == "first"));
    drop(feed);

    // While nobody listens: three more runs, one changed, and a backfill cancelled.
    for id in ["second", "third", "fourth"] {
        writer.create_run(new_run(id)).await.unwrap();
    }
    writer.request_cancellation("third").await.unwrap();
    let backfill = rivers_storage::BackfillRecord::new(
        "b",
        rivers_core::BackfillState::Requested,
        rivers_core::partitions::BackfillStrategy::MultiRun,
        rivers_core::FailurePolicy::Continue,
        rivers_core::LaunchedBy::MANUAL,
    );
    writer.create_backfill(&backfill).await.unwrap();
    writer.request_backfill_cancel("b").await.unwrap();
    // One commit changing two tables: the backfill's runs and the backfill.
    writer.submit_backfill_runs("b", vec![new_run("b-1"), new_run("b-2")]).await.unwrap();

    // The cursor as a client keeps it (text, e.g. an SSE Last-Event-ID).
    let cursor: FeedCursor = seen.cursor.to_string().parse().unwrap();
    let mut resumed = reader.subscribe_after(cursor);
    let mut got = Vec::new();
    while got.len() < 9 {
        for change in next_entry(&mut resumed).await.changes {
            got.push(match change {
                Change::Run(run) => format!("run {} cancel={}", run.run_id, run.cancel_requested),
                Change::Backfill(backfill) => {
                    format!("backfill {} cancel={}", backfill.backfill_id, backfill.cancel_requested)
                }
                Change::Events(events) => format!("{} events", events.len()),
            });
        }
    }
    assert_eq!(
        got,
        [
            "run second cancel=false",
            "run third cancel=false",
            "run fourth cancel=false",
            "run third cancel=true",
            "backfill b cancel=false",
            "backfill b cancel=true",
            "backfill b cancel=true",
            "run b-1 cancel=false",
            "run b-2 cancel=false",
        ]
    );
    // A one-off read from the same cursor answers the same commits.
    let again = reader.changes_after(cursor, 100).await.unwrap();
    assert_eq!(again.entries.iter().map(|entry| entry.changes.len()).sum::<usize>(), 9);
    assert!(!again.more);
    // Read one feed entry at a time (SurrealDB's limit counts one per table a commit
    // changed), a commit is never cut in two, and the reads add up to the same changes.
    let (mut at, mut changes) = (cursor, 0);
    loop {
        let page = reader.changes_after(at, 1).await.unwrap();
        changes += page.entries.iter().map(|entry| entry.changes.len()).sum::<usize>();
        match page.cursor {
            Some(next) if next != at => at = next,
            _ => break,
        }
    }
    assert_eq!(changes, 9);
    assert!("not a cursor".parse::<FeedCursor>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_stored_by_another_process_reach_a_watching_handle_without_reading_the_run() {
    let server = start_server(Auth::None);
    let executing = server.connect(1).await.remove(0);
    let other = server.connect(1).await.remove(0);
    executing.watch_cancellations().await.unwrap();
    executing.watch_cancellations().await.unwrap(); // once per store
    let mut requests = executing.cancellation_requests();
    other.create_run(new_run("r")).await.unwrap();
    other.create_run(new_run("untouched")).await.unwrap();
    let backfill = rivers_storage::BackfillRecord::new(
        "b",
        rivers_core::BackfillState::InProgress,
        rivers_core::partitions::BackfillStrategy::MultiRun,
        rivers_core::FailurePolicy::Continue,
        rivers_core::LaunchedBy::MANUAL,
    );
    other.create_backfill(&backfill).await.unwrap();
    assert!(!executing.is_cancel_requested_locally("r"));

    other.request_cancellation("r").await.unwrap();
    assert!(other.request_backfill_cancel("b").await.unwrap());
    tokio::time::timeout(DELIVERY, async {
        while !(executing.is_cancel_requested_locally("r") && executing.is_backfill_cancel_seen("b")) {
            requests.changed().await.unwrap();
        }
    })
    .await
    .expect("both requests were learned from the feed");
    assert!(!executing.is_cancel_requested_locally("untouched"));
    assert!(!executing.is_backfill_cancel_seen("other"));
    // Closing stops the watcher and releases the connection.
    executing.close().await.unwrap();
}

#[tokio::test]
async fn a_runs_subscription_gets_run_changes_and_never_event_batches() {
    let storage = Storage::memory().await.unwrap();
    let mut feed = storage.subscribe_to_runs().await.unwrap();
    storage.create_run(new_run("r")).await.unwrap();
    storage.attach_run("r");
    successful_step(&storage, "r", "a");
    storage.flush_run("r").await.unwrap();
    storage.set_run_outcome("r", RunStatus::Success, 1, 1, None).await.unwrap();
    loop {
        let entry = next_entry(&mut feed).await;
        for change in entry.changes {
            match change {
                Change::Events(_) => panic!("event batches are not delivered"),
                Change::Run(run) if run.status == RunStatus::Success => return,
                Change::Run(_) | Change::Backfill(_) => {}
            }
        }
    }
}
