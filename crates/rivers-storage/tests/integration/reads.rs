//! Read paths served from indexed state: latest materializations per asset and partition,
//! step states, runs newest-first.

use crate::common::{new_run, step_event, successful_step};
use rivers_core::partitions::Partitions;
use rivers_core::{EventType, LaunchedBy, RunStatus};
use rivers_storage::{
    NewEvent, NewRun, PartitionSpan, PlanRegistration, RunFilter, StepStatus, Storage, StoredEvent,
    definition_fingerprint,
};

fn materialization(run_id: &str, key: &str, version: &str) -> NewEvent {
    NewEvent { data_version: Some(version.into()), ..step_event(EventType::Materialization, run_id, key) }
}

/// A daily definition from 2024-01-01, registered for asset "a"; returns its grid.
async fn daily_grid(storage: &Storage) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let daily = Partitions::daily(start, None, None).unwrap();
    storage.register_partitions(vec![("a".into(), daily.clone())]).await.unwrap();
    definition_fingerprint(&daily)
}

/// A materialization of day positions `positions` of "a" (named when it is one day).
fn of_days(run_id: &str, grid: &str, positions: &str, day: Option<&str>, version: &str, derived: bool) -> NewEvent {
    NewEvent {
        partition_key: day.map(str::to_owned),
        span: Some(PartitionSpan {
            definition: grid.into(),
            positions: positions.parse().unwrap(),
            derived_versions: derived,
        }),
        ..materialization(run_id, "a", version)
    }
}

#[tokio::test]
async fn latest_materialization_per_asset_and_per_partition() {
    let storage = Storage::memory().await.unwrap();
    let grid = daily_grid(&storage).await;
    storage.enqueue_event(materialization("r1", "a", "v1"));
    storage.enqueue_event(of_days("r1", &grid, "0", Some("2024-01-01"), "p1", false));
    storage.flush().await.unwrap();
    let last = storage.enqueue_event(of_days("r2", &grid, "1", Some("2024-01-02"), "p2", false));
    storage.enqueue_event(step_event(EventType::StepSuccess, "r2", "a"));

    let latest = storage.get_latest_materialization("a", None).await.unwrap().unwrap();
    assert_eq!(latest.id, last);
    assert_eq!(latest.data_version.as_deref(), Some("p2"));
    let first_day = storage.get_latest_materialization("a", Some("2024-01-01")).await.unwrap().unwrap();
    assert_eq!((first_day.run_id.as_str(), first_day.data_version.as_deref()), ("r1", Some("p1")));
    assert!(storage.get_latest_materialization("a", Some("2024-01-03")).await.unwrap().is_none());
    assert!(storage.get_latest_materialization("a", Some("not a day")).await.unwrap().is_none());
    assert!(storage.get_latest_materialization("missing", None).await.unwrap().is_none());
    let status = storage.get_partition_status("a").await.unwrap();
    assert_eq!(status.materialized.to_string(), "0-1");

    let record = storage.get_asset_record("a").await.unwrap().unwrap();
    assert_eq!(record.last_event_id.as_deref(), Some(last.as_str()));
    assert_eq!(record.last_run_id.as_deref(), Some("r2"));
}

