"""The claim protocol in runs (automation-and-concurrency.md "Claim protocol", R45-R50): limits
hold across concurrent runs and every executor, multi-pool claims are all-or-none, slots are
released on success and failure and renewed for long steps, starved steps time out, and the
``StepSlot*`` events carry their metadata.

Concurrency is measured from the files the step bodies write when they start and end
(``pool_defs``), never from durations."""

import threading

import pytest

import rivers as rs
from tests.pools.pool_defs import intervals, max_overlap, pooled_assets


def _events(repo: rs.CodeRepository, run_id: str, step: str) -> list[rs.StoredEvent]:
    return [e for e in repo.storage.get_events_for_run(run_id) if e.asset_key == step]


def _slot_events(repo: rs.CodeRepository, run_id: str, step: str) -> list[str]:
    return [e.event_type for e in _events(repo, run_id, step) if e.event_type.startswith("StepSlot")]


@pytest.fixture
def fast_polls(monkeypatch):
    """Waiting steps poll every 20 ms (the engine reads the variables when a run starts)."""
    monkeypatch.setenv("RIVERS_CLAIM_POLL_INTERVAL", "20ms")
    monkeypatch.setenv("RIVERS_CLAIM_POLL_JITTER", "10ms")


def _materialize_concurrently(repo: rs.CodeRepository, runs: int) -> list[rs.RunResult]:
    results: list[rs.RunResult] = []
    threads = [threading.Thread(target=lambda: results.append(repo.materialize())) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_limits_hold_across_concurrent_in_process_runs(fast_polls, make_repo, tmp_path):  # R45
    # Two slots per step in a pool of five: floor(5 / 2) = 2 steps at once, across both runs.
    assets = pooled_assets(str(tmp_path), 3, pool_slots=2, hold=0.15)
    repo = make_repo(assets, pool_limits={"db": 5})
    results = _materialize_concurrently(repo, 2)
    assert [r.success for r in results] == [True, True]
    spans = intervals(tmp_path)
    assert len(spans) == 6
    assert max_overlap(spans) <= 2
    for result in results:  # R47
        assert all(h.run_id != result.run_id for h in repo.storage.get_pool_slot_holders("db"))


def test_limits_hold_for_parallel_workers(fast_polls, tmp_path):  # R45
    repo = rs.CodeRepository(
        assets=pooled_assets(str(tmp_path), 5, hold=0.3),
        default_executor=rs.Executor.parallel(max_workers=4),
        pool_limits={"db": 2},
    )
    repo.resolve(storage=rs.Storage.memory())
    try:
        assert repo.materialize().success
    finally:
        repo.shutdown()
    spans = intervals(tmp_path)
    assert len(spans) == 5
    assert max_overlap(spans) <= 2


def test_limits_hold_for_async_steps(fast_polls, tmp_path):  # R45
    repo = rs.CodeRepository(
        assets=pooled_assets(str(tmp_path), 6, hold=0.2, is_async=True),
        default_executor=rs.Executor.parallel(max_workers=2),
        pool_limits={"db": 3},
    )
    repo.resolve(storage=rs.Storage.memory())
    try:
        assert repo.materialize().success
    finally:
        repo.shutdown()
    spans = intervals(tmp_path)
    assert len(spans) == 6
    assert max_overlap(spans) <= 3


def test_a_multi_pool_step_holds_all_its_pools_or_none(fast_polls, tmp_path):  # R46
    root = str(tmp_path)
    both = pooled_assets(root, 2, pool=["db", "api"], pool_slots={"db": 2}, hold=0.2, prefix="both")
    db_only = pooled_assets(root, 2, pool="db", hold=0.2, prefix="db")
    api_only = pooled_assets(root, 2, pool="api", hold=0.2, prefix="api")
    repo = rs.CodeRepository(
        assets=[*both, *db_only, *api_only],
        default_executor=rs.Executor.parallel(max_workers=4),
        pool_limits={"db": 2, "api": 1},
    )
    repo.resolve(storage=rs.Storage.memory())
    try:
        assert repo.materialize().success
    finally:
        repo.shutdown()
    assert len(intervals(root)) == 6
    # A step holding both pools runs alone: its db slots exclude db steps, its api slot the api ones.
    for span in intervals(root, "both"):
        others = intervals(root, "db") + intervals(root, "api") + [s for s in intervals(root, "both") if s != span]
        assert all(end <= span[0] or start >= span[1] for start, end in others)


def test_slots_are_released_on_success_and_on_failure(make_repo):  # R47
    @rs.Asset(pool="db")
    def works():
        return 1

    @rs.Asset(pool="db")
    def breaks():
        raise RuntimeError("boom")

    repo = make_repo([works, breaks], pool_limits={"db": 1})
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    for step in ("works", "breaks"):
        assert _slot_events(repo, result.run_id, step) == ["StepSlotClaimed", "StepSlotReleased"]
    assert repo.storage.get_pool_slot_holders("db") == []
    assert repo.storage.get_pool_info("db").claimed_count == 0


def test_slot_events_carry_their_metadata(fast_polls, make_repo):  # R50
    @rs.Asset(pool=["db", "api"], pool_slots={"db": 2})
    def enriched():
        return 1

    repo = make_repo([enriched], pool_limits={"db": 2, "api": 1})
    store = repo.storage
    # Another run holds the api slot until this run's step is seen waiting for it.
    assert store._claim_concurrency_slots([("api", 1)], "other-run", "x").is_claimed

    def release_when_waited_for() -> None:
        while store.get_pool_info("api").pending_count == 0:
            threading.Event().wait(0.01)
        store._free_concurrency_slots("other-run", "x")

    releaser = threading.Thread(target=release_when_waited_for)
    releaser.start()
    result = repo.materialize()
    releaser.join()
    assert result.success
    events = [e for e in _events(repo, result.run_id, "enriched") if e.event_type.startswith("StepSlot")]
    assert [e.event_type for e in events] == ["StepSlotWaiting", "StepSlotClaimed", "StepSlotReleased"]
    waiting, claimed, released = (dict(e.metadata) for e in events)
    assert waiting["reason"].startswith("pool_full: pool 'api' has 1 of 1 slots claimed")
    assert claimed == {"pools": "db,api"}
    assert released == {}


def test_renewals_keep_a_long_steps_slots(fast_polls, make_repo, tmp_path):  # R49
    # A one-second lease, renewed every third of a second, for steps running 1.5 s.
    repo = make_repo(pooled_assets(str(tmp_path), 1, hold=1.5), pool_limits={"db": 1})
    repo.storage.set_pool_limit("db", 1, "1s")
    results = _materialize_concurrently(repo, 2)
    assert [r.success for r in results] == [True, True]
    # Had a lease run out, the other run's step would have taken the slot meanwhile.
    assert max_overlap(intervals(tmp_path)) == 1
    for result in results:
        assert _slot_events(repo, result.run_id, "step_0").count("StepSlotRenewed") >= 1


def test_a_starved_step_fails_after_the_claim_timeout(fast_polls, monkeypatch, make_repo):  # R50
    monkeypatch.setenv("RIVERS_CLAIM_TIMEOUT", "300ms")

    @rs.Asset(pool="tiny", pool_slots=2)
    def greedy():
        return 1

    @rs.Asset
    def independent():
        return 2

    repo = make_repo([greedy, independent], pool_limits={"tiny": 1})
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert repo.load_node("independent") == 2, "the run's other steps executed meanwhile"
    types = [e.event_type for e in _events(repo, result.run_id, "greedy")]
    assert types == ["StepSlotWaiting", "StepFailure"]
    failure = dict(_events(repo, result.run_id, "greedy")[-1].metadata)
    assert failure["rivers/failure_reason"] == "timeout"
    assert "'tiny'" in failure["rivers/error"] and "RIVERS_CLAIM_TIMEOUT" in failure["rivers/error"]
    assert repo.storage.get_pool_info("tiny").pending_count == 0


def test_a_run_without_pooled_steps_touches_no_pool(make_repo):
    @rs.Asset
    def plain():
        return 1

    repo = make_repo([plain])
    result = repo.materialize()
    assert result.success
    assert not any(e.event_type.startswith("StepSlot") for e in repo.storage.get_events_for_run(result.run_id))
    assert repo.storage.get_all_pool_infos() == []


def test_a_multi_asset_claims_the_largest_count_per_pool(fast_polls, monkeypatch, make_repo):
    monkeypatch.setenv("RIVERS_CLAIM_TIMEOUT", "200ms")

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("light", pool="db"), rs.AssetDef("heavy", pool=["db", "api"], pool_slots=3)],
        pool="db",
    )
    def both():
        return {"light": 1, "heavy": 2}

    assert both.pool == [("db", 3), ("api", 3)]
    repo = make_repo([both], pool_limits={"db": 2})
    result = repo.materialize(raise_on_error=False)
    assert not result.success, "three db slots never fit a pool of two"
    waiting = next(e for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "StepSlotWaiting")
    assert dict(waiting.metadata)["reason"] == "pool_full: pool 'db' has 0 of 2 slots claimed"
