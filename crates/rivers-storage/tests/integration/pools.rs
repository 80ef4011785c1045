//! Concurrency pools: limits, all-or-none claims, block reasons, releases, leases and their
//! garbage collection, waiting steps, and concurrent claimers that never overshoot a limit.

use std::time::Duration;

use futures::future::join_all;
use rivers_core::PoolClaim;
use rivers_storage::{BlockKind, ConcurrencyClaim, DEFAULT_POOL_LEASE, Storage};

fn claim(pools: &[(&str, i64)]) -> Vec<PoolClaim> {
    pools.iter().map(|(pool, slots)| PoolClaim { pool: (*pool).into(), slots: *slots }).collect()
}

async fn claimed(storage: &Storage, pools: &[(&str, i64)], run: &str, step: &str) -> ConcurrencyClaim {
    storage.claim_concurrency_slots(&claim(pools), run, step, 0, None).await.unwrap()
}

fn holders(list: &[rivers_storage::SlotHolder]) -> Vec<(String, String, i64)> {
    list.iter().map(|h| (h.run_id.clone(), h.step_key.clone(), h.slots_consumed)).collect()
}

#[tokio::test]
async fn limits_are_upserted_listed_by_key_and_an_unknown_pool_is_an_error() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("p", 3, Duration::from_secs(120)).await.unwrap();
    storage.set_pool_limit("a", 1, DEFAULT_POOL_LEASE).await.unwrap();
    let info = storage.get_pool_info("p").await.unwrap();
    assert_eq!((info.limit.slot_limit, info.limit.lease), (3, Duration::from_secs(120)));
    assert_eq!((info.claimed_count, info.pending_count), (0, 0));
    storage.set_pool_limit("p", 5, Duration::from_secs(90)).await.unwrap();
    let limits = storage.get_pool_limits().await.unwrap();
    assert_eq!(
        limits.iter().map(|l| (l.pool_key.as_str(), l.slot_limit, l.lease.as_secs())).collect::<Vec<_>>(),
        [("a", 1, 300), ("p", 5, 90)]
    );
    let unknown = storage.get_pool_info("nope").await.unwrap_err().to_string();
    assert!(unknown.contains("unknown pool 'nope'") && unknown.contains("set_pool_limit"), "{unknown}");
    let negative = storage.set_pool_limit("p", -1, DEFAULT_POOL_LEASE).await.unwrap_err().to_string();
    assert!(negative.contains("pool 'p'"), "{negative}");
    assert!(storage.get_pool_slot_holders("nope").await.unwrap().is_empty());
    storage.close().await.unwrap();
}

#[tokio::test]
async fn declared_limits_keep_an_existing_pools_lease_and_give_new_pools_the_default() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 2, Duration::from_secs(60)).await.unwrap();
    storage.declare_pool_limits(&[("db".into(), 4), ("api".into(), 10)]).await.unwrap();
    let limits = storage.get_pool_limits().await.unwrap();
    assert_eq!(
        limits.iter().map(|l| (l.pool_key.as_str(), l.slot_limit, l.lease)).collect::<Vec<_>>(),
        [("api", 10, DEFAULT_POOL_LEASE), ("db", 4, Duration::from_secs(60))]
    );
    storage.close().await.unwrap();
}

#[tokio::test]
async fn claims_are_all_or_none_and_say_which_pools_block() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 2, DEFAULT_POOL_LEASE).await.unwrap();
    storage.set_pool_limit("api", 1, DEFAULT_POOL_LEASE).await.unwrap();
    assert!(
        matches!(claimed(&storage, &[("db", 1)], "r1", "a").await, ConcurrencyClaim::Claimed { lease } if lease == DEFAULT_POOL_LEASE)
    );
    assert!(matches!(claimed(&storage, &[("api", 1)], "r1", "b").await, ConcurrencyClaim::Claimed { .. }));

    // db has room for 1 but not 2; api has none: nothing is claimed, both pools block.
    let ConcurrencyClaim::Pending { position, reason } = claimed(&storage, &[("db", 2), ("api", 1)], "r2", "c").await
    else {
        panic!("a claim two full pools block is pending")
    };
    assert_eq!((position, reason.kind(), reason.kind().as_str()), (1, BlockKind::PoolsFull, "pools_full"));
    assert_eq!(
        reason.pools.iter().map(|p| (p.pool_key.as_str(), p.claimed, p.limit)).collect::<Vec<_>>(),
        [("db", 1, 2), ("api", 1, 1)]
    );
    assert!(reason.to_string().starts_with("pools_full: pool 'db' has 1 of 2 slots claimed"), "{reason}");
    assert_eq!(holders(&storage.get_pool_slot_holders("db").await.unwrap()), [("r1".into(), "a".into(), 1)]);

    // Only api blocks a claim of one db slot and one api slot.
    let ConcurrencyClaim::Pending { reason, .. } = claimed(&storage, &[("db", 1), ("api", 1)], "r2", "d").await else {
        panic!("a claim of a full pool is pending")
    };
    assert_eq!((reason.kind(), reason.first().pool_key.as_str()), (BlockKind::PoolFull, "api"));
    let info = storage.get_pool_info("api").await.unwrap();
    assert_eq!((info.claimed_count, info.pending_count), (1, 2));

    // Once api is released, the waiting claim gets both pools and stops waiting.
    storage.free_concurrency_slots("r1", "b").await.unwrap();
    assert!(matches!(claimed(&storage, &[("db", 1), ("api", 1)], "r2", "d").await, ConcurrencyClaim::Claimed { .. }));
    let infos = storage.get_all_pool_infos().await.unwrap();
    assert_eq!(
        infos.iter().map(|i| (i.limit.pool_key.as_str(), i.claimed_count, i.pending_count)).collect::<Vec<_>>(),
        [("api", 1, 1), ("db", 2, 1)]
    );
    storage.close().await.unwrap();
}