#[tokio::test]
async fn a_compact_materialization_reads_as_one_event_per_partition() {
    let storage = Storage::memory().await.unwrap();
    let grid = daily_grid(&storage).await;
    storage.enqueue_event(step_event(EventType::StepStart, "r", "a"));
    let base = uuid::Uuid::new_v4().to_string();
    let compact = storage.enqueue_event(of_days("r", &grid, "0-4,9", None, &base, true));
    storage.enqueue_event(step_event(EventType::StepSuccess, "r", "a"));

    let events = storage.get_events_for_run("r").await.unwrap();
    let mats: Vec<&StoredEvent> = events.iter().filter(|e| e.event_type == EventType::Materialization).collect();
    let days: Vec<&str> = mats.iter().filter_map(|e| e.partition_key.as_deref()).collect();
    assert_eq!(days, ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-10"]);
    // Numbers stay gap-free and ordered: the compact event takes one per partition.
    let numbers: Vec<i64> = events.iter().map(|e| e.run_seq).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    // Ids are unique and the same on every read; each partition has its own data version.
    assert_eq!(mats[0].id, format!("{compact}.0"));
    let again = storage.get_events_for_run("r").await.unwrap();
    assert_eq!(events, again);
    let versions: std::collections::HashSet<_> = mats.iter().map(|e| e.data_version.clone().unwrap()).collect();
    assert_eq!(versions.len(), 6);

    // Newest first, expanded only as far as the limit reaches.
    let newest = storage.get_events_for_asset("a", 3).await.unwrap();
    let newest: Vec<Option<&str>> = newest.iter().map(|e| e.partition_key.as_deref()).collect();
    assert_eq!(newest, [None, Some("2024-01-10"), Some("2024-01-05")]);

    // Latest-state reads carry no run number (they are not read in run order).
    let unnumbered = |event: &StoredEvent| StoredEvent { run_seq: 0, ..event.clone() };
    let day = storage.get_latest_materialization("a", Some("2024-01-03")).await.unwrap().unwrap();
    assert_eq!(day, unnumbered(mats[2]));
    let latest = storage.get_latest_materialization("a", None).await.unwrap().unwrap();
    assert_eq!(latest, unnumbered(mats[5]));
    let record = storage.get_asset_record("a").await.unwrap().unwrap();
    assert_eq!(record.last_data_version, mats[5].data_version);
    assert_eq!(storage.get_partition_status("a").await.unwrap().materialized.to_string(), "0-4,9");
}

#[tokio::test]
async fn each_partition_keeps_its_newest_materialization() {
    let storage = Storage::memory().await.unwrap();
    let grid = daily_grid(&storage).await;
    // A run of ten days, then a run of one day inside them, then one of two days across the
    // edge of the first: the index splits and merges intervals as it goes.
    storage.enqueue_event(of_days("all", &grid, "0-9", None, "v-all", false));
    storage.flush().await.unwrap();
    storage.enqueue_event(of_days("one", &grid, "4", Some("2024-01-05"), "v-one", false));
    storage.flush().await.unwrap();
    storage.enqueue_event(of_days("edge", &grid, "9-10", None, "v-edge", false));
    let versions = async |days: &[&str]| {
        let mut versions = Vec::new();
        for day in days {
            let latest = storage.get_latest_materialization("a", Some(day)).await.unwrap();
            versions.push(latest.and_then(|e| e.data_version).unwrap_or_default());
        }
        versions
    };
    let days = ["2024-01-01", "2024-01-04", "2024-01-05", "2024-01-06", "2024-01-10", "2024-01-11", "2024-01-12"];
    assert_eq!(versions(&days).await, ["v-all", "v-all", "v-one", "v-all", "v-edge", "v-edge", ""]);
    assert_eq!(storage.get_partition_status("a").await.unwrap().materialized.to_string(), "0-10");
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
                LaunchedBy::MANUAL
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

#[tokio::test]
async fn runs_page_newest_first_and_a_cursor_is_not_moved_by_new_runs() {
    let storage = Storage::memory().await.unwrap();
    for i in 0..25 {
        let run = NewRun {
            tags: vec![("team".into(), if i % 2 == 0 { "even" } else { "odd" }.into())],
            ..new_run(&format!("r{i:02}"))
        };
        storage.create_run(run).await.unwrap();
    }
    let ids = |runs: &[rivers_storage::RunRecord]| runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    let first = storage.get_runs_page(&RunFilter::All, 10, None).await.unwrap();
    assert_eq!(ids(&first.items), (15..25).rev().map(|i| format!("r{i:02}")).collect::<Vec<_>>());
    // A run created meanwhile shows on a new first page, not in the pages that follow.
    storage.create_run(new_run("late")).await.unwrap();
    let second = storage.get_runs_page(&RunFilter::All, 10, first.next.as_ref()).await.unwrap();
    assert_eq!(ids(&second.items), (5..15).rev().map(|i| format!("r{i:02}")).collect::<Vec<_>>());
    let last = storage.get_runs_page(&RunFilter::All, 10, second.next.as_ref()).await.unwrap();
    assert_eq!(ids(&last.items), ["r04", "r03", "r02", "r01", "r00"]);
    assert!(last.next.is_none());

    // Every filter pages the same way.
    let tagged = RunFilter::Tag { key: "team".into(), value: "odd".into() };
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = storage.get_runs_page(&tagged, 5, cursor.as_ref()).await.unwrap();
        pages.extend(ids(&page.items));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, (0..25).rev().filter(|i| i % 2 == 1).map(|i| format!("r{i:02}")).collect::<Vec<_>>());
    let running = storage.get_runs_page(&RunFilter::Status(RunStatus::Running), 30, None).await.unwrap();
    assert_eq!((running.items.len(), running.next), (26, None));
}

#[tokio::test]
async fn a_runs_steps_list_with_status_times_and_attempts() {
    let storage = Storage::memory().await.unwrap();
    storage.enqueue_event(step_event(EventType::StepStart, "r", "a"));
    storage.enqueue_event(step_event(EventType::StepRetry, "r", "a"));
    storage.flush().await.unwrap();
    storage.enqueue_event(step_event(EventType::StepRetry, "r", "a"));
    storage.enqueue_event(step_event(EventType::StepStart, "r", "b"));
    storage.flush().await.unwrap();
    let running = storage.get_run_steps("r").await.unwrap();
    let running: Vec<(&str, StepStatus, u32)> =
        running.iter().map(|s| (s.step_key.as_str(), s.status, s.attempts)).collect();
    assert_eq!(running, [("a", StepStatus::Running, 3), ("b", StepStatus::Running, 1)]);

    storage.enqueue_event(step_event(EventType::StepSuccess, "r", "a"));
    storage.enqueue_event(step_event(EventType::StepFailure, "r", "b"));
    storage.enqueue_event(step_event(EventType::StepSkipped, "r", "c"));
    storage.enqueue_event(step_event(EventType::StepStart, "other", "a"));
    let steps = storage.get_run_steps("r").await.unwrap();
    let listed: Vec<(&str, StepStatus, u32)> =
        steps.iter().map(|s| (s.step_key.as_str(), s.status, s.attempts)).collect();
    assert_eq!(listed, [("a", StepStatus::Success, 3), ("b", StepStatus::Failure, 1), ("c", StepStatus::Skipped, 1)]);
    let (a, b, c) = (&steps[0], &steps[1], &steps[2]);
    assert!(a.start_time.unwrap() < b.start_time.unwrap(), "a started first");
    assert!(a.end_time.unwrap() > b.start_time.unwrap() && b.end_time.unwrap() > a.end_time.unwrap());
    assert!(c.start_time.is_none() && c.end_time.is_some(), "a skipped step never started");
    assert!(storage.get_run_steps("missing").await.unwrap().is_empty());

    // Executing the run again from the start starts every step's times and attempts afresh.
    let keys = ["a".to_string(), "b".to_string(), "c".to_string()];
    storage.register_run_steps("r", &keys, PlanRegistration::Restart).await.unwrap();
    let again = storage.get_run_steps("r").await.unwrap();
    assert!(again.iter().all(|s| s.start_time.is_none() && s.end_time.is_none() && s.attempts == 1), "{again:?}");
}

#[tokio::test]
async fn assets_are_found_by_tag_kind_and_group_with_their_state() {
    let storage = Storage::memory().await.unwrap();
    let declared = |key: &str, tags: &[&str], kinds: &[&str], group: Option<&str>| rivers_storage::AssetRecord {
        asset_key: key.into(),
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        kinds: kinds.iter().map(|k| (*k).to_string()).collect(),
        group: group.map(str::to_string),
        ..Default::default()
    };
    storage
        .register_assets(vec![
            declared("orders", &["finance", "raw"], &["table"], Some("sales")),
            declared("revenue", &["finance"], &["scalar"], Some("sales")),
            declared("audit", &["ops"], &["table", "log"], None),
        ])
        .await
        .unwrap();
    successful_step(&storage, "r1", "revenue");
    storage.flush().await.unwrap();

    let keys = |records: Vec<rivers_storage::AssetRecord>| records.into_iter().map(|r| r.asset_key).collect::<Vec<_>>();
    assert_eq!(keys(storage.get_assets_by_tag("finance").await.unwrap()), ["orders", "revenue"]);
    assert_eq!(keys(storage.get_assets_by_kind("table").await.unwrap()), ["audit", "orders"]);
    assert_eq!(keys(storage.get_assets_by_group("sales").await.unwrap()), ["orders", "revenue"]);
    assert!(storage.get_assets_by_tag("nobody").await.unwrap().is_empty());
    // Found records carry their state.
    let revenue = storage.get_assets_by_kind("scalar").await.unwrap().remove(0);
    assert_eq!(revenue.last_run_id.as_deref(), Some("r1"));

    // Registering again replaces declared fields (and moves the asset between index entries),
    // keeping state; assets registered before stay.
    storage.register_assets(vec![declared("revenue", &["kpi"], &["scalar"], Some("reporting"))]).await.unwrap();
    assert_eq!(keys(storage.get_assets_by_tag("finance").await.unwrap()), ["orders"]);
    assert_eq!(keys(storage.get_assets_by_group("reporting").await.unwrap()), ["revenue"]);
    let revenue = storage.get_asset_record("revenue").await.unwrap().unwrap();
    assert_eq!((revenue.tags, revenue.last_run_id.as_deref()), (vec!["kpi".to_string()], Some("r1")));
    assert_eq!(keys(storage.get_asset_records().await.unwrap()), ["audit", "orders", "revenue"]);
}

#[tokio::test]
async fn an_assets_events_page_newest_first_through_compact_events_and_new_commits() {
    let storage = Storage::memory().await.unwrap();
    let grid = daily_grid(&storage).await;
    // Three commits: a step of run r1, a compact event of 6 partitions in r2, a step of r3.
    successful_step(&storage, "r1", "a");
    storage.flush().await.unwrap();
    storage.enqueue_event(of_days("r2", &grid, "0-4,9", None, &uuid::Uuid::new_v4().to_string(), true));
    storage.flush().await.unwrap();
    successful_step(&storage, "r3", "a");
    successful_step(&storage, "r3", "other");
    storage.flush().await.unwrap();

    let describe = |event: &StoredEvent| match &event.partition_key {
        Some(day) => format!("{}:{day}", event.run_id),
        None => format!("{}:{}", event.run_id, event.event_type),
    };
    let everything: Vec<String> = storage.get_events_for_asset("a", 100).await.unwrap().iter().map(describe).collect();
    assert_eq!(everything.len(), 3 + 6 + 3, "{everything:?}");
    assert!(everything[..3].iter().all(|e| e.starts_with("r3:")), "newest commit first: {everything:?}");

    // Pages of 4 cross segment boundaries and split the compact event, and a commit made
    // meanwhile does not shift them.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = storage.get_asset_events_page("a", 4, cursor.as_ref()).await.unwrap();
        assert!(page.items.len() <= 4);
        paged.extend(page.items.iter().map(describe));
        if cursor.is_none() {
            successful_step(&storage, "r4", "a");
            storage.flush().await.unwrap();
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, everything);
    let ids: std::collections::HashSet<String> =
        storage.get_events_for_asset("a", 100).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3 + 6 + 3 + 3, "every expanded event has its own id");
}

