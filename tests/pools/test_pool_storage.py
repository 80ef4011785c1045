"""Pool storage (automation-and-concurrency.md "Concurrency pools", storage-and-io.md "Pool
methods"): limits, live counts, holders, all-or-none claims with their block reasons, releases,
leases and their garbage collection, and the repository's ``pool_limits`` at resolve()."""

import asyncio
import time

import pytest

import rivers as rs
from rivers._core.storage import (
    BlockReason,
    ConcurrencyClaimStatus,
    PoolBlockDetail,
    PoolInfo,
    PoolLimit,
    SlotHolder,
)
from rivers.exceptions import StorageError


@pytest.fixture
def store() -> rs.Storage:
    return rs.Storage.memory()


def test_set_pool_limit_is_reported_by_get_pool_info(store):  # R53
    store.set_pool_limit("p", 3, "2m")
    info = store.get_pool_info("p")
    assert isinstance(info, PoolInfo)
    assert (info.pool_key, info.slot_limit, info.lease_duration_secs) == ("p", 3, 120)
    assert (info.claimed_count, info.pending_count) == (0, 0)
    store.set_pool_limit("q", 1)
    assert store.get_pool_info("q").lease_duration_secs == 300
    store.set_pool_limit("p", 5, lease_duration="1h30m")
    assert (store.get_pool_info("p").slot_limit, store.get_pool_info("p").lease_duration_secs) == (5, 5400)


def test_pools_are_listed_by_key_with_live_counts(store):
    store.set_pool_limit("b", 2)
    store.set_pool_limit("a", 1, "30s")
    limits = store.get_pool_limits()
    assert all(isinstance(limit, PoolLimit) for limit in limits)
    assert [(lim.pool_key, lim.slot_limit, lim.lease_duration_secs) for lim in limits] == [("a", 1, 30), ("b", 2, 300)]
    store._claim_concurrency_slots([("b", 2)], "r1", "s1")
    store._claim_concurrency_slots([("b", 1)], "r2", "s2")
    infos = store.get_all_pool_infos()
    assert [(i.pool_key, i.claimed_count, i.pending_count) for i in infos] == [("a", 0, 0), ("b", 2, 1)]


def test_unknown_pools_raise_storage_error_and_have_no_holders(store):
    with pytest.raises(StorageError, match="unknown pool 'nope'"):
        store.get_pool_info("nope")
    assert store.get_pool_slot_holders("nope") == []
    with pytest.raises(ValueError, match="lease_duration"):
        store.set_pool_limit("p", 1, "soon")


def test_claims_report_status_position_and_reason():  # R52
    store = rs.Storage.memory()
    store.set_pool_limit("db", 2)
    store.set_pool_limit("api", 1)
    claimed = store._claim_concurrency_slots([("db", 1)], "r1", "a")
    assert isinstance(claimed, ConcurrencyClaimStatus)
    assert (claimed.status, claimed.position, claimed.reason, claimed.is_claimed) == ("claimed", 0, None, True)
    store._claim_concurrency_slots([("api", 1)], "r1", "b")

    one = store._claim_concurrency_slots([("db", 1), ("api", 1)], "r2", "c")
    assert (one.status, one.is_claimed, one.position) == ("pending", False, 1)
    assert isinstance(one.reason, BlockReason)
    assert (one.reason.kind, one.reason.pool_key, one.reason.claimed, one.reason.limit) == ("pool_full", "api", 1, 1)
    assert one.reason.pools == []

    both = store._claim_concurrency_slots([("db", 2), ("api", 1)], "r2", "d", priority=5)
    assert both.reason is not None
    assert (both.reason.kind, both.reason.pool_key, both.reason.claimed, both.reason.limit) == (
        "pools_full",
        "db",
        1,
        2,
    )
    assert all(isinstance(detail, PoolBlockDetail) for detail in both.reason.pools)
    assert [(p.pool_key, p.claimed, p.limit) for p in both.reason.pools] == [("db", 1, 2), ("api", 1, 1)]
    # Higher priority waits ahead of the earlier step.
    assert both.position == 1
    assert store._claim_concurrency_slots([("db", 1), ("api", 1)], "r2", "c").position == 2


def test_a_multi_pool_claim_is_all_or_none(store):  # R46
    store.set_pool_limit("db", 4)
    store.set_pool_limit("api", 1)
    store._claim_concurrency_slots([("api", 1)], "other", "x")
    assert not store._claim_concurrency_slots([("db", 2), ("api", 1)], "r", "s").is_claimed
    assert store.get_pool_slot_holders("db") == [], "nothing of a pending claim is held"
    store._free_concurrency_slots("other", "x")
    assert store._claim_concurrency_slots([("db", 2), ("api", 1)], "r", "s").is_claimed
    holders = store.get_pool_slot_holders("db")
    assert all(isinstance(holder, SlotHolder) for holder in holders)
    assert [(h.run_id, h.step_key, h.slots_consumed) for h in holders] == [("r", "s", 2)]
    assert holders[0].lease_expires_at - holders[0].claimed_at == 300 * 10**9
    assert store.get_pool_info("db").pending_count == 0