#[tokio::test]
async fn a_pool_without_a_limit_never_throttles_but_records_its_holders() {
    let storage = Storage::memory().await.unwrap();
    for step in ["a", "b", "c"] {
        assert!(matches!(claimed(&storage, &[("free", 5)], "r", step).await, ConcurrencyClaim::Claimed { .. }));
    }
    assert_eq!(storage.get_pool_slot_holders("free").await.unwrap().len(), 3);
    // Claims leave no limit behind: the pool stays unknown to the listings.
    assert!(storage.get_pool_limits().await.unwrap().is_empty());
    assert!(storage.get_all_pool_infos().await.unwrap().is_empty());
    assert!(storage.get_pool_info("free").await.unwrap_err().to_string().contains("unknown pool 'free'"));
    // Once limited, the pool counts the slots claimed while it was not.
    storage.set_pool_limit("free", 16, DEFAULT_POOL_LEASE).await.unwrap();
    let ConcurrencyClaim::Pending { reason, .. } = claimed(&storage, &[("free", 5)], "r", "d").await else {
        panic!("15 of 16 slots are held")
    };
    assert_eq!((reason.first().claimed, reason.first().limit), (15, 16));
    storage.close().await.unwrap();
}

#[tokio::test]
async fn waiting_steps_are_ordered_by_priority_then_arrival() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 1, DEFAULT_POOL_LEASE).await.unwrap();
    assert!(matches!(claimed(&storage, &[("db", 1)], "holder", "a").await, ConcurrencyClaim::Claimed { .. }));
    let position = |claim: ConcurrencyClaim| match claim {
        ConcurrencyClaim::Pending { position, .. } => position,
        ConcurrencyClaim::Claimed { .. } => panic!("the pool is full"),
    };
    let db = claim(&[("db", 1)]);
    assert_eq!(position(storage.claim_concurrency_slots(&db, "r", "low", 0, None).await.unwrap()), 1);
    assert_eq!(position(storage.claim_concurrency_slots(&db, "r", "high", 5, None).await.unwrap()), 1);
    // Polling again keeps a step's arrival: the low-priority step is now behind the other.
    assert_eq!(position(storage.claim_concurrency_slots(&db, "r", "low", 0, None).await.unwrap()), 2);
    assert_eq!(position(storage.claim_concurrency_slots(&db, "r", "later", 0, None).await.unwrap()), 3);
    assert_eq!(storage.get_pool_info("db").await.unwrap().pending_count, 3);
    // Freeing a waiting step withdraws it; freeing a run withdraws all of its steps.
    storage.free_concurrency_slots("r", "high").await.unwrap();
    assert_eq!(storage.get_pool_info("db").await.unwrap().pending_count, 2);
    storage.free_concurrency_slots_for_run("r").await.unwrap();
    assert_eq!(storage.get_pool_info("db").await.unwrap().pending_count, 0);
    storage.close().await.unwrap();
}

#[tokio::test]
async fn releases_free_a_step_or_a_whole_run_and_are_no_ops_when_nothing_is_held() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 3, DEFAULT_POOL_LEASE).await.unwrap();
    for (run, step) in [("r1", "a"), ("r1", "b"), ("r2", "a")] {
        assert!(matches!(
            claimed(&storage, &[("db", 1), ("api", 1)], run, step).await,
            ConcurrencyClaim::Claimed { .. }
        ));
    }
    storage.free_concurrency_slots("r1", "a").await.unwrap();
    storage.free_concurrency_slots("r1", "a").await.unwrap();
    assert_eq!(
        holders(&storage.get_pool_slot_holders("db").await.unwrap()),
        [("r1".into(), "b".into(), 1), ("r2".into(), "a".into(), 1)]
    );
    storage.free_concurrency_slots_for_run("r1").await.unwrap();
    storage.free_concurrency_slots_for_run("never").await.unwrap();
    assert_eq!(holders(&storage.get_pool_slot_holders("api").await.unwrap()), [("r2".into(), "a".into(), 1)]);
    assert_eq!(storage.get_pool_info("db").await.unwrap().claimed_count, 1);
    storage.close().await.unwrap();
}

