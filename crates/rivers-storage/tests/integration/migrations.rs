//! Versioned migrations: a store written by schema 1 is refused until migrated, and migrating
//! derives the indexed state from its history.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rivers_storage::{Error, RunFilter, Storage};

use crate::common;
use surrealdb::Surreal;
use surrealdb::engine::local::Db;
use surrealdb_core::kvs::Datastore;

const SCHEMA_V1: &str = include_str!("fixtures/schema_v1.surql");

/// Writes the schema-1 fixture into a new embedded store at `path` and releases it.
async fn write_v1_store(path: &Path) {
    let datastore = Datastore::new(&format!("rocksdb://{}", path.display())).await.unwrap();
    datastore.bootstrap().await.unwrap();
    let db = Surreal::<Db>::unstable_from_datastore(Arc::clone(&datastore), None).await.unwrap();
    db.use_ns("rivers").use_db("main").await.unwrap();
    db.query(SCHEMA_V1).await.unwrap().check().unwrap();
    datastore.shutdown().await.unwrap();
    drop(db);
    while Arc::strong_count(&datastore) > 1 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn check_migrated(storage: &Storage) {
    // Latest materializations now come from state, derived from history.
    let a = storage.get_latest_materialization("a", None).await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.run_id.as_str(), a.data_version.as_deref()), ("e11", "crashed", Some("a-2")));
    let b = storage.get_latest_materialization("b", None).await.unwrap().unwrap();
    assert_eq!(b.input_data_versions, [("a".to_string(), "a-1".to_string())]);
    // Resume of the interrupted run re-runs exactly b.
    let done: Vec<String> = storage.succeeded_steps("crashed", None).await.unwrap().into_iter().collect();
    assert_eq!(done, ["a"]);
    // History reads keep working, in run order, and new events continue the numbering.
    let events = storage.get_events_for_run("crashed").await.unwrap();
    assert_eq!(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e9", "e10", "e11", "e12", "e13"]);
    storage.attach_run("crashed");
    storage.enqueue_event(common::step_event(rivers_core::EventType::StepSuccess, "crashed", "b"));
    storage.flush_run("crashed").await.unwrap();
    let events = storage.get_events_for_run("crashed").await.unwrap();
    let (last, earlier) = events.split_last().unwrap();
    assert_eq!(earlier.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e9", "e10", "e11", "e12", "e13"]);
    assert_eq!((last.event_type, last.run_seq), (rivers_core::EventType::StepSuccess, 6));
    assert_eq!(
        storage.get_runs(10, None).await.unwrap().iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        ["crashed", "done"]
    );
    // Runs stored before code-location identities belong to the local location.
    let local = RunFilter::CodeLocation { code_location: rivers_storage::LOCAL_CODE_LOCATION.into(), status: None };
    let found: Vec<String> = storage.get_runs_where(&local, 10).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(found, ["crashed", "done"]);
    // Runs stored before their tags were indexed are found by tag.
    let tagged = RunFilter::Tag { key: "team".into(), value: "data".into() };
    let found: Vec<String> = storage.get_runs_where(&tagged, 10).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(found, ["done"]);
    // Dynamic keys are numbered densely in insertion order, and new keys continue after them.
    let numbered = storage.get_dynamic_partition_numbers("tenants").await.unwrap();
    assert_eq!(numbered, [("heron".to_string(), 0), ("orca".to_string(), 1)]);
    storage.add_dynamic_partitions("tenants", &["kite".to_string(), "orca".to_string()]).await.unwrap();
    let numbered = storage.get_dynamic_partition_numbers("tenants").await.unwrap();
    assert_eq!(numbered.last(), Some(&("kite".to_string(), 2)));
    assert_eq!(numbered.len(), 3);
}

#[tokio::test]
async fn an_embedded_v1_store_is_refused_then_migrated() {
    let dir = tempfile::tempdir().unwrap();
    write_v1_store(dir.path()).await;

    let refused = Storage::embedded(dir.path()).await.unwrap_err();
    assert!(matches!(refused, Error::SchemaMigrationNeeded { found: 1, expected: 15, .. }), "{refused}");
    assert!(refused.to_string().contains("rivers db migrate"), "{refused}");

    Storage::migrate_embedded(dir.path()).await.unwrap();
    // Idempotent.
    Storage::migrate_embedded(dir.path()).await.unwrap();
    let storage = Storage::embedded(dir.path()).await.unwrap();
    check_migrated(&storage).await;
}

#[tokio::test]
async fn a_remote_v1_database_is_refused_then_migrated() {
    let server = common::start_server(common::Auth::None);
    let target = rivers_storage::RemoteTarget {
        endpoint: server.endpoint.clone(),
        namespace: "rivers".into(),
        database: "main".into(),
        credentials: None,
    };
    let db = surrealdb::engine::any::connect(server.endpoint.as_str()).await.unwrap();
    db.use_ns("rivers").use_db("main").await.unwrap();
    db.query(SCHEMA_V1).await.unwrap().check().unwrap();
    // A backfill as schema 5 stored it: the strategy as JSON text, one list of the failed and
    // canceled partitions.
    db.query(OLD_BACKFILL).await.unwrap().check().unwrap();
    // Declared asset fields as schema 1 to 7 stored them: one registry document.
    db.query(OLD_REGISTRY).await.unwrap().check().unwrap();
    // Partition state as schema 5 and 6 stored it: one status record per asset, and the latest
    // materialization of each partition in its own row.
    db.query(old_partition_state()).await.unwrap().check().unwrap();

    assert!(matches!(Storage::connect(&target).await.unwrap_err(), Error::SchemaMigrationNeeded { .. }));
    Storage::migrate_remote(&target).await.unwrap();
    let storage = Storage::connect(&target).await.unwrap();
    check_migrated(&storage).await;
    let backfill = storage.get_backfill("old").await.unwrap().unwrap();
    assert_eq!(backfill.strategy, rivers_core::partitions::BackfillStrategy::SingleRun);
    assert_eq!(backfill.failure_policy, rivers_core::FailurePolicy::StopOnFailure);
    assert_eq!((backfill.completed, backfill.failed, backfill.canceled), (1, 1, 1));
    assert_eq!(backfill.failed_keys, ["2024-01-02", "2024-01-03"], "what a rerun covers is kept");
    assert_eq!(backfill.launched_by, rivers_core::LaunchedBy::MANUAL);
    assert_eq!(backfill.code_location.as_deref(), Some(rivers_storage::LOCAL_CODE_LOCATION));
    // Declared fields moved from the registry document to shards, found by label.
    let tagged = storage.get_assets_by_tag("finance").await.unwrap();
    assert_eq!(tagged.len(), 1);
    let orders = &tagged[0];
    assert_eq!((orders.asset_key.as_str(), orders.group.as_deref()), ("orders", Some("sales")));
    assert_eq!((orders.pool.clone(), orders.upstreams.clone()), (vec![("db".to_string(), 2)], vec!["raw".to_string()]));
    assert!(storage.get_asset_record("raw").await.unwrap().unwrap().is_external);
    assert_eq!(storage.get_run_progress("done").await.unwrap(), (2, 2), "progress moves to the run counters");

    // Partition rows moved into the index, status onto the definition's grid.
    let day = storage.get_latest_materialization("daily", Some("2024-01-02")).await.unwrap().unwrap();
    assert_eq!((day.id.as_str(), day.data_version.as_deref()), ("p2", Some("v2")));
    assert!(storage.get_latest_materialization("daily", Some("2024-01-03")).await.unwrap().is_none());
    let status = storage.get_partition_status("daily").await.unwrap();
    // A row the status did not know (2024-01-05) counts as materialized too.
    assert_eq!((status.materialized.to_string(), status.failed.to_string()), ("0-1,4".into(), "2".into()));
    let fifth = storage.get_latest_materialization("daily", Some("2024-01-05")).await.unwrap().unwrap();
    assert_eq!(fifth.id, "p5");
    assert!(status.in_progress.is_empty(), "in-progress positions of no run are not kept");
    assert_eq!(status.definition.as_deref(), Some(&daily()));
}

fn daily() -> rivers_core::partitions::Partitions {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    rivers_core::partitions::Partitions::daily(start, None, None).unwrap()
}

/// Schema 6 partition state of asset "daily": two days materialized (with their rows), one
/// failed, one left in progress by a run that died.
fn old_partition_state() -> String {
    let event = |id: &str, day: &str, version: &str| {
        let event = rivers_storage::StoredEvent {
            id: id.into(),
            event_type: rivers_core::EventType::Materialization,
            asset_key: Some("daily".into()),
            run_id: "r1".into(),
            partition_key: Some(day.into()),
            timestamp: 1_700_000_000_000_000_000,
            run_seq: 0,
            metadata: Vec::new(),
            data_version: Some(version.into()),
            code_version: None,
            input_data_versions: Vec::new(),
            span: None,
        };
        serde_json::to_string(&serde_json::to_string(&event).unwrap()).unwrap()
    };
    let definition = serde_json::to_string(&daily()).unwrap();
    format!(
        "UPSERT partition_status:daily CONTENT {{ asset_key: 'daily', definition: {definition}, \
             materialized: '0-1', failed: '2', in_progress: '5', version: 3 }}; \
         UPSERT asset_partition:['daily', '2024-01-01'] CONTENT {{ asset_key: 'daily', partition_key: '2024-01-01', \
             last_materialization: {}, last_materialization_time: 1700000000000000000 }}; \
         UPSERT asset_partition:['daily', '2024-01-02'] CONTENT {{ asset_key: 'daily', partition_key: '2024-01-02', \
             last_materialization: {}, last_materialization_time: 1700000000000000001 }}; \
         UPSERT asset_partition:['daily', '2024-01-05'] CONTENT {{ asset_key: 'daily', partition_key: '2024-01-05', \
             last_materialization: {}, last_materialization_time: 1700000000000000002 }};",
        event("p1", "2024-01-01", "v1"),
        event("p2", "2024-01-02", "v2"),
        event("p5", "2024-01-05", "v5"),
    )
}

const OLD_REGISTRY: &str = r#"UPSERT asset_registry:current SET assets = {
    orders: { tags: ["finance"], kinds: ["table"], group: "sales", code_version: "3", pool: [["db", 2]],
              upstreams: ["raw"], is_external: false },
    raw: { tags: [], kinds: [], group: NONE, code_version: NONE, pool: [], upstreams: [], is_external: true }
};"#;

