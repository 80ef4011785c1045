"""Definitions as data: the repository's snapshot carries every declared field, as the core
reads it (what the daemon, the gRPC service and the UI see without importing user code)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

import rivers as rs


class FlakyConnection(ConnectionError):
    pass


@rs.Hook.failure
def page_someone(context: rs.HookContext) -> None:
    pass


def _repository() -> rs.CodeRepository:
    handler = rs.InMemoryIOHandler()

    @rs.Asset.external(name="raw_orders", group="sales", io_handler="warehouse")
    def observe_raw_orders() -> rs.Observation:
        return rs.Observation()

    @rs.Asset(
        tags=["finance"],
        kinds=["python", "duckdb"],
        group="sales",
        code_version="v3",
        io_handler="warehouse",
        metadata={"owner": "team-a"},
        deps=[rs.AssetDef.dep("raw_orders")],
        pool="db",
        pool_slots=2,
        hooks=[page_someone],
        retry=rs.RetryPolicy(
            3,
            backoff=rs.Backoff.exponential(1.0, max_delay=30.0),
            retry_on=[FlakyConnection, rs.FailureReason.TIMEOUT],
        ),
    )
    def orders(context: rs.AssetExecutionContext) -> int:
        return 1

    @rs.Asset(io_handler=handler, retry="patient", deps=[rs.AssetDef.input("orders", io_handler=handler)])
    async def report(orders: int) -> int:
        return orders

    job = rs.Job("nightly", [orders, report], executor=rs.Executor.in_process(), retry="patient")
    return rs.CodeRepository(
        assets=[observe_raw_orders, orders, report],
        jobs=[job],
        resources={"warehouse": rs.InMemoryIOHandler()},
        retries={"patient": rs.RetryPolicy(5, retry_on=rs.RetryOn.TRANSIENT)},
        default_retry_policy="patient",
        default_executor=rs.Executor.parallel(max_workers=2),
    )


def test_the_snapshot_carries_every_declared_field():
    snapshot = json.loads(_repository()._definitions_snapshot())
    nodes = {node["name"]: node for node in snapshot["nodes"]}
    assert list(nodes) == ["raw_orders", "orders", "report"]

    raw = nodes["raw_orders"]
    assert raw["kind"] == "external" and raw["observable"] is True and raw["group"] == "sales"

    orders = nodes["orders"]
    assert orders["kind"] == "asset"
    assert orders["tags"] == ["finance"]
    assert orders["kinds"] == ["python", "duckdb"]
    assert (orders["group"], orders["code_version"]) == ("sales", "v3")
    assert ["owner", "team-a"] in orders["metadata"]
    assert orders["io_handler"] == {"type": "resource", "key": "warehouse"}
    assert orders["params"] == [{"name": "context", "role": "context", "has_default": False}]
    assert orders["deps"] == [{"name": "raw_orders", "is_input": False}]
    assert orders["pools"] == [{"pool": "db", "slots": 2}]
    assert orders["hooks"] == [{"name": "page_someone", "hook_type": "failure"}]
    retry = orders["retry"]
    assert retry["max_retries"] == 3
    assert retry["backoff"]["type"] == "exponential" and retry["backoff"]["max_delay"] == 30.0
    # Exception filters travel by qualified class name.
    assert retry["retry_on"] == {
        "type": "list",
        "reasons": ["timeout"],
        "classes": [f"{__name__}.FlakyConnection"],
    }

    report = nodes["report"]
    assert report["is_async"] is True
    assert report["retry"] == "patient"
    assert report["io_handler"] == {"type": "object", "class": "rivers.io_handlers.memory.InMemoryIOHandler"}
    assert report["deps"][0]["io_handler"]["type"] == "object"
    assert report["params"] == [{"name": "orders", "role": "named", "has_default": False}]

    assert snapshot["jobs"] == [
        {
            "name": "nightly",
            "nodes": ["orders", "report"],
            "executor": "in_process",
            "allow_incomplete_deps": False,
            "retry": "patient",
        }
    ]
    assert snapshot["resources"] == ["warehouse"]
    assert snapshot["default_executor"] == "parallel"
    assert snapshot["default_retry"] == "patient"
    assert snapshot["retries"]["patient"]["retry_on"] == {"type": "transient"}


def test_asset_records_are_registered_from_the_definitions():
    repo = _repository()
    repo.resolve(storage=rs.Storage.memory())
    record = repo.storage.get_asset_record("orders")
    assert record is not None
    assert (record.group, record.code_version, record.tags, record.kinds) == (
        "sales",
        "v3",
        ["finance"],
        ["python", "duckdb"],
    )
    assert record.pool == [("db", 2)]


def test_the_snapshot_carries_compute_backfill_strategies_and_named_partitions():
    days = rs.PartitionsDefinition.daily(start=datetime(2024, 1, 1))

    @rs.Asset(
        partitions_def="days",
        backfill_strategy=rs.BackfillStrategy.single_run(),
        compute=rs.Compute(cpu="2", memory="8Gi"),
    )
    def events() -> int:
        return 1

    @rs.Asset(partitions_def="days")
    def summary(events: int) -> int:
        return events

    repo = rs.CodeRepository(assets=[events, summary], partition_defs={"days": days})
    snapshot = json.loads(repo._definitions_snapshot())
    nodes = {node["name"]: node for node in snapshot["nodes"]}
    assert nodes["events"]["compute"] == {"cpu": "2", "memory": "8Gi", "gpu": None}
    assert nodes["events"]["backfill_strategy"] == {"kind": "single_run"}
    assert nodes["events"]["partitions"] == {"named": "days"}
    assert "compute" not in nodes["summary"] and "backfill_strategy" not in nodes["summary"]
    assert list(snapshot["partitions"]) == ["days"]
    # Slots the automation machinery fills.
    assert (snapshot["schedules"], snapshot["sensors"], snapshot["pool_limits"]) == ([], [], [])


def test_a_compute_that_is_not_a_compute_is_refused_by_name():
    @rs.Asset(compute={"cpu": "2"})
    def heavy() -> int:
        return 1

    with pytest.raises(TypeError, match=r"'heavy' declares compute=.*rs\.Compute"):
        rs.CodeRepository(assets=[heavy]).validate()
