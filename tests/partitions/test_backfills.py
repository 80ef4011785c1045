"""Backfills: argument checks, planning per strategy, counters and statuses, failure policies,
dry runs, non-blocking runs, cancel, get and rerun, run records of backfill runs
(partitions-and-backfills.md R37-R52)."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest

import rivers as rs
from rivers.exceptions import PartitionValidationError

PD = rs.PartitionsDefinition
PK = rs.PartitionKey
PKR = rs.PartitionKeyRange
BS = rs.BackfillStrategy
DAYS = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 3, 1))
JANUARY_1_TO_10 = PKR.single("2024-01-01", "2024-01-10")


def day_repo(make_repo, fail_on=(), seen=None, strategy=None, mark=(), **kwargs):
    @rs.Asset(partitions_def=DAYS, backfill_strategy=strategy)
    def daily(context: rs.AssetExecutionContext) -> int:
        keys = [str(k) for k in context.partition.keys]
        if seen is not None:
            seen.append(keys)
        for key in keys:
            if key in fail_on:
                raise RuntimeError(f"no data for {key}")
            if key in mark:
                context.mark_partition_failed(key, "ledger closed")
        return len(keys)

    return make_repo([daily], **kwargs)


def test_default_multi_run_backfill(make_repo):  # R37
    repo = day_repo(make_repo)
    result = repo.backfill(partition_range=JANUARY_1_TO_10)
    assert (result.num_partitions, result.num_runs, len(result.run_ids)) == (10, 10, 10)
    assert (result.status, result.completed, result.failed, result.canceled) == ("completed", 10, 0, 0)
    assert result.is_dry_run is False
    assert result.partition_keys == [PK.single(f"2024-01-{d:02d}") for d in range(1, 11)]
    assert repo.storage.count_materialized_partitions("daily") == 10


def test_single_run_backfill_batches_every_partition(make_repo):  # R38
    seen: list[list[str]] = []
    repo = day_repo(make_repo, seen=seen)
    result = repo.backfill(partition_range=JANUARY_1_TO_10, strategy=BS.single_run())
    assert (result.num_runs, result.completed) == (1, 10)
    assert len(seen) == 1 and len(seen[0]) == 10
    assert len(repo.storage.get_materialized_partitions("daily")) == 10
    run = repo.storage.get_run(result.run_ids[0])
    assert run.partition_key == PK.single([f"2024-01-{d:02d}" for d in range(1, 11)])


def test_a_batched_run_of_many_partitions_keeps_its_whole_key(make_repo, tmp_path):
    # A key of this many values is stored apart from the run's record (which heartbeats
    # rewrite): every reader of runs, in this process and after a reopen, still sees all of it.
    year = PD.daily(start=datetime(2024, 1, 1), end=datetime(2025, 1, 1))

    @rs.Asset(partitions_def=year)
    def daily(context: rs.AssetExecutionContext) -> int:
        return len(context.partition.keys)

    path = str(tmp_path / "store")
    repo = make_repo([daily], storage=rs.Storage.embedded(path))
    result = repo.backfill(partition_range=PKR.single("2024-01-01", "2024-12-31"), strategy=BS.single_run())
    assert (result.num_runs, result.completed) == (1, 366)
    key = PK.single([str(day) for day in year.get_partition_keys()])
    assert repo.storage.get_run(result.run_ids[0]).partition_key == key
    assert [run.partition_key for run in repo.storage.get_runs()] == [key]
    repo.shutdown()
    reopened = rs.Storage.embedded(path)
    assert reopened.get_run(result.run_ids[0]).partition_key == key


def test_per_dimension_runs_one_run_per_day(make_repo):  # R39
    grid = PD.multi({"day": DAYS, "shop": PD.static_(["a", "b", "c"])})
    seen = []

    @rs.Asset(partitions_def=grid)
    def sales(context: rs.AssetExecutionContext) -> int:
        seen.append(len(context.partition.keys))
        return 1

    repo = make_repo([sales])
    result = repo.backfill(
        partition_range=PKR.multi({"day": ("2024-01-01", "2024-01-04")}),
        strategy=BS.per_dimension(multi_run=["day"], single_run=["shop"]),
    )
    assert (result.num_partitions, result.num_runs, result.status) == (12, 4, "completed")
    assert seen == [3, 3, 3, 3]


def test_argument_errors_store_nothing(make_repo):  # R40, R41, R42
    repo = day_repo(make_repo)
    with pytest.raises(ValueError):
        repo.backfill(partition_keys=[PK.single("2024-01-01")], partition_range=JANUARY_1_TO_10)
    with pytest.raises(ValueError):
        repo.backfill()
    with pytest.raises(ValueError, match="failure_policy"):
        repo.backfill(partition_range=JANUARY_1_TO_10, failure_policy="halt")
    with pytest.raises(ValueError, match="max_concurrency"):
        repo.backfill(partition_range=JANUARY_1_TO_10, max_concurrency=0)
    for bad in [PKR.single("2024-01-01T05:00", "2024-01-02"), PKR.single("2024-01-05", "2024-01-01")]:
        with pytest.raises(PartitionValidationError):
            repo.backfill(partition_range=bad)
    with pytest.raises(PartitionValidationError, match="nearest"):
        repo.backfill(partition_range=PKR.single("2024-01-01T05:00", "2024-01-02"))
    with pytest.raises(PartitionValidationError):
        repo.backfill(partition_range=PKR.multi({"region": ("a", "b")}))
    with pytest.raises(PartitionValidationError):
        repo.backfill(partition_keys=["zz"])
    assert repo.storage.get_runs() == []


def test_backfilling_only_unpartitioned_assets_is_rejected(make_repo):  # R42
    @rs.Asset
    def plain() -> int:
        return 1

    repo = make_repo([plain])
    with pytest.raises(PartitionValidationError):
        repo.backfill(selection=["plain"], partition_keys=["x"])


def test_continue_policy_finishes_the_other_partitions(make_repo):  # R43
    repo = day_repo(make_repo, fail_on={"2024-01-03"})
    result = repo.backfill(partition_range=PKR.single("2024-01-01", "2024-01-05"))
    assert (result.status, result.failed, result.completed, result.canceled) == ("failed", 1, 4, 0)


def test_stop_on_failure_cancels_what_did_not_finish(make_repo):  # R44
    repo = day_repo(make_repo, fail_on={"2024-01-01"})
    result = repo.backfill(
        partition_range=PKR.single("2024-01-01", "2024-01-08"), failure_policy="stop_on_failure", max_concurrency=1
    )
    assert result.status == "failed"
    assert result.failed == 1 and result.canceled == 7
    assert result.completed + result.failed + result.canceled == result.num_partitions


def test_rerun_covers_the_partitions_a_stopped_backfill_never_started(make_repo):
    failing = {"2024-01-01"}
    repo = day_repo(make_repo, fail_on=failing)
    first = repo.backfill(
        partition_range=PKR.single("2024-01-01", "2024-01-04"), failure_policy="stop_on_failure", max_concurrency=1
    )
    assert (first.failed, first.canceled, len(first.run_ids)) == (1, 3, 1)
    # The three never started count as canceled: a rerun covers them with the failed one.
    again = repo.rerun_backfill(first.backfill_id, dry_run=True)
    assert sorted(str(k) for k in again.partition_keys) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    failing.clear()
    rerun = repo.rerun_backfill(first.backfill_id)
    assert (rerun.status, rerun.completed) == ("completed", 4)
    stored = repo.get_backfill(rerun.backfill_id)
    assert stored.launched_by.kind == "manual"
    assert (stored.total_partitions, stored.completed_partitions, stored.run_ids) == (4, 4, rerun.run_ids)


def test_dry_run_plans_without_running_or_storing(make_repo):  # R45
    repo = day_repo(make_repo)
    result = repo.backfill(partition_range=JANUARY_1_TO_10, dry_run=True, strategy=BS.single_run())
    assert (result.is_dry_run, result.run_ids, result.num_partitions, result.num_runs) == (True, [], 10, 1)
    assert result.status == "completed" and len(result.partition_keys) == 10
    assert repo.get_backfill(result.backfill_id) is None
    assert repo.storage.get_materialized_partitions("daily") == []


def test_backfill_runs_carry_origin_priority_and_tags(make_repo):  # R46
    repo = day_repo(make_repo)
    result = repo.backfill(partition_keys=["2024-01-02"], tags=[("team", "finance")])
    run = repo.storage.get_run(result.run_ids[0])
    assert run.launched_by.kind == "backfill" and run.launched_by.backfill_id == result.backfill_id
    assert run.priority == -10 and ("team", "finance") in run.tags and run.job_name is None
    urgent = repo.backfill(partition_keys=["2024-01-03"], tags=[("rivers/priority", "5")])
    assert repo.storage.get_run(urgent.run_ids[0]).priority == 5


def test_marked_partitions_of_a_single_run_backfill(make_repo):  # R47
    repo = day_repo(make_repo, mark={"2024-01-02", "2024-01-04"}, strategy=BS.single_run())
    result = repo.backfill(partition_range=PKR.single("2024-01-01", "2024-01-05"))
    assert (result.failed, result.completed, result.status) == (2, 3, "failed")
    assert [str(k) for k in repo.storage.get_materialized_partitions("daily")] == [
        "2024-01-01",
        "2024-01-03",
        "2024-01-05",
    ]


def test_get_backfill(make_repo):  # R49
    repo = day_repo(make_repo)
    assert repo.get_backfill("no-such-backfill") is None
    result = repo.backfill(partition_range=PKR.single("2024-01-01", "2024-01-03"), tags=[("k", "v")])
    status = repo.get_backfill(result.backfill_id)
    assert status.status == "completed" and status.total_partitions == 3
    assert (status.completed_partitions, status.failed_partitions, status.canceled_partitions) == (3, 0, 0)
    assert sorted(status.run_ids) == sorted(result.run_ids)
    assert status.tags == [("k", "v")] and status.launched_by.kind == "manual" and status.error is None


def test_rerun_backfill_reruns_only_failed_partitions(make_repo):  # R50
    failing = {"2024-01-02", "2024-01-04"}
    repo = day_repo(make_repo, fail_on=failing)
    first = repo.backfill(partition_range=PKR.single("2024-01-01", "2024-01-05"))
    assert first.failed == 2
    failing.clear()
    again = repo.rerun_backfill(first.backfill_id)
    assert again.backfill_id != first.backfill_id
    assert again.num_partitions == 2 and again.status == "completed"
    assert again.partition_keys == [PK.single("2024-01-02"), PK.single("2024-01-04")]
    with pytest.raises(ValueError):
        repo.rerun_backfill(again.backfill_id)
    with pytest.raises(ValueError):
        repo.rerun_backfill("unknown")


def test_rerun_dry_run_lists_marked_partitions(make_repo):
    repo = day_repo(make_repo, mark={"2024-01-03"}, strategy=BS.single_run())
    out = repo.backfill(partition_keys=[PK.single(["2024-01-02", "2024-01-03", "2024-01-04"])])
    assert (out.num_runs, out.completed, out.failed, out.status) == (1, 2, 1, "failed")
    again = repo.rerun_backfill(out.backfill_id, dry_run=True)
    assert again.partition_keys == [PK.single("2024-01-03")]


def test_block_false_returns_at_once_and_cancel_ends_it_canceled(make_repo):  # R51
    gate = threading.Event()

    @rs.Asset(partitions_def=DAYS)
    def slow(context: rs.AssetExecutionContext) -> int:
        gate.wait(30)
        return 1

    repo = make_repo([slow])
    result = repo.backfill(partition_range=JANUARY_1_TO_10, block=False, max_concurrency=1)
    try:
        assert result.status == "in_progress"
        assert repo.get_backfill(result.backfill_id).status == "in_progress"
        # The first run's id is recorded while it runs (its step is still blocked on the gate).
        deadline = time.monotonic() + 10
        while not repo.get_backfill(result.backfill_id).run_ids and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(repo.get_backfill(result.backfill_id).run_ids) == 1
        assert repo.cancel_backfill(result.backfill_id) is True
    finally:
        gate.set()
    deadline = time.monotonic() + 20
    while repo.get_backfill(result.backfill_id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.02)
    status = repo.get_backfill(result.backfill_id)
    assert status.status == "canceled"
    assert status.canceled_partitions >= 9 and len(status.run_ids) == 1
    total = status.completed_partitions + status.failed_partitions + status.canceled_partitions
    assert total == status.total_partitions
    assert repo.cancel_backfill("unknown") is False
    assert repo.cancel_backfill(result.backfill_id) is False


def test_strategy_precedence(make_repo):  # R52
    repo = day_repo(make_repo, strategy=BS.single_run())
    assert repo.backfill(partition_range=JANUARY_1_TO_10).num_runs == 1
    assert repo.backfill(partition_range=JANUARY_1_TO_10, strategy=BS.multi_run()).num_runs == 10


def test_conflicting_declared_strategies_need_an_explicit_one(make_repo):
    @rs.Asset(partitions_def=DAYS, backfill_strategy=BS.single_run())
    def one() -> int:
        return 1

    @rs.Asset(partitions_def=DAYS, backfill_strategy=BS.multi_run())
    def two() -> int:
        return 2

    repo = make_repo([one, two])
    with pytest.raises(ValueError, match="different backfill strategies"):
        repo.backfill(partition_range=JANUARY_1_TO_10)
    assert repo.backfill(partition_range=JANUARY_1_TO_10, strategy=BS.single_run()).num_runs == 1


def test_strategy_values():
    assert BS.multi_run() == BS.multi_run()
    assert BS.per_dimension(["a"], ["b"]) == BS.per_dimension(["a"], ["b"])
    assert BS.per_dimension(["a"], ["b"]) != BS.per_dimension(["b"], ["a"])
    assert isinstance(BS.single_run(), BS.SingleRun)
    strategy = BS.per_dimension(multi_run=["day"], single_run=["shop"])
    assert (strategy.multi_run_dims, strategy.single_run_dims) == (["day"], ["shop"])
    for bad in [([], ["a"]), (["a"], []), (["a"], ["a"])]:
        with pytest.raises(ValueError):
            BS.per_dimension(*bad)


def test_per_dimension_needs_known_dimensions_of_a_multi_definition(make_repo):
    repo = day_repo(make_repo)
    with pytest.raises(PartitionValidationError):
        repo.backfill(partition_range=JANUARY_1_TO_10, strategy=BS.per_dimension(["day"], ["shop"]))


def test_dynamic_keys_must_be_registered(make_repo):
    @rs.Asset(partitions_def=PD.dynamic("tenants"))
    def usage() -> int:
        return 1

    repo = make_repo([usage])
    with pytest.raises(PartitionValidationError):
        repo.backfill(partition_keys=["t1"])
    repo.storage.add_dynamic_partitions("tenants", ["t1", "t2"])
    assert repo.backfill(partition_range=PKR.single("t1", "t2")).completed == 2


def test_backfills_of_graph_assets_and_multi_asset_outputs(make_repo):
    @rs.Task
    def extract(context: rs.TaskExecutionContext) -> str:
        return context.partition_key

    @rs.Asset.from_graph(partitions_def=DAYS)
    def pipeline():
        return extract()

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("left"), rs.AssetDef("right")], partitions_def=DAYS)
    def pair(context: rs.AssetExecutionContext) -> dict[str, str]:
        return {"left": context.partition_key, "right": context.partition_key}

    repo = make_repo([pipeline, pair])
    result = repo.backfill(selection=["pipeline", "left"], partition_range=PKR.single("2024-01-01", "2024-01-03"))
    assert result.completed == 3
    assert repo.storage.count_materialized_partitions("pipeline") == 3
    assert repo.storage.count_materialized_partitions("left") == 3
    assert repo.storage.count_materialized_partitions("right") == 0
    assert repo.load_node("pipeline/extract", partition_key="2024-01-02") == "2024-01-02"


def test_a_backfill_key_must_be_valid_for_every_selected_output(make_repo):
    early_days = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))
    late_days = PD.daily(start=datetime(2024, 1, 10), end=datetime(2024, 2, 1))

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("early", partitions_def=early_days), rs.AssetDef("late", partitions_def=late_days)]
    )
    def staggered(context: rs.AssetExecutionContext) -> dict[str, str]:
        return {name: context.partition_key for name in context.output_selection}

    repo = make_repo([staggered])
    days = PKR.single("2024-01-08", "2024-01-11")
    # Jan 8 and 9 are keys of `early` only: refused before any run, naming the output.
    for selection in (None, ["staggered"], ["late"], ["early", "late"]):
        with pytest.raises(PartitionValidationError, match="'late'.*'2024-01-08'|'2024-01-08'.*'late'"):
            repo.backfill(selection=selection, partition_range=days)
    assert repo.storage.get_runs() == []
    result = repo.backfill(selection=["early"], partition_range=days)
    assert (result.status, result.completed) == ("completed", 4)
    assert [str(k) for k in repo.storage.get_materialized_partitions("early")] == [
        "2024-01-08",
        "2024-01-09",
        "2024-01-10",
        "2024-01-11",
    ]
    assert repo.storage.get_materialized_partitions("late") == []