const OLD_BACKFILL: &str = r#"CREATE backfill:old CONTENT {
    backfill_id: "old", status: "failed", selection: ["daily"], strategy: "{\"kind\":\"single_run\"}",
    failure_policy: "stop_on_failure", max_concurrency: 1, tags: [], config: NONE,
    num_partitions: 3, num_runs: 1, completed: 1, failed: 1, canceled: 1, run_ids: ["r1"],
    unfinished: ["2024-01-02", "2024-01-03"], error: NONE, launched_by: { kind: "manual" },
    cancel_requested: false
};"#;

#[tokio::test]
async fn a_store_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::embedded(dir.path()).await.unwrap();
    storage.kv_set("probe", b"1").await.unwrap();
    storage.close().await.unwrap();
    {
        let datastore = Datastore::new(&format!("rocksdb://{}", dir.path().display())).await.unwrap();
        let db = Surreal::<Db>::unstable_from_datastore(Arc::clone(&datastore), None).await.unwrap();
        db.use_ns("rivers").use_db("main").await.unwrap();
        db.query("UPSERT schema_stamp:current SET version = 99").await.unwrap().check().unwrap();
        datastore.shutdown().await.unwrap();
        drop(db);
        while Arc::strong_count(&datastore) > 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let err = Storage::embedded(dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("newer rivers"), "{err}");
}