#[tokio::test]
async fn a_deleted_dynamic_key_keeps_its_number_and_history_still_names_it() {
    let storage = Storage::memory().await.unwrap();
    let shops = Partitions::dynamic("shops".into()).unwrap();
    storage.register_partitions(vec![("s".into(), shops.clone())]).await.unwrap();
    let keys = |names: &[&str]| names.iter().map(|name| (*name).to_string()).collect::<Vec<_>>();
    storage.add_dynamic_partitions("shops", &keys(&["north", "south", "east"])).await.unwrap();
    // One step covering all three shops: one compact event.
    storage.enqueue_event(NewEvent {
        span: Some(PartitionSpan {
            definition: definition_fingerprint(&shops),
            positions: "0-2".parse().unwrap(),
            derived_versions: true,
        }),
        ..materialization("r1", "s", "v")
    });
    storage.flush().await.unwrap();

    storage.delete_dynamic_partition("shops", "south").await.unwrap();
    assert_eq!(storage.get_dynamic_partitions("shops").await.unwrap(), ["north", "east"]);
    assert!(!storage.has_dynamic_partition("shops", "south").await.unwrap());
    let named: Vec<Option<String>> =
        storage.get_events_for_asset("s", 10).await.unwrap().into_iter().map(|e| e.partition_key).collect();
    assert_eq!(named.len(), 3);
    assert!(named.contains(&Some("south".into())), "history still names the deleted key: {named:?}");

    // Numbers are never given to another key; a key added again is a new partition, and the
    // history of its old number still names it.
    storage.add_dynamic_partitions("shops", &keys(&["west", "south"])).await.unwrap();
    let numbers = storage.get_dynamic_partition_numbers("shops").await.unwrap();
    let numbers: Vec<(&str, u64)> = numbers.iter().map(|(key, number)| (key.as_str(), *number)).collect();
    assert_eq!(numbers, [("north", 0), ("east", 2), ("west", 3), ("south", 4)]);
    let named: Vec<Option<String>> =
        storage.get_events_for_asset("s", 10).await.unwrap().into_iter().map(|e| e.partition_key).collect();
    assert!(named.contains(&Some("south".into())), "{named:?}");
    storage.delete_dynamic_partition("shops", "nobody").await.unwrap();
}
