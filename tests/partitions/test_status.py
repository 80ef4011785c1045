"""Partition status kept as ranges: get_partition_ranges (materialized / failed / in_progress),
get_materialized_partitions, count_materialized_partitions, and status across definition
changes and processes (storage-and-io.md R28, R29; the range store of partitions)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

import rivers as rs

PD = rs.PartitionsDefinition
PK = rs.PartitionKey
PKR = rs.PartitionKeyRange
DAYS = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 3, 1))


def daily_repo(make_repo, definition=DAYS, fail_on=(), storage=None):
    @rs.Asset(partitions_def=definition)
    def daily(context: rs.AssetExecutionContext) -> str:
        if context.partition_key in fail_on:
            raise RuntimeError("boom")
        for key in context.partition.keys[0].key if len(context.partition.keys[0].key) > 1 else []:
            if key in fail_on:
                context.mark_partition_failed(key, "marked")
        return context.partition_key

    return make_repo([daily], storage=storage)


def test_consecutive_keys_collapse_into_one_range(make_repo):
    repo = daily_repo(make_repo)
    for key in ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-10"]:
        repo.materialize(partition_key=key)
    repo.materialize(partition_key=PK.single(["2024-01-04", "2024-01-05"]))
    store = repo.storage
    assert store.get_partition_ranges("daily", "materialized") == [
        PKR.single("2024-01-01", "2024-01-05"),
        PKR.single("2024-01-10", "2024-01-10"),
    ]
    assert [str(k) for k in store.get_materialized_partitions("daily")] == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
        "2024-01-05",
        "2024-01-10",
    ]
    assert store.count_materialized_partitions("daily") == 6
    latest = store.get_latest_materialization("daily", partition="2024-01-04")
    assert latest is not None and latest.partition_key == "2024-01-04"
    assert store.get_partition_ranges("daily", "in_progress") == []


def test_failed_partitions_are_ranges_until_they_materialize(make_repo):
    repo = daily_repo(make_repo, fail_on={"2024-01-07", "2024-01-09"})
    for key in ["2024-01-07", "2024-01-09"]:
        assert not repo.materialize(partition_key=key, raise_on_error=False).success
    repo.materialize(partition_key=PK.single(["2024-01-11", "2024-01-12"]))
    store = repo.storage
    assert store.get_partition_ranges("daily", "failed") == [
        PKR.single("2024-01-07", "2024-01-07"),
        PKR.single("2024-01-09", "2024-01-09"),
    ]
    assert store.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-11", "2024-01-12")]


def test_marked_partitions_are_failed_not_materialized(make_repo):
    repo = daily_repo(make_repo, fail_on={"2024-01-03"})
    repo.materialize(partition_key=PK.single(["2024-01-02", "2024-01-03", "2024-01-04"]))
    store = repo.storage
    assert store.get_partition_ranges("daily", "failed") == [PKR.single("2024-01-03", "2024-01-03")]
    assert [str(k) for k in store.get_materialized_partitions("daily")] == ["2024-01-02", "2024-01-04"]


def test_multi_definitions_report_rectangles(make_repo):
    grid = PD.multi({"d": DAYS, "r": PD.static_(["eu", "us"])})

    @rs.Asset(partitions_def=grid)
    def sales() -> int:
        return 1

    repo = make_repo([sales])
    for day in ["2024-01-01", "2024-01-02"]:
        for region in ["eu", "us"]:
            repo.materialize(partition_key=f"d={day}|r={region}")
    repo.materialize(partition_key="d=2024-01-03|r=eu")
    assert repo.storage.get_partition_ranges("sales", "materialized") == [
        PKR.multi({"d": ("2024-01-01", "2024-01-02"), "r": ("eu", "us")}),
        PKR.multi({"d": ("2024-01-03", "2024-01-03"), "r": ("eu", "eu")}),
    ]
    assert len(repo.storage.get_materialized_partitions("sales")) == 5
    assert repo.storage.count_materialized_partitions("sales") == 5


def test_dynamic_partitions_keep_their_positions_when_keys_are_deleted(make_repo):
    @rs.Asset(partitions_def=PD.dynamic("tenants"))
    def usage() -> int:
        return 1

    repo = make_repo([usage])
    repo.storage.add_dynamic_partitions("tenants", ["a", "b", "c"])
    for key in ["a", "b", "c"]:
        repo.materialize(partition_key=key)
    assert repo.storage.get_partition_ranges("usage", "materialized") == [PKR.single("a", "c")]
    repo.storage.delete_dynamic_partition("tenants", "b")
    repo.storage.add_dynamic_partitions("tenants", ["b"])  # a new key: it has no status yet
    assert [str(k) for k in repo.storage.get_materialized_partitions("usage")] == ["a", "c"]


def test_status_follows_a_changed_definition(make_repo):
    store = rs.Storage.memory()
    repo = daily_repo(make_repo, storage=store)
    repo.materialize(partition_key="2024-01-05")
    later = PD.daily(start=datetime(2024, 1, 3), end=datetime(2024, 3, 1))
    moved = daily_repo(make_repo, definition=later, storage=store)
    assert moved.storage.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-05", "2024-01-05")]
    shrunk = daily_repo(make_repo, definition=PD.daily(start=datetime(2024, 1, 6)), storage=store)
    assert shrunk.storage.get_materialized_partitions("daily") == []


def test_status_persists_in_embedded_storage(tmp_path, make_repo):
    path = str(tmp_path / "db")
    repo = daily_repo(make_repo, storage=rs.Storage.embedded(path))
    repo.materialize(partition_key="2024-02-01")
    repo.shutdown()
    reopened = rs.Storage.embedded(path)
    assert reopened.get_partition_ranges("daily", "materialized") == [PKR.single("2024-02-01", "2024-02-01")]
    assert reopened.count_materialized_partitions("daily") == 1


def test_async_twin_and_unknown_status(make_repo):
    repo = daily_repo(make_repo)
    repo.materialize(partition_key="2024-01-20")

    async def read() -> list[rs.PartitionKeyRange]:
        return await repo.storage.async_get_partition_ranges("daily", "materialized")

    ranges = asyncio.run(read())
    assert ranges == [PKR.single("2024-01-20", "2024-01-20")]
    with pytest.raises(ValueError, match="in_progress"):
        repo.storage.get_partition_ranges("daily", "done")
    assert repo.storage.get_partition_ranges("unknown", "materialized") == []
    assert repo.storage.get_materialized_partitions("unknown") == []
    assert repo.storage.count_materialized_partitions("unknown") == 0


def test_latest_materialization_of_a_partition_by_key_or_text(make_repo):
    grid = PD.multi({"d": DAYS, "r": PD.static_(["eu"])})

    @rs.Asset(partitions_def=grid)
    def sales() -> int:
        return 1

    repo = make_repo([sales])
    repo.materialize(partition_key=PK.multi({"d": "2024-01-02", "r": "eu"}))
    by_key = repo.storage.get_latest_materialization("sales", partition=PK.multi({"r": "eu", "d": "2024-01-02"}))
    by_text = repo.storage.get_latest_materialization("sales", partition="d=2024-01-02|r=eu")
    assert by_key is not None and by_text is not None and by_key.id == by_text.id
    assert by_key.partition_key == "d=2024-01-02|r=eu"
    assert repo.storage.get_latest_materialization("sales", partition="d=2024-01-03|r=eu") is None
