//! Code-location identity: runs, backfills and definitions snapshots of several locations in
//! one SurrealDB server, each listed from its own index.

use rivers_core::partitions::BackfillStrategy;
use rivers_core::{BackfillState, DefinitionsSnapshot, ExecutorKind, FailurePolicy, LaunchedBy, NodeDef, RunStatus};
use rivers_storage::{BackfillRecord, LOCAL_CODE_LOCATION, NewRun, RunFilter, Storage};

use crate::common::{self, new_run};

fn snapshot(assets: &[&str]) -> DefinitionsSnapshot {
    DefinitionsSnapshot {
        nodes: assets.iter().map(|name| NodeDef::asset(*name)).collect(),
        jobs: Vec::new(),
        resources: Vec::new(),
        default_executor: ExecutorKind::InProcess,
        default_retry: None,
        retries: Default::default(),
        partitions: Default::default(),
        schedules: Vec::new(),
        sensors: Vec::new(),
        pool_limits: Vec::new(),
    }
}

fn requested(id: &str) -> BackfillRecord {
    BackfillRecord::new(
        id,
        BackfillState::Requested,
        BackfillStrategy::MultiRun,
        FailurePolicy::Continue,
        LaunchedBy::MANUAL,
    )
}

fn ids(runs: Vec<rivers_storage::RunRecord>) -> Vec<String> {
    runs.into_iter().map(|run| run.run_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_location_lists_its_own_runs_backfills_and_snapshot_from_one_store() {
    let server = common::start_server(common::Auth::None);
    let handles = server.connect(2).await;
    let (sales, finance) = (handles[0].for_code_location("sales"), handles[1].for_code_location("finance"));
    // Without an identity in the environment, a dev process writes under the local one.
    let local = Storage::connect(&server.target()).await.unwrap();
    assert_eq!(local.code_location(), &rivers_storage::CodeLocationId::Known(LOCAL_CODE_LOCATION.into()));

    for (storage, prefix) in [(&sales, "s"), (&finance, "f"), (&local, "l")] {
        for i in 0..3 {
            let status = if i == 0 { RunStatus::Queued } else { RunStatus::Running };
            storage.create_run(NewRun { status, ..new_run(&format!("{prefix}{i}")) }).await.unwrap();
        }
    }
    let record = sales.get_run("s1").await.unwrap().unwrap();
    assert_eq!(record.code_location.as_deref(), Some("sales"));
    let of = |location: &str, status| RunFilter::CodeLocation { code_location: location.into(), status };
    assert_eq!(ids(finance.get_runs_where(&of("sales", None), 10).await.unwrap()), ["s2", "s1", "s0"]);
    assert_eq!(ids(sales.get_runs_where(&of("finance", Some(RunStatus::Queued)), 10).await.unwrap()), ["f0"]);
    assert_eq!(
        ids(sales.get_runs_where(&of(LOCAL_CODE_LOCATION, Some(RunStatus::Running)), 10).await.unwrap()),
        ["l2", "l1"]
    );
    assert_eq!(sales.get_runs_where(&RunFilter::All, 20).await.unwrap().len(), 9, "one store holds them all");

    // Each location's coordinator sees only its own requested backfills.
    sales.create_backfill(&requested("bf-sales")).await.unwrap();
    finance.create_backfill(&requested("bf-finance-1")).await.unwrap();
    finance.create_backfill(&requested("bf-finance-2")).await.unwrap();
    let waiting = |storage: Storage| async move {
        storage.requested_backfills(10).await.unwrap().into_iter().map(|b| b.backfill_id).collect::<Vec<_>>()
    };
    assert_eq!(waiting(sales.clone()).await, ["bf-sales"]);
    assert_eq!(waiting(finance.clone()).await, ["bf-finance-1", "bf-finance-2"]);
    assert!(waiting(local.clone()).await.is_empty());
    let stored = finance.get_backfill("bf-sales").await.unwrap().unwrap();
    assert_eq!(stored.code_location.as_deref(), Some("sales"));

    // Backfills page newest first, across locations or within one.
    let first = local.get_backfills_page(None, 2, None).await.unwrap();
    let names = |page: &rivers_storage::Page<BackfillRecord>| {
        page.items.iter().map(|b| b.backfill_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["bf-finance-2", "bf-finance-1"]);
    let rest = local.get_backfills_page(None, 2, first.next.as_ref()).await.unwrap();
    assert_eq!((names(&rest), rest.next), (vec!["bf-sales".to_string()], None));
    let own = local.get_backfills_page(Some("finance"), 1, None).await.unwrap();
    assert_eq!(names(&own), ["bf-finance-2"]);
    let own = local.get_backfills_page(Some("finance"), 1, own.next.as_ref()).await.unwrap();
    assert_eq!(names(&own), ["bf-finance-1"]);

    // Snapshots: written when they change, read by identity, listed.
    assert!(sales.put_definitions_snapshot(&snapshot(&["orders"])).await.unwrap());
    assert!(!sales.put_definitions_snapshot(&snapshot(&["orders"])).await.unwrap(), "unchanged: not rewritten");
    assert!(finance.put_definitions_snapshot(&snapshot(&["ledger", "invoices"])).await.unwrap());
    assert!(sales.put_definitions_snapshot(&snapshot(&["orders", "refunds"])).await.unwrap());
    let read = local.get_definitions_snapshot("sales").await.unwrap().unwrap();
    assert_eq!(read, snapshot(&["orders", "refunds"]));
    assert!(local.get_definitions_snapshot("nowhere").await.unwrap().is_none());
    let listed: Vec<String> =
        local.list_code_locations().await.unwrap().into_iter().map(|location| location.code_location).collect();
    assert_eq!(listed, ["finance", "sales"]);
}
