"""``DeltaIOHandler`` inside a repository: assets materialize to Delta tables, downstream assets
read them as the frame type their parameter is annotated with, and the handler's output
metadata lands on the stored materialization events."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import rivers as rs
from rivers.exceptions import ExecutionError
from rivers.io_handlers.delta import DeltaIOHandler, MergeConfig

from .conftest import table_rows


def test_assets_round_trip_through_delta_tables(lake, make_repo, store, run_materializations):
    lake_handler = DeltaIOHandler(table_uri=lake)

    @rs.Asset(io_handler=lake_handler)
    def shipments() -> pl.DataFrame:
        return pl.DataFrame({"region": ["north", "south", "north"], "parcels": [5, 9, 2]})

    @rs.Asset(io_handler=lake_handler)
    def parcels_by_region(shipments: pl.LazyFrame) -> pd.DataFrame:
        return shipments.group_by("region").agg(pl.col("parcels").sum()).sort("region").collect().to_pandas()

    @rs.Asset
    def busiest(parcels_by_region: pa.Table) -> str:
        rows = parcels_by_region.to_pylist()
        return max(rows, key=lambda r: r["parcels"])["region"]

    repo = make_repo([shipments, parcels_by_region, busiest], storage=store)
    result = repo.materialize()

    assert result.success
    assert table_rows(f"{lake}/shipments", sort_by="parcels") == [
        {"region": "north", "parcels": 2},
        {"region": "north", "parcels": 5},
        {"region": "south", "parcels": 9},
    ]
    assert table_rows(f"{lake}/parcels_by_region") == [
        {"region": "north", "parcels": 7},
        {"region": "south", "parcels": 9},
    ]
    assert repo.load_node("busiest") == "south"
    loaded = repo.load_node("parcels_by_region", type_hint=pd.DataFrame)
    assert isinstance(loaded, pd.DataFrame) and isinstance(loaded.index, pd.RangeIndex)

    event = run_materializations(store, result.run_id)["shipments"]
    metadata = dict(event.metadata)
    assert metadata["delta/table_uri"] == f"{lake}/shipments"
    assert metadata["delta/mode"] == "overwrite"
    assert metadata["delta/num_rows"] == "3"
    assert metadata["delta/version"] == "0"
    assert {"delta/size_bytes", "delta/write_duration_s", "rivers/schema"} <= set(metadata)


def test_rematerializing_bumps_the_table_version(lake, make_repo, store, run_materializations):
    @rs.Asset(io_handler=DeltaIOHandler(table_uri=lake))
    def counts() -> pa.Table:
        return pa.table({"n": [1, 2]})

    repo = make_repo([counts], storage=store)
    first = repo.materialize()
    second = repo.materialize()

    versions = [
        dict(run_materializations(store, r.run_id)["counts"].metadata)["delta/version"] for r in (first, second)
    ]
    assert versions == ["0", "1"]


def test_input_metadata_override_projects_the_read(lake, make_repo, store):
    lake_handler = DeltaIOHandler(table_uri=lake)
    seen: dict[str, object] = {}

    @rs.Asset(io_handler=lake_handler, metadata={"delta/root_name": "crm/users"})
    def users() -> pa.Table:
        return pa.table({"id": [1, 2], "tier": ["gold", "free"], "email": ["a@x", "b@x"]})

    @rs.Asset(deps=[rs.AssetDef.input("users", metadata={"delta/root_name": "crm/users", "delta/columns": '["tier"]'})])
    def tiers(users: pl.DataFrame) -> list[str]:
        seen["columns"] = users.columns
        return sorted(users["tier"].to_list())

    repo = make_repo([users, tiers], storage=store)
    repo.materialize()

    assert DeltaTable.is_deltatable(f"{lake}/crm/users")
    assert repo.load_node("tiers") == ["free", "gold"]
    assert seen["columns"] == ["tier"]


def test_metadata_mode_override_appends_across_runs(lake, make_repo, store):
    @rs.Asset(io_handler=DeltaIOHandler(table_uri=lake), metadata={"delta/mode": "append"})
    def events() -> pa.Table:
        return pa.table({"kind": ["click"]})

    repo = make_repo([events], storage=store)
    repo.materialize()
    repo.materialize()

    assert table_rows(f"{lake}/events") == [{"kind": "click"}, {"kind": "click"}]


def test_upsert_asset_after_seeding(lake, make_repo, store):
    upserting = DeltaIOHandler(
        table_uri=lake, mode="merge", merge_config=MergeConfig(merge_type="upsert", predicate="s.user_id = t.user_id")
    )
    DeltaIOHandler(table_uri=lake).handle_output(
        rs.OutputContext("user_profiles"), pl.DataFrame({"user_id": [1, 3], "tier": ["free", "free"]})
    )

    @rs.Asset(io_handler=upserting)
    def user_profiles() -> pl.DataFrame:
        return pl.DataFrame({"user_id": [1, 2], "tier": ["gold", "free"]})

    repo = make_repo([user_profiles], storage=store)
    assert repo.materialize().success

    assert table_rows(f"{lake}/user_profiles") == [
        {"user_id": 1, "tier": "gold"},
        {"user_id": 2, "tier": "free"},
        {"user_id": 3, "tier": "free"},
    ]


def test_unannotated_downstream_parameter_fails_the_run_with_a_type_error(lake, make_repo, store):
    @rs.Asset(io_handler=DeltaIOHandler(table_uri=lake))
    def source() -> pa.Table:
        return pa.table({"a": [1]})

    @rs.Asset
    def sink(source) -> int:
        return 1

    repo = make_repo([source, sink], storage=store)

    with pytest.raises(ExecutionError, match="step 'sink' failed: TypeError: .*without a type hint") as raised:
        repo.materialize()
    assert isinstance(raised.value.__cause__, TypeError)


def test_repository_resolves_a_delta_handler_by_resource_name(lake):
    shared = DeltaIOHandler(table_uri=lake)

    @rs.Asset(io_handler="lake")
    def catalog() -> pa.Table:
        return pa.table({"items": [3]})

    repo = rs.CodeRepository(assets=[catalog], resources={"lake": shared}, default_executor=rs.Executor.in_process())
    try:
        repo.resolve(rs.Storage.memory())
        assert repo.io_handler_for_output("catalog") is shared
        assert repo.materialize().success
    finally:
        repo.shutdown()
    assert table_rows(f"{lake}/catalog") == [{"items": 3}]