def test_a_pool_without_a_limit_never_throttles_but_records_holders(store):
    for step in ("a", "b", "c"):
        assert store._claim_concurrency_slots([("unsized", 10)], "r", step).is_claimed
    assert [h.step_key for h in store.get_pool_slot_holders("unsized")] == ["a", "b", "c"]


def test_releases_free_one_step_or_a_whole_run(store):  # R47
    store.set_pool_limit("db", 3)
    for run, step in (("r1", "a"), ("r1", "b"), ("r2", "a")):
        store._claim_concurrency_slots([("db", 1)], run, step)
    store._free_concurrency_slots("r1", "a")
    store._free_concurrency_slots("r1", "a")
    assert [(h.run_id, h.step_key) for h in store.get_pool_slot_holders("db")] == [("r1", "b"), ("r2", "a")]
    store._free_concurrency_slots_for_run("r1")
    store._free_concurrency_slots_for_run("unknown")
    assert [(h.run_id, h.step_key) for h in store.get_pool_slot_holders("db")] == [("r2", "a")]
    assert store.get_pool_info("db").claimed_count == 1


def test_expired_leases_are_ignored_at_once_and_collected(store):  # R48
    store.set_pool_limit("db", 2)
    assert store._claim_concurrency_slots([("db", 2)], "crashed", "a", lease_duration="1s").is_claimed
    assert store._renew_slot_lease("crashed", "a", "1s") == 1
    assert store._renew_slot_lease("crashed", "missing") == 0
    time.sleep(1.2)  # past the lease
    assert store.get_pool_info("db").claimed_count == 0
    assert store.get_pool_slot_holders("db") == []
    assert store._renew_slot_lease("crashed", "a") == 0, "an expired lease is not revived"
    assert store._claim_concurrency_slots([("db", 2)], "alive", "b").is_claimed
    assert store._free_expired_leases() == 2
    assert store._free_expired_leases() == 0
    assert [h.run_id for h in store.get_pool_slot_holders("db")] == ["alive"]


def test_pool_queries_have_async_twins(store):
    async def use() -> tuple:
        await store.async_set_pool_limit("db", 2, "90s")
        store._claim_concurrency_slots([("db", 1)], "r", "s")
        limits = await store.async_get_pool_limits()
        infos = await store.async_get_all_pool_infos()
        info = await store.async_get_pool_info("db")
        holders = await store.async_get_pool_slot_holders("db")
        with pytest.raises(StorageError, match="unknown pool"):
            await store.async_get_pool_info("nope")
        return limits, infos, info, holders

    limits, infos, info, holders = asyncio.run(use())
    assert [(lim.pool_key, lim.lease_duration_secs) for lim in limits] == [("db", 90)]
    assert [(i.pool_key, i.claimed_count) for i in infos] == [("db", 1)]
    assert (info.slot_limit, info.claimed_count) == (2, 1)
    assert [h.step_key for h in holders] == ["s"]


def test_asset_pool_normalisation():  # R44
    @rs.Asset(pool="p")
    def one():
        return 1

    @rs.Asset(pool=["p", "q"], pool_slots=2)
    def both():
        return 2

    @rs.Asset(pool=["p", "q"], pool_slots={"q": 3})
    def mixed():
        return 3

    assert one.pool == [("p", 1)]
    assert both.pool == [("p", 2), ("q", 2)]
    assert mixed.pool == [("p", 1), ("q", 3)]


def test_repository_pool_limits_are_upserted_at_resolve(make_repo, store):
    @rs.Asset(pool=["analytics_db", "geo_api"], pool_slots={"analytics_db": 2})
    def enriched_sites():
        return 1

    store.set_pool_limit("analytics_db", 1, "90s")
    make_repo([enriched_sites], storage=store, pool_limits={"analytics_db": 4, "geo_api": 10})
    assert [(p.pool_key, p.slot_limit, p.lease_duration_secs) for p in store.get_all_pool_infos()] == [
        ("analytics_db", 4, 90),  # an existing pool keeps its lease and takes the new limit
        ("geo_api", 10, 300),
    ]
    assert store.get_asset_record("enriched_sites").pool == [("analytics_db", 2), ("geo_api", 1)]


def test_repository_pool_limits_are_checked_when_declared():
    with pytest.raises(ValueError, match=r"pool_limits\['db'\]"):
        rs.CodeRepository(assets=[], pool_limits={"db": -1})
    with pytest.raises(ValueError, match=r"pool_limits\['db'\]"):
        rs.CodeRepository(assets=[], pool_limits={"db": "two"})
