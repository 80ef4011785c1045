"""Partition materializations stored as ranges: a step covering many partitions (a single-run
backfill, a key with several values) is stored as one event but read as one Materialization per
partition; the latest materialization per partition; materialized / failed / in-progress status
per definition grid, kept across definition changes (storage-and-io.md R28, R29 and the
Materialization row of the event table; partitions-and-backfills.md R38, R47)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime

import pytest

import rivers as rs

PD = rs.PartitionsDefinition
PK = rs.PartitionKey
PKR = rs.PartitionKeyRange
BS = rs.BackfillStrategy
DAYS = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 3, 1))
FROM_JAN_5 = PD.daily(start=datetime(2024, 1, 5), end=datetime(2024, 3, 1))
REGIONS = PD.static_(["eu", "us", "apac"])


def days(first: int, last: int) -> list[str]:
    """January days `first..last` (inclusive) as daily keys."""
    return [f"2024-01-{d:02d}" for d in range(first, last + 1)]


def materializations(store: rs.Storage, run_id: str, asset: str) -> list[rs.StoredEvent]:
    return [e for e in store.get_events_for_run(run_id) if e.event_type == "Materialization" and e.asset_key == asset]


def by_partition(events: list[rs.StoredEvent]) -> dict[str, rs.StoredEvent]:
    keyed = {e.partition_key: e for e in events}
    assert len(keyed) == len(events), "one event per partition"
    return keyed


def same_event(a: rs.StoredEvent | None, b: rs.StoredEvent) -> bool:
    return a is not None and (a.id, a.run_id, a.partition_key, a.data_version, a.event_type) == (
        b.id,
        b.run_id,
        b.partition_key,
        b.data_version,
        b.event_type,
    )


def pipeline_repo(make_repo, definition=DAYS, storage=None):
    """`raw` and a downstream `clean` on the same grid, identity mapping."""

    @rs.Asset(partitions_def=definition)
    def raw(context: rs.AssetExecutionContext) -> int:
        return len(context.partition.keys)

    @rs.Asset(partitions_def=definition)
    def clean(context: rs.AssetExecutionContext, raw: int) -> int:
        return raw

    return make_repo([raw, clean], storage=storage)


def single_run(repo, first: str, last: str, selection=None) -> str:
    result = repo.backfill(selection=selection, partition_range=PKR.single(first, last), strategy=BS.single_run())
    assert (result.num_runs, result.status) == (1, "completed")
    return result.run_ids[0]


# ---- 1. one Materialization per partition per asset ------------------------------------------


def test_single_run_backfill_reads_one_materialization_per_partition_per_asset(make_repo):
    repo = pipeline_repo(make_repo)
    store = repo.storage
    run_id = single_run(repo, "2024-01-01", "2024-01-30")
    january = days(1, 30)

    events = store.get_events_for_run(run_id)
    counts = Counter((e.asset_key, e.partition_key) for e in events if e.event_type == "Materialization")
    assert counts == Counter({(asset, day): 1 for asset in ("raw", "clean") for day in january})

    for asset in ("raw", "clean"):
        mats = materializations(store, run_id, asset)
        # Read in run order, one canonical key each, the whole covered range in grid order.
        assert [e.partition_key for e in mats] == january
        assert all(e.run_id == run_id and e.asset_key == asset for e in mats)
        # Each asset's partitions are written before its step succeeds.
        step_success = next(i for i, e in enumerate(events) if e.event_type == "StepSuccess" and e.asset_key == asset)
        positions = [i for i, e in enumerate(events) if e.event_type == "Materialization" and e.asset_key == asset]
        assert max(positions) < step_success

    mats = [e for e in events if e.event_type == "Materialization"]
    ids = [e.id for e in mats]
    assert len(set(ids)) == 60
    # Ids of non-materialization events do not collide with the per-partition ids either.
    assert len({e.id for e in events}) == len(events)

    # A second read gives the same ids and versions, in the same order.
    again = [e for e in store.get_events_for_run(run_id) if e.event_type == "Materialization"]
    assert [(e.id, e.partition_key, e.data_version) for e in again] == [
        (e.id, e.partition_key, e.data_version) for e in mats
    ]

    # Generated data versions: never None, one per partition (and per asset).
    versions = [e.data_version for e in mats]
    assert None not in versions
    assert len(set(versions)) == 60

    # The asset records point at one of those per-partition events, never at a hidden one.
    for asset in ("raw", "clean"):
        record = store.get_asset_record(asset)
        latest = store.get_latest_materialization(asset)
        assert latest is not None and latest.run_id == run_id
        assert record.last_event_id == latest.id
        assert record.last_data_version == latest.data_version
        assert latest.id in ids and latest.data_version in versions

    # The downstream's input versions name a version the upstream really has.
    raw_versions = {e.data_version for e in materializations(store, run_id, "raw")}
    for event in materializations(store, run_id, "clean"):
        inputs = dict(event.input_data_versions)
        assert inputs["raw"] in raw_versions


def explicit_output(context: rs.AssetExecutionContext):
    return rs.Output(len(context.partition.keys), data_version="x")


def explicit_materialization(context: rs.AssetExecutionContext):
    return rs.Materialization(data_version="x")


def registered_version(context: rs.AssetExecutionContext) -> int:
    context.register_data_version("x")
    return len(context.partition.keys)


@pytest.mark.parametrize("body", [explicit_output, explicit_materialization, registered_version])
def test_an_explicit_data_version_is_every_partitions_version(make_repo, body):
    asset = rs.Asset(partitions_def=DAYS)(body)
    repo = make_repo([asset])
    store = repo.storage
    name = body.__name__
    run_id = single_run(repo, "2024-01-01", "2024-01-30")

    mats = materializations(store, run_id, name)
    assert [e.partition_key for e in mats] == days(1, 30)
    assert [e.data_version for e in mats] == ["x"] * 30
    assert len({e.id for e in mats}) == 30
    for day in ("2024-01-01", "2024-01-17", "2024-01-30"):
        latest = store.get_latest_materialization(name, partition=day)
        assert latest is not None and (latest.partition_key, latest.data_version) == (day, "x")
    assert store.get_asset_record(name).last_data_version == "x"


def test_a_run_whose_key_covers_several_partitions_reads_one_event_per_partition(make_repo):
    repo = pipeline_repo(make_repo)
    store = repo.storage
    key = PK.single(["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-06"])
    result = repo.materialize(partition_key=key)
    assert result.success
    assert store.get_run(result.run_id).partition_key == key

    for asset in ("raw", "clean"):
        mats = materializations(store, result.run_id, asset)
        assert [e.partition_key for e in mats] == days(3, 6)
        assert len({e.id for e in mats}) == 4
        assert len({e.data_version for e in mats}) == 4 and None not in {e.data_version for e in mats}
        for event in mats:
            assert same_event(store.get_latest_materialization(asset, partition=event.partition_key), event)
    assert store.get_partition_ranges("raw", "materialized") == [PKR.single("2024-01-03", "2024-01-06")]
    assert store.count_materialized_partitions("clean") == 4


# ---- 2. events of an asset, newest first, limited --------------------------------------------


def test_events_for_asset_are_newest_first_and_limited(make_repo):
    repo = pipeline_repo(make_repo)
    store = repo.storage
    run_id = single_run(repo, "2024-01-01", "2024-01-30")
    of_run = [e for e in store.get_events_for_run(run_id) if e.asset_key == "raw"]

    everything = store.get_events_for_asset("raw", limit=1000)
    # A limit larger than the total returns every event of the asset.
    assert len(everything) == len(of_run)
    assert sorted(e.id for e in everything) == sorted(e.id for e in of_run)
    assert all(a.timestamp >= b.timestamp for a, b in zip(everything, everything[1:], strict=False))
    mats = [e.partition_key for e in everything if e.event_type == "Materialization"]
    assert mats == list(reversed(days(1, 30)))  # the compact event: highest partitions first

    five = store.get_events_for_asset("raw", limit=5)
    assert len(five) == 5
    assert [e.id for e in five] == [e.id for e in everything[:5]]
    five_mats = [e.partition_key for e in five if e.event_type == "Materialization"]
    assert five_mats == list(reversed(days(1, 30)))[: len(five_mats)] and len(five_mats) >= 4

    # A later run of one partition comes first; the limit cuts into the compact event after it.
    later = repo.materialize(["raw"], partition_key="2024-01-07")
    newest = store.get_events_for_asset("raw", limit=5)
    assert len(newest) == 5
    newest_mats = [e for e in newest if e.event_type == "Materialization"]
    assert newest_mats[0].run_id == later.run_id and newest_mats[0].partition_key == "2024-01-07"
    assert [e.partition_key for e in newest_mats[1:]] == ["2024-01-30", "2024-01-29"][: len(newest_mats) - 1]
    assert all(e.run_id == run_id for e in newest_mats[1:])
    total = len(of_run) + len([e for e in store.get_events_for_run(later.run_id) if e.asset_key == "raw"])
    assert len(store.get_events_for_asset("raw", limit=total + 50)) == total
    assert len(store.get_events_for_asset("raw", limit=total)) == total


# ---- 3. latest materialization of one partition ----------------------------------------------


def test_latest_materialization_per_partition_follows_newer_runs(make_repo):
    repo = pipeline_repo(make_repo)
    store = repo.storage
    first = single_run(repo, "2024-01-01", "2024-01-30")
    first_raw = by_partition(materializations(store, first, "raw"))
    first_clean = by_partition(materializations(store, first, "clean"))

    latest = store.get_latest_materialization("raw", partition="2024-01-07")
    assert latest is not None and latest.partition_key == "2024-01-07"
    assert same_event(latest, first_raw["2024-01-07"])
    for day in days(1, 30):
        assert same_event(store.get_latest_materialization("raw", partition=day), first_raw[day])
        assert same_event(store.get_latest_materialization("clean", partition=PK.single(day)), first_clean[day])

    # A later run of one partition replaces only that partition's latest event.
    single = repo.materialize(["raw"], partition_key="2024-01-07")
    (newer,) = materializations(store, single.run_id, "raw")
    assert newer.partition_key == "2024-01-07" and newer.id != first_raw["2024-01-07"].id
    assert same_event(store.get_latest_materialization("raw", partition="2024-01-07"), newer)
    assert same_event(store.get_latest_materialization("raw", partition="2024-01-06"), first_raw["2024-01-06"])
    assert same_event(store.get_latest_materialization("raw", partition="2024-01-08"), first_raw["2024-01-08"])
    assert same_event(store.get_latest_materialization("clean", partition="2024-01-07"), first_clean["2024-01-07"])
    assert same_event(store.get_latest_materialization("raw"), newer)

    # A later batched run over the middle of the range replaces exactly the partitions it covers.
    middle = single_run(repo, "2024-01-05", "2024-01-10", selection=["raw"])
    middle_raw = by_partition(materializations(store, middle, "raw"))
    assert list(middle_raw) == days(5, 10)
    for day in days(1, 30):
        expected = middle_raw[day] if day in middle_raw else first_raw[day]
        assert same_event(store.get_latest_materialization("raw", partition=day), expected), day
    assert same_event(store.get_latest_materialization("raw"), middle_raw["2024-01-10"])
    assert store.get_partition_ranges("raw", "materialized") == [PKR.single("2024-01-01", "2024-01-30")]


def test_partitions_never_materialized_have_no_latest_materialization(make_repo):
    repo = pipeline_repo(make_repo)
    store = repo.storage
    single_run(repo, "2024-01-01", "2024-01-30")
    for partition in ("2024-01-31", "2024-02-15", "2023-12-31", "2024-01-07T05:00", "garbage", "2025-01-01"):
        assert store.get_latest_materialization("raw", partition=partition) is None, partition
    assert store.get_latest_materialization("raw", partition=PK.single("2024-02-01")) is None
    assert store.get_latest_materialization("unknown", partition="2024-01-07") is None
    assert store.get_latest_materialization("unknown") is None


# ---- 4. counts and materialized partitions agree with the events -----------------------------


def test_materialized_partitions_and_counts_agree_with_the_events(make_repo):
    repo = pipeline_repo(make_repo)
    store = repo.storage
    single_run(repo, "2024-01-01", "2024-01-30")
    repo.materialize(["raw"], partition_key="2024-01-07")
    single_run(repo, "2024-02-05", "2024-02-09", selection=["raw"])
    repo.materialize(partition_key=PK.single(["2024-02-20", "2024-02-21"]))

    expected = {
        "raw": days(1, 30) + [f"2024-02-{d:02d}" for d in (5, 6, 7, 8, 9, 20, 21)],
        "clean": days(1, 30) + ["2024-02-20", "2024-02-21"],
    }
    for asset, keys in expected.items():
        from_events = {
            e.partition_key
            for e in store.get_events_for_asset(asset, limit=10_000)
            if e.event_type == "Materialization"
        }
        assert from_events == set(keys)
        materialized = store.get_materialized_partitions(asset)
        assert sorted(str(k) for k in materialized) == keys
        assert all(isinstance(k, PK.Single) for k in materialized)
        assert PK.single("2024-01-07") in materialized
        assert store.count_materialized_partitions(asset) == len(keys) == len(materialized)
        for key in keys:
            latest = store.get_latest_materialization(asset, partition=key)
            assert latest is not None and latest.partition_key == key
    assert store.get_partition_ranges("raw", "materialized") == [
        PKR.single("2024-01-01", "2024-01-30"),
        PKR.single("2024-02-05", "2024-02-09"),
        PKR.single("2024-02-20", "2024-02-21"),
    ]
    assert store.get_partition_ranges("raw", "failed") == []
    assert store.get_partition_ranges("raw", "in_progress") == []


# ---- 5. definition changes never delete history ----------------------------------------------


def daily_asset_repo(make_repo, definition, storage):
    @rs.Asset(partitions_def=definition)
    def daily(context: rs.AssetExecutionContext) -> int:
        return len(context.partition.keys)

    return make_repo([daily], storage=storage)


def test_definition_changes_never_delete_history(make_repo):
    store = rs.Storage.memory()
    first = daily_asset_repo(make_repo, DAYS, store)
    run_id = single_run(first, "2024-01-01", "2024-01-10")
    original = by_partition(materializations(store, run_id, "daily"))
    assert store.count_materialized_partitions("daily") == 10

    # Later start: only the days still on the grid count.
    later = daily_asset_repo(make_repo, FROM_JAN_5, store)
    assert [str(k) for k in later.storage.get_materialized_partitions("daily")] == days(5, 10)
    assert later.storage.count_materialized_partitions("daily") == 6
    assert later.storage.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-05", "2024-01-10")]
    # The run's events are still read one per partition, with their keys.
    assert [e.partition_key for e in materializations(store, run_id, "daily")] == days(1, 10)
    assert same_event(store.get_latest_materialization("daily", partition="2024-01-07"), original["2024-01-07"])
    # A partition materialized under the later grid.
    extra = later.materialize(partition_key="2024-01-11")
    assert later.storage.count_materialized_partitions("daily") == 7

    # Back to the original start: every day shows again, with its original event.
    again = daily_asset_repo(make_repo, DAYS, store)
    assert [str(k) for k in again.storage.get_materialized_partitions("daily")] == days(1, 11)
    assert again.storage.count_materialized_partitions("daily") == 11
    assert again.storage.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-01", "2024-01-11")]
    for day in days(1, 10):
        assert same_event(store.get_latest_materialization("daily", partition=day), original[day])
    (eleventh,) = materializations(store, extra.run_id, "daily")
    assert same_event(store.get_latest_materialization("daily", partition="2024-01-11"), eleventh)
    assert [e.partition_key for e in materializations(store, run_id, "daily")] == days(1, 10)


def test_static_definition_changes_keep_status_by_key(make_repo):
    store = rs.Storage.memory()

    def static_repo(keys):
        @rs.Asset(partitions_def=PD.static_(keys))
        def shops(context: rs.AssetExecutionContext) -> int:
            return len(context.partition.keys)

        return make_repo([shops], storage=store)

    first = static_repo(["a", "b", "c", "d"])
    result = first.backfill(partition_keys=["a", "b", "c"], strategy=BS.single_run())
    assert result.completed == 3
    assert [e.partition_key for e in materializations(store, result.run_ids[0], "shops")] == ["a", "b", "c"]

    # Reordered and shrunk: positions move, the status follows the keys.
    reordered = static_repo(["d", "c", "b"])
    assert sorted(str(k) for k in reordered.storage.get_materialized_partitions("shops")) == ["b", "c"]
    assert reordered.storage.count_materialized_partitions("shops") == 2
    assert reordered.storage.get_partition_ranges("shops", "materialized") == [PKR.single("c", "b")]
    assert [e.partition_key for e in materializations(store, result.run_ids[0], "shops")] == ["a", "b", "c"]
    latest_b = store.get_latest_materialization("shops", partition="b")
    assert latest_b is not None and latest_b.run_id == result.run_ids[0] and latest_b.partition_key == "b"

    restored = static_repo(["a", "b", "c", "d"])
    assert sorted(str(k) for k in restored.storage.get_materialized_partitions("shops")) == ["a", "b", "c"]
    assert restored.storage.get_partition_ranges("shops", "materialized") == [PKR.single("a", "c")]


def test_definition_history_persists_in_embedded_storage(tmp_path, make_repo):
    path = str(tmp_path / "db")
    first = daily_asset_repo(make_repo, DAYS, rs.Storage.embedded(path))
    run_id = single_run(first, "2024-01-01", "2024-01-10")
    original = by_partition(materializations(first.storage, run_id, "daily"))
    first.shutdown()

    later = daily_asset_repo(make_repo, FROM_JAN_5, rs.Storage.embedded(path))
    assert [str(k) for k in later.storage.get_materialized_partitions("daily")] == days(5, 10)
    reread = by_partition(materializations(later.storage, run_id, "daily"))
    assert list(reread) == days(1, 10)
    assert all(same_event(reread[day], original[day]) for day in days(1, 10))
    later.shutdown()

    again = daily_asset_repo(make_repo, DAYS, rs.Storage.embedded(path))
    assert again.storage.count_materialized_partitions("daily") == 10
    assert again.storage.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-01", "2024-01-10")]
    assert same_event(again.storage.get_latest_materialization("daily", partition="2024-01-02"), original["2024-01-02"])


# ---- 6. multi-dimensional partitions ---------------------------------------------------------


def test_multi_dimensional_single_run_backfill_uses_canonical_keys(make_repo):
    grid = PD.multi({"region": REGIONS, "date": DAYS})
    seen: list[int] = []

    @rs.Asset(partitions_def=grid)
    def sales(context: rs.AssetExecutionContext) -> int:
        seen.append(len(context.partition.keys))
        for key in context.partition.keys:
            if str(key) == "date=2024-01-02|region=us":
                context.mark_partition_failed(key, "late file")
        return 1

    repo = make_repo([sales])
    store = repo.storage
    result = repo.backfill(partition_range=PKR.multi({"date": ("2024-01-01", "2024-01-04")}), strategy=BS.single_run())
    assert (result.num_runs, result.completed, result.failed, seen) == (1, 11, 1, [12])

    cells = {f"date={day}|region={region}" for day in days(1, 4) for region in ("eu", "us", "apac")}
    mats = materializations(store, result.run_ids[0], "sales")
    keys = [e.partition_key for e in mats]
    assert len(keys) == len(set(keys)) == 11
    assert set(keys) == cells - {"date=2024-01-02|region=us"}
    assert len({e.id for e in mats}) == 11 and len({e.data_version for e in mats}) == 11

    for event in mats:
        date, region = (segment.split("=")[1] for segment in event.partition_key.split("|"))
        assert event.partition_key == f"date={date}|region={region}"
        assert same_event(store.get_latest_materialization("sales", partition=event.partition_key), event)
        by_key = store.get_latest_materialization("sales", partition=PK.multi({"region": region, "date": date}))
        assert same_event(by_key, event)
    assert store.get_latest_materialization("sales", partition="date=2024-01-02|region=us") is None
    assert store.get_latest_materialization("sales", partition="date=2024-01-05|region=eu") is None

    materialized = store.get_materialized_partitions("sales")
    assert {str(k) for k in materialized} == set(keys)
    assert PK.multi({"date": "2024-01-03", "region": "apac"}) in materialized
    assert store.count_materialized_partitions("sales") == 11
    assert store.get_partition_ranges("sales", "failed") == [
        PKR.multi({"date": ("2024-01-02", "2024-01-02"), "region": ("us", "us")})
    ]
    failures = [e for e in store.get_events_for_run(result.run_ids[0]) if e.event_type == "PartitionFailure"]
    assert [e.partition_key for e in failures] == ["date=2024-01-02|region=us"]


# ---- 7. failures -----------------------------------------------------------------------------


def failing_repo(make_repo, fail_on: set[str], mark: set[str]):
    @rs.Asset(partitions_def=DAYS)
    def daily(context: rs.AssetExecutionContext) -> int:
        keys = [str(k) for k in context.partition.keys]
        if fail_on & set(keys):
            raise RuntimeError("source down")
        for key in keys:
            if key in mark:
                context.mark_partition_failed(key, "ledger closed")
        return len(keys)

    @rs.Asset(partitions_def=DAYS)
    def summary(daily: int) -> int:
        return daily

    return make_repo([daily, summary])


def test_a_failed_single_run_step_materializes_nothing(make_repo):
    fail_on: set[str] = set()
    repo = failing_repo(make_repo, fail_on, set())
    store = repo.storage
    good = single_run(repo, "2024-01-01", "2024-01-10", selection=["daily"])
    good_events = by_partition(materializations(store, good, "daily"))

    fail_on.add("2024-01-08")
    result = repo.backfill(
        selection=["daily", "summary"], partition_range=PKR.single("2024-01-05", "2024-01-14"), strategy=BS.single_run()
    )
    assert (result.num_runs, result.status, result.completed, result.failed) == (1, "failed", 0, 10)
    events = store.get_events_for_run(result.run_ids[0])
    assert [e for e in events if e.event_type == "Materialization"] == []
    assert any(e.event_type == "StepFailure" and e.asset_key == "daily" for e in events)

    assert store.get_partition_ranges("daily", "failed") == [PKR.single("2024-01-05", "2024-01-14")]
    # Partitions materialized before keep that status (their latest attempt failed: in both sets).
    assert store.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-01", "2024-01-10")]
    assert store.count_materialized_partitions("daily") == 10
    assert store.get_partition_ranges("daily", "in_progress") == []
    for day in days(5, 10):
        assert same_event(store.get_latest_materialization("daily", partition=day), good_events[day])
    for day in days(11, 14):
        assert store.get_latest_materialization("daily", partition=day) is None
    assert store.get_materialized_partitions("summary") == []
    assert store.get_partition_ranges("summary", "materialized") == []
    assert store.get_partition_ranges("summary", "in_progress") == []

    # Materializing again clears the failure, partition by partition.
    fail_on.clear()
    again = single_run(repo, "2024-01-09", "2024-01-12", selection=["daily"])
    assert store.get_partition_ranges("daily", "failed") == [
        PKR.single("2024-01-05", "2024-01-08"),
        PKR.single("2024-01-13", "2024-01-14"),
    ]
    assert store.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-01", "2024-01-12")]
    again_events = by_partition(materializations(store, again, "daily"))
    assert same_event(store.get_latest_materialization("daily", partition="2024-01-11"), again_events["2024-01-11"])


def test_marked_partitions_get_no_materialization_and_are_failed(make_repo):
    mark = {"2024-01-03", "2024-01-04", "2024-01-08"}
    repo = failing_repo(make_repo, set(), mark)
    store = repo.storage
    result = repo.backfill(
        selection=["daily"], partition_range=PKR.single("2024-01-01", "2024-01-10"), strategy=BS.single_run()
    )
    assert (result.num_runs, result.status, result.completed, result.failed) == (1, "failed", 7, 3)
    run_id = result.run_ids[0]

    mats = materializations(store, run_id, "daily")
    succeeded = [day for day in days(1, 10) if day not in mark]
    assert [e.partition_key for e in mats] == succeeded
    assert len({e.id for e in mats}) == 7 and len({e.data_version for e in mats}) == 7
    failures = [e for e in store.get_events_for_run(run_id) if e.event_type == "PartitionFailure"]
    assert sorted(e.partition_key for e in failures) == sorted(mark)
    assert all(dict(e.metadata)["rivers/error"] == "ledger closed" for e in failures)

    assert store.get_partition_ranges("daily", "failed") == [
        PKR.single("2024-01-03", "2024-01-04"),
        PKR.single("2024-01-08", "2024-01-08"),
    ]
    assert store.get_partition_ranges("daily", "materialized") == [
        PKR.single("2024-01-01", "2024-01-02"),
        PKR.single("2024-01-05", "2024-01-07"),
        PKR.single("2024-01-09", "2024-01-10"),
    ]
    assert [str(k) for k in store.get_materialized_partitions("daily")] == succeeded
    assert store.count_materialized_partitions("daily") == 7
    assert store.get_partition_ranges("daily", "in_progress") == []
    for day in mark:
        assert store.get_latest_materialization("daily", partition=day) is None
    for event in mats:
        assert same_event(store.get_latest_materialization("daily", partition=event.partition_key), event)

    # Re-running the marked days materializes them and clears their failure.
    mark.clear()
    rerun = repo.rerun_backfill(result.backfill_id)
    assert (rerun.status, rerun.completed) == ("completed", 3)
    assert store.get_partition_ranges("daily", "failed") == []
    assert store.get_partition_ranges("daily", "materialized") == [PKR.single("2024-01-01", "2024-01-10")]
    assert store.count_materialized_partitions("daily") == 10
    latest = store.get_latest_materialization("daily", partition="2024-01-04")
    assert latest is not None and latest.run_id in rerun.run_ids and latest.partition_key == "2024-01-04"


# ---- in progress belongs to a run ------------------------------------------------------------


def test_in_progress_belongs_to_the_run_covering_it(make_repo):
    gate = threading.Event()
    entered = threading.Event()

    @rs.Asset(partitions_def=DAYS)
    def slow(context: rs.AssetExecutionContext) -> int:
        if len(context.partition.keys) > 1:
            entered.set()
            gate.wait(30)
        return len(context.partition.keys)

    repo = make_repo([slow])
    store = repo.storage
    started = repo.backfill(
        partition_range=PKR.single("2024-01-01", "2024-01-10"), strategy=BS.single_run(), block=False
    )
    try:
        assert entered.wait(20)
        assert store.get_partition_ranges("slow", "in_progress") == [PKR.single("2024-01-01", "2024-01-10")]
        # Another run that covers one of those days, and one that does not, start and end
        # meanwhile: the batched run's partitions stay in progress.
        overlapping = repo.materialize(partition_key="2024-01-03")
        other = repo.materialize(partition_key="2024-01-20")
        assert overlapping.success and other.success
        assert store.get_partition_ranges("slow", "in_progress") == [PKR.single("2024-01-01", "2024-01-10")]
        assert store.get_partition_ranges("slow", "materialized") == [
            PKR.single("2024-01-03", "2024-01-03"),
            PKR.single("2024-01-20", "2024-01-20"),
        ]
    finally:
        gate.set()
    deadline = time.monotonic() + 30
    while repo.get_backfill(started.backfill_id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert repo.get_backfill(started.backfill_id).status == "completed"
    assert store.get_partition_ranges("slow", "in_progress") == []
    assert store.get_partition_ranges("slow", "materialized") == [
        PKR.single("2024-01-01", "2024-01-10"),
        PKR.single("2024-01-20", "2024-01-20"),
    ]
    (run_id,) = repo.get_backfill(started.backfill_id).run_ids
    assert [e.partition_key for e in materializations(store, run_id, "slow")] == days(1, 10)