#[tokio::test]
async fn expired_leases_do_not_count_are_not_renewed_and_are_collected() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 2, DEFAULT_POOL_LEASE).await.unwrap();
    let short = Some(Duration::from_millis(200));
    let db = claim(&[("db", 2)]);
    assert!(matches!(
        storage.claim_concurrency_slots(&db, "crashed", "a", 0, short).await.unwrap(),
        ConcurrencyClaim::Claimed { .. }
    ));
    assert_eq!(storage.renew_slot_lease("crashed", "a", Duration::from_millis(200)).await.unwrap(), 1);
    assert_eq!(storage.renew_slot_lease("crashed", "none", DEFAULT_POOL_LEASE).await.unwrap(), 0);
    let holder = &storage.get_pool_slot_holders("db").await.unwrap()[0];
    assert!(holder.lease_expires_at > holder.claimed_at);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The expired slots count nowhere, before any collection, and cannot be renewed.
    assert_eq!(storage.get_pool_info("db").await.unwrap().claimed_count, 0);
    assert!(storage.get_pool_slot_holders("db").await.unwrap().is_empty());
    assert_eq!(storage.renew_slot_lease("crashed", "a", DEFAULT_POOL_LEASE).await.unwrap(), 0);
    assert!(matches!(claimed(&storage, &[("db", 2)], "alive", "b").await, ConcurrencyClaim::Claimed { .. }));

    assert_eq!(storage.free_expired_leases().await.unwrap(), 2);
    assert_eq!(storage.free_expired_leases().await.unwrap(), 0);
    assert_eq!(holders(&storage.get_pool_slot_holders("db").await.unwrap()), [("alive".into(), "b".into(), 2)]);
    storage.close().await.unwrap();
}

#[tokio::test]
async fn a_claim_takes_the_shortest_lease_of_its_pools_unless_given_one() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 2, Duration::from_secs(60)).await.unwrap();
    storage.set_pool_limit("api", 2, Duration::from_secs(30)).await.unwrap();
    let ConcurrencyClaim::Claimed { lease } = claimed(&storage, &[("db", 1), ("api", 1)], "r", "a").await else {
        panic!("both pools have room")
    };
    assert_eq!(lease, Duration::from_secs(30));
    let given =
        storage.claim_concurrency_slots(&claim(&[("db", 1)]), "r", "b", 0, Some(Duration::from_secs(7))).await.unwrap();
    assert_eq!(given, ConcurrencyClaim::Claimed { lease: Duration::from_secs(7) });
    storage.close().await.unwrap();
}

/// Many claimers racing for one pool never hold more than its limit (each claim writes the
/// pool's record, so concurrent claims conflict instead of both passing the check).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_overshoot_a_limit() {
    let storage = Storage::memory().await.unwrap();
    storage.set_pool_limit("db", 3, DEFAULT_POOL_LEASE).await.unwrap();
    let claims = (0..24).map(|i| {
        let storage = storage.clone();
        async move {
            let db = claim(&[("db", 1)]);
            storage.claim_concurrency_slots(&db, "r", &format!("s{i}"), 0, None).await.unwrap()
        }
    });
    let outcomes = join_all(claims).await;
    let granted = outcomes.iter().filter(|o| matches!(o, ConcurrencyClaim::Claimed { .. })).count();
    assert_eq!(granted, 3);
    assert_eq!(storage.get_pool_info("db").await.unwrap().claimed_count, 3);
    storage.close().await.unwrap();
}

/// Connections of their own (as separate processes have) hammering one pool on a SurrealDB
/// server: claim until granted, hold, release. The holders counted while holding never exceed
/// the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claimers_on_a_server_never_overshoot_a_limit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let server = crate::common::start_server(crate::common::Auth::None);
    let handles = server.connect(6).await;
    handles[0].set_pool_limit("db", 2, DEFAULT_POOL_LEASE).await.unwrap();
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let workers = handles.iter().enumerate().map(|(worker, storage)| {
        let (holding, peak) = (Arc::clone(&holding), Arc::clone(&peak));
        async move {
            let db = claim(&[("db", 1)]);
            for round in 0..8 {
                let step = format!("w{worker}-{round}");
                while !matches!(
                    storage.claim_concurrency_slots(&db, "hammer", &step, 0, None).await.unwrap(),
                    ConcurrencyClaim::Claimed { .. }
                ) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                holding.fetch_sub(1, Ordering::SeqCst);
                storage.free_concurrency_slots("hammer", &step).await.unwrap();
            }
        }
    });
    join_all(workers).await;
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert!(handles[0].get_pool_slot_holders("db").await.unwrap().is_empty());
    for storage in handles {
        storage.close().await.unwrap();
    }
}
