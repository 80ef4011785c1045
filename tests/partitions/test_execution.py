"""Partitioned runs: keys required and checked before any run record, contexts, mappings when
loading inputs, one materialization per covered partition, dynamic keys, named definitions,
mark_partition_failed and load_node (partitions-and-backfills.md R19-R36, R48, R53)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import PrivateAttr

import rivers as rs
from rivers.exceptions import (
    ConfigurationError,
    ExecutionError,
    PartitionDefinitionError,
    PartitionValidationError,
)

PD = rs.PartitionsDefinition
PK = rs.PartitionKey
PM = rs.PartitionMapping

DAYS = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))


class KeyedHandler(rs.BaseIOHandler):
    """Stores one value per (asset, partition key) and records every load."""

    _values: dict = PrivateAttr(default_factory=dict)
    _loads: list = PrivateAttr(default_factory=list)
    _writes: list = PrivateAttr(default_factory=list)

    def handle_output(self, context: rs.OutputContext, obj: Any) -> None:
        keys = [str(k) for k in context.partition.keys] if context.partition is not None else [None]
        self._writes.append((context.asset_name, keys))
        for key in keys:
            self._values[(context.asset_name, key)] = obj

    def load_input(self, context: rs.InputContext) -> Any:
        partition = context.partition
        self._loads.append((context.asset_name, context.downstream_asset, partition))
        if partition is None:
            return self._values[(context.asset_name, None)]
        values = [self._values[(context.asset_name, str(k))] for k in partition.keys]
        return values[0] if len(values) == 1 else values


@pytest.fixture
def handler() -> KeyedHandler:
    return KeyedHandler()


def runs(repo: rs.CodeRepository) -> list[Any]:
    return repo.storage.get_runs()


def materialized_keys(repo: rs.CodeRepository, run_id: str, asset: str) -> list[str | None]:
    return [
        e.partition_key
        for e in repo.storage.get_events_for_run(run_id)
        if e.event_type == "Materialization" and e.asset_key == asset
    ]


# --- keys required and checked -------------------------------------------------------------


def test_a_partitioned_selection_needs_a_key_before_any_run_is_recorded(make_repo, handler):
    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def daily() -> int:
        return 1

    repo = make_repo([daily])
    with pytest.raises(PartitionValidationError, match="partition_key"):
        repo.materialize()
    with pytest.raises(PartitionValidationError, match="Invalid partition_key 'garbage'"):
        repo.materialize(partition_key=PK.single("garbage"))
    with pytest.raises(PartitionValidationError):
        repo.materialize(partition_key=PK.single("2024-02-01"))  # end is exclusive
    assert runs(repo) == []


def test_a_key_for_an_unpartitioned_selection_is_rejected(make_repo):
    @rs.Asset
    def plain() -> int:
        return 1

    repo = make_repo([plain])
    with pytest.raises(PartitionValidationError, match="none of the planned assets is partitioned"):
        repo.materialize(partition_key=PK.single("x"))
    assert runs(repo) == []


def test_the_key_is_checked_against_every_partitioned_asset_of_the_selection(make_repo, handler):
    @rs.Asset(partitions_def=PD.static_(["a", "b"]), io_handler=handler)
    def wide() -> int:
        return 1

    @rs.Asset(partitions_def=PD.static_(["a"]), deps=[rs.AssetDef.dep("wide")])
    def narrow() -> int:
        return 2

    repo = make_repo([wide, narrow])
    with pytest.raises(PartitionValidationError, match="narrow"):
        repo.materialize(partition_key="b")
    assert repo.materialize(partition_key="a").success


def test_context_accessors_of_a_daily_step():  # R33
    seen = {}

    @rs.Asset(partitions_def=DAYS)
    def daily(context: rs.AssetExecutionContext) -> int:
        seen["key"] = context.partition_key
        seen["has"] = context.has_partition_key
        seen["window"] = context.partition_time_window
        seen["keys"] = context.partition.keys
        seen["definition"] = context.partition.definition
        return 1

    repo = rs.CodeRepository(assets=[daily], default_executor=rs.Executor.in_process())
    repo.resolve(rs.Storage.memory())
    result = repo.materialize(partition_key=PK.single("2024-01-02"))
    assert result.success
    assert seen == {
        "key": "2024-01-02",
        "has": True,
        "window": (datetime(2024, 1, 2), datetime(2024, 1, 3)),
        "keys": [PK.single("2024-01-02")],
        "definition": DAYS,
    }
    run = repo.storage.get_run(result.run_id)
    assert run.partition_key == PK.single("2024-01-02")
    assert materialized_keys(repo, result.run_id, "daily") == ["2024-01-02"]


def test_context_accessors_of_a_multi_step_and_an_unpartitioned_one(make_repo):  # R34, R35
    seen = {}
    grid = PD.multi({"year": PD.static_(["2024"]), "region": PD.static_(["eu", "us"])})

    @rs.Asset(partitions_def=grid)
    def sales(context: rs.AssetExecutionContext) -> int:
        seen["key"] = context.partition_key
        seen["window"] = context.partition_time_window
        return 1

    @rs.Asset
    def plain(context: rs.AssetExecutionContext) -> int:
        seen["plain"] = (context.partition, context.has_partition_key, context.partition_time_window)
        with pytest.raises(ValueError):
            _ = context.partition_key
        return 1

    repo = make_repo([sales, plain])
    assert repo.materialize(["sales"], partition_key=PK.multi({"year": "2024", "region": "eu"})).success
    assert repo.materialize(["sales"], partition_key="region=us|year=2024").success
    assert repo.materialize(["plain"]).success
    assert seen == {"key": "region=us|year=2024", "window": None, "plain": (None, False, None)}


def test_unpartitioned_assets_in_a_partitioned_run_run_once_without_a_partition(make_repo, handler):
    seen = []

    @rs.Asset(io_handler=handler)
    def lookup(context: rs.AssetExecutionContext) -> int:
        seen.append(context.partition)
        return 10

    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def daily(lookup: int) -> int:
        return lookup + 1

    repo = make_repo([lookup, daily])
    result = repo.materialize(partition_key="2024-01-03")
    assert seen == [None]
    assert materialized_keys(repo, result.run_id, "lookup") == [None]
    assert materialized_keys(repo, result.run_id, "daily") == ["2024-01-03"]
    assert handler._values[("daily", "2024-01-03")] == 11


def test_a_key_with_several_values_is_one_run_with_a_materialization_per_partition(make_repo, handler):
    seen = []

    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def daily(context: rs.AssetExecutionContext) -> int:
        seen.append(context.partition.keys)
        return 1

    repo = make_repo([daily])
    key = PK.single(["2024-01-03", "2024-01-02"])
    result = repo.materialize(partition_key=key)
    assert seen == [[key]]
    assert len(runs(repo)) == 1
    assert sorted(materialized_keys(repo, result.run_id, "daily")) == ["2024-01-02", "2024-01-03"]


# --- mappings -------------------------------------------------------------------------------


def test_identity_is_the_default_between_equal_definitions(make_repo, handler):  # R22
    letters = PD.static_(["k", "m"])

    @rs.Asset(partitions_def=letters, io_handler=handler)
    def up(context: rs.AssetExecutionContext) -> str:
        return f"up-{context.partition_key}"

    @rs.Asset(partitions_def=letters, io_handler=handler)
    def down(up: str) -> str:
        return up + "!"

    repo = make_repo([up, down])
    repo.materialize(partition_key="k")
    repo.materialize(partition_key="m")
    assert handler._values[("down", "k")] == "up-k!"
    load = [entry for entry in handler._loads if entry[1] == "down"][-1]
    assert [str(k) for k in load[2].keys] == ["m"] and load[2].definition == letters


def test_static_mapping_between_different_key_sets(make_repo, handler):  # R23
    @rs.Asset(partitions_def=PD.static_(["1", "2", "3"]), io_handler=handler)
    def numbers(context: rs.AssetExecutionContext) -> str:
        return f"n{context.partition_key}"

    @rs.Asset(
        partitions_def=PD.static_(["a", "b"]),
        io_handler=handler,
        deps=[rs.AssetDef.input("numbers", partition_mapping=PM.static_({"a": "1", "b": "2"}))],
    )
    def letters(numbers: str) -> str:
        return numbers

    @rs.Asset(partitions_def=PD.static_(["a", "b"]))
    def unmapped(numbers: str) -> str:
        return numbers

    repo = make_repo([numbers, letters])
    repo.materialize(["numbers"], partition_key="1")
    repo.materialize(["letters"], partition_key="a")
    assert handler._values[("letters", "a")] == "n1"
    with pytest.raises(PartitionValidationError, match="numbers"):
        rs.CodeRepository(assets=[numbers, unmapped]).validate()
    with pytest.raises(PartitionValidationError):
        rs.CodeRepository(assets=[numbers, unmapped]).resolve(rs.Storage.memory())


def test_time_window_offset_reads_the_previous_window(make_repo, handler):  # R24
    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def till(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(
        partitions_def=DAYS,
        io_handler=handler,
        deps=[rs.AssetDef.input("till", partition_mapping=PM.time_window(offset=-1))],
    )
    def day_over_day(till: str) -> str:
        return till

    repo = make_repo([till, day_over_day])
    repo.materialize(["till"], partition_key="2024-01-04")
    repo.materialize(["day_over_day"], partition_key="2024-01-05")
    assert handler._values[("day_over_day", "2024-01-05")] == "2024-01-04"
    failed = repo.materialize(["day_over_day"], partition_key="2024-01-01", raise_on_error=False)
    assert not failed.success
    assert "outside the upstream range" in failed.failed_assets[0][1]
    with pytest.raises(ExecutionError):
        repo.materialize(["day_over_day"], partition_key="2024-01-01")


@pytest.mark.parametrize(
    "upstream",
    [
        PD.daily(start=datetime(2024, 1, 1), fmt="%Y%m%d"),
        PD.time_window(start=datetime(2024, 1, 1), cron_schedule="0 0 * * 1", fmt="%Y-%m-%d"),
        PD.time_window(start=datetime(2024, 1, 1), interval_seconds=2 * 86400, fmt="%Y-%m-%d"),
    ],
)
def test_time_window_mappings_between_incompatible_grids_fail_at_resolve(upstream):  # R25
    @rs.Asset(partitions_def=upstream)
    def source() -> int:
        return 1

    @rs.Asset(partitions_def=DAYS, deps=[rs.AssetDef.input("source", partition_mapping=PM.time_window(-1))])
    def target(source: int) -> int:
        return source

    with pytest.raises(PartitionValidationError):
        rs.CodeRepository(assets=[source, target]).validate()


def test_for_keys_loads_the_unpartitioned_upstream_only_for_matching_keys(make_repo, handler):  # R26
    @rs.Asset(io_handler=handler)
    def legacy() -> str:
        return "legacy"

    @rs.Asset(
        partitions_def=PD.static_(["a", "b"]),
        io_handler=handler,
        deps=[rs.AssetDef.input("legacy", partition_mapping=PM.for_keys([PK.single("a")]))],
    )
    def region(legacy: str | None) -> str:
        return repr(legacy)

    repo = make_repo([legacy, region])
    repo.materialize(["legacy"])
    repo.materialize(["region"], partition_key="a")
    loads_before = len(handler._loads)
    repo.materialize(["region"], partition_key="b")
    assert handler._values[("region", "a")] == "'legacy'"
    assert handler._values[("region", "b")] == "None"
    assert len(handler._loads) == loads_before


def test_for_keys_needs_an_unpartitioned_upstream_and_valid_selectors():  # R26
    @rs.Asset(partitions_def=PD.static_(["a"]))
    def partitioned() -> int:
        return 1

    @rs.Asset
    def whole() -> int:
        return 1

    def down(selector: Any, upstream: str) -> Any:
        mapping = PM.for_keys([selector])
        if upstream == "whole":

            @rs.Asset(
                partitions_def=PD.static_(["a", "b"]), deps=[rs.AssetDef.input("whole", partition_mapping=mapping)]
            )
            def reads_whole(whole: int) -> int:
                return whole

            return reads_whole

        @rs.Asset(
            partitions_def=PD.static_(["a", "b"]), deps=[rs.AssetDef.input("partitioned", partition_mapping=mapping)]
        )
        def reads_partitioned(partitioned: int) -> int:
            return partitioned

        return reads_partitioned

    for bad, upstream in [
        (PK.single("a"), "partitioned"),
        (rs.PartitionKeyRange.single("a", "zz"), "whole"),
        (rs.PartitionKeyRange.single("b", "a"), "whole"),
    ]:
        with pytest.raises(PartitionValidationError):
            rs.CodeRepository(assets=[partitioned, whole, down(bad, upstream)]).validate()


def test_subset_reads_the_key_where_the_upstream_has_it(make_repo, handler):  # R27
    @rs.Asset(partitions_def=PD.static_(["a", "b"]), io_handler=handler)
    def fresh(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(
        partitions_def=PD.static_(["a", "b", "c"]),
        io_handler=handler,
        deps=[rs.AssetDef.input("fresh", partition_mapping=PM.subset())],
    )
    def union(fresh: str | None) -> str:
        return repr(fresh)

    repo = make_repo([fresh, union])
    repo.materialize(["fresh"], partition_key="a")
    repo.materialize(["union"], partition_key="a")
    repo.materialize(["union"], partition_key="c")
    assert handler._values[("union", "a")] == "'a'"
    assert handler._values[("union", "c")] == "None"


def test_subset_across_kinds_or_with_extra_upstream_keys_fails_at_resolve():
    @rs.Asset(partitions_def=PD.static_(["a", "z"]))
    def up() -> int:
        return 1

    @rs.Asset(partitions_def=PD.static_(["a", "b"]), deps=[rs.AssetDef.input("up", partition_mapping=PM.subset())])
    def down(up: int) -> int:
        return up

    with pytest.raises(PartitionValidationError):
        rs.CodeRepository(assets=[up, down]).validate()


def test_all_partitions_loads_every_upstream_key_in_one_call(make_repo, handler):  # R28, R30
    letters = PD.static_(["x", "y", "z"])

    @rs.Asset(partitions_def=letters, io_handler=handler)
    def parts(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(io_handler=handler, deps=[rs.AssetDef.input("parts", partition_mapping=PM.all_partitions())])
    def combined(parts: list[str]) -> str:
        return "".join(parts)

    @rs.Asset(io_handler=handler)
    def combined_by_default(parts: list[str]) -> str:
        return "".join(parts)

    repo = make_repo([parts, combined, combined_by_default])
    for key in ["x", "y", "z"]:
        repo.materialize(["parts"], partition_key=key)
    before = len(handler._loads)
    repo.materialize(["combined", "combined_by_default"])
    loads = handler._loads[before:]
    assert len(loads) == 2
    for _, _, partition in loads:
        assert [str(k) for k in partition.keys] == ["x", "y", "z"]
        assert partition.definition == letters
    assert handler._values[("combined", None)] == "xyz"
    assert handler._values[("combined_by_default", None)] == "xyz"


def test_specific_partitions_load_the_listed_keys_for_every_downstream_key(make_repo, handler):  # R29
    @rs.Asset(partitions_def=PD.static_(["p", "q", "r"]), io_handler=handler)
    def source(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(
        partitions_def=DAYS,
        io_handler=handler,
        deps=[rs.AssetDef.input("source", partition_mapping=PM.specific_partitions(["p", "q"]))],
    )
    def daily(source: list[str]) -> str:
        return "+".join(source)

    repo = make_repo([source, daily])
    for key in ["p", "q", "r"]:
        repo.materialize(["source"], partition_key=key)
    repo.materialize(["daily"], partition_key="2024-01-09")
    assert handler._values[("daily", "2024-01-09")] == "p+q"


def test_multi_to_single_reads_every_upstream_key_of_the_day(make_repo, handler):  # R31
    days = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 1, 5))
    grid = PD.multi({"day": days, "shop": PD.static_(["north", "south"])})

    @rs.Asset(partitions_def=grid, io_handler=handler)
    def shop_sales(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(
        partitions_def=days,
        io_handler=handler,
        deps=[rs.AssetDef.input("shop_sales", partition_mapping=PM.multi_to_single("day"))],
    )
    def day_total(shop_sales: list[str]) -> list[str]:
        return shop_sales

    repo = make_repo([shop_sales, day_total])
    for shop in ["north", "south"]:
        repo.materialize(["shop_sales"], partition_key=PK.multi({"day": "2024-01-02", "shop": shop}))
    repo.materialize(["day_total"], partition_key="2024-01-02")
    assert handler._values[("day_total", "2024-01-02")] == ["day=2024-01-02|shop=north", "day=2024-01-02|shop=south"]


def test_multi_mapping_shifts_one_dimension(make_repo, handler):
    days = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 1, 5))
    grid = PD.multi({"day": days, "shop": PD.static_(["north"])})

    @rs.Asset(partitions_def=grid, io_handler=handler)
    def stock(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(
        partitions_def=grid,
        io_handler=handler,
        deps=[rs.AssetDef.input("stock", partition_mapping=PM.multi({"day": PM.time_window(-1)}))],
    )
    def opening(stock: str) -> str:
        return stock

    repo = make_repo([stock, opening])
    repo.materialize(["stock"], partition_key="day=2024-01-02|shop=north")
    repo.materialize(["opening"], partition_key="day=2024-01-03|shop=north")
    assert handler._values[("opening", "day=2024-01-03|shop=north")] == "day=2024-01-02|shop=north"


# --- dynamic partitions ---------------------------------------------------------------------


def test_dynamic_keys_must_be_registered(make_repo):  # R19, R20
    tenants = PD.dynamic("tenants")

    @rs.Asset(partitions_def=tenants)
    def usage(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    repo = make_repo([usage])
    with pytest.raises(PartitionValidationError, match="add_dynamic_partitions"):
        repo.materialize(partition_key="orca")
    repo.storage.add_dynamic_partitions("tenants", ["orca", "heron"])
    assert repo.storage.get_dynamic_partitions("tenants") == ["orca", "heron"]
    assert repo.materialize(partition_key=PK.single("orca")).success
    repo.storage.delete_dynamic_partition("tenants", "orca")
    assert not repo.storage.has_dynamic_partition("tenants", "orca")
    with pytest.raises(PartitionValidationError):
        repo.materialize(partition_key="orca")
    assert len(runs(repo)) == 1


# --- named definitions ----------------------------------------------------------------------


def test_named_definitions_resolve_at_every_site(make_repo, handler):
    @rs.Asset(partitions_def="days", io_handler=handler)
    def single(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("m1"), rs.AssetDef("m2")], partitions_def="days")
    def multi(context: rs.AssetExecutionContext) -> dict[str, str]:
        return {"m1": context.partition_key, "m2": context.partition_key}

    @rs.Task(partitions_def="days")
    def chore(context: rs.TaskExecutionContext) -> str:
        return context.partition_key

    repo = make_repo([single, multi], tasks=[chore], partition_defs={"days": DAYS})
    assert single.partitions_def == "days"
    result = repo.materialize(["single", "multi", "chore"], partition_key="2024-01-07")
    assert result.success
    assert materialized_keys(repo, result.run_id, "m1") == ["2024-01-07"]


def test_unknown_named_definitions_fail_resolve_and_validate_listing_the_names():  # R53
    @rs.Asset(partitions_def="weeks")
    def weekly() -> int:
        return 1

    repo = rs.CodeRepository(
        assets=[weekly], partition_defs={"days": DAYS, "hours": PD.hourly(start=datetime(2024, 1, 1))}
    )
    for call in (repo.validate, lambda: repo.resolve(rs.Storage.memory())):
        with pytest.raises(ConfigurationError) as err:
            call()
        assert "days" in str(err.value) and "hours" in str(err.value) and "weeks" in str(err.value)


def test_broken_raw_variants_fail_at_resolve():
    @rs.Asset(partitions_def=PD.Static([]))
    def broken() -> int:
        return 1

    repo = rs.CodeRepository(assets=[broken])
    with pytest.raises(PartitionDefinitionError, match="broken"):
        repo.resolve(rs.Storage.memory())


# --- mark_partition_failed ------------------------------------------------------------------


def test_marked_partitions_get_no_materialization_and_no_write(make_repo, handler):  # R47 (one run)
    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def ledger(context: rs.AssetExecutionContext) -> int:
        for key in context.partition.keys[0].key:
            if key.endswith("3"):
                context.mark_partition_failed(key, "ledger closed")
        context.mark_partition_failed("2024-01-03", "again")  # recorded once
        return 7

    repo = make_repo([ledger])
    result = repo.materialize(partition_key=PK.single(["2024-01-02", "2024-01-03", "2024-01-04"]))
    assert result.success and result.failed_assets == []
    assert sorted(materialized_keys(repo, result.run_id, "ledger")) == ["2024-01-02", "2024-01-04"]
    assert handler._writes == [("ledger", ["2024-01-02", "2024-01-04"])]
    failures = [e for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "PartitionFailure"]
    assert [(e.asset_key, e.partition_key) for e in failures] == [("ledger", "2024-01-03")]
    assert dict(failures[0].metadata)["rivers/error"] == "again"


def test_marking_every_partition_skips_the_write(make_repo, handler):
    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def ledger(context: rs.AssetExecutionContext) -> int:
        for key in ["2024-01-02", "2024-01-03"]:
            context.mark_partition_failed(PK.single(key), "closed")
        return 7

    repo = make_repo([ledger])
    result = repo.materialize(partition_key=PK.single(["2024-01-02", "2024-01-03"]))
    assert result.success
    assert handler._writes == []
    assert materialized_keys(repo, result.run_id, "ledger") == []


def test_marking_a_foreign_key_raises_and_one_partition_steps_ignore_marks(make_repo, handler):  # R48
    outcomes = []

    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def ledger(context: rs.AssetExecutionContext) -> int:
        try:
            context.mark_partition_failed("2024-01-20", "not mine")
        except ExecutionError as err:
            outcomes.append(str(err))
        context.mark_partition_failed(context.partition_key, "only one")
        return 1

    repo = make_repo([ledger])
    result = repo.materialize(partition_key="2024-01-02")
    assert "not among this context's partition keys" in outcomes[0]
    assert materialized_keys(repo, result.run_id, "ledger") == ["2024-01-02"]


def test_marking_on_an_unpartitioned_step_raises(make_repo):
    @rs.Asset
    def plain(context: rs.AssetExecutionContext) -> int:
        context.mark_partition_failed("x", "no partitions here")
        return 1

    repo = make_repo([plain])
    with pytest.raises(ExecutionError):
        repo.materialize()


# --- load_node, jobs, tasks, parallel -------------------------------------------------------


def test_load_node_reads_one_partition(make_repo):
    @rs.Asset(partitions_def=DAYS)
    def daily(context: rs.AssetExecutionContext) -> str:
        return f"value of {context.partition_key}"

    repo = make_repo([daily])
    repo.materialize(partition_key="2024-01-05")
    repo.materialize(partition_key="2024-01-06")
    assert repo.load_node("daily", partition_key=PK.single("2024-01-05")) == "value of 2024-01-05"
    assert repo.load_node("daily", partition_key="2024-01-06") == "value of 2024-01-06"
    with pytest.raises(PartitionValidationError):
        repo.load_node("daily")
    with pytest.raises(PartitionValidationError):
        repo.load_node("daily", partition_key="2025-01-01")


def test_job_execute_takes_a_partition_key(make_repo):
    @rs.Asset(partitions_def=DAYS)
    def daily(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    repo = make_repo([daily], jobs=[rs.Job("nightly", [daily])])
    result = repo.get_job("nightly").execute(partition_key="2024-01-08")
    assert result.success
    assert repo.storage.get_run(result.run_id).partition_key == PK.single("2024-01-08")
    with pytest.raises(PartitionValidationError):
        repo.get_job("nightly").execute()


def test_task_contexts_see_their_partition(make_repo):
    seen = {}

    @rs.Task(partitions_def=DAYS)
    def export(context: rs.TaskExecutionContext) -> None:
        seen["key"] = context.partition_key
        seen["window"] = context.partition_time_window

    repo = make_repo([], tasks=[export])
    assert repo.materialize(["export"], partition_key="2024-01-10").success
    assert seen == {"key": "2024-01-10", "window": (datetime(2024, 1, 10), datetime(2024, 1, 11))}


def test_partitioned_steps_run_in_parallel_workers(tmp_path):
    from tests.partitions import parallel_defs

    repo = rs.CodeRepository(
        assets=parallel_defs.assets(str(tmp_path)), default_executor=rs.Executor.parallel(max_workers=2)
    )
    repo.resolve(rs.Storage.memory())
    try:
        result = repo.materialize(partition_key=PK.single(["2024-01-02", "2024-01-03"]))
        assert result.success
        assert sorted(materialized_keys(repo, result.run_id, "marked")) == ["2024-01-02"]
        both = PK.single(["2024-01-02", "2024-01-03"])
        assert repo.load_node("doubled", partition_key=both) == ["2024-01-02", "2024-01-03"] * 2
    finally:
        repo.shutdown()


# --- graph assets (graph-and-tasks.md R58, R59, R61) ---------------------------------------


def test_graph_partitions_reach_internal_tasks_and_their_outputs(make_repo):  # R58
    @rs.Task
    def extract(context: rs.TaskExecutionContext) -> str:
        return f"rows of {context.partition_key}"

    @rs.Task
    def count(rows: str) -> int:
        return len(rows)

    @rs.Asset.from_graph(partitions_def=DAYS)
    def daily_graph():
        return count(extract())

    repo = make_repo([daily_graph])
    repo.materialize(partition_key="2024-01-02")
    repo.materialize(partition_key="2024-01-03")
    assert repo.load_node("daily_graph/extract", partition_key="2024-01-02") == "rows of 2024-01-02"
    assert repo.load_node("daily_graph", partition_key=PK.single("2024-01-03")) == len("rows of 2024-01-03")


def test_internal_tasks_with_another_definition_fail_resolve(make_repo):  # R59
    @rs.Task(partitions_def=PD.static_(["x"]))
    def odd() -> int:
        return 1

    @rs.Task(partitions_def=DAYS)
    def same() -> int:
        return 1

    @rs.Asset.from_graph(partitions_def=DAYS)
    def mismatched():
        return odd()

    @rs.Asset.from_graph(partitions_def=DAYS)
    def matched():
        return same()

    with pytest.raises(PartitionValidationError, match="odd"):
        rs.CodeRepository(assets=[mismatched]).validate()
    repo = make_repo([matched])
    assert repo.materialize(partition_key="2024-01-05").success


def test_single_run_backfills_give_internal_steps_every_key(make_repo):  # R61
    seen = []

    @rs.Task
    def gather(context: rs.TaskExecutionContext) -> int:
        seen.append(len(context.partition.keys))
        return 1

    @rs.Asset.from_graph(partitions_def=DAYS)
    def batched():
        return gather()

    repo = make_repo([batched])
    result = repo.backfill(
        partition_range=rs.PartitionKeyRange.single("2024-01-01", "2024-01-04"),
        strategy=rs.BackfillStrategy.single_run(),
    )
    assert result.completed == 4 and seen == [4]


# --- multi-assets with per-output definitions -------------------------------------------------


def _staggered_multi(handler):
    """Outputs `early` (daily from Jan 1) and `late` (daily from Jan 10) of one multi-asset."""
    early_days = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))
    late_days = PD.daily(start=datetime(2024, 1, 10), end=datetime(2024, 2, 1))

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("early", partitions_def=early_days), rs.AssetDef("late", partitions_def=late_days)],
        io_handler=handler,
    )
    def staggered(context: rs.AssetExecutionContext) -> dict[str, str]:
        return {name: context.partition_key for name in context.output_selection}

    return staggered


def test_a_run_key_must_be_valid_for_every_selected_output(make_repo, handler):
    repo = make_repo([_staggered_multi(handler)])
    # Jan 5 is a key of `early` only: with both outputs selected it is refused before any run.
    with pytest.raises(PartitionValidationError, match="late"):
        repo.materialize(partition_key="2024-01-05")
    with pytest.raises(PartitionValidationError, match="late"):
        repo.materialize(["late"], partition_key="2024-01-05")
    assert runs(repo) == []
    # Selecting only the output whose space holds the key runs it.
    result = repo.materialize(["early"], partition_key="2024-01-05")
    assert result.success
    assert materialized_keys(repo, result.run_id, "early") == ["2024-01-05"]
    assert materialized_keys(repo, result.run_id, "late") == []
    # A key both spaces hold runs both outputs.
    both = repo.materialize(partition_key="2024-01-12")
    assert both.success
    assert materialized_keys(repo, both.run_id, "early") == ["2024-01-12"]
    assert materialized_keys(repo, both.run_id, "late") == ["2024-01-12"]


def test_a_selected_output_runs_under_its_own_definition(make_repo, handler):
    repo = make_repo([_staggered_multi(handler)])
    # Jan 31 is valid for both; `late` alone runs under `late`'s grid.
    result = repo.materialize(["late"], partition_key="2024-01-31")
    assert result.success
    assert [str(k) for k in repo.storage.get_materialized_partitions("late")] == ["2024-01-31"]
    assert repo.storage.get_materialized_partitions("early") == []


def test_partition_status_of_each_output_is_kept_on_its_own_grid(make_repo, handler):
    repo = make_repo([_staggered_multi(handler)])
    assert repo.materialize(partition_key="2024-01-12").success
    assert repo.materialize(partition_key="2024-01-20").success
    assert [str(k) for k in repo.storage.get_materialized_partitions("early")] == ["2024-01-12", "2024-01-20"]
    assert [str(k) for k in repo.storage.get_materialized_partitions("late")] == ["2024-01-12", "2024-01-20"]
    assert repo.storage.count_materialized_partitions("late") == 2
